using EnvoyAuthz.Rego.Evaluation;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Compiler;

/// <summary>
/// Rule indexing: when several rules of one document each require <c>input.path == constant</c>, the evaluator looks
/// the input value up once and evaluates only the rules whose constant matches (plus rules without such a condition).
/// </summary>
internal static class RuleIndexer
{
    private const int MinRules = 3;

    public static void IndexTree(RuleNode n)
    {
        n.CompleteIndex = Build(n.Complete);
        n.PartialSetIndex = Build(n.PartialSet);
        n.ObjectIndex = Build(n.ObjectRules);
        foreach (var c in n.Children.Values) IndexTree(c);
    }

    public static RuleIndex? Build(List<Rule> rules)
    {
        if (rules.Count < MinRules) return null;
        var conditions = new List<Dictionary<string, (RegoValue[] Path, RegoValue Value)>>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in rules)
        {
            var conds = new Dictionary<string, (RegoValue[], RegoValue)>(StringComparer.Ordinal);
            if (r.Else is null)
            {
                foreach (var e in r.Body.Exprs)
                {
                    if (e.With.Length > 0) continue;
                    if (TryCondition(e, out var path, out var value))
                    {
                        var key = string.Join('\u0001', path.Select(p => p.ToString()));
                        if (conds.ContainsKey(key)) continue;
                        conds[key] = (path, value);
                        counts[key] = counts.GetValueOrDefault(key) + 1;
                    }
                }
            }
            conditions.Add(conds);
        }
        if (counts.Count == 0) return null;
        var best = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).First();
        if (best.Value < 2) return null;
        RegoValue[]? bestPath = null;
        var byValue = new Dictionary<RegoValue, List<int>>();
        var always = new List<int>();
        for (int i = 0; i < rules.Count; i++)
        {
            if (conditions[i].TryGetValue(best.Key, out var c))
            {
                bestPath ??= c.Path;
                if (!byValue.TryGetValue(c.Value, out var list)) byValue[c.Value] = list = [];
                list.Add(i);
            }
            else always.Add(i);
        }
        return new RuleIndex(bestPath!, byValue.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray()), always.ToArray());
    }

    private static bool TryCondition(Expr e, out RegoValue[] path, out RegoValue value)
    {
        path = [];
        value = null!;
        Term? a = null, b = null;
        if (e.Kind == ExprKind.Unify) { a = e.Left; b = e.Right; }
        else if (e.Kind == ExprKind.Term && e.Term is CallTerm { Resolved: "equal", IsUserFunction: false, Args.Length: 2 } c) { a = c.Args[0]; b = c.Args[1]; }
        if (a is null || b is null) return false;
        if (a is ScalarTerm) (a, b) = (b, a);
        if (a is not RefTerm { Head: VarTerm { Name: "input" } } r || b is not ScalarTerm s) return false;
        var p = new RegoValue[r.Path.Length];
        for (int i = 0; i < p.Length; i++)
        {
            if (r.Path[i] is not ScalarTerm ps) return false;
            p[i] = ps.Value;
        }
        path = p;
        value = s.Value;
        return true;
    }
}

/// <summary>Index of the rules of one document on one input path.</summary>
internal sealed class RuleIndex(RegoValue[] path, Dictionary<RegoValue, int[]> byValue, int[] always)
{
    public RegoValue[] Path { get; } = path;
    public Dictionary<RegoValue, int[]> ByValue { get; } = byValue;
    public int[] Always { get; } = always;

    /// <summary>Indices of the rules that may succeed for this input, in rule order.</summary>
    public IReadOnlyList<int> Candidates(RegoValue? input)
    {
        RegoValue? v = input;
        foreach (var k in Path)
        {
            if (v is null) break;
            v = v switch
            {
                RegoObject o => o.TryGetValue(k, out var x) ? x : null,
                RegoArray a => k is RegoNumber n && n.TryGetInt64(out var i) && i >= 0 && i < a.Count ? a[(int)i] : null,
                RegoSet s => s.Contains(k) ? k : null,
                _ => null,
            };
        }
        if (v is null || !ByValue.TryGetValue(v, out var matched)) return Always;
        if (Always.Length == 0) return matched;
        var merged = new int[matched.Length + Always.Length];
        matched.CopyTo(merged, 0);
        Always.CopyTo(merged, matched.Length);
        Array.Sort(merged);
        return merged;
    }
}
