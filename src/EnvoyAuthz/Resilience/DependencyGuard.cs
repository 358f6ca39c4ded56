using System.Collections.Concurrent;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace EnvoyAuthz.Resilience;

/// <summary>A dependency failed, timed out, or its circuit is open: the caller denies 503 <c>dependency_unavailable</c> or serves its last good data.</summary>
public sealed class DependencyUnavailableException(string dependency, string kind, Exception? inner = null)
    : Exception($"{dependency}: {kind}", inner)
{
    /// <summary>The dependency's name (metric label).</summary>
    public string Dependency { get; } = dependency;
    /// <summary><c>failure</c>, <c>timeout</c> or <c>circuit_open</c>.</summary>
    public string Kind { get; } = kind;
}

/// <summary>
/// A circuit breaker and timeout (Polly v8) around one dependency — an issuer's discovery/JWKS,
/// remote OPA, the Airflow API, bundle downloads. Every call is counted in
/// <c>envoy_authz_dependency_requests_total{dependency,result}</c>; the breaker's state is
/// <c>envoy_authz_circuit_state{dependency}</c> (0 closed, 1 half-open, 2 open).
/// </summary>
public sealed class DependencyGuard
{
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly AuthzMetrics _metrics;

    internal DependencyGuard(string name, ResilienceOptions options, TimeSpan timeout, TimeProvider time, AuthzMetrics metrics, ILogger logger)
    {
        Name = name;
        _metrics = metrics;
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = time, Name = name }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = options.FailureRatio,
                MinimumThroughput = options.MinimumThroughput,
                SamplingDuration = options.SamplingDuration,
                BreakDuration = options.BreakDuration,
                StateProvider = _state,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException || ex is TimeoutRejectedException),
                OnOpened = _ =>
                {
                    ResilienceLog.CircuitOpened(logger, name, options.BreakDuration.TotalSeconds);
                    Publish();
                    return default;
                },
                OnClosed = _ =>
                {
                    ResilienceLog.CircuitClosed(logger, name);
                    Publish();
                    return default;
                },
                OnHalfOpened = _ =>
                {
                    Publish();
                    return default;
                },
            })
            .AddTimeout(timeout)
            .Build();
        Publish();
    }

    /// <summary>The dependency's name.</summary>
    public string Name { get; }

    /// <summary>The breaker's state now.</summary>
    public CircuitState State => _state.CircuitState;

    /// <summary>
    /// Runs <paramref name="action"/> under the breaker and timeout. Throws
    /// <see cref="DependencyUnavailableException"/> when it fails, times out or the circuit is open;
    /// the caller's own cancellation propagates as <see cref="OperationCanceledException"/>.
    /// </summary>
    public async ValueTask<T> ExecuteAsync<T>(Func<CancellationToken, ValueTask<T>> action, CancellationToken cancellationToken)
    {
        try
        {
            var result = await _pipeline.ExecuteAsync(action, cancellationToken).ConfigureAwait(false);
            Count("success");
            return result;
        }
        catch (BrokenCircuitException ex)
        {
            Count("circuit_open");
            throw new DependencyUnavailableException(Name, "circuit_open", ex);
        }
        catch (TimeoutRejectedException ex)
        {
            Count("timeout");
            throw new DependencyUnavailableException(Name, "timeout", ex);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Count("cancelled");
            throw;
        }
        catch (Exception ex) when (ex is not DependencyUnavailableException)
        {
            Count("failure");
            throw new DependencyUnavailableException(Name, "failure", ex);
        }
    }

    /// <summary>Writes the breaker state to the gauge (also called before every scrape).</summary>
    internal void Publish() => _metrics.CircuitState.WithLabels(Name).Set(State switch
    {
        CircuitState.Closed => 0,
        CircuitState.HalfOpen => 1,
        _ => 2,
    });

    private void Count(string result) => _metrics.DependencyRequests.WithLabels(Name, result).Inc();
}

/// <summary>One <see cref="DependencyGuard"/> per dependency name, created on first use.</summary>
public sealed class DependencyGuards
{
    private readonly ConcurrentDictionary<string, DependencyGuard> _guards = new(StringComparer.Ordinal);
    private readonly ResilienceOptions _options;
    private readonly TimeProvider _time;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>Creates the registry; breaker states are refreshed before every scrape.</summary>
    public DependencyGuards(AuthzOptions options, TimeProvider time, AuthzMetrics metrics, ILogger<DependencyGuards> logger)
    {
        _options = options.Resilience;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        metrics.Registry.AddBeforeCollectCallback(() =>
        {
            foreach (var guard in _guards.Values)
            {
                guard.Publish();
            }
        });
    }

    /// <summary>The guard of <paramref name="dependency"/> with a per-call <paramref name="timeout"/>.</summary>
    public DependencyGuard For(string dependency, TimeSpan timeout) =>
        _guards.GetOrAdd(dependency, name => new DependencyGuard(name, _options, timeout, _time, _metrics, _logger));

    /// <summary>All guards created so far.</summary>
    public IEnumerable<DependencyGuard> All => _guards.Values;
}
