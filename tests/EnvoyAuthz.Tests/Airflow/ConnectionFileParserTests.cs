using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>Connection files read as Airflow's local-filesystem secrets backend reads them.</summary>
public sealed class ConnectionFileParserTests : IDisposable
{
    private readonly string _dir = AirflowTestSupport.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ConnectionSnapshot Parse(string text, string? format, out List<(string ConnId, string Problem)> skipped)
    {
        var snap = ConnectionFileParser.Parse(text, format, SensitiveKeys.Default, DateTimeOffset.UnixEpoch, out var problem, out skipped);
        Assert.True(snap is not null, problem);
        return snap!;
    }

    private static string Refused(string text, string? format)
    {
        var snap = ConnectionFileParser.Parse(text, format, SensitiveKeys.Default, DateTimeOffset.UnixEpoch, out var problem, out _);
        Assert.Null(snap);
        Assert.NotNull(problem);
        Assert.DoesNotContain("Planted", problem);
        return problem!;
    }

    private static string Json(AirflowConnection c) => RegoJson.Serialize(c.InputValue);

    // As `airflow connections export connections.env --format env` writes it (URIs; with
    // --serialization-format json the values are the JSON form of AIRFLOW_CONN_* variables).
    private const string EnvExport = """
        # exported by airflow connections export
        http_default=http://https://svc:PlantedPw@api.partner.example:8443/v2?timeout=10&api_key=PlantedKey
        warehouse=postgresql://etl:Planted%2FPg@db.internal:5432/dwh?sslmode=require
          # an indented comment
        json_form={"conn_type": "Google-Cloud", "host": "gcp.example", "password": "PlantedJson", "extra": {"project": "p1", "token": "PlantedTok"}}
        """;

    [Fact]
    public void EnvExport_LoadsEveryConnection_WithoutSecrets()
    {
        var file = Path.Combine(_dir, "connections.env");
        File.WriteAllText(file, EnvExport);
        var (_, logger) = AirflowTestSupport.Logger<FileConnectionSource>();
        using var source = new FileConnectionSource(file, TimeSpan.FromSeconds(30), SensitiveKeys.Default, new FakeTimeProvider(), null, logger);
        source.LoadInitial();
        var snap = source.Current!;
        Assert.Equal(3, snap.Count);
        Assert.Equal("""{"conn_id":"http_default","conn_type":"http","description":null,"extra":{"timeout":"10"},"host":"https://api.partner.example","login":"svc","port":8443,"schema":"v2"}""",
            Json(snap.Find("http_default")!));
        Assert.Equal("""{"conn_id":"warehouse","conn_type":"postgres","description":null,"extra":{"sslmode":"require"},"host":"db.internal","login":"etl","port":5432,"schema":"dwh"}""",
            Json(snap.Find("warehouse")!));
        // the JSON form: conn_type normalised as Connection.from_json does (no lowercasing)
        Assert.Equal("""{"conn_id":"json_form","conn_type":"Google_Cloud","description":null,"extra":{"project":"p1"},"host":"gcp.example","login":null,"port":null,"schema":null}""",
            Json(snap.Find("json_form")!));
        Assert.DoesNotContain("Planted", string.Join("\n", snap.All.Select(Json)));
    }

    [Fact]
    public void EnvContent_WithoutAKnownExtension_IsRecognised()
    {
        var snap = Parse(EnvExport, null, out _);
        Assert.Equal(3, snap.Count);
        Assert.Equal("env", FileConnectionSource.FormatOf("/etc/airflow/connections.ENV"));
    }

    [Theory]
    [InlineData("a=http://h\nno equals sign here\n", "line 2 has no '='")]
    [InlineData("=http://h\n", "line 1 has an empty key")]
    [InlineData("a=\n", "line 1 has an empty value")]
    [InlineData("a=http://h\nb=http://PlantedX@g\na=http://PlantedY@i\n", "connection 'a' is given more than once")]
    [InlineData("   \n", "line 1 has no '='")]
    public void EnvSyntaxErrors_RefuseTheFile(string text, string expected) =>
        Assert.Equal(expected, Refused(text, "env"));

    [Fact]
    public void EntryWithUri_IsParsedAsTheUri_DescriptionKept()
    {
        var snap = Parse("""{"db": {"uri": "postgresql://etl:PlantedPw@db.internal:5432/dwh", "description": "warehouse"}}""", "json", out _);
        Assert.Equal("""{"conn_id":"db","conn_type":"postgres","description":"warehouse","extra":{},"host":"db.internal","login":"etl","port":5432,"schema":"dwh"}""",
            Json(snap.Find("db")!));
    }

    [Fact]
    public void EntryWithExtraDejson_IsTheExtra_SecretsDropped()
    {
        var snap = Parse("""
            api:
              conn_type: http
              host: api.example
              conn_id: api
              extra_dejson:
                timeout: 5
                token: PlantedToken
            """, "yaml", out _);
        Assert.Equal("""{"timeout":5}""", RegoJson.Serialize(snap.Find("api")!.Extra));
    }

