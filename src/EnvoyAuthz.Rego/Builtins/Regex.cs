using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>regex.* builtins on .NET regular expressions (RE2 syntax translated; linear-time engine where possible).</summary>
internal static class RegexBuiltins
{
    private static readonly ConcurrentDictionary<string, Regex?> Cache = new(StringComparer.Ordinal);
    private static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "regex.match", 2, (_, a) => Arg.B(Compile("regex.match", Arg.Str("regex.match", a, 0)).IsMatch(Arg.Str("regex.match", a, 1))));
        BuiltinRegistry.Add(r, "re_match", 2, (_, a) => Arg.B(Compile("re_match", Arg.Str("re_match", a, 0)).IsMatch(Arg.Str("re_match", a, 1))));
        BuiltinRegistry.Add(r, "regex.is_valid", 1, (_, a) => Arg.B(a[0] is RegoString s && TryCompile(s.Value) is not null));
        BuiltinRegistry.Add(r, "regex.find_n", 3, (_, a) =>
        {
            var re = Compile("regex.find_n", Arg.Str("regex.find_n", a, 0));
            var s = Arg.Str("regex.find_n", a, 1);
            var n = Arg.Int("regex.find_n", a, 2);
            var list = new List<RegoValue>();
            foreach (Match m in re.Matches(s))
            {
                if (n >= 0 && list.Count >= n) break;
                list.Add(Arg.S(m.Value));
            }
            return new RegoArray(list.ToArray());
        });
        BuiltinRegistry.Add(r, "regex.find_all_string_submatch_n", 3, (_, a) =>
        {
            const string fn = "regex.find_all_string_submatch_n";
            var re = Compile(fn, Arg.Str(fn, a, 0));
            var s = Arg.Str(fn, a, 1);
            var n = Arg.Int(fn, a, 2);
            var list = new List<RegoValue>();
            foreach (Match m in re.Matches(s))
            {
                if (n >= 0 && list.Count >= n) break;
                var groups = new RegoValue[m.Groups.Count];
                for (int i = 0; i < groups.Length; i++) groups[i] = Arg.S(m.Groups[i].Success ? m.Groups[i].Value : "");
                list.Add(new RegoArray(groups));
            }
            return new RegoArray(list.ToArray());
        });
        BuiltinRegistry.Add(r, "regex.split", 2, (_, a) =>
        {
            var re = Compile("regex.split", Arg.Str("regex.split", a, 0));
            var s = Arg.Str("regex.split", a, 1);
            // Go regexp.Split(s, -1)
            var parts = new List<RegoValue>();
            if (s.Length == 0) return new RegoArray([RegoString.Empty]);
            int beg = 0;
            foreach (Match m in re.Matches(s))
            {
                if (m.Length == 0 && (m.Index == 0 || m.Index == s.Length)) continue;
                parts.Add(Arg.S(s[beg..m.Index]));
                beg = m.Index + m.Length;
            }
            parts.Add(Arg.S(s[beg..]));
            return new RegoArray(parts.ToArray());
        });
        BuiltinRegistry.Add(r, "regex.replace", 3, (_, a) =>
        {
            var s = Arg.Str("regex.replace", a, 0);
            var re = Compile("regex.replace", Arg.Str("regex.replace", a, 1));
            var repl = Arg.Str("regex.replace", a, 2);
            return Arg.S(re.Replace(s, GoReplacement(repl)));
        });
        BuiltinRegistry.Add(r, "regex.template_match", 4, (_, a) =>
        {
            const string fn = "regex.template_match";
            var tpl = Arg.Str(fn, a, 0);
            var s = Arg.Str(fn, a, 1);
            var ds = Arg.Str(fn, a, 2);
            var de = Arg.Str(fn, a, 3);
            if (ds.Length != 1 || de.Length != 1) throw BuiltinException.Error(fn, "delimiters must be single characters");
            var sb = new StringBuilder("^");
            int i = 0;
            while (i < tpl.Length)
            {
                int st = tpl.IndexOf(ds[0], i);
                if (st < 0) { sb.Append(Regex.Escape(tpl[i..])); break; }
                sb.Append(Regex.Escape(tpl[i..st]));
                int depth = 0, j = st;
                for (; j < tpl.Length; j++)
                {
                    if (tpl[j] == ds[0]) depth++;
                    else if (tpl[j] == de[0] && --depth == 0) break;
                }
                if (j >= tpl.Length) throw BuiltinException.Error(fn, "unbalanced braces");
                sb.Append('(').Append(Translate(tpl[(st + 1)..j])).Append(')');
                i = j + 1;
            }
            sb.Append('$');
            var re = TryCompileRaw(sb.ToString()) ?? throw BuiltinException.Error(fn, "invalid pattern");
            return Arg.B(re.IsMatch(s));
        });
    }

    internal static Regex Compile(string fn, string pattern) =>
        TryCompile(pattern) ?? throw BuiltinException.Error(fn, $"error parsing regexp: invalid pattern `{pattern}`");

    internal static Regex? TryCompile(string pattern)
    {
        if (Cache.TryGetValue(pattern, out var cached)) return cached;
        var re = TryCompileRaw(Translate(pattern));
        if (Cache.Count > 10_000) Cache.Clear();
        Cache[pattern] = re;
        return re;
    }

    private static Regex? TryCompileRaw(string pattern)
    {
        try { return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, MatchTimeout); }
        catch (NotSupportedException)
        {
            try { return new Regex(pattern, RegexOptions.CultureInvariant, MatchTimeout); }
            catch (ArgumentException) { return null; }
        }
        catch (ArgumentException) { return null; }
    }

    /// <summary>Translates RE2 syntax that .NET spells differently.</summary>
    internal static string Translate(string p)
    {
        if (!p.Contains("(?P<", StringComparison.Ordinal) && !p.Contains("[[:", StringComparison.Ordinal) && !p.Contains("\\z", StringComparison.Ordinal)) return p;
        return p.Replace("(?P<", "(?<", StringComparison.Ordinal)
            .Replace("[[:alpha:]]", "[a-zA-Z]", StringComparison.Ordinal)
            .Replace("[[:digit:]]", "[0-9]", StringComparison.Ordinal)
            .Replace("[[:alnum:]]", "[a-zA-Z0-9]", StringComparison.Ordinal)
            .Replace("[[:space:]]", "\\s", StringComparison.Ordinal)
            .Replace("[[:upper:]]", "[A-Z]", StringComparison.Ordinal)
            .Replace("[[:lower:]]", "[a-z]", StringComparison.Ordinal)
            .Replace("[[:punct:]]", "[!-/:-@\\[-`{-~]", StringComparison.Ordinal)
            .Replace("\\z", "\\z", StringComparison.Ordinal);
    }

    /// <summary>Go's Expand syntax ($1, ${1}, $name, $$) to .NET's.</summary>
    private static string GoReplacement(string repl)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < repl.Length; i++)
        {
            char c = repl[i];
            if (c != '$') { sb.Append(c); continue; }
            if (i + 1 < repl.Length && repl[i + 1] == '$') { sb.Append("$$"); i++; continue; }
            if (i + 1 < repl.Length && repl[i + 1] == '{')
            {
                int end = repl.IndexOf('}', i + 2);
                if (end < 0) { sb.Append("$$"); continue; }
                sb.Append("${").Append(repl, i + 2, end - i - 2).Append('}');
                i = end;
                continue;
            }
            int j = i + 1;
            while (j < repl.Length && (char.IsAsciiLetterOrDigit(repl[j]) || repl[j] == '_')) j++;
            if (j == i + 1) { sb.Append("$$"); continue; }
            sb.Append("${").Append(repl, i + 1, j - i - 1).Append('}');
            i = j - 1;
        }
        return sb.ToString();
    }
}
