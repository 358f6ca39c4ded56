using System.Security.Cryptography;
using System.Text;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.Caching.Memory;

namespace EnvoyAuthz.Identity;

/// <summary>
/// Validated tokens by SHA-256 of the token (the token itself is never kept): bounded in entries,
/// each entry living no longer than its token and <see cref="Configuration.IdentityOptions.CacheMaxLifetime"/>.
/// Expiry is also checked on every hit against the injected clock.
/// </summary>
public sealed class ValidatedTokenCache : IDisposable
{
    private readonly MemoryCache? _cache;
    private readonly TimeProvider _time;
    private readonly TimeSpan _maxLifetime;
    private readonly AuthzMetrics _metrics;

    /// <summary>Creates a cache of at most <paramref name="size"/> entries (0 disables it).</summary>
    public ValidatedTokenCache(int size, TimeSpan maxLifetime, TimeProvider time, AuthzMetrics metrics)
    {
        _time = time;
        _maxLifetime = maxLifetime;
        _metrics = metrics;
        if (size > 0)
        {
            _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = size, CompactionPercentage = 0.1, TrackStatistics = true });
        }
    }

    /// <summary>The cache key of a token: its SHA-256, hex.</summary>
    public static string KeyOf(string token)
    {
        Span<byte> hash = stackalloc byte[32];
        var max = Encoding.UTF8.GetMaxByteCount(token.Length);
        var buffer = max <= 4096 ? stackalloc byte[max] : new byte[max];
        var n = Encoding.UTF8.GetBytes(token, buffer);
        SHA256.HashData(buffer[..n], hash);
        return Convert.ToHexString(hash);
    }

    /// <summary>A cached identity still within its lifetime.</summary>
    public bool TryGet(string key, out CallerIdentity identity)
    {
        if (_cache is not null && _cache.TryGetValue(key, out var entry) && entry is Entry e)
        {
            if (_time.GetUtcNow() < e.Until)
            {
                identity = e.Identity;
                return true;
            }
            _cache.Remove(key);
        }
        identity = null!;
        return false;
    }

    /// <summary>Caches an identity until the earlier of its expiry and the maximum lifetime.</summary>
    public void Add(string key, CallerIdentity identity)
    {
        if (_cache is null)
        {
            return;
        }
        var now = _time.GetUtcNow();
        var until = identity.ExpiresAt < now + _maxLifetime ? identity.ExpiresAt : now + _maxLifetime;
        if (until <= now)
        {
            return;
        }
        using (var entry = _cache.CreateEntry(key))
        {
            entry.Value = new Entry(identity, until);
            entry.Size = 1;
            entry.AbsoluteExpirationRelativeToNow = until - now;
        }
        _metrics.TokenCacheEntries.Set(_cache.Count);
    }

    /// <inheritdoc />
    public void Dispose() => _cache?.Dispose();

    private sealed record Entry(CallerIdentity Identity, DateTimeOffset Until);
}
