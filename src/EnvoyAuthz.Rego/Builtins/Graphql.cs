using System.Globalization;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>graphql.* builtins: a GraphQL parser producing gqlparser-shaped ASTs, with schema and query validation for the common rules.</summary>
internal static class Graphql
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "graphql.parse_query", 1, (_, a) => Wrap("graphql.parse_query", () => new GqlParser(Arg.Str("graphql.parse_query", a, 0)).QueryDocument()));
        BuiltinRegistry.Add(r, "graphql.parse_schema", 1, (_, a) => Wrap("graphql.parse_schema", () => Schema("graphql.parse_schema", a[0])));
        BuiltinRegistry.Add(r, "graphql.schema_is_valid", 1, (_, a) =>
        {
            try { return Arg.B(GqlValidator.SchemaErrors(Schema("graphql.schema_is_valid", a[0])) is null); }
            catch (GqlException) { return RegoValue.False; }
        });
        BuiltinRegistry.Add(r, "graphql.is_valid", 2, (_, a) =>
        {
            try
            {
                var q = Query("graphql.is_valid", a[0]);
                var s = Schema("graphql.is_valid", a[1]);
                return Arg.B(GqlValidator.SchemaErrors(s) is null && GqlValidator.QueryErrors(q, s) is null);
            }
            catch (GqlException) { return RegoValue.False; }
        });
        BuiltinRegistry.Add(r, "graphql.parse_and_verify", 2, (_, a) =>
        {
            try
            {
                var q = Query("graphql.parse_and_verify", a[0]);
                var s = Schema("graphql.parse_and_verify", a[1]);
                bool ok = GqlValidator.SchemaErrors(s) is null && GqlValidator.QueryErrors(q, s) is null;
                return ok ? new RegoArray([RegoValue.True, q, s]) : new RegoArray([RegoValue.False, RegoObject.Empty, RegoObject.Empty]);
            }
            catch (GqlException) { return new RegoArray([RegoValue.False, RegoObject.Empty, RegoObject.Empty]); }
        });
        BuiltinRegistry.Add(r, "graphql.parse", 2, (_, a) => Wrap("graphql.parse", () =>
        {
            var q = Query("graphql.parse", a[0]);
            var s = Schema("graphql.parse", a[1]);
            var err = GqlValidator.SchemaErrors(s) ?? GqlValidator.QueryErrors(q, s);
            if (err is not null) throw new GqlException(err);
            return new RegoArray([q, s]);
        }));
    }

    /// <summary>A query given as text or as an AST object from graphql.parse_query.</summary>
    private static RegoValue Query(string fn, RegoValue v) => v switch
    {
        RegoString s => new GqlParser(s.Value).QueryDocument(),
        RegoObject o => o,
        _ => throw BuiltinException.Type(fn, 1, "one of {string, object}", v),
    };

    /// <summary>A schema given as SDL text or as an AST object from graphql.parse_schema.</summary>
    private static RegoValue Schema(string fn, RegoValue v) => v switch
    {
        RegoString s => new GqlParser(s.Value).SchemaDocument(),
        RegoObject o => o,
        _ => throw BuiltinException.Type(fn, 2, "one of {string, object}", v),
    };

    private static RegoValue Wrap(string fn, Func<RegoValue> f)
    {
        try { return f(); }
        catch (GqlException ex) { throw BuiltinException.Error(fn, ex.Message); }
    }
}

internal sealed class GqlException(string message) : Exception(message);

internal enum GqlTok { EOF, Bang, Dollar, Amp, LParen, RParen, Spread, Colon, Equals, At, LBrack, RBrack, LBrace, RBrace, Pipe, Name, Int, Float, String, BlockString }

internal sealed class GqlParser
{
    /// <summary>Source positions of parsed fields (for validation messages); weak, so ASTs are collected normally.</summary>
    internal static readonly System.Runtime.CompilerServices.ConditionalWeakTable<RegoObject, Tuple<int, int>> Positions = new();

    private readonly List<(GqlTok Kind, string Text, int Line, int Col)> _t = new();
    private int _p;

