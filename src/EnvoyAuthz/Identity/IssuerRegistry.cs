using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>The configured issuers (plus dev mode's), looked up by exact <c>iss</c>.</summary>
public sealed class IssuerRegistry
{
    /// <summary>Name of the dev-mode issuer.</summary>
    public const string DevIssuerName = "dev";

    private readonly Dictionary<string, IssuerKeySource> _byIssuer = new(StringComparer.Ordinal);

    /// <summary>Builds a key source per issuer.</summary>
    public IssuerRegistry(AuthzOptions options, IHttpClientFactory httpClients, TimeProvider time, AuthzMetrics metrics,
        ILoggerFactory loggers, SecurityKey? devKey, Resilience.DependencyGuards? guards = null)
    {
        var logger = loggers.CreateLogger("EnvoyAuthz.Identity");
        foreach (var issuer in options.Identity.Issuers)
        {
            var staticKeys = new List<SecurityKey>();
            if (issuer.HmacSecret is { Length: > 0 } secret)
            {
                staticKeys.Add(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)));
            }
            var hasRemote = issuer.JwksUrl is not null || issuer.DiscoveryUrl is not null || !OnlyHmac(issuer);
            var client = hasRemote ? httpClients.CreateClient("oidc-metadata") : null;
            _byIssuer[issuer.Issuer] = new IssuerKeySource(issuer, options.Identity, client, staticKeys, time, metrics, logger,
                client is null ? null : guards?.For("idp." + issuer.Name, options.Identity.MetadataTimeout));
        }
        if (options.Dev.Enabled && devKey is not null)
        {
            var dev = new IssuerOptions
            {
                Name = DevIssuerName,
                Issuer = options.Dev.Issuer,
                Audiences = [options.Dev.Audience],
                Algorithms = ["ES256"],
            };
            _byIssuer[dev.Issuer] = new IssuerKeySource(dev, options.Identity, null, [devKey], time, metrics, logger);
        }
    }

    /// <summary>All issuers.</summary>
    public IEnumerable<IssuerKeySource> All => _byIssuer.Values;

    /// <summary>The issuer whose <c>iss</c> is exactly <paramref name="iss"/>.</summary>
    public IssuerKeySource? Find(string? iss) => iss is not null && _byIssuer.TryGetValue(iss, out var s) ? s : null;

    private static bool OnlyHmac(IssuerOptions issuer) =>
        issuer.HmacSecret is { Length: > 0 } && issuer.Algorithms.Count > 0 && issuer.Algorithms.All(a => a.StartsWith("HS", StringComparison.Ordinal));
}
