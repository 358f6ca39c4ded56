using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Identity;

/// <summary>A validated token's identity, as <c>input.identity</c> shows it. Holds no token.</summary>
public sealed class CallerIdentity
{
    /// <summary>Configured name of the issuer (metric label).</summary>
    public required string IssuerName { get; init; }
    /// <summary>The <c>iss</c> claim.</summary>
    public required string Issuer { get; init; }
    /// <summary>The <c>sub</c> claim, or empty.</summary>
    public required string Subject { get; init; }
    /// <summary>The <c>aud</c> claim as an array.</summary>
    public required IReadOnlyList<string> Audience { get; init; }
    /// <summary>The OAuth client, from the configured client-id claims.</summary>
    public string? ClientId { get; init; }
    /// <summary>Scopes, from space-separated strings or arrays.</summary>
    public required IReadOnlyList<string> Scopes { get; init; }
    /// <summary>Groups.</summary>
    public required IReadOnlyList<string> Groups { get; init; }
    /// <summary>Roles.</summary>
    public required IReadOnlyList<string> Roles { get; init; }
    /// <summary>The <c>exp</c> claim.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }
    /// <summary>All claims of the token payload.</summary>
    public required RegoObject Claims { get; init; }
    /// <summary>The RFC 8693 <c>act</c> claim, when present.</summary>
    public RegoValue? Actor { get; init; }

    /// <summary><c>input.identity</c>, built once per validated token and cached with it.</summary>
    public RegoObject InputValue => _inputValue ??= BuildInputValue();
    private RegoObject? _inputValue;

    private RegoObject BuildInputValue()
    {
        var b = new RegoObject.Builder(10)
            .Add("issuer", RegoValue.From(Issuer))
            .Add("subject", RegoValue.From(Subject))
            .Add("audience", Strings(Audience))
            .Add("client_id", ClientId is null ? RegoValue.Null : RegoValue.From(ClientId))
            .Add("scopes", Strings(Scopes))
            .Add("groups", Strings(Groups))
            .Add("roles", Strings(Roles))
            .Add("expires_at", RegoValue.From(ExpiresAt.ToUnixTimeSeconds()))
            .Add("claims", Claims);
        if (Actor is not null)
        {
            b.Add("actor", Actor);
        }
        return b.Build();
    }

    private static RegoArray Strings(IReadOnlyList<string> values)
    {
        var items = new RegoValue[values.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = RegoValue.From(values[i]);
        }
        return RegoArray.From(items);
    }
}

/// <summary>Outcome of the identity stage.</summary>
public enum IdentityStatus
{
    /// <summary>No token was presented.</summary>
    Missing,
    /// <summary>A token validated.</summary>
    Valid,
    /// <summary>A token was presented and rejected.</summary>
    Invalid,
    /// <summary>The token could not be checked because the issuer's keys could not be had.</summary>
    Unavailable,
}

/// <summary>The identity stage's result: a status, the identity when valid, the reason otherwise.</summary>
public readonly record struct IdentityResult(IdentityStatus Status, CallerIdentity? Identity, Pipeline.ReasonCode Reason, string? Detail)
{
    /// <summary>No token.</summary>
    public static IdentityResult Missing { get; } = new(IdentityStatus.Missing, null, Pipeline.ReasonCode.MissingToken, null);

    /// <summary>A valid token.</summary>
    public static IdentityResult Valid(CallerIdentity identity) => new(IdentityStatus.Valid, identity, Pipeline.ReasonCode.Allowed, null);

    /// <summary>A rejected token, with a fixed-vocabulary detail.</summary>
    public static IdentityResult Invalid(Pipeline.ReasonCode reason, string detail) => new(IdentityStatus.Invalid, null, reason, detail);

    /// <summary>The keys could not be fetched.</summary>
    public static IdentityResult Unavailable(string detail) => new(IdentityStatus.Unavailable, null, Pipeline.ReasonCode.DependencyUnavailable, detail);
}
