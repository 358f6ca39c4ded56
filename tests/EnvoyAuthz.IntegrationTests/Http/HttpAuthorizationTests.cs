using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using EnvoyAuthz.IntegrationTests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Http;

/// <summary>HTTP-mode authorization for nginx auth_request (a real nginx, /authz/nginx), Traefik ForwardAuth (/authz/traefik) and Envoy's HTTP ext_authz (/authz/envoy).</summary>
public sealed class HttpAuthorizationTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private AuthzServiceHost _host = null!;

    public async ValueTask InitializeAsync()
    {
        _host = await AuthzServiceHost.StartAsync(AuthzServiceHost.IssuerSettings(idp));
        await _host.WaitReadyAsync();
    }

    public async ValueTask DisposeAsync() => await _host.DisposeAsync();

    private Task<string> TokenAsync() => idp.GetAccessTokenAsync(new OidcTokenRequest { Groups = ["viewers"] }, TestContext.Current.CancellationToken);

    [Fact]
    public async Task Nginx_AuthRequest_AllowsWithIdentityHeaders_DeniesWithout()
    {
        await using var nginx = await NginxServer.StartAsync(_host.HttpPort);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var token = await TokenAsync();

        using var allowed = new HttpRequestMessage(HttpMethod.Get, nginx.Url + "/api/v1/dags?limit=5");
        allowed.Headers.Authorization = new("Bearer", token);
        allowed.Headers.Add("X-Authz-Subject", "spoofed-admin"); // nginx overwrites it with what EnvoyAuthz says
        using var ok = await client.SendAsync(allowed, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var seen = await ok.Content.ReadFromJsonAsync<Dictionary<string, string>>(TestContext.Current.CancellationToken);
        Assert.Equal(OidcProviderFixture.DefaultClientId, seen!["x-authz-subject"]);
        Assert.Equal("viewers", seen["x-authz-groups"]);

        using var denied = await client.GetAsync(nginx.Url + "/api/v1/dags", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);

        using var bad = new HttpRequestMessage(HttpMethod.Get, nginx.Url + "/api/v1/dags");
        bad.Headers.Authorization = new("Bearer", token[..^4] + "AAAA");
        using var badResponse = await client.SendAsync(bad, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, badResponse.StatusCode);
    }

    [Fact]
    public async Task TraefikForwardAuth_ForwardedHeadersDescribeTheRequest()
    {
        var token = await TokenAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/authz/traefik");
        request.Headers.Add("X-Forwarded-Method", "DELETE");
        request.Headers.Add("X-Forwarded-Uri", "/api/v1/dags/etl");
        request.Headers.Add("X-Forwarded-Host", "airflow.example.com");
        request.Headers.Add("X-Forwarded-Proto", "https");
        request.Headers.Authorization = new("Bearer", token);
        using var ok = await _host.Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(OidcProviderFixture.DefaultClientId, ok.Headers.GetValues("x-authz-subject").Single());
        var line = _host.Logs.Lines.Last(l => l.Contains("[1000]"));
        Assert.Contains("method=DELETE", line);
        Assert.Contains("host=airflow.example.com", line);
        Assert.Contains("path=/api/v1/dags/etl", line);
    }

    [Fact]
    public async Task EnvoyHttpExtAuthz_OriginalPathAfterThePrefix_DenyBodyAndHeadersToRemove()
    {
        using var denied = await _host.Http.PostAsync("/authz/envoy/api/v1/dags/etl/dagRuns", new StringContent("{}"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.StartsWith("Bearer", denied.Headers.WwwAuthenticate.ToString());
        using var body = JsonDocument.Parse(await denied.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("missing_token", body.RootElement.GetProperty("reason").GetString());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/authz/envoy/api/v1/dags");
        request.Headers.Authorization = new("Bearer", await TokenAsync());
        using var ok = await _host.Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Contains("x-airflow-conn-id", ok.Headers.GetValues("x-envoy-auth-headers-to-remove").Single());
    }

    /// <summary>A Traefik ForwardAuth request carrying a token whose <c>sub</c> and group are <paramref name="subject"/> and <paramref name="group"/>.</summary>
    private async Task<HttpRequestMessage> ForwardAuthAsync(string subject, string group)
    {
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest
        {
            Groups = [group],
            ExtraClaimsJson = JsonSerializer.Serialize(new Dictionary<string, string> { ["sub"] = subject }),
        }, TestContext.Current.CancellationToken);
        var request = new HttpRequestMessage(HttpMethod.Get, "/authz/traefik");
        request.Headers.Add("X-Forwarded-Method", "GET");
        request.Headers.Add("X-Forwarded-Uri", "/api/v1/dags");
        request.Headers.Add("X-Forwarded-Host", "airflow.example.com");
        request.Headers.Authorization = new("Bearer", token);
        return request;
    }

    /// <summary>A client that reads response header bytes as UTF-8 (as nginx and Envoy pass them on).</summary>
    private HttpClient Utf8Client() => new(new SocketsHttpHandler { UseProxy = false, ResponseHeaderEncodingSelector = (_, _) => Encoding.UTF8 })
    {
        BaseAddress = _host.Http.BaseAddress,
    };

    /// <summary>The decision log line of the answer, found by the decision id the answer carries.</summary>
    private string DecisionLine(HttpResponseMessage response)
    {
        var id = response.Headers.GetValues("x-authz-decision-id").Single();
        return Assert.Single(_host.Logs.Lines, l => l.Contains("[1000]", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("jos\u00e9", "viewers")]
    [InlineData("\ud83d\ude00", "v\u00efewers")]        // an emoji subject, a group with a diaeresis
    [InlineData("\u5f20\u4f1f", "\u0434\u0430\u043d\u043d\u044b\u0435")]
    public async Task NonAsciiIdentity_Allowed_HeadersSentAsUtf8_LogAndAnswerAgree(string subject, string group)
    {
        using var client = Utf8Client();
        using var request = await ForwardAuthAsync(subject, group);
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(subject, response.Headers.GetValues("x-authz-subject").Single());
        Assert.Equal(group, response.Headers.GetValues("x-authz-groups").Single());
        var line = DecisionLine(response);
        Assert.Contains(" allow reason=allowed status=200 ", line, StringComparison.Ordinal);
        Assert.DoesNotContain(_host.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("ali\u0001ce")]
    [InlineData("bob\u001b[31m")]
    [InlineData("eve\u007f")]
    [InlineData("mallory\r\nx-authz-groups: admins")]
    public async Task ControlCharacterIdentity_Allowed_HeaderDroppedAndRemoved_LogAndAnswerAgree(string subject)
    {
        using var client = Utf8Client();
        using var request = await ForwardAuthAsync(subject, "viewers");
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-authz-subject"));
        Assert.Equal("viewers", response.Headers.GetValues("x-authz-groups").Single());
        Assert.Contains("x-authz-subject", response.Headers.GetValues("x-envoy-auth-headers-to-remove").Single().Split(", "));
        var line = DecisionLine(response);
        Assert.Contains(" allow reason=allowed status=200 ", line, StringComparison.Ordinal);
        Assert.DoesNotContain(_host.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Nginx_NonAsciiIdentity_ReachesUpstreamAsUtf8()
    {
        await using var nginx = await NginxServer.StartAsync(_host.HttpPort);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest
        {
            Groups = ["v\u00efewers"],
            ExtraClaimsJson = JsonSerializer.Serialize(new Dictionary<string, string> { ["sub"] = "jos\u00e9" }),
        }, TestContext.Current.CancellationToken);
        using var request = new HttpRequestMessage(HttpMethod.Get, nginx.Url + "/api/v1/dags");
        request.Headers.Authorization = new("Bearer", token);
        using var ok = await client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var seen = await ok.Content.ReadFromJsonAsync<Dictionary<string, string>>(TestContext.Current.CancellationToken);
        Assert.Equal("jos\u00e9", seen!["x-authz-subject"]);
        Assert.Equal("v\u00efewers", seen["x-authz-groups"]);
    }
}
