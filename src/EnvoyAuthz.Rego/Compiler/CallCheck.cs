using EnvoyAuthz.Rego.Builtins;
using EnvoyAuthz.Rego.Evaluation;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>
/// OPA's type checker, as far as it can be known before evaluation: the number of arguments of every
/// call (a call standing alone as an expression may pass one more, its output), the argument types
/// of a builtin called with constant arguments, unification of literals that can never match, and
/// calls to builtins OPA v1 removed.
/// </summary>
internal static class CallCheck
{
    /// <summary>Builtins deprecated in OPA v1: calling one is a type error.</summary>
    private static readonly HashSet<string> Deprecated = new(StringComparer.Ordinal)
    {
        "any", "all", "re_match", "net.cidr_overlap", "set_diff",
        "cast_array", "cast_set", "cast_string", "cast_boolean", "cast_null", "cast_object",
    };

    /// <summary>Builtins never run at compile time: they depend on time, randomness, the outside, or print.</summary>
    private static bool NeverFold(BuiltinDef def) =>
        def.Nondeterministic || def.Relation || def.Name is "print" or "trace" or "http.send" or "opa.runtime" or "rego.parse_module"
        || def.Name.StartsWith("rego.metadata.", StringComparison.Ordinal) || def.Name.StartsWith("test.", StringComparison.Ordinal);

    public static void Rule(Rule r, IReadOnlyDictionary<string, RuleNode> functions)
    {
        Body(r.Body, functions);
        foreach (var t in r.DynamicSuffix) Term(t, functions);
        Term(r.Key, functions);
        Term(r.Value, functions);
    }

    public static void Body(Body b, IReadOnlyDictionary<string, RuleNode> functions)
    {
        foreach (var e in b.Exprs) Expr(e, functions);
    }

