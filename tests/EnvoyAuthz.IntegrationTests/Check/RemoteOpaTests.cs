using System.Text.Json;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Check;

/// <summary>The remote OPA engine against a server answering as OPA's REST Data API does, with real tokens.</summary>
public sealed class RemoteOpaTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private OpaDataApiServer _opa = null!;

    public async ValueTask InitializeAsync() => _opa = await OpaDataApiServer.StartAsync();

    public async ValueTask DisposeAsync() => await _opa.DisposeAsync();

    private async Task<AuthzServiceHost> HostAsync(string decisionPath, string timeout = "00:00:00.5")
    {
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Engine", "remote-opa"));
        settings.Add(new("EnvoyAuthz:Policy:DecisionPath", decisionPath));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Url", _opa.Url));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Timeout", timeout));
        var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();
        return host;
    }

    private async Task<Envoy.Service.Auth.V3.CheckRequest> RequestAsync(params string[] groups)
    {
        var token = await idp.GetAccessTokenAsync(new OidcTokenRequest { Groups = groups }, TestContext.Current.CancellationToken);
        return Requests.Http(path: "/api/v1/dags/etl?x=1", headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token, ["cookie"] = "s=secret-cookie" });
    }

    private static string Reason(Envoy.Service.Auth.V3.CheckResponse r) =>
        JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;

    [Fact]
    public async Task BooleanDecision_AllowAndDeny()
    {
        await using var host = await HostAsync("data.envoy.authz.allow");
        Assert.Equal(0, (await host.CheckAsync(await RequestAsync("admins"))).Status.Code);
        var denied = await host.CheckAsync(await RequestAsync("viewers"));
        Assert.Equal(403, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("policy_denied", Reason(denied));
    }

    [Fact]
    public async Task Input_HasOpaEnvoyShapeAndIdentity_NoSecrets()
    {
        await using var host = await HostAsync("envoy/authz/allow");
        var request = await RequestAsync("admins");
        await host.CheckAsync(request);
        var input = _opa.Inputs[^1];
        Assert.Equal("GET", input["attributes"]!["request"]!["http"]!["method"]!.GetValue<string>());
        Assert.Equal("[\"api\",\"v1\",\"dags\",\"etl\"]", input["parsed_path"]!.ToJsonString());
        Assert.Equal("[\"1\"]", input["parsed_query"]!["x"]!.ToJsonString());
        Assert.Equal("v3", input["version"]!["ext_authz"]!.GetValue<string>());
        Assert.Equal(idp.Issuer, input["identity"]!["issuer"]!.GetValue<string>());
        Assert.Equal("[\"admins\"]", input["identity"]!["groups"]!.ToJsonString());
        var raw = input.ToJsonString();
        var token = request.Attributes.Request.Http.Headers["authorization"][7..];
        Assert.DoesNotContain(token, raw);
        Assert.DoesNotContain("secret-cookie", raw);
    }

    [Fact]
    public async Task ObjectDecision_HeadersOnAllow_StatusAndBodyOnDeny()
    {
        await using var host = await HostAsync("envoy/authz/decision");
        var allowed = await host.CheckAsync(await RequestAsync("admins"));
        Assert.Equal(0, allowed.Status.Code);
        Assert.Contains(allowed.OkResponse.Headers, h => h.Header.Key == "x-opa-tenant" && h.Header.Value == "blue");
        Assert.Contains(allowed.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == "x-opa" && h.Header.Value == "yes");
        Assert.Contains(allowed.OkResponse.Headers, h => h.Header.Key == "x-authz-subject");

        var denied = await host.CheckAsync(await RequestAsync("viewers"));
        Assert.Equal(451, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("denied by policy", denied.DeniedResponse.Body);
        Assert.Contains(denied.DeniedResponse.Headers, h => h.Header.Key == "x-deny-reason");
    }

    [Fact]
    public async Task UndefinedDecision_Denies()
    {
        await using var host = await HostAsync("envoy/authz/undefined");
        var denied = await host.CheckAsync(await RequestAsync("admins"));
        Assert.NotEqual(0, denied.Status.Code);
        Assert.Equal("policy_denied", Reason(denied));
    }

    [Fact]
    public async Task OpaEvaluationError_DeniesPolicyError()
    {
        await using var host = await HostAsync("envoy/authz/error");
        var denied = await host.CheckAsync(await RequestAsync("admins"));
        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("policy_error", Reason(denied));
    }

    [Fact]
    public async Task OpaTooSlow_DeniesDependencyUnavailable()
    {
        await using var host = await HostAsync("envoy/authz/slow", timeout: "00:00:00.1");
        var denied = await host.CheckAsync(await RequestAsync("admins"));
        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Equal("dependency_unavailable", Reason(denied));
    }

    [Fact]
    public async Task OpaDown_DeniesDependencyUnavailable()
    {
        var settings = AuthzServiceHost.IssuerSettings(idp);
        settings.Add(new("EnvoyAuthz:Policy:Engine", "remote-opa"));
        settings.Add(new("EnvoyAuthz:Policy:RemoteOpa:Url", "http://127.0.0.1:1"));
        await using var host = await AuthzServiceHost.StartAsync(settings);
        var denied = await host.CheckAsync(await RequestAsync("admins"));
        Assert.Equal("dependency_unavailable", Reason(denied));
    }
}