    public GqlParser(string src)
    {
        int i = 0, line = 1, lineStart = 0;
        while (true)
        {
            while (i < src.Length)
            {
                char c = src[i];
                if (c == '\n') { i++; line++; lineStart = i; }
                else if (c == '\r') { i++; if (i < src.Length && src[i] == '\n') i++; line++; lineStart = i; }
                else if (c is ' ' or '\t' or ',' or '\uFEFF') i++;
                else if (c == '#') { while (i < src.Length && src[i] != '\n' && src[i] != '\r') i++; }
                else break;
            }
            int col = i - lineStart + 1;
            if (i >= src.Length) { _t.Add((GqlTok.EOF, "", line, col)); break; }
            char ch = src[i];
            GqlTok? p = ch switch
            {
                '!' => GqlTok.Bang, '$' => GqlTok.Dollar, '&' => GqlTok.Amp, '(' => GqlTok.LParen, ')' => GqlTok.RParen, ':' => GqlTok.Colon,
                '=' => GqlTok.Equals, '@' => GqlTok.At, '[' => GqlTok.LBrack, ']' => GqlTok.RBrack, '{' => GqlTok.LBrace, '}' => GqlTok.RBrace, '|' => GqlTok.Pipe,
                _ => null,
            };
            if (p is not null) { _t.Add((p.Value, ch.ToString(), line, col)); i++; continue; }
            if (ch == '.')
            {
                if (i + 2 < src.Length && src[i + 1] == '.' && src[i + 2] == '.') { _t.Add((GqlTok.Spread, "...", line, col)); i += 3; continue; }
                throw new GqlException($"Unexpected . in GraphQL string at location {line}:{col}");
            }
            if (char.IsAsciiLetter(ch) || ch == '_')
            {
                int s = i;
                while (i < src.Length && (char.IsAsciiLetterOrDigit(src[i]) || src[i] == '_')) i++;
                _t.Add((GqlTok.Name, src[s..i], line, col));
                continue;
            }
            if (char.IsAsciiDigit(ch) || ch == '-')
            {
                int s = i;
                if (src[i] == '-') i++;
                while (i < src.Length && char.IsAsciiDigit(src[i])) i++;
                bool isFloat = false;
                if (i < src.Length && src[i] == '.') { isFloat = true; i++; while (i < src.Length && char.IsAsciiDigit(src[i])) i++; }
                if (i < src.Length && (src[i] == 'e' || src[i] == 'E'))
                {
                    isFloat = true;
                    i++;
                    if (i < src.Length && (src[i] == '+' || src[i] == '-')) i++;
                    while (i < src.Length && char.IsAsciiDigit(src[i])) i++;
                }
                _t.Add((isFloat ? GqlTok.Float : GqlTok.Int, src[s..i], line, col));
                continue;
            }
            if (ch == '"')
            {
                if (i + 2 < src.Length && src[i + 1] == '"' && src[i + 2] == '"')
                {
                    int s = i + 3;
                    int e = src.IndexOf("\"\"\"", s, StringComparison.Ordinal);
                    while (e > 0 && src[e - 1] == '\\') e = src.IndexOf("\"\"\"", e + 3, StringComparison.Ordinal);
                    if (e < 0)
                    {
                        int l = line, ls = i;
                        for (int k = i; k < src.Length; k++)
                        {
                            if (src[k] == '\r' || (src[k] == '\n' && (k == 0 || src[k - 1] != '\r'))) { l++; ls = k + 1; }
                            else if (src[k] == '\n') ls = k + 1;
                        }
                        throw new GqlException($"Unexpected <Invalid> in GraphQL string at location {l}:{src.Length - ls + 1}");
                    }
                    var raw = src[s..e].Replace("\\\"\"\"", "\"\"\"");
                    _t.Add((GqlTok.BlockString, BlockValue(raw), line, col));
                    for (int k = i; k < e + 3; k++) if (src[k] == '\n') { line++; lineStart = k + 1; }
                    i = e + 3;
                    continue;
                }
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= src.Length) throw new GqlException($"Unterminated string. in GraphQL string at location {line}:{col}");
                    if (src[i] == '\n') throw new GqlException($"Unexpected <Invalid> in GraphQL string at location {line + 1}:1");
                    char c = src[i++];
                    if (c == '"') break;
                    if (c != '\\') { sb.Append(c); continue; }
                    if (i >= src.Length) throw new GqlException($"Unterminated string. in GraphQL string at location {line}:{col}");
                    char e = src[i++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (i + 4 > src.Length || !int.TryParse(src.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp))
                                throw new GqlException($"Invalid character escape sequence in GraphQL string at location {line}:{i - lineStart}");
                            sb.Append((char)cp);
                            i += 4;
                            break;
                        default: throw new GqlException($"Invalid character escape sequence: \\{e}. in GraphQL string at location {line}:{i - lineStart - 1}");
                    }
                }
                _t.Add((GqlTok.String, sb.ToString(), line, col + 1));
                continue;
            }
            throw new GqlException($"Unexpected {ch} in GraphQL string at location {line}:{col}");
        }
    }

    private static string BlockValue(string raw)
    {
        var lines = raw.Replace("\r\n", "\n").Split('\n');
        int common = int.MaxValue;
        for (int k = 1; k < lines.Length; k++)
        {
            int ind = lines[k].Length - lines[k].TrimStart(' ', '\t').Length;
            if (ind < lines[k].Length && ind < common) common = ind;
        }
        if (common != int.MaxValue) for (int k = 1; k < lines.Length; k++) lines[k] = lines[k].Length >= common ? lines[k][common..] : "";
        var list = lines.ToList();
        while (list.Count > 0 && list[0].Trim().Length == 0) list.RemoveAt(0);
        while (list.Count > 0 && list[^1].Trim().Length == 0) list.RemoveAt(list.Count - 1);
        return string.Join("\n", list);
    }

    private (GqlTok Kind, string Text, int Line, int Col) Cur => _t[_p];
    private bool IsName(string s) => Cur.Kind == GqlTok.Name && Cur.Text == s;

    private static string Describe((GqlTok Kind, string Text, int Line, int Col) t) => t.Kind switch
    {
        GqlTok.EOF => "<EOF>",
        GqlTok.Name => $"Name \"{t.Text}\"",
        GqlTok.Int => $"Int \"{t.Text}\"",
        GqlTok.Float => $"Float \"{t.Text}\"",
        GqlTok.String => $"String \"{t.Text}\"",
        GqlTok.BlockString => $"BlockString \"{t.Text}\"",
        _ => t.Text,
    };

    private GqlException Unexpected() => new($"Unexpected {Describe(Cur)} in GraphQL string at location {Cur.Line}:{Cur.Col}");

    private GqlException Expected(string what) => new($"Expected {what}, found {Describe(Cur)} in GraphQL string at location {Cur.Line}:{Cur.Col}");

    private string Expect(GqlTok k, string desc)
    {
        if (Cur.Kind != k) throw Expected(desc);
        return _t[_p++].Text;
    }

    private string Name() => Expect(GqlTok.Name, "Name");

    private void Keyword(string kw)
    {
        if (!IsName(kw)) throw Expected($"\"{kw}\"");
        _p++;
    }

    private bool Skip(GqlTok k)
    {
        if (Cur.Kind != k) return false;
        _p++;
        return true;
    }

    private static RegoObject Obj(params (string Key, RegoValue? Value)[] fields)
    {
        var b = new RegoObject.Builder(fields.Length);
        foreach (var (k, v) in fields) if (v is not null) b.Add(k, v);
        return b.Build();
    }

    private static RegoValue? List(List<RegoValue> l) => l.Count == 0 ? null : new RegoArray(l.ToArray());

    private static RegoValue S(string s) => new RegoString(s);

    // ---------------------------------------------------------------- executable documents

    public RegoValue QueryDocument()
    {
        var ops = new List<RegoValue>();
        var frags = new List<RegoValue>();
        if (Cur.Kind == GqlTok.EOF) return RegoObject.Empty;
        do
        {
            if (Cur.Kind == GqlTok.LBrace)
            {
                ops.Add(Obj(("Name", S("")), ("Operation", S("query")), ("SelectionSet", List(SelectionSet()))));
                continue;
            }
            if (Cur.Kind != GqlTok.Name) throw Unexpected();
            switch (Cur.Text)
            {
                case "query" or "mutation" or "subscription": ops.Add(Operation()); break;
                case "fragment": frags.Add(Fragment()); break;
                default: throw Unexpected();
            }
        }
        while (Cur.Kind != GqlTok.EOF);
        return Obj(("Operations", List(ops)), ("Fragments", List(frags)));
    }

    private RegoValue Operation()
    {
        var op = _t[_p++].Text;
        string name = Cur.Kind == GqlTok.Name ? Name() : "";
        var vars = VariableDefinitions();
        var dirs = Directives(false);
        return Obj(("Name", S(name)), ("Operation", S(op)), ("VariableDefinitions", List(vars)), ("Directives", List(dirs)), ("SelectionSet", List(SelectionSet())));
    }

    private List<RegoValue> VariableDefinitions()
    {
        var vars = new List<RegoValue>();
        if (!Skip(GqlTok.LParen)) return vars;
        do
        {
            Expect(GqlTok.Dollar, "$");
            var v = Name();
            Expect(GqlTok.Colon, ":");
            var type = Type();
            RegoValue? def = Skip(GqlTok.Equals) ? Value(true) : null;
            vars.Add(Obj(("Variable", S(v)), ("Type", type), ("DefaultValue", def), ("Directives", List(Directives(true))), ("Used", RegoValue.False)));
        }
        while (!Skip(GqlTok.RParen));
        return vars;
    }

    private RegoValue Fragment()
    {
        Keyword("fragment");
        if (IsName("on")) throw Unexpected();
        var name = Name();
        var vars = VariableDefinitions();
        Keyword("on");
        var type = Name();
        var dirs = Directives(false);
        return Obj(("Name", S(name)), ("VariableDefinition", List(vars)), ("TypeCondition", S(type)), ("Directives", List(dirs)), ("SelectionSet", List(SelectionSet())));
    }

    private void NonEmpty()
    {
        if (Cur.Kind == GqlTok.RBrace) throw new GqlException($"expected at least one definition, found }} in GraphQL string at location {Cur.Line}:{Cur.Col}");
    }

    private int _depth;

    private void Enter()
    {
        if (++_depth > 200) throw new GqlException($"query nesting too deep in GraphQL string at location {Cur.Line}:{Cur.Col}");
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
    }

    private List<RegoValue> SelectionSet()
    {
        Enter();
        try { return SelectionSetCore(); }
        finally { _depth--; }
    }

    private List<RegoValue> SelectionSetCore()
    {
        Expect(GqlTok.LBrace, "{");
        NonEmpty();
        var list = new List<RegoValue>();
        do list.Add(Selection());
        while (!Skip(GqlTok.RBrace));
        return list;
    }

    private RegoValue Selection()
    {
        if (Skip(GqlTok.Spread))
        {
            if (Cur.Kind == GqlTok.Name && Cur.Text != "on")
            {
                var n = Name();
                return Obj(("Name", S(n)), ("Directives", List(Directives(false))));
            }
            string? tc = null;
            if (IsName("on")) { _p++; tc = Name(); }
            var dirs = Directives(false);
            return Obj(("TypeCondition", S(tc ?? "")), ("Directives", List(dirs)), ("SelectionSet", List(SelectionSet())));
        }
        var pos = (Cur.Line, Cur.Col);
        var first = Name();
        string alias = first, name = first;
        if (Skip(GqlTok.Colon)) name = Name();
        var args = Arguments(false);
        var d = Directives(false);
        var sel = Cur.Kind == GqlTok.LBrace ? SelectionSet() : [];
        var field = Obj(("Alias", S(alias)), ("Name", S(name)), ("Arguments", List(args)), ("Directives", List(d)), ("SelectionSet", List(sel)));
        Positions.AddOrUpdate(field, new Tuple<int, int>(pos.Line, pos.Col));
        return field;
    }

    private List<RegoValue> Arguments(bool isConst)
    {
        var list = new List<RegoValue>();
        if (!Skip(GqlTok.LParen)) return list;
        do
        {
            var n = Name();
            Expect(GqlTok.Colon, ":");
            list.Add(Obj(("Name", S(n)), ("Value", Value(isConst))));
        }
        while (!Skip(GqlTok.RParen));
        return list;
    }

    private List<RegoValue> Directives(bool isConst)
    {
        var list = new List<RegoValue>();
        while (Skip(GqlTok.At))
        {
            var n = Name();
            list.Add(Obj(("Arguments", List(Arguments(isConst))), ("Location", S("")), ("Name", S(n))));
        }
        return list;
    }

    private RegoValue Val(int kind, string raw, List<RegoValue>? children = null) =>
        Obj(("Children", children is null ? null : List(children)), ("ExpectedTypeHasDefault", RegoValue.False), ("Kind", RegoNumber.FromInt64(kind)), ("Raw", S(raw)));

    private RegoValue Value(bool isConst)
    {
        Enter();
        try { return ValueCore(isConst); }
        finally { _depth--; }
    }

    private RegoValue ValueCore(bool isConst)
    {
        var t = Cur;
        switch (t.Kind)
        {
            case GqlTok.LBrack:
                {
                    _p++;
                    var items = new List<RegoValue>();
                    while (!Skip(GqlTok.RBrack)) items.Add(Obj(("Name", S("")), ("Value", Value(isConst))));
                    return Val(8, "", items);
                }
            case GqlTok.LBrace:
                {
                    _p++;
                    var items = new List<RegoValue>();
                    while (!Skip(GqlTok.RBrace))
                    {
                        var n = Name();
                        Expect(GqlTok.Colon, ":");
                        items.Add(Obj(("Name", S(n)), ("Value", Value(isConst))));
                    }
                    return Val(9, "", items);
                }
            case GqlTok.Dollar:
                if (isConst) throw Unexpected();
                _p++;
                return Val(0, Name());
            case GqlTok.Int: _p++; return Val(1, t.Text);
            case GqlTok.Float: _p++; return Val(2, t.Text);
            case GqlTok.String: _p++; return Val(3, t.Text);
            case GqlTok.BlockString: _p++; return Val(4, t.Text);
            case GqlTok.Name:
                _p++;
                return t.Text switch
                {
                    "true" or "false" => Val(5, t.Text),
                    "null" => Val(6, t.Text),
                    _ => Val(7, t.Text),
                };
            default:
                throw Unexpected();
        }
    }

    private RegoValue Type()
    {
        Enter();
        try { return TypeCore(); }
        finally { _depth--; }
    }

    private RegoValue TypeCore()
    {
        RegoValue type;
        if (Skip(GqlTok.LBrack))
        {
            var elem = Type();
            Expect(GqlTok.RBrack, "]");
            type = Obj(("Elem", elem), ("NamedType", S("")), ("NonNull", RegoValue.False));
        }
        else type = Obj(("NamedType", S(Name())), ("NonNull", RegoValue.False));
        if (Skip(GqlTok.Bang))
        {
            var o = (RegoObject)type;
            type = Obj(("Elem", o["Elem"]), ("NamedType", o["NamedType"]), ("NonNull", RegoValue.True));
        }
        return type;
    }

    // ---------------------------------------------------------------- schema documents

    public RegoValue SchemaDocument()
    {
        var schema = new List<RegoValue>();
        var schemaExt = new List<RegoValue>();
        var directives = new List<RegoValue>();
        var defs = new List<RegoValue>();
        var exts = new List<RegoValue>();
        while (Cur.Kind != GqlTok.EOF)
        {
            string desc = "";
            if (Cur.Kind is GqlTok.String or GqlTok.BlockString) desc = _t[_p++].Text;
            if (Cur.Kind != GqlTok.Name) throw Unexpected();
            switch (Cur.Text)
            {
                case "schema":
                    _p++;
                    schema.Add(SchemaDef(desc, false));
                    break;
                case "directive":
                    _p++;
                    directives.Add(DirectiveDef(desc));
                    break;
                case "extend":
                    {
                        if (desc.Length > 0) { _p--; throw Unexpected(); }
                        _p++;
                        if (Cur.Kind != GqlTok.Name) throw Unexpected();
                        if (IsName("schema")) { _p++; schemaExt.Add(SchemaDef("", true)); }
                        else exts.Add(TypeDef("", true));
                        break;
                    }
                case "scalar" or "type" or "interface" or "union" or "enum" or "input":
                    defs.Add(TypeDef(desc, false));
                    break;
                default:
                    if (desc.Length > 0) { _p--; }
                    throw Unexpected();
            }
        }
        return Obj(("Schema", List(schema)), ("SchemaExtension", List(schemaExt)), ("Directives", List(directives)), ("Definitions", List(defs)), ("Extensions", List(exts)));
    }

    private RegoValue SchemaDef(string desc, bool extension)
    {
        var dirs = Directives(true);
        var ops = new List<RegoValue>();
        if (Skip(GqlTok.LBrace))
        {
            do
            {
                var op = Name();
                Expect(GqlTok.Colon, ":");
                ops.Add(Obj(("Operation", S(op)), ("Type", S(Name()))));
            }
            while (!Skip(GqlTok.RBrace));
        }
        else if (!extension || dirs.Count == 0) throw Unexpected();
        return Obj(("Description", S(desc)), ("Directives", List(dirs)), ("OperationTypes", List(ops)));
    }

    private RegoValue DirectiveDef(string desc)
    {
        Expect(GqlTok.At, "@");
        var name = Name();
        var args = ArgumentDefs();
        bool repeatable = false;
        if (IsName("repeatable")) { _p++; repeatable = true; }
        Keyword("on");
        Skip(GqlTok.Pipe);
        var locs = new List<RegoValue>();
        do
        {
            var loc = Name();
            if (!ValidLocations.Contains(loc)) { _p--; throw Unexpected(); }
            locs.Add(S(loc));
        }
        while (Skip(GqlTok.Pipe));
        return Obj(("Description", S(desc)), ("Name", S(name)), ("Arguments", List(args)), ("IsRepeatable", RegoValue.From(repeatable)), ("Locations", List(locs)));
    }

    private static readonly HashSet<string> ValidLocations =
    [
        "QUERY", "MUTATION", "SUBSCRIPTION", "FIELD", "FRAGMENT_DEFINITION", "FRAGMENT_SPREAD", "INLINE_FRAGMENT", "VARIABLE_DEFINITION",
        "SCHEMA", "SCALAR", "OBJECT", "FIELD_DEFINITION", "ARGUMENT_DEFINITION", "INTERFACE", "UNION", "ENUM", "ENUM_VALUE", "INPUT_OBJECT", "INPUT_FIELD_DEFINITION",
    ];

    private List<RegoValue> ArgumentDefs()
    {
        var list = new List<RegoValue>();
        if (!Skip(GqlTok.LParen)) return list;
        do list.Add(InputValueDef());
        while (!Skip(GqlTok.RParen));
        return list;
    }

    private RegoValue InputValueDef()
    {
        string desc = Cur.Kind is GqlTok.String or GqlTok.BlockString ? _t[_p++].Text : "";
        var name = Name();
        Expect(GqlTok.Colon, ":");
        var type = Type();
        RegoValue? def = Skip(GqlTok.Equals) ? Value(true) : null;
        return Obj(("Description", S(desc)), ("Name", S(name)), ("DefaultValue", def), ("Type", type), ("Directives", List(Directives(true))));
    }

    private RegoValue TypeDef(string desc, bool extension)
    {
        var kw = Name();
        var name = Name();
        string kind = kw switch
        {
            "scalar" => "SCALAR", "type" => "OBJECT", "interface" => "INTERFACE", "union" => "UNION", "enum" => "ENUM", "input" => "INPUT_OBJECT",
            _ => throw Unexpected(),
        };
        var interfaces = new List<RegoValue>();
        var fields = new List<RegoValue>();
        var types = new List<RegoValue>();
        var enumValues = new List<RegoValue>();
        if ((kind is "OBJECT" or "INTERFACE") && IsName("implements"))
        {
            _p++;
            Skip(GqlTok.Amp);
            do interfaces.Add(S(Name()));
            while (Skip(GqlTok.Amp));
        }
        var dirs = Directives(true);
        bool hasBody = false;
        switch (kind)
        {
            case "OBJECT" or "INTERFACE":
                if (Skip(GqlTok.LBrace))
                {
                    hasBody = true;
                    NonEmpty();
                    do
                    {
                        string fdesc = Cur.Kind is GqlTok.String or GqlTok.BlockString ? _t[_p++].Text : "";
                        var fname = Name();
                        var args = ArgumentDefs();
                        Expect(GqlTok.Colon, ":");
                        var ftype = Type();
                        fields.Add(Obj(("Description", S(fdesc)), ("Name", S(fname)), ("Arguments", List(args)), ("Type", ftype), ("Directives", List(Directives(true)))));
                    }
                    while (!Skip(GqlTok.RBrace));
                }
                break;
            case "INPUT_OBJECT":
                if (Skip(GqlTok.LBrace))
                {
                    hasBody = true;
                    NonEmpty();
                    do
                    {
                        var iv = (RegoObject)InputValueDef();
                        fields.Add(Obj(("Description", iv["Description"]), ("Name", iv["Name"]), ("DefaultValue", iv["DefaultValue"]), ("Type", iv["Type"]), ("Directives", iv["Directives"])));
                        if (Cur.Kind == GqlTok.LParen) throw Unexpected();
                    }
                    while (!Skip(GqlTok.RBrace));
                }
                break;
            case "UNION":
                if (Skip(GqlTok.Equals))
                {
                    hasBody = true;
                    Skip(GqlTok.Pipe);
                    do types.Add(S(Name()));
                    while (Skip(GqlTok.Pipe));
                }
                break;
            case "ENUM":
                if (Skip(GqlTok.LBrace))
                {
                    hasBody = true;
                    NonEmpty();
                    do
                    {
                        string edesc = Cur.Kind is GqlTok.String or GqlTok.BlockString ? _t[_p++].Text : "";
                        var ename = Name();
                        enumValues.Add(Obj(("Description", S(edesc)), ("Name", S(ename)), ("Directives", List(Directives(true)))));
                    }
                    while (!Skip(GqlTok.RBrace));
                }
                break;
        }
        if (extension && !hasBody && dirs.Count == 0 && interfaces.Count == 0) throw Unexpected();
        return Obj(("BuiltIn", RegoValue.False), ("Description", S(desc)), ("Directives", List(dirs)), ("EnumValues", List(enumValues)), ("Fields", List(fields)),
            ("Interfaces", List(interfaces)), ("Kind", S(kind)), ("Name", S(name)), ("Types", List(types)));
    }
}

