namespace EnvoyAuthz.Rego.Syntax;

/// <summary>METADATA comment blocks (YAML) attached to the package or rule that follows them.</summary>
internal static class Annotations
{
    public static void Attach(Module m, List<(int Line, string Text)> comments, List<Token> tokens)
    {
        for (int i = 0; i < comments.Count; i++)
        {
            if (comments[i].Text.Trim() != "METADATA") continue;
            var lines = new List<string>();
            int last = comments[i].Line;
            int j = i + 1;
            while (j < comments.Count && comments[j].Line == last + 1)
            {
                var t = comments[j].Text;
                lines.Add(t.StartsWith(' ') ? t[1..] : t);
                last = comments[j].Line;
                j++;
            }
            i = j - 1;
            RegoValue parsed;
            try { parsed = Builtins.Yaml.Parse(string.Join("\n", lines)); }
            catch (Exception ex) when (ex is Builtins.Yaml.YamlException or Builtins.BuiltinException) { throw new RegoParseException("rego_parse_error: invalid METADATA: " + ex.Message, comments[i].Line, 1); }
            if (parsed is not RegoObject ann) continue;
            var next = tokens.FirstOrDefault(t => t.Line > last && t.Kind != Tok.EOF);
            if (next.Kind == Tok.Ident && next.Text == "package" && m.Package.Loc.Line == next.Line)
                m.PackageAnnotations = Normalise(ann, "package");
            else
            {
                var rule = m.Rules.FirstOrDefault(r => r.Loc.Line == next.Line);
                if (rule is not null) rule.Annotations = Normalise(ann, "rule");
            }
        }
    }

    private static RegoObject Normalise(RegoObject ann, string defaultScope)
    {
        var b = new RegoObject.Builder();
        bool hasScope = false;
        foreach (var kv in ann.Pairs)
        {
            var key = (kv.Key as RegoString)?.Value;
            if (key == "scope") hasScope = true;
            if (key is "authors" or "organizations" && kv.Value is RegoArray or RegoString)
            {
                var items = kv.Value is RegoArray arr ? arr.Elements : [kv.Value];
                if (key == "authors") b.Add(key, new RegoArray(items.Select(Author).ToArray()));
                else b.Add(key, new RegoArray(items.ToArray()));
                continue;
            }
            b.Add(kv.Key, kv.Value);
        }
        if (!hasScope) b.Add("scope", new RegoString(defaultScope));
        return b.Build();
    }

    private static RegoValue Author(RegoValue v)
    {
        if (v is not RegoString s) return v;
        var text = s.Value.Trim();
        int lt = text.LastIndexOf('<');
        var b = new RegoObject.Builder();
        if (lt >= 0 && text.EndsWith('>'))
        {
            var name = text[..lt].Trim();
            if (name.Length > 0) b.Add("name", new RegoString(name));
            b.Add("email", new RegoString(text[(lt + 1)..^1]));
        }
        else b.Add("name", new RegoString(text));
        return b.Build();
    }
}
