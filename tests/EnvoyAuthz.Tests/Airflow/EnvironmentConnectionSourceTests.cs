using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class EnvironmentConnectionSourceTests
{
    [Fact]
    public void BothForms_LoadedById_CaseInsensitive_SecretsDropped_BadOnesSkippedWithoutValue()
    {
        var vars = new Dictionary<string, string>
        {
            ["AIRFLOW_CONN_MY_PROD_DB"] = "postgres://etl:PlantedEnvPw@db.prod:5432/dwh?sslmode=require&password=PlantedQueryPw",
            ["AIRFLOW_CONN_PARTNER"] = """{"conn_type": "http", "host": "https://partner.example", "password": "PlantedJsonPw", "extra": {"token": "PlantedTok", "timeout": 5}}""",
            ["AIRFLOW_CONN_BROKEN"] = "a://b://c://PlantedBrokenPw@x",
            ["AIRFLOW_CONN_"] = "http://ignored",
            ["PATH"] = "/usr/bin",
        };
        var (logs, logger) = AirflowTestSupport.Logger<EnvironmentConnectionSource>();
        var source = new EnvironmentConnectionSource(vars, SensitiveKeys.Default, new FakeTimeProvider(), null, logger);
        var snap = source.Current!;
        Assert.Equal(2, snap.Count);
        var db = snap.Find("my_prod_db")!;
        Assert.Same(db, snap.Find("MY_PROD_DB"));
        Assert.Equal("postgres", db.ConnType);
        Assert.Equal("""{"sslmode":"require"}""", RegoJson.Serialize(db.Extra));
        Assert.Equal("""{"timeout":5}""", RegoJson.Serialize(snap.Find("partner")!.Extra));
        var text = AirflowTestSupport.AllText(logs) + string.Join("", snap.All.Select(c => RegoJson.Serialize(c.InputValue)));
        Assert.Contains("AIRFLOW_CONN_BROKEN", text);
        Assert.DoesNotContain("Planted", text);
        Assert.True(source.IsTrusted(DateTimeOffset.MaxValue));
    }
}
