using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace EnvoyAuthz.IntegrationTests.Check;

/// <summary>An OPA bundle served over HTTP (ETag, 304), polled by the embedded engine; downloads under the policy-bundle breaker.</summary>
public sealed class RemoteBundleTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>
{
    /// <summary>A bundle server on loopback: serves the current bundle with an ETag, answers 304 to a matching If-None-Match, or fails.</summary>
    private sealed class BundleServer : IAsyncDisposable
    {
        private WebApplication _app = null!;
        public volatile byte[] Bundle = [];
        public volatile bool Failing;
        public int Downloads;
        public int NotModified;
        public int Failures;
        public string Url { get; private set; } = "";

        public static async Task<BundleServer> StartAsync()
        {
            var s = new BundleServer();
            string baseUrl;
            (s._app, baseUrl) = await LoopbackServer.StartAsync(app => app.MapGet("/bundles/authz.tar.gz", (HttpContext ctx) =>
            {
                if (s.Failing)
                {
                    Interlocked.Increment(ref s.Failures);
                    return Results.StatusCode(503);
                }
                var bytes = s.Bundle;
                var etag = "\"" + Convert.ToHexString(SHA256.HashData(bytes))[..16] + "\"";
                if (ctx.Request.Headers.IfNoneMatch.ToString() == etag)
                {
                    Interlocked.Increment(ref s.NotModified);
                    return Results.StatusCode(304);
                }
                Interlocked.Increment(ref s.Downloads);
                ctx.Response.Headers.ETag = etag;
                return Results.Bytes(bytes, "application/gzip");
            }));
            s.Url = baseUrl + "/bundles/authz.tar.gz";
            return s;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }

    private static byte[] MakeBundle(string revision, string rego)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Pax))
        {
            void Add(string name, string text) => tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) });
            Add("/.manifest", $$"""{"revision": "{{revision}}"}""");
            Add("/envoy/authz/policy.rego", rego);
        }
        return ms.ToArray();
    }

    private async Task<Envoy.Service.Auth.V3.CheckRequest> RequestAsync(string method) =>
        Requests.Http(method, "/api/v1/dags", headers: new Dictionary<string, string>
        {
            ["authorization"] = "Bearer " + await idp.GetAccessTokenAsync(cancellationToken: TestContext.Current.CancellationToken),
        });

    [Fact]
    public async Task RemoteBundle_LoadsBeforeReady_UpdatesByETag_KeepsLastGoodWhenTheServerFails()
    {
        await using var server = await BundleServer.StartAsync();
        server.Bundle = MakeBundle("r1", "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.method == \"GET\"\n");
        server.Failing = true; // not reachable at first: the service must not become ready
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:BundleUrl", server.Url));
        settings.Add(new("EnvoyAuthz:Policy:BundlePollInterval", "00:00:01"));
        settings.Add(new("EnvoyAuthz:Resilience:BreakDuration", "00:00:01"));
        await using var host = await AuthzServiceHost.StartAsync(settings);

        // The service has asked for the bundle, failed, and asked again: still not ready (no sleep: the bundle server counts).
        await WaitFor(() => Volatile.Read(ref server.Failures) >= 2);
        using (var r = await host.Http.GetAsync("/readyz", TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        }
        server.Failing = false;
        await host.WaitReadyAsync();
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync("GET"))).Status.Code);
        Assert.NotEqual(0, (await host.CheckAsync(await RequestAsync("POST"))).Status.Code);

        // Unchanged: polled with If-None-Match, answered 304.
        await WaitFor(() => Volatile.Read(ref server.NotModified) >= 1);

        // A new revision takes over without a restart.
        server.Bundle = MakeBundle("r2", "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.method == \"POST\"\n");
        await WaitFor(async () => (await host.CheckAsync(await RequestAsync("POST"))).Status.Code == 0);

        // A broken bundle is rejected; the server failing opens the circuit; the last good policy keeps serving.
        server.Bundle = MakeBundle("r3", "package envoy.authz\nallow if {\n");
        await WaitFor(async () => await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"failure\"}") >= 1);
        server.Failing = true;
        await WaitFor(async () => await host.MetricAsync("envoy_authz_dependency_requests_total{dependency=\"policy-bundle\",result=\"failure\"}") >= 1);
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync("POST"))).Status.Code);
        Assert.NotNull(await host.MetricAsync("envoy_authz_circuit_state{dependency=\"policy-bundle\"}"));
        Assert.Contains(host.Logs.Lines, l => l.Contains("[1205]"));
    }

    private static Task WaitFor(Func<bool> condition) => WaitFor(() => Task.FromResult(condition()));

    private static async Task WaitFor(Func<Task<bool>> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < until)
        {
            if (await condition())
            {
                return;
            }
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("condition not reached");
    }
}
