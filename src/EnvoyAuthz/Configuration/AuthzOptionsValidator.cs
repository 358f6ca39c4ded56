using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace EnvoyAuthz.Configuration;

/// <summary>
/// Validates <see cref="AuthzOptions"/> and reports every error at once, each naming the
/// configuration key and the fix.
/// </summary>
public sealed partial class AuthzOptionsValidator : IValidateOptions<AuthzOptions>
{
    private static readonly HashSet<string> HmacAlgorithms = new(StringComparer.Ordinal) { "HS256", "HS384", "HS512" };
    private static readonly HashSet<string> KnownAlgorithms = new(StringComparer.Ordinal)
    {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512",
    };

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, AuthzOptions options)
    {
        var errors = Collect(options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>All problems of <paramref name="o"/>, empty when valid.</summary>
    public static List<string> Collect(AuthzOptions o)
    {
        var e = new List<string>();
        const string S = AuthzOptions.SectionName;

        Range(e, $"{S}:Server:GrpcPort", o.Server.GrpcPort, 0, 65535);
        Range(e, $"{S}:Server:HttpPort", o.Server.HttpPort, 0, 65535);
        if (o.Server.GrpcPort != 0 && o.Server.GrpcPort == o.Server.HttpPort)
        {
            e.Add($"{S}:Server:HttpPort must differ from GrpcPort ({o.Server.GrpcPort}).");
        }
        if (o.Server.BindAddress != "localhost" && !IPAddress.TryParse(o.Server.BindAddress, out _))
        {
            e.Add($"{S}:Server:BindAddress '{o.Server.BindAddress}' is not an IP address or 'localhost'.");
        }

        Range(e, $"{S}:Server:MaxConcurrentChecks", o.Server.MaxConcurrentChecks, 1, 100_000);
        Range(e, $"{S}:Server:MaxQueuedChecks", o.Server.MaxQueuedChecks, 0, 100_000);
        Range(e, $"{S}:Server:QueueTimeout", o.Server.QueueTimeout, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Range(e, $"{S}:Server:CheckTimeout", o.Server.CheckTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(60));
        if (o.Server.FailureMode is not (FailureModes.Deny or FailureModes.Error))
        {
            e.Add($"{S}:Server:FailureMode '{o.Server.FailureMode}' must be 'deny' or 'error'.");
        }
        if (!Pipeline.AmbiguousPathModes.All.Contains(o.Server.AmbiguousPaths, StringComparer.Ordinal))
        {
            e.Add($"{S}:Server:AmbiguousPaths '{o.Server.AmbiguousPaths}' must be 'reject' or 'normalize'.");
        }
        for (var i = 0; i < o.Http.TrustedProxies.Count; i++)
        {
            if (!HttpModeOptions.TryParseNetwork(o.Http.TrustedProxies[i], out _))
            {
                e.Add($"{S}:Http:TrustedProxies:{i} '{o.Http.TrustedProxies[i]}' is not an IP address or CIDR block (e.g. 10.0.0.0/8).");
            }
        }
        var res = o.Resilience;
        if (res.FailureRatio is < 0.01 or > 1)
        {
            e.Add($"{S}:Resilience:FailureRatio is {res.FailureRatio}; it must be between 0.01 and 1.");
        }
        Range(e, $"{S}:Resilience:MinimumThroughput", res.MinimumThroughput, 2, 1000);
        Range(e, $"{S}:Resilience:SamplingDuration", res.SamplingDuration, TimeSpan.FromMilliseconds(500), TimeSpan.FromMinutes(10));
        Range(e, $"{S}:Resilience:BreakDuration", res.BreakDuration, TimeSpan.FromMilliseconds(500), TimeSpan.FromMinutes(10));
        RateLimitOptionsValidator.Collect(o.RateLimits, $"{S}:RateLimits", e);

        var id = o.Identity;
        if (string.IsNullOrWhiteSpace(id.TokenHeader) || !HeaderName().IsMatch(id.TokenHeader))
        {
            e.Add($"{S}:Identity:TokenHeader must be a header name (letters, digits, '-').");
        }
        Range(e, $"{S}:Identity:MaxTokenBytes", id.MaxTokenBytes, 256, 1_048_576);
        Range(e, $"{S}:Identity:ClockSkew", id.ClockSkew, TimeSpan.Zero, TimeSpan.FromMinutes(5));
        Range(e, $"{S}:Identity:CacheSize", id.CacheSize, 0, 1_000_000);
        Range(e, $"{S}:Identity:CacheMaxLifetime", id.CacheMaxLifetime, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        Range(e, $"{S}:Identity:JwksRefetchInterval", id.JwksRefetchInterval, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        Range(e, $"{S}:Identity:JwksAutomaticRefreshInterval", id.JwksAutomaticRefreshInterval, TimeSpan.FromMinutes(1), TimeSpan.FromDays(7));
        Range(e, $"{S}:Identity:MetadataTimeout", id.MetadataTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(60));
        Range(e, $"{S}:Identity:MaxMetadataBytes", id.MaxMetadataBytes, 4096, 64 << 20);
        Range(e, $"{S}:Identity:JwksMaxAge", id.JwksMaxAge, TimeSpan.FromMinutes(1), TimeSpan.FromDays(30));
        if (id.JwksMaxAge < id.JwksAutomaticRefreshInterval)
        {
            e.Add($"{S}:Identity:JwksMaxAge ({id.JwksMaxAge}) must be at least JwksAutomaticRefreshInterval ({id.JwksAutomaticRefreshInterval}).");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var issuers = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < id.Issuers.Count; i++)
        {
            var iss = id.Issuers[i];
            var k = $"{S}:Identity:Issuers:{i}";
            if (string.IsNullOrWhiteSpace(iss.Name) || !LabelSafe().IsMatch(iss.Name))
            {
                e.Add($"{k}:Name is required: letters, digits, '_', '-', '.' (it becomes a metric label).");
            }
            else if (!names.Add(iss.Name) || iss.Name == "dev" && o.Dev.Enabled)
            {
                e.Add($"{k}:Name '{iss.Name}' is used twice.");
            }
            if (string.IsNullOrWhiteSpace(iss.Issuer))
            {
                e.Add($"{k}:Issuer is required: the exact 'iss' of its tokens.");
            }
            else if (!issuers.Add(iss.Issuer))
            {
                e.Add($"{k}:Issuer '{iss.Issuer}' is configured twice.");
            }
            else if (iss.JwksUrl is null)
            {
                CheckUrl(e, $"{k}:DiscoveryUrl", iss.DiscoveryUrl ?? iss.Issuer, iss.RequireHttpsMetadata);
            }
            if (iss.JwksUrl is not null)
            {
                CheckUrl(e, $"{k}:JwksUrl", iss.JwksUrl, iss.RequireHttpsMetadata);
            }
            if (iss.Audiences.Count == 0 || iss.Audiences.Any(string.IsNullOrWhiteSpace))
            {
                e.Add($"{k}:Audiences must list at least one non-empty audience.");
            }
            foreach (var alg in iss.Algorithms)
            {
                if (string.Equals(alg, "none", StringComparison.OrdinalIgnoreCase))
                {
                    e.Add($"{k}:Algorithms must not contain 'none': unsigned tokens are never accepted.");
                }
                else if (!KnownAlgorithms.Contains(alg))
                {
                    e.Add($"{k}:Algorithms: '{alg}' is not one of {string.Join(", ", KnownAlgorithms)}.");
                }
                else if (HmacAlgorithms.Contains(alg) && string.IsNullOrEmpty(iss.HmacSecret))
                {
                    e.Add($"{k}:Algorithms: '{alg}' needs HmacSecret.");
                }
            }
            if (iss.HmacSecret is { } secret && System.Text.Encoding.UTF8.GetByteCount(secret) < 32)
            {
                e.Add($"{k}:HmacSecret must be at least 32 bytes.");
            }
            else if (iss.HmacSecret is { Length: > 0 } hmac)
            {
                // RFC 7518 §3.2: the key must be at least as long as the hash (the token library enforces it, denying every token).
                var bytes = System.Text.Encoding.UTF8.GetByteCount(hmac);
                foreach (var alg in iss.Algorithms.Distinct(StringComparer.Ordinal))
                {
                    if (HmacKeyBytes(alg) is { } needed && bytes < needed)
                    {
                        e.Add($"{k}:HmacSecret is {bytes} bytes (UTF-8); {alg} in {k}:Algorithms needs at least {needed} (RFC 7518 §3.2): use a longer secret or drop {alg}.");
                    }
                }
            }
            if (iss.ClockSkew is { } skew)
            {
                Range(e, $"{k}:ClockSkew", skew, TimeSpan.Zero, TimeSpan.FromMinutes(5));
            }
        }

        var p = o.Policy;
        if (!PolicyEngines.All.Contains(p.Engine))
        {
            e.Add($"{S}:Policy:Engine '{p.Engine}' is not one of {string.Join(", ", PolicyEngines.All)}.");
        }
        if (string.IsNullOrWhiteSpace(p.DecisionPath) || !DecisionPathPattern().IsMatch(p.DecisionPath))
        {
            e.Add($"{S}:Policy:DecisionPath '{p.DecisionPath}' must look like 'envoy/authz/allow' or 'data.envoy.authz.allow'.");
        }
        Range(e, $"{S}:Policy:MaxParsedBodyBytes", p.MaxParsedBodyBytes, 0, 16_777_216);
        Range(e, $"{S}:Policy:ReloadInterval", p.ReloadInterval, TimeSpan.Zero, TimeSpan.FromHours(1));
        Range(e, $"{S}:Policy:EvaluationTimeout", p.EvaluationTimeout, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(10));
        if (p.MaxEvaluationSteps is < 1000 or > 1_000_000_000)
        {
            e.Add($"{S}:Policy:MaxEvaluationSteps is {p.MaxEvaluationSteps}; it must be between 1000 and 1000000000.");
        }
        if (p.Path is { } policyPath && !File.Exists(policyPath) && !Directory.Exists(policyPath))
        {
            e.Add($"{S}:Policy:Path '{policyPath}' is neither a folder nor a bundle file.");
        }
        if (p.BundleUrl is not null)
        {
            CheckUrl(e, $"{S}:Policy:BundleUrl", p.BundleUrl, requireHttps: false);
            if (p.Path is not null)
            {
                e.Add($"{S}:Policy:BundleUrl and Policy:Path are exclusive: configure one policy source.");
            }
            if (p.Engine != PolicyEngines.Rego)
            {
                e.Add($"{S}:Policy:BundleUrl is only used by the rego engine (Engine is '{p.Engine}').");
            }
        }
        for (var i = 0; i < p.HttpSend.AllowedUrlPrefixes.Count; i++)
        {
            var prefix = p.HttpSend.AllowedUrlPrefixes[i] ?? "";
            if (!Policy.HttpSendAllowList.TryParsePrefix(prefix, out _, out var problem))
            {
                e.Add($"{S}:Policy:HttpSend:AllowedUrlPrefixes:{i} '{Policy.HttpSendAllowList.Describe(prefix)}' {problem}: " +
                      "give an origin with an optional path, e.g. 'https://hr.internal/api/'.");
            }
        }
        Range(e, $"{S}:Policy:HttpSend:Timeout", p.HttpSend.Timeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(10));
        Range(e, $"{S}:Policy:HttpSend:MaxResponseBytes", p.HttpSend.MaxResponseBytes, 1024, 64 << 20);
        Range(e, $"{S}:Policy:BundlePollInterval", p.BundlePollInterval, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        Range(e, $"{S}:Policy:BundleTimeout", p.BundleTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));
        if (p.MaxBundleBytes is < 1024 or > 1L << 30)
        {
            e.Add($"{S}:Policy:MaxBundleBytes is {p.MaxBundleBytes}; it must be between 1024 and 1073741824.");
        }
        Range(e, $"{S}:Policy:RemoteOpa:MaxResponseBytes", p.RemoteOpa.MaxResponseBytes, 1024, 64 << 20);
        if (p.Path is not null && p.Engine != PolicyEngines.Rego)
        {
            e.Add($"{S}:Policy:Path is only used by the rego engine (Engine is '{p.Engine}').");
        }
        if (p.Engine == PolicyEngines.RemoteOpa)
        {
            if (string.IsNullOrWhiteSpace(p.RemoteOpa.Url))
            {
                e.Add($"{S}:Policy:RemoteOpa:Url is required when Engine is remote-opa.");
            }
            else
            {
                CheckUrl(e, $"{S}:Policy:RemoteOpa:Url", p.RemoteOpa.Url, requireHttps: false);
            }
        }
        Range(e, $"{S}:Policy:RemoteOpa:Timeout", p.RemoteOpa.Timeout, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(30));

        var r = o.Response;
        foreach (var (key, value) in new[]
                 {
                     ("SubjectHeader", r.SubjectHeader), ("IssuerHeader", r.IssuerHeader), ("GroupsHeader", r.GroupsHeader),
                     ("ScopesHeader", r.ScopesHeader), ("DecisionIdHeader", r.DecisionIdHeader),
                     ("ConnectionIdHeader", r.ConnectionIdHeader), ("RemoteUserHeader", r.RemoteUserHeader),
                 })
        {
            if (!string.IsNullOrEmpty(value) && !HeaderName().IsMatch(value))
            {
                e.Add($"{S}:Response:{key} '{value}' is not a valid header name.");
            }
        }
        if (string.IsNullOrWhiteSpace(r.Realm) || r.Realm.Contains('"') || r.Realm.Contains('\\'))
        {
            e.Add($"{S}:Response:Realm must be non-empty without quotes or backslashes.");
        }

        Airflow.AirflowOptionsValidator.Collect(o.Airflow, $"{S}:Airflow", e);

        if (o.Dev.Enabled && string.IsNullOrWhiteSpace(o.Dev.Audience))
        {
            e.Add($"{S}:Dev:Audience is required in dev mode.");
        }
        return e;
    }

    private static int? HmacKeyBytes(string alg) => alg switch
    {
        "HS256" => 32,
        "HS384" => 48,
        "HS512" => 64,
        _ => null,
    };

    private static void Range(List<string> e, string key, int v, int min, int max)
    {
        if (v < min || v > max)
        {
            e.Add($"{key} is {v}; it must be between {min} and {max}.");
        }
    }

    private static void Range(List<string> e, string key, TimeSpan v, TimeSpan min, TimeSpan max)
    {
        if (v < min || v > max)
        {
            e.Add($"{key} is {v}; it must be between {min} and {max}.");
        }
    }

    private static void CheckUrl(List<string> e, string key, string url, bool requireHttps)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps))
        {
            e.Add($"{key} '{url}' is not an absolute http(s) URL.");
        }
        else if (requireHttps && u.Scheme != Uri.UriSchemeHttps)
        {
            e.Add($"{key} '{url}' must use https (or set RequireHttpsMetadata: false for loopback development).");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9-]+$")]
    private static partial Regex HeaderName();

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex LabelSafe();

    [GeneratedRegex(@"^(data[./])?[A-Za-z_][A-Za-z0-9_]*([./][A-Za-z_][A-Za-z0-9_]*)*$")]
    private static partial Regex DecisionPathPattern();
}
