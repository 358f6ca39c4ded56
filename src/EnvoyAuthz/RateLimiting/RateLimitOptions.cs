using System.Text.RegularExpressions;

namespace EnvoyAuthz.Configuration;

/// <summary>Rate limits per identity or per Airflow connection. Section <c>EnvoyAuthz:RateLimits</c>.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Turn rate limiting on. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary><c>local</c> (token buckets in this process) or <c>redis</c> (one limit shared by every replica; falls back to local when Redis is unreachable). Default <c>local</c>.</summary>
    public string Backend { get; set; } = RateLimitBackends.Local;

    /// <summary>The shared backend, for <c>redis</c>.</summary>
    public RedisRateLimitOptions Redis { get; set; } = new();

    /// <summary>The rules; a request is checked against every rule that matches it. Default none.</summary>
    public List<RateLimitRule> Rules { get; set; } = [];
}

/// <summary>Backends of <see cref="RateLimitOptions.Backend"/>.</summary>
public static class RateLimitBackends
{
    /// <summary>In-process token buckets.</summary>
    public const string Local = "local";
    /// <summary>Token buckets in Redis, shared by replicas.</summary>
    public const string Redis = "redis";
}

/// <summary>Where the shared limits live.</summary>
public sealed class RedisRateLimitOptions
{
    /// <summary>StackExchange.Redis configuration string, e.g. <c>redis:6379,password=…</c>. Default <c>127.0.0.1:6379</c>. The password is never logged.</summary>
    public string Configuration { get; set; } = "127.0.0.1:6379";

    /// <summary>Prefix of every key. Default <c>envoy-authz:rl:</c>.</summary>
    public string KeyPrefix { get; set; } = "envoy-authz:rl:";

    /// <summary>Longest one Redis round trip may take before the local limit decides. Default 25 ms; range 1 ms–1 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(25);
}

/// <summary>One rate limit: a token bucket of <see cref="Burst"/> permits refilled at <see cref="Limit"/> per <see cref="Window"/>, per key.</summary>
public sealed class RateLimitRule
{
    /// <summary>Name (metric label; routes select it with the context extension <c>rate_limit</c>). Required; <c>[A-Za-z0-9_.-]+</c>; unique.</summary>
    public string Name { get; set; } = "";

    /// <summary>What the bucket is per: <c>identity</c> (token subject, else client id, else the peer address) or <c>connection</c> (the Airflow connection; requests without one are not limited by this rule). Default <c>identity</c>.</summary>
    public string Key { get; set; } = RateLimitKeys.Identity;

    /// <summary>Permits per <see cref="Window"/>. Required; range 1–1000000.</summary>
    public int Limit { get; set; }

    /// <summary>Refill window. Default 1 s; range 1 ms–1 d.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Bucket size (permits available at once). Default <see cref="Limit"/>; range 1–1000000.</summary>
    public int? Burst { get; set; }

    /// <summary>Only requests whose normalised path (decoded once, dot segments removed, slashes merged) starts with this. Default any path.</summary>
    public string? PathPrefix { get; set; }

    /// <summary>Only these methods. Default any.</summary>
    public List<string> Methods { get; set; } = [];

    /// <summary>Only these Airflow connections. Default any.</summary>
    public List<string> ConnectionIds { get; set; } = [];

    /// <summary>Only routes whose Envoy config sets <c>context_extensions: {rate_limit: NAME}</c> to this rule's name. Default false (all routes).</summary>
    public bool RouteOnly { get; set; }

    /// <summary>Apply the rule only when a policy's decision names it (<c>"rate_limit": NAME</c>), never by matching. Default false.</summary>
    public bool PolicyOnly { get; set; }

    internal int EffectiveBurst => Burst ?? Limit;
}

/// <summary>Values of <see cref="RateLimitRule.Key"/>.</summary>
public static class RateLimitKeys
{
    /// <summary>Per caller.</summary>
    public const string Identity = "identity";
    /// <summary>Per Airflow connection.</summary>
    public const string Connection = "connection";
}

/// <summary>Validation of <see cref="RateLimitOptions"/>.</summary>
public static partial class RateLimitOptionsValidator
{
    /// <summary>Adds every problem to <paramref name="errors"/>.</summary>
    public static void Collect(RateLimitOptions o, string prefix, List<string> errors)
    {
        if (o.Backend is not (RateLimitBackends.Local or RateLimitBackends.Redis))
        {
            errors.Add($"{prefix}:Backend '{o.Backend}' must be 'local' or 'redis'.");
        }
        if (o.Redis.Timeout < TimeSpan.FromMilliseconds(1) || o.Redis.Timeout > TimeSpan.FromSeconds(1))
        {
            errors.Add($"{prefix}:Redis:Timeout is {o.Redis.Timeout}; it must be between 1 ms and 1 s.");
        }
        if (o.Backend == RateLimitBackends.Redis && string.IsNullOrWhiteSpace(o.Redis.Configuration))
        {
            errors.Add($"{prefix}:Redis:Configuration is required for the redis backend.");
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < o.Rules.Count; i++)
        {
            var r = o.Rules[i];
            var k = $"{prefix}:Rules:{i}";
            if (string.IsNullOrWhiteSpace(r.Name) || !LabelSafe().IsMatch(r.Name))
            {
                errors.Add($"{k}:Name is required: letters, digits, '_', '-', '.' (it becomes a metric label).");
            }
            else if (!names.Add(r.Name))
            {
                errors.Add($"{k}:Name '{r.Name}' is used twice.");
            }
            if (r.Key is not (RateLimitKeys.Identity or RateLimitKeys.Connection))
            {
                errors.Add($"{k}:Key '{r.Key}' must be 'identity' or 'connection'.");
            }
            if (r.Limit is < 1 or > 1_000_000)
            {
                errors.Add($"{k}:Limit is {r.Limit}; it must be between 1 and 1000000.");
            }
            if (r.Burst is < 1 or > 1_000_000)
            {
                errors.Add($"{k}:Burst is {r.Burst}; it must be between 1 and 1000000.");
            }
            if (r.Window < TimeSpan.FromMilliseconds(1) || r.Window > TimeSpan.FromDays(1))
            {
                errors.Add($"{k}:Window is {r.Window}; it must be between 1 ms and 1 day.");
            }
        }
        if (o.Enabled && o.Rules.Count == 0)
        {
            errors.Add($"{prefix}:Rules must list at least one rule when rate limiting is enabled.");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex LabelSafe();
}
