using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.IntegrationTests.Security;

/// <summary>
/// A representative subset of the security suite end to end: the real service on loopback, Check
/// through the generated gRPC client, tokens from a real OpenID provider (oidc-provider) and forged
/// from its published JWKS, under the example policy in <c>envoy/policy</c>. Every test plants the
/// secrets it sends; on dispose the service's complete log (<see cref="LogCapture"/>) must contain
/// none of them, and no Error line.
/// </summary>
public sealed class SecurityOverGrpcTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>, IAsyncLifetime
{
    private AuthzServiceHost _host = null!;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<string> _secrets = [];

    public async ValueTask InitializeAsync()
    {
        List<KeyValuePair<string, string?>> settings =
        [
            .. AuthzServiceHost.IssuerSettings(idp),
            new("EnvoyAuthz:Identity:TokenCookie", "access_token"),
            new("EnvoyAuthz:Response:RemoteUserHeader", "x-remote-user"),
            new("EnvoyAuthz:Policy:Path", SecurityPaths.Of("envoy", "policy")),
            // Outcomes, not speed, are under test: on 2 shared cores a Check must not be shed as overloaded.
            new("EnvoyAuthz:Server:CheckTimeout", "00:00:30"),
            new("EnvoyAuthz:Server:QueueTimeout", "00:00:01"),
            new("EnvoyAuthz:Policy:EvaluationTimeout", "00:00:05"),
        ];
        _host = await AuthzServiceHost.StartAsync(settings, s => s.AddSingleton<TimeProvider>(_time));
        await _host.WaitReadyAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
        var lines = _host.Logs.Lines;
        var text = string.Join('\n', lines);
        Assert.True(lines.Count > 0, "the service logged (the capture works)");
        foreach (var secret in _secrets.Where(s => s.Length >= 16).Distinct())
        {
            Assert.False(text.Contains(secret, StringComparison.Ordinal), $"a planted secret was logged: {secret[..16]}…");
        }
        Assert.DoesNotContain(lines, l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal));
    }

    /// <summary>Remembers a credential (and each token segment) that must never be logged.</summary>
    private string Plant(string secret)
    {
        _secrets.Add(secret);
        foreach (var part in secret.Split('.', ' '))
        {
            _secrets.Add(part);
        }
        return secret;
    }

    private async Task<string> TokenAsync(OidcTokenRequest? request = null) =>
        Plant(await idp.GetAccessTokenAsync(request ?? new OidcTokenRequest(), TestContext.Current.CancellationToken));

    private CheckRequest Request(string? authorization, string path = "/api/v1/dags", string method = "GET",
        IReadOnlyDictionary<string, string>? extra = null, string? body = null)
    {
        var headers = new Dictionary<string, string>(extra ?? new Dictionary<string, string>());
        if (authorization is not null)
        {
            headers["authorization"] = Plant(authorization);
        }
        return Requests.Http(method: method, path: path, headers: headers, body: body);
    }

    /// <summary>Asserts the answer is well formed and returns its reason (<c>allowed</c> for an allow).</summary>
    private static string Reason(CheckResponse r)
    {
        if (r.Status.Code == 0)
        {
            Assert.Equal(CheckResponse.HttpResponseOneofCase.OkResponse, r.HttpResponseCase);
            return "allowed";
        }
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, r.HttpResponseCase);
        using var body = JsonDocument.Parse(r.DeniedResponse.Body);
        var reason = body.RootElement.GetProperty("reason").GetString()!;
        Assert.Equal(reason, r.DynamicMetadata.Fields["reason"].StringValue);
        return reason;
    }

    private async Task<string> ReasonAsync(CheckRequest request) => Reason(await _host.CheckAsync(request));

    private static (string Header, string Payload) Decode(string token)
    {
        var p = token.Split('.');
        return (Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(p[0])), Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(p[1])));
    }

    private static string B64(string s) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(s));

    private static string B64(byte[] b) => Base64UrlEncoder.Encode(b);

    private static string Elevated(string payloadJson) =>
        payloadJson.TrimEnd('}') + ",\"sub\":\"admin\",\"groups\":[\"airflow-admins\"]}";

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("NONE")]
    [InlineData("nOnE")]
    public async Task AlgNone_AnyCasing_RealTokenReSigned_DeniedInvalidToken(string alg)
    {
        var (header, payload) = Decode(await TokenAsync());
        var forgedHeader = JsonSerializer.Serialize(JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(header)!
            .Where(kv => kv.Key != "alg").Append(new("alg", JsonSerializer.SerializeToElement(alg))).ToDictionary());
        foreach (var signature in new[] { "", B64("x") })
        {
            var forged = B64(forgedHeader) + "." + B64(Elevated(payload)) + "." + signature;
            Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + forged)));
        }
    }

    [Fact]
    public async Task HmacKeyConfusion_WithTheIdpsPublishedKeys_DeniedInvalidToken()
    {
        var (header, payload) = Decode(await TokenAsync());
        var kid = JsonDocument.Parse(header).RootElement.GetProperty("kid").GetString()!;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var jwksJson = await http.GetStringAsync(idp.JwksUri, TestContext.Current.CancellationToken);
        var jwks = new JsonWebKeySet(jwksJson);
        var jwk = jwks.Keys.Single(k => k.Kid == kid);
        using var rsa = RSA.Create(new RSAParameters { Modulus = Base64UrlEncoder.DecodeBytes(jwk.N), Exponent = Base64UrlEncoder.DecodeBytes(jwk.E) });
        var jwkJson = JsonDocument.Parse(jwksJson).RootElement.GetProperty("keys").EnumerateArray().First(k => k.GetProperty("kid").GetString() == kid).GetRawText();
        byte[][] materials =
        [
            Encoding.UTF8.GetBytes(jwksJson), Encoding.UTF8.GetBytes(jwkJson), Base64UrlEncoder.DecodeBytes(jwk.N), rsa.ExportSubjectPublicKeyInfo(),
            rsa.ExportRSAPublicKey(), Encoding.ASCII.GetBytes(rsa.ExportSubjectPublicKeyInfoPem() + "\n"), Encoding.ASCII.GetBytes(rsa.ExportRSAPublicKeyPem()),
        ];
        foreach (var key in materials)
        {
            var input = B64($$"""{"alg":"HS256","typ":"at+jwt","kid":"{{kid}}"}""") + "." + B64(Elevated(payload));
            var forged = input + "." + B64(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(input)));
            Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + forged)));
        }
    }

    [Fact]
    public async Task AttackerKeyHeadersAndHostileKids_Ignored_DeniedInvalidToken()
    {
        var (header, payload) = Decode(await TokenAsync());
        var realKid = JsonDocument.Parse(header).RootElement.GetProperty("kid").GetString()!;
        using var attacker = RSA.Create(2048);
        var p = attacker.ExportParameters(false);
        var jwk = $$"""{"kty":"RSA","kid":"evil","n":"{{B64(p.Modulus!)}}","e":"{{B64(p.Exponent!)}}"}""";
        string[] extras =
        [
            $"\"kid\":\"{realKid}\",\"jwk\":{jwk}",
            $"\"kid\":\"evil\",\"jku\":\"http://127.0.0.1:1/jwks\"",
            $"\"kid\":\"evil\",\"x5u\":\"http://127.0.0.1:1/cert.pem\"",
            $"\"kid\":\"{realKid}\",\"x5c\":[\"{Convert.ToBase64String(attacker.ExportSubjectPublicKeyInfo())}\"]",
            "\"kid\":\"../../../../etc/passwd\"",
            "\"kid\":\"' OR 1=1 --\"",
            "\"kid\":\"a\\u0000b\"",
            $"\"kid\":\"{new string('k', 8000)}\"",
            $"\"kid\":\"{realKid}\"",
        ];
        foreach (var extra in extras)
        {
            var input = B64("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"," + extra + "}") + "." + B64(Elevated(payload));
            var forged = input + "." + B64(attacker.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
            Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + forged)));
        }
    }

    [Fact]
    public async Task UnknownCritHeader_SignedByTheRealIdp_DeniedInvalidToken()
    {
        // RFC 7515 §4.1.11: an extension listed in crit that the recipient does not understand makes the JWS invalid.
        // (The provider's JOSE library refuses to sign unknown extensions, so this uses RFC 7797's b64, which EnvoyAuthz does not implement.)
        var token = await TokenAsync(new OidcTokenRequest { ExtraHeaderJson = """{"crit":["b64"],"b64":true}""" });
        Assert.Contains("crit", Decode(token).Header, StringComparison.Ordinal);
        Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + token)));
    }

    [Theory]
    [InlineData("trailing-slash")]
    [InlineData("upper-case")]
    [InlineData("https")]
    public async Task IssuerVariant_SignedByTheRealIdp_DeniedUntrustedIssuer(string variant)
    {
        var iss = variant switch
        {
            "trailing-slash" => idp.Issuer + "/",
            "upper-case" => idp.Issuer.ToUpperInvariant(),
            _ => "https" + idp.Issuer[4..],
        };
        var token = await TokenAsync(new OidcTokenRequest { ExtraClaimsJson = JsonSerializer.Serialize(new { iss }) });
        Assert.Equal("untrusted_issuer", await ReasonAsync(Request("Bearer " + token)));
    }

    [Theory]
    [InlineData("""{"aud":["https://other.test","https://x.test"]}""")]
    [InlineData("""{"aud":[]}""")]
    [InlineData("""{"aud":["https://authz.test/"]}""")]
    [InlineData("""{"aud":"HTTPS://AUTHZ.TEST"}""")]
    public async Task AudienceWithoutOurs_SignedByTheRealIdp_DeniedWrongAudience(string claims)
    {
        var token = await TokenAsync(new OidcTokenRequest { ExtraClaimsJson = claims });
        Assert.Equal("wrong_audience", await ReasonAsync(Request("Bearer " + token)));
    }

    [Fact]
    public async Task LifetimeBeyondSkew_Denied()
    {
        var nbf = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds();
        var future = await TokenAsync(new OidcTokenRequest { LifetimeSeconds = 7200, ExtraClaimsJson = $$"""{"nbf":{{nbf}}}""" });
        Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + future)));

        var shortLived = await TokenAsync(new OidcTokenRequest { LifetimeSeconds = 60 });
        Assert.Equal("allowed", await ReasonAsync(Request("Bearer " + shortLived)));
        _time.Advance(TimeSpan.FromSeconds(60 + 31));
        Assert.Equal("expired_token", await ReasonAsync(Request("Bearer " + shortLived)));
    }

    [Theory]
    [InlineData("Bearer\t{T}")]
    [InlineData("Bearer {T} {T}")]
    [InlineData("Basic {T}")]
    [InlineData("Bearer {T}==")]
    [InlineData("Bearer {T}.{T}")]
    [InlineData("Bearer ")]
    public async Task MalformedCredentials_DeniedInvalidToken(string form)
    {
        var token = await TokenAsync();
        Assert.Equal("invalid_token", await ReasonAsync(Request(form.Replace("{T}", token, StringComparison.Ordinal))));
    }

    [Fact]
    public async Task OversizedTokenAndHeaders_DeniedOrParsed_NeverAnError()
    {
        Assert.Equal("invalid_token", await ReasonAsync(Request("Bearer " + new string('a', 20_000))));
        var token = await TokenAsync();
        var big = new Dictionary<string, string> { ["x-big"] = new string('v', 512 * 1024) };
        Assert.Equal("allowed", await ReasonAsync(Request("Bearer " + token, extra: big)));
        Assert.Equal("missing_token", await ReasonAsync(Request(null, extra: big)));
    }

    [Fact]
    public async Task SpoofedIdentityHeaders_NeverReachUpstream()
    {
        var token = await TokenAsync();
        var spoofed = new Dictionary<string, string>
        {
            ["x-authz-subject"] = "admin", ["x-authz-groups"] = "airflow-admins", ["x-authz-scopes"] = "admin", ["x-authz-issuer"] = "https://evil",
            ["x-authz-decision-id"] = "forged", ["x-airflow-conn-id"] = "prod_postgres", ["x-remote-user"] = "admin",
        };
        foreach (var (authorization, path) in new[] { ("Bearer " + token, "/api/v1/dags"), ((string?)null, "/healthz") })
        {
            var request = Request(authorization, path: path, extra: spoofed);
            var response = await _host.CheckAsync(request);
            Assert.Equal("allowed", Reason(response));
            var upstream = EnvoyHeaderMutation.ApplyOk(request.Attributes.Request.Http.Headers.ToDictionary(h => h.Key, h => h.Value), response);
            foreach (var (name, value) in spoofed)
            {
                Assert.False(upstream.TryGetValue(name, out var got) && got.Contains(value), $"{name}: {value} reached upstream");
            }
            Assert.False(upstream.ContainsKey("x-airflow-conn-id"));
            if (authorization is null)
            {
                Assert.False(upstream.ContainsKey("x-authz-subject"));
                Assert.False(upstream.ContainsKey("x-remote-user"));
            }
            else
            {
                Assert.Equal(OidcProviderFixture.DefaultClientId, Assert.Single(upstream["x-authz-subject"]));
            }
        }
    }

    [Theory]
    [InlineData("/%zz", "bad_request")]
    [InlineData("/a%", "bad_request")]
    [InlineData("//admin", "policy_denied")]
    [InlineData("/%61dmin/users", "policy_denied")]
    [InlineData("/%2Fadmin", "bad_request")]
    [InlineData("/x/../admin/users", "bad_request")]
    [InlineData("/%2e%2e/admin/users", "bad_request")]
    [InlineData("/admin;x/users", "bad_request")]
    [InlineData("/admin%00/users", "bad_request")]
    [InlineData("\\admin\\users", "bad_request")]
    [InlineData("/ADMIN/users", "policy_denied")]
    public async Task HostilePath_ReaderToken_ExamplePolicy_DeniedWithReason(string path, string reason)
    {
        var token = await TokenAsync();
        Assert.Equal(reason, await ReasonAsync(Request("Bearer " + token, path: path)));
    }

    [Theory]
    [InlineData("/healthz%2F..%2Fadmin")]
    [InlineData("/healthz;/admin")]
    [InlineData("/healthz%00")]
    [InlineData("/admin/healthz")]
    public async Task NotQuiteThePublicPath_NoToken_Denied(string path)
    {
        Assert.NotEqual("allowed", await ReasonAsync(Request(null, path: path)));
    }

    [Theory]
    [InlineData("malformed")]
    [InlineData("deep-10000")]
    [InlineData("invalid-utf8")]
    public async Task HostileJsonBody_DeniedBadRequest(string variant)
    {
        var token = await TokenAsync(new OidcTokenRequest { Groups = ["writers"] });
        var request = Request("Bearer " + token, path: "/api/v1/dags/etl/dagRuns", method: "POST",
            extra: new Dictionary<string, string> { ["content-type"] = "application/json" });
        var http = request.Attributes.Request.Http;
        http.RawBody = variant switch
        {
            "malformed" => ByteString.CopyFromUtf8("{\"conf\":"),
            "deep-10000" => ByteString.CopyFromUtf8(new string('[', 10_000) + new string(']', 10_000)),
            _ => ByteString.CopyFrom([.. "{\"conf\":\""u8.ToArray(), 0xff, 0xc0, 0xaf, .. "\"}"u8.ToArray()]),
        };
        Assert.Equal("bad_request", await ReasonAsync(request));
    }

    /// <summary>
    /// With <c>Server:FailureMode=error</c> an internal fault becomes a gRPC error and Envoy's
    /// <c>failure_mode_allow</c> decides; when that is true the request goes through. So an
    /// unauthenticated client must not be able to cause an internal fault with request content.
    /// </summary>
    [Theory]
    [InlineData("invalid-utf8-json")]
    [InlineData("lone-surrogate-json")]
    public async Task HostileBodyWithoutToken_FailureModeError_AnsweredAsDeny_NotAGrpcError(string variant)
    {
        List<KeyValuePair<string, string?>> settings =
        [
            .. AuthzServiceHost.IssuerSettings(idp),
            new("EnvoyAuthz:Policy:Path", SecurityPaths.Of("envoy", "policy")),
            new("EnvoyAuthz:Server:FailureMode", "error"),
            new("EnvoyAuthz:Server:CheckTimeout", "00:00:30"),
        ];
        await using var host = await AuthzServiceHost.StartAsync(settings);
        await host.WaitReadyAsync();
        var request = Request(null, path: "/api/v1/dags/etl/dagRuns", method: "POST", extra: new Dictionary<string, string> { ["content-type"] = "application/json" });
        request.Attributes.Request.Http.RawBody = variant == "invalid-utf8-json"
            ? ByteString.CopyFrom([.. "{\"conf\":\""u8.ToArray(), 0xff, 0xc0, 0xaf, .. "\"}"u8.ToArray()])
            : ByteString.CopyFromUtf8("{\"conf\":\"\\ud800\"}");

        CheckResponse? response = null;
        var error = await Record.ExceptionAsync(async () => response = await host.CheckAsync(request));

        Assert.True(error is null, $"the Check failed with {error?.GetType().Name} {(error as global::Grpc.Core.RpcException)?.StatusCode}: Envoy with failure_mode_allow: true would let this unauthenticated request through");
        Assert.NotEqual("allowed", Reason(response!));
    }

    [Fact]
    public async Task SecretsInEveryPlace_AcrossAllowsAndDenies_NeverLogged()
    {
        var token = await TokenAsync(new OidcTokenRequest { Groups = ["writers"] });
        var password = Plant("pw-" + Guid.NewGuid().ToString("N"));
        var cookie = Plant("sess-" + Guid.NewGuid().ToString("N"));
        var apiKey = Plant("key-" + Guid.NewGuid().ToString("N"));
        var secretHeaders = new Dictionary<string, string>
        {
            ["cookie"] = $"access_token={token}; session={cookie}",
            ["x-api-key"] = apiKey,
            ["x-airflow-password"] = password,
            ["proxy-authorization"] = Plant("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("proxy:" + password))),
            ["content-type"] = "application/json",
        };
        foreach (var authorization in new[] { "Bearer " + token, "Bearer " + token + "x", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + password)), null })
        {
            foreach (var path in new[] { "/api/v1/connections", "/%zz", "/healthz" })
            {
                var response = await _host.CheckAsync(Request(authorization, path: path, method: "POST", extra: secretHeaders,
                    body: $$"""{"connection_id":"db","password":"{{password}}"}"""));
                Reason(response);
            }
        }
        var text = _host.Logs.Text;
        Assert.Contains("reason=", text, StringComparison.Ordinal);
        foreach (var secret in _secrets.Where(s => s.Length >= 16))
        {
            Assert.False(text.Contains(secret, StringComparison.Ordinal), $"logged: {secret[..16]}…");
        }
    }
}

/// <summary>Paths in the repository checkout, found from the test binaries.</summary>
internal static class SecurityPaths
{
    public static string Of(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln")))
            {
                return Path.Combine([dir.FullName, .. parts]);
            }
        }
        throw new InvalidOperationException("EnvoyAuthz.sln not found above " + AppContext.BaseDirectory);
    }
}
