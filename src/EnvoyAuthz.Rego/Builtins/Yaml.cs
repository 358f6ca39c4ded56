using System.Globalization;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>yaml.marshal / yaml.unmarshal / yaml.is_valid over a YAML subset (block and flow collections, plain/quoted scalars, literal blocks).</summary>
internal static class Yaml
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "yaml.marshal", 1, (_, a) => Arg.S(Marshal(a[0])));
        BuiltinRegistry.Add(r, "yaml.unmarshal", 1, (_, a) =>
        {
            try { return new YamlParser(Arg.Str("yaml.unmarshal", a, 0)).ParseDocument(); }
            catch (YamlException ex) { throw BuiltinException.Error("yaml.unmarshal", ex.Message); }
        });
        BuiltinRegistry.Add(r, "yaml.is_valid", 1, (_, a) =>
        {
            if (a[0] is not RegoString s) return RegoValue.False;
            try { new YamlParser(s.Value).ParseDocument(); return RegoValue.True; }
            catch (YamlException) { return RegoValue.False; }
        });
    }

    /// <summary>Parses a YAML document (throws <see cref="YamlException"/>).</summary>
    internal static RegoValue Parse(string text) => new YamlParser(text).ParseDocument();

    /// <summary>Block-style YAML; sets become sequences.</summary>
    internal static string Marshal(RegoValue v)
    {
        var sb = new StringBuilder();
        Write(sb, v, 0, false);
        if (sb.Length == 0 || sb[^1] != '\n') sb.Append('\n');
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, RegoValue v, int indent, bool inline)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var pad = new string(' ', indent);
        switch (v)
        {
            case RegoObject o when o.Count > 0:
                {
                    bool first = true;
                    foreach (var kv in o.Pairs)
                    {
                        if (!(first && inline)) sb.Append(pad);
                        first = false;
                        sb.Append(Scalar(kv.Key is RegoString ks ? ks : Arg.S(kv.Key.ToJson()))).Append(':');
                        WriteChild(sb, kv.Value, indent);
                    }
                    return;
                }
            case RegoArray or RegoSet:
                {
                    var items = v is RegoArray arr ? arr.Items : ((RegoSet)v).Items;
                    if (items.Length == 0) { sb.Append("[]\n"); return; }
                    bool first = true;
                    foreach (var item in items)
                    {
                        if (!(first && inline)) sb.Append(pad);
                        first = false;
                        sb.Append("- ");
                        if (item is RegoObject { Count: > 0 } or RegoArray { Count: > 0 } or RegoSet { Count: > 0 }) Write(sb, item, indent + 2, true);
                        else sb.Append(Scalar(item)).Append('\n');
                    }
                    return;
                }
            default:
                sb.Append(Scalar(v)).Append('\n');
                return;
        }
    }

    private static void WriteChild(StringBuilder sb, RegoValue v, int indent)
    {
        if (v is RegoObject { Count: > 0 }) { sb.Append('\n'); Write(sb, v, indent + 2, false); }
        else if (v is RegoArray { Count: > 0 } or RegoSet { Count: > 0 }) { sb.Append('\n'); Write(sb, v, indent, false); }
        else { sb.Append(' '); Write(sb, v, indent, true); }
    }

    private static string Scalar(RegoValue v) => v switch
    {
        RegoNull => "null",
        RegoBoolean b => b.Value ? "true" : "false",
        RegoNumber n => n.ToString(),
        RegoString s => NeedsQuote(s.Value) ? s.ToJson() : s.Value,
        RegoObject => "{}",
        _ => "[]",
    };

    private static bool NeedsQuote(string s) =>
        s.Length == 0 || s.Trim() != s || s.Any(c => ":#{}[],&*!|>'\"%@`\n\t".Contains(c)) || s.StartsWith('-') || s.StartsWith('?')
        || s is "null" or "Null" or "NULL" or "~" or "true" or "True" or "TRUE" or "false" or "False" or "FALSE" or "yes" or "no" or "on" or "off"
        || RegoNumber.TryParse(s, out _);

    internal sealed class YamlException(string message) : Exception(message);

    private sealed class YamlParser
    {
        private readonly List<(int Indent, string Text, int Line)> _lines = new();
        private int _i;

        public YamlParser(string src)
        {
            var raw = src.Replace("\r\n", "\n").Split('\n');
            for (int n = 0; n < raw.Length; n++)
            {
                var line = raw[n];
                if (line.Contains('\t') && line.TrimStart(' ').StartsWith('\t')) throw new YamlException($"yaml: line {n + 1}: found character that cannot start any token");
                var content = StripComment(line);
                if (content.Trim().Length == 0 || content.Trim() == "---" || content.Trim() == "...") continue;
                int indent = content.Length - content.TrimStart(' ').Length;
                _lines.Add((indent, content.Trim(), n + 1));
            }
        }

        private static string StripComment(string line)
        {
            bool sq = false, dq = false;
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                if (c == '\'' && !dq) sq = !sq;
                else if (c == '"' && !sq && (i == 0 || line[i - 1] != '\\')) dq = !dq;
                else if (c == '#' && !sq && !dq && (i == 0 || line[i - 1] == ' ')) return line[..i];
            }
            return line;
        }

        public RegoValue ParseDocument()
        {
            if (_lines.Count == 0) return RegoValue.Null;
            var v = ParseBlock(_lines[0].Indent, 0);
            if (_i < _lines.Count) throw new YamlException($"yaml: line {_lines[_i].Line}: did not find expected <document start>");
            return v;
        }

        private RegoValue ParseBlock(int indent, int depth)
        {
            if (depth > 200) throw new YamlException("yaml: exceeded max depth");
            var (ind, text, line) = _lines[_i];
            if (text.StartsWith("- ", StringComparison.Ordinal) || text == "-") return ParseSequence(ind, depth);
            if (FindColon(text) > 0) return ParseMapping(ind, depth);
            _i++;
            // multi-line flow collection or plain scalar continuation
            var sb = new StringBuilder(text);
            while (_i < _lines.Count && _lines[_i].Indent > indent - 1 && IsOpenFlow(sb.ToString())) sb.Append(' ').Append(_lines[_i++].Text);
            return ParseInline(sb.ToString(), line);
        }

        private static bool IsOpenFlow(string s)
        {
            int depth = 0;
            bool sq = false, dq = false;
            foreach (var c in s)
            {
                if (c == '"' && !sq) dq = !dq;
                else if (c == '\'' && !dq) sq = !sq;
                else if (!sq && !dq && (c == '[' || c == '{')) depth++;
                else if (!sq && !dq && (c == ']' || c == '}')) depth--;
            }
            return depth > 0;
        }

        private RegoValue ParseSequence(int indent, int depth)
        {
            var items = new List<RegoValue>();
            while (_i < _lines.Count && _lines[_i].Indent == indent && (_lines[_i].Text.StartsWith("- ", StringComparison.Ordinal) || _lines[_i].Text == "-"))
            {
                var (_, text, line) = _lines[_i];
                var rest = text.Length > 1 ? text[2..].TrimStart() : "";
                if (rest.Length == 0)
                {
                    _i++;
                    items.Add(_i < _lines.Count && _lines[_i].Indent > indent ? ParseBlock(_lines[_i].Indent, depth + 1) : RegoValue.Null);
                    continue;
                }
                // "- key: value" starts a mapping indented at the item content
                int contentIndent = indent + (text.Length - rest.Length);
                _lines[_i] = (contentIndent, rest, line);
                items.Add(ParseBlock(contentIndent, depth + 1));
            }
            return new RegoArray(items.ToArray());
        }

        private RegoValue ParseMapping(int indent, int depth)
        {
            var b = new RegoObject.Builder();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (_i < _lines.Count && _lines[_i].Indent == indent)
            {
                var (_, text, line) = _lines[_i];
                int colon = FindColon(text);
                if (colon <= 0) throw new YamlException($"yaml: line {line}: could not find expected ':'");
                var key = Unquote(text[..colon].Trim(), line);
                if (!seen.Add(key)) throw new YamlException($"yaml: line {line}: mapping key {Strings.Quote(key)} already defined");
                var rest = text[(colon + 1)..].Trim();
                _i++;
                RegoValue value;
                if (rest.Length == 0)
                {
                    if (_i < _lines.Count && (_lines[_i].Indent > indent || (_lines[_i].Indent == indent && _lines[_i].Text.StartsWith("- ", StringComparison.Ordinal))))
                        value = ParseBlock(_lines[_i].Indent, depth + 1);
                    else value = RegoValue.Null;
                }
                else if (rest is "|" or "|-" or ">" or ">-")
                {
                    var parts = new List<string>();
                    while (_i < _lines.Count && _lines[_i].Indent > indent) parts.Add(_lines[_i++].Text);
                    var joined = string.Join(rest.StartsWith('|') ? "\n" : " ", parts);
                    value = Arg.S(rest.EndsWith('-') ? joined : joined + "\n");
                }
                else
                {
                    var sb = new StringBuilder(rest);
                    while (_i < _lines.Count && _lines[_i].Indent > indent && IsOpenFlow(sb.ToString())) sb.Append(' ').Append(_lines[_i++].Text);
                    value = ParseInline(sb.ToString(), line);
                }
                b.Add(key, value);
            }
            return b.Build();
        }

        private static int FindColon(string s)
        {
            bool sq = false, dq = false;
            int depth = 0;
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (c == '"' && !sq) dq = !dq;
                else if (c == '\'' && !dq) sq = !sq;
                else if (!sq && !dq && (c == '[' || c == '{')) depth++;
                else if (!sq && !dq && (c == ']' || c == '}')) depth--;
                else if (c == ':' && !sq && !dq && depth == 0 && (i + 1 == s.Length || s[i + 1] == ' ')) return i;
            }
            return -1;
        }

        private static string Unquote(string s, int line)
        {
            if (s.Length >= 2 && s[0] == '"' && s[^1] == '"')
            {
                if (!RegoJson.TryParse(s, out var v) || v is not RegoString rs) throw new YamlException($"yaml: line {line}: invalid quoted string");
                return rs.Value;
            }
            if (s.Length >= 2 && s[0] == '\'' && s[^1] == '\'') return s[1..^1].Replace("''", "'");
            return s;
        }

        private static RegoValue ParseInline(string s, int line)
        {
            int pos = 0;
            var v = Flow(s, ref pos, line, 0, topLevel: true);
            while (pos < s.Length && s[pos] == ' ') pos++;
            if (pos != s.Length) throw new YamlException($"yaml: line {line}: did not find expected <document start>");
            return v;
        }

        private static RegoValue Flow(string s, ref int pos, int line, int depth, bool topLevel = false)
        {
            if (depth > 200) throw new YamlException("yaml: exceeded max depth");
            while (pos < s.Length && s[pos] == ' ') pos++;
            if (pos >= s.Length) return RegoValue.Null;
            char c = s[pos];
            if (c == '[' || c == '{')
            {
                bool isSeq = c == '[';
                char close = isSeq ? ']' : '}';
                pos++;
                var items = new List<RegoValue>();
                var obj = new RegoObject.Builder();
                while (true)
                {
                    while (pos < s.Length && s[pos] == ' ') pos++;
                    if (pos >= s.Length) throw new YamlException($"yaml: line {line}: did not find expected ',' or '{close}'");
                    if (s[pos] == close) { pos++; break; }
                    var item = Flow(s, ref pos, line, depth + 1);
                    while (pos < s.Length && s[pos] == ' ') pos++;
                    if (!isSeq)
                    {
                        if (pos >= s.Length || s[pos] != ':') throw new YamlException($"yaml: line {line}: did not find expected ':'");
                        pos++;
                        var val = Flow(s, ref pos, line, depth + 1);
                        obj.Add(item is RegoString ks ? ks.Value : item.ToString(), val);
                    }
                    else items.Add(item);
                    while (pos < s.Length && s[pos] == ' ') pos++;
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == close) { pos++; break; }
                    throw new YamlException($"yaml: line {line}: did not find expected ',' or '{close}'");
                }
                return isSeq ? new RegoArray(items.ToArray()) : obj.Build();
            }
            if (c == '"')
            {
                int start = pos++;
                while (pos < s.Length && s[pos] != '"') { if (s[pos] == '\\') pos++; pos++; }
                if (pos >= s.Length) throw new YamlException($"yaml: line {line}: found unexpected end of stream");
                pos++;
                return Arg.S(Unquote(s[start..pos], line));
            }
            if (c == '\'')
            {
                int start = pos++;
                while (pos < s.Length && !(s[pos] == '\'' && (pos + 1 >= s.Length || s[pos + 1] != '\''))) pos += s[pos] == '\'' ? 2 : 1;
                if (pos >= s.Length) throw new YamlException($"yaml: line {line}: found unexpected end of stream");
                pos++;
                return Arg.S(Unquote(s[start..pos], line));
            }
            int st = pos;
            if (topLevel) pos = s.Length;
            else while (pos < s.Length && s[pos] is not (',' or ']' or '}') && !(s[pos] == ':' && (pos + 1 >= s.Length || s[pos + 1] == ' '))) pos++;
            return Plain(s[st..pos].Trim());
        }

        private static RegoValue Plain(string s)
        {
            switch (s)
            {
                case "" or "~" or "null" or "Null" or "NULL": return RegoValue.Null;
                case "true" or "True" or "TRUE": return RegoValue.True;
                case "false" or "False" or "FALSE": return RegoValue.False;
            }
            if (RegoNumber.TryParse(s, out var n)) return n;
            if (s.StartsWith("0x", StringComparison.Ordinal) && long.TryParse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hx)) return Arg.N(hx);
            return Arg.S(s);
        }
    }
}
