using System.Net;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>Tests of the loopback OpenID provider harness itself.</summary>
public sealed class OidcProviderFixtureTests(OidcProviderFixture oidc) : IClassFixture<OidcProviderFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Discovery_document_advertises_the_loopback_issuer_and_endpoints()
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(oidc.DiscoveryUri), Ct));
        var root = doc.RootElement;

        Assert.StartsWith("http://127.0.0.1:", oidc.Issuer, StringComparison.Ordinal);
        Assert.Equal(oidc.Issuer, root.GetProperty("issuer").GetString());
        Assert.Equal(oidc.JwksUri, root.GetProperty("jwks_uri").GetString());
        Assert.Equal(oidc.TokenEndpoint, root.GetProperty("token_endpoint").GetString());
        Assert.Contains("client_credentials", root.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
    }

    [Theory]
    [InlineData("RS256", "RSA")]
    [InlineData("ES256", "EC")]
    public async Task Access_token_validates_against_the_jwks_with_expected_claims(string alg, string kty)
    {
        var token = await oidc.GetAccessTokenAsync(alg, cancellationToken: Ct);
        var jwks = await oidc.GetJwksAsync(Ct);

        var result = await ValidateAsync(token, jwks, alg);

        Assert.True(result.IsValid, result.Exception?.ToString());
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal(alg, jwt.Alg);
        Assert.Equal("at+jwt", jwt.Typ);
        var key = Assert.Single(jwks.Keys, k => k.Kid == jwt.Kid);
        Assert.Equal(kty, key.Kty);
        Assert.Equal(oidc.Issuer, jwt.Issuer);
        Assert.Equal([OidcProviderFixture.DefaultAudience], jwt.Audiences);
        Assert.Equal("svc-client", jwt.Subject);
        Assert.Equal("svc-client", jwt.GetClaim("client_id").Value);
        Assert.Equal("read write", jwt.GetClaim("scope").Value);
        Assert.Equal(["airflow-users", "data-eng"], jwt.Claims.Where(c => c.Type == "groups").Select(c => c.Value));
        using var realm = JsonDocument.Parse(jwt.GetClaim("realm_access").Value);
        Assert.Equal(["reader", "writer"], realm.RootElement.GetProperty("roles").EnumerateArray().Select(e => e.GetString()));
        Assert.True(jwt.ValidTo > DateTime.UtcNow && jwt.IssuedAt <= DateTime.UtcNow.AddSeconds(5));
    }

    [Fact]
    public async Task Rs256_and_es256_tokens_use_different_kids()
    {
        var rs = new JsonWebToken(await oidc.GetAccessTokenAsync("RS256", cancellationToken: Ct));
        var es = new JsonWebToken(await oidc.GetAccessTokenAsync("ES256", cancellationToken: Ct));

        Assert.NotEqual(rs.Kid, es.Kid);
    }

    [Fact]
    public async Task Scope_audience_client_and_claim_overrides_are_honoured()
    {
        var token = new JsonWebToken(await oidc.GetAccessTokenAsync(new OidcTokenRequest
        {
            ClientId = "admin-client",
            Scope = "admin",
            Audience = "https://other.test",
            Groups = ["g1", "g2"],
            Roles = [],
            LifetimeSeconds = 60,
            ExtraClaimsJson = """{"act":{"sub":"agent-7"}}""",
        }, Ct));

        Assert.Equal("admin-client", token.Subject);
        Assert.Equal("admin", token.GetClaim("scope").Value);
        Assert.Equal(["https://other.test"], token.Audiences);
        Assert.Equal(["g1", "g2"], token.Claims.Where(c => c.Type == "groups").Select(c => c.Value));
        Assert.Equal(60, (token.ValidTo - token.IssuedAt).TotalSeconds, 1.0);
        Assert.Contains("agent-7", token.GetClaim("act").Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scope_outside_the_client_registration_is_refused()
    {
        var ex = await Assert.ThrowsAsync<OidcTokenRequestException>(
            () => oidc.GetAccessTokenAsync(scope: "admin", clientId: "reader-client", cancellationToken: Ct));

        Assert.Equal(400, ex.StatusCode);
        Assert.Equal("invalid_scope", ex.Error);
    }

    [Fact]
    public async Task Rotation_publishes_a_new_kid_used_by_new_tokens()
    {
        await using var own = await OidcProviderFixture.StartAsync(cancellationToken: Ct);
        var before = new JsonWebToken(await own.GetAccessTokenAsync("RS256", cancellationToken: Ct));

        var state = await own.RotateSigningKeyAsync(keepOld: true, cancellationToken: Ct);
        var after = await own.GetAccessTokenAsync("RS256", cancellationToken: Ct);
        var afterEs = new JsonWebToken(await own.GetAccessTokenAsync("ES256", cancellationToken: Ct));
        var jwks = await own.GetJwksAsync(Ct);

        var afterJwt = new JsonWebToken(after);
        Assert.NotEqual(before.Kid, afterJwt.Kid);
        Assert.Equal(state.CurrentKids["RS256"], afterJwt.Kid);
        Assert.Equal(state.CurrentKids["ES256"], afterEs.Kid);
        Assert.Contains(jwks.Keys, k => k.Kid == afterJwt.Kid);
        Assert.Contains(jwks.Keys, k => k.Kid == before.Kid);
        Assert.True((await ValidateAsync(after, jwks, "RS256", own.Issuer)).IsValid);

        // drop the old RSA keys; the ES256 keys (current and the one kept above) stay
        var dropped = await own.RotateSigningKeyAsync(keepOld: false, alg: "RS256", cancellationToken: Ct);
        jwks = await own.GetJwksAsync(Ct);
        Assert.Equal(dropped.CurrentKids["RS256"], Assert.Single(jwks.Keys, k => k.Kty == "RSA").Kid);
        Assert.Equal(2, jwks.Keys.Count(k => k.Kty == "EC"));
        Assert.Contains(jwks.Keys, k => k.Kid == afterEs.Kid);
        Assert.False((await ValidateAsync(after, jwks, "RS256", own.Issuer)).IsValid);
    }

    [Fact]
    public async Task Jwks_outage_answers_503_until_started_again_and_restart_keeps_port_and_keys()
    {
        await using var own = await OidcProviderFixture.StartAsync(cancellationToken: Ct);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });

        await own.StopJwksAsync(cancellationToken: Ct);
        using (var jwks = await http.GetAsync(new Uri(own.JwksUri), Ct))
        using (var discovery = await http.GetAsync(new Uri(own.DiscoveryUri), Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, jwks.StatusCode);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, discovery.StatusCode);
        }
        var duringOutage = await own.GetAccessTokenAsync(cancellationToken: Ct); // token endpoint unaffected
        Assert.Equal(1, (await own.GetStateAsync(Ct)).Counters.Jwks);

        await own.StartJwksAsync(Ct);
        var keys = await own.GetJwksAsync(Ct);
        Assert.True((await ValidateAsync(duringOutage, keys, "RS256", own.Issuer)).IsValid);

        var issuer = own.Issuer;
        await own.StopAsync();
        Assert.False(own.IsRunning);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => http.GetAsync(new Uri(own.JwksUri), Ct));

        await own.RestartAsync(Ct);
        Assert.Equal(issuer, own.Issuer);
        var keysAfterRestart = await own.GetJwksAsync(Ct);
        Assert.Equal(keys.Keys.Select(k => k.Kid), keysAfterRestart.Keys.Select(k => k.Kid));
        Assert.True((await ValidateAsync(duringOutage, keysAfterRestart, "RS256", own.Issuer)).IsValid);
        Assert.DoesNotContain("server_error", own.StandardError, StringComparison.Ordinal);
    }

    private Task<TokenValidationResult> ValidateAsync(string token, JsonWebKeySet jwks, string alg, string? issuer = null) =>
        new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = issuer ?? oidc.Issuer,
            ValidAudience = OidcProviderFixture.DefaultAudience,
            IssuerSigningKeys = jwks.GetSigningKeys(),
            ValidAlgorithms = [alg],
            ValidTypes = ["at+jwt"],
            ClockSkew = TimeSpan.FromSeconds(5),
        });
}
