using System.Numerics;
using System.Security.Cryptography;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>Ed25519 signatures (RFC 8032) for EdDSA JWTs; the BCL has no Ed25519. Not constant-time: verification only handles public data, signing is for tests/tooling.</summary>
internal static class Ed25519
{
    private static readonly BigInteger P = BigInteger.Pow(2, 255) - 19;
    private static readonly BigInteger L = BigInteger.Pow(2, 252) + BigInteger.Parse("27742317777372353535851937790883648493", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly BigInteger D = Mod(-121665 * Inv(121666));
    private static readonly BigInteger I = BigInteger.ModPow(2, (P - 1) / 4, P);
    private static readonly (BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) B = BasePoint();

    private static BigInteger Mod(BigInteger a)
    {
        var r = BigInteger.Remainder(a, P);
        return r.Sign < 0 ? r + P : r;
    }

    private static BigInteger Inv(BigInteger a) => BigInteger.ModPow(Mod(a), P - 2, P);

    private static (BigInteger, BigInteger, BigInteger, BigInteger) BasePoint()
    {
        var y = Mod(4 * Inv(5));
        var x = RecoverX(y, 0) ?? throw new InvalidOperationException();
        return (x, y, 1, Mod(x * y));
    }

    private static BigInteger? RecoverX(BigInteger y, int sign)
    {
        if (y >= P) return null;
        var x2 = Mod((y * y - 1) * Inv(D * y * y + 1));
        if (x2.IsZero) return sign == 0 ? BigInteger.Zero : null;
        var x = BigInteger.ModPow(x2, (P + 3) / 8, P);
        if (!Mod(x * x - x2).IsZero) x = Mod(x * I);
        if (!Mod(x * x - x2).IsZero) return null;
        if ((int)(x & 1) != sign) x = P - x;
        return x;
    }

    private static (BigInteger, BigInteger, BigInteger, BigInteger) Add((BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) p, (BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) q)
    {
        var a = Mod((p.Y - p.X) * (q.Y - q.X));
        var b = Mod((p.Y + p.X) * (q.Y + q.X));
        var c = Mod(2 * p.T * q.T * D);
        var d = Mod(2 * p.Z * q.Z);
        var e = b - a;
        var f = d - c;
        var g = d + c;
        var h = b + a;
        return (Mod(e * f), Mod(g * h), Mod(f * g), Mod(e * h));
    }

    private static (BigInteger, BigInteger, BigInteger, BigInteger) Mul(BigInteger s, (BigInteger, BigInteger, BigInteger, BigInteger) p)
    {
        (BigInteger, BigInteger, BigInteger, BigInteger) q = (0, 1, 1, 0);
        while (s > 0)
        {
            if (!s.IsEven) q = Add(q, p);
            p = Add(p, p);
            s >>= 1;
        }
        return q;
    }

    private static bool Equal((BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) p, (BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) q) =>
        Mod(p.X * q.Z - q.X * p.Z).IsZero && Mod(p.Y * q.Z - q.Y * p.Z).IsZero;

    private static byte[] Encode((BigInteger X, BigInteger Y, BigInteger Z, BigInteger T) p)
    {
        var zi = Inv(p.Z);
        var x = Mod(p.X * zi);
        var y = Mod(p.Y * zi);
        var bytes = new byte[32];
        y.TryWriteBytes(bytes, out _, isUnsigned: true, isBigEndian: false);
        if (!x.IsEven) bytes[31] |= 0x80;
        return bytes;
    }

    private static (BigInteger, BigInteger, BigInteger, BigInteger)? Decode(ReadOnlySpan<byte> s)
    {
        if (s.Length != 32) return null;
        var buf = s.ToArray();
        int sign = buf[31] >> 7;
        buf[31] &= 0x7f;
        var y = new BigInteger(buf, isUnsigned: true, isBigEndian: false);
        var x = RecoverX(y, sign);
        if (x is null) return null;
        return (x.Value, y, 1, Mod(x.Value * y));
    }

    private static BigInteger HashInt(params byte[][] parts)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        foreach (var p in parts) sha.AppendData(p);
        return new BigInteger(sha.GetHashAndReset(), isUnsigned: true, isBigEndian: false);
    }

    public static bool Verify(byte[] publicKey, byte[] message, byte[] signature)
    {
        if (publicKey.Length != 32 || signature.Length != 64) return false;
        var a = Decode(publicKey);
        var r = Decode(signature.AsSpan(0, 32));
        if (a is null || r is null) return false;
        var s = new BigInteger(signature.AsSpan(32, 32), isUnsigned: true, isBigEndian: false);
        if (s >= L) return false;
        var k = HashInt(signature[..32], publicKey, message) % L;
        return Equal(Mul(s, B), Add(r.Value, Mul(k, a.Value)));
    }

    public static byte[] Sign(byte[] seed, byte[] message)
    {
        var h = SHA512.HashData(seed);
        var scalarBytes = h[..32];
        scalarBytes[0] &= 248;
        scalarBytes[31] &= 127;
        scalarBytes[31] |= 64;
        var a = new BigInteger(scalarBytes, isUnsigned: true, isBigEndian: false);
        var pub = Encode(Mul(a, B));
        var r = HashInt(h[32..], message) % L;
        var rEnc = Encode(Mul(r, B));
        var k = HashInt(rEnc, pub, message) % L;
        var s = (r + k * a) % L;
        var sig = new byte[64];
        rEnc.CopyTo(sig, 0);
        s.TryWriteBytes(sig.AsSpan(32), out _, isUnsigned: true, isBigEndian: false);
        return sig;
    }

    /// <summary>Raw 32-byte public key from a PEM SubjectPublicKeyInfo with the Ed25519 OID.</summary>
    public static byte[]? FromPem(string pem)
    {
        var lines = pem.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal));
        byte[] der;
        try { der = Convert.FromBase64String(string.Concat(lines)); }
        catch (FormatException) { return null; }
        // 30 2a 30 05 06 03 2b 65 70 03 21 00 <32 bytes>
        byte[] prefix = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        if (der.Length != 44 || !der.AsSpan(0, 12).SequenceEqual(prefix)) return null;
        return der[12..];
    }
}
