using EnvoyAuthz.Airflow;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>The connections file and the connections API share the reload discipline: fail fast first, then keep the last good copy, log each problem once, bound every body.</summary>
public sealed class ConnectionSourceReloadTests : IDisposable
{
    private readonly string _dir = AirflowTestSupport.TempDir();
    private readonly FakeTimeProvider _time = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (FileConnectionSource Source, FakeLogCollector Logs, string File) FileSource()
    {
        var file = Path.Combine(_dir, "connections.json");
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "a.example"}, "b": {"conn_type": "http", "host": "b.example"}}""");
        var (logs, logger) = AirflowTestSupport.Logger<FileConnectionSource>();
        return (new FileConnectionSource(file, TimeSpan.FromSeconds(30), SensitiveKeys.Default, _time, null, logger), logs, file);
    }

    [Fact]
    public void File_DeletedAfterStart_IsAFailedReload_TheLastGoodCopyServes()
    {
        var (source, logs, file) = FileSource();
        using var owned = source;
        source.LoadInitial();
        File.Delete(file);
        Assert.False(source.TryReload(out var problem));
        Assert.Equal("the file does not exist", problem);
        Assert.Equal(2, source.Current!.Count);
        Assert.True(source.IsTrusted(_time.GetUtcNow()));
        Assert.Contains("keeping the last good copy of 2", AirflowTestSupport.AllText(logs));
    }

    [Fact]
    public void File_TheSameProblemAgain_IsLoggedOnce_ThenRecovers()
    {
        var (source, logs, file) = FileSource();
        using var owned = source;
        source.LoadInitial();
        File.WriteAllText(file, "{ broken");
        Assert.False(source.TryReload(out _));
        File.WriteAllText(file, "{ broken too");
        Assert.False(source.TryReload(out _));
        Assert.Equal([LogLevel.Warning, LogLevel.Debug], logs.GetSnapshot().Where(r => r.Id.Name == "ConnectionsFileRejected").Select(r => r.Level));
        File.WriteAllText(file, """{"c": {"conn_type": "http", "host": "c.example"}}""");
        Assert.True(source.TryReload(out _));
        Assert.Equal(1, source.Current!.Count);
    }

    [Fact]
    public void File_BrokenAtStart_FailsWithOneMessageNamingTheFile_NothingLogged()
    {
        var (source, logs, file) = FileSource();
        using var owned = source;
        File.WriteAllText(file, "a:\n  password: PlantedYaml\n   bad: [\n");
        var ex = Assert.Throws<InvalidOperationException>(source.LoadInitial);
        Assert.Contains(file, ex.Message, StringComparison.Ordinal);
        Assert.Contains("the JSON is malformed", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Planted", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
    }

    private (ApiConnectionSource Source, FakeLogCollector Logs) ApiSource(string baseUrl, int? maxResponseBytes = null)
    {
        var options = new AirflowApiOptions { BaseUrl = baseUrl, Version = "v1", RequestTimeout = TimeSpan.FromSeconds(20) };
        if (maxResponseBytes is { } max)
        {
            options.MaxResponseBytes = max;
        }
        var (logs, logger) = AirflowTestSupport.Logger<ApiConnectionSource>();
        return (new ApiConnectionSource(options, new HttpClient(new SocketsHttpHandler { UseProxy = false }), SensitiveKeys.Default, _time, null, logger), logs);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Api_PageLargerThanTheLimit_FailsTheRefresh(bool chunked)
    {
        await using var airflow = new RawHttpServer { Chunked = chunked };
        airflow.Respond("{\"connections\": [], \"total_entries\": 0, \"padding\": \"" + new string('x', 20 << 20) + "\"}");
        var (source, logs) = ApiSource(airflow.Url);
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.Null(source.Current);
        Assert.Contains("the answer is larger than 16777216 bytes", AirflowTestSupport.AllText(logs));
    }

    [Fact]
    public async Task Api_SameFailureRepeated_WarnsOnce_EveryFailureCounted()
    {
        await using var airflow = new RawHttpServer();
        airflow.Respond("down", status: 503);
        var (source, logs) = ApiSource(airflow.Url);
        for (var i = 0; i < 5; i++)
        {
            Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        }
        var failures = logs.GetSnapshot().Where(r => r.Id.Name == "ApiConnectionsRefreshFailed").ToList();
        Assert.Equal(5, failures.Count);
        Assert.Equal(1, failures.Count(r => r.Level == LogLevel.Warning));
        Assert.Single(logs.GetSnapshot(), r => r.Id.Name == "ApiConnectionsStale");

        airflow.Respond("""{"connections": [{"connection_id": "x", "conn_type": "http", "host": "x.example"}], "total_entries": 1}""");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Single(logs.GetSnapshot(), r => r.Id.Name == "ApiConnectionsRecovered");
    }
}
