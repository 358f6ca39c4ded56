using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Pipeline;

/// <summary>
/// Admission around the stages, on virtual time: a call whose deadline has passed is answered
/// without any work, a Check whose budget runs out in the queue starts none, shed Checks are cheap to
/// log, and a call the caller cancels is counted as cancelled — not as a decision.
/// </summary>
public sealed class CheckPipelineAdmissionTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly FakeLogCollector _logs = new();
    private readonly GatedPolicy _policy = new();
    private WebApplication? _app;

    /// <summary>Allows every request, after <see cref="Gate"/> opens (honouring cancellation); counts evaluations.</summary>
    private sealed class GatedPolicy : IPolicyEngine
    {
        private int _evaluations;

        public TaskCompletionSource Gate { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Evaluations => Volatile.Read(ref _evaluations);
        public string Name => "gated";
        public bool Ready => true;
        public bool NeedsInput => false;

        public async ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _evaluations);
            await Gate.Task.WaitAsync(cancellationToken);
            return PolicyResult.Of(RegoValue.From(true));
        }
    }

    private (CheckPipeline Pipeline, AuthzMetrics Metrics) Build(params (string Key, string Value)[] settings)
    {
        var (options, configuration) = AuthzHost.LoadConfiguration(null, dev: false,
            settings.Select(s => new KeyValuePair<string, string?>("EnvoyAuthz:Server:" + s.Key, s.Value)));
        _app = AuthzHost.Build(options, configuration, s =>
        {
            s.AddSingleton<TimeProvider>(_time);
            s.AddSingleton<IPolicyEngine>(_policy);
        }, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(new FakeLoggerProvider(_logs));
            logging.SetMinimumLevel(LogLevel.Debug);
        });
        return (_app.Services.GetRequiredService<CheckPipeline>(), _app.Services.GetRequiredService<AuthzMetrics>());
    }

    public async ValueTask DisposeAsync()
    {
        _policy.Gate.TrySetResult();
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    private static string Reason(CheckResponse r) =>
        r.Status.Code == 0 ? "allowed" : JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    private static double Count(AuthzMetrics m, string decision, string reason) => m.Checks.WithLabels(decision, reason).Value;

    private IReadOnlyList<FakeLogRecord> Events(int id) => [.. _logs.GetSnapshot().Where(r => r.Id.Id == id)];

    [Theory]
    [InlineData(-60_000)] // long gone
    [InlineData(-1)]      // just gone
    [InlineData(0)]       // now
    [InlineData(5)]       // within the margin the answer needs to travel back
    public async Task DeadlinePassed_DeniedOverloaded_WithoutEvaluatingThePolicy(int timeLeftMs)
    {
        var (pipeline, metrics) = Build();
        _policy.Gate.SetResult(); // the policy would allow at once

        var response = await pipeline.CheckAsync(Requests.Http(), CancellationToken.None, TimeSpan.FromMilliseconds(timeLeftMs));

        Assert.Equal(503, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("overloaded", Reason(response));
        Assert.Equal(0, _policy.Evaluations);
        Assert.Equal(1, metrics.Shed.WithLabels("deadline").Value);
        Assert.Equal(1, Count(metrics, "deny", "overloaded"));
        Assert.Equal(0, Count(metrics, "allow", "allowed"));
    }

    [Fact]
    public async Task DeadlineAhead_Answered()
    {
        var (pipeline, metrics) = Build();
        _policy.Gate.SetResult();
        var response = await pipeline.CheckAsync(Requests.Http(), CancellationToken.None, TimeSpan.FromMilliseconds(200));
        Assert.Equal("allowed", Reason(response));
        Assert.Equal(1, Count(metrics, "allow", "allowed"));
    }

    [Fact]
    public async Task QueueTimeout_OnVirtualTime_ShedsTheQueuedCheck_WithoutEvaluatingIt()
    {
        var (pipeline, metrics) = Build(("MaxConcurrentChecks", "1"), ("MaxQueuedChecks", "1"), ("QueueTimeout", "00:00:00.5"), ("CheckTimeout", "00:00:30"));
        var holder = pipeline.CheckAsync(Requests.Http(), CancellationToken.None);
        var queued = pipeline.CheckAsync(Requests.Http(), CancellationToken.None);
        Assert.False(queued.IsCompleted);

        _time.Advance(TimeSpan.FromMilliseconds(499));
        Assert.False(queued.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var shed = await queued;

        Assert.Equal("overloaded", Reason(shed));
        Assert.Equal(1, metrics.Shed.WithLabels("queue_timeout").Value);
        Assert.Equal(1, _policy.Evaluations); // only the holder's
        _policy.Gate.SetResult();
        Assert.Equal("allowed", Reason(await holder));
    }

    [Fact]
    public async Task BudgetRunsOutInTheQueue_DeniedOverloaded_NoWorkStarted()
    {
        var (pipeline, metrics) = Build(("MaxConcurrentChecks", "1"), ("MaxQueuedChecks", "1"), ("QueueTimeout", "00:00:01"), ("CheckTimeout", "00:00:30"));
        var holder = pipeline.CheckAsync(Requests.Http(), CancellationToken.None);
        // The queued call's deadline leaves it 100 ms, less the 10 ms margin for the answer.
        var queued = pipeline.CheckAsync(Requests.Http(), CancellationToken.None, TimeSpan.FromMilliseconds(100));

        _time.Advance(TimeSpan.FromMilliseconds(89));
        Assert.False(queued.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var answer = await queued;

        Assert.Equal("overloaded", Reason(answer));
        Assert.Equal(1, metrics.Shed.WithLabels("deadline").Value);
        Assert.Equal(1, _policy.Evaluations); // the holder's only
        _policy.Gate.SetResult();
        Assert.Equal("allowed", Reason(await holder));
    }

    [Fact]
    public async Task CallerCancels_CountedAsCancelled_NotAsADecision_LoggedAtDebugOnly()
    {
        var (pipeline, metrics) = Build(("MaxConcurrentChecks", "1"), ("MaxQueuedChecks", "4"), ("QueueTimeout", "00:00:01"), ("CheckTimeout", "00:00:30"));
        using var deciding = new CancellationTokenSource();
        using var queued = new CancellationTokenSource();
        var inPolicy = pipeline.CheckAsync(Requests.Http(), deciding.Token);   // holds the only slot, waits in the policy
        var inQueue = pipeline.CheckAsync(Requests.Http(), queued.Token);      // waits for the slot

        await queued.CancelAsync();
        await deciding.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => inQueue);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => inPolicy);

        Assert.Equal(2, metrics.Cancelled.Value);
        Assert.All(ReasonCodes.All, reason => Assert.Equal(0, Count(metrics, reason == "allowed" ? "allow" : "deny", reason)));
        Assert.Equal(0, metrics.Shed.WithLabels("queue_timeout").Value + metrics.Shed.WithLabels("queue_full").Value + metrics.Shed.WithLabels("deadline").Value);
        Assert.Equal(0, metrics.Inflight.Value);
        Assert.Empty(Events(1000)); // no decision was taken, so none is logged
        var cancelled = Events(1003);
        Assert.Equal(2, cancelled.Count);
        Assert.All(cancelled, r => Assert.Equal(LogLevel.Debug, r.Level));
        Assert.Contains(cancelled, r => r.Message.Contains("(queued)", StringComparison.Ordinal));
        Assert.Contains(cancelled, r => r.Message.Contains("(deciding)", StringComparison.Ordinal));
        Assert.DoesNotContain(_logs.GetSnapshot(), r => r.Level >= LogLevel.Warning || r.Exception is not null);
    }

    [Fact]
    public async Task DeadlineNearsWhileDeciding_AnsweredOverloadedBeforeIt_NeverAllowed()
    {
        var (pipeline, metrics) = Build(("CheckTimeout", "00:00:30"));
        using var grpcCancels = new CancellationTokenSource(); // grpc-dotnet cancels the call when its deadline passes
        var call = pipeline.CheckAsync(Requests.Http(), grpcCancels.Token, TimeSpan.FromMilliseconds(300));

        _time.Advance(TimeSpan.FromMilliseconds(300));
        await grpcCancels.CancelAsync();
        _policy.Gate.SetResult();
        var response = await call;

        Assert.Equal("overloaded", Reason(response));
        Assert.Equal(1, metrics.Shed.WithLabels("deadline").Value);
        Assert.Equal(0, metrics.Cancelled.Value);
    }

    [Fact]
    public async Task Burst_EveryShedCheckAnswered_OneWarningPerMinute_RepeatsAtDebug()
    {
        var (pipeline, metrics) = Build(("MaxConcurrentChecks", "1"), ("MaxQueuedChecks", "0"), ("CheckTimeout", "00:00:30"));
        var holder = pipeline.CheckAsync(Requests.Http(), CancellationToken.None);
        var burst = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => pipeline.CheckAsync(Requests.Http(), CancellationToken.None)));

        Assert.All(burst, r =>
        {
            Assert.Equal(503, (int)r.DeniedResponse.Status.Code);
            Assert.Equal("overloaded", Reason(r));
        });
        Assert.Equal(50, metrics.Shed.WithLabels("queue_full").Value);
        Assert.Equal(50, Count(metrics, "deny", "overloaded"));
        Assert.Equal(1, _policy.Evaluations);
        var shed = Events(1502);
        Assert.Equal(50, shed.Count);
        Assert.Single(shed, r => r.Level == LogLevel.Warning);
        Assert.Equal(49, shed.Count(r => r.Level == LogLevel.Debug));

        _policy.Gate.SetResult();
        Assert.Equal("allowed", Reason(await holder));

        // A minute later the next shed Check is reported again, with the count held back.
        _policy.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _time.Advance(TimeSpan.FromMinutes(1));
        var holder2 = pipeline.CheckAsync(Requests.Http(), CancellationToken.None);
        Assert.Equal("overloaded", Reason(await pipeline.CheckAsync(Requests.Http(), CancellationToken.None)));
        var next = Events(1502)[^1];
        Assert.Equal(LogLevel.Warning, next.Level);
        Assert.Contains("(49 more shed since the last report)", next.Message, StringComparison.Ordinal);
        _policy.Gate.SetResult();
        Assert.Equal("allowed", Reason(await holder2));
    }

    [Fact]
    public async Task Malformed_AnsweredBadRequest_WithoutAnyStage_CauseOncePerMinute()
    {
        var (pipeline, metrics) = Build();
        var answers = new List<CheckResponse>();
        for (var i = 0; i < 3; i++)
        {
            answers.Add(await pipeline.RejectMalformedAsync(MalformedRequest.InvalidUtf8, CancellationToken.None));
        }
        _time.Advance(TimeSpan.FromMinutes(1));
        answers.Add(await pipeline.RejectMalformedAsync(MalformedRequest.InvalidUtf8, CancellationToken.None));

        Assert.All(answers, a =>
        {
            Assert.Equal(400, (int)a.DeniedResponse.Status.Code);
            Assert.Equal("bad_request", Reason(a));
        });
        Assert.Equal(4, Count(metrics, "deny", "bad_request"));
        Assert.Equal(0, _policy.Evaluations);
        Assert.Equal(4, Events(1000).Count);
        Assert.Equal([LogLevel.Information, LogLevel.Debug, LogLevel.Debug, LogLevel.Information], Events(1002).Select(r => r.Level));
        Assert.Contains("(2 more since the last report)", Events(1002)[^1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConsoleLog_DropsLinesRatherThanBlockingAChecksThread()
    {
        Build();
        var console = _app!.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>>().CurrentValue;
        Assert.Equal(Microsoft.Extensions.Logging.Console.ConsoleLoggerQueueFullMode.DropWrite, console.QueueFullMode);
    }
}
