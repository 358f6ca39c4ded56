using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Policy;

/// <summary>Stage 4: the input document → a decision.</summary>
public interface IPolicyEngine
{
    /// <summary>Engine name, as configured.</summary>
    string Name { get; }

    /// <summary>True when the engine has a policy to evaluate.</summary>
    bool Ready { get; }

    /// <summary>Whether <see cref="EvaluateAsync"/> reads <see cref="PolicyContext.Input"/> (lets the pipeline skip building it).</summary>
    bool NeedsInput { get; }

    /// <summary>Decides. Never throws for policy or input content: failures are a <see cref="PolicyResult"/> error.</summary>
    ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken);
}

/// <summary>What a policy engine sees.</summary>
public sealed class PolicyContext
{
    /// <summary>The request.</summary>
    public required AuthzRequest Request { get; init; }
    /// <summary>The validated identity, if any.</summary>
    public CallerIdentity? Identity { get; init; }
    /// <summary>The input document, when the engine needs it.</summary>
    public RegoObject? Input { get; init; }
}

/// <summary>A decision value from the policy (boolean or object form), or an error.</summary>
public readonly record struct PolicyResult(RegoValue? Decision, ReasonCode? ErrorReason, string? ErrorDetail)
{
    /// <summary>The policy produced a value (null = undefined = deny).</summary>
    public static PolicyResult Of(RegoValue? decision) => new(decision, null, null);

    /// <summary>The policy could not decide.</summary>
    public static PolicyResult Error(ReasonCode reason, string detail) => new(null, reason, detail);
}