    private static void Expr(Expr e, IReadOnlyDictionary<string, RuleNode> functions)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (e.Kind)
        {
            case ExprKind.Term:
                if (e.Term is CallTerm c) Call(c, functions, statement: true);
                else Term(e.Term, functions);
                break;
            case ExprKind.Unify:
                Unify(e.Left!, e.Right!, e.Loc);
                Term(e.Left, functions);
                Term(e.Right, functions);
                break;
            case ExprKind.Assign:
                Unify(e.Left!, e.Right!, e.Loc);
                Term(e.Left, functions);
                Term(e.Right, functions);
                break;
            case ExprKind.Not:
                if (e.Inner is not null) Expr(e.Inner, functions);
                if (e.Body is not null) Body(e.Body, functions);
                break;
            case ExprKind.SomeIn:
                Term(e.Left, functions);
                Term(e.Right, functions);
                Term(e.Domain, functions);
                break;
            case ExprKind.Every:
                Term(e.Left, functions);
                Term(e.Right, functions);
                Term(e.Domain, functions);
                Body(e.Body!, functions);
                break;
        }
    }

    private static void Term(Term? t, IReadOnlyDictionary<string, RuleNode> functions)
    {
        switch (t)
        {
            case null or ScalarTerm or VarTerm: return;
            case RefTerm r:
                Term(r.Head, functions);
                foreach (var p in r.Path) Term(p, functions);
                return;
            case ArrayTerm a: foreach (var i in a.Items) Term(i, functions); return;
            case SetTerm s: foreach (var i in s.Items) Term(i, functions); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { Term(k, functions); Term(v, functions); } return;
            case CallTerm c: Call(c, functions, statement: false); return;
            case ComprehensionTerm ct:
                Term(ct.Head, functions);
                Term(ct.Value, functions);
                Body(ct.Body, functions);
                return;
            case TemplateTerm tt:
                foreach (var p in tt.Parts) if (p is Expr e) Expr(e, functions);
                return;
        }
    }

    private static void Call(CallTerm c, IReadOnlyDictionary<string, RuleNode> functions, bool statement)
    {
        foreach (var a in c.Args) Term(a, functions);
        var name = c.Resolved;
        if (name is null) return;
        int arity;
        BuiltinDef? def = null;
        if (c.IsUserFunction)
        {
            if (!functions.TryGetValue(name, out var node)) throw new CompileException("rego_type_error", c.Loc, $"undefined function {name}");
            arity = node.Arity;
        }
        else
        {
            if (!BuiltinRegistry.TryGet(name, out def)) return;
            if (Deprecated.Contains(name))
                throw new CompileException("rego_type_error", c.Loc, $"deprecated built-in function calls in expression: {name}");
            arity = def.Arity;
        }
        if (arity < 0) return; // variadic (print)
        var shown = Shown(name);
        if (c.Args.Length < arity)
            throw new CompileException("rego_type_error", c.Loc, $"{shown}: not enough arguments");
        // nested in a term a call has exactly its arguments; only as an expression may one more take its output
        if (c.Args.Length > arity + (statement ? 1 : 0))
            throw new CompileException("rego_type_error", c.Loc, $"{shown}: too many arguments");
        if (def is null || NeverFold(def)) return;
        var values = new RegoValue[arity];
        for (int i = 0; i < arity; i++)
            if ((values[i] = Constant(c.Args[i])!) is null) return;
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(250));
            def.Impl(new BuiltinContext(strict: true, cts.Token, () => 0, print: null), values);
        }
        catch (BuiltinException ex) when (ex.Code == "eval_type_error" && IsOperandType(ex.Message))
        {
            var detail = ex.Message.StartsWith(name + ": ", StringComparison.Ordinal) ? ex.Message[(name.Length + 2)..] : ex.Message;
            throw new CompileException("rego_type_error", c.Loc, $"{shown}: invalid argument(s): {detail}");
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or InsufficientExecutionStackException))
        {
            // anything else (a bad value, not a bad type) is the evaluation's to report
        }
    }

    /// <summary>An operand's type is wrong (as OPA's checker sees types), not its value.</summary>
    private static bool IsOperandType(string message) => OperandType.IsMatch(message);

    private static readonly System.Text.RegularExpressions.Regex OperandType = new(
        @"operand \d+ must be .+ but got (number|string|boolean|null|array|set|object)( containing (number|string|boolean|null|array|set|object))?$",
        System.Text.RegularExpressions.RegexOptions.CultureInvariant | System.Text.RegularExpressions.RegexOptions.NonBacktracking);

    private static string Shown(string name) => name switch
    {
        "internal.member_2" or "internal.member_3" => "internal.member",
        _ => name,
    };

    /// <summary>The value of a term without vars, refs or calls; null when it has any.</summary>
    internal static RegoValue? Constant(Term t)
    {
        switch (t)
        {
            case ScalarTerm s: return s.Value;
            case ArrayTerm a:
                {
                    var items = new RegoValue[a.Items.Length];
                    for (int i = 0; i < items.Length; i++) if ((items[i] = Constant(a.Items[i])!) is null) return null;
                    return new RegoArray(items);
                }
            case SetTerm s:
                {
                    var items = new RegoValue[s.Items.Length];
                    for (int i = 0; i < items.Length; i++) if ((items[i] = Constant(s.Items[i])!) is null) return null;
                    return RegoSet.From(items);
                }
            case ObjectTerm o:
                {
                    var b = new RegoObject.Builder();
                    foreach (var (k, v) in o.Items)
                    {
                        var kv = Constant(k);
                        var vv = Constant(v);
                        if (kv is null || vv is null) return null;
                        b.Add(kv, vv);
                    }
                    return b.Build();
                }
            default: return null;
        }
    }

    /// <summary>OPA's checker refuses to unify literals whose shapes can never match (arrays of different lengths, different kinds of term).</summary>
    private static void Unify(Term a, Term b, Loc loc)
    {
        var ka = Kind(a);
        var kb = Kind(b);
        if (ka is null || kb is null) return;
        if (ka != kb)
            throw new CompileException("rego_type_error", loc, $"match error\n\tleft  : {ka}\n\tright : {kb}");
        if (a is ArrayTerm aa && b is ArrayTerm ab)
        {
            if (aa.Items.Length != ab.Items.Length)
                throw new CompileException("rego_type_error", loc, $"match error\n\tleft  : array of {aa.Items.Length}\n\tright : array of {ab.Items.Length}");
            for (int i = 0; i < aa.Items.Length; i++) Unify(aa.Items[i], ab.Items[i], loc);
        }
    }

    /// <summary>The kind of a literal term, or null when it could be anything (var, ref, call, ...).</summary>
    private static string? Kind(Term t) => t switch
    {
        ScalarTerm { Value: var v } => v.TypeName,
        ArrayTerm => "array",
        ObjectTerm => "object",
        SetTerm => "set",
        ComprehensionTerm { Kind: ComprehensionKind.Array } => "array",
        ComprehensionTerm { Kind: ComprehensionKind.Set } => "set",
        ComprehensionTerm => "object",
        TemplateTerm => "string",
        _ => null,
    };
}
