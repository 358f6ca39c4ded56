using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.RateLimiting;

/// <summary>The rate-limit stage: whether this request may go on under every rule that matches it.</summary>
public interface IRateLimiter
{
    /// <summary>Takes one permit from every matching rule's bucket; the first empty bucket denies.</summary>
    ValueTask<RateLimitResult> AcquireAsync(AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken);

    /// <summary>Takes one permit from the bucket of the rule a policy named; null when no rule has that name.</summary>
    ValueTask<RateLimitResult?> AcquireNamedAsync(string rule, AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken);
}

/// <summary>Outcome of <see cref="IRateLimiter.AcquireAsync"/>. <see cref="Rule"/> is null when no rule matched.</summary>
/// <param name="Allowed">Whether every matching bucket had a permit.</param>
/// <param name="Rule">The rule that decided (the denying one, or the tightest one on allow).</param>
/// <param name="Limit">That rule's limit per window.</param>
/// <param name="Remaining">Permits left in that bucket.</param>
/// <param name="RetryAfter">When a permit will be available again (deny).</param>
/// <param name="Window">The rule's window.</param>
public readonly record struct RateLimitResult(bool Allowed, string? Rule, int Limit, int Remaining, TimeSpan RetryAfter, TimeSpan Window)
{
    /// <summary>No rule applies.</summary>
    public static RateLimitResult NotLimited { get; } = new(true, null, 0, 0, TimeSpan.Zero, TimeSpan.Zero);

    /// <summary>The <c>RateLimit-*</c> headers (IETF draft: limit, remaining, reset in seconds), plus <c>Retry-After</c> on deny.</summary>
    public IEnumerable<KeyValuePair<string, string>> Headers()
    {
        if (Rule is null)
        {
            yield break;
        }
        var reset = Allowed ? Window : RetryAfter;
        var resetSeconds = Math.Max(1, (long)Math.Ceiling(reset.TotalSeconds));
        yield return new("ratelimit-limit", Limit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return new("ratelimit-remaining", Math.Max(0, Remaining).ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return new("ratelimit-reset", resetSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!Allowed)
        {
            yield return new("retry-after", resetSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}

/// <summary>No limits configured.</summary>
public sealed class NoRateLimiter : IRateLimiter
{
    /// <inheritdoc />
    public ValueTask<RateLimitResult> AcquireAsync(AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(RateLimitResult.NotLimited);

    /// <inheritdoc />
    public ValueTask<RateLimitResult?> AcquireNamedAsync(string rule, AuthzRequest request, CallerIdentity? identity, string? connectionId, CancellationToken cancellationToken) =>
        ValueTask.FromResult<RateLimitResult?>(null);
}
