using EnvoyAuthz.Rego.Builtins;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

internal sealed class CompileException(string code, Loc loc, string message) : Exception(message)
{
    public string Code { get; } = code;
    public Loc Loc { get; } = loc;
}

/// <summary>Resolves names (rules of the package, imports, builtins) and renames scoped locals.</summary>
internal sealed class Resolver
{
    private readonly List<RegoValue> _package;
    private readonly HashSet<string> _ruleNames;
    private readonly Dictionary<string, RefTerm> _aliases;
    private readonly Func<string, bool> _isUserFunction;
    private readonly bool _allowTestBuiltins;
    private static int s_fresh;

    /// <summary>Builtins only the test runner and OPA's conformance harness may call (OPA keeps them out of its capabilities).</summary>
    internal static readonly HashSet<string> TestOnlyBuiltins = new(StringComparer.Ordinal) { "test.sleep" };

    /// <summary>How a name first occurred in a body: OPA refuses to declare it (again) with <c>:=</c>, <c>some</c> or <c>some .. in</c> afterwards.</summary>
    private enum Occurrence { Seen, Assigned, Declared, Arg }

    private sealed class Scope(Scope? parent)
    {
        public readonly Scope? Parent = parent;
        public readonly Dictionary<string, string> Declared = new();
        public readonly HashSet<string> AllDeclared = new();
        public readonly Dictionary<string, Occurrence> Occurrences = new(StringComparer.Ordinal);
        public bool Rename;

        public bool IsPending(string name)
        {
            for (var s = this; s is not null; s = s.Parent)
                if (s.AllDeclared.Contains(name) && !s.Declared.ContainsKey(name)) return true;
            return false;
        }

        public bool TryLookup(string name, out string renamed)
        {
            for (var s = this; s is not null; s = s.Parent)
                if (s.Declared.TryGetValue(name, out renamed!)) return true;
            renamed = name;
            return false;
        }
    }

    public Resolver(List<RegoValue> package, HashSet<string> ruleNames, Dictionary<string, RefTerm> aliases, Func<string, bool> isUserFunction, bool allowTestBuiltins = false)
    {
        _package = package;
        _ruleNames = ruleNames;
        _aliases = aliases;
        _isUserFunction = isUserFunction;
        _allowTestBuiltins = allowTestBuiltins;
    }

    public static string Fresh(string name) => "$" + name + "$" + Interlocked.Increment(ref s_fresh);

    public void ResolveRule(Rule rule)
    {
        var scope = new Scope(null);
        if (rule.Args is not null)
        {
            var argVars = new HashSet<string>();
            foreach (var a in rule.Args) Vars.All(a, argVars);
            foreach (var v in argVars)
            {
                scope.Declared[v] = v;
                scope.Occurrences[v] = Occurrence.Arg;
            }
        }
        if (rule.Args is not null) for (int i = 0; i < rule.Args.Length; i++) rule.Args[i] = Term(rule.Args[i], scope, argPattern: true);
        ResolveBodyExprs(rule.Body, scope);
        for (int i = 0; i < rule.DynamicSuffix.Length; i++) rule.DynamicSuffix[i] = Term(rule.DynamicSuffix[i], scope);
        if (rule.Key is not null) rule.Key = Term(rule.Key, scope);
        if (rule.Value is not null) rule.Value = Term(rule.Value, scope);
    }

    public Body ResolveQuery(Body body)
    {
        var scope = new Scope(null);
        ResolveBodyExprs(body, scope);
        return body;
    }

    private static HashSet<string> DeclaredNames(Body body)
    {
        var names = new HashSet<string>();
        foreach (var e in body.Exprs) ExprDeclared(e, names);
        return names;
    }

    private static void ExprDeclared(Expr e, HashSet<string> names)
    {
        switch (e.Kind)
        {
            case ExprKind.SomeDecl: foreach (var d in e.DeclVars!) names.Add(d); break;
            case ExprKind.SomeIn: Vars.Pattern(e.Left, names); Vars.Pattern(e.Right, names); break;
            case ExprKind.Assign: Vars.Pattern(e.Left, names); break;
        }
        names.RemoveWhere(n => n.StartsWith("$_", StringComparison.Ordinal));
    }

