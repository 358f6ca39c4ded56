using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Identity;

/// <summary>
/// Key fetches against an issuer misbehaving at the TCP level (silent, dripping, huge, empty,
/// failing): every Check is answered within its own budget, every fetch is bounded in time and
/// size, one fetch runs at a time with backoff, and the cached keys are kept. Virtual time
/// throughout; the real-time waits are hang guards only.
/// </summary>
public sealed class KeyFetchTests : IAsyncDisposable
{
    private const string Issuer = "https://idp.test";
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(180); // the default CheckTimeout

    private readonly RawHttpServer _idp = new();
    private readonly TestKeys _keys = new(2);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    private readonly AuthzMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly FakeLogCollector _logs = new();

    public async ValueTask DisposeAsync() => await _idp.DisposeAsync();

    private (JwtIdentityStage Stage, IssuerKeySource Keys) Stage(bool discovery = false, Action<IdentityOptions>? configure = null)
    {
        var options = new AuthzOptions();
        options.Identity.CacheSize = 0; // every Check validates against the key cache
        options.Identity.Issuers.Add(new IssuerOptions
        {
            Name = "corp",
            Issuer = Issuer,
            JwksUrl = discovery ? null : _idp.Url + "/jwks",
            DiscoveryUrl = discovery ? _idp.Url + "/.well-known/openid-configuration" : null,
            Audiences = ["api://authz"],
            RequireHttpsMetadata = false,
        });
        configure?.Invoke(options.Identity);
        var services = new ServiceCollection().AddHttpClient().BuildServiceProvider();
        var loggers = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Debug));
        var registry = new IssuerRegistry(options, services.GetRequiredService<IHttpClientFactory>(), _time, _metrics, loggers, null);
        var cache = new ValidatedTokenCache(0, options.Identity.CacheMaxLifetime, _time, _metrics);
        return (new JwtIdentityStage(options, registry, cache, _time, _metrics, loggers.CreateLogger<JwtIdentityStage>()), registry.All.Single());
    }

    private static AuthzRequest Bearer(string token) =>
        Requests.Parsed(Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));

    private string Token(int key = 0) => _keys.Mint(Issuer, _time.GetUtcNow(), key);

    private Task<IdentityResult> Check(JwtIdentityStage stage, string token, CancellationToken budget) =>
        stage.AuthenticateAsync(Bearer(token), budget).AsTask();

    private async Task<IdentityResult> CheckNow(JwtIdentityStage stage, string token)
    {
        using var budget = new CancellationTokenSource(Budget, _time);
        return await Check(stage, token, budget.Token).WaitAsync(HangGuard, TestContext.Current.CancellationToken);
    }

    private double Fetches(string result) => _metrics.JwksRefreshes.WithLabels("corp", result).Value;

    private int Logged(string eventName) => _logs.GetSnapshot().Count(r => r.Id.Name == eventName);

    private static async Task Eventually(Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException("hang guard: " + what);
            }
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    private async Task LoadKeys(JwtIdentityStage stage, params int[] keys)
    {
        _idp.Respond(_keys.Jwks(0, keys));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token(keys.Length > 0 ? keys[0] : 0))).Status);
    }

    [Fact]
    public async Task KeysNeverLoaded_JwksSilent_CheckDeniedDependencyUnavailableWhenItsBudgetEnds_FetchEndsAtMetadataTimeout()
    {
        var (stage, keys) = Stage();
        _idp.Mode = RawHttpMode.Blackhole;
        using var budget = new CancellationTokenSource(Budget, _time);
        var check = Check(stage, Token(), budget.Token);
        await Eventually(() => _idp.Connections == 1, "the fetch reached the silent issuer");
        Assert.False(check.IsCompleted);

        _time.Advance(TimeSpan.FromMilliseconds(200)); // the Check's budget ends; Envoy would give up at 200 ms
        var result = await check.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Unavailable, result.Status);
        Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason);

        // The fetch itself goes on for the others, bounded by MetadataTimeout (5 s) in total.
        Assert.False(keys.FetchInFlight.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(5));
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Fetches("failure"));
        Assert.Equal(1, _idp.Connections);
    }

    [Fact]
    public async Task UnknownKid_JwksDrippingAByteAtATime_CheckDeniedWhenItsBudgetEnds_FetchBoundedInTotalNotPerRead()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Mode = RawHttpMode.Drip; // a byte every 200 ms: each read succeeds, the body never ends

        using var budget = new CancellationTokenSource(Budget, _time);
        var check = Check(stage, Token(key: 1), budget.Token); // a kid the cache lacks: refetch
        var sent = _idp.BytesSent;
        await Eventually(() => _idp.Connections == 2 && _idp.BytesSent >= sent + 2, "the issuer started dripping");
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token(key: 0))).Status); // cached keys keep serving meanwhile
        _time.Advance(TimeSpan.FromMilliseconds(200));
        var result = await check.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason);

        _time.Advance(TimeSpan.FromSeconds(5));
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Fetches("failure"));
        Assert.Equal(1, Logged("KeysFetchFailed"));
    }

    [Fact]
    public async Task ManyChecksWaitingForKeys_ShareOneFetch_EachAnsweredWithinItsBudget()
    {
        var (stage, keys) = Stage();
        _idp.Mode = RawHttpMode.Blackhole;
        using var budget = new CancellationTokenSource(Budget, _time);
        var checks = Enumerable.Range(0, 20).Select(_ => Check(stage, Token(), budget.Token)).ToList();
        await Eventually(() => _idp.Connections == 1, "one fetch reached the issuer");
        _time.Advance(TimeSpan.FromMilliseconds(200));
        foreach (var result in await Task.WhenAll(checks).WaitAsync(HangGuard, TestContext.Current.CancellationToken))
        {
            Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason);
        }
        Assert.Equal(1, _idp.Connections);
        _time.Advance(TimeSpan.FromSeconds(5));
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
    }

    public static TheoryData<bool, bool> LimitCases() => new() { { false, false }, { false, true }, { true, false }, { true, true } };

    [Theory]
    [MemberData(nameof(LimitCases))]
    public async Task MetadataLargerThanItsLimit_FailsTheFetch_CachedKeysKeepServing(bool discovery, bool chunked)
    {
        var (stage, keys) = Stage(discovery);
        var good = _keys.Jwks(0, 0);
        var huge = _keys.Jwks(2 << 20, 0); // valid JSON with the right key, 2 MiB: over the 1 MiB default
        _idp.Chunked = chunked;
        _idp.Respond(discovery ? DiscoveryWith(good) : good);
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);

        _idp.Respond(discovery ? DiscoveryWith(huge) : huge);
        _time.Advance(TimeSpan.FromHours(13)); // past the automatic refresh
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Fetches("failure"));
        Assert.Contains(_logs.GetSnapshot(), r => r.Id.Name == "KeysFetchFailed" && r.Message.Contains("larger than 1048576 bytes", StringComparison.Ordinal));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);

        // The stand-in answers every path alike: one document that is both discovery (its jwks_uri points back here) and JWKS.
        string DiscoveryWith(string jwks) =>
            jwks.TrimEnd('}') + $$""", "issuer": "{{Issuer}}", "jwks_uri": "{{_idp.Url}}/jwks"}""";
    }

    [Fact]
    public async Task JwksWithoutEnd_ReadStopsAtTheLimit()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Mode = RawHttpMode.Endless;
        _time.Advance(TimeSpan.FromHours(13));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Fetches("failure"));
        // Stopped at 1 MiB; what the server got out before the socket closed is socket buffers at most.
        Assert.True(_idp.BytesSent < 64L << 20, $"the issuer sent {_idp.BytesSent} bytes");
    }

    [Fact]
    public async Task EmptyJwks_WithJwksUrl_KeepsTheCachedKeys()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Respond("""{"keys":[]}""");

        _time.Advance(TimeSpan.FromHours(13)); // background refresh gets the empty set
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Fetches("failure"));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);

        // An unknown kid refetches (after the backoff) and gets the empty set again: still the old keys.
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(ReasonCode.DependencyUnavailable, (await CheckNow(stage, Token(key: 1))).Reason);
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);
    }

    [Fact]
    public async Task IdpFailing_AfterTheRefreshInterval_OneFetchAtATime_WithBackoff_OneWarning_CounterCountsFetches()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Respond("unavailable", status: 503);
        _time.Advance(TimeSpan.FromHours(13));

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token())).Status);
            await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        }
        Assert.Equal(2, _idp.Connections); // the first load, then one refresh
        Assert.Equal(1, Fetches("failure"));

        // Backoff: 1 s, then 2 s, 4 s … up to JwksRefetchInterval (30 s).
        int[] waits = [1, 2, 4, 8, 16, 30, 30];
        foreach (var seconds in waits)
        {
            _time.Advance(TimeSpan.FromSeconds(seconds) - TimeSpan.FromMilliseconds(1));
            await CheckNow(stage, Token());
            await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
            var before = _idp.Connections;
            _time.Advance(TimeSpan.FromMilliseconds(1));
            await CheckNow(stage, Token());
            await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
            Assert.Equal(before + 1, _idp.Connections);
        }
        Assert.Equal(1 + waits.Length, Fetches("failure"));
        Assert.Equal(_idp.Connections - 1, (int)Fetches("failure"));
        Assert.Equal(1, Logged("KeysFetchFailed")); // one warning for the change ok → failing
        Assert.Equal(waits.Length, Logged("KeysStillFailing")); // Debug

        _idp.Respond(_keys.Jwks(0, 0));
        _time.Advance(TimeSpan.FromSeconds(30));
        await CheckNow(stage, Token());
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(1, Logged("KeysRecovered")); // and one line for failing → ok
        Assert.Equal(0, keys.ConsecutiveFailures);
        Assert.Equal(0, _logs.GetSnapshot().Count(r => r.Level >= LogLevel.Warning && r.Id.Name != "KeysFetchFailed"));
    }

    [Fact]
    public async Task KeysPastTheirMaxAge_IdpSilent_DeniedDependencyUnavailableWithinTheBudget()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Mode = RawHttpMode.Blackhole;
        _time.Advance(TimeSpan.FromHours(25)); // beyond JwksMaxAge (24 h)

        using var budget = new CancellationTokenSource(Budget, _time);
        var check = Check(stage, Token(), budget.Token);
        await Eventually(() => _idp.Connections == 2, "the refresh reached the silent issuer");
        _time.Advance(TimeSpan.FromMilliseconds(200));
        var result = await check.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Unavailable, result.Status);
        Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason); // not a budget overrun answered "overloaded"
        _time.Advance(TimeSpan.FromSeconds(5));
        await keys.FetchInFlight.WaitAsync(HangGuard, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task UnknownKid_AfterAFailedRefetch_IsRefetchedOnceTheIdpIsBack()
    {
        var (stage, keys) = Stage();
        await LoadKeys(stage, 0);
        _idp.Respond("unavailable", status: 503);
        Assert.Equal(ReasonCode.DependencyUnavailable, (await CheckNow(stage, Token(key: 1))).Reason);

        _idp.Respond(_keys.Jwks(0)); // back, with the rotated key
        Assert.Equal(ReasonCode.DependencyUnavailable, (await CheckNow(stage, Token(key: 1))).Reason); // within the 1 s backoff: no fetch
        Assert.Equal(2, _idp.Connections);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token(key: 1))).Status); // not JwksRefetchInterval (30 s) later
        Assert.Equal(3, _idp.Connections);
    }

    [Fact]
    public async Task UnknownKid_AfterASuccessfulRefetch_IsInvalidTokenUntilTheRefetchInterval()
    {
        // Documented: a kid the issuer did not publish at the last refetch is denied 401 for up to
        // JwksRefetchInterval, so unauthenticated callers cannot make every Check a fetch.
        var (stage, _) = Stage();
        await LoadKeys(stage, 0);
        Assert.Equal(ReasonCode.InvalidToken, (await CheckNow(stage, Token(key: 1))).Reason); // refetched: not published
        _idp.Respond(_keys.Jwks(0));
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(ReasonCode.InvalidToken, (await CheckNow(stage, Token(key: 1))).Reason);
        Assert.Equal(2, _idp.Connections);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(IdentityStatus.Valid, (await CheckNow(stage, Token(key: 1))).Status);
        Assert.Equal(3, _idp.Connections);
    }
}
