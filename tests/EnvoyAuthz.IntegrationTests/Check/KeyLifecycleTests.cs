using System.Net;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.Check;

/// <summary>Key rotation and readiness, each with its own OpenID provider.</summary>
public sealed class KeyLifecycleTests
{
    private static Envoy.Service.Auth.V3.CheckRequest WithToken(string token) =>
        Requests.Http(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });

    [Fact]
    public async Task IdpRotatesSigningKey_NewTokensValidateAfterOneRefetch()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var idp = await OidcProviderFixture.StartAsync(cancellationToken: ct);
        await using var host = await AuthzServiceHost.StartAsync(AuthzServiceHost.IssuerSettings(idp));
        await host.WaitReadyAsync();

        var before = await idp.GetAccessTokenAsync(cancellationToken: ct);
        Assert.Equal(0, (await host.CheckAsync(WithToken(before))).Status.Code);
        var refreshes = await host.MetricAsync("envoy_authz_jwks_refreshes_total{issuer=\"oidc\",result=\"success\"}");

        await idp.RotateSigningKeyAsync(keepOld: false, cancellationToken: ct);
        var after = await idp.GetAccessTokenAsync(cancellationToken: ct);
        Assert.NotEqual(new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(before).Kid, new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(after).Kid);

        Assert.Equal(0, (await host.CheckAsync(WithToken(after))).Status.Code);
        Assert.Equal(refreshes + 1, await host.MetricAsync("envoy_authz_jwks_refreshes_total{issuer=\"oidc\",result=\"success\"}"));
        // A second new-kid token within the interval needs no further fetch.
        Assert.Equal(0, (await host.CheckAsync(WithToken(await idp.GetAccessTokenAsync(alg: "RS256", cancellationToken: ct)))).Status.Code);
        Assert.Equal(refreshes + 1, await host.MetricAsync("envoy_authz_jwks_refreshes_total{issuer=\"oidc\",result=\"success\"}"));
    }

    [Fact]
    public async Task Readyz_NotReadyUntilKeysLoad()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var idp = await OidcProviderFixture.StartAsync(cancellationToken: ct);
        await idp.StopJwksAsync(cancellationToken: ct);
        await using var host = await AuthzServiceHost.StartAsync(AuthzServiceHost.IssuerSettings(idp));

        using (var r = await host.Http.GetAsync("/readyz", ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        }
        Assert.Equal(HttpStatusCode.OK, (await host.Http.GetAsync("/healthz", ct)).StatusCode);
        var token = await idp.GetAccessTokenAsync(cancellationToken: ct);
        var denied = await host.CheckAsync(WithToken(token));
        Assert.Equal(503, (int)denied.DeniedResponse.Status.Code);
        Assert.Contains("dependency_unavailable", denied.DeniedResponse.Body);

        await idp.StartJwksAsync(ct);
        await host.WaitReadyAsync();
        Assert.Equal(0, (await host.CheckAsync(WithToken(token))).Status.Code);
    }
}
