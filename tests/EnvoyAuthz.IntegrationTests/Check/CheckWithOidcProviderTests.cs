using System.Net;
using System.Text;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.IntegrationTests.Check;

/// <summary>
/// Check through the generated gRPC client against the real service, with tokens from a real
/// OpenID provider (oidc-provider on 127.0.0.1), under the default <c>authenticated</c> policy.
/// </summary>
public sealed class CheckWithOidcProviderTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private AuthzServiceHost _host = null!;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<string> _tokens = [];

    public async ValueTask InitializeAsync()
    {
        _host = await AuthzServiceHost.StartAsync(AuthzServiceHost.IssuerSettings(idp), s => s.AddSingleton<TimeProvider>(_time));
        await _host.WaitReadyAsync();
    }

    public async ValueTask DisposeAsync()
    {
        // No token the test handled ever reaches a log line.
        var logs = _host.Logs.Text;
        foreach (var token in _tokens)
        {
            Assert.DoesNotContain(token, logs);
            Assert.DoesNotContain(token.Split('.')[2], logs);
        }
        await _host.DisposeAsync();
    }

    private async Task<string> TokenAsync(OidcTokenRequest? request = null)
    {
        var token = await idp.GetAccessTokenAsync(request ?? new OidcTokenRequest(), TestContext.Current.CancellationToken);
        _tokens.Add(token);
        return token;
    }

    private static CheckRequest WithToken(string? token, string path = "/api/v1/dags", IDictionary<string, string>? extra = null)
    {
        var headers = new Dictionary<string, string>(extra ?? new Dictionary<string, string>());
        if (token is not null)
        {
            headers["authorization"] = "Bearer " + token;
        }
        return Requests.Http(path: path, headers: headers);
    }

    private static Dictionary<string, string> OkHeaders(CheckResponse r) => r.OkResponse.Headers.ToDictionary(h => h.Header.Key, h => h.Header.Value);

    private static string Reason(CheckResponse r)
    {
        using var body = JsonDocument.Parse(r.DeniedResponse.Body);
        return body.RootElement.GetProperty("reason").GetString()!;
    }

    [Theory]
    [InlineData("RS256")]
    [InlineData("ES256")]
    public async Task ValidToken_Allowed_WithIdentityHeaders(string alg)
    {
        var token = await TokenAsync(new OidcTokenRequest { Alg = alg, Groups = ["airflow-admins", "viewers"] });
        Assert.Equal(alg, new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(token).Alg);

        var response = await _host.CheckAsync(WithToken(token));

        Assert.Equal(0, response.Status.Code);
        var headers = OkHeaders(response);
        Assert.Equal(OidcProviderFixture.DefaultClientId, headers["x-authz-subject"]);
        Assert.Equal(idp.Issuer, headers["x-authz-issuer"]);
        Assert.Equal("airflow-admins,viewers", headers["x-authz-groups"]);
        Assert.Contains("read", headers["x-authz-scopes"].Split(' '));
        Assert.Equal(32, headers["x-authz-decision-id"].Length);
        Assert.Equal(headers["x-authz-decision-id"], response.DynamicMetadata.Fields["decision_id"].StringValue);
    }

    [Fact]
    public async Task MissingToken_Denied401_WithBearerChallenge()
    {
        var response = await _host.CheckAsync(WithToken(null));
        Assert.Equal(16, response.Status.Code);
        Assert.Equal(401, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("missing_token", Reason(response));
        var www = response.DeniedResponse.Headers.Single(h => h.Header.Key == "www-authenticate").Header.Value;
        Assert.Equal("Bearer realm=\"envoy-authz\"", www);
    }

    [Fact]
    public async Task ExpiredToken_Denied401_ExpiredToken()
    {
        var token = await TokenAsync(new OidcTokenRequest { LifetimeSeconds = 60 });
        _time.Advance(TimeSpan.FromSeconds(60 + 31));
        var response = await _host.CheckAsync(WithToken(token));
        Assert.Equal(401, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("expired_token", Reason(response));
        Assert.Contains("error=\"invalid_token\"", response.DeniedResponse.Headers.Single(h => h.Header.Key == "www-authenticate").Header.Value);
    }

    [Fact]
    public async Task NotYetValidToken_Denied401()
    {
        var nbf = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds();
        var token = await TokenAsync(new OidcTokenRequest { LifetimeSeconds = 3600, ExtraClaimsJson = $$"""{"nbf":{{nbf}}}""" });
        var response = await _host.CheckAsync(WithToken(token));
        Assert.Equal(401, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("invalid_token", Reason(response));
        Assert.Contains("not valid yet", response.DeniedResponse.Headers.Single(h => h.Header.Key == "www-authenticate").Header.Value);
    }

    [Fact]
    public async Task WrongAudience_Denied401_WrongAudience()
    {
        var token = await TokenAsync(new OidcTokenRequest { Audience = "https://other.test" });
        var response = await _host.CheckAsync(WithToken(token));
        Assert.Equal("wrong_audience", Reason(response));
    }

    [Fact]
    public async Task UnknownIssuer_Denied401_UntrustedIssuer()
    {
        await using var other = await OidcProviderFixture.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        var token = await other.GetAccessTokenAsync(cancellationToken: TestContext.Current.CancellationToken);
        _tokens.Add(token);
        var response = await _host.CheckAsync(WithToken(token));
        Assert.Equal(401, (int)response.DeniedResponse.Status.Code);
        Assert.Equal("untrusted_issuer", Reason(response));
    }

    [Fact]
    public async Task TamperedSignature_Denied401_InvalidToken()
    {
        var token = await TokenAsync();
        var parts = token.Split('.');
        var sig = Base64UrlEncoder.DecodeBytes(parts[2]);
        sig[10] ^= 0x01;
        var response = await _host.CheckAsync(WithToken(parts[0] + "." + parts[1] + "." + Base64UrlEncoder.Encode(sig)));
        Assert.Equal("invalid_token", Reason(response));
    }

    [Fact]
    public async Task TamperedPayload_Denied401_InvalidToken()
    {
        var token = await TokenAsync(new OidcTokenRequest { Groups = ["viewers"] });
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("viewers", "admins");
        var response = await _host.CheckAsync(WithToken(parts[0] + "." + Base64UrlEncoder.Encode(payload) + "." + parts[2]));
        Assert.Equal("invalid_token", Reason(response));
    }

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("nOnE")]
    public async Task AlgNone_Denied401_InvalidToken(string alg)
    {
        var token = await TokenAsync();
        var payload = token.Split('.')[1];
        var header = Base64UrlEncoder.Encode($$"""{"alg":"{{alg}}","typ":"at+jwt"}""");
        foreach (var unsigned in new[] { $"{header}.{payload}.", $"{header}.{payload}.{token.Split('.')[2]}" })
        {
            var response = await _host.CheckAsync(WithToken(unsigned));
            Assert.Equal(401, (int)response.DeniedResponse.Status.Code);
            Assert.Equal("invalid_token", Reason(response));
        }
    }

    [Fact]
    public async Task Hs256SignedWithTheRsaPublicKey_Denied401_InvalidToken()
    {
        var token = await TokenAsync();
        var jwks = await idp.GetJwksAsync(TestContext.Current.CancellationToken);
        var rsa = jwks.Keys.First(k => k.Kty == "RSA");
        var payload = token.Split('.')[1];
        foreach (var secret in new[] { Base64UrlEncoder.DecodeBytes(rsa.N), Encoding.UTF8.GetBytes(JsonSerializer.Serialize(rsa)) })
        {
            var header = Base64UrlEncoder.Encode($$"""{"alg":"HS256","typ":"at+jwt","kid":"{{rsa.Kid}}"}""");
            var signingInput = header + "." + payload;
            var mac = System.Security.Cryptography.HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(signingInput));
            var response = await _host.CheckAsync(WithToken(signingInput + "." + Base64UrlEncoder.Encode(mac)));
            Assert.Equal("invalid_token", Reason(response));
        }
    }

    [Fact]
    public async Task ClientSentIdentityHeaders_NeverReachUpstream()
    {
        var token = await TokenAsync(new OidcTokenRequest { ClientId = "reader-client", Scope = "" });
        var spoofed = new Dictionary<string, string>
        {
            ["x-authz-subject"] = "admin",
            ["x-authz-groups"] = "airflow-admins",
            ["x-authz-issuer"] = "https://evil.example.com",
            ["x-airflow-conn-id"] = "prod_db",
            ["x-authz-scopes"] = "admin",
        };
        var response = await _host.CheckAsync(WithToken(token, extra: spoofed));
        Assert.Equal(0, response.Status.Code);
        var downstream = new Dictionary<string, string>(spoofed) { ["authorization"] = "Bearer " + token };
        var upstream = EnvoyHeaderMutation.ApplyOk(downstream, response);
        Assert.Equal(["reader-client"], upstream["x-authz-subject"]);
        Assert.Equal([idp.Issuer], upstream["x-authz-issuer"]);
        Assert.Equal(["viewers"], upstream["x-authz-groups"]);
        Assert.False(upstream.ContainsKey("x-authz-scopes")); // no scope in the token: the client's value is removed
        Assert.False(upstream.ContainsKey("x-airflow-conn-id"));
    }

    [Fact]
    public async Task Metrics_MoveWithTheRightLabels()
    {
        var allowBefore = await _host.MetricAsync("envoy_authz_checks_total{decision=\"allow\",reason=\"allowed\"}") ?? 0;
        var missingBefore = await _host.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"missing_token\"}") ?? 0;
        var token = await TokenAsync();
        await _host.CheckAsync(WithToken(token));
        await _host.CheckAsync(WithToken(token));
        await _host.CheckAsync(WithToken(null));
        await _host.CheckAsync(WithToken("not-a-jwt"));

        Assert.Equal(allowBefore + 2, await _host.MetricAsync("envoy_authz_checks_total{decision=\"allow\",reason=\"allowed\"}"));
        Assert.Equal(missingBefore + 1, await _host.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"missing_token\"}"));
        Assert.True(await _host.MetricAsync("envoy_authz_checks_total{decision=\"deny\",reason=\"invalid_token\"}") >= 1);
        Assert.True(await _host.MetricAsync("envoy_authz_check_duration_seconds_count{decision=\"allow\"}") >= 2);
        Assert.True(await _host.MetricAsync("envoy_authz_check_duration_seconds_bucket{decision=\"allow\",le=\"0.0005\"}") is not null);
        Assert.True(await _host.MetricAsync("envoy_authz_stage_duration_seconds_count{stage=\"identity\"}") >= 4);
        Assert.True(await _host.MetricAsync("envoy_authz_token_validations_total{issuer=\"oidc\",result=\"valid\"}") >= 1);
        Assert.True(await _host.MetricAsync("envoy_authz_token_validations_total{issuer=\"oidc\",result=\"cached\"}") >= 1);
        Assert.True(await _host.MetricAsync("envoy_authz_jwks_refreshes_total{issuer=\"oidc\",result=\"success\"}") >= 1);
        Assert.Equal(0, await _host.MetricAsync("envoy_authz_inflight_checks"));

        // Label values come from configuration and reason codes only: nothing from the requests above.
        var text = await _host.Http.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.DoesNotContain("not-a-jwt", text);
        Assert.DoesNotContain("/api/v1/dags", text);
        Assert.DoesNotContain(token[..20], text);
    }

    [Fact]
    public async Task GrpcHealthService_Serving_AndHttpEndpointsOnTheirListener()
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{_host.GrpcPort}");
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        Assert.Equal(HttpStatusCode.OK, (await _host.Http.GetAsync("/healthz", TestContext.Current.CancellationToken)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _host.Http.GetAsync("/readyz", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task DecisionLog_OneLinePerCheck_NeverTheToken()
    {
        var token = await TokenAsync();
        await _host.CheckAsync(WithToken(token, path: "/api/v1/dags?secret_query=abc"));
        var line = _host.Logs.Lines.Last(l => l.Contains("[1000]"));
        Assert.Contains("decision ", line);
        Assert.Contains("reason=allowed", line);
        Assert.Contains($"subject={OidcProviderFixture.DefaultClientId}", line);
        Assert.Contains("path=/api/v1/dags", line);
        Assert.DoesNotContain("secret_query", line);
        Assert.DoesNotContain(token, line);
    }
}
