using System.Security.Cryptography;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>crypto.md5/sha1/sha256 and crypto.hmac.*.</summary>
internal static class Crypto
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        Hash(r, "crypto.md5", MD5.HashData);
        Hash(r, "crypto.sha1", SHA1.HashData);
        Hash(r, "crypto.sha256", SHA256.HashData);
        Hmac(r, "crypto.hmac.md5", HMACMD5.HashData);
        Hmac(r, "crypto.hmac.sha1", HMACSHA1.HashData);
        Hmac(r, "crypto.hmac.sha256", HMACSHA256.HashData);
        Hmac(r, "crypto.hmac.sha512", HMACSHA512.HashData);
        BuiltinRegistry.Add(r, "crypto.hmac.equal", 2, (_, a) =>
        {
            var x = Encoding.UTF8.GetBytes(Arg.Str("crypto.hmac.equal", a, 0));
            var y = Encoding.UTF8.GetBytes(Arg.Str("crypto.hmac.equal", a, 1));
            return Arg.B(CryptographicOperations.FixedTimeEquals(x, y));
        });
    }

    private static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();

    private static void Hash(Dictionary<string, BuiltinDef> r, string name, Func<byte[], byte[]> f) =>
        BuiltinRegistry.Add(r, name, 1, (_, a) => Arg.S(Hex(f(Encoding.UTF8.GetBytes(Arg.Str(name, a, 0))))));

    private static void Hmac(Dictionary<string, BuiltinDef> r, string name, Func<byte[], byte[], byte[]> f) =>
        BuiltinRegistry.Add(r, name, 2, (_, a) =>
        {
            var msg = Encoding.UTF8.GetBytes(Arg.Str(name, a, 0));
            var key = Encoding.UTF8.GetBytes(Arg.Str(name, a, 1));
            return Arg.S(Hex(f(key, msg)));
        });
}
