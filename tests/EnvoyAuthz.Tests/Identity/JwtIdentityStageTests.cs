using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Identity;

public sealed class JwtIdentityStageTests : IAsyncLifetime
{
    private JwksServer _idp = null!;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    private readonly AuthzMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());

    public async ValueTask InitializeAsync() => _idp = await JwksServer.StartAsync();

    public async ValueTask DisposeAsync() => await _idp.DisposeAsync();

    private JwtIdentityStage Stage(Action<AuthzOptions>? configure = null, int cacheSize = 100)
    {
        var options = new AuthzOptions();
        options.Identity.Issuers.Add(new IssuerOptions
        {
            Name = "corp",
            Issuer = _idp.Issuer,
            Audiences = ["api://authz"],
            RequireHttpsMetadata = false,
        });
        configure?.Invoke(options);
        var services = new ServiceCollection().AddHttpClient().BuildServiceProvider();
        var registry = new IssuerRegistry(options, services.GetRequiredService<IHttpClientFactory>(), _time, _metrics, NullLoggerFactory.Instance, null);
        var cache = new ValidatedTokenCache(cacheSize, options.Identity.CacheMaxLifetime, _time, _metrics);
        return new JwtIdentityStage(options, registry, cache, _time, _metrics, NullLogger<JwtIdentityStage>.Instance);
    }

    private static AuthzRequest WithHeaders(params (string, string)[] headers) =>
        Requests.Parsed(Requests.Http(headers: headers.ToDictionary(h => h.Item1, h => h.Item2)));

    private static AuthzRequest Bearer(string token) => WithHeaders(("authorization", "Bearer " + token));

    private double Counter(string result) => _metrics.TokenValidations.WithLabels("corp", result).Value;

    [Fact]
    public async Task ValidToken_MapsIdentity()
    {
        var token = _idp.Mint(_time.GetUtcNow(), c =>
        {
            c["groups"] = new[] { "admins", "viewers" };
            c["realm_access"] = new Dictionary<string, object> { ["roles"] = new[] { "operator" } };
            c["scope"] = "read write";
            c["azp"] = "ci-pipeline";
            c["act"] = new Dictionary<string, object> { ["sub"] = "agent-7" };
        });
        var result = await Stage().AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Valid, result.Status);
        var id = result.Identity!;
        Assert.Equal("alice", id.Subject);
        Assert.Equal(["admins", "viewers"], id.Groups);
        Assert.Equal(["operator"], id.Roles);
        Assert.Equal(["read", "write"], id.Scopes);
        Assert.Equal("ci-pipeline", id.ClientId);
        Assert.Equal(["api://authz"], id.Audience);
        Assert.Equal(RegoJson.Parse("""{"sub":"agent-7"}"""), id.Actor);
        Assert.Equal(RegoValue.From("alice"), id.InputValue["subject"]);
        Assert.Equal(1, Counter("valid"));
    }

    [Fact]
    public async Task MissingToken_IsMissing()
    {
        var result = await Stage().AuthenticateAsync(WithHeaders(), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Missing, result.Status);
    }

    [Theory]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer")]
    [InlineData("Bearer a b")]
    public async Task NonBearerCredentials_AreInvalid(string header)
    {
        var result = await Stage().AuthenticateAsync(WithHeaders(("authorization", header)), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(ReasonCode.InvalidToken, result.Reason);
    }

    [Fact]
    public async Task Expired_BeyondSkew_IsExpired_WithinSkew_IsValid()
    {
        var stage = Stage();
        var token = _idp.Mint(_time.GetUtcNow(), lifetime: TimeSpan.FromMinutes(1));
        _time.Advance(TimeSpan.FromSeconds(80)); // 20 s past exp, inside the 30 s skew
        Assert.Equal(IdentityStatus.Valid, (await Stage(cacheSize: 0).AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken)).Status);
        _time.Advance(TimeSpan.FromSeconds(15)); // 35 s past exp
        var result = await stage.AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.ExpiredToken, result.Reason);
    }

    [Fact]
    public async Task NotYetValid_BeyondSkew_IsInvalid()
    {
        var now = _time.GetUtcNow();
        var token = _idp.Mint(now, notBefore: now.AddMinutes(5), lifetime: TimeSpan.FromMinutes(10));
        var result = await Stage().AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.InvalidToken, result.Reason);
        Assert.Equal("the token is not valid yet", result.Detail);
    }

    [Fact]
    public async Task WrongAudience_IsWrongAudience()
    {
        var token = _idp.Mint(_time.GetUtcNow(), audience: "api://other");
        Assert.Equal(ReasonCode.WrongAudience, (await Stage().AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken)).Reason);
    }

    [Fact]
    public async Task UnknownIssuer_IsUntrusted()
    {
        var token = _idp.Mint(_time.GetUtcNow(), issuer: "https://evil.example.com");
        Assert.Equal(ReasonCode.UntrustedIssuer, (await Stage().AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken)).Reason);
    }

    [Fact]
    public async Task TamperedPayload_IsInvalid()
    {
        var token = _idp.Mint(_time.GetUtcNow());
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("alice", "admin");
        var forged = parts[0] + "." + Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(payload)) + "." + parts[2];
        var result = await Stage().AuthenticateAsync(Bearer(forged), TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.InvalidToken, result.Reason);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("NONE")]
    public async Task AlgNone_IsInvalid(string alg)
    {
        var header = Base64UrlEncoder.Encode($$"""{"alg":"{{alg}}","typ":"JWT"}""");
        var exp = _time.GetUtcNow().AddMinutes(5).ToUnixTimeSeconds();
        var payload = Base64UrlEncoder.Encode($$"""{"iss":"{{_idp.Issuer}}","aud":"api://authz","sub":"admin","exp":{{exp}}}""");
        var result = await Stage().AuthenticateAsync(Bearer(header + "." + payload + "."), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(ReasonCode.InvalidToken, result.Reason);
    }

    [Fact]
    public async Task Hs256SignedWithTheRsaPublicKey_IsInvalid()
    {
        var jwks = await new HttpClient().GetStringAsync(_idp.Issuer + "/jwks", TestContext.Current.CancellationToken);
        var publicKeyBytes = Encoding.UTF8.GetBytes(jwks); // every byte an attacker can see
        var modulus = Base64UrlEncoder.DecodeBytes(new JsonWebKeySet(jwks).Keys[0].N);
        foreach (var secret in new[] { publicKeyBytes, modulus })
        {
            var hmac = new SigningCredentials(new SymmetricSecurityKey(secret) { KeyId = ((RsaSecurityKey)_idp.Current.Key).KeyId }, SecurityAlgorithms.HmacSha256);
            var token = _idp.Mint(_time.GetUtcNow(), signing: hmac);
            var result = await Stage().AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken);
            Assert.Equal(ReasonCode.InvalidToken, result.Reason);
        }
    }

    [Fact]
    public async Task RequiredType_Enforced()
    {
        var stage = Stage(o => o.Identity.Issuers[0].RequiredType = "at+jwt");
        Assert.Equal(ReasonCode.InvalidToken, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow(), typ: "JWT")), TestContext.Current.CancellationToken)).Reason);
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow(), typ: "at+jwt")), TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task OversizedToken_IsInvalidWithoutParsing()
    {
        var result = await Stage().AuthenticateAsync(Bearer(new string('a', 20_000)), TestContext.Current.CancellationToken);
        Assert.Equal("the token is too large", result.Detail);
    }

    [Fact]
    public async Task TokenFromCookie_WhenConfigured()
    {
        var token = _idp.Mint(_time.GetUtcNow());
        var stage = Stage(o => o.Identity.TokenCookie = "access_token");
        var result = await stage.AuthenticateAsync(WithHeaders(("cookie", $"theme=dark; access_token={token}")), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Valid, result.Status);
    }

    [Fact]
    public async Task RotatedKey_ValidatesAfterOneRefetch_AndRefetchIsRateLimited()
    {
        var stage = Stage();
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken)).Status);
        var fetches = _idp.JwksFetches;

        _idp.AddKey(dropOld: true);
        var rotated = _idp.Mint(_time.GetUtcNow());
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(rotated), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(fetches + 1, _idp.JwksFetches);

        // A token with a kid the IdP never published: one refetch per interval at most.
        var stranger = JwksServer.DetachedKey();
        for (var i = 0; i < 5; i++)
        {
            var r = await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow(), signing: stranger, claims: c => c["n"] = i)), TestContext.Current.CancellationToken);
            Assert.Equal(ReasonCode.InvalidToken, r.Reason);
        }
        Assert.Equal(fetches + 1, _idp.JwksFetches);
        _time.Advance(TimeSpan.FromSeconds(31));
        await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow(), signing: stranger)), TestContext.Current.CancellationToken);
        Assert.Equal(fetches + 2, _idp.JwksFetches);
    }

    [Fact]
    public async Task UnknownKid_WhileIdpDown_IsDependencyUnavailable_CachedKeysKeepWorking()
    {
        var stage = Stage();
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken)).Status);
        _idp.Failing = true;
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow(), claims: c => c["x"] = 1)), TestContext.Current.CancellationToken)).Status);
        _idp.AddKey();
        var result = await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Unavailable, result.Status);
        Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason);
    }

    [Fact]
    public async Task CachedKeysOlderThanTheirMaxAge_WhileIdpDown_AreNotTrusted_ThenRecover()
    {
        var stage = Stage(cacheSize: 0);
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken)).Status);
        _idp.Failing = true;
        _time.Advance(TimeSpan.FromHours(13)); // past the automatic refresh: stale keys still serve
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken)).Status);
        _time.Advance(TimeSpan.FromHours(12)); // 25 h: beyond JwksMaxAge (24 h)
        var result = await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Unavailable, result.Status);
        Assert.Equal(ReasonCode.DependencyUnavailable, result.Reason);
        _idp.Failing = false;
        _time.Advance(TimeSpan.FromSeconds(5)); // past the backoff after the failed fetches (1 s, then 2 s)
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task IdpDownAtStart_IsDependencyUnavailable()
    {
        _idp.Failing = true;
        var result = await Stage().AuthenticateAsync(Bearer(_idp.Mint(_time.GetUtcNow())), TestContext.Current.CancellationToken);
        Assert.Equal(IdentityStatus.Unavailable, result.Status);
    }

    [Fact]
    public async Task Cache_ServesRepeatsUntilTheTokenExpires()
    {
        var stage = Stage();
        var token = _idp.Mint(_time.GetUtcNow(), lifetime: TimeSpan.FromMinutes(2));
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(IdentityStatus.Valid, (await stage.AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken)).Status);
        Assert.Equal(1, Counter("cached"));
        _time.Advance(TimeSpan.FromMinutes(3));
        var result = await stage.AuthenticateAsync(Bearer(token), TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.ExpiredToken, result.Reason);
        Assert.Equal(1, Counter("cached"));
    }

    [Fact]
    public void CacheKey_IsAHashNotTheToken()
    {
        var key = ValidatedTokenCache.KeyOf("header.payload.signature");
        Assert.Equal(64, key.Length);
        Assert.DoesNotContain("payload", key);
    }
}