/// <summary>Validation of parsed schemas and queries (the rules used by the conformance suite: defined types, fields, arguments, kinds).</summary>
internal static class GqlValidator
{
    private static readonly string[] Scalars = ["Int", "Float", "String", "Boolean", "ID"];

    private sealed class TypeInfo
    {
        public string Kind = "";
        public Dictionary<string, RegoObject> Fields = new(StringComparer.Ordinal);
        public List<string> Interfaces = [];
        public List<string> Types = [];
        public List<string> EnumValues = [];
    }

    private static IEnumerable<RegoObject> Items(RegoObject o, string key) => o[key] is RegoArray a ? a.Elements.OfType<RegoObject>() : [];
    private static string Str(RegoObject o, string key) => (o[key] as RegoString)?.Value ?? "";

    private static Dictionary<string, TypeInfo>? Build(RegoValue schemaDoc, out string? error)
    {
        error = null;
        var doc = (RegoObject)schemaDoc;
        var types = new Dictionary<string, TypeInfo>(StringComparer.Ordinal);
        foreach (var s in Scalars) types[s] = new TypeInfo { Kind = "SCALAR" };
        foreach (var def in Items(doc, "Definitions"))
        {
            var name = Str(def, "Name");
            if (types.ContainsKey(name) && !Scalars.Contains(name)) { error = $"Cannot redeclare type {name}."; return null; }
            types[name] = new TypeInfo { Kind = Str(def, "Kind") };
            Merge(types[name], def);
        }
        foreach (var ext in Items(doc, "Extensions"))
        {
            var name = Str(ext, "Name");
            if (!types.TryGetValue(name, out var t)) types[name] = t = new TypeInfo { Kind = Str(ext, "Kind") };
            else if (t.Kind != Str(ext, "Kind")) { error = $"Cannot extend type {name} because the base type is a {t.Kind}, not {Str(ext, "Kind")}."; return null; }
            Merge(t, ext);
        }
        return types;
    }

