using System.Net;
using System.Net.Sockets;
using System.Text;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Http;

/// <summary>
/// Issue 9 end to end: the real service (Kestrel) under the example policy, asked over HTTP mode
/// with raw request targets written byte for byte on a socket (HttpClient would normalise them),
/// directly for every proxy style and through a real nginx whose <c>auth_request</c> passes the
/// client's raw <c>$request_uri</c>. A viewer's token never reaches the admin area, however it is
/// spelled; the ordinary API stays reachable.
/// </summary>
public sealed class HttpModeRawTargetTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private AuthzServiceHost _host = null!;
    private string _viewer = null!;

    public async ValueTask InitializeAsync()
    {
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Path", RepoPaths.Of("envoy", "policy")));
        _host = await AuthzServiceHost.StartAsync(settings);
        await _host.WaitReadyAsync();
        _viewer = await idp.GetAccessTokenAsync(new OidcTokenRequest { Groups = ["viewers"] }, TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync() => await _host.DisposeAsync();

    /// <summary>The spellings of <c>/admin/users</c> from issue 9, and a few of their relatives.</summary>
    public static TheoryData<string> AdminSpellings =>
    [
        "/x/../admin/users", "/%2e%2e/admin/users", "/admin;x/users", "/admin%00/users", "/ADMIN/users", "/\\admin\\users",
        "/admin%2Fusers", "/%2561dmin/users", "/api/v1/../../admin/users", "/api/v1/dags/%2e%2e/%2e%2e/%2e%2e/admin/users", "//admin/users",
        "/admin/./users", "/%61dmin/users",
    ];

    /// <summary>Sends <paramref name="target"/> as written; returns the status code (0 when the server closed without one).</summary>
    private static async Task<int> RawAsync(int port, string method, string target, IEnumerable<(string Name, string Value)> headers)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, TestContext.Current.CancellationToken);
        var sb = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: airflow.example.com\r\nConnection: close\r\n");
        foreach (var (name, value) in headers)
        {
            sb.Append(name).Append(": ").Append(value).Append("\r\n");
        }
        sb.Append("\r\n");
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(sb.ToString()), TestContext.Current.CancellationToken);
        using var reader = new StreamReader(stream, Encoding.Latin1);
        var status = await reader.ReadLineAsync(TestContext.Current.CancellationToken);
        return status is not null && status.Split(' ') is [_, var code, ..] && int.TryParse(code, out var n) ? n : 0;
    }

    private (string, string)[] Bearer => [("Authorization", "Bearer " + _viewer)];

    [Theory]
    [MemberData(nameof(AdminSpellings))]
    public async Task EnvoyPrefix_RawTarget_ViewerToken_NeverAllowed(string path)
    {
        var status = await RawAsync(_host.HttpPort, "GET", "/authz/envoy" + path, Bearer);
        Assert.True(status is 400 or 403 or 404, $"{path}: {status}");
    }

    [Theory]
    [MemberData(nameof(AdminSpellings))]
    public async Task NginxAndTraefikDescriptions_RawPath_ViewerToken_NeverAllowed(string path)
    {
        var nginx = await RawAsync(_host.HttpPort, "GET", "/authz/nginx", [.. Bearer, ("X-Original-URI", path), ("X-Original-Method", "GET")]);
        var traefik = await RawAsync(_host.HttpPort, "GET", "/authz/traefik", [.. Bearer, ("X-Forwarded-Uri", path), ("X-Forwarded-Method", "GET")]);
        Assert.True(nginx is 400 or 403, $"nginx {path}: {nginx}");
        Assert.True(traefik is 400 or 403, $"traefik {path}: {traefik}");
    }

    [Fact]
    public async Task Traefik_ClientAddsOriginalHeaders_DecidedOnTraefiksDescription()
    {
        var status = await RawAsync(_host.HttpPort, "GET", "/authz/traefik",
            [.. Bearer, ("X-Forwarded-Method", "DELETE"), ("X-Forwarded-Uri", "/admin/users"), ("X-Original-URI", "/api/v1/dags"), ("X-Original-Method", "GET")]);
        Assert.Equal(403, status);
    }

    [Theory]
    [InlineData("/authz/healthz%3F/x", 400)]
    [InlineData("/authz/healthz%23/x", 400)]
    [InlineData("/authz/envoy/healthz%3F/x", 401)]
    [InlineData("/authz/envoy/healthz%23/x", 401)]
    [InlineData("/AUTHZ/admin/users", 400)]
    [InlineData("/authz/envoy/healthz", 200)]
    [InlineData("/AUTHZ/ENVOY/healthz", 200)]
    public async Task AuthRequestTarget_NoToken_DecodedOnceAndPrefixMatchedInAnyCase(string target, int expected) =>
        Assert.Equal(expected, await RawAsync(_host.HttpPort, "GET", target, []));

    [Theory]
    [InlineData("/AUTHZ/ENVOY/admin/users", 403)]
    [InlineData("/authz/envoy/api/v1/dags?limit=5", 200)]
    [InlineData("/authz/nginx", 400)]
    [InlineData("/authz/traefik", 400)]
    public async Task AuthRequestTarget_ViewerToken(string target, int expected) =>
        Assert.Equal(expected, await RawAsync(_host.HttpPort, "GET", target, Bearer));

    [Theory]
    [InlineData("X-Original-URI", "")]
    [InlineData("X-Original-Method", "")]
    public async Task Nginx_EmptyDescriptionHeader_DeniedBadRequest(string header, string value)
    {
        (string, string)[] headers = [("X-Original-URI", "/api/v1/dags"), ("X-Original-Method", "GET")];
        headers = [.. Bearer, .. headers.Select(h => h.Item1 == header ? (h.Item1, value) : h)];
        Assert.Equal(400, await RawAsync(_host.HttpPort, "GET", "/authz/nginx", headers));
    }

    /// <summary>
    /// Through a real nginx: <c>auth_request</c> with <c>X-Original-URI $request_uri</c> (the raw
    /// target) as the README configures it. nginx resolves dot segments for its own location match
    /// but hands the raw target to the service and, with <c>proxy_pass</c> without a URI, to the
    /// upstream too — so the service must judge the raw target. nginx turns the service's 400 into
    /// 500; both are denies, and the upstream is never reached.
    /// </summary>
    [Theory]
    [MemberData(nameof(AdminSpellings))]
    public async Task ThroughNginx_RawRequestUri_ViewerToken_NeverReachesUpstream(string path)
    {
        await using var nginx = await NginxServer.StartAsync(_host.HttpPort);
        var port = new Uri(nginx.Url).Port;
        var status = await RawAsync(port, "GET", path, Bearer);
        Assert.True(status != 200, $"{path}: {status}");

        Assert.Equal(200, await RawAsync(port, "GET", "/api/v1/dags?limit=5", Bearer));
        Assert.Equal(403, await RawAsync(port, "GET", "/admin/users", Bearer));
    }
}
