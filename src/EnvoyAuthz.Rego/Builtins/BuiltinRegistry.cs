using System.Collections.Frozen;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>Implementation of a builtin: returns the result, or null for undefined; throws <see cref="BuiltinException"/> on error.</summary>
internal delegate RegoValue? BuiltinImpl(BuiltinContext ctx, RegoValue[] args);

/// <summary>A builtin function: name, arity, implementation and whether it is nondeterministic (e.g. time, random).</summary>
/// <remarks>A relational builtin (<see cref="Relation"/>, e.g. <c>walk</c>) returns an array of all its outputs; the evaluator iterates them.</remarks>
internal sealed record BuiltinDef(string Name, int Arity, BuiltinImpl Impl, bool Nondeterministic = false, bool Relation = false);

/// <summary>An error raised by a builtin (<c>eval_builtin_error</c> or <c>eval_type_error</c>).</summary>
internal sealed class BuiltinException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;

    public static BuiltinException Error(string fn, string message) => new("eval_builtin_error", $"{fn}: {message}");

    public static BuiltinException Type(string fn, int operand, string expected, RegoValue got) =>
        new("eval_type_error", $"{fn}: operand {operand} must be {expected} but got {got.TypeName}");

    public static BuiltinException TypeMsg(string fn, string message) => new("eval_type_error", $"{fn}: {message}");
}

/// <summary>Per-evaluation facilities available to builtins.</summary>
internal sealed class BuiltinContext
{
    private readonly Func<long> _now;
    private long? _nowNs;

    public BuiltinContext(bool strict, CancellationToken ct, Func<long> now, Action<string>? print, RegoHost? host = null)
    {
        StrictBuiltinErrors = strict;
        CancellationToken = ct;
        _now = now;
        Print = print;
        Host = host;
    }

    /// <summary>Outside access granted by the caller, or null.</summary>
    public RegoHost? Host { get; }

    public bool StrictBuiltinErrors { get; }
    public CancellationToken CancellationToken { get; }
    public Action<string>? Print { get; }

    /// <summary>Time in ns since the epoch, fixed for one evaluation.</summary>
    public long NowNs => _nowNs ??= _now();

    /// <summary>Per-evaluation cache for builtins (e.g. compiled regexes, parsed keys).</summary>
    public Dictionary<object, object> Cache => _cache ??= new();

    private Dictionary<object, object>? _cache;
}

/// <summary>The one table of builtins: name → definition. Each category file contributes its entries.</summary>
internal static class BuiltinRegistry
{
    private static readonly FrozenDictionary<string, BuiltinDef> Table = Build();

    private static FrozenDictionary<string, BuiltinDef> Build()
    {
        var r = new Dictionary<string, BuiltinDef>(StringComparer.Ordinal);
        Comparison.Register(r);
        Arithmetic.Register(r);
        Aggregates.Register(r);
        Types.Register(r);
        Strings.Register(r);
        Collections.Register(r);
        Objects.Register(r);
        EncodingBuiltins.Register(r);
        Misc.Register(r);
        Units.Register(r);
        RegexBuiltins.Register(r);
        Glob.Register(r);
        Jwt.Register(r);
        Json.Register(r);
        Net.Register(r);
        Time.Register(r);
        Url.Register(r);
        Bits.Register(r);
        Crypto.Register(r);
        Semver.Register(r);
        Graph.Register(r);
        Uuid.Register(r);
        Providers.Register(r);
        X509.Register(r);
        JsonSchema.Register(r);
        Template.Register(r);
        Yaml.Register(r);
        GlobIntersection.Register(r);
        Graphql.Register(r);
        return r.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public static bool TryGet(string name, out BuiltinDef def) => Table.TryGetValue(name, out def!);

    public static IEnumerable<string> Names => Table.Keys;

    internal static void Add(Dictionary<string, BuiltinDef> r, string name, int arity, BuiltinImpl impl, bool nondeterministic = false, bool relation = false) =>
        r[name] = new BuiltinDef(name, arity, impl, nondeterministic, relation);
}

/// <summary>Argument helpers that raise OPA-style operand type errors.</summary>
internal static class Arg
{
    public static string Str(string fn, RegoValue[] a, int i) =>
        a[i] is RegoString s ? s.Value : throw BuiltinException.Type(fn, i + 1, "string", a[i]);

    public static RegoNumber Num(string fn, RegoValue[] a, int i) =>
        a[i] is RegoNumber n ? n : throw BuiltinException.Type(fn, i + 1, "number", a[i]);

    public static RegoArray Arr(string fn, RegoValue[] a, int i) =>
        a[i] is RegoArray x ? x : throw BuiltinException.Type(fn, i + 1, "array", a[i]);

    public static RegoSet Set(string fn, RegoValue[] a, int i) =>
        a[i] is RegoSet x ? x : throw BuiltinException.Type(fn, i + 1, "set", a[i]);

    public static RegoObject Obj(string fn, RegoValue[] a, int i) =>
        a[i] is RegoObject x ? x : throw BuiltinException.Type(fn, i + 1, "object", a[i]);

    public static bool Bool(string fn, RegoValue[] a, int i) =>
        a[i] is RegoBoolean x ? x.Value : throw BuiltinException.Type(fn, i + 1, "boolean", a[i]);

    public static int Int(string fn, RegoValue[] a, int i)
    {
        var n = Num(fn, a, i);
        if (!n.IsInteger) throw BuiltinException.TypeMsg(fn, $"operand {i + 1} must be integer number but got floating-point number");
        if (!n.TryGetInt32(out int v)) throw BuiltinException.Error(fn, $"operand {i + 1} out of range");
        return v;
    }

    /// <summary>Elements of an array or set.</summary>
    public static RegoValue[] Collection(string fn, RegoValue[] a, int i, string expected = "one of {array, set}") => a[i] switch
    {
        RegoArray arr => arr.Items,
        RegoSet s => s.Items,
        _ => throw BuiltinException.Type(fn, i + 1, expected, a[i]),
    };

    public static RegoValue S(string s) => new RegoString(s);
    public static RegoValue N(long n) => RegoNumber.FromInt64(n);
    public static RegoValue B(bool b) => RegoValue.From(b);
}
