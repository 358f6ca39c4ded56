using System.Text.Json;
using System.Text.Json.Nodes;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.IntegrationTests.Airflow;

/// <summary>
/// End-to-end Checks through the real service with Airflow awareness on: real tokens from the
/// OpenID provider, connections from a file and from the Airflow API stand-in, and the remote OPA
/// stand-in (allow iff the caller is in <c>admins</c>) capturing every policy input.
/// </summary>
public sealed class AirflowCheckTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private const string ConnectionsFile = """
        {
          "partner_api": {"conn_type": "http", "description": "Partner", "login": "svc", "password": "PlantedFilePassword",
                          "host": "https://api.partner.example", "port": null, "schema": null,
                          "extra": "{\"timeout\": 10, \"api_key\": \"PlantedFileApiKey\"}"},
          "warehouse": "postgres://etl:PlantedUriPassword@db.internal:5432/dwh?sslmode=require&password=PlantedQueryPassword"
        }
        """;

    // Virtual time is advanced by at most ~11 s per test: the Check deadline the test client sends is wall-clock.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "envoyauthz-airflow-e2e-" + Guid.NewGuid().ToString("N"));
    private OpaDataApiServer _opa = null!;
    private AirflowApiServer _airflow = null!;
    private AuthzServiceHost _host = null!;

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        var file = Path.Combine(_dir, "connections.json");
        await File.WriteAllTextAsync(file, ConnectionsFile, TestContext.Current.CancellationToken);
        _opa = await OpaDataApiServer.StartAsync();
        _airflow = await AirflowApiServer.StartAsync();
        _airflow.AddConnections(5);
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.AddRange(
        [
            new("EnvoyAuthz:Policy:Engine", "remote-opa"),
            new("EnvoyAuthz:Policy:DecisionPath", "envoy/authz/allow"),
            new("EnvoyAuthz:Policy:RemoteOpa:Url", _opa.Url),
            new("EnvoyAuthz:Airflow:Enabled", "true"),
            new("EnvoyAuthz:Airflow:Connections:File", file),
            new("EnvoyAuthz:Airflow:Connections:Environment", "false"),
            new("EnvoyAuthz:Airflow:Connections:Api:BaseUrl", _airflow.Url),
            new("EnvoyAuthz:Airflow:Connections:Api:Version", "v2"),
            new("EnvoyAuthz:Airflow:Connections:Api:Username", AirflowApiServer.Username),
            new("EnvoyAuthz:Airflow:Connections:Api:Password", AirflowApiServer.Password),
            new("EnvoyAuthz:Airflow:Connections:Api:RefreshInterval", "00:00:04"),
            new("EnvoyAuthz:Airflow:Connections:Api:RetryInterval", "00:00:02"),
            new("EnvoyAuthz:Airflow:Connections:Api:MaxAge", "00:00:08"),
            new("EnvoyAuthz:Airflow:JsonRpc:Paths:0", "/mcp"),
        ]);
        _host = await AuthzServiceHost.StartAsync(settings, s => s.AddSingleton<TimeProvider>(_time));
        await _host.WaitReadyAsync();
        var api = _host.Services.GetRequiredService<ApiConnectionSource>();
        for (var i = 0; i < 500 && api.Current is null; i++)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.NotNull(api.Current);
        // Warm-up: the first Check of a fresh host pays for JIT and may be shed as overloaded on a busy machine.
        await _host.CheckAsync(await RequestAsync(["admins"]));
    }

    public async ValueTask DisposeAsync()
    {
        // Secrets planted in the file, the API's answers and the API credentials never reach a log line.
        Assert.DoesNotContain("Planted", _host.Logs.Text);
        await _host.DisposeAsync();
        await _airflow.DisposeAsync();
        await _opa.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<CheckRequest> RequestAsync(string[] groups, string method = "GET", string path = "/v1/things", string host = "api.example.com",
        Dictionary<string, string>? headers = null, string? body = null)
    {
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest { Groups = groups }, TestContext.Current.CancellationToken);
        var all = new Dictionary<string, string>(headers ?? []) { ["authorization"] = "Bearer " + token };
        return Requests.Http(method, path, host, all, body);
    }

    private JsonNode? LastAirflowInput() => _opa.Inputs[^1]["airflow"];

    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    [Fact]
    public async Task Egress_FileConnectionAndTaskContext_ReachPolicy_AndConnIdHeaderOnAllow()
    {
        // The task context comes from the route (context_extensions); the caller's own task headers are not a default source.
        var check = await RequestAsync(["admins"], headers: new()
        {
            ["x-airflow-conn-id"] = "partner_api", ["x-airflow-dag-id"] = "forged_dag", ["x-airflow-task-id"] = "forged_task",
        });
        foreach (var (k, v) in new Dictionary<string, string>
        {
            ["airflow_dag_id"] = "etl", ["airflow_task_id"] = "load", ["airflow_run_id"] = "scheduled__2025-01-01T00:00:00+00:00",
            ["airflow_try_number"] = "1", ["airflow_map_index"] = "-1",
        })
        {
            check.Attributes.ContextExtensions[k] = v;
        }
        var response = await _host.CheckAsync(check);
        Assert.Equal(0, response.Status.Code);
        Assert.Contains(response.OkResponse.Headers, h => h.Header.Key == "x-airflow-conn-id" && h.Header.Value == "partner_api");
        var airflow = LastAirflowInput()!;
        Assert.Equal("""{"conn_id":"partner_api","conn_type":"http","description":"Partner","extra":{"timeout":10},"host":"https://api.partner.example","login":"svc","port":null,"schema":null}""",
            airflow["connection"]!.ToJsonString());
        Assert.Equal("etl", airflow["dag_id"]!.GetValue<string>());
        Assert.Equal(1, airflow["try_number"]!.GetValue<int>());
        Assert.Equal(-1, airflow["map_index"]!.GetValue<int>());
        Assert.Equal("""{"dag_id":"context_extensions","map_index":"context_extensions","run_id":"context_extensions","task_id":"context_extensions","try_number":"context_extensions"}""",
            airflow["task_source"]!.ToJsonString());
        Assert.DoesNotContain("forged", airflow.ToJsonString());
        Assert.DoesNotContain("Planted", _opa.Inputs[^1].ToJsonString());
    }

    [Fact]
    public async Task Egress_ApiConnection_MatchedByAuthority()
    {
        var check = await RequestAsync(["admins"], host: "svc3.example");
        Assert.Equal(0, (await _host.CheckAsync(check)).Status.Code);
        var conn = LastAirflowInput()!["connection"]!;
        Assert.Equal("conn_3", conn["conn_id"]!.GetValue<string>());
        Assert.Equal("""{"nested":{"ok":true},"timeout":3}""", conn["extra"]!.ToJsonString());
        Assert.DoesNotContain("Planted", _opa.Inputs[^1].ToJsonString());
    }

    [Fact]
    public async Task Egress_FileConnection_FromUriEntry_ByContextExtension()
    {
        var check = await RequestAsync(["admins"]);
        check.Attributes.ContextExtensions["airflow_conn_id"] = "warehouse";
        Assert.Equal(0, (await _host.CheckAsync(check)).Status.Code);
        var conn = LastAirflowInput()!["connection"]!;
        Assert.Equal("""{"conn_id":"warehouse","conn_type":"postgres","description":null,"extra":{"sslmode":"require"},"host":"db.internal","login":"etl","port":5432,"schema":"dwh"}""",
            conn.ToJsonString());
    }

    [Fact]
    public async Task UnknownConnection_NoConnectionInInput_PolicyDecides()
    {
        var response = await _host.CheckAsync(await RequestAsync(["viewers"], headers: new() { ["x-airflow-conn-id"] = "does_not_exist" }));
        Assert.True(403 == (int)response.DeniedResponse.Status.Code, response.DeniedResponse.Body + "\n" + _host.Logs.Text);
        Assert.Equal(403, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("policy_denied", Reason(response));
        Assert.Null(LastAirflowInput()!["connection"]);
        Assert.DoesNotContain(response.DeniedResponse.Headers, h => h.Header.Key == "x-airflow-conn-id");
    }

    [Fact]
    public async Task Ingress_AirflowApiCall_Described()
    {
        await _host.CheckAsync(await RequestAsync(["admins"], "POST", "/api/v2/dags/etl/dagRuns", "airflow.example.com",
            new() { ["content-type"] = "application/json" }, """{"logical_date": null}"""));
        Assert.Equal("""{"action":"trigger","dag_id":"etl","params":{"dag_id":"etl"},"resource":"dagRuns","template":"/dags/{dag_id}/dagRuns","version":"v2"}""",
            LastAirflowInput()!["api"]!.ToJsonString());
        Assert.Null(LastAirflowInput()!["connection"]);

        // A v1 variable key may hold '/': the whole rest of the path is the key, not another resource.
        await _host.CheckAsync(await RequestAsync(["admins"], "DELETE", "/api/v1/variables/etl_x/dags/etl_daily", "airflow.example.com"));
        Assert.Equal("""{"action":"delete","params":{"variable_key":"etl_x/dags/etl_daily"},"resource":"variables","template":"/variables/{variable_key}","variable_key":"etl_x/dags/etl_daily","version":"v1"}""",
            LastAirflowInput()!["api"]!.ToJsonString());
    }

    [Fact]
    public async Task Metrics_ReportSourcesAndRefreshes()
    {
        Assert.Equal(5, await _host.MetricAsync("envoy_authz_airflow_connections{source=\"api\"}"));
        Assert.Equal(2, await _host.MetricAsync("envoy_authz_airflow_connections{source=\"file\"}"));
        Assert.Equal(1, await _host.MetricAsync("envoy_authz_airflow_connections_trusted{source=\"api\"}"));
        Assert.True(await _host.MetricAsync("envoy_authz_airflow_connection_refreshes_total{source=\"api\",result=\"success\"}") >= 1);
    }

    [Fact]
    public async Task ApiDown_LastGoodCopyServes_UntilMaxAge_ThenStageDeniesDependencyUnavailable()
    {
        var stage = _host.Services.GetRequiredService<IAirflowStage>();
        _airflow.Fault = AirflowApiFault.ServerError;
        _time.Advance(TimeSpan.FromSeconds(5)); // a refresh is due and fails; the copy is 5 s old
        var check = await RequestAsync(["admins"], host: "svc1.example");
        Assert.Equal(0, (await _host.CheckAsync(check)).Status.Code);
        Assert.Equal("conn_1", LastAirflowInput()!["connection"]!["conn_id"]!.GetValue<string>());

        _time.Advance(TimeSpan.FromSeconds(4)); // past the 8 s max age
        var ctx = await stage.ResolveAsync(Requests.Parsed(check), null, TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.DependencyUnavailable, ctx.DenyReason);
        Assert.Equal(0, await _host.MetricAsync("envoy_authz_airflow_connections_trusted{source=\"api\"}"));

        _airflow.Fault = AirflowApiFault.None;
        var api = _host.Services.GetRequiredService<ApiConnectionSource>();
        _time.Advance(TimeSpan.FromSeconds(2)); // the retry is due and succeeds
        // The refresh loop may arm its retry timer after that advance (a busy machine): keep the virtual
        // clock moving in small steps (at most 6 s more, within a fresh copy's 8 s max age) until it has run.
        for (var i = 0; i < 500 && !api.IsTrusted(_time.GetUtcNow()); i++)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
            if (i % 5 == 4 && i < 300)
            {
                _time.Advance(TimeSpan.FromMilliseconds(100));
            }
        }
        Assert.Null((await stage.ResolveAsync(Requests.Parsed(check), null, TestContext.Current.CancellationToken)).DenyReason);
    }

    [Fact]
    public async Task ApiDown_PastMaxAge_CheckDenied503DependencyUnavailable()
    {
        _airflow.Fault = AirflowApiFault.ServerError;
        _time.Advance(TimeSpan.FromSeconds(9));
        var response = await _host.CheckAsync(await RequestAsync(["admins"], host: "svc1.example"));
        Assert.Equal(503, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("dependency_unavailable", Reason(response));
        // Airflow's own API needs no connection: ingress keeps working.
        Assert.Equal(0, (await _host.CheckAsync(await RequestAsync(["admins"], path: "/api/v2/dags/etl"))).Status.Code);
    }

    [Fact]
    public async Task Ingress_ConnectionsApiBody_PasswordNeverInInput()
    {
        await _host.CheckAsync(await RequestAsync(["admins"], "POST", "/api/v1/connections", "airflow.example.com",
            new() { ["content-type"] = "application/json" },
            """{"connection_id":"new","conn_type":"http","password":"PlantedBodyPassword","extra":"{\"token\": \"PlantedBodyToken\"}"}"""));
        var input = _opa.Inputs[^1].ToJsonString();
        Assert.DoesNotContain("PlantedBody", input);
        Assert.Contains("[REDACTED]", input);
    }

    [Fact]
    public async Task JsonRpcBatch_EveryCallInInput_SecretParamsMasked()
    {
        await _host.CheckAsync(await RequestAsync(["admins"], "POST", "/mcp", "agent-gateway.example",
            new() { ["content-type"] = "application/json" },
            """[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"trigger_dag","arguments":{"dag_id":"etl"}},"id":1},{"jsonrpc":"2.0","method":"tools/call","params":{"name":"create_connection","arguments":{"password":"PlantedRpcPassword"}},"id":2}]"""));
        var input = _opa.Inputs[^1];
        Assert.Equal(2, input["jsonrpc"]!.AsArray().Count);
        Assert.Equal("tools/call", input["jsonrpc"]![1]!["method"]!.GetValue<string>());
        Assert.DoesNotContain("PlantedRpc", input.ToJsonString());
    }

    [Fact]
    public async Task MalformedJsonRpc_OnAnEndpoint_IsDeniedByTheStage()
    {
        var stage = _host.Services.GetRequiredService<IAirflowStage>();
        var check = await RequestAsync(["admins"], "POST", "/mcp", "agent-gateway.example", new() { ["content-type"] = "application/json" },
            """{"jsonrpc":"2.0","params":{}}""");
        var ctx = await stage.ResolveAsync(Requests.Parsed(check), null, TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.BadRequest, ctx.DenyReason);
    }
}
