using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>Variable collection helpers over the AST.</summary>
internal static class Vars
{
    public static bool IsRoot(string name) => name == "data" || name == "input";

    /// <summary>All local variable names occurring in a term (including nested bodies).</summary>
    public static void All(Term? t, HashSet<string> acc)
    {
        switch (t)
        {
            case null: return;
            case VarTerm v:
                if (!IsRoot(v.Name)) acc.Add(v.Name);
                return;
            case RefTerm r:
                All(r.Head, acc);
                foreach (var p in r.Path) All(p, acc);
                return;
            case ArrayTerm a: foreach (var i in a.Items) All(i, acc); return;
            case SetTerm s: foreach (var i in s.Items) All(i, acc); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { All(k, acc); All(v, acc); } return;
            case CallTerm c: foreach (var a in c.Args) All(a, acc); return;
            case ComprehensionTerm ct:
                All(ct.Head, acc);
                All(ct.Value, acc);
                All(ct.Body, acc);
                return;
            case TemplateTerm tt:
                foreach (var p in tt.Parts) if (p is Expr e) All(e, acc);
                return;
        }
    }

    public static void All(Body b, HashSet<string> acc)
    {
        foreach (var e in b.Exprs) All(e, acc);
    }

    public static void All(Expr e, HashSet<string> acc)
    {
        All(e.Term, acc);
        All(e.Left, acc);
        All(e.Right, acc);
        All(e.Domain, acc);
        if (e.Inner is not null) All(e.Inner, acc);
        if (e.Body is not null) All(e.Body, acc);
        if (e.DeclVars is not null) foreach (var d in e.DeclVars) acc.Add(d);
        foreach (var w in e.With) { All(w.Value, acc); }
    }

    /// <summary>Vars in pattern positions of a term (bare vars, and inside array/object/set literals).</summary>
    public static void Pattern(Term? t, HashSet<string> acc)
    {
        switch (t)
        {
            case VarTerm v when !IsRoot(v.Name): acc.Add(v.Name); return;
            case ArrayTerm a: foreach (var i in a.Items) Pattern(i, acc); return;
            case SetTerm s: foreach (var i in s.Items) Pattern(i, acc); return;
            case ObjectTerm o: foreach (var (_, v) in o.Items) Pattern(v, acc); return;
        }
    }

    /// <summary>Vars that must be bound before a term can be evaluated (in the given position).</summary>
    /// <param name="t">Term.</param>
    /// <param name="pattern">True when bare vars in this position are outputs.</param>
    /// <param name="acc">Accumulator.</param>
    /// <param name="outer">Vars of the enclosing body used to decide closure vars of comprehensions.</param>
    public static void Inputs(Term? t, bool pattern, HashSet<string> acc, HashSet<string> outer) => Inputs(t, pattern, acc, outer.Contains);

    public static void Inputs(Term? t, bool pattern, HashSet<string> acc, Func<string, bool> outer)
    {
        switch (t)
        {
            case null: return;
            case VarTerm v:
                if (!pattern && !IsRoot(v.Name)) acc.Add(v.Name);
                return;
            case RefTerm r:
                if (r.Head is VarTerm hv) { if (!IsRoot(hv.Name)) acc.Add(hv.Name); }
                else Inputs(r.Head, false, acc, outer);
                foreach (var p in r.Path) Inputs(p, true, acc, outer);
                return;
            case ArrayTerm a: foreach (var i in a.Items) Inputs(i, pattern, acc, outer); return;
            case SetTerm s: foreach (var i in s.Items) Inputs(i, false, acc, outer); return;
            case ObjectTerm o: foreach (var (k, v) in o.Items) { Inputs(k, false, acc, outer); Inputs(v, pattern, acc, outer); } return;
            case CallTerm c: foreach (var a in c.Args) Inputs(a, false, acc, outer); return;
            case ComprehensionTerm or TemplateTerm:
                {
                    var all = new HashSet<string>();
                    All(t, all);
                    foreach (var n in all) if (outer(n)) acc.Add(n);
                    return;
                }
        }
    }
}