    private static void Merge(TypeInfo t, RegoObject def)
    {
        foreach (var f in Items(def, "Fields")) t.Fields[Str(f, "Name")] = f;
        if (def["Interfaces"] is RegoArray ia) t.Interfaces.AddRange(ia.Elements.OfType<RegoString>().Select(s => s.Value));
        if (def["Types"] is RegoArray ta) t.Types.AddRange(ta.Elements.OfType<RegoString>().Select(s => s.Value));
        foreach (var e in Items(def, "EnumValues")) t.EnumValues.Add(Str(e, "Name"));
    }

    private static string NamedType(RegoObject type) => type["Elem"] is RegoObject e ? NamedType(e) : Str(type, "NamedType");

    public static string? SchemaErrors(RegoValue schemaDoc)
    {
        var types = Build(schemaDoc, out var err);
        if (types is null) return err;
        var doc = (RegoObject)schemaDoc;
        var directiveNames = new HashSet<string>(["skip", "include", "deprecated", "specifiedBy", "oneOf", "defer"], StringComparer.Ordinal);
        foreach (var d in Items(doc, "Directives")) directiveNames.Add(Str(d, "Name"));
        foreach (var (name, t) in types)
        {
            switch (t.Kind)
            {
                case "OBJECT" or "INTERFACE":
                    if (t.Fields.Count == 0) return $"{(t.Kind == "OBJECT" ? "OBJECT" : "INTERFACE")} {name}: must define one or more fields.";
                    foreach (var f in t.Fields.Values)
                    {
                        var ft = NamedType((RegoObject)f["Type"]!);
                        if (!types.TryGetValue(ft, out var ftInfo)) return $"Undefined type {ft}.";
                        if (ftInfo.Kind == "INPUT_OBJECT") return $"{name}.{Str(f, "Name")}: field must be an output type.";
                        foreach (var arg in Items(f, "Arguments"))
                        {
                            var at = NamedType((RegoObject)arg["Type"]!);
                            if (!types.TryGetValue(at, out var atInfo)) return $"Undefined type {at}.";
                            if (atInfo.Kind is "OBJECT" or "INTERFACE" or "UNION") return $"{name}.{Str(f, "Name")}: argument must be an input type.";
                        }
                    }
                    foreach (var i in t.Interfaces)
                    {
                        if (!types.TryGetValue(i, out var iInfo)) return $"Undefined type {i}.";
                        if (iInfo.Kind != "INTERFACE") return $"{name} must implement {i} which is not an interface.";
                        foreach (var fname in iInfo.Fields.Keys)
                            if (!t.Fields.ContainsKey(fname)) return $"For {name} to implement {i} it must have a field called {fname}.";
                        foreach (var j in iInfo.Interfaces)
                            if (!t.Interfaces.Contains(j)) return $"{name} must implement {j} because it is implemented by {i}.";
                    }
                    break;
                case "UNION":
                    if (t.Types.Count == 0) return $"UNION {name}: must define one or more unique member types.";
                    foreach (var m in t.Types)
                    {
                        if (!types.TryGetValue(m, out var mInfo)) return $"Undefined type {m}.";
                        if (mInfo.Kind != "OBJECT") return $"UNION type \"{m}\" must be OBJECT.";
                    }
                    break;
                case "ENUM":
                    if (t.EnumValues.Count == 0) return $"ENUM {name}: must define one or more unique enum values.";
                    break;
                case "INPUT_OBJECT":
                    if (t.Fields.Count == 0) return $"INPUT_OBJECT {name}: must define one or more input fields.";
                    foreach (var f in t.Fields.Values)
                    {
                        var ft = NamedType((RegoObject)f["Type"]!);
                        if (!types.TryGetValue(ft, out var ftInfo)) return $"Undefined type {ft}.";
                        if (ftInfo.Kind is "OBJECT" or "INTERFACE" or "UNION") return $"{name}.{Str(f, "Name")}: field must be an input type.";
                    }
                    break;
            }
        }
        foreach (var s in Items(doc, "Schema").Concat(Items(doc, "SchemaExtension")))
            foreach (var op in Items(s, "OperationTypes"))
                if (!types.ContainsKey(Str(op, "Type"))) return $"Undefined type {Str(op, "Type")}.";
        return null;
    }

