using EnvoyAuthz.Airflow;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class AirflowStageTests
{
    private static readonly AirflowConnection Partner = new()
    {
        ConnId = "partner_api", ConnType = "http", Host = "https://api.partner.example", Login = "svc",
        Extra = (RegoObject)RegoJson.Parse("""{"timeout":10}"""),
    };
    private static readonly AirflowConnection Warehouse = new() { ConnId = "warehouse", ConnType = "postgres", Host = "db.internal", Port = 5432 };
    private static readonly AirflowConnection Internal = new() { ConnId = "internal_http", ConnType = "http", Host = "svc.internal" };

    private readonly FakeTimeProvider _time = new();
    private readonly FakeLogCollector _logs = new();

    private (AirflowStage Stage, FixedSource File, FixedSource Api) Stage(AirflowOptions? options = null, params AirflowConnection[] apiConnections)
    {
        options ??= new AirflowOptions { Enabled = true, JsonRpc = { Paths = ["/mcp"] } };
        var file = new FixedSource("file", new ConnectionSnapshot([Partner, Warehouse, Internal], _time.GetUtcNow()));
        var api = new FixedSource("api", new ConnectionSnapshot(apiConnections, _time.GetUtcNow()));
        var sensitive = new SensitiveKeys(options.SensitiveKeys);
        var stage = new AirflowStage(options,
            new ConnectionCatalog([file, api], _time, new FakeLogger<ConnectionCatalog>(_logs)),
            new AirflowApiClassifier(options.Ingress),
            new JsonRpcParser(options.JsonRpc, sensitive),
            new TaskContextResolver(options.TaskContext, new FakeLogger<TaskContextResolver>(_logs)),
            new IngressBodyRedactor(sensitive),
            new FakeLogger<AirflowStage>(_logs));
        return (stage, file, api);
    }

    private static AuthzRequest Req(string method = "GET", string path = "/", string host = "api.example.com",
        Dictionary<string, string>? headers = null, string? body = null, Dictionary<string, string>? ext = null) =>
        Requests.Parsed(Requests.Http(method, path, host, headers, body, ext));

    private static string ConnId(AirflowContext c) =>
        c.Input!["connection"] is RegoObject o && o["conn_id"] is RegoString s ? s.Value : "-";

    [Fact]
    public void ContextExtension_WinsOverHeader_WinsOverAuthority()
    {
        var (stage, _, _) = Stage();
        var both = stage.Resolve(Req(host: "db.internal:5432", headers: new() { ["x-airflow-conn-id"] = "internal_http" }, ext: new() { ["airflow_conn_id"] = "partner_api" }), null);
        Assert.Equal("partner_api", ConnId(both));
        Assert.Equal("partner_api", both.ConnectionId);
        Assert.Equal("internal_http", ConnId(stage.Resolve(Req(host: "db.internal:5432", headers: new() { ["x-airflow-conn-id"] = "internal_http" }), null)));
        Assert.Equal("warehouse", ConnId(stage.Resolve(Req(host: "db.internal:5432"), null)));
    }

    [Theory]
    [InlineData("api.partner.example", "https", "partner_api")]
    [InlineData("api.partner.example:443", "https", "partner_api")]
    [InlineData("API.Partner.Example", "https", "partner_api")]
    [InlineData("api.partner.example", "http", null)]          // the connection pins https
    [InlineData("api.partner.example:8443", "https", null)]    // https default port is 443
    [InlineData("db.internal:5432", "http", "warehouse")]
    [InlineData("db.internal:5433", "http", null)]
    [InlineData("svc.internal:8080", "http", "internal_http")] // no port on the connection: any port
    [InlineData("unknown.example", "https", null)]
    public void Authority_MatchesHostPortScheme(string authority, string scheme, string? expected)
    {
        var (stage, _, _) = Stage();
        var check = Requests.Http(host: authority);
        check.Attributes.Request.Http.Scheme = scheme;
        var ctx = stage.Resolve(Requests.Parsed(check), null);
        Assert.Null(ctx.DenyReason);
        Assert.Equal(expected, ctx.ConnectionId);
        Assert.Equal(expected is not null, ctx.Input!.TryGetValue("connection", out _));
    }

    [Fact]
    public void UnknownConnection_LeavesConnectionOut_PolicyDecides()
    {
        var (stage, _, _) = Stage();
        var ctx = stage.Resolve(Req(headers: new() { ["x-airflow-conn-id"] = "nope" }), null);
        Assert.Null(ctx.DenyReason);
        Assert.Null(ctx.ConnectionId);
        Assert.Null(ctx.Input!["connection"]);
    }

    [Fact]
    public void AmbiguousAuthority_MatchesNothing()
    {
        var twin = Internal with { ConnId = "internal_http_2" };
        var options = new AirflowOptions { Enabled = true };
        var (stage, file, _) = Stage(options);
        file.Current = new ConnectionSnapshot([Internal, twin], _time.GetUtcNow());
        Assert.Null(stage.Resolve(Req(host: "svc.internal"), null).ConnectionId);
    }

    [Fact]
    public void ApiCopyPastMaxAge_DeniesDependencyUnavailable_UnlessAnEarlierSourceHasIt()
    {
        var fromApi = new AirflowConnection { ConnId = "api_only", ConnType = "http", Host = "api-only.example" };
        var (stage, _, api) = Stage(null, fromApi);
        Assert.Equal("api_only", stage.Resolve(Req(headers: new() { ["x-airflow-conn-id"] = "api_only" }), null).ConnectionId);

        api.Trusted = false;
        var denied = stage.Resolve(Req(headers: new() { ["x-airflow-conn-id"] = "api_only" }), null);
        Assert.Equal(ReasonCode.DependencyUnavailable, denied.DenyReason);
        Assert.Equal(ReasonCode.DependencyUnavailable, stage.Resolve(Req(host: "nowhere.example"), null).DenyReason);
        // The file is consulted first, so its connections stay usable.
        Assert.Equal("partner_api", stage.Resolve(Req(headers: new() { ["x-airflow-conn-id"] = "partner_api" }), null).ConnectionId);
        // Ingress to Airflow's own API needs no connection.
        Assert.Null(stage.Resolve(Req(path: "/api/v2/dags/etl"), null).DenyReason);
    }

    [Fact]
    public void Ingress_GetsApi_NoAuthorityMatch_AndBodyRedactor()
    {
        var (stage, _, _) = Stage();
        var ctx = stage.Resolve(Req("POST", "/api/v1/dags/etl/dagRuns", host: "svc.internal",
            headers: new() { ["content-type"] = "application/json" }, body: "{}"), null);
        Assert.Null(ctx.ConnectionId);
        Assert.Equal("""{"api":{"action":"trigger","dag_id":"etl","params":{"dag_id":"etl"},"resource":"dagRuns","template":"/dags/{dag_id}/dagRuns","version":"v1"}}""",
            RegoJson.Serialize(ctx.Input!));
        Assert.NotNull(ctx.BodyRedactor);
        Assert.Null(stage.Resolve(Req(host: "svc.internal"), null).BodyRedactor);
    }

    [Fact]
    public void JsonRpc_CallsExposed_MalformedDeniedBadRequest()
    {
        var (stage, _, _) = Stage();
        var ok = stage.Resolve(Req("POST", "/mcp", body: """[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b","id":2}]"""), null);
        Assert.Equal(2, ok.JsonRpc!.Count);
        Assert.NotNull(ok.BodyRedactor);
        var bad = stage.Resolve(Req("POST", "/mcp", body: """{"jsonrpc":"2.0"}"""), null);
        Assert.Equal(ReasonCode.BadRequest, bad.DenyReason);
    }

    [Fact]
    public void Input_HasExactlyTheContractFields_AndNoSecrets()
    {
        var (stage, _, _) = Stage();
        var ctx = stage.Resolve(Req(headers: new()
        {
            ["x-airflow-conn-id"] = "partner_api", ["x-airflow-dag-id"] = "forged", ["x-airflow-task-id"] = "forged",
        }, ext: new()
        {
            ["airflow_dag_id"] = "etl", ["airflow_task_id"] = "load", ["airflow_run_id"] = "r1", ["airflow_try_number"] = "1", ["airflow_map_index"] = "0",
        }), null);
        Assert.Equal(
            """{"connection":{"conn_id":"partner_api","conn_type":"http","description":null,"extra":{"timeout":10},"host":"https://api.partner.example","login":"svc","port":null,"schema":null},"dag_id":"etl","map_index":0,"run_id":"r1","task_id":"load","task_source":{"dag_id":"context_extensions","map_index":"context_extensions","run_id":"context_extensions","task_id":"context_extensions","try_number":"context_extensions"},"try_number":1}""",
            RegoJson.Serialize(ctx.Input!));
    }

    [Fact]
    public void PlantedSecrets_FromEveryParser_NeverReachInputOrLogs()
    {
        var sensitive = SensitiveKeys.Default;
        var (envLogs, envLogger) = AirflowTestSupport.Logger<EnvironmentConnectionSource>();
        var env = new EnvironmentConnectionSource(new Dictionary<string, string>
        {
            ["AIRFLOW_CONN_ENV_URI"] = "http://u:PlantedSecretA@env-uri.example/?token=PlantedSecretB&client_secret=PlantedSecretC",
            ["AIRFLOW_CONN_ENV_JSON"] = """{"conn_type":"http","host":"env-json.example","password":"PlantedSecretD","extra":{"nested":{"private_key":"PlantedSecretE"}}}""",
            ["AIRFLOW_CONN_ENV_BAD"] = "http://u:PlantedSecretF@host:notaport",
        }, sensitive, _time, null, envLogger);
        var options = new AirflowOptions { Enabled = true, JsonRpc = { Paths = ["/mcp"] } };
        var stage = new AirflowStage(options, new ConnectionCatalog([env], _time, new FakeLogger<ConnectionCatalog>(_logs)),
            new AirflowApiClassifier(options.Ingress), new JsonRpcParser(options.JsonRpc, sensitive),
            new TaskContextResolver(options.TaskContext, new FakeLogger<TaskContextResolver>(_logs)), new IngressBodyRedactor(sensitive),
            new FakeLogger<AirflowStage>(_logs));
        var inputs = new List<string>();
        foreach (var r in new[]
        {
            Req(headers: new() { ["x-airflow-conn-id"] = "env_uri" }),
            Req(host: "env-json.example"),
            Req("POST", "/mcp", body: """{"jsonrpc":"2.0","method":"x","params":{"password":"PlantedSecretG"},"id":1}"""),
            Req("POST", "/mcp", body: """{"jsonrpc":"2.0","params":{"password":"PlantedSecretH"}}"""),
        })
        {
            var ctx = stage.Resolve(r, null);
            inputs.Add(ctx.Input is null ? "" : RegoJson.Serialize(ctx.Input));
            inputs.Add(ctx.JsonRpc is null ? "" : RegoJson.Serialize(ctx.JsonRpc));
        }
        var everything = string.Join("\n", inputs) + AirflowTestSupport.AllText(_logs) + AirflowTestSupport.AllText(envLogs);
        Assert.Contains("env_uri", everything);
        Assert.DoesNotContain("PlantedSecret", everything);
    }
}
