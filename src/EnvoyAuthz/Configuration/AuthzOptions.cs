namespace EnvoyAuthz.Configuration;

/// <summary>
/// Root of the service's configuration: section <c>EnvoyAuthz</c> of the .NET configuration
/// (defaults here, then <c>--config FILE</c> in JSON or YAML, then <c>EnvoyAuthz__…</c> variables).
/// Every property documents its default, unit and range; <see cref="AuthzOptionsValidator"/>
/// checks them all at start and reports every error at once.
/// </summary>
public sealed class AuthzOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "EnvoyAuthz";

    /// <summary>Listeners.</summary>
    public ServerOptions Server { get; set; } = new();

    /// <summary>Token extraction and validation.</summary>
    public IdentityOptions Identity { get; set; } = new();

    /// <summary>Which policy engine decides, and where.</summary>
    public PolicyOptions Policy { get; set; } = new();

    /// <summary>Headers and bodies of the answers.</summary>
    public ResponseOptions Response { get; set; } = new();

    /// <summary>Development mode: trust a signing key generated at start. Never in production.</summary>
    public DevOptions Dev { get; set; } = new();

    /// <summary>Airflow awareness (connections, task context, API awareness).</summary>
    public Airflow.AirflowOptions Airflow { get; set; } = new();

    /// <summary>Circuit breakers around dependencies.</summary>
    public ResilienceOptions Resilience { get; set; } = new();

    /// <summary>Rate limits per identity and per Airflow connection.</summary>
    public RateLimitOptions RateLimits { get; set; } = new();

    /// <summary>HTTP-mode authorization (<c>/authz/nginx</c>, <c>/authz/traefik</c>, <c>/authz/envoy/…</c>).</summary>
    public HttpModeOptions Http { get; set; } = new();
}

/// <summary>HTTP-mode authorization: who may ask, and whose forwarding headers count.</summary>
public sealed class HttpModeOptions
{
    /// <summary>
    /// Proxies allowed to ask over HTTP mode, as CIDR blocks or single addresses (<c>10.0.0.0/8</c>,
    /// <c>fd00::/8</c>, <c>127.0.0.1</c>). A request from any other peer is denied 400
    /// <c>bad_request</c>; <c>X-Forwarded-For</c> names the client only on a request from one of these
    /// (the right-most address that is not itself listed). Default none: any peer may ask, and the
    /// source address is always the TCP peer.
    /// </summary>
    public List<string> TrustedProxies { get; set; } = [];

    private IReadOnlyList<System.Net.IPNetwork>? _trusted;

    /// <summary><see cref="TrustedProxies"/> parsed (entries that do not parse are left out; the validator reports them).</summary>
    internal IReadOnlyList<System.Net.IPNetwork> TrustedNetworks => _trusted ??= [.. TrustedProxies.Select(p => TryParseNetwork(p, out var n) ? n : (System.Net.IPNetwork?)null).OfType<System.Net.IPNetwork>()];

    /// <summary>Parses <c>address</c> or <c>address/prefix</c>.</summary>
    internal static bool TryParseNetwork(string? value, out System.Net.IPNetwork network)
    {
        network = default;
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }
        value = value.Trim();
        if (value.Contains('/'))
        {
            return System.Net.IPNetwork.TryParse(value, out network);
        }
        if (!System.Net.IPAddress.TryParse(value, out var address))
        {
            return false;
        }
        network = new System.Net.IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
        return true;
    }
}

/// <summary>Circuit breakers (Polly) around every dependency: issuers' discovery/JWKS, remote OPA, the Airflow API.</summary>
public sealed class ResilienceOptions
{
    /// <summary>Share of failed calls within <see cref="SamplingDuration"/> that opens a circuit. Default 0.5; range 0.01–1.</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Calls needed within <see cref="SamplingDuration"/> before the ratio counts. Default 4; range 2–1000.</summary>
    public int MinimumThroughput { get; set; } = 4;

    /// <summary>Window over which failures are counted. Default 30 s; range 0.5 s–10 min.</summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an open circuit fails fast before one trial call (half-open). Default 15 s; range 0.5 s–10 min.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>Listener options.</summary>
public sealed class ServerOptions
{
    /// <summary>Port of the gRPC ext_authz and gRPC health services (h2c). Default 9191; 0 picks a free port; range 0–65535.</summary>
    public int GrpcPort { get; set; } = 9191;

