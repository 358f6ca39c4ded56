using System.Text.Json.Serialization;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// A confidential client registered at the loopback OpenID provider (client_credentials only,
/// <c>client_secret_basic</c>). <see cref="Scope"/> is both the set of scopes the client may ask
/// for and the scope the fixture requests when a test passes none.
/// </summary>
public sealed record OidcTestClient(
    [property: JsonPropertyName("client_id")] string ClientId,
    [property: JsonPropertyName("client_secret")] string ClientSecret,
    [property: JsonPropertyName("scope")] string Scope,
    [property: JsonPropertyName("groups")] IReadOnlyList<string> Groups,
    [property: JsonPropertyName("roles")] IReadOnlyList<string> Roles)
{
    /// <summary><c>svc-client</c>: scope <c>read write</c>, groups airflow-users + data-eng, roles reader + writer.</summary>
    public static OidcTestClient Service { get; } =
        new("svc-client", "svc-secret", "read write", ["airflow-users", "data-eng"], ["reader", "writer"]);

    /// <summary><c>admin-client</c>: scope <c>read write admin</c>, group airflow-admins, role admin.</summary>
    public static OidcTestClient Admin { get; } =
        new("admin-client", "admin-secret", "read write admin", ["airflow-admins"], ["admin"]);

    /// <summary><c>reader-client</c>: scope <c>read</c>, group viewers, role viewer.</summary>
    public static OidcTestClient Reader { get; } =
        new("reader-client", "reader-secret", "read", ["viewers"], ["viewer"]);

    /// <summary>The clients a fixture registers unless told otherwise.</summary>
    public static IReadOnlyList<OidcTestClient> Defaults { get; } = [Service, Admin, Reader];
}

/// <summary>Options of one <see cref="OidcProviderFixture"/> (all optional).</summary>
public sealed record OidcProviderOptions
{
    /// <summary>Clients to register; defaults to <see cref="OidcTestClient.Defaults"/>.</summary>
    public IReadOnlyList<OidcTestClient> Clients { get; init; } = OidcTestClient.Defaults;

    /// <summary>Audience (resource indicator) used when a token request names none.</summary>
    public string DefaultAudience { get; init; } = OidcProviderFixture.DefaultAudience;

    /// <summary>Resource indicators the provider accepts; <c>null</c> accepts any absolute URI.</summary>
    public IReadOnlyList<string>? AllowedAudiences { get; init; }

    /// <summary>Loopback port to bind; 0 picks a free one.</summary>
    public int Port { get; init; }

    /// <summary>How long to wait for the <c>READY</c> line.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Extra knobs of one token request. Everything but <see cref="Alg"/> is optional; the
/// <c>Groups</c>/<c>Roles</c>/<c>ExtraClaims</c>/<c>ExtraHeader</c>/<c>LifetimeSeconds</c> fields
/// are test-only extensions of the loopback server (form fields <c>test_*</c>).
/// </summary>
public sealed record OidcTokenRequest
{
    /// <summary><c>RS256</c> (default) or <c>ES256</c>: which current signing key signs the token.</summary>
    public string Alg { get; init; } = "RS256";

    /// <summary>Requested scope; <c>null</c> = the client's configured scope, <c>""</c> = no scope parameter.</summary>
    public string? Scope { get; init; }

    /// <summary>Resource indicator / <c>aud</c>; <c>null</c> = the fixture's default audience.</summary>
    public string? Audience { get; init; }

    /// <summary>Client id; <c>null</c> = <c>svc-client</c>. Its secret comes from the registered clients.</summary>
    public string? ClientId { get; init; }

    /// <summary>Overrides the secret sent (e.g. to provoke <c>invalid_client</c>).</summary>
    public string? ClientSecret { get; init; }

    /// <summary>Replaces the client's <c>groups</c> claim for this token (empty list = empty array).</summary>
    public IReadOnlyList<string>? Groups { get; init; }

    /// <summary>Replaces the client's <c>realm_access.roles</c> for this token.</summary>
    public IReadOnlyList<string>? Roles { get; init; }

    /// <summary>Token lifetime in seconds (server default 300).</summary>
    public int? LifetimeSeconds { get; init; }

    /// <summary>
    /// JSON object merged over the final payload after the provider built it (a <c>null</c> value
    /// deletes a claim), e.g. <c>{"act":{"sub":"agent"}}</c> or <c>{"iss":"http://evil"}</c>.
    /// </summary>
    public string? ExtraClaimsJson { get; init; }

    /// <summary>JSON object merged over the JWS header, e.g. <c>{"typ":"JWT"}</c>.</summary>
    public string? ExtraHeaderJson { get; init; }
}

/// <summary>Snapshot of the loopback server's test state (<c>GET /__test/state</c>).</summary>
public sealed record OidcProviderState(
    [property: JsonPropertyName("issuer")] string Issuer,
    [property: JsonPropertyName("current")] IReadOnlyDictionary<string, string> CurrentKids,
    [property: JsonPropertyName("kids")] IReadOnlyList<string> Kids,
    [property: JsonPropertyName("faults")] OidcProviderFaults Faults,
    [property: JsonPropertyName("counters")] OidcProviderCounters Counters);

/// <summary>Injected faults: 0 = none.</summary>
public sealed record OidcProviderFaults(
    [property: JsonPropertyName("jwksStatus")] int JwksStatus,
    [property: JsonPropertyName("discoveryStatus")] int DiscoveryStatus,
    [property: JsonPropertyName("delayMs")] int DelayMs);

/// <summary>Requests served since start or the last reset (counted even when a fault answered).</summary>
public sealed record OidcProviderCounters(
    [property: JsonPropertyName("jwks")] int Jwks,
    [property: JsonPropertyName("discovery")] int Discovery,
    [property: JsonPropertyName("token")] int Token);

/// <summary>The token endpoint refused a request.</summary>
public sealed class OidcTokenRequestException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OidcTokenRequestException(int statusCode, string? error, string body)
        : base($"token request failed: HTTP {statusCode} {error}: {body}")
    {
        StatusCode = statusCode;
        Error = error;
        Body = body;
    }

    /// <summary>Creates the exception.</summary>
    public OidcTokenRequestException() : this(0, null, string.Empty) { }

    /// <summary>Creates the exception.</summary>
    public OidcTokenRequestException(string message) : base(message) => Body = string.Empty;

    /// <summary>Creates the exception.</summary>
    public OidcTokenRequestException(string message, Exception innerException)
        : base(message, innerException) => Body = string.Empty;

    /// <summary>HTTP status of the token response.</summary>
    public int StatusCode { get; }

    /// <summary>OAuth <c>error</c> code, e.g. <c>invalid_scope</c>.</summary>
    public string? Error { get; }

    /// <summary>Raw response body.</summary>
    public string Body { get; }
}
