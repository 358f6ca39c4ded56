using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Resilience;
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
    private readonly Loaded? _builtIn;
    private readonly ReloadingSource<Loaded>? _source;
    private readonly HttpClient? _bundleHttp;
    private readonly DependencyGuard? _bundleGuard;
    private readonly ServiceRegoHost? _host;
    private string? _lastStamp;
    private bool _forceReload;
    private string? _bundleEtag;

    /// <summary>
    /// Loads and compiles the configured policy; throws <see cref="PolicyLoadException"/> if it
    /// cannot (fail fast at start). A remote bundle is fetched by <see cref="TryReloadRemoteAsync"/>
    /// instead; the engine is not ready until the first one has loaded.
    /// </summary>
    public RegoPolicyEngine(AuthzOptions options, AuthzMetrics metrics, TimeProvider time, ILogger<RegoPolicyEngine> logger,
        IHttpClientFactory? clients = null, DependencyGuards? guards = null)
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
        if (_options.BundleUrl is { } url)
        {
            _bundleHttp = (clients ?? throw new ArgumentNullException(nameof(clients), "a bundle URL needs an HTTP client")).CreateClient("policy-bundle");
            _bundleGuard = guards?.For("policy-bundle", _options.BundleTimeout);
            _source = new ReloadingSource<Loaded>("policy-bundle", LoadRemoteAsync, Hooks(url), time);
            return;
        }
        if (_options.Path is not { } path)
        {
            _builtIn = Compile(PolicyBundle.FromFiles([("builtin/authenticated.rego", System.Text.Encoding.UTF8.GetBytes(BuiltInPolicy))]));
            return;
        }
        _source = new ReloadingSource<Loaded>("policy", LoadPath, Hooks(path), time);
        try
        {
            _source.LoadInitial();
        }
        catch (SourceLoadException ex)
        {
            throw ex.InnerException as PolicyLoadException ?? new PolicyLoadException(ex.Problems);
        }
    }

    /// <inheritdoc />
    public string Name => PolicyEngines.Rego;

    /// <inheritdoc />
    public bool Ready => Current is not null;

    /// <inheritdoc />
    public bool NeedsInput => true;

    /// <summary>The policy now serving.</summary>
    public RegoPolicy Policy => Current!.Policy;

    /// <summary>What policies may reach outside (null when nothing is configured).</summary>
    internal RegoHost? Host => _host;

    /// <summary>The bundle now serving.</summary>
    public PolicyBundle Bundle => Current!.Bundle;

    private Loaded? Current => _builtIn ?? _source?.Current;

    /// <inheritdoc />
    public ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken)
    {
        var loaded = Current!;
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
    /// Reloads when the policy's files changed. A policy that fails to load or compile — or a
    /// deleted one — is rejected, logged once and counted, and the last good one stays. Returns
    /// true when a new policy took over.
    /// </summary>
    public bool TryReload(bool force = false)
    {
        if (_options.Path is null || _source is null)
        {
            return false;
        }
        _forceReload = force;
        try
        {
            return _source.Reload() == ReloadOutcome.Updated;
        }
        finally
        {
            _forceReload = false;
        }
    }

    /// <summary>
    /// Polls <see cref="PolicyOptions.BundleUrl"/> once (<c>If-None-Match</c> with the last ETag),
    /// under the <c>policy-bundle</c> circuit breaker, reading at most
    /// <see cref="PolicyOptions.MaxBundleBytes"/>. A new bundle that loads and compiles takes
    /// over; a failed download or a broken bundle keeps the last good policy (OPA does the same).
    /// Returns true when a new policy took over.
    /// </summary>
    public async Task<bool> TryReloadRemoteAsync(CancellationToken cancellationToken) =>
        _bundleHttp is not null && _source is not null &&
        await _source.ReloadAsync(cancellationToken).ConfigureAwait(false) == ReloadOutcome.Updated;

    /// <summary>
    /// Keeps the policy current until <paramref name="cancellationToken"/> fires: a remote bundle
    /// is polled (every second until the first one loaded); a folder or bundle file is watched and
    /// polled every <see cref="PolicyOptions.ReloadInterval"/>. Never faults.
    /// </summary>
    internal async Task RunReloadsAsync(CancellationToken cancellationToken)
    {
        if (_source is null)
        {
            return;
        }
        if (_bundleHttp is not null)
        {
            await _source.RunAsync(_ => _source.LoadedOnce ? _options.BundlePollInterval : TimeSpan.FromSeconds(1), TimeSpan.Zero, cancellationToken)
                .ConfigureAwait(false);
            return;
        }
        if (_options.Path is not { } path || _options.ReloadInterval <= TimeSpan.Zero)
        {
            return;
        }
        var folder = Directory.Exists(path);
        using var watcher = FileWatch.Create(folder ? path : Path.GetDirectoryName(Path.GetFullPath(path))!, recursive: folder, _source.Signal);
        // Let a burst of writes settle before reading.
        await _source.RunAsync(_ => _options.ReloadInterval, TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The folder or bundle file, when its stamp or content changed; null when nothing changed.</summary>
    private ValueTask<Loaded?> LoadPath(Loaded? current, CancellationToken cancellationToken)
    {
        var path = _options.Path!;
        var stamp = PolicyBundle.Stamp(path);
        if (current is not null && !_forceReload && stamp == _lastStamp)
        {
            return ValueTask.FromResult<Loaded?>(null);
        }
        // Remembered even when the load fails: a broken policy is reported once, then retried when it changes again.
        _lastStamp = stamp;
        var bundle = PolicyBundle.Load(path, _options.MaxBundleBytes);
        if (current is not null && !_forceReload && bundle.Fingerprint == current.Bundle.Fingerprint)
        {
            return ValueTask.FromResult<Loaded?>(null);
        }
        return ValueTask.FromResult<Loaded?>(Compile(bundle));
    }

    /// <summary>The remote bundle, when it changed; null on <c>304</c> or the same content.</summary>
    private async ValueTask<Loaded?> LoadRemoteAsync(Loaded? current, CancellationToken cancellationToken)
    {
        var url = _options.BundleUrl!;
        async ValueTask<(int Status, byte[]? Body, string? ETag)> Download(CancellationToken ct)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (_bundleEtag is not null && current is not null)
            {
                request.Headers.TryAddWithoutValidation("If-None-Match", _bundleEtag);
            }
            using var response = await _bundleHttp!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (response.StatusCode == System.Net.HttpStatusCode.NotModified)
            {
                return (304, null, _bundleEtag);
            }
            response.EnsureSuccessStatusCode();
            var body = await BoundedHttp.ReadBodyAsync(response, _options.MaxBundleBytes, "the bundle", ct).ConfigureAwait(false);
            return ((int)response.StatusCode, body, response.Headers.ETag?.ToString());
        }

        (int Status, byte[]? Body, string? ETag) answer;
        if (_bundleGuard is not null)
        {
            answer = await _bundleGuard.ExecuteAsync(Download, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            // No breaker (tests, tools): still one deadline for the whole download.
            using var deadline = new CancellationTokenSource(_options.BundleTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            answer = await Download(linked.Token).ConfigureAwait(false);
        }
        if (answer.Status == 304 || answer.Body is null)
        {
            return null;
        }
        var bundle = PolicyBundle.FromTarGz(answer.Body, url, _options.MaxBundleBytes);
        if (current is not null && bundle.Fingerprint == current.Bundle.Fingerprint)
        {
            _bundleEtag = answer.ETag;
            return null;
        }
        var loaded = Compile(bundle);
        _bundleEtag = answer.ETag;
        return loaded;
    }

    private ReloadHooks<Loaded> Hooks(string origin) => new()
    {
        Describe = Describe,
        Count = ok => _metrics.PolicyReloads.WithLabels(ok ? "success" : "failure").Inc(),
        Loaded = (loaded, _) => PolicyLog.PolicyLoaded(_logger, origin, loaded.Bundle.Modules.Count, loaded.Bundle.Revision),
        FailureLevel = LogLevel.Error,
        Failed = (failure, _) =>
        {
            if (failure.Exception is PolicyLoadException rejected)
            {
                PolicyLog.PolicyRejected(_logger, failure.Level, origin, rejected.Errors.Count, failure.Problem);
            }
            else
            {
                // The bundle server failed: the dependency's fault, a warning.
                PolicyLog.BundleDownloadFailed(_logger, failure.Level == LogLevel.Debug ? LogLevel.Debug : LogLevel.Warning, origin, failure.Problem);
            }
        },
    };

    private static string Describe(Exception ex) => ex switch
    {
        PolicyLoadException p => string.Join(" | ", p.Errors.Take(10)) + (p.Errors.Count > 10 ? $" | … {p.Errors.Count - 10} more" : ""),
        DependencyUnavailableException { Kind: not "failure" } d => d.Kind,
        DependencyUnavailableException { InnerException: { } inner } => Describe(inner),
        HttpRequestException { StatusCode: { } status } => $"HTTP {(int)status}",
        HttpRequestException h => $"the request failed ({h.HttpRequestError})",
        ResponseTooLargeException t => t.Message,
        OperationCanceledException => "timeout",
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };

    private static Loaded Compile(PolicyBundle bundle)
    {
        RegoCompileResult result;
        try
        {
            result = RegoCompiler.Compile(bundle.Modules, bundle.Data);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A compiler fault on some input is that policy's problem: rejected, never a crash.
            throw new PolicyLoadException([$"the policy could not be compiled ({ex.GetType().Name}: {ex.Message})"]);
        }
        if (!result.Success)
        {
            throw new PolicyLoadException([.. result.Errors.Select(e => $"{e.File}:{e.Line}:{e.Column}: {e.Code}: {e.Message}")]);
        }
        return new Loaded(result.Policy!, bundle);
    }

    internal sealed record Loaded(RegoPolicy Policy, PolicyBundle Bundle);
}
