using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Policy;

/// <summary>
/// The embedded Rego engine (the default): policies from a folder or an OPA bundle compiled once
/// into an immutable <see cref="RegoPolicy"/> shared by all concurrent Checks, evaluated at the
/// decision path with time and step limits. <see cref="TryReload"/> swaps in a changed policy only
/// if it loads and compiles; otherwise the last good one keeps serving. Without a configured path,
/// a built-in policy equivalent to <c>authenticated</c> is used.
/// </summary>
public sealed class RegoPolicyEngine : IPolicyEngine
{
    /// <summary>The policy used when no <c>Policy:Path</c> is configured: allow iff a token validated.</summary>
    public const string BuiltInPolicy = """
        package envoy.authz

        import rego.v1

        default allow := false

        allow if input.identity.subject
        """;

    private readonly PolicyOptions _options;
    private readonly string _decisionRef;
    private readonly AuthzMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly object _reloadGate = new();
    private volatile Loaded? _current;
    private string? _lastStamp;
    private readonly HttpClient? _bundleHttp;
    private readonly Resilience.DependencyGuard? _bundleGuard;
    private string? _bundleEtag;
    private readonly ServiceRegoHost? _host;

    /// <summary>
    /// Loads and compiles the configured policy; throws <see cref="PolicyLoadException"/> if it
    /// cannot (fail fast at start). A remote bundle is fetched by <see cref="TryReloadRemoteAsync"/>
    /// instead; the engine is not ready until the first one has loaded.
    /// </summary>
    public RegoPolicyEngine(AuthzOptions options, AuthzMetrics metrics, TimeProvider time, ILogger<RegoPolicyEngine> logger,
        IHttpClientFactory? clients = null, Resilience.DependencyGuards? guards = null)
    {
        _options = options.Policy;
        _decisionRef = DecisionPaths.ToRef(options.Policy.DecisionPath);
        _metrics = metrics;
        _time = time;
        _logger = logger;
        if (ServiceRegoHost.IsEnabled(_options))
        {
            _host = new ServiceRegoHost(_options, (clients ?? throw new ArgumentNullException(nameof(clients), "http.send needs an HTTP client")).CreateClient("policy-http-send"));
        }
        if (_options.BundleUrl is not null)
        {
            _bundleHttp = (clients ?? throw new ArgumentNullException(nameof(clients), "a bundle URL needs an HTTP client")).CreateClient("policy-bundle");
            _bundleGuard = guards?.For("policy-bundle", _options.BundleTimeout);
            return;
        }
        if (_options.Path is null)
        {
            _current = Compile(PolicyBundle.FromFiles([("builtin/authenticated.rego", System.Text.Encoding.UTF8.GetBytes(BuiltInPolicy))]));
            return;
        }
        _lastStamp = PolicyBundle.Stamp(_options.Path);
        try
        {
            _current = Compile(PolicyBundle.Load(_options.Path));
            _metrics.PolicyReloads.WithLabels("success").Inc();
            PolicyLog.PolicyLoaded(_logger, _options.Path, _current.Bundle.Modules.Count, _current.Bundle.Revision);
        }
        catch (PolicyLoadException)
        {
            _metrics.PolicyReloads.WithLabels("failure").Inc();
            throw;
        }
    }

    /// <inheritdoc />
    public string Name => PolicyEngines.Rego;

    /// <inheritdoc />
    public bool Ready => _current is not null;

    /// <inheritdoc />
    public bool NeedsInput => true;

    /// <summary>The policy now serving.</summary>
    public RegoPolicy Policy => _current!.Policy;

    /// <summary>What policies may reach outside (null when nothing is configured).</summary>
    internal RegoHost? Host => _host;

    /// <summary>The bundle now serving.</summary>
    public PolicyBundle Bundle => _current!.Bundle;

