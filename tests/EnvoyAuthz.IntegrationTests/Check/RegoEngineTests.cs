using System.Text.Json;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Check;

/// <summary>
/// Policies written for OPA-Envoy give the same decisions through Check on the embedded engine,
/// with real tokens; policies reload without a restart and a broken one never takes over.
/// </summary>
public sealed class RegoEngineTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-rego-it-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // The shape of OPA-Envoy's own examples: a boolean `allow`, reading input.parsed_path and
    // input.attributes.request.http (method, headers), plus an object decision `response`.
    private const string OpaEnvoyPolicy = """
        package envoy.authz

        import rego.v1

        default allow := false

        allow if {
            input.attributes.request.http.method == "GET"
            input.parsed_path[0] == "api"
            input.identity.subject
        }

        allow if {
            input.attributes.request.http.method == "POST"
            input.parsed_path = ["api", "v1", "dags", dag, "dagRuns"]
            dag in data.envoy.authz.triggerable
            "airflow-admins" in input.identity.groups
        }

        default response := {"allowed": false, "http_status": 403, "body": "not allowed"}

        response := {
            "allowed": true,
            "headers": {"x-dag": input.parsed_path[3], "x-tenant": input.attributes.request.http.headers["x-tenant"]},
            "response_headers_to_add": {"x-policy": "opa-envoy-style"},
            "request_headers_to_remove": ["x-debug"],
        } if allow
        """;

    private async Task<AuthzServiceHost> HostAsync(string decisionPath)
    {
        File.WriteAllText(Path.Combine(_dir, "policy.rego"), OpaEnvoyPolicy);
        Directory.CreateDirectory(Path.Combine(_dir, "envoy", "authz"));
        File.WriteAllText(Path.Combine(_dir, "envoy", "authz", "data.json"), """{"triggerable": ["etl"]}""");
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Engine", "rego"));
        settings.Add(new("EnvoyAuthz:Policy:Path", _dir));
        settings.Add(new("EnvoyAuthz:Policy:DecisionPath", decisionPath));
        settings.Add(new("EnvoyAuthz:Policy:ReloadInterval", "00:00:00.2"));
        var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();
        return host;
    }

    private async Task<Envoy.Service.Auth.V3.CheckRequest> Request(string method, string path, string client = "svc-client")
    {
        var token = await idp.GetAccessTokenAsync(clientId: client, cancellationToken: TestContext.Current.CancellationToken);
        return Requests.Http(method, path, headers: new Dictionary<string, string>
        {
            ["authorization"] = "Bearer " + token,
            ["x-tenant"] = "blue",
            ["content-type"] = "application/json",
        }, body: method == "POST" ? """{"conf":{}}""" : null);
    }

    [Theory]
    [InlineData("GET", "/api/v1/dags", "svc-client", true)]
    [InlineData("DELETE", "/api/v1/dags/etl", "admin-client", false)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns", "admin-client", true)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns", "svc-client", false)]
    [InlineData("POST", "/api/v1/dags/billing/dagRuns", "admin-client", false)]
    [InlineData("GET", "/other", "svc-client", false)]
    public async Task BooleanDecision_AsOpaWould(string method, string path, string client, bool allowed)
    {
        await using var host = await HostAsync("envoy/authz/allow");
        var response = await host.CheckAsync(await Request(method, path, client));
        Assert.Equal(allowed, response.Status.Code == 0);
        if (!allowed)
        {
            Assert.Equal(403, (int)response.DeniedResponse.Status.Code);
            Assert.Equal("policy_denied", JsonDocument.Parse(response.DeniedResponse.Body).RootElement.GetProperty("reason").GetString());
        }
    }

    [Fact]
    public async Task ObjectDecision_HeadersRemovalsAndDenyBody()
    {
        await using var host = await HostAsync("data.envoy.authz.response");
        var allowed = await host.CheckAsync(await Request("POST", "/api/v1/dags/etl/dagRuns", "admin-client"));
        Assert.Equal(0, allowed.Status.Code);
        Assert.Contains(allowed.OkResponse.Headers, h => h.Header.Key == "x-dag" && h.Header.Value == "etl");
        Assert.Contains(allowed.OkResponse.Headers, h => h.Header.Key == "x-tenant" && h.Header.Value == "blue");
        Assert.Contains(allowed.OkResponse.Headers, h => h.Header.Key == "x-authz-subject" && h.Header.Value == "admin-client");
        Assert.Contains(allowed.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == "x-policy");
        Assert.Contains("x-debug", allowed.OkResponse.HeadersToRemove);

        var denied = await host.CheckAsync(await Request("POST", "/api/v1/dags/etl/dagRuns", "svc-client"));
        Assert.Equal(403, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("not allowed", denied.DeniedResponse.Body);
    }

    [Fact]
    public async Task Reload_BrokenPolicyKeepsServing_FixedPolicyTakesOverWithoutRestart()
    {
        await using var host = await HostAsync("envoy/authz/allow");
        var get = await Request("GET", "/api/v1/dags");
        Assert.Equal(0, (await host.CheckAsync(get)).Status.Code);
        var failures = await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"failure\"}") ?? 0;

        File.WriteAllText(Path.Combine(_dir, "policy.rego"), "package envoy.authz\nimport rego.v1\nallow if {\n");
        await WaitFor(async () => await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"failure\"}") > failures);
        Assert.Equal(0, (await host.CheckAsync(get)).Status.Code);
        Assert.Contains(host.Logs.Lines, l => l.Contains("[1203]") && l.Contains("policy.rego:"));

        File.WriteAllText(Path.Combine(_dir, "policy.rego"), "package envoy.authz\nimport rego.v1\ndefault allow := false\n");
        await WaitFor(async () => (await host.CheckAsync(get)).Status.Code != 0);
        Assert.Equal(0, await host.MetricAsync("envoy_authz_inflight_checks"));
    }

    [Fact]
    public async Task BrokenPolicyAtStart_StopsTheStartWithEveryError()
    {
        File.WriteAllText(Path.Combine(_dir, "a.rego"), "package envoy.authz\nallow if {\n");
        File.WriteAllText(Path.Combine(_dir, "b.rego"), "package envoy.authz\nallow if input.x = \n");
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Path", _dir));
        var ex = await Assert.ThrowsAsync<EnvoyAuthz.Hosting.ConfigurationErrorsException>(() => AuthzServiceHost.StartAsync(settings));
        Assert.Contains(ex.Errors, e => e.Contains("a.rego:"));
    }

    private static async Task WaitFor(Func<Task<bool>> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < until)
        {
            if (await condition())
            {
                return;
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("condition not reached");
    }
}
