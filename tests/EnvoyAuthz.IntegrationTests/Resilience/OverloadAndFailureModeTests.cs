using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Identity;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

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

    [Fact]
    public async Task Overload_ShedsFastWith503Overloaded_InsteadOfWaitingForEnvoysTimeout()
    {
        await using var host = await AuthzServiceHost.StartAsync(SlowOpa(
            ("EnvoyAuthz:Server:MaxConcurrentChecks", "1"),
            ("EnvoyAuthz:Server:MaxQueuedChecks", "1"),
            ("EnvoyAuthz:Server:QueueTimeout", "00:00:00.05")));
        await host.WaitReadyAsync();
        var request = await AdminRequestAsync();

        var slow = host.CheckAsync(request); // holds the only slot for ~2 s (the slow OPA)
        await Task.Delay(300, TestContext.Current.CancellationToken);
        var started = DateTime.UtcNow;
        var queued = host.CheckAsync(request);   // waits 50 ms in the queue, then is shed
        var rejected = host.CheckAsync(request); // may find the queue full
        var shed = await Task.WhenAll(queued, rejected);
        var elapsed = DateTime.UtcNow - started;

        Assert.All(shed, r =>
        {
            Assert.Equal(503, (int)r.DeniedResponse.Status.Code);
            Assert.Equal("overloaded", Reason(r));
        });
        Assert.True(elapsed < TimeSpan.FromSeconds(1.5), $"shed after {elapsed}");
        Assert.Equal(0, (await slow).Status.Code);
        var shedTotal = (await host.MetricAsync("envoy_authz_shed_total{cause=\"queue_timeout\"}") ?? 0) + (await host.MetricAsync("envoy_authz_shed_total{cause=\"queue_full\"}") ?? 0);
        Assert.Equal(2, shedTotal);
        Assert.Equal(2, await host.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"overloaded\"}"));
    }

    [Fact]
    public async Task CallDeadline_IsHonoured_DenyArrivesBeforeIt()
    {
        await using var host = await AuthzServiceHost.StartAsync(SlowOpa());
        await host.WaitReadyAsync();
        var request = await AdminRequestAsync();
        var started = DateTime.UtcNow;
        var response = await host.Client.CheckAsync(request, deadline: DateTime.UtcNow.AddMilliseconds(1000), cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(1.9));
        Assert.Equal(503, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("overloaded", Reason(response));
        Assert.Equal(1, await host.MetricAsync("envoy_authz_shed_total{cause=\"deadline\"}"));
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
