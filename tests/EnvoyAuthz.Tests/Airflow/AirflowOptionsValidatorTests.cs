using EnvoyAuthz.Airflow;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class AirflowOptionsValidatorTests
{
    private static List<string> Errors(AirflowOptions o)
    {
        var e = new List<string>();
        AirflowOptionsValidator.Collect(o, "EnvoyAuthz:Airflow", e);
        return e;
    }

    [Fact]
    public void Defaults_AreValid() => Assert.Empty(Errors(new AirflowOptions { Enabled = true }));

    [Fact]
    public void EveryProblem_ReportedAtOnce_NamingTheKey()
    {
        var o = new AirflowOptions
        {
            Connections =
            {
                File = " ",
                Api = new AirflowApiOptions
                {
                    BaseUrl = "ftp://user:pw@x", Version = "v3", Password = "p", PasswordFile = "/f",
                    RefreshInterval = TimeSpan.FromMinutes(5), MaxAge = TimeSpan.FromMinutes(1), RetryInterval = TimeSpan.FromMinutes(10), PageSize = 0,
                },
            },
            Match = { Header = "X Bad" },
            TaskContext = { Sources = ["claims", "cookies", "claims"] },
            Ingress = { PathPrefix = "airflow/" },
            JsonRpc = { Paths = ["mcp?x"], MaxBatchSize = 0 },
            SensitiveKeys = [""],
        };
        var e = Errors(o);
        foreach (var key in new[] { "Connections:File", "Api:BaseUrl", "Api:Version", "PasswordFile", "Api:MaxAge", "Api:RetryInterval", "Api:PageSize",
            "Match:Header", "Sources:1", "names a source twice", "Ingress:PathPrefix", "JsonRpc:Paths:0", "JsonRpc:MaxBatchSize", "SensitiveKeys:0" })
        {
            Assert.Contains(e, m => m.Contains(key, StringComparison.Ordinal));
        }
        Assert.All(e, m => Assert.StartsWith("EnvoyAuthz:Airflow", m, StringComparison.Ordinal));
        Assert.DoesNotContain(e, m => m.Contains("pw@", StringComparison.Ordinal) && !m.Contains("without credentials", StringComparison.Ordinal));
    }

    [Fact]
    public void TaskContextSources_AcceptEveryKnownSource_SensitiveKeysNeedALetterOrDigit()
    {
        Assert.Empty(Errors(new AirflowOptions { TaskContext = { Sources = ["context_extensions", "claims", "metadata", "headers"] }, SensitiveKeys = ["X-Session"] }));
        var e = Errors(new AirflowOptions { SensitiveKeys = ["--", "ok"] });
        Assert.Single(e);
        Assert.Contains("SensitiveKeys:0", e[0], StringComparison.Ordinal);
    }

    [Fact]
    public void V2_RequiresUsername()
    {
        Assert.Contains(Errors(new AirflowOptions { Connections = { Api = { BaseUrl = "http://airflow:8080" } } }), m => m.Contains("Username", StringComparison.Ordinal));
        Assert.Empty(Errors(new AirflowOptions { Connections = { Api = { BaseUrl = "http://airflow:8080", Version = "v1" } } }));
    }
}
