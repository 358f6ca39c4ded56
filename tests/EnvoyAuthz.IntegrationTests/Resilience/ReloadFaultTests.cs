using EnvoyAuthz.Hosting;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>A hot reload of hostile content never stops the service: it keeps answering with the last good policy.</summary>
public sealed class ReloadFaultTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-reload-it-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task HotReload_DataYamlWithASequenceAsKey_TheServiceKeepsServingTheLastGoodPolicy()
    {
        File.WriteAllText(Path.Combine(_dir, "authz.rego"), "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.method == \"GET\"\n");
        await using var host = await AuthzServiceHost.StartAsync(
        [
            new("EnvoyAuthz:Policy:Path", _dir),
            new("EnvoyAuthz:Policy:ReloadInterval", "00:00:00.2"),
        ]);
        await host.WaitReadyAsync();
        Assert.Equal(0, (await host.CheckAsync(Requests.Http("GET"))).Status.Code);

        File.WriteAllText(Path.Combine(_dir, "data.yaml"), "? [a, b]\n: c\n"); // threw InvalidCastException out of the reload loop
        var until = DateTime.UtcNow.AddSeconds(30);
        while (await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"failure\"}") is not >= 1)
        {
            Assert.True(DateTime.UtcNow < until, "hang guard: the broken reload was never counted");
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }

        Assert.Equal(0, (await host.CheckAsync(Requests.Http("GET"))).Status.Code); // the last good policy
        Assert.NotEqual(0, (await host.CheckAsync(Requests.Http("POST"))).Status.Code);
        Assert.False(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);
        Assert.Empty(AuthzHost.FaultedServices(host.Services));
        Assert.Contains(host.Logs.Lines, l => l.StartsWith("Error EnvoyAuthz.Policy.RegoPolicyEngine[1203]", StringComparison.Ordinal) && l.Contains("data.yaml:1:3", StringComparison.Ordinal));
    }
}