    public static string? QueryErrors(RegoValue queryDoc, RegoValue schemaDoc)
    {
        var types = Build(schemaDoc, out var err);
        if (types is null) return err;
        var doc = (RegoObject)queryDoc;
        var schemaOps = new Dictionary<string, string>(StringComparer.Ordinal) { ["query"] = "Query", ["mutation"] = "Mutation", ["subscription"] = "Subscription" };
        foreach (var s in Items((RegoObject)schemaDoc, "Schema"))
            foreach (var op in Items(s, "OperationTypes")) schemaOps[Str(op, "Operation")] = Str(op, "Type");
        var fragments = Items(doc, "Fragments").ToDictionary(f => Str(f, "Name"), f => f, StringComparer.Ordinal);
        foreach (var op in Items(doc, "Operations"))
        {
            if (!schemaOps.TryGetValue(Str(op, "Operation"), out var root) || !types.ContainsKey(root)) return $"Schema does not support operation type \"{Str(op, "Operation")}\"";
            var vars = Items(op, "VariableDefinitions").ToDictionary(v => Str(v, "Variable"), v => v, StringComparer.Ordinal);
            var e = Selections(Items(op, "SelectionSet"), root, types, fragments, vars, 0, new HashSet<string>(StringComparer.Ordinal));
            if (e is not null) return e;
        }
        return null;
    }

