using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.IntegrationTests.Airflow;

/// <summary>The REST API connection source against the Airflow API stand-in, on virtual time where time matters.</summary>
public sealed class ApiConnectionSourceTests : IAsyncLifetime
{
    private AirflowApiServer _server = null!;
    private readonly FakeLogCollector _logs = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false });

    public async ValueTask InitializeAsync() => _server = await AirflowApiServer.StartAsync();

    public async ValueTask DisposeAsync()
    {
        // Nothing secret the stand-in served or accepted ever reaches a log line.
        Assert.DoesNotContain("Planted", AllLogs());
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private string AllLogs() => string.Join('\n', _logs.GetSnapshot().Select(r =>
        $"{r.Level} {r.Message} {string.Join(",", r.StructuredState?.Select(kv => kv.Key + "=" + kv.Value) ?? [])} {r.Exception}"));

    private ApiConnectionSource Source(string version, Action<AirflowApiOptions>? configure = null, TimeProvider? time = null, string? baseUrl = null)
    {
        var o = new AirflowApiOptions
        {
            BaseUrl = baseUrl ?? _server.Url, Version = version, Username = AirflowApiServer.Username, Password = AirflowApiServer.Password,
            PageSize = 3, RefreshInterval = TimeSpan.FromSeconds(60), RetryInterval = TimeSpan.FromSeconds(10), MaxAge = TimeSpan.FromMinutes(5),
            RequestTimeout = TimeSpan.FromSeconds(10),
        };
        configure?.Invoke(o);
        return new ApiConnectionSource(o, _http, SensitiveKeys.Default, time ?? _time, null, new FakeLogger<ApiConnectionSource>(_logs));
    }

    private static string AllInput(ApiConnectionSource s) => string.Join('\n', s.Current!.All.Select(c => RegoJson.Serialize(c.InputValue)));

    [Fact]
    public async Task V1_BasicAuth_AllPages_NoPasswordNorExtra()
    {
        _server.AddConnections(7);
        var source = Source("v1");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(7, source.Current!.Count);
        Assert.Equal(
            ["GET /api/v1/connections?limit=3&offset=0", "GET /api/v1/connections?limit=3&offset=3", "GET /api/v1/connections?limit=3&offset=6"],
            _server.Requests);
        var c = source.Current.Find("conn_4")!;
        Assert.Equal("svc4.example", c.Host);
        Assert.Equal(443, c.Port);
        Assert.Equal(0, c.Extra.Count); // v1 lists carry no extra
        Assert.DoesNotContain("Planted", AllInput(source));
        Assert.Equal(0, source.TokenRequests);
    }

    [Fact]
    public async Task V1_WrongPassword_Fails_Http401()
    {
        _server.AddConnections(1);
        var source = Source("v1", o => o.Password = "wrong");
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Null(source.Current);
        Assert.Contains("HTTP 401", AllLogs());
    }

    [Fact]
    public async Task V2_Token_AllPages_SecretsDropped_EvenWhenTheServerLeaksThem()
    {
        _server.AddConnections(5);
        _server.LeakPasswords = true;
        var source = Source("v2", o => o.PageSize = 2);
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(5, source.Current!.Count);
        Assert.Equal(["POST /auth/token", "GET /api/v2/connections?limit=2&offset=0", "GET /api/v2/connections?limit=2&offset=2", "GET /api/v2/connections?limit=2&offset=4"],
            _server.Requests);
        Assert.Equal("""{"nested":{"ok":true},"timeout":3}""", RegoJson.Serialize(source.Current.Find("conn_3")!.Extra));
        Assert.DoesNotContain("Planted", AllInput(source));
    }

    [Fact]
    public async Task V2_ExpiredToken_401_RenewedOnce_AndRefreshSucceeds()
    {
        _server.AddConnections(2);
        var source = Source("v2");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(1, _server.TokensIssued);
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(1, _server.TokensIssued); // still valid: reused
        _server.ExpireTokens();
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(2, _server.TokensIssued);
        Assert.Equal(2, source.Current!.Count);
    }

    [Fact]
    public async Task V2_Token_RenewedBeforeItsExp_OnVirtualTime()
    {
        _server.AddConnections(1);
        _server.TokenLifetime = TimeSpan.FromMinutes(2);
        var source = Source("v2");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(1, _server.TokensIssued);
        _time.Advance(TimeSpan.FromSeconds(40)); // within 30 s of exp
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(2, _server.TokensIssued);
    }

    [Fact]
    public async Task V2_WrongCredentials_TokenRequestFails()
    {
        _server.AddConnections(1);
        var source = Source("v2", o => o.Password = "nope");
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Contains("HTTP 401 from POST /auth/token", AllLogs());
    }

    [Fact]
    public async Task ServerError_KeepsLastGoodCopy_UntilMaxAge_ThenUntrusted_ThenRecovers()
    {
        _server.AddConnections(4);
        var source = Source("v2");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        var good = source.Current;

        _server.Fault = AirflowApiFault.ServerError;
        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Same(good, source.Current);
        Assert.True(source.IsTrusted(_time.GetUtcNow()));
        Assert.Contains("HTTP 503", AllLogs());

        _time.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.False(source.IsTrusted(_time.GetUtcNow()));
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Contains(_logs.GetSnapshot(), r => r.Id.Name == "ApiConnectionsStale" && r.Level == LogLevel.Warning);

        _server.Fault = AirflowApiFault.None;
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.True(source.IsTrusted(_time.GetUtcNow()));
        Assert.Contains(_logs.GetSnapshot(), r => r.Id.Name == "ApiConnectionsRecovered");
    }

    [Fact]
    public async Task FailureOnALaterPage_KeepsTheWholeLastGoodCopy()
    {
        _server.AddConnections(6);
        var source = Source("v1");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        _server.Connections.RemoveAt(0);
        _server.Fault = AirflowApiFault.FailAfterFirstPage;
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(6, source.Current!.Count);
    }

    [Fact]
    public async Task SlowAnswer_TimesOut()
    {
        _server.AddConnections(1);
        _server.Fault = AirflowApiFault.Slow;
        var source = Source("v1", o => o.RequestTimeout = TimeSpan.FromMilliseconds(300), TimeProvider.System);
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Contains("no answer within", AllLogs());
    }

    [Theory]
    [InlineData(AirflowApiFault.MalformedJson, "not valid JSON")]
    [InlineData(AirflowApiFault.WrongShape, "no 'connections' array")]
    public async Task BadBodies_Fail_WithoutQuotingThem(AirflowApiFault fault, string expected)
    {
        _server.AddConnections(1);
        _server.Fault = fault;
        var source = Source("v2");
        Assert.False(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Contains(expected, AllLogs());
    }

    [Fact]
    public async Task BasePath_IsKept()
    {
        await using var behind = await AirflowApiServer.StartAsync("/airflow");
        behind.AddConnections(2);
        var source = Source("v2", baseUrl: behind.Url + "/");
        Assert.True(await source.RefreshAsync(TestContext.Current.CancellationToken));
        Assert.Equal(["POST /airflow/auth/token", "GET /airflow/api/v2/connections?limit=3&offset=0"], behind.Requests);
    }

    [Fact]
    public async Task RunAsync_RefreshesOnTheInterval_OnVirtualTime()
    {
        _server.AddConnections(1);
        var source = Source("v1");
        using var cts = new CancellationTokenSource();
        var run = source.RunAsync(cts.Token);
        await WaitAsync(() => source.Current is not null);
        _server.AddConnections(2, "more", "more_");
        // The loop's next delay may start just after the first load: advance until the refresh lands.
        await WaitAsync(() => source.Current!.Count == 3, () => _time.Advance(TimeSpan.FromSeconds(60)));
        await cts.CancelAsync();
        await run;
    }

    private static async Task WaitAsync(Func<bool> condition, Action? step = null)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            step?.Invoke();
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.True(condition());
    }
}