    [Theory]
    [InlineData("""{"ok": {"conn_type": "http", "host": "h"}, "typo": {"conn_type": "http", "hots": "PlantedHost"}}""", "connection 'typo': 1 key(s) that Airflow's Connection does not take")]
    [InlineData("""{"a": {"conn_type": "http", "extra": "{}", "extra_dejson": {"k": "PlantedV"}}}""", "connection 'a': extra and extra_dejson are mutually exclusive")]
    [InlineData("""{"a": {"conn_id": "b", "host": "h"}}""", "connection 'a': conn_id differs from the entry's key")]
    [InlineData("""{"a": {"conn_id": null, "host": "h"}}""", "connection 'a': conn_id differs from the entry's key")]
    [InlineData("""{"a": {"uri": "http://h", "host": "PlantedOther"}}""", "connection 'a': a uri cannot be combined")]
    [InlineData("""{"a": {"uri": "http://h", "extra_dejson": {}}}""", "connection 'a': a uri cannot be combined")]
    [InlineData("""{"a": {"host": "h", "extra": "[\"PlantedList\"]"}}""", "connection 'a': extra is not a JSON object")]
    [InlineData("""{"a": {"host": "h", "extra": "PlantedNotJson"}}""", "connection 'a': extra is not a JSON object")]
    [InlineData("""{"a": {"host": "h", "extra": ["PlantedList"]}}""", "connection 'a': extra is not a JSON object")]
    [InlineData("""{"a": {"host": "h", "extra_dejson": "PlantedText"}}""", "connection 'a': extra_dejson is not a JSON object")]
    [InlineData("""{"a": 42}""", "connection 'a': the entry is neither a URI nor a mapping of fields")]
    [InlineData("""{"a": null}""", "connection 'a': the entry is neither a URI nor a mapping of fields")]
    [InlineData("""{"a": "http://x://y://PlantedZ"}""", "connection 'a': more than two '://' in the URI")]
    [InlineData("""{"a": "http://u:PlantedPw@h:99999"}""", "connection 'a': the port is not a number between 0 and 65535")]
    [InlineData("""{"a": "http://us@er://PlantedH"}""", "connection 'a': the host's protocol in a double-scheme URI is not valid")]
    [InlineData("""{"a": "aws://?__extra__=PlantedNotJson"}""", "connection 'a': the __extra__ parameter is not a JSON object")]
    public void EntriesAirflowRefuses_RefuseTheWholeFile(string json, string expected) =>
        Assert.StartsWith(expected, Refused(json, "json"), StringComparison.Ordinal);

    [Fact]
    public void UnknownKey_InYaml_RefusesTheFile()
    {
        var problem = Refused("a:\n  conn_type: http\n  hostname: PlantedHost\n", "yaml");
        Assert.StartsWith("connection 'a': 1 key(s)", problem, StringComparison.Ordinal);
    }

    [Theory]
    // Airflow loads these (port stays text, a text without '://' gives no host); this service cannot match them: skipped, reported
    [InlineData("""{"ok": {"host": "h"}, "bad_port": {"host": "h2", "port": "x"}}""", "bad_port")]
    [InlineData("""{"ok": {"host": "h"}, "no_uri": "just-text"}""", "no_uri")]
    public void EntriesAirflowLoadsButThisServiceCannotMatch_AreSkipped(string json, string skippedId)
    {
        var snap = Parse(json, "json", out var skipped);
        Assert.Equal(1, snap.Count);
        Assert.NotNull(snap.Find("ok"));
        Assert.Equal(skippedId, Assert.Single(skipped).ConnId);
    }

    [Theory]
    // fields are taken as written (Connection(**fields) keeps conn_type); a URI's scheme is lowercased by urlsplit, then normalised
    [InlineData("""{"c": {"conn_type": "postgresql"}}""", "postgresql")]
    [InlineData("""{"c": {"conn_type": "Google-Cloud-Platform"}}""", "Google-Cloud-Platform")]
    [InlineData("""{"c": "PostgreSQL://h"}""", "postgres")]
    [InlineData("""{"c": "Google-Cloud-Platform://"}""", "google_cloud_platform")]
    [InlineData("""{"c": {"uri": "MY-TYPE://h"}}""", "my_type")]
    public void ConnType_AsAirflowNormalisesIt(string json, string connType) =>
        Assert.Equal(connType, Parse(json, "json", out _).Find("c")!.ConnType);

    [Fact]
    public void ExportJson_AllExportedKeys_AreAccepted()
    {
        var snap = Parse("""
            {"c": {"conn_type": "http", "description": "d", "login": "l", "password": "PlantedPw", "host": "h", "port": 8080, "schema": "s", "extra": "{\"a\": 1}"}}
            """, null, out var skipped);
        Assert.Empty(skipped);
        Assert.Equal("""{"conn_id":"c","conn_type":"http","description":"d","extra":{"a":1},"host":"h","login":"l","port":8080,"schema":"s"}""", Json(snap.Find("c")!));
    }
}
