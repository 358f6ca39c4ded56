using System.Net;
using System.Net.Http.Json;
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
}
