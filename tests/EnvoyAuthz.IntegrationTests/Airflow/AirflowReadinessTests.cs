using System.Net;
using EnvoyAuthz.IntegrationTests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Airflow;

/// <summary>/readyz waits for every configured connection source to have loaded once.</summary>
public sealed class AirflowReadinessTests
{
    [Fact]
    public async Task Readyz_NotReadyUntilTheApiConnectionSourceHasLoadedOnce()
    {
        await using var airflow = await AirflowApiServer.StartAsync();
        airflow.AddConnections(2);
        airflow.Fault = AirflowApiFault.ServerError;
        await using var host = await AuthzServiceHost.StartAsync(
        [
            new("EnvoyAuthz:Airflow:Enabled", "true"),
            new("EnvoyAuthz:Airflow:Connections:Environment", "false"),
            new("EnvoyAuthz:Airflow:Connections:Api:BaseUrl", airflow.Url),
            new("EnvoyAuthz:Airflow:Connections:Api:Version", "v1"),
            new("EnvoyAuthz:Airflow:Connections:Api:Username", AirflowApiServer.Username),
            new("EnvoyAuthz:Airflow:Connections:Api:Password", AirflowApiServer.Password),
            new("EnvoyAuthz:Airflow:Connections:Api:RefreshInterval", "00:00:01"),
            new("EnvoyAuthz:Airflow:Connections:Api:RetryInterval", "00:00:01"),
        ]);

        // Sampled while the API fails (the samples are spaced, not timed): never ready.
        for (var i = 0; i < 5; i++)
        {
            using var r = await host.Http.GetAsync("/readyz", TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            Assert.Contains("Airflow connections", await r.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
            await Task.Delay(300, TestContext.Current.CancellationToken);
        }
        Assert.True(await host.MetricAsync("envoy_authz_airflow_connection_refreshes_total{source=\"api\",result=\"failure\"}") >= 1);

        airflow.Fault = AirflowApiFault.None;
        await host.WaitReadyAsync();
    }
}
