using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>RSA signing keys generated in the test, their JWKS, and tokens signed with them (no key material is checked in).</summary>
internal sealed class TestKeys
{
    private readonly List<(RsaSecurityKey Public, SigningCredentials Signing)> _keys = [];

    public TestKeys(int count = 1)
    {
        for (var i = 0; i < count; i++)
        {
            Add();
        }
    }

    /// <summary>The credentials of key <paramref name="index"/>.</summary>
    public SigningCredentials this[int index] => _keys[index].Signing;

    /// <summary>Adds a key with a new kid; returns its index.</summary>
    public int Add()
    {
        var rsa = RSA.Create(2048);
        var kid = "k" + Guid.NewGuid().ToString("N")[..10];
        _keys.Add((new RsaSecurityKey(rsa.ExportParameters(false)) { KeyId = kid },
            new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = kid }, SecurityAlgorithms.RsaSha256)));
        return _keys.Count - 1;
    }

    /// <summary>The JWKS of the keys at <paramref name="indexes"/> (all when none given), optionally padded with an unused member to a size.</summary>
    public string Jwks(int padToBytes = 0, params int[] indexes)
    {
        var keys = (indexes.Length == 0 ? _keys : indexes.Select(i => _keys[i])).Select(k =>
        {
            var j = JsonWebKeyConverter.ConvertFromRSASecurityKey(k.Public);
            return new Dictionary<string, string> { ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = j.Kid, ["n"] = j.N, ["e"] = j.E };
        }).ToList();
        var doc = new Dictionary<string, object> { ["keys"] = keys };
        var json = JsonSerializer.Serialize(doc);
        if (padToBytes > json.Length)
        {
            doc["padding"] = new string('x', padToBytes - json.Length);
            json = JsonSerializer.Serialize(doc);
        }
        return json;
    }

    /// <summary>A token of <paramref name="issuer"/> for <c>api://authz</c>, valid for 10 minutes from <paramref name="now"/>.</summary>
    public string Mint(string issuer, DateTimeOffset now, int key = 0, string subject = "alice") =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = "api://authz",
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = now.AddMinutes(10).UtcDateTime,
            Claims = new Dictionary<string, object> { ["sub"] = subject, ["jti"] = Guid.NewGuid().ToString("N") },
            SigningCredentials = _keys[key].Signing,
        });
}