    private static void DeclareExpr(Expr e, Scope scope)
    {
        var names = new HashSet<string>();
        ExprDeclared(e, names);
        var now = e.Kind == ExprKind.SomeDecl ? Occurrence.Declared : Occurrence.Assigned;
        foreach (var n in names)
        {
            // OPA (rewriteDeclaredVar): a name is declared once per body, and never after it was used
            if (scope.Occurrences.TryGetValue(n, out var before))
            {
                throw new CompileException("rego_compile_error", e.Loc, before switch
                {
                    Occurrence.Seen => $"var {n} referenced above",
                    Occurrence.Assigned => $"var {n} assigned above",
                    Occurrence.Declared => $"var {n} declared above",
                    _ => $"arg {n} redeclared",
                });
            }
            scope.Occurrences[n] = now;
            scope.Declared[n] = scope.Rename ? Fresh(n) : n;
        }
    }

    /// <summary>OPA's checks on the target of <c>:=</c>: a var (not a root document), or an array or object of them.</summary>
    private static void CheckAssignTarget(Expr e)
    {
        switch (e.Left)
        {
            case VarTerm { Name: var n } when Vars.IsRoot(n):
                throw new CompileException("rego_compile_error", e.Loc, $"variables must not shadow {n} (use a different variable name)");
            case VarTerm or ArrayTerm or ObjectTerm:
                return;
            default:
                throw new CompileException("rego_compile_error", e.Loc, $"cannot assign to {TypeName(e.Left)}");
        }
    }

    internal static string TypeName(Term? t) => t switch
    {
        ScalarTerm { Value: var v } => v.TypeName,
        RefTerm => "ref",
        CallTerm => "call",
        SetTerm => "set",
        ComprehensionTerm { Kind: ComprehensionKind.Array } => "arraycomprehension",
        ComprehensionTerm { Kind: ComprehensionKind.Set } => "setcomprehension",
        ComprehensionTerm => "objectcomprehension",
        TemplateTerm => "templatestring",
        _ => "term",
    };

    private void ResolveBodyExprs(Body body, Scope scope)
    {
        scope.AllDeclared.UnionWith(DeclaredNames(body));
        foreach (var e in body.Exprs) ResolveExpr(e, scope);
    }

    private static Scope NestedScope(Scope outer, Term? a, Term? b, Body body)
    {
        var inner = new Scope(outer) { Rename = true };
        var all = new HashSet<string>();
        Vars.All(a, all);
        Vars.All(b, all);
        Vars.All(body, all);
        var declaredInside = DeclaredNames(body);
        foreach (var v in all)
            if (!declaredInside.Contains(v) && !outer.TryLookup(v, out _) && outer.IsPending(v))
                inner.Declared[v] = Fresh(v);
        return inner;
    }

