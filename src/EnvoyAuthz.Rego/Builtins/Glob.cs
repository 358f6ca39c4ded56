using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>glob.match and glob.quote_meta (gobwas/glob semantics, compiled to regular expressions).</summary>
internal static class Glob
{
    private static readonly ConcurrentDictionary<string, Regex> Cache = new(StringComparer.Ordinal);

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "glob.match", 3, (_, a) =>
        {
            const string fn = "glob.match";
            var pattern = Arg.Str(fn, a, 0);
            List<char> delims;
            switch (a[1])
            {
                case RegoNull: delims = []; break;
                case RegoArray arr:
                    delims = [];
                    foreach (var d in arr.Items)
                    {
                        if (d is not RegoString ds) throw BuiltinException.TypeMsg(fn, "operand 2 must be array of strings");
                        foreach (var ch in ds.Value) delims.Add(ch);
                    }
                    if (arr.Count == 0) delims.Add('.');
                    break;
                default: throw BuiltinException.Type(fn, 2, "array", a[1]);
            }
            var s = Arg.Str(fn, a, 2);
            var key = pattern + "\u0000" + new string(delims.ToArray());
            if (!Cache.TryGetValue(key, out var re))
            {
                re = new Regex(ToRegex(fn, pattern, delims), RegexOptions.NonBacktracking | RegexOptions.CultureInvariant | RegexOptions.Singleline);
                if (Cache.Count > 10_000) Cache.Clear();
                Cache[key] = re;
            }
            return Arg.B(re.IsMatch(s));
        });
        BuiltinRegistry.Add(r, "glob.quote_meta", 1, (_, a) =>
        {
            var s = Arg.Str("glob.quote_meta", a, 0);
            var sb = new StringBuilder();
            foreach (var c in s)
            {
                if ("*?\\[]{}".Contains(c)) sb.Append('\\');
                sb.Append(c);
            }
            return Arg.S(sb.ToString());
        });
    }

    private static string ToRegex(string fn, string p, List<char> delims)
    {
        var notDelim = delims.Count == 0 ? "." : "[^" + string.Concat(delims.Select(d => Regex.Escape(d.ToString()).Replace("]", "\\]"))) + "]";
        var sb = new StringBuilder("^");
        int depth = 0;
        for (int i = 0; i < p.Length; i++)
        {
            char c = p[i];
            switch (c)
            {
                case '\\':
                    if (i + 1 >= p.Length) throw BuiltinException.Error(fn, "unexpected end of input");
                    sb.Append(Regex.Escape(p[++i].ToString()));
                    break;
                case '*':
                    if (i + 1 < p.Length && p[i + 1] == '*') { sb.Append(".*"); i++; }
                    else sb.Append(notDelim).Append('*');
                    break;
                case '?':
                    sb.Append(notDelim);
                    break;
                case '[':
                    {
                        int end = p.IndexOf(']', i + 1);
                        if (end < 0) throw BuiltinException.Error(fn, "unexpected end of input");
                        var body = p[(i + 1)..end];
                        bool neg = body.StartsWith('!');
                        if (neg) body = body[1..];
                        sb.Append('[').Append(neg ? "^" : "").Append(body.Replace("\\", "\\\\").Replace("[", "\\[")).Append(']');
                        i = end;
                        break;
                    }
                case '{': sb.Append("(?:"); depth++; break;
                case '}' when depth > 0: sb.Append(')'); depth--; break;
                case ',' when depth > 0: sb.Append('|'); break;
                default: sb.Append(Regex.Escape(c.ToString())); break;
            }
        }
        if (depth != 0) throw BuiltinException.Error(fn, "unexpected end of input");
        return sb.Append('$').ToString();
    }
}
