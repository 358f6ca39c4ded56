using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class AirflowApiClassifierTests
{
    private static readonly AirflowApiClassifier Root = new(new AirflowIngressOptions());

    [Theory]
    // method, path, version, resource, action, dag_id, dag_run_id, task_id, connection_id
    [InlineData("GET", "/api/v1/dags", "v1", "dags", "read", null, null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl", "v1", "dags", "read", "etl", null, null, null)]
    [InlineData("PATCH", "/api/v1/dags/etl", "v1", "dags", "update", "etl", null, null, null)]
    [InlineData("DELETE", "/api/v1/dags/etl", "v1", "dags", "delete", "etl", null, null, null)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns", "v1", "dagRuns", "trigger", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns", "v1", "dagRuns", "read", "etl", null, null, null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/manual__1", "v1", "dagRuns", "update", "etl", "manual__1", null, null)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns/r1/clear", "v1", "dagRuns", "update", "etl", "r1", null, null)]
    [InlineData("POST", "/api/v1/dags/~/dagRuns/list", "v1", "dagRuns", "read", "~", null, null, null)]
    [InlineData("POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", "v1", "taskInstances", "read", "~", "~", null, null)]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/logs/2", "v1", "logs", "read", "etl", "r1", "load", null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/3", "v1", "taskInstances", "update", "etl", "r1", "load", null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/setNote", "v1", "taskInstances", "update", "etl", "r1", "load", null)]
    [InlineData("POST", "/api/v1/dags/etl/clearTaskInstances", "v1", "taskInstances", "update", "etl", null, null, null)]
    [InlineData("POST", "/api/v1/dags/etl/updateTaskInstancesState", "v1", "taskInstances", "update", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/tasks/load", "v1", "tasks", "read", "etl", null, "load", null)]
    [InlineData("GET", "/api/v1/connections", "v1", "connections", "read", null, null, null, null)]
    [InlineData("POST", "/api/v1/connections", "v1", "connections", "create", null, null, null, null)]
    [InlineData("GET", "/api/v1/connections/my_db", "v1", "connections", "read", null, null, null, "my_db")]
    [InlineData("PATCH", "/api/v1/connections/my_db", "v1", "connections", "update", null, null, null, "my_db")]
    [InlineData("DELETE", "/api/v1/connections/my_db", "v1", "connections", "delete", null, null, null, "my_db")]
    [InlineData("POST", "/api/v1/connections/test", "v1", "connections", "create", null, null, null, null)]
    [InlineData("GET", "/api/v1/connections/test", "v1", "connections", "read", null, null, null, "test")]
    [InlineData("GET", "/api/v1/config/section/core/option/fernet_key", "v1", "config", "read", null, null, null, null)]
    [InlineData("POST", "/api/v1/variables", "v1", "variables", "create", null, null, null, null)]
    [InlineData("GET", "/api/v2/dags/etl", "v2", "dags", "read", "etl", null, null, null)]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns", "v2", "dagRuns", "trigger", "etl", null, null, null)]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns/list", "v2", "dagRuns", "read", "etl", null, null, null)]
    [InlineData("GET", "/api/v2/dags/etl/dagRuns/list", "v2", "dagRuns", "read", "etl", "list", null, null)]
    [InlineData("POST", "/api/v2/dags/list/dagRuns", "v2", "dagRuns", "trigger", "list", null, null, null)]
    [InlineData("PATCH", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/dry_run", "v2", "taskInstances", "read", "etl", "r", "t", null)]
    [InlineData("PATCH", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/0/dry_run", "v2", "taskInstances", "read", "etl", "r", "t", null)]
    [InlineData("DELETE", "/api/v2/dags/etl/dagRuns/r/taskInstances/t", "v2", "taskInstances", "delete", "etl", "r", "t", null)]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/xcomEntries", "v2", "xcomEntries", "create", "etl", "r", "t", null)]
    [InlineData("GET", "/api/v2/dags/etl/dagRuns/r/wait", "v2", "dagRuns", "read", "etl", "r", null, null)]
    [InlineData("PATCH", "/api/v2/connections", "v2", "connections", "update", null, null, null, null)]
    [InlineData("POST", "/api/v2/connections/defaults", "v2", "connections", "create", null, null, null, null)]
    [InlineData("POST", "/api/v2/assets/7/materialize", "v2", "assets", "trigger", null, null, null, null)]
    [InlineData("POST", "/api/v2/backfills", "v2", "backfills", "trigger", null, null, null, null)]
    [InlineData("POST", "/api/v2/backfills/dry_run", "v2", "backfills", "read", null, null, null, null)]
    [InlineData("PUT", "/api/v2/backfills/3/pause", "v2", "backfills", "update", null, null, null, null)]
    [InlineData("POST", "/api/v2/dags/etl/favorite", "v2", "dags", "update", "etl", null, null, null)]
    [InlineData("GET", "/api/v2/monitor/health", "v2", "monitor", "read", null, null, null, null)]
    [InlineData("OPTIONS", "/api/v2/dags", "v2", "dags", null, null, null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/", "v1", "dags", "read", "etl", null, null, null)]
    public void Classify_MethodAndPath(string method, string path, string version, string? resource, string? action,
        string? dagId, string? runId, string? taskId, string? connId)
    {
        var call = Root.Classify(Requests.Parsed(Requests.Http(method, path)));
        Assert.Equal(new AirflowApiCall(version, resource, action, dagId, runId, taskId, connId), call);
    }

    // Dot segments and encoded slashes never reach the classifier: the parser denies them (or, in
    // normalize mode, hands over the normal form); see PathNormalizerTests.
    [Theory]
    [InlineData("/api/v1")]
    public void HostilePaths_GetNoResourceNorAction(string path)
    {
        var call = Root.Classify(Requests.Parsed(Requests.Http("GET", path)));
        Assert.NotNull(call);
        Assert.Null(call!.Action);
        Assert.Null(call.Resource);
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/api/v3/dags")]
    [InlineData("/API/v1/dags")]
    [InlineData("/apiv1/dags")]
    [InlineData("/health")]
    public void NotAirflowApi_IsNull(string path) =>
        Assert.Null(Root.Classify(Requests.Parsed(Requests.Http("GET", path))));

    [Fact]
    public void PathPrefix_AndHosts_Restrict()
    {
        var c = new AirflowApiClassifier(new AirflowIngressOptions { PathPrefix = "/airflow", Hosts = ["airflow.example.com"] });
        Assert.Equal("etl", c.Classify(Requests.Parsed(Requests.Http("GET", "/airflow/api/v2/dags/etl", host: "airflow.example.com:8443")))!.DagId);
        Assert.Null(c.Classify(Requests.Parsed(Requests.Http("GET", "/api/v2/dags/etl", host: "airflow.example.com"))));
        Assert.Null(c.Classify(Requests.Parsed(Requests.Http("GET", "/airflow/api/v2/dags/etl", host: "other.example.com"))));
        Assert.Null(new AirflowApiClassifier(new AirflowIngressOptions { Enabled = false }).Classify(Requests.Parsed(Requests.Http("GET", "/api/v2/dags"))));
    }

    [Fact]
    public void ToRego_LeavesOutUnknownFields()
    {
        var call = Root.Classify(Requests.Parsed(Requests.Http("POST", "/api/v1/dags/etl/dagRuns")))!;
        Assert.Equal("""{"action":"trigger","dag_id":"etl","resource":"dagRuns","version":"v1"}""", RegoJson.Serialize(call.ToRego()));
    }
}
