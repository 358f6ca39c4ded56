using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>strings.render_template: a subset of Go text/template (fields, variables, if/else, range, with).</summary>
internal static class Template
{
    private const string Fn = "strings.render_template";

    private abstract record Node;
    private sealed record TextNode(string Text) : Node;
    private sealed record ActionNode(string Pipeline) : Node;
    private sealed record BlockNode(string Keyword, string Pipeline, List<Node> Body, List<Node>? Else) : Node;

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, Fn, 2, (c, a) =>
        {
            var tpl = Arg.Str(Fn, a, 0);
            var vars = Arg.Obj(Fn, a, 1);
            int pos = 0;
            var nodes = Parse(Tokenize(tpl), ref pos, out var stop);
            if (stop is not null) throw BuiltinException.Error(Fn, $"template: unexpected {{{{{stop}}}}}");
            var sb = new StringBuilder();
            var scope = new Dictionary<string, RegoValue>(StringComparer.Ordinal) { ["$"] = vars };
            Exec(nodes, vars, scope, sb, c, 0);
            return Arg.S(sb.ToString());
        });
    }

    private static List<(bool Action, string Text)> Tokenize(string s)
    {
        var list = new List<(bool, string)>();
        int i = 0;
        while (i < s.Length)
        {
            int open = s.IndexOf("{{", i, StringComparison.Ordinal);
            if (open < 0) { list.Add((false, s[i..])); break; }
            var text = s[i..open];
            int close = s.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (close < 0) throw BuiltinException.Error(Fn, "template: unclosed action");
            var inner = s[(open + 2)..close];
            if (inner.StartsWith('-')) { inner = inner[1..]; text = text.TrimEnd(); }
            bool trimAfter = inner.EndsWith('-');
            if (trimAfter) inner = inner[..^1];
            if (text.Length > 0) list.Add((false, text));
            list.Add((true, inner.Trim()));
            i = close + 2;
            if (trimAfter) while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        }
        return list;
    }

    private static List<Node> Parse(List<(bool Action, string Text)> toks, ref int pos, out string? stop)
    {
        var nodes = new List<Node>();
        while (pos < toks.Count)
        {
            var (action, text) = toks[pos++];
            if (!action) { nodes.Add(new TextNode(text)); continue; }
            if (text.StartsWith("/*", StringComparison.Ordinal)) continue;
            if (text is "end" or "else") { stop = text; return nodes; }
            var kw = text.Split(' ', 2)[0];
            if (kw is "if" or "range" or "with")
            {
                var pipeline = text.Length > kw.Length ? text[kw.Length..].Trim() : "";
                var body = Parse(toks, ref pos, out var s1);
                List<Node>? els = null;
                if (s1 == "else") els = Parse(toks, ref pos, out s1);
                if (s1 != "end") throw BuiltinException.Error(Fn, "template: missing {{end}}");
                nodes.Add(new BlockNode(kw, pipeline, body, els));
                continue;
            }
            nodes.Add(new ActionNode(text));
        }
        stop = null;
        return nodes;
    }

    private static void Exec(List<Node> nodes, RegoValue dot, Dictionary<string, RegoValue> scope, StringBuilder sb, BuiltinContext c, int depth)
    {
        if (depth > 100) throw BuiltinException.Error(Fn, "template: nesting too deep");
        foreach (var n in nodes)
        {
            c.CancellationToken.ThrowIfCancellationRequested();
            if (sb.Length > 10_000_000) throw BuiltinException.Error(Fn, "template: output too large");
            switch (n)
            {
                case TextNode t: sb.Append(t.Text); break;
                case ActionNode act:
                    {
                        var pipe = act.Pipeline;
                        int decl = pipe.IndexOf(":=", StringComparison.Ordinal);
                        if (decl > 0)
                        {
                            scope[pipe[..decl].Trim()] = Eval(pipe[(decl + 2)..].Trim(), dot, scope) ?? RegoValue.Null;
                            break;
                        }
                        var v = Eval(pipe, dot, scope);
                        sb.Append(v is null ? "<undefined>" : v is RegoString s ? s.Value : v.ToString());
                        break;
                    }
                case BlockNode b when b.Keyword == "range":
                    {
                        string? kVar = null, vVar = null;
                        var pipe = b.Pipeline;
                        int decl = pipe.IndexOf(":=", StringComparison.Ordinal);
                        if (decl > 0)
                        {
                            var names = pipe[..decl].Split(',').Select(x => x.Trim()).ToArray();
                            if (names.Length == 1) vVar = names[0];
                            else { kVar = names[0]; vVar = names[1]; }
                            pipe = pipe[(decl + 2)..].Trim();
                        }
                        var coll = Eval(pipe, dot, scope);
                        var items = coll switch
                        {
                            RegoArray arr => arr.Items.Select((x, i) => ((RegoValue)RegoNumber.FromInt64(i), x)).ToList(),
                            RegoSet set => set.Items.Select((x, i) => ((RegoValue)RegoNumber.FromInt64(i), x)).ToList(),
                            RegoObject o => o.Pairs.Select(kv => (kv.Key, kv.Value)).ToList(),
                            _ => [],
                        };
                        if (items.Count == 0) { if (b.Else is not null) Exec(b.Else, dot, scope, sb, c, depth + 1); break; }
                        foreach (var (k, v) in items)
                        {
                            var inner = new Dictionary<string, RegoValue>(scope, StringComparer.Ordinal);
                            if (kVar is not null) inner[kVar] = k;
                            if (vVar is not null) inner[vVar] = v;
                            Exec(b.Body, v, inner, sb, c, depth + 1);
                        }
                        break;
                    }
                case BlockNode b:
                    {
                        var v = Eval(b.Pipeline, dot, scope);
                        if (Truthy(v)) Exec(b.Body, b.Keyword == "with" ? v! : dot, scope, sb, c, depth + 1);
                        else if (b.Else is not null) Exec(b.Else, dot, scope, sb, c, depth + 1);
                        break;
                    }
            }
        }
    }

    private static bool Truthy(RegoValue? v) => v switch
    {
        null or RegoNull => false,
        RegoBoolean b => b.Value,
        RegoNumber n => n.Sign != 0,
        RegoString s => s.Value.Length > 0,
        RegoArray a => a.Count > 0,
        RegoSet s => s.Count > 0,
        RegoObject o => o.Count > 0,
        _ => true,
    };

    private static RegoValue? Eval(string expr, RegoValue dot, Dictionary<string, RegoValue> scope)
    {
        expr = expr.Trim();
        if (expr.Length == 0) return null;
        if (expr.StartsWith('"') && expr.EndsWith('"') && expr.Length >= 2) return Arg.S(expr[1..^1]);
        if (RegoNumber.TryParse(expr, out var num)) return num;
        if (expr is "true" or "false") return Arg.B(expr == "true");
        RegoValue? cur;
        string rest;
        if (expr.StartsWith('$'))
        {
            int dotIdx = expr.IndexOf('.');
            var name = dotIdx < 0 ? expr : expr[..dotIdx];
            if (!scope.TryGetValue(name, out var sv)) return null;
            cur = sv;
            rest = dotIdx < 0 ? "" : expr[dotIdx..];
        }
        else if (expr.StartsWith('.'))
        {
            cur = dot;
            rest = expr;
        }
        else return null;
        foreach (var field in rest.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            if (cur is RegoObject o && o.TryGetValue(field, out var fv)) cur = fv;
            else return null;
        }
        return cur;
    }
}
