using EnvoyAuthz.Rego.Evaluation;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>Rejects recursive rules and functions (OPA's rego_recursion_error) by finding cycles in the rule dependency graph.</summary>
internal static class RecursionCheck
{
    public static void Run(RuleNode root)
    {
        var nodes = new List<RuleNode>();
        Collect(root, nodes);
        var deps = new Dictionary<RuleNode, HashSet<RuleNode>>();
        foreach (var n in nodes)
        {
            var d = new HashSet<RuleNode>();
            foreach (var rule in RulesOf(n))
                for (var r = rule; r is not null; r = r.Else) RuleDeps(r, root, d);
            deps[n] = d;
        }
        var state = new Dictionary<RuleNode, int>(); // 1 = on stack, 2 = done
        var stack = new List<RuleNode>();
        foreach (var n in nodes) Visit(n, deps, state, stack);
    }

    private static void Visit(RuleNode n, Dictionary<RuleNode, HashSet<RuleNode>> deps, Dictionary<RuleNode, int> state, List<RuleNode> stack)
    {
        if (state.TryGetValue(n, out var s))
        {
            if (s == 1)
            {
                int i = stack.IndexOf(n);
                var cycle = stack.Skip(i).Append(n).Select(x => x.DottedPath);
                var first = RulesOf(n).FirstOrDefault();
                throw new CompileException("rego_recursion_error", first?.Loc ?? default, $"rule {n.DottedPath} is recursive: {string.Join(" -> ", cycle)}");
            }
            return;
        }
        state[n] = 1;
        stack.Add(n);
        foreach (var d in deps[n]) Visit(d, deps, state, stack);
        stack.RemoveAt(stack.Count - 1);
        state[n] = 2;
    }

    private static void Collect(RuleNode n, List<RuleNode> acc)
    {
        if (RulesOf(n).Any()) acc.Add(n);
        foreach (var c in n.Children.Values) Collect(c, acc);
    }

    private static IEnumerable<Rule> RulesOf(RuleNode n)
    {
        foreach (var r in n.Complete) yield return r;
        foreach (var r in n.PartialSet) yield return r;
        foreach (var r in n.ObjectRules) yield return r;
        foreach (var r in n.Functions) yield return r;
        if (n.Default is not null) yield return n.Default;
    }

    private static void RuleDeps(Rule r, RuleNode root, HashSet<RuleNode> acc)
    {
        if (r.Args is not null) foreach (var a in r.Args) TermDeps(a, root, acc);
        TermDeps(r.Value, root, acc);
        TermDeps(r.Key, root, acc);
        foreach (var t in r.DynamicSuffix) TermDeps(t, root, acc);
        BodyDeps(r.Body, root, acc);
    }

    private static void BodyDeps(Body b, RuleNode root, HashSet<RuleNode> acc)
    {
        foreach (var e in b.Exprs) ExprDeps(e, root, acc);
    }

    private static void ExprDeps(Expr e, RuleNode root, HashSet<RuleNode> acc)
    {
        TermDeps(e.Term, root, acc);
        TermDeps(e.Left, root, acc);
        TermDeps(e.Right, root, acc);
        TermDeps(e.Domain, root, acc);
        if (e.Inner is not null) ExprDeps(e.Inner, root, acc);
        if (e.Body is not null) BodyDeps(e.Body, root, acc);
        foreach (var w in e.With) TermDeps(w.Value, root, acc);
    }

    private static void TermDeps(Term? t, RuleNode root, HashSet<RuleNode> acc)
    {
        switch (t)
        {
            case null: return;
            case VarTerm { Name: "data" }:
                AllRules(root, acc);
                return;
            case RefTerm r:
                if (r.Head is VarTerm { Name: "data" }) RefDeps(r, root, acc);
                else TermDeps(r.Head, root, acc);
                foreach (var p in r.Path) TermDeps(p, root, acc);
                return;
            case ArrayTerm a: foreach (var i in a.Items) TermDeps(i, root, acc); return;
            case SetTerm s: foreach (var i in s.Items) TermDeps(i, root, acc); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { TermDeps(k, root, acc); TermDeps(v, root, acc); } return;
            case CallTerm c:
                if (c.IsUserFunction && c.Resolved is not null)
                {
                    var n = Find(root, c.Resolved);
                    if (n is not null) acc.Add(n);
                }
                foreach (var a in c.Args) TermDeps(a, root, acc);
                return;
            case ComprehensionTerm ct:
                TermDeps(ct.Head, root, acc);
                TermDeps(ct.Value, root, acc);
                BodyDeps(ct.Body, root, acc);
                return;
            case TemplateTerm tt:
                foreach (var p in tt.Parts) if (p is Expr pe) ExprDeps(pe, root, acc);
                return;
        }
    }

    private static RuleNode? Find(RuleNode root, string dotted)
    {
        var parts = dotted.Split('.');
        var n = root;
        for (int i = 1; i < parts.Length; i++)
            if (!n.Children.TryGetValue(new RegoString(parts[i]), out n!)) return null;
        return n;
    }

    private static void RefDeps(RefTerm r, RuleNode root, HashSet<RuleNode> acc) => Match(root, r.Path, 0, acc);

    private static void Match(RuleNode n, Term[] path, int i, HashSet<RuleNode> acc)
    {
        if (RulesOf(n).Any(x => x.Args is null)) { acc.Add(n); return; }
        if (i == path.Length) { AllRules(n, acc); return; }
        if (path[i] is ScalarTerm s)
        {
            if (n.Children.TryGetValue(s.Value, out var child)) Match(child, path, i + 1, acc);
            return;
        }
        foreach (var c in n.Children.Values) Match(c, path, i + 1, acc);
    }

    private static void AllRules(RuleNode n, HashSet<RuleNode> acc)
    {
        if (RulesOf(n).Any(x => x.Args is null)) acc.Add(n);
        foreach (var c in n.Children.Values) AllRules(c, acc);
    }
}
