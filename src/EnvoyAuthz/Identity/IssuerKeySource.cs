using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>
/// One issuer's signing keys: fetched through OIDC discovery (or an explicit JWKS URL) with
/// IdentityModel's retrievers, cached, refreshed in the background when older than the automatic
/// refresh interval (stale keys keep serving while a refresh fails), and refetched on an unknown
/// <c>kid</c> at most once per <see cref="IdentityOptions.JwksRefetchInterval"/>.
/// </summary>
/// <remarks>
/// IdentityModel's <c>ConfigurationManager.RequestRefresh</c> refreshes on a background task in
/// 8.x, so a token signed with a freshly rotated key would fail once before the new keys arrive.
/// The refetch here is awaited by the Check that needs it (single-flight), which makes "a rotated
/// key validates after one refetch" deterministic and testable with virtual time.
/// </remarks>
public sealed class IssuerKeySource
{
    private readonly IssuerOptions _issuer;
    private readonly IdentityOptions _identity;
    private readonly IDocumentRetriever? _documents;
    private readonly TimeProvider _time;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _fetchGate = new(1, 1);
    private readonly IReadOnlyList<SecurityKey> _staticKeys;
    private volatile IssuerKeySet? _current;
    private long _lastForcedFetchTicks = long.MinValue;
    private int _backgroundRefreshRunning;
    private volatile bool _lastFetchFailed;
    private readonly Resilience.DependencyGuard? _guard;

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
            _documents = new HttpDocumentRetriever(httpClient) { RequireHttps = issuer.RequireHttpsMetadata };
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

    /// <summary>The current keys, fetching them on first use; null when none could ever be had.</summary>
    public async ValueTask<IssuerKeySet?> GetKeysAsync(CancellationToken cancellationToken)
    {
        var current = _current;
        if (current is null)
        {
            return await FetchAsync("initial", force: false, cancellationToken).ConfigureAwait(false);
        }
        if (!IsStatic && _time.GetUtcNow() - current.FetchedAt > _identity.JwksMaxAge)
        {
            // Too old to trust: refresh now; if the issuer still cannot be reached, no keys (deny 503).
            return await FetchAsync("max_age", force: false, cancellationToken).ConfigureAwait(false);
        }
        if (!IsStatic && _time.GetUtcNow() - current.FetchedAt >= _identity.JwksAutomaticRefreshInterval &&
            Interlocked.CompareExchange(ref _backgroundRefreshRunning, 1, 0) == 0)
        {
            // Stale-while-revalidate: this Check uses the cached keys.
            _ = Task.Run(async () =>
            {
                try
                {
                    await FetchAsync("automatic", force: false, CancellationToken.None).ConfigureAwait(false);
                }
                finally
                {
                    Volatile.Write(ref _backgroundRefreshRunning, 0);
                }
            }, CancellationToken.None);
        }
        return current;
    }

    /// <summary>
    /// Called when a token names a <c>kid</c> the cached keys lack: refetches unless a forced
    /// refetch happened within the interval.
    /// </summary>
    /// <returns>The new keys; or null keys with <c>Failed</c> true when the fetch failed, false when it was suppressed.</returns>
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
        var last = Interlocked.Read(ref _lastForcedFetchTicks);
        if (last != long.MinValue && _time.GetUtcNow().UtcTicks - last < _identity.JwksRefetchInterval.Ticks)
        {
            IdentityLog.UnknownKidRefetchSuppressed(_logger, _issuer.Name);
            return (null, _lastFetchFailed);
        }
        var keys = await FetchAsync("unknown_kid", force: true, cancellationToken).ConfigureAwait(false);
        return (keys, keys is null);
    }

    /// <summary>Fetches keys now (used at start to become ready). Returns whether keys are loaded.</summary>
    public async Task<bool> WarmUpAsync(CancellationToken cancellationToken) =>
        IsStatic || _current is not null || await FetchAsync("startup", force: false, cancellationToken).ConfigureAwait(false) is not null;

    private async Task<IssuerKeySet?> FetchAsync(string trigger, bool force, CancellationToken cancellationToken)
    {
        var before = _current;
        await _fetchGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(before, _current) && _current is not null)
            {
                return _current; // single flight: someone else fetched while we waited
            }
            if (force)
            {
                Interlocked.Exchange(ref _lastForcedFetchTicks, _time.GetUtcNow().UtcTicks);
            }
            IReadOnlyList<SecurityKey> keys;
            try
            {
                if (_guard is not null)
                {
                    // Breaker + timeout: while the IdP's circuit is open, fetches fail fast and cached keys serve.
                    keys = await _guard.ExecuteAsync(ct => new ValueTask<IReadOnlyList<SecurityKey>>(RetrieveAsync(ct)), cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(_identity.MetadataTimeout);
                    keys = await RetrieveAsync(timeout.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _lastFetchFailed = true;
                _metrics.JwksRefreshes.WithLabels(_issuer.Name, "failure").Inc();
                var cause = ex is Resilience.DependencyUnavailableException { InnerException: { } inner } ? inner : ex;
                IdentityLog.KeysFetchFailed(_logger, _issuer.Name, trigger, cause.GetType().Name, Describe(cause));
                return null;
            }
            var merged = _staticKeys.Count == 0 ? keys : [.. keys, .. _staticKeys];
            var set = new IssuerKeySet(merged, _time.GetUtcNow());
            _current = set;
            _lastFetchFailed = false;
            _metrics.JwksRefreshes.WithLabels(_issuer.Name, "success").Inc();
            IdentityLog.KeysFetched(_logger, _issuer.Name, keys.Count, trigger);
            return set;
        }
        finally
        {
            _fetchGate.Release();
        }
    }

    private async Task<IReadOnlyList<SecurityKey>> RetrieveAsync(CancellationToken ct)
    {
        if (_issuer.JwksUrl is { } jwksUrl)
        {
            var json = await _documents!.GetDocumentAsync(jwksUrl, ct).ConfigureAwait(false);
            return [.. new JsonWebKeySet(json).GetSigningKeys()];
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
