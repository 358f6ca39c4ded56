using EnvoyAuthz.Rego.Evaluation;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>
/// Compiles modules: parse → build the rule tree → resolve names (package rules, imports, builtins) →
/// safety check and body reordering → recursion check.
/// </summary>
internal static class PolicyCompiler
{
    public static RegoCompileResult Compile(IReadOnlyList<RegoModuleSource> sources, RegoValue data, RegoCompileOptions options)
    {
        var errors = new List<RegoCompileError>();
        var modules = new List<Module>();
        var wild = new Parser.WildcardCounter();
        // 1. parse
        foreach (var src in sources)
        {
            if (src.Source.Length > options.MaxModuleBytes)
            {
                errors.Add(new("rego_parse_error", src.Name, 0, 0, "module too large"));
                continue;
            }
            try
            {
                modules.Add(Parser.ParseModule(src.Name, src.Source, options.MaxNestingDepth, wild));
            }
            catch (RegoParseException ex)
            {
                errors.Add(new("rego_parse_error", src.Name, ex.Line, ex.Col, ex.Message));
            }
            catch (InsufficientExecutionStackException)
            {
                errors.Add(new("rego_parse_error", src.Name, 0, 0, "nesting too deep"));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                errors.Add(new("rego_parse_error", src.Name, 0, 0, "internal parser error: " + ex.Message));
            }
        }
        if (errors.Count > 0) return new RegoCompileResult(null, errors);
        if (data is not RegoObject) return new RegoCompileResult(null, [new("rego_compile_error", "data", 0, 0, "data must be an object")]);

        try
        {
            var policy = Build(modules, data, errors, options);
            if (errors.Count > 0) return new RegoCompileResult(null, errors);
            return new RegoCompileResult(new RegoPolicy(policy!), []);
        }
        catch (CompileException ex)
        {
            errors.Add(new(ex.Code, ex.Loc.File, ex.Loc.Line, ex.Loc.Col, ex.Message));
            return new RegoCompileResult(null, errors);
        }
        catch (InsufficientExecutionStackException)
        {
            errors.Add(new("rego_compile_error", sources.Count > 0 ? sources[0].Name : "", 0, 0, "policy too deeply nested"));
            return new RegoCompileResult(null, errors);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            errors.Add(new("rego_compile_error", sources.Count > 0 ? sources[0].Name : "", 0, 0, "internal compiler error: " + ex.Message));
            return new RegoCompileResult(null, errors);
        }
    }

    private static CompiledPolicy? Build(List<Module> modules, RegoValue data, List<RegoCompileError> errors, RegoCompileOptions options)
    {
        int nextId = 0;
        var root = new RuleNode(null, null, nextId++);
        var functions = new Dictionary<string, RuleNode>(StringComparer.Ordinal);
        var packageRuleNames = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);

        // 2. package paths and rule placement
        foreach (var m in modules)
        {
            if (m.Package.Head is not VarTerm { Name: var first }) throw new CompileException("rego_parse_error", m.Package.Loc, "invalid package");
            m.PackagePath.Add(new RegoString(first));
            foreach (var p in m.Package.Path)
            {
                if (p is not ScalarTerm { Value: RegoString }) throw new CompileException("rego_parse_error", p.Loc, "invalid package path");
                m.PackagePath.Add(((ScalarTerm)p).Value);
            }
            var pkgKey = PkgKey(m.PackagePath);
            if (!packageRuleNames.TryGetValue(pkgKey, out var names)) packageRuleNames[pkgKey] = names = new(StringComparer.Ordinal);
            foreach (var r in m.Rules)
            {
                var ruleName = ((VarTerm)r.HeadRef.Head).Name;
                if (Vars.IsRoot(ruleName))
                    throw new CompileException("rego_compile_error", r.Loc, $"rules must not shadow {ruleName} (use a different rule name)");
                if (r.Args is not null)
                    foreach (var a in r.Args)
                        if (a is VarTerm { Name: var an } && Vars.IsRoot(an))
                            throw new CompileException("rego_compile_error", a.Loc, $"args must not shadow {an} (use a different variable name)");
                names.Add(ruleName);
            }
            var importNames = new Dictionary<string, Import>(StringComparer.Ordinal);
            foreach (var imp in m.Imports)
            {
                var head = ((VarTerm)imp.Path.Head).Name;
                if (head is "future" or "rego") continue;
                var name = imp.Alias ?? (imp.Path.Path.Length > 0 && imp.Path.Path[^1] is ScalarTerm { Value: RegoString ls } ? ls.Value : head);
                if (importNames.TryGetValue(name, out var before))
                    throw new CompileException("rego_compile_error", imp.Loc, $"import must not shadow import {Resolver.DottedName(before.Path)}{(before.Alias is null ? "" : " as " + before.Alias)}");
                importNames[name] = imp;
            }
        }