    /// <inheritdoc />
    public ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken)
    {
        var loaded = _current!;
        var result = loaded.Policy.Evaluate(_decisionRef, context.Input, new RegoEvalOptions
        {
            CancellationToken = cancellationToken,
            Timeout = _options.EvaluationTimeout,
            MaxSteps = _options.MaxEvaluationSteps,
            TimeProvider = _time,
            Host = _host,
        });
        if (result.Error is { } error)
        {
            PolicyLog.EvaluationFailed(_logger, error.Code, error.Message);
            return ValueTask.FromResult(PolicyResult.Error(ReasonCode.PolicyError, "the policy failed to evaluate"));
        }
        return ValueTask.FromResult(PolicyResult.Of(result.IsDefined ? result.Value : null));
    }

    /// <summary>
    /// Reloads when the policy's files changed. A policy that fails to load or compile is rejected,
    /// logged and counted, and the last good one stays. Returns true when a new policy took over.
    /// </summary>
    public bool TryReload(bool force = false)
    {
        if (_options.Path is null)
        {
            return false;
        }
        lock (_reloadGate)
        {
            var stamp = PolicyBundle.Stamp(_options.Path);
            if (!force && stamp == _lastStamp)
            {
                return false;
            }
            _lastStamp = stamp;
            try
            {
                var bundle = PolicyBundle.Load(_options.Path);
                if (!force && bundle.Fingerprint == _current?.Bundle.Fingerprint)
                {
                    return false;
                }
                TakeOver(bundle, _options.Path);
                return true;
            }
            catch (PolicyLoadException ex)
            {
                Reject(ex, _options.Path);
                return false;
            }
        }
    }

    /// <summary>
    /// Polls <see cref="PolicyOptions.BundleUrl"/> once (<c>If-None-Match</c> with the last ETag),
    /// under the <c>policy-bundle</c> circuit breaker. A new bundle that loads and compiles takes
    /// over; a failed download or a broken bundle keeps the last good policy (OPA does the same).
    /// Returns true when a new policy took over.
    /// </summary>
    public async Task<bool> TryReloadRemoteAsync(CancellationToken cancellationToken)
    {
        if (_bundleHttp is null || _options.BundleUrl is null)
        {
            return false;
        }
        try
        {
            async ValueTask<(int Status, byte[]? Body, string? ETag)> Download(CancellationToken ct)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, _options.BundleUrl);
                if (_bundleEtag is not null && _current is not null)
                {
                    request.Headers.TryAddWithoutValidation("If-None-Match", _bundleEtag);
                }
                using var response = await _bundleHttp.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                if (response.StatusCode == System.Net.HttpStatusCode.NotModified)
                {
                    return (304, null, _bundleEtag);
                }
                response.EnsureSuccessStatusCode();
                if (response.Content.Headers.ContentLength is > 64L << 20)
                {
                    throw new PolicyLoadException(["the bundle is larger than 64 MiB"]);
                }
                var body = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
                return ((int)response.StatusCode, body, response.Headers.ETag?.ToString());
            }

            var (status, bytes, etag) = _bundleGuard is null
                ? await Download(cancellationToken).ConfigureAwait(false)
                : await _bundleGuard.ExecuteAsync(Download, cancellationToken).ConfigureAwait(false);
            if (status == 304 || bytes is null)
            {
                return false;
            }
            var bundle = PolicyBundle.FromTarGz(bytes, _options.BundleUrl);
            if (bundle.Fingerprint == _current?.Bundle.Fingerprint)
            {
                _bundleEtag = etag;
                return false;
            }
            TakeOver(bundle, _options.BundleUrl);
            _bundleEtag = etag;
            return true;
        }
        catch (PolicyLoadException ex)
        {
            Reject(ex, _options.BundleUrl);
            return false;
        }
        catch (Exception ex) when (ex is Resilience.DependencyUnavailableException or HttpRequestException)
        {
            _metrics.PolicyReloads.WithLabels("failure").Inc();
            PolicyLog.BundleDownloadFailed(_logger, _options.BundleUrl, ex is Resilience.DependencyUnavailableException d ? d.Kind : ex.GetType().Name);
            return false;
        }
    }

    /// <summary>Compiles <paramref name="bundle"/> and makes it the serving policy (throws <see cref="PolicyLoadException"/> if it does not compile).</summary>
    private void TakeOver(PolicyBundle bundle, string origin)
    {
        _current = Compile(bundle);
        _metrics.PolicyReloads.WithLabels("success").Inc();
        PolicyLog.PolicyLoaded(_logger, origin, bundle.Modules.Count, bundle.Revision);
    }

    private void Reject(PolicyLoadException ex, string origin)
    {
        _metrics.PolicyReloads.WithLabels("failure").Inc();
        PolicyLog.PolicyRejected(_logger, origin, ex.Errors.Count, string.Join(" | ", ex.Errors.Take(10)));
    }

    private static Loaded Compile(PolicyBundle bundle)
    {
        var result = RegoCompiler.Compile(bundle.Modules, bundle.Data);
        if (!result.Success)
        {
            throw new PolicyLoadException([.. result.Errors.Select(e => $"{e.File}:{e.Line}:{e.Column}: {e.Code}: {e.Message}")]);
        }
        return new Loaded(result.Policy!, bundle);
    }

    private sealed record Loaded(RegoPolicy Policy, PolicyBundle Bundle);
}
