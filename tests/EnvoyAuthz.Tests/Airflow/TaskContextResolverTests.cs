using EnvoyAuthz.Airflow;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf.WellKnownTypes;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class TaskContextResolverTests
{
    private static CallerIdentity Identity(string claimsJson) => new()
    {
        IssuerName = "oidc", Issuer = "https://idp", Subject = "s", Audience = ["a"], Scopes = [], Groups = [], Roles = [],
        ExpiresAt = DateTimeOffset.UnixEpoch, Claims = (RegoObject)RegoJson.Parse(claimsJson),
    };

    private static Envoy.Service.Auth.V3.CheckRequest WithMetadata(Envoy.Service.Auth.V3.CheckRequest check, string ns, Dictionary<string, Value> fields)
    {
        var s = new Struct();
        foreach (var (k, v) in fields)
        {
            s.Fields[k] = v;
        }
        check.Attributes.MetadataContext = new Envoy.Config.Core.V3.Metadata();
        check.Attributes.MetadataContext.FilterMetadata[ns] = s;
        return check;
    }

    private static string Resolve(AirflowTaskContextOptions options, Envoy.Service.Auth.V3.CheckRequest check, CallerIdentity? identity)
    {
        var (_, logger) = AirflowTestSupport.Logger<TaskContextResolver>();
        var b = new RegoObject.Builder();
        new TaskContextResolver(options, logger).Resolve(Requests.Parsed(check), identity, b);
        return RegoJson.Serialize(b.Build());
    }

    private static readonly Dictionary<string, string> Headers = new()
    {
        ["x-airflow-dag-id"] = "hdr_dag", ["x-airflow-task-id"] = "hdr_task", ["x-airflow-run-id"] = "manual__2025-01-01T00:00:00+00:00",
        ["x-airflow-try-number"] = "2", ["x-airflow-map-index"] = "-1",
    };

    private static readonly Dictionary<string, string> Extensions = new()
    {
        ["airflow_dag_id"] = "route_dag", ["airflow_task_id"] = "route_task", ["airflow_run_id"] = "scheduled__2025-01-01T00:00:00+00:00",
        ["airflow_try_number"] = "3", ["airflow_map_index"] = "4",
    };

    private static readonly AirflowTaskContextOptions WithHeaders = new() { Sources = ["claims", "context_extensions", "metadata", "headers"] };

    /// <summary>Issue 9.5: with the default sources, any caller's forged task headers give no task context at all.</summary>
    [Fact]
    public void Defaults_ForgedHeaders_GiveNoTaskContext()
    {
        Assert.Equal("{}", Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: Headers), null));
        Assert.Equal("{}", Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: Headers), Identity("""{"sub":"s"}""")));
    }

    /// <summary>Every field, forged in a header, next to each trusted source: under the defaults the trusted value wins or the field is absent — never the header's.</summary>
    [Theory]
    [InlineData("dag_id", "x-airflow-dag-id", "airflow_dag_id", "victim_dag")]
    [InlineData("task_id", "x-airflow-task-id", "airflow_task_id", "victim_task")]
    [InlineData("run_id", "x-airflow-run-id", "airflow_run_id", "victim_run")]
    [InlineData("try_number", "x-airflow-try-number", "airflow_try_number", "9")]
    [InlineData("map_index", "x-airflow-map-index", "airflow_map_index", "9")]
    public void Defaults_EveryForgedHeaderField_NeverReachesInput(string field, string header, string extension, string forged)
    {
        var headers = new Dictionary<string, string> { [header] = forged };
        Assert.Equal("{}", Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: headers), Identity("""{"sub":"s"}""")));
        var check = Requests.Http(headers: headers, contextExtensions: new Dictionary<string, string> { [extension] = Extensions[extension] });
        var json = Resolve(new AirflowTaskContextOptions(), check, null);
        Assert.DoesNotContain(forged, json);
        Assert.Contains($"\"task_source\":{{\"{field}\":\"context_extensions\"}}", json);
    }

    [Fact]
    public void ContextExtensions_AreATrustedDefaultSource_WithProvenance()
    {
        Assert.Equal(
            """{"dag_id":"route_dag","map_index":4,"run_id":"scheduled__2025-01-01T00:00:00+00:00","task_id":"route_task","task_source":{"dag_id":"context_extensions","map_index":"context_extensions","run_id":"context_extensions","task_id":"context_extensions","try_number":"context_extensions"},"try_number":3}""",
            Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: Headers, contextExtensions: Extensions), null));
    }

    [Fact]
    public void Headers_WhenConfigured_AllFieldsTyped_AndMarkedAsHeaders()
    {
        Assert.Equal("""{"dag_id":"hdr_dag","map_index":-1,"run_id":"manual__2025-01-01T00:00:00+00:00","task_id":"hdr_task","task_source":{"dag_id":"headers","map_index":"headers","run_id":"headers","task_id":"headers","try_number":"headers"},"try_number":2}""",
            Resolve(WithHeaders, Requests.Http(headers: Headers), null));
    }

    [Fact]
    public void Precedence_ClaimsThenContextExtensionsThenMetadataThenHeaders_PerField()
    {
        var check = WithMetadata(Requests.Http(headers: Headers, contextExtensions: new Dictionary<string, string> { ["airflow_task_id"] = "route_task" }), "airflow", new()
        {
            ["dag_id"] = Value.ForString("meta_dag"), ["task_id"] = Value.ForString("meta_task"), ["try_number"] = Value.ForNumber(3),
        });
        var json = Resolve(WithHeaders, check, Identity("""{"sub":"s","dag_id":"claim_dag"}"""));
        Assert.Equal("""{"dag_id":"claim_dag","map_index":-1,"run_id":"manual__2025-01-01T00:00:00+00:00","task_id":"route_task","task_source":{"dag_id":"claims","map_index":"headers","run_id":"headers","task_id":"context_extensions","try_number":"metadata"},"try_number":3}""", json);
    }

    [Fact]
    public void Sources_CanBeNarrowed_AndClaimsMayBeDotted()
    {
        var options = new AirflowTaskContextOptions { Sources = ["claims"], Claims = new AirflowTaskFieldNames { DagId = "airflow.dag" } };
        Assert.Equal("""{"dag_id":"nested","task_source":{"dag_id":"claims"}}""",
            Resolve(options, Requests.Http(headers: Headers, contextExtensions: Extensions), Identity("""{"airflow":{"dag":"nested"}}""")));
        var renamed = new AirflowTaskContextOptions { ContextExtensions = new AirflowTaskFieldNames { DagId = "dag", TaskId = "" } };
        Assert.Equal("""{"dag_id":"d1","task_source":{"dag_id":"context_extensions"}}""",
            Resolve(renamed, Requests.Http(contextExtensions: new Dictionary<string, string> { ["dag"] = "d1", ["task_id"] = "t1", ["airflow_dag_id"] = "ignored" }), null));
    }

    [Fact]
    public void InvalidValue_MakesFieldAbsent_NoFallThroughToALaterSource()
    {
        var check = WithMetadata(Requests.Http(headers: Headers), "airflow", new() { ["dag_id"] = Value.ForString("bad id!"), ["try_number"] = Value.ForString("-3") });
        var json = Resolve(WithHeaders, check, null);
        Assert.DoesNotContain("dag_id", json);
        Assert.DoesNotContain("try_number", json);
        Assert.Contains("hdr_task", json);
        var badRoute = Requests.Http(headers: Headers, contextExtensions: new Dictionary<string, string> { ["airflow_dag_id"] = "../etl" });
        Assert.DoesNotContain("dag_id", Resolve(WithHeaders, badRoute, null));
    }

    [Theory]
    [InlineData("x-airflow-map-index", "abc")]
    [InlineData("x-airflow-map-index", "-2")]
    [InlineData("x-airflow-try-number", "1.5")]
    [InlineData("x-airflow-dag-id", "a/b")]
    public void BadHeaderValues_AreIgnored(string header, string value)
    {
        var json = Resolve(WithHeaders, Requests.Http(headers: new Dictionary<string, string> { [header] = value }), null);
        Assert.Equal("{}", json);
    }
}