        foreach (var m in modules)
        {
            var pn = root;
            foreach (var key in m.PackagePath)
            {
                if (!pn.Children.TryGetValue(key, out var child))
                {
                    child = new RuleNode(key, pn, nextId++);
                    pn.Children[key] = child;
                }
                pn = child;
            }
            if (m.PackageAnnotations is not null) pn.PackageAnnotations = m.PackageAnnotations;
            foreach (var rule in m.Rules)
            {
                var full = new List<Term>();
                foreach (var p in m.PackagePath) full.Add(new ScalarTerm(p) { Loc = rule.Loc });
                full.Add(new ScalarTerm(new RegoString(((VarTerm)rule.HeadRef.Head).Name)) { Loc = rule.Loc });
                full.AddRange(rule.HeadRef.Path);
                int g = 0;
                while (g < full.Count && full[g] is ScalarTerm) g++;
                // a partial set / multi-value rule keeps its last ground element as its node
                if (rule.IsContains && g < full.Count)
                {
                    // dynamic prefix with contains: object of sets
                }
                if (rule.Args is not null || rule.IsContains || rule.Value is not null || g == full.Count)
                {
                    // fine
                }
                else if (g < full.Count && rule.Value is null && !rule.IsContains && rule.HeadRef.Path.Length == 1 && !rule.IsDefault)
                {
                    // v1: `p[x] if ...` is a partial object with value true (handled as object rule below)
                }
                rule.Path = full.Take(g).Select(t => ((ScalarTerm)t).Value).ToList();
                rule.DynamicSuffix = full.Skip(g).ToArray();
                if (rule.Args is not null)
                {
                    if (rule.DynamicSuffix.Length > 0) throw new CompileException("rego_type_error", rule.Loc, "functions must have ground references");
                    rule.Kind = RuleKind.Function;
                }
                else if (rule.IsContains) rule.Kind = RuleKind.PartialSet;
                else rule.Kind = RuleKind.Complete;

                var node = root;
                foreach (var key in rule.Path)
                {
                    if (!node.Children.TryGetValue(key, out var child))
                    {
                        child = new RuleNode(key, node, nextId++);
                        node.Children[key] = child;
                    }
                    node = child;
                }
                if (rule.IsDefault)
                {
                    if (node.Default is not null)
                        throw new CompileException("rego_type_error", rule.Loc, $"multiple default rules {node.DottedPath} found");
                    node.Default = rule;
                    if (rule.Args is not null) node.Arity = rule.Args.Length;
                    continue;
                }
                if (rule.Kind == RuleKind.Function)
                {
                    if (node.Arity >= 0 && node.Arity != rule.Args!.Length)
                        throw new CompileException("rego_type_error", rule.Loc, $"conflicting rules {node.DottedPath} found");
                    node.Arity = rule.Args!.Length;
                    node.Functions.Add(rule);
                }
                else if (rule.DynamicSuffix.Length > 0) node.ObjectRules.Add(rule);
                else if (rule.Kind == RuleKind.PartialSet) node.PartialSet.Add(rule);
                else node.Complete.Add(rule);
            }
        }

        // function index
        void IndexFunctions(RuleNode n)
        {
            if (n.IsFunction) functions[n.DottedPath] = n;
            if (n.HasRules && n.IsFunction)
                throw new CompileException("rego_type_error", (n.Complete.FirstOrDefault() ?? n.Functions[0]).Loc, $"conflicting rules {n.DottedPath} found");
            if (n.Complete.Count > 0 && (n.PartialSet.Count > 0 || n.ObjectRules.Count > 0))
                throw new CompileException("rego_type_error", n.Complete[0].Loc, $"conflicting rules {n.DottedPath} found");
            foreach (var c in n.Children.Values) IndexFunctions(c);
        }
        IndexFunctions(root);

