using EnvoyAuthz.Rego.Evaluation;

namespace EnvoyAuthz.Rego;

/// <summary>
/// A compiled Rego policy (modules + base data).
/// <para><b>Thread safety:</b> a <see cref="RegoPolicy"/> is immutable after compilation and may be shared by any number
/// of concurrent evaluations. All per-evaluation state (variable bindings, rule-value caches, <c>with</c> overrides,
/// limits, the clock reading for <c>time.now_ns</c>) lives in a private evaluation context created per call to
/// <see cref="Evaluate"/> or <see cref="Query"/>. Values passed in and returned are immutable.</para>
/// <para><b>Safety:</b> evaluation never throws for policy or input content: errors, limits (time, steps, output size,
/// depth) and cancellation are reported in the result.</para>
/// </summary>
public sealed class RegoPolicy
{
    internal RegoPolicy(CompiledPolicy compiled) => Compiled = compiled;

    internal CompiledPolicy Compiled { get; }

    /// <summary>The base document the policy was compiled with.</summary>
    public RegoValue Data => Compiled.BaseData;

    /// <summary>Evaluates a document reference such as <c>data.envoy.authz.allow</c>.</summary>
    /// <param name="refPath">A ref starting with <c>data</c> (or <c>input</c>).</param>
    /// <param name="input">The input document; null = no input.</param>
    /// <param name="options">Options; null = defaults.</param>
    public RegoEvalResult Evaluate(string refPath, RegoValue? input, RegoEvalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(refPath);
        return Engine.EvaluateRef(Compiled, refPath, input, options ?? RegoEvalOptions.Default);
    }

    /// <summary>Evaluates a query body (e.g. <c>x := data.a.b; x &gt; 1</c>) and returns all solutions.</summary>
    public RegoQueryResult Query(string query, RegoValue? input, RegoEvalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        return Engine.Query(Compiled, query, input, options ?? RegoEvalOptions.Default);
    }
}
