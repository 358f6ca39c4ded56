using EnvoyAuthz.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Resilience;

/// <summary>The reload discipline every hot-reloaded source shares, on virtual time.</summary>
public sealed class ReloadingSourceTests : IDisposable
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(20);

    private readonly FakeTimeProvider _time = new();
    private readonly List<bool> _counted = [];
    private readonly List<(string Problem, LogLevel Level, string? LastGood)> _failed = [];
    private readonly List<(string Value, bool Recovered)> _loaded = [];
    private Func<string?, string?> _next = _ => "v1";
    private int _loads;
    private ReloadingSource<string>? _source;

    public void Dispose() => _source?.Dispose();

    private ReloadingSource<string> Source() => _source = new ReloadingSource<string>("test", (current, _) =>
    {
        Interlocked.Increment(ref _loads);
        return ValueTask.FromResult(_next(current));
    }, new ReloadHooks<string>
    {
        Describe = ex => ex.GetType().Name + ": " + ex.Message,
        Count = ok => _counted.Add(ok),
        Loaded = (v, recovered) => _loaded.Add((v, recovered)),
        Failed = (f, last) => _failed.Add((f.Problem, f.Level, last)),
    }, _time);

    public static TheoryData<Exception> Faults() => new()
    {
        new InvalidCastException("Unable to cast YamlSequenceNode to YamlScalarNode"),
        new NullReferenceException(),
        new IOException("the file vanished"),
        new InsufficientExecutionStackException(),
        new ArgumentOutOfRangeException("x"),
        new KeyNotFoundException(),
        new FormatException(),
        new OperationCanceledException("a timeout inside the loader, not our cancellation"),
        new AggregateException(new InvalidOperationException()),
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public void Reload_AnyExceptionFromTheLoader_IsAFailedReload_TheLastGoodKeepsServing(Exception fault)
    {
        var source = Source();
        source.LoadInitial();
        _next = _ => throw fault;

        Assert.Equal(ReloadOutcome.Failed, source.Reload());
        Assert.Equal("v1", source.Current);
        Assert.Equal([true, false], _counted);
        var (problem, level, lastGood) = Assert.Single(_failed);
        Assert.StartsWith(fault.GetType().Name, problem, StringComparison.Ordinal);
        Assert.Equal(LogLevel.Warning, level);
        Assert.Equal("v1", lastGood);
    }

    [Fact]
    public void Reload_TheSameProblemAgain_IsLoggedOnce_ANewOneWarnsAgain_SuccessSaysRecovered()
    {
        var source = Source();
        source.LoadInitial();
        _next = _ => throw new InvalidOperationException("broken at line 3");
        source.Reload();
        source.Reload();
        source.Reload();
        _next = _ => throw new InvalidOperationException("broken at line 9");
        source.Reload();
        Assert.Equal([LogLevel.Warning, LogLevel.Debug, LogLevel.Debug, LogLevel.Warning], _failed.Select(f => f.Level));
        Assert.Equal(4, source.ConsecutiveFailures);
        Assert.Equal(4, _counted.Count(c => !c)); // every failure is counted, each is logged once at its level

        _next = _ => "v2";
        Assert.Equal(ReloadOutcome.Updated, source.Reload());
        Assert.Equal([("v1", false), ("v2", true)], _loaded);
        Assert.Equal(0, source.ConsecutiveFailures);
        Assert.Null(source.LastProblem);
    }

    [Fact]
    public void Reload_Unchanged_IsNotCounted_AndNothingIsEverEmpty()
    {
        var source = Source();
        source.LoadInitial();
        _next = _ => null; // "nothing changed"
        Assert.Equal(ReloadOutcome.Unchanged, source.Reload());
        Assert.Equal("v1", source.Current);
        Assert.Equal([true], _counted);
    }

    [Fact]
    public void LoadInitial_Fails_ThrowsSourceLoadException_CountedButNotLogged()
    {
        var source = Source();
        _next = _ => throw new InvalidCastException("bad key");
        var ex = Assert.Throws<SourceLoadException>(source.LoadInitial);
        Assert.Equal("InvalidCastException: bad key", Assert.Single(ex.Problems));
        Assert.IsType<InvalidCastException>(ex.InnerException);
        Assert.False(source.LoadedOnce);
        Assert.Equal([false], _counted);
        Assert.Empty(_failed); // the start-up error says it once

        _next = _ => null;
        Assert.Throws<SourceLoadException>(source.LoadInitial); // "nothing" is never a first value
    }

    [Fact]
    public async Task RunAsync_NothingLoaded_LoadsAtOnce_ThenEveryInterval_FaultsNeverStopIt()
    {
        var source = Source();
        var calls = 0;
        _next = _ => ++calls % 2 == 0 ? throw new InvalidCastException("every other reload") : "v" + calls;
        using var stop = new CancellationTokenSource();
        var run = source.RunAsync(last => last == ReloadOutcome.Failed ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(10), TimeSpan.Zero, stop.Token);

        await Until(() => source.Current == "v1");
        await AdvanceUntil(() => Volatile.Read(ref _loads) >= 7, TimeSpan.FromSeconds(1));
        Assert.False(run.IsCompleted);

        await stop.CancelAsync();
        await run.WaitAsync(HangGuard, TestContext.Current.CancellationToken); // ends cleanly, never faulted
        Assert.True(run.IsCompletedSuccessfully);
        var loads = Volatile.Read(ref _loads);
        Assert.Equal(loads / 2, _failed.Count);
        Assert.Equal("v" + (loads % 2 == 1 ? loads : loads - 1), source.Current);
    }

    [Fact]
    public async Task RunAsync_Signal_ReloadsAfterTheSettleDelay_WithoutWaitingForTheInterval()
    {
        var source = Source();
        source.LoadInitial();
        using var stop = new CancellationTokenSource();
        var run = source.RunAsync(_ => TimeSpan.FromHours(1), TimeSpan.FromMilliseconds(50), stop.Token);
        _next = _ => "v2";
        source.Signal();
        await AdvanceUntil(() => source.Current == "v2", TimeSpan.FromMilliseconds(50));
        Assert.True(_time.GetUtcNow() - _time.Start < TimeSpan.FromMinutes(1));
        await stop.CancelAsync();
        await run.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
    }

    private static async Task Until(Func<bool> condition)
    {
        var until = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "hang guard");
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Advances virtual time a step at a time until the loop, which runs on the thread pool, got there.</summary>
    private async Task AdvanceUntil(Func<bool> condition, TimeSpan step)
    {
        var until = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "hang guard");
            _time.Advance(step);
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
    }
}
