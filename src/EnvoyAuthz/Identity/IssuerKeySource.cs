using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>
/// One issuer's signing keys: fetched through OIDC discovery (or an explicit JWKS URL), cached,
/// refreshed in the background when older than the automatic refresh interval (stale keys keep
/// serving while a refresh fails, up to <see cref="IdentityOptions.JwksMaxAge"/>), and refetched on
/// an unknown <c>kid</c> at most once per <see cref="IdentityOptions.JwksRefetchInterval"/> while
/// the issuer answers.
/// </summary>
/// <remarks>
/// <para>One fetch at a time (single flight): every trigger — first use, start-up warm-up, key age,
/// background refresh, unknown <c>kid</c> — joins the fetch in flight or starts one. A fetch is
/// bounded by <see cref="IdentityOptions.MetadataTimeout"/> in total and by
/// <see cref="IdentityOptions.MaxMetadataBytes"/>, and is never cancelled by the Check that started
/// it; each Check waits for it at most its own time budget, then is denied
/// <c>dependency_unavailable</c>.</para>
/// <para>After a failed fetch no new one starts for a backoff that doubles from 1 s up to
/// <see cref="IdentityOptions.JwksRefetchInterval"/>: Checks meanwhile use the cached keys (or are
/// denied <c>dependency_unavailable</c> when there are none young enough). The first failure is a
/// warning, repeats are Debug, and the first success after failures says so once;
/// <c>envoy_authz_jwks_refreshes_total</c> counts fetches, never Checks.</para>
/// <para>An answer without usable signing keys (<c>{"keys":[]}</c>) is a failed fetch: the cached
/// keys stay.</para>
/// </remarks>
public sealed class IssuerKeySource
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);

    private readonly IssuerOptions _issuer;
    private readonly IdentityOptions _identity;
    private readonly IDocumentRetriever? _documents;
    private readonly TimeProvider _time;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IReadOnlyList<SecurityKey> _staticKeys;
    private readonly Resilience.DependencyGuard? _guard;
    private readonly Lock _gate = new();
    private volatile IssuerKeySet? _current;
    private Task<IssuerKeySet?>? _inflight;
    private int _failures;
    private DateTimeOffset _retryAt;
    private DateTimeOffset? _lastForcedAt;

    /// <summary>Creates the key source; <paramref name="httpClient"/> is null for static-key issuers.</summary>
    public IssuerKeySource(IssuerOptions issuer, IdentityOptions identity, HttpClient? httpClient, IReadOnlyList<SecurityKey> staticKeys,
        TimeProvider time, AuthzMetrics metrics, ILogger logger, Resilience.DependencyGuard? guard = null)
    {
        _guard = guard;
        _issuer = issuer;
        _identity = identity;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _staticKeys = staticKeys;
        IsStatic = httpClient is null;
        if (httpClient is not null)
        {
            _documents = new MetadataRetriever(httpClient, issuer.RequireHttpsMetadata, identity.MaxMetadataBytes);
        }
        else
        {
            _current = new IssuerKeySet(staticKeys, time.GetUtcNow());
        }
    }

    /// <summary>The configured issuer.</summary>
    public IssuerOptions Issuer => _issuer;

    /// <summary>True when keys come only from configuration (dev key, HMAC secret).</summary>
    public bool IsStatic { get; }

    /// <summary>True once keys have loaded at least once.</summary>
    public bool Loaded => _current is not null;

    /// <summary>Fetches that failed in a row (0 after a success).</summary>
    public int ConsecutiveFailures
    {
        get
        {
            lock (_gate)
            {
                return _failures;
            }
        }
    }

    /// <summary>The fetch in flight, if any (tests wait for it).</summary>
    internal Task FetchInFlight
    {
        get
        {
            lock (_gate)
            {
                return _inflight ?? Task.CompletedTask;
            }
        }
    }

    /// <summary>
    /// The keys to validate with: the cached ones while younger than the automatic refresh interval
    /// (older ones start one background refresh and still serve), a fetch — waited for at most until
    /// <paramref name="cancellationToken"/>, the Check's budget — when there are none or they are
    /// older than <see cref="IdentityOptions.JwksMaxAge"/>. Null when no usable keys could be had.
    /// </summary>
    public async ValueTask<IssuerKeySet?> GetKeysAsync(CancellationToken cancellationToken)
    {
        var current = _current;
        if (IsStatic)
        {
            return current;
        }
        if (current is null)
        {
            return await FreshKeysAsync("initial", cancellationToken).ConfigureAwait(false);
        }
        var age = _time.GetUtcNow() - current.FetchedAt;
        if (age > _identity.JwksMaxAge)
        {
            // Too old to trust: refresh now; if the issuer cannot be reached in time, no keys (deny 503 dependency_unavailable).
            return await FreshKeysAsync("max_age", cancellationToken).ConfigureAwait(false);
        }
        if (age >= _identity.JwksAutomaticRefreshInterval)
        {
            // Stale-while-revalidate: this Check uses the cached keys; at most one refresh runs, with backoff after failures.
            _ = StartOrJoin("automatic");
        }
        return current;
    }

    /// <summary>
    /// Called when a token names a <c>kid</c> the cached keys lack. Refetches unless one is in
    /// flight (then joins it), the issuer is failing and the backoff has not passed (then
    /// <c>Failed</c>: the key cannot be checked), or a refetch succeeded within
    /// <see cref="IdentityOptions.JwksRefetchInterval"/> (then suppressed: the kid is unknown to the
    /// issuer as of that refetch).
    /// </summary>
    /// <returns>The new keys; or null keys with <c>Failed</c> true when they could not be fetched (in time), false when the refetch was suppressed.</returns>
    public async ValueTask<(IssuerKeySet? Keys, bool Failed)> RefetchForUnknownKidAsync(IssuerKeySet seen, CancellationToken cancellationToken)
    {
        if (IsStatic)
        {
            return (null, false);
        }
        var current = _current;
        if (current is not null && !ReferenceEquals(current, seen))
        {
            return (current, false); // another Check already refetched
        }
        Task<IssuerKeySet?> fetch;
        lock (_gate)
        {
            if (_inflight is { } running)
            {
                fetch = running;
            }
            else
            {
                var now = _time.GetUtcNow();
                if (_failures > 0)
                {
                    if (now < _retryAt)
                    {
                        return (null, true); // the issuer is failing: retried when the backoff has passed
                    }
                }
                else if (_lastForcedAt is { } last && now - last < _identity.JwksRefetchInterval)
                {
                    IdentityLog.UnknownKidRefetchSuppressed(_logger, _issuer.Name);
                    return (null, false);
                }
                _lastForcedAt = now;
                fetch = Start("unknown_kid");
            }
        }
        if (!await WaitAsync(fetch, "unknown_kid", cancellationToken).ConfigureAwait(false))
        {
            return (null, true);
        }
        var keys = await fetch.ConfigureAwait(false);
        if (keys is not null)
        {
            return (keys, false);
        }
        var latest = _current;
        return latest is not null && !ReferenceEquals(latest, seen) ? (latest, false) : (null, true);
    }

    /// <summary>Fetches keys now (used at start to become ready). Returns whether keys are loaded.</summary>
    public async Task<bool> WarmUpAsync(CancellationToken cancellationToken)
    {
        if (IsStatic || _current is not null)
        {
            return true;
        }
        if (StartOrJoin("startup") is { } fetch)
        {
            await fetch.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        return _current is not null;
    }

    /// <summary>Joins or starts a fetch, waits for it within the Check's budget, and returns keys younger than the max age, or null.</summary>
    private async ValueTask<IssuerKeySet?> FreshKeysAsync(string trigger, CancellationToken cancellationToken)
    {
        if (StartOrJoin(trigger) is { } fetch)
        {
            await WaitAsync(fetch, trigger, cancellationToken).ConfigureAwait(false);
        }
        var latest = _current;
        return latest is not null && _time.GetUtcNow() - latest.FetchedAt <= _identity.JwksMaxAge ? latest : null;
    }

    /// <summary>Waits for <paramref name="fetch"/> until the Check's budget ends; false when it ended first (the fetch goes on).</summary>
    private async ValueTask<bool> WaitAsync(Task<IssuerKeySet?> fetch, string trigger, CancellationToken cancellationToken)
    {
        try
        {
            await fetch.WaitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            IdentityLog.KeysWaitAbandoned(_logger, _issuer.Name, trigger);
            return false;
        }
    }

    /// <summary>The fetch in flight, a new one, or null while backing off after failures.</summary>
    private Task<IssuerKeySet?>? StartOrJoin(string trigger)
    {
        lock (_gate)
        {
            if (_inflight is { } running)
            {
                return running;
            }
            var now = _time.GetUtcNow();
            return _failures > 0 && now < _retryAt ? null : Start(trigger);
        }
    }

    /// <summary>Starts a fetch; the caller holds <see cref="_gate"/> and has checked none is in flight.</summary>
    private Task<IssuerKeySet?> Start(string trigger)
    {
        var task = Task.Run(() => FetchAsync(trigger));
        _inflight = task;
        return task;
    }

    /// <summary>One fetch, bounded by MetadataTimeout in total; never throws.</summary>
    private async Task<IssuerKeySet?> FetchAsync(string trigger)
    {
        IReadOnlyList<SecurityKey>? keys = null;
        Exception? error = null;
        try
        {
            if (_guard is not null)
            {
                // Breaker + timeout (MetadataTimeout for the whole fetch): while the IdP's circuit is open, fetches fail fast.
                keys = await _guard.ExecuteAsync(ct => new ValueTask<IReadOnlyList<SecurityKey>>(RetrieveAsync(ct)), CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                using var deadline = new CancellationTokenSource(_identity.MetadataTimeout, _time);
                keys = await RetrieveAsync(deadline.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            error = ex;
        }

        IssuerKeySet? set = null;
        int failuresBefore;
        int failures;
        TimeSpan retryIn = TimeSpan.Zero;
        lock (_gate)
        {
            failuresBefore = _failures;
            if (keys is not null)
            {
                set = new IssuerKeySet(_staticKeys.Count == 0 ? keys : [.. keys, .. _staticKeys], _time.GetUtcNow());
                _current = set;
                _failures = 0;
            }
            else
            {
                _failures++;
                retryIn = Backoff(_failures);
                _retryAt = _time.GetUtcNow() + retryIn;
            }
            failures = _failures;
            _inflight = null;
        }

        if (set is not null)
        {
            _metrics.JwksRefreshes.WithLabels(_issuer.Name, "success").Inc();
            if (failuresBefore > 0)
            {
                IdentityLog.KeysRecovered(_logger, _issuer.Name, keys!.Count, trigger, failuresBefore);
            }
            else
            {
                IdentityLog.KeysFetched(_logger, _issuer.Name, keys!.Count, trigger);
            }
            return set;
        }
        _metrics.JwksRefreshes.WithLabels(_issuer.Name, "failure").Inc();
        var cause = error is Resilience.DependencyUnavailableException { InnerException: { } inner } ? inner : error!;
        if (failuresBefore == 0)
        {
            IdentityLog.KeysFetchFailed(_logger, _issuer.Name, trigger, cause.GetType().Name, Describe(cause));
        }
        else
        {
            IdentityLog.KeysStillFailing(_logger, _issuer.Name, trigger, failures, cause.GetType().Name, Describe(cause), retryIn.TotalSeconds);
        }
        return null;
    }

    /// <summary>1 s after the first failure, doubling, at most <see cref="IdentityOptions.JwksRefetchInterval"/>.</summary>
    private TimeSpan Backoff(int failures)
    {
        var cap = _identity.JwksRefetchInterval > FirstRetryDelay ? _identity.JwksRefetchInterval : FirstRetryDelay;
        var ticks = FirstRetryDelay.Ticks << Math.Min(failures - 1, 30);
        return ticks <= 0 || ticks > cap.Ticks ? cap : TimeSpan.FromTicks(ticks);
    }

    private async Task<IReadOnlyList<SecurityKey>> RetrieveAsync(CancellationToken ct)
    {
        if (_issuer.JwksUrl is { } jwksUrl)
        {
            var json = await _documents!.GetDocumentAsync(jwksUrl, ct).ConfigureAwait(false);
            var fromJwks = new JsonWebKeySet(json).GetSigningKeys();
            if (fromJwks.Count == 0)
            {
                // An empty (or unusable) JWKS never replaces the cached keys, as on the discovery path.
                throw new InvalidOperationException("the JWKS holds no usable signing keys");
            }
            return [.. fromJwks];
        }
        var discovery = _issuer.DiscoveryUrl ?? _issuer.Issuer.TrimEnd('/') + "/.well-known/openid-configuration";
        var config = await OpenIdConnectConfigurationRetriever.GetAsync(discovery, _documents!, ct).ConfigureAwait(false);
        if (!string.Equals(config.Issuer, _issuer.Issuer, StringComparison.Ordinal))
        {
            IdentityLog.IssuerMismatch(_logger, _issuer.Name, config.Issuer ?? "", _issuer.Issuer);
        }
        if (config.SigningKeys.Count == 0)
        {
            throw new InvalidOperationException("the JWKS holds no usable signing keys");
        }
        return [.. config.SigningKeys];
    }

    private static string Describe(Exception ex)
    {
        // IdentityModel messages name URLs and status codes, no secrets; keep them short.
        var message = ex.InnerException is { } inner ? $"{ex.Message} ({inner.GetType().Name}: {inner.Message})" : ex.Message;
        return message.Length > 400 ? message[..400] : message;
    }
}

/// <summary>An immutable set of one issuer's keys, with the validation parameters built for it.</summary>
public sealed class IssuerKeySet(IReadOnlyList<SecurityKey> keys, DateTimeOffset fetchedAt)
{
    /// <summary>The signing keys.</summary>
    public IReadOnlyList<SecurityKey> Keys { get; } = keys;

    /// <summary>When they were fetched.</summary>
    public DateTimeOffset FetchedAt { get; } = fetchedAt;

    /// <summary>Key ids present.</summary>
    public IReadOnlySet<string> KeyIds { get; } = keys.Where(k => k.KeyId is not null).Select(k => k.KeyId).ToHashSet(StringComparer.Ordinal);

    /// <summary>Validation parameters for these keys, built once by the validator.</summary>
    internal TokenValidationParameters? Parameters { get; set; }
}
