using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>
/// Dev mode's signing key: an ES256 key generated at start, written (owner-only) to a file so
/// <c>envoy-authz token</c> can mint tokens the running dev service trusts. Never used outside dev mode.
/// </summary>
public static class DevSigningKey
{
    /// <summary>The default key file.</summary>
    public static string DefaultPath => Path.Combine(Path.GetTempPath(), "envoy-authz-dev", "signing-key.json");

    /// <summary>Generates a key, writes it to <paramref name="path"/>, returns the public key.</summary>
    public static SecurityKey Generate(string path, string issuer, string audience)
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var p = ecdsa.ExportParameters(includePrivateParameters: true);
        var kid = "dev-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var file = new DevKeyFile(kid, issuer, audience,
            Base64UrlEncoder.Encode(p.Q.X!), Base64UrlEncoder.Encode(p.Q.Y!), Base64UrlEncoder.Encode(p.D!));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(file));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.Move(tmp, path, overwrite: true);
        var pub = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = p.Q });
        return new ECDsaSecurityKey(pub) { KeyId = kid };
    }

    /// <summary>Mints a token with the key in <paramref name="path"/>.</summary>
    public static string Mint(string path, string subject, IReadOnlyList<string> groups, IReadOnlyList<string> scopes,
        TimeSpan lifetime, string? clientId = null, IReadOnlyDictionary<string, object>? extraClaims = null)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no dev signing key at {path}: start the service with `make run` (dev mode) first", path);
        }
        var file = JsonSerializer.Deserialize<DevKeyFile>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is not a dev key file");
        var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = Base64UrlEncoder.DecodeBytes(file.X), Y = Base64UrlEncoder.DecodeBytes(file.Y) },
            D = Base64UrlEncoder.DecodeBytes(file.D),
        });
        var key = new ECDsaSecurityKey(ecdsa) { KeyId = file.Kid };
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object>
        {
            ["sub"] = subject,
            ["groups"] = groups.ToArray(),
            ["scope"] = string.Join(' ', scopes),
            ["client_id"] = clientId ?? "dev-cli",
        };
        if (extraClaims is not null)
        {
            foreach (var (k, v) in extraClaims)
            {
                claims[k] = v;
            }
        }
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = file.Issuer,
            Audience = file.Audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            Claims = claims,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
        });
    }

    private sealed record DevKeyFile(string Kid, string Issuer, string Audience, string X, string Y, string D);
}
