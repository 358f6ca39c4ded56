using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.RateLimiting;

/// <summary>
/// Token buckets in this process (System.Threading.RateLimiting), one partitioned limiter per rule,
/// one bucket per key. Also the fallback of <see cref="RedisRateLimiter"/>.
/// </summary>
public sealed class LocalRateLimiter : IRateLimiter, IDisposable
{
    private readonly IReadOnlyList<RateLimitRule> _rules;
    private readonly ConcurrentDictionary<string, PartitionedRateLimiter<string>> _limiters = new(StringComparer.Ordinal);
    private readonly AuthzMetrics _metrics;

    /// <summary>Creates the limiter for the configured rules.</summary>
    public LocalRateLimiter(AuthzOptions options, AuthzMetrics metrics)
    {
        _rules = options.RateLimits.Rules;
        _metrics = metrics;
    }

    /// <inheritdoc />
    public ValueTask<RateLimitResult> AcquireAsync(AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Acquire(RateLimitKeyResolver.Matches(_rules, request, identity, connectionId)));

    /// <inheritdoc />
    public ValueTask<RateLimitResult?> AcquireNamedAsync(string rule, AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken)
    {
        var (named, key) = RateLimitKeyResolver.Named(_rules, rule, request, identity, connectionId);
        return ValueTask.FromResult<RateLimitResult?>(named is null ? null : key is null ? RateLimitResult.NotLimited : Acquire([(named, key)]));
    }

    internal RateLimitResult Acquire(IEnumerable<(RateLimitRule Rule, string Key)> matches)
    {
        var tightest = RateLimitResult.NotLimited;
        foreach (var (rule, key) in matches)
        {
            var limiter = _limiters.GetOrAdd(rule.Name, _ => PartitionedRateLimiter.Create<string, string>(k => RateLimitPartition.GetTokenBucketLimiter(k, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = rule.EffectiveBurst,
                TokensPerPeriod = rule.Limit,
                ReplenishmentPeriod = rule.Window,
                QueueLimit = 0,
                AutoReplenishment = true,
            })));
            using var lease = limiter.AttemptAcquire(key);
            var remaining = (int)(limiter.GetStatistics(key)?.CurrentAvailablePermits ?? 0);
            if (!lease.IsAcquired)
            {
                var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : rule.Window;
                _metrics.RateLimited.WithLabels(rule.Name).Inc();
                return new RateLimitResult(false, rule.Name, rule.Limit, 0, retry, rule.Window);
            }
            if (tightest.Rule is null || remaining < tightest.Remaining)
            {
                tightest = new RateLimitResult(true, rule.Name, rule.Limit, remaining, TimeSpan.Zero, rule.Window);
            }
        }
        return tightest;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var limiter in _limiters.Values)
        {
            limiter.Dispose();
        }
    }
}
