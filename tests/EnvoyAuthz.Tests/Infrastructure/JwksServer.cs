using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>
/// A minimal issuer on 127.0.0.1 for unit tests of key handling: a real HTTP server serving an
/// OIDC discovery document and a JWKS of keys generated in the test, counting fetches, able to
/// rotate keys and to fail. (Integration tests use a full OpenID provider.)
/// </summary>
internal sealed class JwksServer : IAsyncDisposable
{
    private WebApplication _app = null!;
    private readonly object _gate = new();
    private List<(SecurityKey Public, SigningCredentials Signing)> _keys = [];
    private int _jwksFetches;

    private JwksServer()
    {
    }

    public string Issuer { get; private set; } = "";
    public int JwksFetches => Volatile.Read(ref _jwksFetches);
    public bool Failing { get; set; }
    public SigningCredentials Current => _keys[^1].Signing;

    public static async Task<JwksServer> StartAsync()
    {
        var server = new JwksServer();
        (server._app, server.Issuer) = await LoopbackServer.StartAsync(app =>
        {
        app.MapGet("/.well-known/openid-configuration", () => server.Failing
            ? Results.StatusCode(503)
            : Results.Json(new Dictionary<string, string> { ["issuer"] = server.Issuer, ["jwks_uri"] = server.Issuer + "/jwks" }));
        app.MapGet("/jwks", () =>
        {
            Interlocked.Increment(ref server._jwksFetches);
            if (server.Failing)
            {
                return Results.StatusCode(503);
            }
            lock (server._gate)
            {
                var keys = server._keys.Select(k => JsonWebKeyConverter.ConvertFromSecurityKey(k.Public)).Select(j => new Dictionary<string, object?>
                {
                    ["kty"] = j.Kty, ["kid"] = j.Kid, ["use"] = "sig", ["n"] = j.N, ["e"] = j.E, ["crv"] = j.Crv, ["x"] = j.X, ["y"] = j.Y,
                }.Where(p => p.Value is not null).ToDictionary());
                return Results.Json(new { keys });
            }
        });
        });
        server.AddKey();
        return server;
    }

    /// <summary>Adds a new RSA key (new kid) and makes it the one <see cref="Mint"/> uses.</summary>
    public SigningCredentials AddKey(bool dropOld = false)
    {
        var rsa = RSA.Create(2048);
        var kid = "k" + Guid.NewGuid().ToString("N")[..8];
        var priv = new RsaSecurityKey(rsa) { KeyId = kid };
        var pub = new RsaSecurityKey(rsa.ExportParameters(false)) { KeyId = kid };
        var creds = new SigningCredentials(priv, SecurityAlgorithms.RsaSha256);
        lock (_gate)
        {
            _keys = dropOld ? [(pub, creds)] : [.. _keys, (pub, creds)];
        }
        return creds;
    }

    public static SigningCredentials DetachedKey()
    {
        var rsa = RSA.Create(2048);
        return new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = "detached" }, SecurityAlgorithms.RsaSha256);
    }

    public string Mint(DateTimeOffset now, Action<Dictionary<string, object>>? claims = null, string? audience = "api://authz",
        SigningCredentials? signing = null, TimeSpan? lifetime = null, string? issuer = null, string? typ = null, DateTimeOffset? notBefore = null)
    {
        var c = new Dictionary<string, object> { ["sub"] = "alice" };
        claims?.Invoke(c);
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer ?? Issuer,
            Audience = audience,
            IssuedAt = now.UtcDateTime,
            NotBefore = (notBefore ?? now).UtcDateTime,
            Expires = (now + (lifetime ?? TimeSpan.FromMinutes(10))).UtcDateTime,
            Claims = c,
            SigningCredentials = signing ?? Current,
            TokenType = typ,
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
