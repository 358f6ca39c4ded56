namespace EnvoyAuthz.Pipeline;

/// <summary>
/// The fixed set of decision reasons: the only values of the <c>reason</c> metric label, the
/// <c>reason</c> of decision logs and of deny bodies. Never derived from request data.
/// </summary>
public enum ReasonCode
{
    /// <summary>The policy allowed the request.</summary>
    Allowed,
    /// <summary>No token was presented and the policy requires one.</summary>
    MissingToken,
    /// <summary>A token was presented but is malformed, badly signed or otherwise unacceptable.</summary>
    InvalidToken,
    /// <summary>The token's <c>exp</c> has passed (beyond the clock skew).</summary>
    ExpiredToken,
    /// <summary>The token's issuer is not configured.</summary>
    UntrustedIssuer,
    /// <summary>The token names none of the issuer's accepted audiences.</summary>
    WrongAudience,
    /// <summary>The policy denied the request.</summary>
    PolicyDenied,
    /// <summary>The policy failed to evaluate, or its decision was malformed.</summary>
    PolicyError,
    /// <summary>The request concerns an Airflow connection that is not known.</summary>
    UnknownConnection,
    /// <summary>A dependency (IdP, Airflow API, remote OPA) could not answer.</summary>
    DependencyUnavailable,
    /// <summary>The service is shedding load.</summary>
    Overloaded,
    /// <summary>A rate limit was exceeded.</summary>
    RateLimited,
    /// <summary>The CheckRequest itself is malformed.</summary>
    BadRequest,
    /// <summary>An unexpected fault inside the service.</summary>
    InternalError,
}

/// <summary>Wire names of <see cref="ReasonCode"/>.</summary>
public static class ReasonCodes
{
    private static readonly string[] Names =
    [
        "allowed", "missing_token", "invalid_token", "expired_token", "untrusted_issuer", "wrong_audience",
        "policy_denied", "policy_error", "unknown_connection", "dependency_unavailable", "overloaded",
        "rate_limited", "bad_request", "internal_error",
    ];

    private static readonly Dictionary<string, ReasonCode> ByName =
        Enum.GetValues<ReasonCode>().ToDictionary(r => Names[(int)r], StringComparer.Ordinal);

    /// <summary>The snake_case name used in metrics, logs and bodies.</summary>
    public static string ToWire(this ReasonCode reason) => Names[(int)reason];

    /// <summary>Parses a wire name; unknown names are not reasons.</summary>
    public static bool TryParse(string? name, out ReasonCode reason)
    {
        if (name is not null && ByName.TryGetValue(name, out reason))
        {
            return true;
        }
        reason = default;
        return false;
    }

    /// <summary>Every wire name, in enum order.</summary>
    public static IReadOnlyList<string> All => Names;

    /// <summary>The HTTP status a deny with this reason gets unless the policy chose one.</summary>
    public static int DefaultHttpStatus(this ReasonCode reason) => reason switch
    {
        ReasonCode.Allowed => 200,
        ReasonCode.MissingToken or ReasonCode.InvalidToken or ReasonCode.ExpiredToken or
            ReasonCode.UntrustedIssuer or ReasonCode.WrongAudience => 401,
        ReasonCode.RateLimited => 429,
        ReasonCode.DependencyUnavailable or ReasonCode.Overloaded or ReasonCode.InternalError or
            ReasonCode.PolicyError => 503,
        ReasonCode.BadRequest => 400,
        _ => 403,
    };

    /// <summary>Whether the reason is about the caller's credentials (answered with <c>WWW-Authenticate</c>).</summary>
    public static bool IsAuthenticationFailure(this ReasonCode reason) => reason.DefaultHttpStatus() == 401;
}
