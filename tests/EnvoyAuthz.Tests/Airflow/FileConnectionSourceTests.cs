using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class FileConnectionSourceTests : IDisposable
{
    private readonly string _dir = AirflowTestSupport.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // As `airflow connections export connections.json` writes it (extra a JSON string).
    private const string ExportJson = """
        {
          "http_default": {
            "conn_type": "http", "description": "Partner API", "login": "svc", "password": "PlantedPassw0rd",
            "host": "https://api.partner.example", "port": null, "schema": "v2",
            "extra": "{\"timeout\": 10, \"api_key\": \"PlantedApiKey\", \"headers\": {\"Authorization\": \"Bearer PlantedBearer\", \"Accept\": \"json\"}}"
          },
          "pg": { "conn_type": "postgres", "description": null, "login": "etl", "password": "PlantedPg", "host": "db", "port": 5432, "schema": "dwh", "extra": null },
          "uri_form": "mysql://u:PlantedUriPw@mysql.internal:3306/app"
        }
        """;

    // As `airflow connections export connections.yaml` writes it (extra may be a mapping).
    private const string ExportYaml = """
        http_default:
          conn_type: http
          description: Partner API
          login: svc
          password: PlantedPassw0rd
          host: https://api.partner.example
          port:
          schema: v2
          extra:
            timeout: 10
            verify: false
            client_secret: PlantedClientSecret
            name: "007"
        pg:
          conn_type: postgres
          host: db
          port: 5432
          extra: '{"sslmode": "require", "password": "PlantedPg"}'
        """;

    private static FileConnectionSource Source(string file, FakeTimeProvider? time, out Microsoft.Extensions.Logging.Testing.FakeLogCollector logs)
    {
        var (collector, logger) = AirflowTestSupport.Logger<FileConnectionSource>();
        logs = collector;
        return new FileConnectionSource(file, TimeSpan.FromSeconds(30), SensitiveKeys.Default, time ?? new FakeTimeProvider(), null, logger);
    }

    [Fact]
    public void Json_Export_LoadsEveryConnection_WithoutSecrets()
    {
        var file = Path.Combine(_dir, "connections.json");
        File.WriteAllText(file, ExportJson);
        using var source = Source(file, null, out var logs);
        source.LoadInitial();
        var snap = source.Current!;
        Assert.Equal(3, snap.Count);
        var http = snap.Find("http_default")!;
        Assert.Equal("https://api.partner.example", http.Host);
        Assert.Equal("""{"headers":{"Accept":"json"},"timeout":10}""", RegoJson.Serialize(http.Extra));
        Assert.Equal(5432, snap.Find("pg")!.Port);
        Assert.Equal("mysql.internal", snap.Find("uri_form")!.Host);
        var all = string.Join("\n", snap.All.Select(c => RegoJson.Serialize(c.InputValue))) + AirflowTestSupport.AllText(logs);
        Assert.DoesNotContain("Planted", all);
    }

    [Fact]
    public void Yaml_Export_LoadsWithTypedScalars_WithoutSecrets()
    {
        var file = Path.Combine(_dir, "connections.yaml");
        File.WriteAllText(file, ExportYaml);
        using var source = Source(file, null, out var logs);
        source.LoadInitial();
        var http = source.Current!.Find("http_default")!;
        Assert.Null(http.Port);
        Assert.Equal("""{"name":"007","timeout":10,"verify":false}""", RegoJson.Serialize(http.Extra));
        Assert.Equal("""{"sslmode":"require"}""", RegoJson.Serialize(source.Current.Find("pg")!.Extra));
        Assert.DoesNotContain("Planted", string.Join("\n", source.Current.All.Select(c => RegoJson.Serialize(c.InputValue))) + AirflowTestSupport.AllText(logs));
    }

    [Fact]
    public void MissingFile_AtStart_FailsFast()
    {
        using var source = Source(Path.Combine(_dir, "nope.json"), null, out _);
        var ex = Assert.Throws<InvalidOperationException>(source.LoadInitial);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void BrokenReload_KeepsLastGoodCopy_LogsWithoutContent()
    {
        var file = Path.Combine(_dir, "connections.json");
        File.WriteAllText(file, ExportJson);
        using var source = Source(file, null, out var logs);
        source.LoadInitial();
        File.WriteAllText(file, "{ \"x\": { \"password\": \"PlantedInBroken\" ");
        Assert.False(source.TryReload(out var problem));
        Assert.Equal("the JSON is malformed", problem);
        Assert.Equal(3, source.Current!.Count);
        var text = AirflowTestSupport.AllText(logs);
        Assert.Contains("keeping the last good copy of 3", text);
        Assert.DoesNotContain("Planted", text);

        File.WriteAllText(file, """{"only": {"conn_type": "http", "host": "h"}}""");
        Assert.True(source.TryReload(out _));
        Assert.Equal(1, source.Current!.Count);
    }

    [Fact]
    public void BrokenYaml_ReportsLineWithoutContent()
    {
        var file = Path.Combine(_dir, "c.yaml");
        File.WriteAllText(file, "a:\n  password: PlantedYaml\n   bad: [\n");
        using var source = Source(file, null, out var logs);
        Assert.Throws<InvalidOperationException>(source.LoadInitial);
        Assert.DoesNotContain("Planted", AirflowTestSupport.AllText(logs));
    }

    [Fact]
    public void BadEntry_IsSkipped_OthersLoad()
    {
        // Airflow loads a port that is not a number; this service cannot match it (an entry Airflow refuses, such as 42, refuses the file: ConnectionFileParserTests)
        var file = Path.Combine(_dir, "c.json");
        File.WriteAllText(file, """{"good": {"conn_type": "http", "host": "h"}, "bad": {"port": "x"}, "worse": "no-uri-here"}""");
        using var source = Source(file, null, out var logs);
        source.LoadInitial();
        Assert.Equal(1, source.Current!.Count);
        Assert.Equal(2, logs.GetSnapshot().Count(r => r.Id.Name == "ConnectionSkipped"));
    }

    [Fact]
    public async Task Polling_PicksUpChanges_OnVirtualTime()
    {
        var file = Path.Combine(_dir, "c.json");
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "a"}}""");
        var time = new FakeTimeProvider();
        using var source = Source(file, time, out _);
        source.LoadInitial();
        using var cts = new CancellationTokenSource();
        var run = source.RunAsync(cts.Token);
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "a"}, "b": {"conn_type": "http", "host": "b"}}""");
        // Advance virtual time past the poll interval (and the watcher's settle delay) until the reload lands.
        for (var i = 0; i < 200 && source.Current!.Count != 2; i++)
        {
            time.Advance(TimeSpan.FromSeconds(31));
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(2, source.Current!.Count);
        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task Watcher_PicksUpChanges_WithoutWaitingForThePoll()
    {
        var file = Path.Combine(_dir, "c.json");
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "a"}}""");
        var time = new FakeTimeProvider();
        var (_, logger) = AirflowTestSupport.Logger<FileConnectionSource>();
        using var source = new FileConnectionSource(file, TimeSpan.FromHours(1), SensitiveKeys.Default, time, null, logger);
        source.LoadInitial();
        using var cts = new CancellationTokenSource();
        var run = source.RunAsync(cts.Token);
        // A ConfigMap-style swap: write a new file and rename it over the old one.
        var next = Path.Combine(_dir, "c.json.tmp");
        File.WriteAllText(next, """{"b": {"conn_type": "http", "host": "b"}}""");
        File.Move(next, file, overwrite: true);
        // Only the watcher's 200 ms settle delay is advanced (1 s steps); the 1 h poll never comes due.
        for (var i = 0; i < 300 && source.Current!.Find("b") is null; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.NotNull(source.Current!.Find("b"));
        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public void UnchangedContent_IsNotReparsed()
    {
        var file = Path.Combine(_dir, "c.json");
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "a"}}""");
        using var source = Source(file, null, out var logs);
        source.LoadInitial();
        var first = source.Current;
        Assert.True(source.TryReload(out _));
        Assert.Same(first, source.Current);
        Assert.Single(logs.GetSnapshot(), r => r.Id.Name == "ConnectionsFileLoaded");
    }

    [Fact]
    public void EmptyDocument_IsNoConnections()
    {
        Assert.Equal(0, FileConnectionSource.Parse("", "json", SensitiveKeys.Default, DateTimeOffset.UnixEpoch, out _, out _)!.Count);
        Assert.Equal(0, FileConnectionSource.Parse("{}", "json", SensitiveKeys.Default, DateTimeOffset.UnixEpoch, out _, out _)!.Count);
        Assert.Null(FileConnectionSource.Parse("[1,2]", null, SensitiveKeys.Default, DateTimeOffset.UnixEpoch, out var p, out _));
        Assert.NotNull(p);
    }
}
