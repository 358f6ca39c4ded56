using EnvoyAuthz.Rego.Builtins;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>Safety analysis and body reordering: each expression runs after the expressions that bind its inputs.</summary>
internal static class Reorder
{
    /// <summary>Reorders a body in place; returns the set of vars bound after it.</summary>
    public static HashSet<string> Body(Body body, HashSet<string> bound, HashSet<string>? enclosingOuter = null) =>
        Body(body, bound, enclosingOuter is null ? null : enclosingOuter.Contains);

    public static HashSet<string> Body(Body body, HashSet<string> bound, Func<string, bool>? enclosingOuter)
    {
        // vars used anywhere in this body: used to find closure vars of nested comprehensions
        var perExpr = new List<HashSet<string>>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in body.Exprs)
        {
            // vars of the expression outside nested scopes (comprehensions, every, not): a var that only occurs inside
            // nested scopes of different expressions is local to each of them
            var s = new HashSet<string>();
            TopLevelVars(e.Term, s);
            TopLevelVars(e.Left, s);
            TopLevelVars(e.Right, s);
            TopLevelVars(e.Domain, s);
            foreach (var w in e.With) TopLevelVars(w.Value, s);
            if (e.Kind == ExprKind.Not && e.Inner is not null)
            {
                TopLevelVars(e.Inner.Term, s);
                TopLevelVars(e.Inner.Left, s);
                TopLevelVars(e.Inner.Right, s);
            }
            perExpr.Add(s);
            foreach (var v in s) counts[v] = counts.GetValueOrDefault(v) + 1;
        }
        var boundAtStart = new HashSet<string>(bound);
        Func<string, bool> OthersFor(int idx) => v =>
            boundAtStart.Contains(v) || (enclosingOuter?.Invoke(v) ?? false) ||
            counts.GetValueOrDefault(v) - (perExpr[idx].Contains(v) ? 1 : 0) > 0;
        var remaining = new List<int>(Enumerable.Range(0, body.Exprs.Count));
        var result = new List<Expr>(body.Exprs.Count);
        var b = new HashSet<string>(bound);
        while (remaining.Count > 0)
        {
            int pick = -1;
            int pickPos = -1;
            HashSet<string>? missingFirst = null;
            for (int ri = 0; ri < remaining.Count; ri++)
            {
                var idx = remaining[ri];
                var missing = Missing(body.Exprs[idx], b, OthersFor(idx));
                if (missing.Count == 0) { pick = idx; pickPos = ri; break; }
                missingFirst ??= missing;
            }
            if (pick < 0)
            {
                var e0 = body.Exprs[remaining[0]];
                var name = missingFirst!.Where(n => !n.StartsWith('$')).OrderBy(n => n, StringComparer.Ordinal).FirstOrDefault()
                           ?? missingFirst!.OrderBy(n => n, StringComparer.Ordinal).First();
                throw new CompileException("rego_unsafe_var_error", e0.Loc, $"var {DisplayName(name)} is unsafe");
            }
            remaining.RemoveAt(pickPos);
            var e = body.Exprs[pick];
            Nested(e, b, OthersFor(pick));
            result.Add(e);
            Bind(e, b);
        }
        body.Exprs = result;
        return b;
    }

    private static string DisplayName(string n)
    {
        if (n.StartsWith("$_", StringComparison.Ordinal)) return "_";
        if (n.StartsWith('$'))
        {
            var parts = n.Split('$', StringSplitOptions.RemoveEmptyEntries);
            return parts.Length > 0 ? parts[0] : n;
        }
        return n;
    }

    private static void Bind(Expr e, HashSet<string> b)
    {
        switch (e.Kind)
        {
            case ExprKind.Not:
            case ExprKind.Every:
            case ExprKind.SomeDecl:
                return;
            default:
                {
                    var s = new HashSet<string>();
                    Vars.All(e.Term, s);
                    Vars.All(e.Left, s);
                    Vars.All(e.Right, s);
                    Vars.All(e.Domain, s);
                    // vars declared only inside comprehensions are not bound by the expression
                    var inner = new HashSet<string>();
                    CollectComprehensionOnly(e, inner);
                    foreach (var v in s) if (!inner.Contains(v) || b.Contains(v)) b.Add(v);
                    foreach (var v in s) if (!inner.Contains(v)) b.Add(v);
                    return;
                }
        }
    }

    private static void CollectComprehensionOnly(Expr e, HashSet<string> acc)
    {
        var top = new HashSet<string>();
        TopLevelVars(e.Term, top);
        TopLevelVars(e.Left, top);
        TopLevelVars(e.Right, top);
        TopLevelVars(e.Domain, top);
        var all = new HashSet<string>();
        Vars.All(e.Term, all);
        Vars.All(e.Left, all);
        Vars.All(e.Right, all);
        Vars.All(e.Domain, all);
        foreach (var v in all) if (!top.Contains(v)) acc.Add(v);
    }

    /// <summary>Vars outside comprehension bodies / templates.</summary>
    private static void TopLevelVars(Term? t, HashSet<string> acc)
    {
        switch (t)
        {
            case null: return;
            case VarTerm v: if (!Vars.IsRoot(v.Name)) acc.Add(v.Name); return;
            case RefTerm r: TopLevelVars(r.Head, acc); foreach (var p in r.Path) TopLevelVars(p, acc); return;
            case ArrayTerm a: foreach (var i in a.Items) TopLevelVars(i, acc); return;
            case SetTerm s: foreach (var i in s.Items) TopLevelVars(i, acc); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { TopLevelVars(k, acc); TopLevelVars(v, acc); } return;
            case CallTerm c: foreach (var a in c.Args) TopLevelVars(a, acc); return;
        }
    }

    private static HashSet<string> Missing(Expr e, HashSet<string> b, Func<string, bool> others)
    {
        var need = new HashSet<string>();
        switch (e.Kind)
        {
            case ExprKind.SomeDecl:
                break;
            case ExprKind.Term:
                TermNeeds(e.Term!, need, others);
                break;
            case ExprKind.Unify:
            case ExprKind.Assign:
                {
                    Vars.Inputs(e.Left, true, need, others);
                    Vars.Inputs(e.Right, true, need, others);
                    var lp = new HashSet<string>();
                    var rp = new HashSet<string>();
                    Vars.Pattern(e.Left, lp);
                    Vars.Pattern(e.Right, rp);
                    lp.ExceptWith(b);
                    rp.ExceptWith(b);
                    if (lp.Count > 0 && rp.Count > 0 && !PairwiseOk(e.Left!, e.Right!, b))
                    {
                        need.UnionWith(lp.Count <= rp.Count ? lp : rp);
                    }
                    break;
                }
            case ExprKind.Not when e.Body is not null:
                {
                    var s = new HashSet<string>();
                    Vars.All(e.Body, s);
                    foreach (var v in s) if (others(v)) need.Add(v);
                    break;
                }
            case ExprKind.Not:
                {
                    var s = new HashSet<string>();
                    Vars.All(e.Inner!, s);
                    foreach (var v in s) if (others(v) || !IsLocalToNot(v)) need.Add(v);
                    // `not` binds nothing; vars used only inside are locals (wildcards, generated)
                    need.RemoveWhere(v => !others(v) && IsLocalToNot(v));
                    foreach (var w in e.Inner!.With) Vars.Inputs(w.Value, false, need, others);
                    var innerNeed = Missing(e.Inner!, b, others);
                    need.UnionWith(innerNeed.Where(v => others(v)));
                    break;
                }
            case ExprKind.SomeIn:
                Vars.Inputs(e.Domain, false, need, others);
                Vars.Inputs(e.Left, true, need, others);
                Vars.Inputs(e.Right, true, need, others);
                break;
            case ExprKind.Every:
                {
                    Vars.Inputs(e.Domain, false, need, others);
                    var s = new HashSet<string>();
                    Vars.All(e.Body!, s);
                    foreach (var v in s) if (others(v)) need.Add(v);
                    break;
                }
        }
        foreach (var w in e.With) Vars.Inputs(w.Value, false, need, others);
        need.ExceptWith(b);
        return need;
    }

    private static bool IsLocalToNot(string v) => true;

    private static bool PairwiseOk(Term l, Term r, HashSet<string> b)
    {
        if (l is ArrayTerm la && r is ArrayTerm ra && la.Items.Length == ra.Items.Length)
        {
            for (int i = 0; i < la.Items.Length; i++)
            {
                var lp = new HashSet<string>();
                var rp = new HashSet<string>();
                Vars.Pattern(la.Items[i], lp);
                Vars.Pattern(ra.Items[i], rp);
                lp.ExceptWith(b);
                rp.ExceptWith(b);
                if (lp.Count > 0 && rp.Count > 0 && !PairwiseOk(la.Items[i], ra.Items[i], b)) return false;
            }
            return true;
        }
        if (l is ObjectTerm lo && r is ObjectTerm ro && lo.Items.Length == ro.Items.Length) return true;
        return false;
    }

    private static void TermNeeds(Term t, HashSet<string> need, Func<string, bool> others)
    {
        if (t is CallTerm c && !c.IsUserFunction && c.Resolved is not null && BuiltinRegistry.TryGet(c.Resolved, out var def) && c.Args.Length == def.Arity + 1)
        {
            for (int i = 0; i < c.Args.Length - 1; i++) Vars.Inputs(c.Args[i], false, need, others);
            Vars.Inputs(c.Args[^1], true, need, others);
            return;
        }
        if (t is CallTerm uc && uc.IsUserFunction)
        {
            // the last argument may be an output when the function has one fewer parameter; resolved at runtime
            for (int i = 0; i < uc.Args.Length - 1; i++) Vars.Inputs(uc.Args[i], false, need, others);
            if (uc.Args.Length > 0)
            {
                var last = uc.Args[^1];
                if (last is VarTerm) { /* possibly output */ }
                else Vars.Inputs(last, false, need, others);
            }
            return;
        }
        Vars.Inputs(t, false, need, others);
        if (t is CallTerm call)
        {
            var refVars = new HashSet<string>();
            foreach (var a in call.Args) RefPathVars(a, refVars);
            need.ExceptWith(refVars);
        }
    }

    private static void RefPathVars(Term? t, HashSet<string> acc)
    {
        switch (t)
        {
            case RefTerm r:
                foreach (var p in r.Path) { if (p is VarTerm v) acc.Add(v.Name); else RefPathVars(p, acc); }
                RefPathVars(r.Head, acc);
                return;
            case CallTerm c: foreach (var a in c.Args) RefPathVars(a, acc); return;
            case ArrayTerm a: foreach (var i in a.Items) RefPathVars(i, acc); return;
        }
    }

    /// <summary>Reorders nested bodies (comprehensions, every, not) given the vars bound so far.</summary>
    private static void Nested(Expr e, HashSet<string> b, Func<string, bool> others)
    {
        NestedTerm(e.Term, b, others);
        NestedTerm(e.Left, b, others);
        NestedTerm(e.Right, b, others);
        NestedTerm(e.Domain, b, others);
        foreach (var w in e.With) NestedTerm(w.Value, b, others);
        if (e.Inner is not null)
        {
            var body = new Body([e.Inner]);
            Body(body, b, others);
        }
        if (e.Body is not null)
        {
            var inner = new HashSet<string>(b);
            Vars.Pattern(e.Left, inner);
            Vars.Pattern(e.Right, inner);
            Body(e.Body, inner, others);
        }
    }

    private static void NestedTerm(Term? t, HashSet<string> b, Func<string, bool> others)
    {
        switch (t)
        {
            case null: return;
            case RefTerm r: NestedTerm(r.Head, b, others); foreach (var p in r.Path) NestedTerm(p, b, others); return;
            case ArrayTerm a: foreach (var i in a.Items) NestedTerm(i, b, others); return;
            case SetTerm s: foreach (var i in s.Items) NestedTerm(i, b, others); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { NestedTerm(k, b, others); NestedTerm(v, b, others); } return;
            case CallTerm c: foreach (var a in c.Args) NestedTerm(a, b, others); return;
            case ComprehensionTerm ct:
                {
                    var after = Body(ct.Body, b, others);
                    var headNeed = new HashSet<string>();
                    Vars.All(ct.Head, headNeed);
                    Vars.All(ct.Value, headNeed);
                    headNeed.ExceptWith(after);
                    // head vars must be bound by the body
                    foreach (var v in headNeed)
                        throw new CompileException("rego_unsafe_var_error", ct.Loc, $"var {DisplayName(v)} is unsafe");
                    NestedTerm(ct.Head, after, others);
                    NestedTerm(ct.Value, after, others);
                    return;
                }
            case TemplateTerm tt:
                foreach (var p in tt.Parts)
                    if (p is Expr pe)
                    {
                        var body = new Body([pe]);
                        Body(body, b, others);
                    }
                return;
        }
    }
}
