using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Airflow;

/// <summary>
/// The shipped Airflow example policies (envoy/egress/policy, envoy/ingress/policy) on the embedded
/// engine, end to end through gRPC, with Airflow awareness on, connections from an export file and
/// real tokens from the OpenID provider.
/// </summary>
public sealed class ExamplePolicyEndToEndTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private const string Connections = """
        {
          "http_default": {"conn_type": "http", "host": "api.partner.example.com", "port": 443, "login": "svc",
                           "password": "PlantedEgressPassword", "extra": {"token": "PlantedEgressToken", "timeout": 5}},
          "slack_alerts": {"conn_type": "slack", "host": "slack.com", "password": "PlantedSlackPassword"}
        }
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-airflow-policies-").FullName;
    private AuthzServiceHost _egress = null!;
    private AuthzServiceHost _ingress = null!;

    public async ValueTask InitializeAsync()
    {
        var file = Path.Combine(_dir, "connections.json");
        await File.WriteAllTextAsync(file, Connections, TestContext.Current.CancellationToken);
        List<KeyValuePair<string, string?>> Common(string policy)
        {
            var s = AuthzServiceHost.IssuerSettings(idp);
            s.AddRange(
            [
                new("EnvoyAuthz:Policy:Path", RepoPaths.Of("envoy", policy, "policy")),
                new("EnvoyAuthz:Airflow:Enabled", "true"),
                new("EnvoyAuthz:Airflow:Connections:File", file),
                new("EnvoyAuthz:Airflow:Connections:Environment", "false"),
                new("EnvoyAuthz:Airflow:JsonRpc:Paths:0", "/mcp"),
                new("EnvoyAuthz:Response:RemoteUserHeader", "x-remote-user"),
            ]);
            return s;
        }
        _egress = await AuthzServiceHost.StartAsync(Common("egress"));
        _ingress = await AuthzServiceHost.StartAsync(Common("ingress"));
        await _egress.WaitReadyAsync();
        await _ingress.WaitReadyAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var host in new[] { _egress, _ingress })
        {
            Assert.DoesNotContain("Planted", host.Logs.Text);
            await host.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    // The example policies send their own deny bodies (text); the reason code is in dynamic metadata and status.message.
    private static string Reason(CheckResponse r) => r.DynamicMetadata.Fields["reason"].StringValue;

    /// <summary>A task's call through its egress sidecar: the route names the connection and the task (context_extensions, set by the operator).</summary>
    private static CheckRequest TaskCall(string connection, string dag, string method = "GET", string path = "/v1/items", string host = "api.partner.example.com") =>
        Requests.Http(method, path, host, new Dictionary<string, string>(), contextExtensions: new Dictionary<string, string>
        {
            ["airflow_conn_id"] = connection,
            ["airflow_dag_id"] = dag,
            ["airflow_task_id"] = "extract",
            ["airflow_run_id"] = "scheduled__2026-11-23T00:00:00+00:00",
            ["airflow_try_number"] = "1",
        });

    /// <summary>The same call where the caller claims its DAG in request headers only.</summary>
    private static CheckRequest ForgedTaskCall(string connection, string dag) =>
        Requests.Http("GET", "/v1/items", "api.partner.example.com", new Dictionary<string, string>
        {
            ["x-airflow-dag-id"] = dag,
            ["x-airflow-task-id"] = "extract",
            ["x-airflow-run-id"] = "scheduled__2026-11-23T00:00:00+00:00",
            ["x-airflow-try-number"] = "1",
        }, contextExtensions: new Dictionary<string, string> { ["airflow_conn_id"] = connection });

    [Fact]
    public async Task Egress_GrantedDag_Allowed_WithConnectionHeader()
    {
        var r = await _egress.CheckAsync(TaskCall("http_default", "etl_daily"));
        Assert.Equal(0, r.Status.Code);
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-airflow-conn-id" && h.Header.Value == "http_default");
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-airflow-dag-id" && h.Header.Value == "etl_daily");
    }

    /// <summary>Issue 9.5: any caller can send x-airflow-dag-id; under the default sources it is no task context, so no DAG's grant applies.</summary>
    [Fact]
    public async Task Egress_DagClaimedInAHeader_NotTaskContext_Denied()
    {
        var r = await _egress.CheckAsync(ForgedTaskCall("http_default", "etl_daily"));
        Assert.Equal(403, (int)r.DeniedResponse.Status.Code);
        Assert.Equal("policy_denied", Reason(r));
        Assert.Contains("no task context (dag_id)", r.DeniedResponse.Body);
    }

    [Fact]
    public async Task Egress_RouteDagWins_OverAForgedHeader()
    {
        var call = TaskCall("http_default", "report_daily");
        call.Attributes.Request.Http.Headers["x-airflow-dag-id"] = "etl_daily";
        var r = await _egress.CheckAsync(call);
        Assert.Equal(403, (int)r.DeniedResponse.Status.Code);
        Assert.Contains("DAG report_daily may not use connection http_default", r.DeniedResponse.Body);
    }

    [Theory]
    [InlineData("http_default", "report_daily", "GET", "/v1/items", "api.partner.example.com", "may not use connection")]
    [InlineData("http_default", "etl_daily", "DELETE", "/v1/items/1", "api.partner.example.com", "method DELETE")]
    [InlineData("http_default", "etl_daily", "GET", "/admin", "api.partner.example.com", "outside what connection")]
    [InlineData("http_default", "etl_daily", "GET", "/v1/items", "exfil.example.net", "not the host of connection")]
    [InlineData("slack_alerts", "ingest_raw", "POST", "/api/chat.postMessage", "slack.com", "may not use connection")]
    public async Task Egress_NotGranted_Denied403(string connection, string dag, string method, string path, string host, string why)
    {
        var r = await _egress.CheckAsync(TaskCall(connection, dag, method, path, host));
        Assert.Equal(403, (int)r.DeniedResponse.Status.Code);
        Assert.Equal("policy_denied", Reason(r));
        Assert.Contains(why, r.DeniedResponse.Body);
    }

    [Fact]
    public async Task Egress_UnknownConnection_DeniedUnknownConnection()
    {
        var r = await _egress.CheckAsync(TaskCall("no_such_conn", "etl_daily"));
        Assert.Equal(403, (int)r.DeniedResponse.Status.Code);
        Assert.Equal("unknown_connection", Reason(r));
        Assert.Equal(1, await _egress.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"unknown_connection\"}"));
    }

    private async Task<CheckRequest> ApiCall(string method, string path, IReadOnlyList<string> groups, string? body = null, string? extraClaims = null, string client = "svc-client")
    {
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest { ClientId = client, Groups = groups, ExtraClaimsJson = extraClaims }, TestContext.Current.CancellationToken);
        return Requests.Http(method, path, "airflow.example.com", new Dictionary<string, string>
        {
            ["authorization"] = "Bearer " + token,
            ["content-type"] = "application/json",
        }, body);
    }

    [Theory]
    [InlineData("GET", "/api/v1/dags", "airflow-viewers", true)]
    [InlineData("POST", "/api/v1/dags/etl_daily/dagRuns", "airflow-viewers", false)]
    [InlineData("POST", "/api/v1/dags/etl_daily/dagRuns", "data-eng", true)]
    [InlineData("POST", "/api/v2/dags/report_daily/dagRuns", "data-eng", false)]
    [InlineData("GET", "/api/v2/connections", "data-eng", false)]
    [InlineData("GET", "/api/v2/connections", "airflow-admins", true)]
    [InlineData("DELETE", "/api/v1/dags/etl_daily", "data-eng", true)]
        [InlineData("GET", "/api/v1/dags/%2e%2e/connections", "airflow-viewers", false)] // 400: a dot segment, denied before the policy
    // Issue 9.3: a v1 variable key takes the rest of the path; it never becomes another resource or DAG.
    [InlineData("GET", "/api/v1/variables/team/secret", "airflow-viewers", false)]
    [InlineData("GET", "/api/v1/variables/team%2Fsecret", "airflow-viewers", false)] // 400 by default: an encoded slash
    [InlineData("DELETE", "/api/v1/variables/etl_x/dags/etl_daily", "data-eng", false)]
    [InlineData("DELETE", "/api/v1/variables/etl_x/dags/etl_daily", "airflow-admins", true)]
    // A path no template matches is unknown: denied even to admins.
    [InlineData("GET", "/api/v2/variables/team/secret", "airflow-admins", false)]
    [InlineData("GET", "/api/v2/dagSources/etl_daily", "airflow-viewers", true)]
    public async Task Ingress_PerGroupAndAction(string method, string path, string group, bool allowed)
    {
        var r = await _ingress.CheckAsync(await ApiCall(method, path, [group], method == "POST" ? "{}" : null));
        Assert.Equal(allowed, r.Status.Code == 0);
        if (allowed)
        {
            Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-remote-user" && h.Header.Value == "svc-client");
        }
        else
        {
            // Dot segments and encoded slashes are ambiguous: denied 400 before the policy (Server:AmbiguousPaths reject).
            Assert.Equal(path.Contains("%2e", StringComparison.OrdinalIgnoreCase) || path.Contains("%2f", StringComparison.OrdinalIgnoreCase) ? 400 : 403, (int)r.DeniedResponse.Status.Code);
        }
    }

    [Fact]
    public async Task Ingress_AiAgent_ConfinedToReadAndTriggerOfAllowListedDags()
    {
        const string act = """{"act": {"sub": "ai-agent-7"}}""";
        Assert.Equal(0, (await _ingress.CheckAsync(await ApiCall("POST", "/api/v1/dags/report_daily/dagRuns", ["airflow-admins"], "{}", act))).Status.Code);
        Assert.NotEqual(0, (await _ingress.CheckAsync(await ApiCall("POST", "/api/v1/dags/ingest_raw/dagRuns", ["airflow-admins"], "{}", act))).Status.Code);
        Assert.NotEqual(0, (await _ingress.CheckAsync(await ApiCall("GET", "/api/v1/connections", ["airflow-admins"], null, act))).Status.Code);
    }

    [Fact]
    public async Task Ingress_JsonRpcBatch_OneForbiddenCallDeniesTheBatch()
    {
        const string ok = """[{"jsonrpc":"2.0","method":"get_dag","params":{"dag_id":"etl_daily"},"id":1},{"jsonrpc":"2.0","method":"trigger_dag","params":{"dag_id":"etl_daily"},"id":2}]""";
        const string bad = """[{"jsonrpc":"2.0","method":"get_dag","params":{"dag_id":"etl_daily"},"id":1},{"jsonrpc":"2.0","method":"get_connection","params":{"conn_id":"prod","password":"PlantedRpcPassword"},"id":2}]""";
        Assert.Equal(0, (await _ingress.CheckAsync(await ApiCall("POST", "/mcp", ["data-eng"], ok))).Status.Code);
        var denied = await _ingress.CheckAsync(await ApiCall("POST", "/mcp", ["data-eng"], bad));
        Assert.Equal(403, (int)denied.DeniedResponse.Status.Code);
        Assert.Contains("get_connection", denied.DeniedResponse.Body);
        Assert.DoesNotContain("PlantedRpcPassword", denied.DeniedResponse.Body);
    }

    [Fact]
    public async Task Ingress_MalformedJsonRpc_DeniedBadRequest()
    {
        var r = await _ingress.CheckAsync(await ApiCall("POST", "/mcp", ["data-eng"], """{"jsonrpc":"2.0","params":[]}"""));
        Assert.Equal(400, (int)r.DeniedResponse.Status.Code);
        Assert.Equal("bad_request", Reason(r));
    }

    [Fact]
    public async Task Ingress_ConnectionCreateByAdmin_AllowedAndPasswordNeverLogged()
    {
        var r = await _ingress.CheckAsync(await ApiCall("POST", "/api/v2/connections", ["airflow-admins"],
            """{"connection_id":"new_db","conn_type":"postgres","password":"PlantedNewPassword","extra":"{\"private_key\":\"PlantedKey\"}"}"""));
        Assert.Equal(0, r.Status.Code);
    }
}
