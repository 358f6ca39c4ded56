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

    [Fact]
    public async Task SeveralIssuers_EachValidatesWithItsOwnKeysAndAudience()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var corp = await OidcProviderFixture.StartAsync(cancellationToken: ct);
        await using var partner = await OidcProviderFixture.StartAsync(new OidcProviderOptions { DefaultAudience = "https://partner.test" }, ct);
        var settings = AuthzServiceHost.IssuerSettings(corp, 0, "corp");
        settings.AddRange(
        [
            new("EnvoyAuthz:Identity:Issuers:1:Name", "partner"),
            new("EnvoyAuthz:Identity:Issuers:1:Issuer", partner.Issuer),
            new("EnvoyAuthz:Identity:Issuers:1:JwksUrl", partner.JwksUri),
            new("EnvoyAuthz:Identity:Issuers:1:Audiences:0", "https://partner.test"),
            new("EnvoyAuthz:Identity:Issuers:1:Algorithms:0", "ES256"),
            new("EnvoyAuthz:Identity:Issuers:1:RequireHttpsMetadata", "false"),
        ]);
        await using var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();

        var fromCorp = await host.CheckAsync(WithToken(await corp.GetAccessTokenAsync(cancellationToken: ct)));
        Assert.Contains(fromCorp.OkResponse.Headers, h => h.Header.Key == "x-authz-issuer" && h.Header.Value == corp.Issuer);
        var fromPartner = await host.CheckAsync(WithToken(await partner.GetAccessTokenAsync(alg: "ES256", cancellationToken: ct)));
        Assert.Contains(fromPartner.OkResponse.Headers, h => h.Header.Key == "x-authz-issuer" && h.Header.Value == partner.Issuer);
        // The partner issuer allows ES256 only.
        var rs256 = await host.CheckAsync(WithToken(await partner.GetAccessTokenAsync(alg: "RS256", cancellationToken: ct)));
        Assert.Equal(401, (int)rs256.DeniedResponse.Status.Code);
        // A corp-audience token signed by the partner is still the partner's: wrong audience there.
        var crossed = await host.CheckAsync(WithToken(await partner.GetAccessTokenAsync(alg: "ES256", audience: OidcProviderFixture.DefaultAudience, cancellationToken: ct)));
        Assert.Contains("wrong_audience", crossed.DeniedResponse.Body);
        Assert.True(await host.MetricAsync("envoy_authz_token_validations_total{issuer=\"partner\",result=\"valid\"}") >= 1);
        Assert.True(await host.MetricAsync("envoy_authz_token_validations_total{issuer=\"corp\",result=\"valid\"}") >= 1);
    }
}
