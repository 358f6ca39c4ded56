using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Resilience;

/// <summary>Rate limits per identity and per connection: local token buckets, and a limit shared by replicas in a real redis-server.</summary>
public sealed class RateLimitTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>
{
    private static string Reason(CheckResponse r) => JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    private List<KeyValuePair<string, string?>> Settings(string backend, string? redis = null, string key = "identity", int limit = 3)
    {
        var s = AuthzServiceHost.IssuerSettings(idp);
        s.Add(new("EnvoyAuthz:RateLimits:Enabled", "true"));
        s.Add(new("EnvoyAuthz:RateLimits:Backend", backend));
        s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Name", "per-caller"));
        s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Key", key));
        s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Limit", limit.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Window", "00:01:00"));
        if (redis is not null)
        {
            s.Add(new("EnvoyAuthz:RateLimits:Redis:Configuration", redis));
            s.Add(new("EnvoyAuthz:RateLimits:Redis:KeyPrefix", $"test-{Guid.NewGuid():N}:"));
            s.Add(new("EnvoyAuthz:RateLimits:Redis:Timeout", "00:00:00.5"));
        }
        return s;
    }

    private async Task<CheckRequest> RequestAsync(string client = "svc-client", string? connection = null)
    {
        var token = await idp.GetAccessTokenAsync(clientId: client, cancellationToken: TestContext.Current.CancellationToken);
        var ext = connection is null ? null : new Dictionary<string, string> { ["airflow_conn_id"] = connection };
        return Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }, contextExtensions: ext);
    }

    [Fact]
    public async Task Local_PerIdentity_429WithRetryAfterAndRateLimitHeaders()
    {
        await using var host = await AuthzServiceHost.StartAsync(Settings("local"));
        await host.WaitReadyAsync();
        var alice = await RequestAsync();
        for (var i = 0; i < 3; i++)
        {
            var ok = await host.CheckAsync(alice);
            Assert.Equal(0, ok.Status.Code);
            Assert.Contains(ok.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == "ratelimit-remaining" && h.Header.Value == (2 - i).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        var limited = await host.CheckAsync(alice);
        Assert.Equal(429, (int)limited.DeniedResponse.Status.Code);
        Assert.Equal(8, limited.Status.Code); // RESOURCE_EXHAUSTED
        Assert.Equal("rate_limited", Reason(limited));
        var headers = limited.DeniedResponse.Headers.ToDictionary(h => h.Header.Key, h => h.Header.Value);
        Assert.True(int.Parse(headers["retry-after"], System.Globalization.CultureInfo.InvariantCulture) is > 0 and <= 60);
        Assert.Equal("3", headers["ratelimit-limit"]);
        Assert.Equal("0", headers["ratelimit-remaining"]);
        Assert.Equal(1, await host.MetricAsync("envoy_authz_rate_limited_total{rule=\"per-caller\"}"));

        // Another caller has its own bucket.
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync("reader-client"))).Status.Code);
    }

    [Fact]
    public async Task Local_PerConnection_OnlyRequestsForThatConnectionCount()
    {
        await using var host = await AuthzServiceHost.StartAsync(Settings("local", key: "connection", limit: 2));
        await host.WaitReadyAsync();
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync(connection: "http_default"))).Status.Code);
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync("reader-client", connection: "http_default"))).Status.Code);
        Assert.Equal("rate_limited", Reason(await host.CheckAsync(await RequestAsync(connection: "http_default"))));
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync(connection: "postgres_main"))).Status.Code);
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync())).Status.Code); // no connection: not limited by this rule
    }

    [Fact]
    public async Task Redis_LimitIsSharedByReplicas()
    {
        await using var redis = await RedisServer.StartAsync();
        var settings = Settings("redis", redis.Endpoint);
        await using var a = await AuthzServiceHost.StartAsync(settings);
        await using var b = await AuthzServiceHost.StartAsync(settings);
        await a.WaitReadyAsync();
        await b.WaitReadyAsync();
        await WaitConnectedAsync(a, await RequestAsync("admin-client"));
        await WaitConnectedAsync(b, await RequestAsync("admin-client"));
        var fallbacks = await a.MetricAsync("envoy_authz_rate_limit_fallbacks_total");
        var request = await RequestAsync();

        Assert.Equal(0, (await a.CheckAsync(request)).Status.Code);
        Assert.Equal(0, (await b.CheckAsync(request)).Status.Code);
        Assert.Equal(0, (await a.CheckAsync(request)).Status.Code);
        var limited = await b.CheckAsync(request); // the fourth across both replicas
        Assert.Equal("rate_limited", Reason(limited));
        Assert.Equal(fallbacks, await a.MetricAsync("envoy_authz_rate_limit_fallbacks_total"));
    }

    [Fact]
    public async Task Redis_Unreachable_FallsBackToLocalLimits_StaysReady()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var host = await AuthzServiceHost.StartAsync(Settings("redis", redis.Endpoint));
        await host.WaitReadyAsync();
        await redis.StopAsync();

        var request = await RequestAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0, (await host.CheckAsync(request)).Status.Code);
        }
        Assert.Equal("rate_limited", Reason(await host.CheckAsync(request))); // the local limit still holds
        Assert.True(await host.MetricAsync("envoy_authz_rate_limit_fallbacks_total") >= 4);
        using var ready = await host.Http.GetAsync("/readyz", TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
    }

    private static async Task WaitConnectedAsync(AuthzServiceHost host, CheckRequest probe)
    {
        // The Redis connection opens in the background; until then the local limit decides.
        var until = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < until)
        {
            var before = await host.MetricAsync("envoy_authz_rate_limit_fallbacks_total") ?? 0;
            await host.CheckAsync(probe);
            if ((await host.MetricAsync("envoy_authz_rate_limit_fallbacks_total") ?? 0) == before)
            {
                return;
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("never connected to redis");
    }

    [Fact]
    public async Task PolicyNamedRule_AppliesOnlyWhereThePolicySaysSo_UnknownRuleFailsClosed()
    {
        var dir = Directory.CreateTempSubdirectory("envoy-authz-rl-policy-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "p.rego"), """
                package envoy.authz
                import rego.v1
                default allow := {"allowed": false}
                allow := {"allowed": true, "rate_limit": "agents"} if input.identity.client_id == "admin-client"
                allow := {"allowed": true, "rate_limit": "no-such-rule"} if input.identity.client_id == "reader-client"
                allow := {"allowed": true} if input.identity.client_id == "svc-client"
                """);
            var s = AuthzServiceHost.IssuerSettings(idp);
            s.Add(new("EnvoyAuthz:Policy:Path", dir));
            s.Add(new("EnvoyAuthz:RateLimits:Enabled", "true"));
            s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Name", "agents"));
            s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Limit", "2"));
            s.Add(new("EnvoyAuthz:RateLimits:Rules:0:Window", "00:01:00"));
            s.Add(new("EnvoyAuthz:RateLimits:Rules:0:PolicyOnly", "true"));
            await using var host = await AuthzServiceHost.StartAsync(s);
            await host.WaitReadyAsync();

            var agent = await RequestAsync("admin-client");
            Assert.Equal(0, (await host.CheckAsync(agent)).Status.Code);
            Assert.Equal(0, (await host.CheckAsync(agent)).Status.Code);
            Assert.Equal("rate_limited", Reason(await host.CheckAsync(agent)));
            var others = await RequestAsync("svc-client");
            for (var i = 0; i < 4; i++)
            {
                Assert.Equal(0, (await host.CheckAsync(others)).Status.Code); // the rule applies only where the policy names it
            }
            var broken = await host.CheckAsync(await RequestAsync("reader-client"));
            Assert.Equal("policy_error", Reason(broken));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
