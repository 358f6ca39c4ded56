using EnvoyAuthz.Rego.Evaluation;

namespace EnvoyAuthz.Rego;

/// <summary>A rule of a compiled policy: its full reference and where it is defined.</summary>
/// <param name="Ref">The rule's reference, e.g. <c>data.envoy.authz_test.test_allow</c>.</param>
/// <param name="File">The module that defines it (first definition).</param>
/// <param name="Line">Line of the first definition (1-based).</param>
/// <param name="IsFunction">True for functions (rules with arguments).</param>
public sealed record RegoRuleInfo(string Ref, string File, int Line, bool IsFunction);

/// <summary>Read-only views of a compiled policy, for tooling (<c>policy test</c>, listings).</summary>
public static class RegoIntrospection
{
    /// <summary>Every rule of the policy, in reference order.</summary>
    public static IReadOnlyList<RegoRuleInfo> Rules(this RegoPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var result = new List<RegoRuleInfo>();
        Walk(policy.Compiled.Root, result);
        result.Sort((a, b) => string.CompareOrdinal(a.Ref, b.Ref));
        return result;
    }

    private static void Walk(RuleNode node, List<RegoRuleInfo> result)
    {
        var first = node.Complete.Concat(node.PartialSet).Concat(node.ObjectRules).Concat(node.Functions)
            .Concat(node.Default is { } d ? [d] : [])
            .OrderBy(r => r.File, StringComparer.Ordinal).ThenBy(r => r.Loc.Line)
            .FirstOrDefault();
        if (first is not null)
        {
            result.Add(new RegoRuleInfo(node.DottedPath, first.File, first.Loc.Line, node.IsFunction));
        }
        foreach (var child in node.Children.Values)
        {
            Walk(child, result);
        }
    }
}