    private static string? Selections(IEnumerable<RegoObject> sels, string typeName, Dictionary<string, TypeInfo> types, Dictionary<string, RegoObject> fragments, Dictionary<string, RegoObject> vars, int depth, HashSet<string> visitedFragments)
    {
        if (depth > 100) return "selection too deep";
        if (!types.TryGetValue(typeName, out var t)) return $"Undefined type {typeName}.";
        foreach (var sel in sels)
        {
            if (sel["Alias"] is null && sel["SelectionSet"] is not null)
            {
                var tc = Str(sel, "TypeCondition");
                var e = Selections(Items(sel, "SelectionSet"), tc.Length == 0 ? typeName : tc, types, fragments, vars, depth + 1, visitedFragments);
                if (e is not null) return e;
                continue;
            }
            if (sel["Alias"] is null)
            {
                if (!fragments.TryGetValue(Str(sel, "Name"), out var frag)) return $"Undefined fragment {Str(sel, "Name")}.";
                if (!visitedFragments.Add(Str(sel, "Name"))) continue;
                var e = Selections(Items(frag, "SelectionSet"), Str(frag, "TypeCondition"), types, fragments, vars, depth + 1, visitedFragments);
                if (e is not null) return e;
                continue;
            }
            var name = Str(sel, "Name");
            if (name == "__typename") continue;
            if (!t.Fields.TryGetValue(name, out var field))
            {
                if (t.Kind == "UNION") return $"Cannot query field \"{name}\" on type \"{typeName}\".";
                return $"Cannot query field \"{name}\" on type \"{typeName}\".";
            }
            var argDefs = Items(field, "Arguments").ToDictionary(a => Str(a, "Name"), a => a, StringComparer.Ordinal);
            var given = Items(sel, "Arguments").ToDictionary(a => Str(a, "Name"), a => a, StringComparer.Ordinal);
            foreach (var g in given.Keys) if (!argDefs.ContainsKey(g)) return $"Unknown argument \"{g}\" on field \"{typeName}.{name}\".";
            foreach (var (an, ad) in argDefs)
                if (((RegoObject)ad["Type"]!)["NonNull"] is RegoBoolean { Value: true } && ad["DefaultValue"] is null && !given.ContainsKey(an))
                    return $"Field \"{name}\" argument \"{an}\" of type \"{NamedType((RegoObject)ad["Type"]!)}!\" is required, but it was not provided" +
                        (GqlParser.Positions.TryGetValue(sel, out var p) ? $" in GraphQL string at location {p.Item1}:{p.Item2}" : ".");
            foreach (var g in given.Values)
                if (g["Value"] is RegoObject v && v["Kind"] is RegoNumber { } k && k.TryGetInt64(out var kind) && kind == 0 && !vars.ContainsKey(Str(v, "Raw")))
                    return $"Variable \"${Str(v, "Raw")}\" is not defined.";
            var ft = NamedType((RegoObject)field["Type"]!);
            if (sel["SelectionSet"] is not null)
            {
                var e = Selections(Items(sel, "SelectionSet"), ft, types, fragments, vars, depth + 1, visitedFragments);
                if (e is not null) return e;
            }
            else if (types.TryGetValue(ft, out var fInfo) && fInfo.Kind is "OBJECT" or "INTERFACE" or "UNION")
                return $"Field \"{name}\" of type \"{ft}\" must have a selection of subfields.";
        }
        return null;
    }
}
