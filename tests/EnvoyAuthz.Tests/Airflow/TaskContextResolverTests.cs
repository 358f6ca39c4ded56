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

    [Fact]
    public void Headers_Alone_AllFieldsTyped()
    {
        Assert.Equal("""{"dag_id":"hdr_dag","map_index":-1,"run_id":"manual__2025-01-01T00:00:00+00:00","task_id":"hdr_task","try_number":2}""",
            Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: Headers), null));
    }

    [Fact]
    public void Precedence_ClaimsThenMetadataThenHeaders_PerField()
    {
        var check = WithMetadata(Requests.Http(headers: Headers), "airflow", new()
        {
            ["dag_id"] = Value.ForString("meta_dag"), ["task_id"] = Value.ForString("meta_task"), ["try_number"] = Value.ForNumber(3),
        });
        var json = Resolve(new AirflowTaskContextOptions(), check, Identity("""{"sub":"s","dag_id":"claim_dag"}"""));
        Assert.Equal("""{"dag_id":"claim_dag","map_index":-1,"run_id":"manual__2025-01-01T00:00:00+00:00","task_id":"meta_task","try_number":3}""", json);
    }

    [Fact]
    public void Sources_CanExcludeHeaders_AndClaimsMayBeDotted()
    {
        var options = new AirflowTaskContextOptions { Sources = ["claims"], Claims = new AirflowTaskFieldNames { DagId = "airflow.dag" } };
        Assert.Equal("""{"dag_id":"nested"}""", Resolve(options, Requests.Http(headers: Headers), Identity("""{"airflow":{"dag":"nested"}}""")));
    }

    [Fact]
    public void InvalidValue_MakesFieldAbsent_NoFallThroughToHeaders()
    {
        var check = WithMetadata(Requests.Http(headers: Headers), "airflow", new() { ["dag_id"] = Value.ForString("bad id!"), ["try_number"] = Value.ForString("-3") });
        var json = Resolve(new AirflowTaskContextOptions(), check, null);
        Assert.DoesNotContain("dag_id", json);
        Assert.DoesNotContain("try_number", json);
        Assert.Contains("hdr_task", json);
    }

    [Theory]
    [InlineData("x-airflow-map-index", "abc")]
    [InlineData("x-airflow-map-index", "-2")]
    [InlineData("x-airflow-try-number", "1.5")]
    [InlineData("x-airflow-dag-id", "a/b")]
    public void BadHeaderValues_AreIgnored(string header, string value)
    {
        var json = Resolve(new AirflowTaskContextOptions(), Requests.Http(headers: new Dictionary<string, string> { [header] = value }), null);
        Assert.Equal("{}", json);
    }
}
