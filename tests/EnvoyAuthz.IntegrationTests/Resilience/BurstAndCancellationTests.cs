using System.Net;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>
/// Bursts and callers that give up, against the real service on virtual time (queue timeouts and
/// budgets fire only when a test advances the clock; <see cref="HoldingPolicy"/> holds requests in
/// the policy). Every stream gets an answer, shed before any work; a call the caller cancels is
/// counted in <c>envoy_authz_checks_cancelled_total</c>, never as a decision, and logged at Debug only.
/// </summary>
public sealed class BurstAndCancellationTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly HoldingPolicy _policy = new();
    private AuthzServiceHost _host = null!;
    private GrpcChannel _oneConnection = null!;
    private Envoy.Service.Auth.V3.Authorization.AuthorizationClient _client = null!;

    private const int Slots = 1;
    private const int Queue = 100;

    public async ValueTask InitializeAsync()
    {
        _host = await AuthzServiceHost.StartAsync(
        [
            new("EnvoyAuthz:Server:MaxConcurrentChecks", Slots.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("EnvoyAuthz:Server:MaxQueuedChecks", Queue.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("EnvoyAuthz:Server:QueueTimeout", "00:00:01"),
            new("EnvoyAuthz:Server:CheckTimeout", "00:01:00"),
        ], s =>
        {
            s.AddSingleton<TimeProvider>(_time);
            s.AddSingleton<IPolicyEngine>(_policy);
        });
        await _host.WaitReadyAsync();
        // As Envoy does: many streams on one HTTP/2 connection.
        _oneConnection = GrpcChannel.ForAddress($"http://127.0.0.1:{_host.GrpcPort}",
            new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, UseProxy = false } });
        _client = new Envoy.Service.Auth.V3.Authorization.AuthorizationClient(_oneConnection);
    }

    public async ValueTask DisposeAsync()
    {
        _policy.Release();
        _oneConnection.Dispose();
        await _host.DisposeAsync();
    }

    private static CheckRequest Held() => Requests.Http(headers: new Dictionary<string, string> { [HoldingPolicy.HoldHeader] = "1" });

    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    private Task<double?> Metric(string series) => _host.MetricAsync(series);

    private async Task<double> DecisionsAsync()
    {
        var text = await _host.Http.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        return text.Split('\n').Where(l => l.StartsWith("envoy_authz_checks_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private void AssertNoErrorLogged()
    {
        var lines = _host.Logs.Lines;
        Assert.DoesNotContain(lines, l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("\n   at ", StringComparison.Ordinal));
    }

    private Task<CheckResponse> Send(CheckRequest request, CancellationToken cancellationToken) =>
        _client.CheckAsync(request, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: cancellationToken).ResponseAsync;

    [Fact]
    public async Task Burst_BeyondCapacity_OnOneConnection_EveryStreamAnswered503Overloaded_NoneQueuedByTheConnection()
    {
        // Fill the service: one Check deciding, a full queue (virtual time stands still: nobody times out).
        var holder = Send(Held(), TestContext.Current.CancellationToken);
        await Eventually.HoldsAsync(() => _policy.Holding == 1, "the first Check is in the policy");
        var queued = Enumerable.Range(0, Queue).Select(_ => Send(Held(), TestContext.Current.CancellationToken)).ToList();
        await Eventually.HoldsAsync(async () => await Metric("envoy_authz_inflight_checks") == Slots + Queue, "slot and queue are full");

        // A burst on the same connection: each stream beyond capacity is answered at once, none waits
        // behind the connection's stream limit and none fails UNAVAILABLE.
        var burst = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => Send(Held(), TestContext.Current.CancellationToken)))
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken); // a hang guard, not a measurement
        Assert.All(burst, r =>
        {
            Assert.Equal(503, (int)r.DeniedResponse.Status.Code);
            Assert.Equal("overloaded", Reason(r));
        });
        Assert.Equal(300, await Metric("envoy_authz_shed_total{cause=\"queue_full\"}"));
        Assert.False(holder.IsCompleted);

        // The queue times out (virtual time), the holder is let go: every stream has its answer.
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.All(await Task.WhenAll(queued), r => Assert.Equal("overloaded", Reason(r)));
        _policy.Release();
        Assert.Equal(0, (await holder).Status.Code);
        Assert.Equal(Queue, await Metric("envoy_authz_shed_total{cause=\"queue_timeout\"}"));
        Assert.Equal(300 + Queue, await Metric("envoy_authz_checks_total{decision=\"deny\",reason=\"overloaded\"}"));
        Assert.Equal(1, await Metric("envoy_authz_checks_total{decision=\"allow\",reason=\"allowed\"}"));
        AssertNoErrorLogged();
    }

    [Fact]
    public async Task CallerCancels_QueuedOrDeciding_CountedAsCancelled_NeverAsOverloaded_LoggedAtDebug()
    {
        var decisionsBefore = await DecisionsAsync();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var calls = Enumerable.Range(0, 5).Select(_ => Send(Held(), cancel.Token)).ToList(); // one deciding, four queued
        await Eventually.HoldsAsync(async () => await Metric("envoy_authz_inflight_checks") == 5, "one deciding, four queued");

        await cancel.CancelAsync(); // as Envoy resets the streams when its own timeout fires
        foreach (var call in calls)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(() => call);
            Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        }
        await Eventually.HoldsAsync(async () => await Metric("envoy_authz_checks_cancelled_total") == 5, "five cancellations counted");

        Assert.Equal(0, await Metric("envoy_authz_inflight_checks"));
        Assert.Equal(decisionsBefore, await DecisionsAsync()); // no decision: not overloaded, not anything
        Assert.Equal(0, await Metric("envoy_authz_shed_total{cause=\"queue_timeout\"}"));
        var cancelled = _host.Logs.Lines.Where(l => l.Contains("[1003]", StringComparison.Ordinal)).ToList();
        Assert.Equal(5, cancelled.Count);
        Assert.All(cancelled, l => Assert.StartsWith("Debug", l, StringComparison.Ordinal));
        AssertNoErrorLogged();
    }

    /// <summary>A gRPC request body that sends the message prefix and part of the message, then never finishes.</summary>
    private sealed class StalledBody(byte[] partial) : HttpContent
    {
        public TaskCompletionSource Sent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await stream.WriteAsync(partial, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            Sent.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task CallerResetsWhileItsMessageArrives_CountedAsCancelled_NoErrorLog()
    {
        var message = Requests.Http().ToByteArray();
        var framed = new byte[5 + message.Length];
        framed[1] = (byte)(message.Length >> 24);
        framed[2] = (byte)(message.Length >> 16);
        framed[3] = (byte)(message.Length >> 8);
        framed[4] = (byte)message.Length;
        message.CopyTo(framed, 5);

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        for (var i = 0; i < 3; i++)
        {
            var body = new StalledBody(framed[..(5 + message.Length / 2)]);
            body.Headers.ContentType = new("application/grpc");
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{_host.GrpcPort}/envoy.service.auth.v3.Authorization/Check")
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = body,
            };
            request.Headers.TE.ParseAdd("trailers");
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            var send = http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            await body.Sent.Task.WaitAsync(TestContext.Current.CancellationToken);
            await cancel.CancelAsync(); // RST_STREAM in the middle of the message
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
        }
        await Eventually.HoldsAsync(async () => await Metric("envoy_authz_checks_cancelled_total") == 3, "three cancellations counted");
        Assert.Equal(3, _host.Logs.Lines.Count(l => l.StartsWith("Debug", StringComparison.Ordinal) && l.Contains("[1600]", StringComparison.Ordinal)));
        AssertNoErrorLogged();
    }

    [Fact]
    public async Task HttpMode_CallerGivesUp_CountedAsCancelled_NoErrorLog()
    {
        var decisionsBefore = await DecisionsAsync();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/authz/nginx");
        request.Headers.Add("X-Original-URI", "/api/v1/dags");
        request.Headers.Add("X-Original-Method", "GET"); // /authz/nginx needs both description headers
        request.Headers.Add(HoldingPolicy.HoldHeader, "1");
        var call = _host.Http.SendAsync(request, cancel.Token);
        await Eventually.HoldsAsync(() => _policy.Holding == 1, "the request is in the policy");

        await cancel.CancelAsync(); // nginx gave up
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await Eventually.HoldsAsync(async () => await Metric("envoy_authz_checks_cancelled_total") == 1, "the cancellation counted");

        Assert.Equal(decisionsBefore, await DecisionsAsync());
        Assert.Equal(0, await Metric("envoy_authz_inflight_checks"));
        AssertNoErrorLogged();
    }
}
