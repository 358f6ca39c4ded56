using System.Globalization;
using System.Numerics;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>String builtins.</summary>
internal static class Strings
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "concat", 2, (_, a) =>
        {
            var d = Arg.Str("concat", a, 0);
            var items = Arg.Collection("concat", a, 1, "one of {array, set}");
            var parts = new string[items.Length];
            for (int i = 0; i < items.Length; i++)
                parts[i] = items[i] is RegoString s ? s.Value : throw BuiltinException.TypeMsg("concat", $"operand 2 must be array of strings or set of strings but got {a[1].TypeName} containing {items[i].TypeName}");
            return Arg.S(string.Join(d, parts));
        });
        BuiltinRegistry.Add(r, "contains", 2, (_, a) => Arg.B(Arg.Str("contains", a, 0).Contains(Arg.Str("contains", a, 1), StringComparison.Ordinal)));
        BuiltinRegistry.Add(r, "startswith", 2, (_, a) => Arg.B(Arg.Str("startswith", a, 0).StartsWith(Arg.Str("startswith", a, 1), StringComparison.Ordinal)));
        BuiltinRegistry.Add(r, "endswith", 2, (_, a) => Arg.B(Arg.Str("endswith", a, 0).EndsWith(Arg.Str("endswith", a, 1), StringComparison.Ordinal)));
        BuiltinRegistry.Add(r, "lower", 1, (_, a) => Arg.S(Arg.Str("lower", a, 0).ToLowerInvariant()));
        BuiltinRegistry.Add(r, "upper", 1, (_, a) => Arg.S(Arg.Str("upper", a, 0).ToUpperInvariant()));
        BuiltinRegistry.Add(r, "split", 2, (_, a) =>
        {
            var s = Arg.Str("split", a, 0);
            var d = Arg.Str("split", a, 1);
            string[] parts = d.Length == 0 ? Runes(s) : s.Split(d);
            return new RegoArray(parts.Select(p => (RegoValue)new RegoString(p)).ToArray());
        });
        BuiltinRegistry.Add(r, "strings.split_n", 3, (_, a) =>
        {
            var s = Arg.Str("strings.split_n", a, 0);
            var d = Arg.Str("strings.split_n", a, 1);
            var n = Arg.Int("strings.split_n", a, 2);
            if (n == 0) return RegoArray.Empty;
            string[] parts = d.Length == 0 ? Runes(s) : s.Split(d);
            if (n > 0 && parts.Length > n) parts = parts[..n];
            else if (n < 0 && parts.Length > -n) parts = parts[^(-n)..];
            return new RegoArray(parts.Select(p => (RegoValue)new RegoString(p)).ToArray());
        });
        BuiltinRegistry.Add(r, "trim", 2, (_, a) => Arg.S(TrimLeft(TrimRight(Arg.Str("trim", a, 0), Arg.Str("trim", a, 1)), Arg.Str("trim", a, 1))));
        BuiltinRegistry.Add(r, "trim_left", 2, (_, a) => Arg.S(TrimLeft(Arg.Str("trim_left", a, 0), Arg.Str("trim_left", a, 1))));
        BuiltinRegistry.Add(r, "trim_right", 2, (_, a) => Arg.S(TrimRight(Arg.Str("trim_right", a, 0), Arg.Str("trim_right", a, 1))));
        BuiltinRegistry.Add(r, "trim_prefix", 2, (_, a) =>
        {
            var s = Arg.Str("trim_prefix", a, 0);
            var p = Arg.Str("trim_prefix", a, 1);
            return Arg.S(s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s);
        });
        BuiltinRegistry.Add(r, "trim_suffix", 2, (_, a) =>
        {
            var s = Arg.Str("trim_suffix", a, 0);
            var p = Arg.Str("trim_suffix", a, 1);
            return Arg.S(s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s);
        });
        BuiltinRegistry.Add(r, "trim_space", 1, (_, a) => Arg.S(Arg.Str("trim_space", a, 0).Trim()));
        BuiltinRegistry.Add(r, "substring", 3, (_, a) =>
        {
            var s = Arg.Str("substring", a, 0);
            var start = Arg.Int("substring", a, 1);
            var len = Arg.Int("substring", a, 2);
            if (start < 0) throw BuiltinException.Error("substring", "negative offset");
            var runes = Runes(s);
            if (start >= runes.Length) return RegoString.Empty;
            if (len < 0 || start + (long)len > runes.Length) len = runes.Length - start;
            return Arg.S(string.Concat(runes.Skip(start).Take(len)));
        });
        BuiltinRegistry.Add(r, "indexof", 2, (_, a) =>
        {
            var s = Arg.Str("indexof", a, 0);
            var sub = Arg.Str("indexof", a, 1);
            if (sub.Length == 0) throw BuiltinException.Error("indexof", "empty search character");
            int idx = s.IndexOf(sub, StringComparison.Ordinal);
            if (idx < 0) return Arg.N(-1);
            return Arg.N(RuneCount(s.AsSpan(0, idx)));
        });
        BuiltinRegistry.Add(r, "indexof_n", 2, (_, a) =>
        {
            var s = Arg.Str("indexof_n", a, 0);
            var sub = Arg.Str("indexof_n", a, 1);
            var list = new List<RegoValue>();
            if (sub.Length == 0) return RegoArray.Empty;
            int i = 0;
            while ((i = s.IndexOf(sub, i, StringComparison.Ordinal)) >= 0) { list.Add(Arg.N(RuneCount(s.AsSpan(0, i)))); i++; }
            return new RegoArray(list.ToArray());
        });
        BuiltinRegistry.Add(r, "replace", 3, (_, a) =>
        {
            var s = Arg.Str("replace", a, 0);
            var old = Arg.Str("replace", a, 1);
            var nw = Arg.Str("replace", a, 2);
            return Arg.S(old.Length == 0 ? GoReplaceEmpty(s, nw) : s.Replace(old, nw, StringComparison.Ordinal));
        });
        BuiltinRegistry.Add(r, "strings.replace_n", 2, (_, a) =>
        {
            var patterns = Arg.Obj("strings.replace_n", a, 0);
            var s = Arg.Str("strings.replace_n", a, 1);
            var pairs = new List<(string, string)>();
            foreach (var kv in patterns.Pairs)
            {
                if (kv.Key is not RegoString ks) throw BuiltinException.TypeMsg("strings.replace_n", "operand 1 non-string key found in pattern object");
                if (kv.Value is not RegoString vs) throw BuiltinException.TypeMsg("strings.replace_n", "operand 1 non-string value found in pattern object");
                pairs.Add((ks.Value, vs.Value));
            }
            // Go strings.NewReplacer: at each position, first matching old string in argument order wins
            var sb = new StringBuilder();
            int i = 0;
            while (i < s.Length)
            {
                bool matched = false;
                foreach (var (o, n) in pairs)
                {
                    if (o.Length > 0 && string.CompareOrdinal(s, i, o, 0, o.Length) == 0)
                    {
                        sb.Append(n);
                        i += o.Length;
                        matched = true;
                        break;
                    }
                }
                if (!matched) sb.Append(s[i++]);
            }
            return Arg.S(sb.ToString());
        });
        BuiltinRegistry.Add(r, "strings.reverse", 1, (_, a) =>
        {
            var runes = Runes(Arg.Str("strings.reverse", a, 0));
            Array.Reverse(runes);
            return Arg.S(string.Concat(runes));
        });
        BuiltinRegistry.Add(r, "strings.count", 2, (_, a) =>
        {
            var s = Arg.Str("strings.count", a, 0);
            var sub = Arg.Str("strings.count", a, 1);
            if (sub.Length == 0) return Arg.N(RuneCount(s) + 1);
            int c = 0, i = 0;
            while ((i = s.IndexOf(sub, i, StringComparison.Ordinal)) >= 0) { c++; i += sub.Length; }
            return Arg.N(c);
        });
        BuiltinRegistry.Add(r, "strings.any_prefix_match", 2, (_, a) => Arg.B(AnyMatch("strings.any_prefix_match", a, (s, p) => s.StartsWith(p, StringComparison.Ordinal))));
        BuiltinRegistry.Add(r, "strings.any_suffix_match", 2, (_, a) => Arg.B(AnyMatch("strings.any_suffix_match", a, (s, p) => s.EndsWith(p, StringComparison.Ordinal))));
        BuiltinRegistry.Add(r, "sprintf", 2, (_, a) => Arg.S(Sprintf(Arg.Str("sprintf", a, 0), Arg.Arr("sprintf", a, 1).Items)));
        BuiltinRegistry.Add(r, "format_int", 2, (_, a) =>
        {
            var n = Arg.Num("format_int", a, 0);
            var b = Arg.Int("format_int", a, 1);
            if (b is not (2 or 8 or 10 or 16)) throw BuiltinException.TypeMsg("format_int", "operand 2 must be one of {2, 8, 10, 16}");
            var fl = RegoNumber.Truncate(n);
            fl.TryGetBigInteger(out var bi);
            return Arg.S(FormatBase(bi, b));
        });
        BuiltinRegistry.Add(r, "to_number", 1, (_, a) => a[0] switch
        {
            RegoNull => RegoNumber.Zero,
            RegoBoolean b => b.Value ? RegoNumber.One : RegoNumber.Zero,
            RegoNumber n => n,
            RegoString s => ParseNumber(s.Value),
            _ => throw BuiltinException.Type("to_number", 1, "one of {boolean, null, number, string}", a[0]),
        });
    }

    private static RegoValue ParseNumber(string s)
    {
        if (RegoNumber.TryParse(s, out var n)) return n;
        var low = s.TrimStart('+', '-').ToLowerInvariant();
        if (low is "nan" or "inf" or "infinity") throw BuiltinException.TypeMsg("to_number", $"operand 1 must be a finite number but got {s}");
        var t = s.Trim();
        if (t.Length > 0 && double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && !double.IsInfinity(d) && !double.IsNaN(d)
            && (char.IsAsciiDigit(t[^1]) || t[^1] == '.') && !t.Contains(' '))
            return RegoNumber.FromDouble(d);
        throw BuiltinException.Error("to_number", $"strconv.ParseFloat: parsing {Quote(s)}: invalid syntax");
    }

    internal static string Quote(string s)
    {
        var sb = new StringBuilder();
        RegoJson.AppendQuoted(sb, s);
        return sb.ToString();
    }

    private static bool AnyMatch(string fn, RegoValue[] a, Func<string, string, bool> pred)
    {
        IEnumerable<string> Strs(int i) => a[i] switch
        {
            RegoString s => [s.Value],
            RegoArray or RegoSet => Arg.Collection(fn, a, i).Select(v => v is RegoString s ? s.Value : throw BuiltinException.TypeMsg(fn, $"operand {i + 1} must be {a[i].TypeName} of strings but got {a[i].TypeName} containing {v.TypeName}")).ToList(),
            _ => throw BuiltinException.Type(fn, i + 1, "one of {string, set, array}", a[i]),
        };
        var xs = Strs(0).ToList();
        var ps = Strs(1).ToList();
        return xs.Any(x => ps.Any(p => pred(x, p)));
    }

    internal static string[] Runes(string s)
    {
        var list = new List<string>(s.Length);
        foreach (var r in s.EnumerateRunes()) list.Add(r.ToString());
        return list.ToArray();
    }

    internal static int RuneCount(ReadOnlySpan<char> s)
    {
        int c = 0;
        foreach (var _ in s.EnumerateRunes()) c++;
        return c;
    }

    private static string GoReplaceEmpty(string s, string nw)
    {
        var sb = new StringBuilder(nw);
        foreach (var r in Runes(s)) sb.Append(r).Append(nw);
        return sb.ToString();
    }

    private static string TrimLeft(string s, string cut)
    {
        int i = 0;
        while (i < s.Length && cut.Contains(s[i])) i++;
        return s[i..];
    }

    private static string TrimRight(string s, string cut)
    {
        int i = s.Length;
        while (i > 0 && cut.Contains(s[i - 1])) i--;
        return s[..i];
    }

    private static string FormatBase(BigInteger v, int b)
    {
        if (b == 10) return v.ToString(CultureInfo.InvariantCulture);
        bool neg = v.Sign < 0;
        v = BigInteger.Abs(v);
        if (v.IsZero) return "0";
        var sb = new StringBuilder();
        while (!v.IsZero)
        {
            int d = (int)(v % b);
            sb.Insert(0, "0123456789abcdef"[d]);
            v /= b;
        }
        if (neg) sb.Insert(0, '-');
        return sb.ToString();
    }

    /// <summary>Go fmt subset used by sprintf.</summary>
    internal static string Sprintf(string format, RegoValue[] args)
    {
        var sb = new StringBuilder();
        int ai = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%') { sb.Append(c); continue; }
            i++;
            if (i >= format.Length) { sb.Append("%!(NOVERB)"); break; }
            if (format[i] == '%') { sb.Append('%'); continue; }
            // flags
            bool plus = false, minus = false, zero = false, space = false, sharp = false;
            while (i < format.Length && "+-0 #".Contains(format[i]))
            {
                switch (format[i]) { case '+': plus = true; break; case '-': minus = true; break; case '0': zero = true; break; case ' ': space = true; break; case '#': sharp = true; break; }
                i++;
            }
            int width = -1, prec = -1;
            int ws = i;
            while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
            if (i > ws && !int.TryParse(format.AsSpan(ws, i - ws), NumberStyles.None, CultureInfo.InvariantCulture, out width)) width = int.MaxValue;
            if (width > 100_000) throw BuiltinException.Error("sprintf", "width too large");
            if (i < format.Length && format[i] == '.')
            {
                i++;
                int ps = i;
                while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
                prec = 0;
                if (i > ps && !int.TryParse(format.AsSpan(ps, i - ps), NumberStyles.None, CultureInfo.InvariantCulture, out prec)) prec = int.MaxValue;
                if (prec > 1000) throw BuiltinException.Error("sprintf", "precision too large");
            }
            if (i >= format.Length) { sb.Append("%!(NOVERB)"); break; }
            char verb = format[i];
            if (ai >= args.Length) { sb.Append("%!").Append(verb).Append("(MISSING)"); continue; }
            var arg = args[ai++];
            string s = FormatOne(verb, arg, prec, plus, sharp, space);
            if (width > 0 && s.Length < width)
            {
                if (minus) s = s.PadRight(width);
                else if (zero && verb is 'd' or 'f' or 'e' or 'g' or 'x' or 'X' or 'b' or 'o')
                {
                    bool neg = s.StartsWith('-') || s.StartsWith('+');
                    s = neg ? s[0] + s[1..].PadLeft(width - 1, '0') : s.PadLeft(width, '0');
                }
                else s = s.PadLeft(width);
            }
            sb.Append(s);
        }
        if (ai < args.Length)
        {
            sb.Append("%!(EXTRA ");
            sb.Append(string.Join(", ", args.Skip(ai).Select(a => GoTypeName(a) + "=" + FormatOne('v', a, -1, false, false, false))));
            sb.Append(')');
        }
        return sb.ToString();
    }

    private static string GoTypeName(RegoValue v) => v switch
    {
        RegoString => "string",
        RegoNumber => "json.Number",
        RegoBoolean => "bool",
        _ => "ast.Value",
    };

    private static string FormatOne(char verb, RegoValue arg, int prec, bool plus, bool sharp, bool space)
    {
        switch (verb)
        {
            case 'v':
                return arg is RegoString vs ? vs.Value : arg.ToString();
            case 's':
                return arg is RegoString ss ? (prec >= 0 && prec < ss.Value.Length ? ss.Value[..prec] : ss.Value) : arg.ToString();
            case 'q':
                return arg is RegoString qs ? Quote(qs.Value) : arg.ToString();
            case 't':
                return arg is RegoBoolean tb ? (tb.Value ? "true" : "false") : "%!t(" + arg + ")";
            case 'd':
                if (arg is RegoNumber dn && dn.TryGetBigInteger(out var di)) return (plus && di.Sign >= 0 ? "+" : "") + di.ToString(CultureInfo.InvariantCulture);
                return "%!d(" + GoTypeName(arg) + "=" + arg + ")";
            case 'f':
            case 'F':
            case 'e':
            case 'E':
            case 'g':
            case 'G':
                if (arg is RegoNumber fn)
                {
                    var d = fn.ToDouble();
                    string s = verb switch
                    {
                        'f' or 'F' => FormatFixed(fn, prec < 0 ? 6 : prec),
                        'e' or 'E' => GoExp(d, prec < 0 ? 6 : prec, verb),
                        _ => prec < 0 ? fn.ToString() : d.ToString("G" + prec, CultureInfo.InvariantCulture),
                    };
                    if (plus && d >= 0) s = "+" + s;
                    return s;
                }
                return "%!" + verb + "(" + GoTypeName(arg) + "=" + arg + ")";
            case 'x':
            case 'X':
                {
                    string s;
                    if (arg is RegoNumber xn && xn.TryGetBigInteger(out var xi)) s = FormatBase(xi, 16);
                    else if (arg is RegoString xs) s = Convert.ToHexString(System.Text.Encoding.UTF8.GetBytes(xs.Value)).ToLowerInvariant();
                    else return "%!x(" + arg + ")";
                    if (sharp) s = "0x" + s;
                    return verb == 'X' ? s.ToUpperInvariant() : s;
                }
            case 'o':
                if (arg is RegoNumber on && on.TryGetBigInteger(out var oi)) return FormatBase(oi, 8);
                return "%!o(" + arg + ")";
            case 'b':
                if (arg is RegoNumber bn && bn.TryGetBigInteger(out var bi)) return FormatBase(bi, 2);
                return "%!b(" + arg + ")";
            default:
                return "%!" + verb + "(" + GoTypeName(arg) + "=" + arg + ")";
        }
    }

    private static string FormatFixed(RegoNumber n, int prec)
    {
        // exact decimal rounding half-even like Go's strconv for the decimal value
        var d = n.ToDouble();
        if (Math.Abs(d) < 1e15) return d.ToString("F" + prec, CultureInfo.InvariantCulture);
        return n.ToString();
    }

    private static string GoExp(double d, int prec, char verb)
    {
        var s = d.ToString((verb == 'E' ? "E" : "e") + prec, CultureInfo.InvariantCulture);
        // .NET: 1.000000e+003 ; Go: 1.000000e+03
        int ei = s.IndexOfAny(['e', 'E']);
        if (ei < 0) return s;
        var mant = s[..(ei + 2)];
        var exp = s[(ei + 2)..].TrimStart('0');
        if (exp.Length < 2) exp = exp.PadLeft(2, '0');
        return mant + exp;
    }
}
