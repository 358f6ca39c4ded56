using System.Diagnostics;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>
/// The real service, its issuer a real loopback TCP server that accepts and never answers, or
/// drips a byte at a time: a Check that needs the keys is answered with a deny within its own
/// budget. The elapsed time is written to the test output for the record, never asserted; the
/// gRPC deadline of 30 s is only a hang guard (before the fix the answer took about 100 s).
/// </summary>
public sealed class KeyFetchBudgetTests
{
    private const string Issuer = "https://idp.budget.test";

    private static CheckRequest WithToken(string token) =>
        Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });

    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    private static List<KeyValuePair<string, string?>> Settings(RawHttpServer idp, string checkTimeout) =>
    [
        new("EnvoyAuthz:Identity:Issuers:0:Name", "budget"),
        new("EnvoyAuthz:Identity:Issuers:0:Issuer", Issuer),
        new("EnvoyAuthz:Identity:Issuers:0:JwksUrl", idp.Url + "/jwks"),
        new("EnvoyAuthz:Identity:Issuers:0:Audiences:0", "api://authz"),
        new("EnvoyAuthz:Identity:Issuers:0:RequireHttpsMetadata", "false"),
        new("EnvoyAuthz:Identity:CacheSize", "0"),
        new("EnvoyAuthz:Server:CheckTimeout", checkTimeout),
    ];

    [Theory]
    [InlineData("silent", false)]
    [InlineData("dripping", false)]
    [InlineData("silent", true)] // keys cached, a forged token names an unknown kid: the refetch is on this Check's behalf
    [InlineData("dripping", true)]
    public async Task Check_IssuerSilentOrDripping_IsDeniedDependencyUnavailable_WithinItsBudget(string behaviour, bool keysLoaded)
    {
        await using var idp = new RawHttpServer { DripInterval = TimeSpan.FromSeconds(1) };
        var keys = new TestKeys(2);
        idp.Respond(keys.Jwks(0, 0));
        if (!keysLoaded)
        {
            idp.Mode = behaviour == "silent" ? RawHttpMode.Blackhole : RawHttpMode.Drip;
        }
        // A 500 ms budget on a shared CI machine (the default is 180 ms, under Envoy's 200 ms).
        await using var host = await AuthzServiceHost.StartAsync(Settings(idp, "00:00:00.5"));
        if (keysLoaded)
        {
            await host.WaitReadyAsync();
            idp.Mode = behaviour == "silent" ? RawHttpMode.Blackhole : RawHttpMode.Drip;
        }
        Assert.Equal(401, (int)(await host.CheckAsync(Requests.Http())).DeniedResponse.Status.Code); // warm-up: no token

        var watch = Stopwatch.StartNew();
        var denied = await host.CheckAsync(WithToken(keys.Mint(Issuer, DateTimeOffset.UtcNow, key: 1)));
        watch.Stop();

        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("dependency_unavailable", Reason(denied));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"issuer {behaviour}, keys {(keysLoaded ? "cached (unknown kid)" : "never loaded")}: denied dependency_unavailable after {watch.Elapsed.TotalMilliseconds:F0} ms (budget 500 ms)");
        Assert.True(idp.Connections >= (keysLoaded ? 2 : 1));
    }

    [Fact]
    public async Task KeysPastTheirMaxAge_IssuerSilent_DeniedDependencyUnavailable_NotOverloaded()
    {
        await using var idp = new RawHttpServer();
        var keys = new TestKeys();
        idp.Respond(keys.Jwks());
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow); // key age and the Check's budget on virtual time
        await using var host = await AuthzServiceHost.StartAsync(Settings(idp, "00:00:00.5"), s => s.AddSingleton<TimeProvider>(time));
        await host.WaitReadyAsync();
        Assert.Equal(0, (await host.CheckAsync(WithToken(keys.Mint(Issuer, time.GetUtcNow())))).Status.Code);

        idp.Mode = RawHttpMode.Blackhole;
        time.Advance(TimeSpan.FromHours(25)); // beyond JwksMaxAge (24 h)
        var started = time.GetUtcNow();
        var pending = host.CheckAsync(WithToken(keys.Mint(Issuer, time.GetUtcNow())));
        // The budget runs on the virtual clock: move it on until the Check is answered (a hang guard of 60 virtual seconds).
        for (var i = 0; i < 600 && !pending.IsCompleted; i++)
        {
            await Task.WhenAny(pending, Task.Delay(10, TestContext.Current.CancellationToken));
            time.Advance(TimeSpan.FromMilliseconds(100));
        }
        var denied = await pending;
        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("dependency_unavailable", Reason(denied)); // was "overloaded": the budget ran out inside the fetch
        TestContext.Current.TestOutputHelper?.WriteLine($"keys past max age, issuer silent: denied after {(time.GetUtcNow() - started).TotalMilliseconds:F0} virtual ms (budget 500 ms)");
    }
}
