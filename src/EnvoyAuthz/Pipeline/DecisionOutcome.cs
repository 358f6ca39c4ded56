using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// What the policy stage decided (the OPA-Envoy decision forms, already interpreted), or what an
/// earlier stage decided on its behalf (a bad token, a bad request).
/// </summary>
public sealed class DecisionOutcome
{
    /// <summary>Allow or deny.</summary>
    public required bool Allowed { get; init; }
    /// <summary>Why. <see cref="ReasonCode.Allowed"/> exactly when <see cref="Allowed"/>.</summary>
    public required ReasonCode Reason { get; init; }
    /// <summary>HTTP status of a deny; null means the reason's default.</summary>
    public int? HttpStatus { get; init; }
    /// <summary>Headers to set on the upstream request (allow) or the local reply (deny).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];
    /// <summary>Headers added to the downstream response on allow.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ResponseHeadersToAdd { get; init; } = [];
    /// <summary>Request headers to remove on allow.</summary>
    public IReadOnlyList<string> RequestHeadersToRemove { get; init; } = [];
    /// <summary>Query parameters to set on allow.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> QueryParametersToSet { get; init; } = [];
    /// <summary>Query parameters to remove on allow.</summary>
    public IReadOnlyList<string> QueryParametersToRemove { get; init; } = [];
    /// <summary>Dynamic metadata from the policy (an object), or null.</summary>
    public RegoObject? DynamicMetadata { get; init; }
    /// <summary>A deny body chosen by the policy, replacing the JSON error body.</summary>
    public string? Body { get; init; }
    /// <summary>A configured rate-limit rule the policy applies to this request (decision field <c>rate_limit</c>), or null.</summary>
    public string? RateLimitRule { get; init; }
    /// <summary>Safe, fixed-vocabulary detail for <c>WWW-Authenticate</c>'s <c>error_description</c>; never request data.</summary>
    public string? Detail { get; init; }

    /// <summary>A plain allow.</summary>
    public static DecisionOutcome Allow() => new() { Allowed = true, Reason = ReasonCode.Allowed };

    /// <summary>A deny with a reason.</summary>
    public static DecisionOutcome Deny(ReasonCode reason, string? detail = null, int? httpStatus = null) =>
        new() { Allowed = false, Reason = reason, Detail = detail, HttpStatus = httpStatus };
}