    /// <summary>Port of <c>/healthz</c>, <c>/readyz</c>, <c>/metrics</c>. Default 9192; 0 picks a free port; range 0–65535; must differ from <see cref="GrpcPort"/>.</summary>
    public int HttpPort { get; set; } = 9192;

    /// <summary>Address both listeners bind to. Default <c>0.0.0.0</c> (all IPv4 interfaces); an IP address or <c>localhost</c>.</summary>
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>Checks answered at once; more wait in a short queue. Default 256; range 1–100000.</summary>
    public int MaxConcurrentChecks { get; set; } = 256;

    /// <summary>Checks that may wait for a slot; beyond it they are shed at once (503 <c>overloaded</c>). Default 256; range 0–100000.</summary>
    public int MaxQueuedChecks { get; set; } = 256;

    /// <summary>Longest a Check waits for a slot before it is shed. Default 20 ms; range 0–1 s.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Time budget of one Check, so a deny arrives before Envoy's own timeout (default 200 ms) fires; the call's gRPC deadline, when earlier, wins. Default 180 ms; range 10 ms–60 s.</summary>
    public TimeSpan CheckTimeout { get; set; } = TimeSpan.FromMilliseconds(180);

    /// <summary>An internal fault is answered as <c>deny</c> (503 <c>internal_error</c>, fail closed) or as a gRPC <c>error</c> (Envoy's <c>failure_mode_allow</c> decides). Default <c>deny</c>.</summary>
    public string FailureMode { get; set; } = FailureModes.Deny;

    /// <summary>
    /// A request path whose normal form differs from it in a way that matters — dot segments
    /// (also <c>%2e</c>), an encoded <c>/</c> or <c>\</c>, a raw <c>\</c>, a <c>;</c> segment parameter —
    /// is denied 400 <c>bad_request</c> (<c>reject</c>), or decided on its normal form
    /// (<c>normalize</c>: as Envoy's <c>normalize_path</c>, <c>merge_slashes</c> and
    /// <c>UNESCAPE_AND_FORWARD</c>, or a WSGI server, would read it). Control characters and NUL, a
    /// raw space, double encodings (<c>%2561</c>) and broken escapes are denied either way. Default <c>reject</c>.
    /// </summary>
    public string AmbiguousPaths { get; set; } = Pipeline.AmbiguousPathModes.Reject;
}

/// <summary>Values of <see cref="ServerOptions.FailureMode"/>.</summary>
public static class FailureModes
{
    /// <summary>Answer a 503 deny.</summary>
    public const string Deny = "deny";
    /// <summary>Answer a gRPC error (UNAVAILABLE).</summary>
    public const string Error = "error";
}

/// <summary>Token extraction and validation options.</summary>
public sealed class IdentityOptions
{
    /// <summary>Request header carrying the token. Default <c>authorization</c> (value <c>Bearer &lt;token&gt;</c>); any other header may hold the bare token or <c>Bearer &lt;token&gt;</c>.</summary>
    public string TokenHeader { get; set; } = "authorization";

    /// <summary>Cookie carrying the token, consulted when the header is absent. Default none.</summary>
    public string? TokenCookie { get; set; }

    /// <summary>Largest token accepted, in bytes. Default 16384; range 256–1048576. Larger tokens are denied <c>invalid_token</c> unparsed.</summary>
    public int MaxTokenBytes { get; set; } = 16384;

    /// <summary>Clock skew allowed on <c>exp</c>/<c>nbf</c> unless an issuer overrides it. Default 30 s; range 0–5 min.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Validated-token cache size, in entries. Default 10000; 0 disables the cache; range 0–1000000.</summary>
    public int CacheSize { get; set; } = 10_000;

