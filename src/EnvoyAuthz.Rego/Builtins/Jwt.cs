using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>io.jwt.* builtins (decode, verify_*, decode_verify, encode_sign, encode_sign_raw).</summary>
internal static class Jwt
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "io.jwt.decode", 1, (_, a) =>
        {
            var (h, p, sig) = Decode("io.jwt.decode", Arg.Str("io.jwt.decode", a, 0));
            return new RegoArray([h, p, Arg.S(Convert.ToHexString(sig).ToLowerInvariant())]);
        });
        foreach (var alg in new[] { "rs256", "rs384", "rs512", "ps256", "ps384", "ps512", "es256", "es384", "es512", "hs256", "hs384", "hs512", "eddsa" })
        {
            var name = "io.jwt.verify_" + alg;
            var upper = alg == "eddsa" ? "EdDSA" : alg.ToUpperInvariant();
            BuiltinRegistry.Add(r, name, 2, (_, a) =>
            {
                var token = Arg.Str(name, a, 0);
                var key = Arg.Str(name, a, 1);
                var parts = Split(name, token);
                var signingInput = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
                var sig = B64(name, parts[2]);
                if (upper.StartsWith('H')) return Arg.B(VerifyHmac(upper, Encoding.UTF8.GetBytes(key), signingInput, sig));
                if (upper == "EdDSA") return Arg.B(EdKeys(name, key).Any(k => Ed25519.Verify(k, signingInput, sig)));
                var keys = ParseKeys(name, key);
                return Arg.B(keys.Any(k => VerifyAsym(upper, k, signingInput, sig)));
            });
        }
        BuiltinRegistry.Add(r, "io.jwt.decode_verify", 2, (c, a) => DecodeVerify(c, Arg.Str("io.jwt.decode_verify", a, 0), Arg.Obj("io.jwt.decode_verify", a, 1)));
        BuiltinRegistry.Add(r, "io.jwt.encode_sign_raw", 3, (_, a) =>
        {
            const string fn = "io.jwt.encode_sign_raw";
            return Arg.S(Sign(fn, Arg.Str(fn, a, 0), Arg.Str(fn, a, 1), Arg.Str(fn, a, 2)));
        });
        BuiltinRegistry.Add(r, "io.jwt.encode_sign", 3, (_, a) =>
        {
            const string fn = "io.jwt.encode_sign";
            var h = Arg.Obj(fn, a, 0);
            var p = Arg.Obj(fn, a, 1);
            var k = Arg.Obj(fn, a, 2);
            return Arg.S(Sign(fn, h.ToJson(), p.ToJson(), k.ToJson()));
        }, nondeterministic: true);
    }

    private static string[] Split(string fn, string token)
    {
        if (!token.Contains('.')) throw BuiltinException.Error(fn, "encoded JWT had no period separators");
        var parts = token.Split('.');
        if (parts.Length != 3) throw BuiltinException.Error(fn, $"encoded JWT must have 3 sections, found {parts.Length}");
        return parts;
    }

    private static byte[] B64(string fn, string s) =>
        EncodingBuiltins.DecodeBase64(s.TrimEnd('='), url: true) ?? throw BuiltinException.Error(fn, "JWT signature: illegal base64 data");

    private static byte[] Part(string fn, string what, string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_' || (c == '=' && s[i..].All(x => x == '='))))
                throw BuiltinException.Error(fn, $"JWT {what} had invalid encoding: illegal base64 data at input byte {i}");
        }
        return EncodingBuiltins.DecodeBase64(s.TrimEnd('='), url: true)
            ?? throw BuiltinException.Error(fn, $"JWT {what} had invalid encoding: illegal base64 data at input byte {s.TrimEnd('=').Length}");
    }

    private static (RegoValue Header, RegoValue Payload, byte[] Sig) Decode(string fn, string token)
    {
        var parts = Split(fn, token);
        var hb = Part(fn, "header", parts[0]);
        if (!RegoJson.TryParse(Encoding.UTF8.GetString(hb), out var header) || header is not RegoObject ho)
            throw BuiltinException.Error(fn, "JWT header had invalid encoding: not a JSON object");
        if (ho["enc"] is not null) throw BuiltinException.Error(fn, "JWT is a JWE object, which is not supported");
        var pb = Part(fn, "payload", parts[1]);
        var sig = Part(fn, "signature", parts[2]);
        var ptext = Encoding.UTF8.GetString(pb);
        if (ho["cty"] is RegoString cty && cty.Value.Equals("JWT", StringComparison.OrdinalIgnoreCase))
        {
            var inner = ptext.Trim('"');
            return Decode(fn, inner);
        }
        if (!RegoJson.TryParse(ptext, out var payload) || payload is not RegoObject)
            throw BuiltinException.Error(fn, "type is JWT but payload is not JSON");
        return (header, payload, sig);
    }

    private static List<byte[]> EdKeys(string fn, string text)
    {
        var t = text.Trim();
        if (t.StartsWith("-----BEGIN", StringComparison.Ordinal))
            return [Ed25519.FromPem(t) ?? throw BuiltinException.Error(fn, "failed to parse a PEM key")];
        if (!RegoJson.TryParse(t, out var jv) || jv is not RegoObject jo) throw BuiltinException.Error(fn, "failed to parse a JWK key (set)");
        var keys = jo["keys"] is RegoArray ka ? ka.Elements.OfType<RegoObject>().ToList() : [jo];
        var result = keys.Where(k => (k["kty"] as RegoString)?.Value == "OKP").Select(k => JwkBytes(k, "x")).OfType<byte[]>().ToList();
        if (result.Count == 0) throw BuiltinException.Error(fn, "failed to parse a JWK key (set)");
        return result;
    }

    internal static bool VerifyHmac(string alg, byte[] key, byte[] data, byte[] sig)
    {
        byte[] mac = alg switch
        {
            "HS256" => HMACSHA256.HashData(key, data),
            "HS384" => HMACSHA384.HashData(key, data),
            "HS512" => HMACSHA512.HashData(key, data),
            _ => [],
        };
        return mac.Length > 0 && CryptographicOperations.FixedTimeEquals(mac, sig);
    }

    private static HashAlgorithmName Hash(string alg) => alg[2..] switch
    {
        "384" => HashAlgorithmName.SHA384,
        "512" => HashAlgorithmName.SHA512,
        _ => HashAlgorithmName.SHA256,
    };

    private static bool VerifyAsym(string alg, AsymmetricAlgorithm key, byte[] data, byte[] sig)
    {
        try
        {
            return (alg[0], key) switch
            {
                ('R', RSA rsa) => rsa.VerifyData(data, sig, Hash(alg), RSASignaturePadding.Pkcs1),
                ('P', RSA rsa) => rsa.VerifyData(data, sig, Hash(alg), RSASignaturePadding.Pss),
                ('E', ECDsa ec) => ec.VerifyData(data, sig, Hash(alg), DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
                _ => false,
            };
        }
        catch (CryptographicException) { return false; }
    }

    /// <summary>Parses a PEM certificate / public key, a JWK or a JWK set.</summary>
    private static List<AsymmetricAlgorithm> ParseKeys(string fn, string text)
    {
        var t = text.Trim();
        var result = new List<AsymmetricAlgorithm>();
        if (t.StartsWith("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
        {
            var endMarker = "-----END CERTIFICATE-----";
            int end = t.IndexOf(endMarker, StringComparison.Ordinal);
            if (end < 0) throw BuiltinException.Error(fn, "failed to extract a Key from the PEM certificate");
            if (t[(end + endMarker.Length)..].Trim().Length > 0) throw BuiltinException.Error(fn, "extra data after a PEM certificate block");
            try
            {
                using var cert = X509Certificate2.CreateFromPem(t);
                AsymmetricAlgorithm? k = (AsymmetricAlgorithm?)cert.GetRSAPublicKey() ?? cert.GetECDsaPublicKey();
                if (k is null) throw BuiltinException.Error(fn, "unsupported certificate key type");
                result.Add(k);
                return result;
            }
            catch (CryptographicException) { throw BuiltinException.Error(fn, "failed to parse a PEM certificate"); }
        }
        if (t.StartsWith("-----BEGIN", StringComparison.Ordinal) && !t.StartsWith("-----BEGIN PUBLIC KEY-----", StringComparison.Ordinal) && !t.StartsWith("-----BEGIN RSA PUBLIC KEY-----", StringComparison.Ordinal))
            throw BuiltinException.Error(fn, "failed to extract a Key from the PEM certificate");
        if (t.StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            try { var rsa = RSA.Create(); rsa.ImportFromPem(t); result.Add(rsa); return result; }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException) { }
            try { var ec = ECDsa.Create(); ec.ImportFromPem(t); result.Add(ec); return result; }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException) { throw BuiltinException.Error(fn, "failed to parse a PEM key"); }
        }
        if (!RegoJson.TryParse(t, out var jv) || jv is not RegoObject jo)
            throw BuiltinException.Error(fn, "failed to parse a JWK key (set)");
        var keys = jo["keys"] is RegoArray ka ? ka.Elements.OfType<RegoObject>().ToList() : [jo];
        foreach (var k in keys)
        {
            var key = JwkToKey(k, privateKey: false);
            if (key is not null) result.Add(key);
        }
        if (result.Count == 0) throw BuiltinException.Error(fn, "failed to parse a JWK key (set)");
        return result;
    }

    private static byte[]? JwkBytes(RegoObject k, string name) =>
        k[name] is RegoString s ? EncodingBuiltins.DecodeBase64(s.Value.TrimEnd('='), url: true) : null;

    private static AsymmetricAlgorithm? JwkToKey(RegoObject k, bool privateKey)
    {
        try
        {
            switch ((k["kty"] as RegoString)?.Value)
            {
                case "RSA":
                    {
                        var p = new RSAParameters { Modulus = JwkBytes(k, "n"), Exponent = JwkBytes(k, "e") };
                        if (privateKey)
                        {
                            p.D = JwkBytes(k, "d");
                            p.P = JwkBytes(k, "p");
                            p.Q = JwkBytes(k, "q");
                            p.DP = JwkBytes(k, "dp");
                            p.DQ = JwkBytes(k, "dq");
                            p.InverseQ = JwkBytes(k, "qi");
                        }
                        return RSA.Create(p);
                    }
                case "EC":
                    {
                        var curve = (k["crv"] as RegoString)?.Value switch
                        {
                            "P-384" => ECCurve.NamedCurves.nistP384,
                            "P-521" => ECCurve.NamedCurves.nistP521,
                            _ => ECCurve.NamedCurves.nistP256,
                        };
                        var p = new ECParameters { Curve = curve, Q = new ECPoint { X = JwkBytes(k, "x"), Y = JwkBytes(k, "y") } };
                        if (privateKey) p.D = JwkBytes(k, "d");
                        return ECDsa.Create(p);
                    }
            }
        }
        catch (CryptographicException) { }
        return null;
    }

    private static RegoValue DecodeVerify(BuiltinContext ctx, string token, RegoObject constraints)
    {
        const string fn = "io.jwt.decode_verify";
        RegoValue Invalid() => new RegoArray([RegoValue.False, RegoObject.Empty, RegoObject.Empty]);
        string? cert = null, secret = null, alg = null, iss = null, aud = null;
        RegoNumber? time = null;
        foreach (var kv in constraints.Pairs)
        {
            var name = (kv.Key as RegoString)?.Value;
            switch (name)
            {
                case "cert": cert = (kv.Value as RegoString)?.Value ?? throw BuiltinException.Error(fn, "cert constraint must be a string"); break;
                case "secret": secret = (kv.Value as RegoString)?.Value ?? throw BuiltinException.Error(fn, "secret constraint must be a string"); break;
                case "alg": alg = (kv.Value as RegoString)?.Value ?? throw BuiltinException.Error(fn, "alg constraint must be a string"); break;
                case "iss": iss = (kv.Value as RegoString)?.Value ?? throw BuiltinException.Error(fn, "iss constraint must be a string"); break;
                case "aud": aud = (kv.Value as RegoString)?.Value ?? throw BuiltinException.Error(fn, "aud constraint must be a string"); break;
                case "time": time = kv.Value as RegoNumber ?? throw BuiltinException.Error(fn, "time constraint must be a number"); break;
                default: throw BuiltinException.Error(fn, $"unknown token validation constraint: {name}");
            }
        }
        if (cert is null && secret is null) throw BuiltinException.Error(fn, "no key or secret specified");
        if (cert is not null && secret is not null) throw BuiltinException.Error(fn, "duplicate key constraints");
        var parts = Split(fn, token);
        var (header, payload, _) = Decode(fn, token);
        // verify the outermost signature
        var outerHeaderBytes = EncodingBuiltins.DecodeBase64(parts[0].TrimEnd('='), url: true)!;
        RegoJson.TryParse(Encoding.UTF8.GetString(outerHeaderBytes), out var outerHeader);
        var headerAlg = ((outerHeader as RegoObject)?["alg"] as RegoString)?.Value;
        if (headerAlg is null) return Invalid();
        if (alg is not null && alg != headerAlg) return Invalid();
        if (outerHeader is RegoObject oh && oh["crit"] is { } crit && !(crit is RegoArray { Count: 0 })) return Invalid();
        var signingInput = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
        var sig = EncodingBuiltins.DecodeBase64(parts[2].TrimEnd('='), url: true) ?? [];
        bool ok;
        if (headerAlg.StartsWith("HS", StringComparison.Ordinal))
            ok = secret is not null && VerifyHmac(headerAlg, Encoding.UTF8.GetBytes(secret), signingInput, sig);
        else if (cert is not null && headerAlg == "EdDSA")
            ok = EdKeys(fn, cert).Any(k => Ed25519.Verify(k, signingInput, sig));
        else if (cert is not null && headerAlg is "RS256" or "RS384" or "RS512" or "PS256" or "PS384" or "PS512" or "ES256" or "ES384" or "ES512")
            ok = ParseKeys(fn, cert).Any(k => VerifyAsym(headerAlg, k, signingInput, sig));
        else ok = false;
        if (!ok) return Invalid();
        var po = (RegoObject)payload;
        double now = time is not null ? time.ToDouble() : ctx.NowNs;
        if (po["exp"] is { } exp)
        {
            if (exp is not RegoNumber en) throw BuiltinException.Error(fn, "exp value must be a number");
            if (now >= en.ToDouble() * 1e9) return Invalid();
        }
        if (po["nbf"] is { } nbf)
        {
            if (nbf is not RegoNumber nn) throw BuiltinException.Error(fn, "nbf value must be a number");
            if (now < nn.ToDouble() * 1e9) return Invalid();
        }
        if (iss is not null && !(po["iss"] is RegoString pi && pi.Value == iss)) return Invalid();
        var paud = po["aud"];
        if (paud is not null)
        {
            if (aud is null) return Invalid();
            bool audOk = paud switch
            {
                RegoString s => s.Value == aud,
                RegoArray arr => arr.Elements.Any(x => x is RegoString xs && xs.Value == aud),
                _ => false,
            };
            if (!audOk) return Invalid();
        }
        else if (aud is not null) return Invalid();
        return new RegoArray([RegoValue.True, header, payload]);
    }

    private static string B64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Sign(string fn, string headerJson, string payloadJson, string jwkJson)
    {
        if (headerJson.Length == 0) throw BuiltinException.Error(fn, "missing or invalid 'alg' header: cannot parse JSON: cannot parse empty string");
        if (!RegoJson.TryParse(headerJson, out var hv) || hv is not RegoObject h)
            throw BuiltinException.Error(fn, headerJson.TrimStart().StartsWith('{')
                ? "missing or invalid 'alg' header: cannot parse JSON"
                : "missing or invalid 'alg' header: jwsbb: header \"alg\" not found");
        var alg = (h["alg"] as RegoString)?.Value ?? throw BuiltinException.Error(fn, "missing or invalid 'alg' header: jwsbb: header \"alg\" not found");
        if (alg is not ("HS256" or "HS384" or "HS512" or "RS256" or "RS384" or "RS512" or "PS256" or "PS384" or "PS512" or "ES256" or "ES384" or "ES512" or "EdDSA"))
            throw BuiltinException.Error(fn, $"unknown JWS algorithm: {alg}");
        var typ = (h["typ"] as RegoString)?.Value;
        if ((typ is null || typ.Equals("JWT", StringComparison.OrdinalIgnoreCase)) && !(RegoJson.TryParse(payloadJson, out var pv) && pv is RegoObject))
            throw BuiltinException.Error(fn, "type is JWT but payload is not JSON");
        if (!RegoJson.TryParse(jwkJson, out var kv) || kv is not RegoObject k) throw BuiltinException.Error(fn, "invalid JWK");
        var signingInput = B64Url(Encoding.UTF8.GetBytes(headerJson)) + "." + B64Url(Encoding.UTF8.GetBytes(payloadJson));
        var data = Encoding.ASCII.GetBytes(signingInput);
        byte[] sig;
        if (alg.StartsWith("HS", StringComparison.Ordinal))
        {
            var secret = JwkBytes(k, "k") ?? throw BuiltinException.Error(fn, "invalid JWK: missing k");
            sig = alg switch
            {
                "HS256" => HMACSHA256.HashData(secret, data),
                "HS384" => HMACSHA384.HashData(secret, data),
                "HS512" => HMACSHA512.HashData(secret, data),
                _ => throw BuiltinException.Error(fn, $"unsupported signature algorithm {alg}"),
            };
        }
        else if (alg == "EdDSA")
        {
            var seed = JwkBytes(k, "d");
            if (seed is null || seed.Length != 32) throw BuiltinException.Error(fn, "invalid JWK: missing Ed25519 private key");
            sig = Ed25519.Sign(seed, data);
        }
        else
        {
            var key = JwkToKey(k, privateKey: true) ?? throw BuiltinException.Error(fn, "invalid JWK");
            try
            {
                sig = (alg[0], key) switch
                {
                    ('R', RSA rsa) => rsa.SignData(data, Hash(alg), RSASignaturePadding.Pkcs1),
                    ('P', RSA rsa) => rsa.SignData(data, Hash(alg), RSASignaturePadding.Pss),
                    ('E', ECDsa ec) => ec.SignData(data, Hash(alg), DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
                    _ => throw BuiltinException.Error(fn, $"unsupported signature algorithm {alg}"),
                };
            }
            catch (CryptographicException ex) { throw BuiltinException.Error(fn, ex.Message); }
        }
        return signingInput + "." + B64Url(sig);
    }
}