        // a package inside (or at) the path of a rule would hide one of them (OPA: conflicts)
        foreach (var m in modules)
        {
            var node = root;
            foreach (var key in m.PackagePath)
            {
                node = node.Children[key];
                var rule = node.Complete.FirstOrDefault() ?? node.PartialSet.FirstOrDefault() ?? node.ObjectRules.FirstOrDefault() ?? node.Functions.FirstOrDefault() ?? node.Default;
                if (rule is not null)
                    throw new CompileException("rego_type_error", m.Package.Loc, $"package {string.Join('.', ["data", .. m.PackagePath.Select(p => ((RegoString)p).Value)])} conflicts with rule {node.DottedPath} defined at {rule.Loc}");
            }
        }

        // 3. resolve names, 4. reorder
        foreach (var m in modules)
        {
            var aliases = new Dictionary<string, RefTerm>(StringComparer.Ordinal);
            foreach (var imp in m.Imports)
            {
                var head = ((VarTerm)imp.Path.Head).Name;
                if (head is "future" or "rego") continue;
                if (head != "data" && head != "input") throw new CompileException("rego_parse_error", imp.Loc, "invalid import path");
                string alias = imp.Alias ?? (imp.Path.Path.Length > 0 && imp.Path.Path[^1] is ScalarTerm { Value: RegoString ls } ? ls.Value : head);
                aliases[alias] = imp.Path;
            }
            var resolver = new Resolver(m.PackagePath, packageRuleNames[PkgKey(m.PackagePath)], aliases, functions.ContainsKey, options.AllowTestBuiltins);
            foreach (var rule in m.Rules)
            {
                for (var r = rule; r is not null; r = r.Else)
                {
                    if (r != rule) { r.Path = rule.Path; r.DynamicSuffix = rule.DynamicSuffix; r.Kind = rule.Kind; r.IsContains = rule.IsContains; }
                    resolver.ResolveRule(r);
                    if (r != rule) r.Args = rule.Args;
                    else if (r.Args is not null && r.Else is null)
                    {
                        // non-pattern arguments (template strings, refs, calls, comprehensions) are compared after the body binds their vars
                        for (int i = 0; i < r.Args.Length; i++)
                        {
                            if (r.Args[i] is not (TemplateTerm or RefTerm or CallTerm or ComprehensionTerm)) continue;
                            var fresh = new VarTerm(Resolver.Fresh("arg")) { Loc = r.Args[i].Loc };
                            r.Body.Exprs.Add(new Expr { Kind = ExprKind.Unify, Left = fresh, Right = r.Args[i], Loc = r.Args[i].Loc, Index = r.Body.Exprs.Count });
                            r.Args[i] = fresh;
                        }
                    }
                    CallCheck.Rule(r, functions);
                    var bound = new HashSet<string>(StringComparer.Ordinal);
                    if (r.Args is not null) foreach (var a in r.Args) Vars.All(a, bound);
                    var outer = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var t in r.DynamicSuffix) Vars.All(t, outer);
                    Vars.All(r.Key, outer);
                    Vars.All(r.Value, outer);
                    var after = Reorder.Body(r.Body, bound, outer);
                    var headVars = new HashSet<string>(StringComparer.Ordinal);
                    var noOuter = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var t in r.DynamicSuffix) Vars.Inputs(t, false, headVars, noOuter);
                    Vars.Inputs(r.Key, false, headVars, noOuter);
                    Vars.Inputs(r.Value, false, headVars, noOuter);
                    // comprehension-local vars in the head are not required
                    foreach (var v in headVars)
                        if (!after.Contains(v) && !IsInHeadComprehensionOnly(r, v))
                            throw new CompileException("rego_unsafe_var_error", r.Loc, $"var {v} is unsafe");
                    ReorderHeadNested(r, after);
                }
            }
        }
        RecursionCheck.Run(root);
        RuleIndexer.IndexTree(root);
        return new CompiledPolicy(data, root, functions, nextId) { AllowTestBuiltins = options.AllowTestBuiltins };
    }

    private static bool IsInHeadComprehensionOnly(Rule r, string v)
    {
        var top = new HashSet<string>();
        foreach (var t in r.DynamicSuffix) TopVars(t, top);
        TopVars(r.Key, top);
        TopVars(r.Value, top);
        return !top.Contains(v);
    }

    private static void TopVars(Term? t, HashSet<string> acc)
    {
        switch (t)
        {
            case null: return;
            case VarTerm v: acc.Add(v.Name); return;
            case RefTerm r: TopVars(r.Head, acc); foreach (var p in r.Path) TopVars(p, acc); return;
            case ArrayTerm a: foreach (var i in a.Items) TopVars(i, acc); return;
            case SetTerm s: foreach (var i in s.Items) TopVars(i, acc); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { TopVars(k, acc); TopVars(v, acc); } return;
            case CallTerm c: foreach (var a in c.Args) TopVars(a, acc); return;
        }
    }

    private static void ReorderHeadNested(Rule r, HashSet<string> bound)
    {
        // comprehensions in the head are evaluated after the body
        var tmp = new List<Expr>();
        foreach (var t in r.DynamicSuffix) tmp.Add(new Expr { Kind = ExprKind.Term, Term = t });
        if (r.Key is not null) tmp.Add(new Expr { Kind = ExprKind.Term, Term = r.Key });
        if (r.Value is not null) tmp.Add(new Expr { Kind = ExprKind.Term, Term = r.Value });
        foreach (var e in tmp)
        {
            if (!ContainsNested(e.Term)) continue;
            var b = new Body([e]);
            try { Reorder.Body(b, bound); }
            catch (CompileException) { /* head term safety handled above */ }
        }
    }

    private static bool ContainsNested(Term? t) => t switch
    {
        ComprehensionTerm or TemplateTerm => true,
        RefTerm r => ContainsNested(r.Head) || r.Path.Any(ContainsNested),
        ArrayTerm a => a.Items.Any(ContainsNested),
        SetTerm s => s.Items.Any(ContainsNested),
        ObjectTerm o => o.Items.Any(i => ContainsNested(i.Key) || ContainsNested(i.Value)),
        CallTerm c => c.Args.Any(ContainsNested),
        _ => false,
    };

    private static string PkgKey(List<RegoValue> path) => string.Join('\u0001', path.Select(p => p.ToString()));

    /// <summary>Compiles an ad-hoc query against a policy.</summary>
    public static Body CompileQuery(CompiledPolicy policy, string query, out List<string> vars)
    {
        var wild = new Parser.WildcardCounter { N = 1_000_000 };
        var body = Parser.ParseQuery(query, 512, wild);
        var resolver = new Resolver([], new HashSet<string>(), new Dictionary<string, RefTerm>(), policy.Functions.ContainsKey, policy.AllowTestBuiltins);
        resolver.ResolveQuery(body);
        CallCheck.Body(body, policy.Functions);
        var all = new List<string>();
        var seen = new HashSet<string>();
        foreach (var e in body.Exprs) CollectQueryVars(e, all, seen);
        Reorder.Body(body, new HashSet<string>());
        vars = all;
        return body;
    }

    private static void CollectQueryVars(Expr e, List<string> acc, HashSet<string> seen)
    {
        var s = new List<string>();
        void T(Term? t)
        {
            switch (t)
            {
                case null: return;
                case VarTerm v: if (!Vars.IsRoot(v.Name) && !v.Name.StartsWith('$')) s.Add(v.Name); return;
                case RefTerm r: T(r.Head); foreach (var p in r.Path) T(p); return;
                case ArrayTerm a: foreach (var i in a.Items) T(i); return;
                case SetTerm st: foreach (var i in st.Items) T(i); return;
                case ObjectTerm o: foreach (var (k, v) in o.Items) { T(k); T(v); } return;
                case CallTerm c: foreach (var a in c.Args) T(a); return;
            }
        }
        switch (e.Kind)
        {
            case ExprKind.Not: case ExprKind.Every: return;
            case ExprKind.SomeDecl: foreach (var d in e.DeclVars!) if (!d.StartsWith('$')) s.Add(d); break;
        }
        T(e.Term); T(e.Left); T(e.Right); T(e.Domain);
        foreach (var n in s) if (seen.Add(n)) acc.Add(n);
    }
}
