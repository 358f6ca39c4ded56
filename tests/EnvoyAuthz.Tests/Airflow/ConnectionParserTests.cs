using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class ConnectionParserTests
{
    private static AirflowConnection Uri(string uri)
    {
        var c = ConnectionParser.ParseUri("c", uri, SensitiveKeys.Default, out var problem);
        Assert.True(c is not null, problem);
        return c!;
    }

    [Theory]
    // uri, conn_type, host, port, schema, login
    [InlineData("postgres://user:pw@db.example.com:5432/analytics", "postgres", "db.example.com", 5432, "analytics", "user")]
    [InlineData("postgresql://user:pw@db:5432/x", "postgres", "db", 5432, "x", "user")]
    [InlineData("google-cloud-platform://", "google_cloud_platform", null, null, null, null)]
    [InlineData("HTTP://Api.Example.COM", "http", "api.example.com", null, null, null)]
    [InlineData("http://https%3A%2F%2Fx", "http", "https://x", null, null, null)]
    [InlineData("http://https://api.example.com:8443/v1", "http", "https://api.example.com", 8443, "v1", null)]
    [InlineData("http://user%40corp:p%2Fw@host/my%20schema", "http", "host", null, "my schema", "user@corp")]
    [InlineData("mysql://[::1]:3306/db", "mysql", "::1", 3306, "db", null)]
    [InlineData("sqlite://%2Ftmp%2Fdb.sqlite", "sqlite", "/tmp/db.sqlite", null, null, null)]
    [InlineData("aws://", "aws", null, null, null, null)]
    [InlineData("ssh://login@host:22", "ssh", "host", 22, null, "login")]
    public void ParseUri_FollowsAirflowRules(string uri, string connType, string? host, int? port, string? schema, string? login)
    {
        var c = Uri(uri);
        Assert.Equal(connType, c.ConnType);
        Assert.Equal(host, c.Host);
        Assert.Equal(port, c.Port);
        Assert.Equal(schema, c.Schema);
        Assert.Equal(login, c.Login);
    }

    [Fact]
    public void ParseUri_FlatQueryParameters_BecomeStringExtras_LastWins_PlusIsSpace()
    {
        var c = Uri("http://h/?region=eu-west-1&timeout=30&a=1&a=2&note=hello+world&blank=");
        Assert.Equal("""{"a":"2","blank":"","note":"hello world","region":"eu-west-1","timeout":"30"}""", RegoJson.Serialize(c.Extra));
    }

    [Fact]
    public void ParseUri_ExtraKey_HoldsJson_AndOtherParametersAreIgnored()
    {
        var c = Uri("aws://?__extra__=%7B%22region_name%22%3A+%22eu%22%2C+%22nested%22%3A+%7B%22k%22%3A+1%7D%7D&ignored=1");
        Assert.Equal("""{"nested":{"k":1},"region_name":"eu"}""", RegoJson.Serialize(c.Extra));
    }

    [Fact]
    public void ParseUri_DropsPasswordAndSecretExtras()
    {
        var c = Uri("http://u:Sup3rS3cret@h:80/s?api_key=K3Y&X-Token=T0K&region=eu&client_secret=CS");
        var json = RegoJson.Serialize(c.InputValue);
        Assert.DoesNotContain("Sup3rS3cret", json);
        Assert.DoesNotContain("K3Y", json);
        Assert.DoesNotContain("T0K", json);
        Assert.DoesNotContain("CS\"", json);
        Assert.Equal("""{"region":"eu"}""", RegoJson.Serialize(c.Extra));
    }

    [Theory]
    [InlineData("no-scheme-here")]
    [InlineData("a://b://c://d")]
    [InlineData("http://host:notaport")]
    [InlineData("http://host:70000")]
    [InlineData("http://us@er://host")]
    [InlineData("1http://host")]
    public void ParseUri_Invalid_FailsWithoutQuotingTheInput(string uri)
    {
        Assert.Null(ConnectionParser.ParseUri("c", uri + "?password=PlantedSecret", SensitiveKeys.Default, out var problem));
        Assert.NotNull(problem);
        Assert.DoesNotContain("PlantedSecret", problem);
    }

    [Fact]
    public void ParseUri_ExtraNotJson_IsIgnoredWithAProblem()
    {
        var c = ConnectionParser.ParseUri("c", "http://h?__extra__=not-json", SensitiveKeys.Default, out var problem);
        Assert.NotNull(c);
        Assert.Equal(0, c!.Extra.Count);
        Assert.NotNull(problem);
    }

    [Fact]
    public void ParseJson_ExtraAsObjectOrString_PortAsNumberOrString()
    {
        var a = ConnectionParser.ParseJson("a", """{"conn_type":"http","host":"h","port":"8080","password":"pw","extra":{"verify":false,"token":"t"}}""", SensitiveKeys.Default, out _)!;
        Assert.Equal(8080, a.Port);
        Assert.Equal("""{"verify":false}""", RegoJson.Serialize(a.Extra));
        var b = ConnectionParser.ParseJson("b", """{"conn_type":"my-type","port":443,"extra":"{\"x\": 1, \"Private_Key\": \"k\"}"}""", SensitiveKeys.Default, out _)!;
        Assert.Equal(443, b.Port);
        Assert.Equal("my_type", b.ConnType);
        Assert.Equal("""{"x":1}""", RegoJson.Serialize(b.Extra));
        Assert.Null(ConnectionParser.ParseJson("c", """{"port":"eighty"}""", SensitiveKeys.Default, out _));
        Assert.Null(ConnectionParser.ParseJson("d", "[1]", SensitiveKeys.Default, out _));
    }

    /// <summary>Issue 9.10: an HTTP connection's secret headers and DSN-valued extras never reach <c>input.airflow.connection</c>, in either textual form.</summary>
    [Fact]
    public void HttpSecretsInExtras_HostAndDescription_NeverReachTheInput()
    {
        const string extra = """{"X-Api-Key": "PlantedApiKey", "privateKey": "PlantedPk", "Authorization": "Bearer PlantedBearer", "dsn": "PlantedDsn", "upstream": "postgres://u:PlantedDsnPassword@h/db", "odbc": "Server=s;PWD=PlantedPwd", "timeout": 5}""";
        var json = ConnectionParser.ParseJson("c", $$"""{"conn_type": "http", "host": "https://svc:PlantedHostPassword@api.example.com", "description": "reads postgres://u:PlantedDescPassword@h", "extra": {{RegoJson.Serialize(RegoValue.From(extra))}}}""",
            SensitiveKeys.Default, out var problem)!;
        Assert.Null(problem);
        var uri = Uri("http://svc@api.example.com/?__extra__=" + System.Uri.EscapeDataString(extra));
        var flat = Uri("http://api.example.com/?X-Api-Key=PlantedApiKey&upstream=" + System.Uri.EscapeDataString("postgres://u:PlantedDsnPassword@h/db") + "&timeout=5");
        foreach (var c in new[] { json, uri, flat })
        {
            var input = RegoJson.Serialize(c.InputValue);
            Assert.DoesNotContain("Planted", input);
            Assert.Contains("\"timeout\":", input);
        }
        Assert.Equal("https://api.example.com", json.Host);
        Assert.Null(json.Description);
    }

    [Theory]
    [InlineData("api.example.com", "api.example.com")]
    [InlineData("https://api.example.com", "https://api.example.com")]
    [InlineData("https://u:p@api.example.com", "https://api.example.com")]
    [InlineData("u:p@db.internal", "db.internal")]
    [InlineData(null, null)]
    public void WithoutUserInfo_DropsWhatAHostNeverHolds(string? host, string? expected) =>
        Assert.Equal(expected, ConnectionParser.WithoutUserInfo(host));

    [Fact]
    public void InputValue_HasEveryContractField()
    {
        var c = Uri("http://h");
        Assert.Equal(
            """{"conn_id":"c","conn_type":"http","description":null,"extra":{},"host":"h","login":null,"port":null,"schema":null}""",
            RegoJson.Serialize(c.InputValue));
    }
}
