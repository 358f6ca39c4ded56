using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EnvoyAuthz.Tests.Policy;

/// <summary>http.send, DNS and opa.runtime: off by default; when configured, only to allowed URL prefixes (against a real loopback server).</summary>
public sealed class RegoHostAccessTests : IAsyncLifetime
{
    private WebApplication _server = null!;
    private string _base = "";
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-httpsend-").FullName;

    public async ValueTask InitializeAsync()
    {
        (_server, _base) = await LoopbackServer.StartAsync(app =>
        {
            app.MapGet("/hr/employees/{id}", (string id) => Results.Json(new { allowed = id == "alice" }));
            app.MapGet("/hr/redirect", () => Results.Redirect("http://169.254.169.254/latest/meta-data"));
            app.MapGet("/secrets/keys", () => Results.Json(new { allowed = true }));
            app.MapGet("/hr-admin/keys", () => Results.Json(new { allowed = true }));
        });
        File.WriteAllText(Path.Combine(_dir, "p.rego"), """
            package envoy.authz
            import rego.v1
            allow if {
                resp := http.send({"method": "GET", "url": input.url})
                resp.status_code == 200
                resp.body.allowed == true
            }
            soft := http.send({"method": "GET", "url": input.url, "raise_error": false})
            with_host := http.send({"method": "GET", "url": input.url, "headers": {"Host": "other.example"}, "raise_error": false})
            runtime := opa.runtime()
            """);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private RegoPolicyEngine Engine(params string[] allowed)
    {
        var options = new AuthzOptions();
        options.Policy.Path = _dir;
        options.Policy.HttpSend.AllowedUrlPrefixes = [.. allowed];
        // Generous limits: a shared CI machine; the limits themselves are not under test here.
        options.Policy.HttpSend.Timeout = TimeSpan.FromSeconds(10);
        options.Policy.EvaluationTimeout = TimeSpan.FromSeconds(10);
        var services = new ServiceCollection();
        services.AddHttpClient("policy-http-send").ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false });
        var provider = services.BuildServiceProvider();
        return new RegoPolicyEngine(options, new AuthzMetrics(Prometheus.Metrics.NewCustomRegistry()), TimeProvider.System,
            NullLogger<RegoPolicyEngine>.Instance, provider.GetRequiredService<IHttpClientFactory>());
    }

    private static RegoEvalResult Eval(RegoPolicyEngine engine, string rule, string url) =>
        engine.Policy.Evaluate("data.envoy.authz." + rule, new RegoObject.Builder().Add("url", RegoValue.From(url)).Build(),
            new RegoEvalOptions { Host = EngineHost(engine) });

    // The engine passes its host on every decision; direct evaluations here use the same one.
    private static RegoHost? EngineHost(RegoPolicyEngine engine) => engine.Host;

    [Fact]
    public void Default_HttpSendIsDisabled()
    {
        var engine = Engine();
        Assert.Null(EngineHost(engine));
        Assert.False(Eval(engine, "allow", _base + "/hr/employees/alice").IsDefined);
    }

    [Fact]
    public async Task AllowedPrefix_PolicyDecidesOnTheAnswer()
    {
        var engine = Engine(_base + "/hr/");
        Assert.Equal(RegoValue.True, Eval(engine, "allow", _base + "/hr/employees/alice").Value);
        Assert.False(Eval(engine, "allow", _base + "/hr/employees/mallory").IsDefined);
        // Through the engine's decision path too.
        var decision = await engine.EvaluateAsync(new PolicyContext
        {
            Request = Requests.Parsed(Requests.Http()),
            Input = new RegoObject.Builder().Add("url", RegoValue.From(_base + "/hr/employees/alice")).Build(),
        }, TestContext.Current.CancellationToken);
        Assert.Equal(RegoValue.True, decision.Decision);
    }

    [Fact]
    public void OutsideThePrefix_IsRefused_AndRedirectsAreNotFollowed()
    {
        var engine = Engine(_base + "/hr/");
        Assert.False(Eval(engine, "allow", _base + "/secrets/keys").IsDefined);
        var soft = Assert.IsType<RegoObject>(Eval(engine, "soft", _base + "/secrets/keys").Value);
        Assert.Contains("not an allowed destination", soft["error"]!.ToJson());
        var redirected = Assert.IsType<RegoObject>(Eval(engine, "soft", _base + "/hr/redirect").Value);
        Assert.Equal(RegoValue.From(302L), redirected["status_code"]);
    }

    public static TheoryData<string, string> HostileSpellings() => new()
    {
        // A prefix without a trailing slash ends on a segment boundary: "/hr" is not "/hr-admin".
        { "{base}/hr", "{base}/hr-admin/keys" },
        // Userinfo that spells the allowed origin, then the real host.
        { "{base}", "http://127.0.0.1:{port}@localhost:{port}/secrets/keys" },
        // A port that starts with the allowed port's digits.
        { "http://127.0.0.1:{port/10}", "{base}/secrets/keys" },
        // Escaped dot segments that the server decodes.
        { "{base}/hr/", "{base}/hr/%2e%2e/secrets/keys" },
        { "{base}/hr/", "{base}/hr/..%2fsecrets/keys" },
    };

    [Theory]
    [MemberData(nameof(HostileSpellings))]
    public void HostileSpellingOfAnAllowedPrefix_IsRefused_AgainstARealServer(string prefixTemplate, string urlTemplate)
    {
        var port = new Uri(_base).Port;
        string Fill(string t) => t.Replace("{base}", _base).Replace("{port/10}", (port / 10).ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Replace("{port}", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var engine = Engine(Fill(prefixTemplate));
        var url = Fill(urlTemplate);
        Assert.False(Eval(engine, "allow", url).IsDefined);
        var soft = Assert.IsType<RegoObject>(Eval(engine, "soft", url).Value);
        Assert.True(soft.TryGetValue("error", out _), $"{url} was requested: {soft.ToJson()}");
    }

    [Fact]
    public void HostHeaderOverride_IsRefused()
    {
        var engine = Engine(_base + "/hr/");
        var sent = Assert.IsType<RegoObject>(Eval(engine, "with_host", _base + "/hr/employees/alice").Value);
        Assert.True(sent.TryGetValue("error", out var error), sent.ToJson());
        Assert.Contains("host header", error.ToJson());
    }

    [Fact]
    public void OpaRuntime_NeverExposesTheEnvironment()
    {
        var engine = Engine(_base + "/hr/");
        var runtime = Assert.IsType<RegoObject>(Eval(engine, "runtime", "").Value);
        Assert.Equal(0, ((RegoObject)runtime["env"]!).Count);
        Assert.StartsWith("envoy-authz", ((RegoString)runtime["version"]!).Value);
    }
}