    private void ResolveExpr(Expr e, Scope scope)
    {
        switch (e.Kind)
        {
            case ExprKind.Term: e.Term = Term(e.Term!, scope); break;
            case ExprKind.Unify:
                e.Left = Term(e.Left!, scope);
                e.Right = Term(e.Right!, scope);
                break;
            case ExprKind.Assign:
                CheckAssignTarget(e);
                e.Right = Term(e.Right!, scope);
                DeclareExpr(e, scope);
                e.Left = Term(e.Left!, scope);
                break;
            case ExprKind.Not:
                if (e.Body is not null)
                {
                    var inner = NestedScope(scope, null, null, e.Body);
                    ResolveBodyExprs(e.Body, inner);
                }
                else ResolveExpr(e.Inner!, scope);
                break;
            case ExprKind.SomeDecl:
                DeclareExpr(e, scope);
                for (int i = 0; i < e.DeclVars!.Length; i++) { scope.TryLookup(e.DeclVars[i], out var r); e.DeclVars[i] = r; }
                break;
            case ExprKind.SomeIn:
                e.Domain = Term(e.Domain!, scope);
                DeclareExpr(e, scope);
                if (e.Left is not null) e.Left = Term(e.Left, scope);
                e.Right = Term(e.Right!, scope);
                break;
            case ExprKind.Every:
                {
                    e.Domain = Term(e.Domain!, scope);
                    var inner = NestedScope(scope, null, null, e.Body!);
                    var names = new HashSet<string>();
                    Vars.Pattern(e.Left, names);
                    Vars.Pattern(e.Right, names);
                    foreach (var n in names)
                    {
                        if (n.StartsWith("$_", StringComparison.Ordinal)) continue;
                        inner.Declared[n] = Fresh(n);
                        inner.Occurrences[n] = Occurrence.Assigned;
                    }
                    if (e.Left is not null) e.Left = Term(e.Left, inner);
                    e.Right = Term(e.Right!, inner);
                    ResolveBodyExprs(e.Body!, inner);
                    break;
                }
        }
        foreach (var w in e.With)
        {
            w.Target = WithTarget(w.Target, scope);
            w.Value = WithValue(w.Value, scope);
        }
    }

    private Term WithTarget(Term t, Scope scope)
    {
        // input..., data..., rule names, builtin/function names
        var name = DottedName(t);
        if (name is not null)
        {
            var first = name.Split('.')[0];
            if (first == "input" || first == "data") return t;
            if (_ruleNames.Contains(first) || _aliases.ContainsKey(first)) return Term(t, scope);
            return t; // builtin name, kept as-is
        }
        return Term(t, scope);
    }

    private Term WithValue(Term t, Scope scope)
    {
        var name = DottedName(t);
        if (name is not null && !scope.TryLookup(name.Split('.')[0], out _))
        {
            var first = name.Split('.')[0];
            if (!_ruleNames.Contains(first) && !_aliases.ContainsKey(first) && first != "input" && first != "data" && BuiltinRegistry.TryGet(name, out _))
                return new CallTerm(t, []) { Loc = t.Loc, Resolved = name, IsUserFunction = false, Name = t };
        }
        var r = Term(t, scope);
        return r;
    }

    internal static string? DottedName(Term t)
    {
        if (t is VarTerm v) return v.Name;
        if (t is RefTerm r && r.Head is VarTerm hv)
        {
            var parts = new List<string> { hv.Name };
            foreach (var p in r.Path)
            {
                if (p is ScalarTerm { Value: RegoString s }) parts.Add(s.Value);
                else return null;
            }
            return string.Join('.', parts);
        }
        return null;
    }

