using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Resilience;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace EnvoyAuthz.RateLimiting;

/// <summary>
/// Limits shared by every replica: one token bucket per rule and key in Redis, taken with one
/// atomic script per rule (refill by Redis' own clock, so replicas' clocks do not matter). When Redis
/// is unreachable or slow, the local limiter decides instead — counted in
/// <c>envoy_authz_rate_limit_fallbacks_total</c> — and the service stays ready.
/// </summary>
public sealed class RedisRateLimiter : IRateLimiter, IAsyncDisposable
{
    // KEYS[1] bucket; ARGV[1] capacity, ARGV[2] refill tokens per microsecond, ARGV[3] ttl ms.
    // Returns {allowed (1/0), tokens left (floor), microseconds until one token}.
    private const string TokenBucketScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local cap = tonumber(ARGV[1])
        local rate = tonumber(ARGV[2])
        local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(b[1])
        local ts = tonumber(b[2])
        if tokens == nil or ts == nil then
          tokens = cap
          ts = now
        end
        tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
        local allowed = 0
        if tokens >= 1 then
          tokens = tokens - 1
          allowed = 1
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        local wait = 0
        if allowed == 0 then
          wait = math.ceil((1 - tokens) / rate)
        end
        return {allowed, math.floor(tokens), wait}
        """;

    private readonly RateLimitOptions _options;
    private readonly LocalRateLimiter _fallback;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;
    private readonly DependencyGuard _guard;
    private readonly Lazy<Task<ConnectionMultiplexer?>> _connection;
    private long _lastFallbackLogTicks;

    /// <summary>Creates the limiter; the connection is opened in the background on first use.</summary>
    public RedisRateLimiter(AuthzOptions options, AuthzMetrics metrics, DependencyGuards guards, ILogger<RedisRateLimiter> logger)
    {
        _options = options.RateLimits;
        _fallback = new LocalRateLimiter(options, metrics);
        _metrics = metrics;
        _logger = logger;
        _guard = guards.For("redis", _options.Redis.Timeout);
        _connection = new Lazy<Task<ConnectionMultiplexer?>>(ConnectAsync);
    }

    /// <inheritdoc />
    public ValueTask<RateLimitResult> AcquireAsync(AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken) =>
        AcquireAsync(RateLimitKeyResolver.Matches(_options.Rules, request, identity, connectionId).ToList(), cancellationToken);

    /// <inheritdoc />
    public async ValueTask<RateLimitResult?> AcquireNamedAsync(string rule, AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken)
    {
        var (named, key) = RateLimitKeyResolver.Named(_options.Rules, rule, request, identity, connectionId);
        return named is null ? null : key is null ? RateLimitResult.NotLimited : await AcquireAsync([(named, key)], cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<RateLimitResult> AcquireAsync(List<(RateLimitRule Rule, string Key)> matches, CancellationToken cancellationToken)
    {
        if (matches.Count == 0)
        {
            return RateLimitResult.NotLimited;
        }
        try
        {
            var connection = _connection.Value.IsCompletedSuccessfully ? _connection.Value.Result : null;
            if (connection is null || !connection.IsConnected)
            {
                throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "not connected");
            }
            var db = connection.GetDatabase();
            var tightest = RateLimitResult.NotLimited;
            foreach (var (rule, key) in matches)
            {
                var perMicrosecond = rule.Limit / (rule.Window.TotalMilliseconds * 1000.0);
                var ttl = (long)Math.Max(1000, rule.Window.TotalMilliseconds * Math.Max(1.0, (double)rule.EffectiveBurst / rule.Limit) * 2);
                var reply = await _guard.ExecuteAsync(async ct => (RedisResult[])(await db.ScriptEvaluateAsync(TokenBucketScript,
                    [(RedisKey)(_options.Redis.KeyPrefix + key)],
                    [rule.EffectiveBurst, perMicrosecond.ToString("R", System.Globalization.CultureInfo.InvariantCulture), ttl]).WaitAsync(ct).ConfigureAwait(false))!,
                    cancellationToken).ConfigureAwait(false);
                var allowed = (long)reply[0] == 1;
                var remaining = (int)(long)reply[1];
                if (!allowed)
                {
                    _metrics.RateLimited.WithLabels(rule.Name).Inc();
                    return new RateLimitResult(false, rule.Name, rule.Limit, 0, TimeSpan.FromTicks((long)reply[2] * 10), rule.Window);
                }
                if (tightest.Rule is null || remaining < tightest.Remaining)
                {
                    tightest = new RateLimitResult(true, rule.Name, rule.Limit, remaining, TimeSpan.Zero, rule.Window);
                }
            }
            return tightest;
        }
        catch (Exception ex) when (ex is DependencyUnavailableException or RedisException or TimeoutException)
        {
            _metrics.RateLimitFallbacks.Inc();
            var now = Environment.TickCount64;
            if (now - Interlocked.Read(ref _lastFallbackLogTicks) > 10_000)
            {
                Interlocked.Exchange(ref _lastFallbackLogTicks, now);
                ResilienceLog.RateLimitBackendFallback(_logger, ex is DependencyUnavailableException d ? d.Kind : ex.GetType().Name);
            }
            return _fallback.Acquire(matches);
        }
    }

    private async Task<ConnectionMultiplexer?> ConnectAsync()
    {
        var config = ConfigurationOptions.Parse(_options.Redis.Configuration);
        config.AbortOnConnectFail = false; // keep reconnecting in the background
        config.ConnectTimeout = 2000;
        config.AsyncTimeout = Math.Max(1, (int)_options.Redis.Timeout.TotalMilliseconds);
        config.SyncTimeout = config.AsyncTimeout;
        config.ConnectRetry = 1;
        config.ClientName = "envoy-authz";
        try
        {
            return await ConnectionMultiplexer.ConnectAsync(config).ConfigureAwait(false);
        }
        catch (RedisException)
        {
            return null;
        }
    }

    /// <summary>Starts connecting (the first Checks use the local limits until connected).</summary>
    public void Warm() => _ = _connection.Value;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _fallback.Dispose();
        if (_connection.IsValueCreated && await _connection.Value.ConfigureAwait(false) is { } c)
        {
            await c.DisposeAsync().ConfigureAwait(false);
        }
    }
}
