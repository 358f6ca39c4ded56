using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Policy;

/// <summary>The built-in policy: allow iff a token validated.</summary>
public sealed class AuthenticatedPolicyEngine : IPolicyEngine
{
    /// <inheritdoc />
    public string Name => Configuration.PolicyEngines.Authenticated;

    /// <inheritdoc />
    public bool Ready => true;

    /// <inheritdoc />
    public bool NeedsInput => false;

    /// <inheritdoc />
    public ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult(PolicyResult.Of(RegoValue.From(context.Identity is not null)));
}