    private Term Term(Term t, Scope scope, bool argPattern = false)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (t)
        {
            case ScalarTerm: return t;
            case VarTerm v:
                {
                    if (scope.TryLookup(v.Name, out var renamed)) return renamed == v.Name ? v : new VarTerm(renamed) { Loc = v.Loc };
                    if (v.IsWildcard || argPattern) return v;
                    if (Vars.IsRoot(v.Name)) return v;
                    // an import wins over a rule of the package with the same first name (OPA resolves imports first)
                    if (_aliases.TryGetValue(v.Name, out var alias))
                        return new RefTerm(new VarTerm(((VarTerm)alias.Head).Name) { Loc = v.Loc }, alias.Path) { Loc = v.Loc };
                    if (_ruleNames.Contains(v.Name))
                        return new RefTerm(new VarTerm("data") { Loc = v.Loc }, PackagePath(v.Loc, v.Name)) { Loc = v.Loc };
                    if (!v.IsGenerated) scope.Occurrences.TryAdd(v.Name, Occurrence.Seen);
                    return v;
                }
            case RefTerm r:
                {
                    var head = Term(r.Head, scope);
                    var path = new Term[r.Path.Length];
                    for (int i = 0; i < path.Length; i++) path[i] = Term(r.Path[i], scope);
                    if (head is RefTerm hr)
                    {
                        var p = new Term[hr.Path.Length + path.Length];
                        hr.Path.CopyTo(p, 0);
                        path.CopyTo(p, hr.Path.Length);
                        return new RefTerm(hr.Head, p) { Loc = r.Loc };
                    }
                    return new RefTerm(head, path) { Loc = r.Loc };
                }
            case ArrayTerm a:
                {
                    var items = new Term[a.Items.Length];
                    for (int i = 0; i < items.Length; i++) items[i] = Term(a.Items[i], scope, argPattern);
                    return new ArrayTerm(items) { Loc = a.Loc };
                }
            case SetTerm s:
                {
                    var items = new Term[s.Items.Length];
                    for (int i = 0; i < items.Length; i++) items[i] = Term(s.Items[i], scope, argPattern);
                    return new SetTerm(items) { Loc = s.Loc };
                }
            case ObjectTerm o:
                {
                    var items = new (Term, Term)[o.Items.Length];
                    for (int i = 0; i < items.Length; i++) items[i] = (Term(o.Items[i].Key, scope), Term(o.Items[i].Value, scope, argPattern));
                    return new ObjectTerm(items) { Loc = o.Loc };
                }
            case CallTerm c:
                {
                    if (c.Resolved is not null) return c;
                    var args = new Term[c.Args.Length];
                    for (int i = 0; i < args.Length; i++) args[i] = Term(c.Args[i], scope);
                    var call = new CallTerm(c.Name, args) { Loc = c.Loc };
                    ResolveCallName(call, scope);
                    return call;
                }
            case ComprehensionTerm ct:
                {
                    var inner = NestedScope(scope, ct.Head, ct.Value, ct.Body);
                    // undeclared vars local to the comprehension (not visible outside) stay as they are
                    ResolveBodyExprs(ct.Body, inner);
                    var head = Term(ct.Head, inner);
                    var val = ct.Value is null ? null : Term(ct.Value, inner);
                    return new ComprehensionTerm(ct.Kind, head, val, ct.Body) { Loc = ct.Loc };
                }
            case TemplateTerm tt:
                {
                    foreach (var p in tt.Parts) if (p is Expr e) ResolveExpr(e, scope);
                    return tt;
                }
        }
        return t;
    }

    private Term[] PackagePath(Loc loc, string name)
    {
        var path = new Term[_package.Count];
        for (int i = 0; i < _package.Count; i++) path[i] = new ScalarTerm(_package[i]) { Loc = loc };
        Array.Resize(ref path, path.Length + 1);
        path[^1] = new ScalarTerm(new RegoString(name)) { Loc = loc };
        return path;
    }

    private void ResolveCallName(CallTerm c, Scope scope)
    {
        var name = DottedName(c.Name) ?? throw new CompileException("rego_parse_error", c.Loc, "invalid function name");
        var parts = name.Split('.');
        string? path = null;
        if (scope.TryLookup(parts[0], out _) && !Vars.IsRoot(parts[0]))
            throw new CompileException("rego_type_error", c.Loc, $"undefined function {name}");
        if (parts[0] == "data") path = name;
        else if (_aliases.TryGetValue(parts[0], out var alias))
        {
            var an = DottedName(alias);
            if (an is not null) path = an + (parts.Length > 1 ? "." + string.Join('.', parts[1..]) : "");
        }
        else if (_ruleNames.Contains(parts[0]))
            path = "data." + string.Join('.', _package.Select(p => ((RegoString)p).Value)) + "." + name;
        if (path is not null && _isUserFunction(path))
        {
            c.Resolved = path;
            c.IsUserFunction = true;
            return;
        }
        if (BuiltinRegistry.TryGet(name, out _) && (_allowTestBuiltins || !TestOnlyBuiltins.Contains(name)))
        {
            c.Resolved = name;
            return;
        }
        // a data path that is no function (a rule, a prefix of rules, nothing) cannot be called, even in a branch that never runs
        throw new CompileException("rego_type_error", c.Loc, $"undefined function {path ?? name}");
    }
}
