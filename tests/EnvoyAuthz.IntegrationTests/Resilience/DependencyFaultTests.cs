using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>Real dependencies failing mid-run: the OpenID provider and remote OPA.</summary>
public sealed class DependencyFaultTests
{
    private static CheckRequest WithToken(string token) =>
        Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });

    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    [Fact]
    public async Task IdpStoppedMidRun_CachedKeysServe_NewKidDenied_RecoversAfterRestart()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var idp = await OidcProviderFixture.StartAsync(cancellationToken: ct);
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Identity:JwksRefetchInterval", "00:00:01"));
        settings.Add(new("EnvoyAuthz:Identity:CacheSize", "0")); // every Check validates against the key cache
        settings.Add(new("EnvoyAuthz:Resilience:BreakDuration", "00:00:01"));
        await using var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();

        var oldKid = await idp.GetAccessTokenAsync(cancellationToken: ct);
        Assert.Equal(0, (await host.CheckAsync(WithToken(oldKid))).Status.Code);

        await idp.RotateSigningKeyAsync(keepOld: true, cancellationToken: ct);
        var newKid = await idp.GetAccessTokenAsync(cancellationToken: ct);
        await idp.StopAsync();

        // Cached keys keep working; a key the service has never seen cannot be checked: 503.
        Assert.Equal(0, (await host.CheckAsync(WithToken(oldKid))).Status.Code);
        var denied = await host.CheckAsync(WithToken(newKid));
        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("dependency_unavailable", Reason(denied));
        Assert.True(await host.MetricAsync("envoy_authz_jwks_refreshes_total{issuer=\"oidc\",result=\"failure\"}") >= 1);
        Assert.True(await host.MetricAsync("envoy_authz_dependency_requests_total{dependency=\"idp.oidc\",result=\"failure\"}") >= 1);

        await idp.RestartAsync(ct);
        var until = DateTime.UtcNow.AddSeconds(20);
        CheckResponse last;
        do
        {
            await Task.Delay(300, ct);
            last = await host.CheckAsync(WithToken(newKid));
        }
        while (last.Status.Code != 0 && DateTime.UtcNow < until);
        Assert.Equal(0, last.Status.Code);
        Assert.Equal(0, await host.MetricAsync("envoy_authz_circuit_state{dependency=\"idp.oidc\"}"));
    }

    [Fact]
    public async Task RemoteOpaDown_CircuitOpens_FailsFast_VisibleInMetrics()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var idp = await OidcProviderFixture.StartAsync(cancellationToken: ct);
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Engine", "remote-opa"));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Url", "http://127.0.0.1:1"));
        settings.Add(new("EnvoyAuthz:Resilience:MinimumThroughput", "3"));
        await using var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();
        var request = WithToken(await idp.GetAccessTokenAsync(cancellationToken: ct));
        for (var i = 0; i < 6; i++)
        {
            var r = await host.CheckAsync(request);
            Assert.Equal("dependency_unavailable", Reason(r)); // never an allow
        }
        Assert.Equal(2, await host.MetricAsync("envoy_authz_circuit_state{dependency=\"remote-opa\"}"));
        Assert.True(await host.MetricAsync("envoy_authz_dependency_requests_total{dependency=\"remote-opa\",result=\"circuit_open\"}") >= 1);
        Assert.True(await host.MetricAsync("envoy_authz_dependency_requests_total{dependency=\"remote-opa\",result=\"failure\"}") >= 3);
    }
}