    /// <summary>Longest a validated token stays cached (never beyond its own expiry). Default 5 min; range 1 s–1 h.</summary>
    public TimeSpan CacheMaxLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>On an unknown <c>kid</c>, JWKS is refetched at most once per this interval per issuer while the issuer answers (a kid missing from that refetch is denied <c>invalid_token</c> until the interval passes); after a failed fetch, fetches back off from 1 s, doubling, up to this interval. Default 30 s; range 1 s–1 h.</summary>
    public TimeSpan JwksRefetchInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Keys are refreshed in the background this often even without an unknown <c>kid</c>. Default 12 h; range 1 min–7 d.</summary>
    public TimeSpan JwksAutomaticRefreshInterval { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Longest cached keys are trusted while refreshes fail; after it, tokens of that issuer are denied 503 <c>dependency_unavailable</c>. Default 24 h; range 1 min–30 d; at least <see cref="JwksAutomaticRefreshInterval"/>.</summary>
    public TimeSpan JwksMaxAge { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Time budget of one key fetch in total (discovery and JWKS together, every read included). Default 5 s; range 100 ms–60 s.</summary>
    public TimeSpan MetadataTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest discovery document or JWKS accepted, in bytes; a larger one fails the fetch (cached keys keep serving). Default 1048576 (1 MiB); range 4096–67108864.</summary>
    public int MaxMetadataBytes { get; set; } = 1 << 20;

    /// <summary>Trusted token issuers. Default none (only dev mode adds one).</summary>
    public List<IssuerOptions> Issuers { get; set; } = [];
}

/// <summary>One trusted token issuer.</summary>
public sealed class IssuerOptions
{
    /// <summary>Short name used in metric labels and logs. Required; letters, digits, <c>_</c>, <c>-</c>, <c>.</c>; unique.</summary>
    public string Name { get; set; } = "";

    /// <summary>The exact <c>iss</c> value of its tokens, and the base of OIDC discovery. Required.</summary>
    public string Issuer { get; set; } = "";

    /// <summary>Explicit JWKS URL; when set, discovery is skipped. Default none.</summary>
    public string? JwksUrl { get; set; }

    /// <summary>Discovery document URL. Default <c>{Issuer}/.well-known/openid-configuration</c>.</summary>
    public string? DiscoveryUrl { get; set; }

    /// <summary>Accepted audiences; a token must name at least one. Required, non-empty.</summary>
    public List<string> Audiences { get; set; } = [];

    /// <summary>Accepted signing algorithms. Default RS256/384/512, PS256/384/512, ES256/384/512. <c>none</c> is never accepted; HS256/384/512 only with <see cref="HmacSecret"/>.</summary>
    public List<string> Algorithms { get; set; } = [];

    /// <summary>Shared secret for HS* tokens, taken as its UTF-8 bytes: at least as long as the hash of every HS algorithm in <see cref="Algorithms"/> (HS256 32 bytes, HS384 48, HS512 64; RFC 7518 §3.2). Default none. Never logged.</summary>
    public string? HmacSecret { get; set; }

    /// <summary>Required JOSE <c>typ</c> header (e.g. <c>at+jwt</c>), compared case-insensitively. Default none.</summary>
    public string? RequiredType { get; set; }

    /// <summary>Clock skew for this issuer. Default: <see cref="IdentityOptions.ClockSkew"/>.</summary>
    public TimeSpan? ClockSkew { get; set; }

    /// <summary>Require https for discovery and JWKS. Default true; false only for loopback development.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    /// <summary>Claims holding groups (dotted paths reach into objects). Default <c>groups</c>.</summary>
    public List<string> GroupClaims { get; set; } = [];

    /// <summary>Claims holding roles. Default <c>roles</c>, <c>realm_access.roles</c>.</summary>
    public List<string> RoleClaims { get; set; } = [];

    /// <summary>Claims holding scopes (space-separated strings or arrays). Default <c>scope</c>, <c>scp</c>.</summary>
    public List<string> ScopeClaims { get; set; } = [];

    /// <summary>Claims naming the OAuth client, first present wins. Default <c>client_id</c>, <c>azp</c>, <c>appid</c>.</summary>
    public List<string> ClientIdClaims { get; set; } = [];

    /// <summary>Algorithms allowed when <see cref="Algorithms"/> is empty.</summary>
    public static readonly IReadOnlyList<string> DefaultAlgorithms =
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    internal IReadOnlyList<string> EffectiveAlgorithms => Algorithms.Count > 0 ? Algorithms : DefaultAlgorithms;
    internal IReadOnlyList<string> EffectiveGroupClaims => GroupClaims.Count > 0 ? GroupClaims : ["groups"];
    internal IReadOnlyList<string> EffectiveRoleClaims => RoleClaims.Count > 0 ? RoleClaims : ["roles", "realm_access.roles"];
    internal IReadOnlyList<string> EffectiveScopeClaims => ScopeClaims.Count > 0 ? ScopeClaims : ["scope", "scp"];
    internal IReadOnlyList<string> EffectiveClientIdClaims => ClientIdClaims.Count > 0 ? ClientIdClaims : ["client_id", "azp", "appid"];
}

/// <summary>Policy engine selection.</summary>
public sealed class PolicyOptions
{
    /// <summary>Engine: <c>rego</c> (embedded), <c>remote-opa</c>, or <c>authenticated</c> (allow iff a token validated). Default <c>rego</c>.</summary>
    public string Engine { get; set; } = PolicyEngines.Rego;

    /// <summary>Policy folder (<c>.rego</c> files and <c>data.json</c>/<c>data.yaml</c>) or OPA bundle (<c>.tar.gz</c>) for the <c>rego</c> engine. Default none: a built-in policy that allows iff a token validated.</summary>
    public string? Path { get; set; }

    /// <summary>An OPA bundle (<c>.tar.gz</c>) served over HTTP(S) for the <c>rego</c> engine, polled with <c>If-None-Match</c>; exclusive with <see cref="Path"/>. Default none.</summary>
    public string? BundleUrl { get; set; }

    /// <summary>How often <see cref="BundleUrl"/> is polled. Default 30 s; range 1 s–1 d.</summary>
    public TimeSpan BundlePollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Timeout of one bundle download. Default 10 s; range 100 ms–5 min.</summary>
    public TimeSpan BundleTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest bundle accepted, in bytes, both as downloaded (chunked or not) and decompressed. Default 67108864 (64 MiB); range 1024–1073741824.</summary>
    public long MaxBundleBytes { get; set; } = 64L << 20;

    /// <summary>How often the policy's files are checked for changes (a watcher also triggers at once). Default 2 s; 0 disables hot reload; range 0–1 h.</summary>
    public TimeSpan ReloadInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest one evaluation may run before it is a <c>policy_error</c>. Default 100 ms; range 1 ms–10 s.</summary>
    public TimeSpan EvaluationTimeout { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most evaluation steps of one decision. Default 1000000; range 1000–1000000000.</summary>
    public long MaxEvaluationSteps { get; set; } = 1_000_000;

    /// <summary>Decision path, e.g. <c>envoy/authz/allow</c> or <c>data.envoy.authz.allow</c>. Default <c>envoy/authz/allow</c>.</summary>
    public string DecisionPath { get; set; } = "envoy/authz/allow";

    /// <summary>Parse JSON and form bodies into <c>input.parsed_body</c>. Default true.</summary>
    public bool ParseBody { get; set; } = true;

    /// <summary>Largest body parsed into <c>input.parsed_body</c>, in bytes. Default 65536; range 0–16777216.</summary>
    public int MaxParsedBodyBytes { get; set; } = 65_536;

    /// <summary><c>http.send</c> for policies of the <c>rego</c> engine. Off unless destinations are listed.</summary>
    public PolicyHttpSendOptions HttpSend { get; set; } = new();

    /// <summary>Let policies resolve host names (<c>net.lookup_ip_addr</c>). Default false.</summary>
    public bool AllowDnsLookups { get; set; }

    /// <summary>Remote OPA REST Data API, used when <see cref="Engine"/> is <c>remote-opa</c>.</summary>
    public RemoteOpaOptions RemoteOpa { get; set; } = new();
}

/// <summary><c>http.send</c> from policies: off unless destinations are listed.</summary>
public sealed class PolicyHttpSendOptions
{
    /// <summary>URL prefixes policies may call: an origin with an optional path, e.g. <c>https://hr.internal/api/</c> (no userinfo, query or fragment). A URL is allowed when its scheme, exact host (case-insensitive), effective port and path prefix on a segment boundary (case-sensitive: <c>/v1</c> allows <c>/v1/x</c>, not <c>/v10</c>) match one. Default none: <c>http.send</c> is a builtin error.</summary>
    public List<string> AllowedUrlPrefixes { get; set; } = [];

    /// <summary>Timeout of one call (a policy's own <c>timeout</c> may only shorten it). Default 500 ms; range 10 ms–10 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Largest response accepted, in bytes. Default 1048576; range 1024–67108864.</summary>
    public int MaxResponseBytes { get; set; } = 1 << 20;
}

/// <summary>Names of the policy engines.</summary>
public static class PolicyEngines
{
    /// <summary>The embedded Rego engine.</summary>
    public const string Rego = "rego";
    /// <summary>Allow iff a valid identity.</summary>
    public const string Authenticated = "authenticated";
    /// <summary>OPA's REST Data API.</summary>
    public const string RemoteOpa = "remote-opa";

    internal static readonly string[] All = [Rego, RemoteOpa, Authenticated];
}

/// <summary>Remote OPA options.</summary>
public sealed class RemoteOpaOptions
{
    /// <summary>Base URL of OPA, e.g. <c>http://127.0.0.1:8181</c>. Required for <c>remote-opa</c>.</summary>
    public string? Url { get; set; }

    /// <summary>Timeout of one decision request. Default 150 ms (below Envoy's 200 ms); range 1 ms–30 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(150);

    /// <summary>Largest decision answer accepted, in bytes; a larger one is a <c>policy_error</c>. Default 4194304 (4 MiB); range 1024–67108864.</summary>
    public int MaxResponseBytes { get; set; } = 4 << 20;
}

/// <summary>Response options.</summary>
public sealed class ResponseOptions
{
    /// <summary>Header carrying the token subject on allow. Default <c>x-authz-subject</c>; empty disables.</summary>
    public string SubjectHeader { get; set; } = "x-authz-subject";
    /// <summary>Header carrying the token issuer. Default <c>x-authz-issuer</c>; empty disables.</summary>
    public string IssuerHeader { get; set; } = "x-authz-issuer";
    /// <summary>Header carrying groups, comma-separated. Default <c>x-authz-groups</c>; empty disables.</summary>
    public string GroupsHeader { get; set; } = "x-authz-groups";
    /// <summary>Header carrying scopes, space-separated. Default <c>x-authz-scopes</c>; empty disables.</summary>
    public string ScopesHeader { get; set; } = "x-authz-scopes";
    /// <summary>Header carrying the decision id (on allow and deny). Default <c>x-authz-decision-id</c>; empty disables.</summary>
    public string DecisionIdHeader { get; set; } = "x-authz-decision-id";
    /// <summary>Header carrying the Airflow connection id. Default <c>x-airflow-conn-id</c>; empty disables.</summary>
    public string ConnectionIdHeader { get; set; } = "x-airflow-conn-id";
    /// <summary>Header carrying the subject for Airflow 2's remote-user login (e.g. <c>x-remote-user</c>). Default none.</summary>
    public string? RemoteUserHeader { get; set; }
    /// <summary>Realm in <c>WWW-Authenticate</c>. Default <c>envoy-authz</c>.</summary>
    public string Realm { get; set; } = "envoy-authz";
    /// <summary>Dynamic metadata key holding the decision id. Default <c>decision_id</c>.</summary>
    public string DecisionIdMetadataKey { get; set; } = "decision_id";

    internal IEnumerable<string> IdentityHeaderNames()
    {
        foreach (var h in new[] { SubjectHeader, IssuerHeader, GroupsHeader, ScopesHeader, DecisionIdHeader, ConnectionIdHeader, RemoteUserHeader })
        {
            if (!string.IsNullOrWhiteSpace(h))
            {
                yield return h.ToLowerInvariant();
            }
        }
    }
}

/// <summary>Development mode.</summary>
public sealed class DevOptions
{
    /// <summary>Trust a local signing key generated at start (also <c>--dev</c>). Default false. Never in production.</summary>
    public bool Enabled { get; set; }

    /// <summary>Issuer of dev tokens. Default <c>https://dev.envoy-authz.local</c>.</summary>
    public string Issuer { get; set; } = "https://dev.envoy-authz.local";

    /// <summary>Audience of dev tokens. Default <c>envoy-authz-dev</c>.</summary>
    public string Audience { get; set; } = "envoy-authz-dev";

    /// <summary>Where the dev key is written for <c>envoy-authz token</c>. Default <c>{temp}/envoy-authz-dev/signing-key.json</c>.</summary>
    public string? KeyFile { get; set; }
}
