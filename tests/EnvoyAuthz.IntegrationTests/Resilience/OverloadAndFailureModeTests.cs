using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Identity;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Tests.Infrastructure;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>Load shedding, deadlines and the failure mode, through gRPC against the real service.</summary>
public sealed class OverloadAndFailureModeTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private OpaDataApiServer _opa = null!;

    public async ValueTask InitializeAsync() => _opa = await OpaDataApiServer.StartAsync();

    public async ValueTask DisposeAsync() => await _opa.DisposeAsync();

    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    private async Task<CheckRequest> AdminRequestAsync()
    {
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest { Groups = ["admins"] }, TestContext.Current.CancellationToken);
        return Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });
    }

    private List<KeyValuePair<string, string?>> SlowOpa(params (string, string)[] extra)
    {
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Engine", "remote-opa"));
        settings.Add(new("EnvoyAuthz:Policy:DecisionPath", "envoy/authz/slow"));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Url", _opa.Url));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Timeout", "00:00:05"));
        settings.AddRange(extra.Select(e => new KeyValuePair<string, string?>(e.Item1, e.Item2)));
        return settings;
    }

    private static CheckRequest Held() => Requests.Http(headers: new Dictionary<string, string> { [HoldingPolicy.HoldHeader] = "1" });

    /// <summary>The real service with <paramref name="policy"/> deciding and <paramref name="time"/> as its clock.</summary>
    private static async Task<AuthzServiceHost> HoldingHostAsync(HoldingPolicy policy, FakeTimeProvider time, params (string, string)[] server)
    {
        var host = await AuthzServiceHost.StartAsync(server.Select(e => new KeyValuePair<string, string?>("EnvoyAuthz:Server:" + e.Item1, e.Item2)),
            s =>
            {
                s.AddSingleton<TimeProvider>(time);
                s.AddSingleton<IPolicyEngine>(policy);
            });
        await host.WaitReadyAsync();
        return host;
    }

    [Fact]
    public async Task Overload_ShedsFastWith503Overloaded_InsteadOfWaitingForEnvoysTimeout()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var policy = new HoldingPolicy();
        await using var host = await HoldingHostAsync(policy, time,
            ("MaxConcurrentChecks", "1"), ("MaxQueuedChecks", "1"), ("QueueTimeout", "00:00:00.05"), ("CheckTimeout", "00:00:00.18"));

        var slow = host.CheckAsync(Held()); // holds the only slot until the policy lets it go
        await Eventually.HoldsAsync(() => policy.Holding == 1, "the first Check is in the policy");
        var queued = host.CheckAsync(Held());
        await Eventually.HoldsAsync(async () => await host.MetricAsync("envoy_authz_inflight_checks") == 2, "the second Check waits in the queue");

        var rejected = await host.CheckAsync(Held()); // the queue is full: shed at once, no virtual time passes
        Assert.Equal(503, (int)rejected.DeniedResponse.Status.Code);
        Assert.Equal("overloaded", Reason(rejected));
        Assert.False(queued.IsCompleted);

        time.Advance(TimeSpan.FromMilliseconds(50)); // the queue timeout, well inside Envoy's 200 ms (and the 180 ms budget)
        var shed = await queued;
        Assert.Equal(503, (int)shed.DeniedResponse.Status.Code);
        Assert.Equal("overloaded", Reason(shed));
        Assert.False(slow.IsCompleted); // nobody waited for the busy Check

        Assert.Equal(1, await host.MetricAsync("envoy_authz_shed_total{cause=\"queue_full\"}"));
        Assert.Equal(1, await host.MetricAsync("envoy_authz_shed_total{cause=\"queue_timeout\"}"));
        Assert.Equal(2, await host.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"overloaded\"}"));
        policy.Release();
        Assert.Equal(0, (await slow).Status.Code);
    }

    [Fact]
    public async Task CallDeadline_IsHonoured_DenyArrivesBeforeIt()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var policy = new HoldingPolicy();
        await using var host = await HoldingHostAsync(policy, time, ("CheckTimeout", "00:01:00"));

        var call = host.Client.CheckAsync(Held(), deadline: DateTime.UtcNow.AddSeconds(20), cancellationToken: TestContext.Current.CancellationToken).ResponseAsync;
        await Eventually.HoldsAsync(() => policy.Holding == 1, "the Check is in the policy");

        time.Advance(TimeSpan.FromSeconds(19.5)); // the budget (the deadline less a 50 ms margin) has not run out
        Assert.False(call.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));    // now it has, before the deadline (CheckTimeout is a minute)
        var response = await call;                // a deny, not DEADLINE_EXCEEDED: it arrived before the deadline

        Assert.Equal(503, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("overloaded", Reason(response));
        Assert.Equal(1, await host.MetricAsync("envoy_authz_shed_total{cause=\"deadline\"}"));
        Assert.Equal(0, policy.Holding);
    }

    [Fact]
    public async Task CheckTimeout_BudgetEndsBeforeEnvoysDefaultTimeout()
    {
        await using var host = await AuthzServiceHost.StartAsync(SlowOpa(("EnvoyAuthz:Server:CheckTimeout", "00:00:00.18")));
        await host.WaitReadyAsync();
        var request = await AdminRequestAsync();
        var response = await host.CheckAsync(request);
        Assert.Equal("overloaded", Reason(response));
    }

    /// <summary>An Airflow stage that fails: fault injection for the service's own error path.</summary>
    private sealed class FaultyAirflowStage : IAirflowStage
    {
        public ValueTask<AirflowContext> ResolveAsync(AuthzRequest request, CallerIdentity? identity, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("injected fault");
    }

    [Fact]
    public async Task InternalFault_DefaultFailsClosedWith503InternalError()
    {
        await using var host = await AuthzServiceHost.StartAsync(AuthzServiceHost.IssuerSettings(idp), s => s.AddSingleton<IAirflowStage, FaultyAirflowStage>());
        await host.WaitReadyAsync();
        var response = await host.CheckAsync(await AdminRequestAsync());
        Assert.Equal(503, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("internal_error", Reason(response));
        Assert.Contains(host.Logs.Lines, l => l.StartsWith("Error") && l.Contains("[1001]") && l.Contains("injected fault"));
    }

    [Fact]
    public async Task InternalFault_FailureModeError_IsAGrpcErrorForEnvoysFailureModeAllow()
    {
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Server:FailureMode", "error"));
        await using var host = await AuthzServiceHost.StartAsync(settings, s => s.AddSingleton<IAirflowStage, FaultyAirflowStage>());
        await host.WaitReadyAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await host.CheckAsync(await AdminRequestAsync()));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }
}
