using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Resilience;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Polly.CircuitBreaker;

namespace EnvoyAuthz.Tests.Resilience;

public class DependencyGuardTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly AuthzMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());

    private DependencyGuard Guard()
    {
        var options = new AuthzOptions();
        options.Resilience.MinimumThroughput = 4;
        options.Resilience.FailureRatio = 0.5;
        options.Resilience.SamplingDuration = TimeSpan.FromSeconds(30);
        options.Resilience.BreakDuration = TimeSpan.FromSeconds(15);
        return new DependencyGuards(options, _time, _metrics, NullLogger<DependencyGuards>.Instance).For("remote-opa", TimeSpan.FromSeconds(1));
    }

    private static ValueTask<int> Fail(CancellationToken _) => throw new HttpRequestException("connection refused");

    private double Gauge() => _metrics.CircuitState.WithLabels("remote-opa").Value;

    private double Count(string result) => _metrics.DependencyRequests.WithLabels("remote-opa", result).Value;

    [Fact]
    public async Task Failures_OpenTheCircuit_ThenCallsFailFastWithoutReachingTheDependency()
    {
        var guard = Guard();
        Assert.Equal(0, Gauge());
        for (var i = 0; i < 4; i++)
        {
            var ex = await Assert.ThrowsAsync<DependencyUnavailableException>(() => guard.ExecuteAsync(Fail, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal("failure", ex.Kind);
        }
        Assert.Equal(CircuitState.Open, guard.State);
        Assert.Equal(2, Gauge());

        var reached = false;
        var open = await Assert.ThrowsAsync<DependencyUnavailableException>(() => guard.ExecuteAsync(_ => { reached = true; return ValueTask.FromResult(1); }, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal("circuit_open", open.Kind);
        Assert.False(reached);
        Assert.Equal(4, Count("failure"));
        Assert.Equal(1, Count("circuit_open"));
    }

    [Fact]
    public async Task AfterTheBreak_OneTrialCall_SuccessClosesTheCircuit()
    {
        var guard = Guard();
        for (var i = 0; i < 4; i++)
        {
            await Assert.ThrowsAsync<DependencyUnavailableException>(() => guard.ExecuteAsync(Fail, TestContext.Current.CancellationToken).AsTask());
        }
        _time.Advance(TimeSpan.FromSeconds(16));
        Assert.Equal(7, await guard.ExecuteAsync(_ => ValueTask.FromResult(7), TestContext.Current.CancellationToken));
        Assert.Equal(CircuitState.Closed, guard.State);
        Assert.Equal(0, Gauge());
    }

    [Fact]
    public async Task AfterTheBreak_TrialFailure_ReopensTheCircuit()
    {
        var guard = Guard();
        for (var i = 0; i < 4; i++)
        {
            await Assert.ThrowsAsync<DependencyUnavailableException>(() => guard.ExecuteAsync(Fail, TestContext.Current.CancellationToken).AsTask());
        }
        _time.Advance(TimeSpan.FromSeconds(16));
        await Assert.ThrowsAsync<DependencyUnavailableException>(() => guard.ExecuteAsync(Fail, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(CircuitState.Open, guard.State);
    }

    [Fact]
    public async Task CallerCancellation_IsNotADependencyFailure()
    {
        var guard = Guard();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => guard.ExecuteAsync(ct => { ct.ThrowIfCancellationRequested(); return ValueTask.FromResult(1); }, cts.Token).AsTask());
        Assert.Equal(0, Count("failure"));
        Assert.Equal(CircuitState.Closed, guard.State);
    }
}
