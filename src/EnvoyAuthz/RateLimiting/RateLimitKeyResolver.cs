using System.Security.Cryptography;
using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.RateLimiting;

/// <summary>Which rules match a request, and the bucket key of each.</summary>
internal static class RateLimitKeyResolver
{
    public static IEnumerable<(RateLimitRule Rule, string Key)> Matches(IReadOnlyList<RateLimitRule> rules, AuthzRequest request, CallerIdentity? identity, string? connectionId)
    {
        request.ContextExtensions.TryGetValue("rate_limit", out var routeRule);
        // Without the Airflow stage, the route's own statement of its connection still counts.
        connectionId ??= request.ContextExtensions.TryGetValue("airflow_conn_id", out var routeConnection) && routeConnection.Length > 0 ? routeConnection : null;
        foreach (var rule in rules)
        {
            if (rule.PolicyOnly || (rule.RouteOnly && routeRule != rule.Name))
            {
                continue;
            }
            if (rule.PathPrefix is { } prefix && !request.NormalizedPath.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }
            if (rule.Methods.Count > 0 && !rule.Methods.Contains(request.Method, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }
            if (rule.ConnectionIds.Count > 0 && (connectionId is null || !rule.ConnectionIds.Contains(connectionId, StringComparer.Ordinal)))
            {
                continue;
            }
            if (KeyOf(rule, request, identity, connectionId) is { } key)
            {
                yield return (rule, key);
            }
        }
    }

    /// <summary>The rule a policy named (decision field <c>rate_limit</c>) with its bucket key; null rule when no such rule is configured.</summary>
    public static (RateLimitRule? Rule, string? Key) Named(IReadOnlyList<RateLimitRule> rules, string name, AuthzRequest request, CallerIdentity? identity, string? connectionId)
    {
        var rule = rules.FirstOrDefault(r => r.Name == name);
        if (rule is null)
        {
            return (null, null);
        }
        connectionId ??= request.ContextExtensions.TryGetValue("airflow_conn_id", out var routeConnection) && routeConnection.Length > 0 ? routeConnection : null;
        return (rule, KeyOf(rule, request, identity, connectionId));
    }

    private static string? KeyOf(RateLimitRule rule, AuthzRequest request, CallerIdentity? identity, string? connectionId)
    {
        string? key = rule.Key == RateLimitKeys.Connection
            ? connectionId is null ? null : "conn:" + connectionId
            : identity is not null
                ? identity.Subject.Length > 0 ? $"sub:{identity.Issuer}|{identity.Subject}" : $"client:{identity.Issuer}|{identity.ClientId}"
                : "peer:" + (request.Check.Attributes.Source?.Address?.SocketAddress?.Address ?? "unknown");
        return key is null ? null : rule.Name + ":" + Hash(key);
    }

    /// <summary>Bucket keys hold a hash, so neither Redis nor memory keeps subjects or addresses in clear.</summary>
    private static string Hash(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)), 0, 16);
}
