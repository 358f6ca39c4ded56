using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// JWT attacks through the whole in-process pipeline (built by <c>AuthzHost.Build</c>, default
/// built-in <c>authenticated</c> policy: any validated token is allowed, so "not allowed" means the
/// identity stage refused it). Each case: denied with the expected reason, well-formed, no Error
/// logged — never an allow, never an internal error.
/// </summary>
[Collection("Security")]
public sealed class JwtAttackTests(SecurityFixture f)
{
    private async Task<string> ReasonAsync(string? authorization, CheckPipeline? pipeline = null,
        IReadOnlyDictionary<string, string>? extra = null)
    {
        var errorsFrom = f.Logs.Count;
        var response = await f.CheckAsync(pipeline ?? f.Builtin, SecurityFixture.WithAuthorization(authorization, extra: extra));
        var reason = ResponseShape.Reason(response);
        Assert.True(f.Logs.ErrorsSince(errorsFrom).Count == 0, string.Join("\n", f.Logs.ErrorsSince(errorsFrom)));
        Assert.Empty(f.Logs.LeaksSince(errorsFrom));
        return reason;
    }

    private static string Bearer(string token) => "Bearer " + token;

    private static string Json(string s) => JsonSerializer.Serialize(s);

    // ---- alg: none ---------------------------------------------------------------------------

    public static TheoryData<string> AlgNoneVariants =>
    [
        "none|empty-signature", "None|empty-signature", "NONE|empty-signature", "nOnE|empty-signature", "NoNe|empty-signature",
        "none|junk-signature", "NONE|junk-signature", "none|no-signature-part", "None|no-signature-part",
        "none|trusted-kid", "none |empty-signature", "|empty-signature", "<missing>|empty-signature", "<null>|empty-signature",
        "RS256|empty-signature",
    ];

    [Theory]
    [MemberData(nameof(AlgNoneVariants))]
    public async Task AlgNone_AnyCasing_DeniedInvalidToken(string variant)
    {
        var (alg, form) = (variant.Split('|')[0], variant.Split('|')[1]);
        var algMember = alg switch
        {
            "<missing>" => "",
            "<null>" => "\"alg\":null,",
            _ => $"\"alg\":{Json(alg)},",
        };
        var kid = form == "trusted-kid" ? $",\"kid\":{Json(f.TrustedKid)}" : "";
        var header = "{" + algMember + "\"typ\":\"JWT\"" + kid + "}";
        var payload = f.Payload("admin");
        var token = form switch
        {
            "junk-signature" => RawJwt.Unsigned(header, payload, RawJwt.B64("not-a-signature")),
            "no-signature-part" => RawJwt.B64(header) + "." + RawJwt.B64(payload),
            _ => RawJwt.Unsigned(header, payload),
        };
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    // ---- HS/RS key confusion -----------------------------------------------------------------

    public static TheoryData<string> PublicKeyMaterials =>
    [
        "spki-der", "pkcs1-der", "spki-pem", "spki-pem-no-newline", "pkcs1-pem", "jwk-json", "jwks-json", "modulus",
        "spki-der|no-kid", "jwk-json|no-kid", "HS384|spki-pem", "HS512|jwk-json",
    ];

    [Theory]
    [MemberData(nameof(PublicKeyMaterials))]
    public async Task HmacKeyConfusion_SignedWithPublicKeyMaterial_DeniedInvalidToken(string variant)
    {
        var parts = variant.Split('|');
        var alg = parts[0].StartsWith("HS", StringComparison.Ordinal) ? parts[0] : "HS256";
        var material = parts[0].StartsWith("HS", StringComparison.Ordinal) ? parts[1] : parts[0];
        var withKid = !variant.EndsWith("no-kid", StringComparison.Ordinal);
        var rsa = f.TrustedRsa;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var jwks = await http.GetStringAsync(f.Idp.Issuer + "/jwks", TestContext.Current.CancellationToken);
        var jwk = JsonDocument.Parse(jwks).RootElement.GetProperty("keys")[0].GetRawText();
        var key = material switch
        {
            "spki-der" => rsa.ExportSubjectPublicKeyInfo(),
            "pkcs1-der" => rsa.ExportRSAPublicKey(),
            "spki-pem" => Encoding.ASCII.GetBytes(rsa.ExportSubjectPublicKeyInfoPem() + "\n"),
            "spki-pem-no-newline" => Encoding.ASCII.GetBytes(rsa.ExportSubjectPublicKeyInfoPem()),
            "pkcs1-pem" => Encoding.ASCII.GetBytes(rsa.ExportRSAPublicKeyPem() + "\n"),
            "jwk-json" => Encoding.UTF8.GetBytes(jwk),
            "jwks-json" => Encoding.UTF8.GetBytes(jwks),
            "modulus" => rsa.ExportParameters(false).Modulus!,
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        var header = $$"""{"alg":"{{alg}}","typ":"JWT"{{(withKid ? $",\"kid\":{Json(f.TrustedKid)}" : "")}}}""";
        var input = RawJwt.B64(header) + "." + RawJwt.B64(f.Payload("admin"));
        byte[] mac = alg switch
        {
            "HS384" => HMACSHA384.HashData(key, Encoding.ASCII.GetBytes(input)),
            "HS512" => HMACSHA512.HashData(key, Encoding.ASCII.GetBytes(input)),
            _ => HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(input)),
        };
        var token = input + "." + RawJwt.B64(mac);
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    // ---- kid ---------------------------------------------------------------------------------

    public static TheoryData<string> HostileKids =>
    [
        "../../etc/passwd", "..\\..\\windows\\win.ini", "/dev/null", "' OR 1=1 --", "\" OR \"\"=\"", "'; DROP TABLE keys; --",
        "a\u0000b", "\u0000", "%00", "$(id)", "`id`", "{{kid}}", "${jndi:ldap://127.0.0.1:1/a}", "http://127.0.0.1:1/jwks",
        "<long>", "<trusted-kid>", "<number>", "<object>", "<array>", "<null>", "", "\r\nX-Injected: 1",
    ];

    [Theory]
    [MemberData(nameof(HostileKids))]
    public async Task HostileKid_SignedByAttacker_DeniedInvalidToken(string kid)
    {
        var kidJson = kid switch
        {
            "<long>" => Json(new string('k', 12_000)),
            "<trusted-kid>" => Json(f.TrustedKid),
            "<number>" => "1e400",
            "<object>" => "{\"kid\":\"x\"}",
            "<array>" => $"[{Json(f.TrustedKid)}]",
            "<null>" => "null",
            _ => Json(kid),
        };
        var token = RawJwt.Rs256(f.AttackerRsa, $$"""{"alg":"RS256","typ":"JWT","kid":{{kidJson}}}""", f.Payload("admin"));
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    // ---- jku / x5u / jwk / x5c ---------------------------------------------------------------

    public static TheoryData<string> KeyReferenceHeaders => ["jku", "x5u", "jwk", "x5c", "jku+trusted-kid", "jwk+trusted-kid", "all"];

    [Theory]
    [MemberData(nameof(KeyReferenceHeaders))]
    public async Task KeyReferenceHeaders_PointingElsewhereOrEmbeddingAttackerKey_IgnoredDeniedInvalidToken(string variant)
    {
        var attackerJwks = f.Attacker.Issuer + "/jwks";
        var p = f.AttackerRsa.ExportParameters(false);
        var jwk = $$"""{"kty":"RSA","kid":{{Json(f.AttackerKid)}},"use":"sig","n":"{{RawJwt.B64(p.Modulus!)}}","e":"{{RawJwt.B64(p.Exponent!)}}"}""";
        var req = new CertificateRequest("CN=trusted-issuer", f.AttackerRsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var x5c = $"[{Json(Convert.ToBase64String(cert.RawData))}]";
        var kid = variant.EndsWith("trusted-kid", StringComparison.Ordinal) ? f.TrustedKid : f.AttackerKid;
        var extra = variant.Split('+')[0] switch
        {
            "jku" => $",\"jku\":{Json(attackerJwks)}",
            "x5u" => $",\"x5u\":{Json(attackerJwks)}",
            "jwk" => $",\"jwk\":{jwk}",
            "x5c" => $",\"x5c\":{x5c}",
            _ => $",\"jku\":{Json(attackerJwks)},\"x5u\":{Json(attackerJwks)},\"jwk\":{jwk},\"x5c\":{x5c}",
        };
        var fetchesBefore = f.Attacker.JwksFetches;
        var token = RawJwt.Rs256(f.AttackerRsa, f.RsHeader(kid, extra), f.Payload("admin"));
        f.Secrets.PlantToken(token);

        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
        Assert.Equal(fetchesBefore, f.Attacker.JwksFetches); // the service never followed the attacker's URL
    }

    // ---- crit, nested JWT, JWE ---------------------------------------------------------------

    public static TheoryData<string> CritHeaders =>
    [
        "\"crit\":[\"urn:example:unknown\"],\"urn:example:unknown\":true",
        "\"crit\":[\"urn:example:unknown\"]",
        "\"crit\":[]",
        "\"crit\":\"urn:example:unknown\"",
    ];

    [Theory]
    [MemberData(nameof(CritHeaders))]
    public async Task UnknownCritHeader_EvenSignedByTrustedKey_DeniedInvalidToken(string crit)
    {
        // RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST reject the JWS.
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid, "," + crit), f.Payload());
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> NestedForms => ["outer-trusted", "outer-attacker", "outer-none"];

    [Theory]
    [MemberData(nameof(NestedForms))]
    public async Task NestedJwt_CtyJwt_DeniedInvalidToken(string form)
    {
        var inner = f.Genuine("alice");
        var innerForged = RawJwt.Unsigned("""{"alg":"none"}""", f.Payload("admin"));
        var header = form == "outer-none" ? """{"alg":"none","cty":"JWT"}""" : f.RsHeader(form == "outer-trusted" ? f.TrustedKid : f.AttackerKid, ",\"cty\":\"JWT\"");
        var token = form switch
        {
            "outer-trusted" => RawJwt.Rs256(f.TrustedRsa, header, innerForged), // the payload is a JWT, not a claims set
            "outer-attacker" => RawJwt.Rs256(f.AttackerRsa, header, inner),
            _ => RawJwt.Unsigned(header, inner),
        };
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> JweForms => ["RSA-OAEP|A256GCM", "dir|A128CBC-HS256", "none|none"];

    [Theory]
    [MemberData(nameof(JweForms))]
    public async Task Jwe_FiveParts_DeniedInvalidToken(string form)
    {
        var header = $$"""{"alg":"{{form.Split('|')[0]}}","enc":"{{form.Split('|')[1]}}","kid":{{Json(f.TrustedKid)}}}""";
        var token = string.Join('.', RawJwt.B64(header), RawJwt.B64(RandomNumberGenerator.GetBytes(256)), RawJwt.B64(RandomNumberGenerator.GetBytes(12)),
            RawJwt.B64(Encoding.UTF8.GetBytes(f.Payload("admin"))), RawJwt.B64(RandomNumberGenerator.GetBytes(16)));
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    // ---- lifetime ----------------------------------------------------------------------------

    public static TheoryData<string, string> LifetimeCases => new()
    {
        { "expired-5m", "expired_token" },
        { "expired-31s", "expired_token" },
        { "expired-epoch", "expired_token" },
        { "nbf-future-1h", "invalid_token" },
        { "nbf-future-31s", "invalid_token" },
        { "no-exp", "invalid_token" },
    };

    [Theory]
    [MemberData(nameof(LifetimeCases))]
    public async Task Lifetime_BeyondClockSkew_Denied(string variant, string expected)
    {
        var now = f.Now;
        var (nbf, exp) = variant switch
        {
            "expired-5m" => (now - 3600, now - 300),
            "expired-31s" => (now - 3600, now - 31),
            "expired-epoch" => (0L, 1L),
            "nbf-future-1h" => (now + 3600, now + 7200),
            "nbf-future-31s" => (now + 31, now + 7200),
            _ => (now, -1L),
        };
        var payload = $$"""{"iss":"{{f.Idp.Issuer}}","aud":"{{SecurityFixture.Audience}}","sub":"alice","nbf":{{nbf}}{{(exp >= 0 ? $",\"exp\":{exp}" : "")}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Equal(expected, await ReasonAsync(Bearer(token)));
    }

    // ---- audience and issuer -----------------------------------------------------------------

    public static TheoryData<string> ForeignAudiences =>
    [
        "[\"api://other\",\"api://x\"]", "[]", "\"API://AUTHZ\"", "\"api://authz/\"", "\" api://authz\"", "\"api://other\"",
        "[\"api://authz \",\"api://authzz\"]", "<missing>", "null", "\"\"",
    ];

    [Theory]
    [MemberData(nameof(ForeignAudiences))]
    public async Task AudienceWithoutOurs_SignedByTrustedKey_DeniedWrongAudience(string aud)
    {
        var audMember = aud == "<missing>" ? "" : $",\"aud\":{aud}";
        var payload = $$"""{"iss":"{{f.Idp.Issuer}}","sub":"alice","nbf":{{f.Now}},"exp":{{f.Now + 600}}{{audMember}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Equal("wrong_audience", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> TypeBrokenAudiences => ["5", "{\"a\":1}", "[5,{\"a\":1}]", "true"];

    [Theory]
    [MemberData(nameof(TypeBrokenAudiences))]
    public async Task AudienceOfWrongType_DeniedWrongAudienceOrInvalidToken(string aud)
    {
        var payload = $$"""{"iss":"{{f.Idp.Issuer}}","sub":"alice","aud":{{aud}},"nbf":{{f.Now}},"exp":{{f.Now + 600}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Contains(await ReasonAsync(Bearer(token)), new[] { "wrong_audience", "invalid_token" });
    }

    public static TheoryData<string> IssuerVariants =>
    [
        "trailing-slash", "upper-case", "upper-scheme", "leading-space", "trailing-space", "trailing-nul", "https",
        "dot-dot", "escaped-slash", "localhost", "evil",
    ];

    [Theory]
    [MemberData(nameof(IssuerVariants))]
    public async Task IssuerMismatch_EvenSignedByTrustedKey_DeniedUntrustedIssuer(string variant)
    {
        var iss = f.Idp.Issuer;
        var forged = variant switch
        {
            "trailing-slash" => iss + "/",
            "upper-case" => iss.ToUpperInvariant(),
            "upper-scheme" => "HTTP" + iss[4..],
            "leading-space" => " " + iss,
            "trailing-space" => iss + " ",
            "trailing-nul" => iss + "\u0000",
            "https" => "https" + iss[4..],
            "dot-dot" => iss + "/x/..",
            "escaped-slash" => iss + "%2F",
            "localhost" => iss.Replace("127.0.0.1", "localhost", StringComparison.Ordinal),
            _ => "https://evil.example.com",
        };
        var payload = $$"""{"iss":{{Json(forged)}},"aud":"{{SecurityFixture.Audience}}","sub":"alice","nbf":{{f.Now}},"exp":{{f.Now + 600}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Equal("untrusted_issuer", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> IssuerOfWrongType => ["<missing>", "null", "1", "<array-with-trusted>", "{}"];

    [Theory]
    [MemberData(nameof(IssuerOfWrongType))]
    public async Task IssuerMissingOrOfWrongType_DeniedUntrustedIssuerOrInvalidToken(string iss)
    {
        var member = iss switch
        {
            "<missing>" => "",
            "<array-with-trusted>" => $"\"iss\":[{Json(f.Idp.Issuer)}],",
            _ => $"\"iss\":{iss},",
        };
        var payload = $$"""{{{member}}"aud":"{{SecurityFixture.Audience}}","sub":"alice","nbf":{{f.Now}},"exp":{{f.Now + 600}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Contains(await ReasonAsync(Bearer(token)), new[] { "untrusted_issuer", "invalid_token" });
    }

    // ---- size and encoding -------------------------------------------------------------------

    public static TheoryData<string> OversizedTokens => ["just-over-limit", "genuine-plus-padding", "1MiB", "huge-claim-attacker-signed"];

    [Theory]
    [MemberData(nameof(OversizedTokens))]
    public async Task OversizedToken_DeniedInvalidToken(string variant)
    {
        var token = variant switch
        {
            "just-over-limit" => new string('a', 16_385),
            "genuine-plus-padding" => f.Genuine() + new string('A', 17_000),
            "1MiB" => string.Join('.', new string('e', 512 * 1024), new string('p', 512 * 1024), "s"),
            _ => RawJwt.Rs256(f.AttackerRsa, f.RsHeader(f.AttackerKid), f.Payload("admin", $",\"pad\":\"{new string('x', 14_000)}\"")),
        };
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> BadBase64Forms =>
    [
        "signature-padded", "signature-standard-base64", "payload-padded", "header-padded", "payload-plus-slash",
        "space-inside", "tab-inside", "newline-inside", "crlf-inside", "bang-inside", "unicode-inside", "four-segments",
        "empty-segments", "dots-only", "signature-truncated", "signature-extra-char",
    ];

    [Theory]
    [MemberData(nameof(BadBase64Forms))]
    public async Task BadBase64Url_DeniedInvalidToken(string variant)
    {
        var genuine = f.Genuine("alice");
        var p = genuine.Split('.');
        var sigBytes = Base64UrlEncoder.DecodeBytes(p[2]);
        var token = variant switch
        {
            "signature-padded" => genuine + "==",
            "signature-standard-base64" => p[0] + "." + p[1] + "." + Convert.ToBase64String(sigBytes),
            "payload-padded" => p[0] + "." + p[1] + "==." + p[2],
            "header-padded" => p[0] + "=." + p[1] + "." + p[2],
            "payload-plus-slash" => p[0] + "." + Convert.ToBase64String(Base64UrlEncoder.DecodeBytes(p[1])).Replace("=", "", StringComparison.Ordinal).Replace('A', '+') + "." + p[2],
            "space-inside" => p[0] + "." + p[1][..10] + " " + p[1][10..] + "." + p[2],
            "tab-inside" => p[0] + "." + p[1][..10] + "\t" + p[1][10..] + "." + p[2],
            "newline-inside" => p[0] + "." + p[1][..10] + "\n" + p[1][10..] + "." + p[2],
            "crlf-inside" => p[0] + "\r\n." + p[1] + "." + p[2],
            "bang-inside" => p[0] + "." + p[1][..10] + "!" + p[1][10..] + "." + p[2],
            "unicode-inside" => p[0] + "." + p[1][..10] + "é" + p[1][10..] + "." + p[2],
            "four-segments" => genuine + "." + p[2],
            "empty-segments" => "..",
            "dots-only" => "....",
            "signature-truncated" => p[0] + "." + p[1] + "." + p[2][..^3],
            _ => genuine + "A",
        };
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    // ---- duplicate JSON keys -----------------------------------------------------------------

    public static TheoryData<string> UnsignedDuplicateAlg => ["none-then-rs256", "rs256-then-none"];

    [Theory]
    [MemberData(nameof(UnsignedDuplicateAlg))]
    public async Task DuplicateAlgHeader_Unsigned_DeniedInvalidToken(string variant)
    {
        var header = variant == "none-then-rs256"
            ? $$"""{"alg":"none","alg":"RS256","kid":{{Json(f.TrustedKid)}}}"""
            : $$"""{"alg":"RS256","kid":{{Json(f.TrustedKid)}},"alg":"none"}""";
        var token = RawJwt.Unsigned(header, f.Payload("admin"));
        f.Secrets.PlantToken(token);
        Assert.Equal("invalid_token", await ReasonAsync(Bearer(token)));
    }

    public static TheoryData<string> DuplicateClaims =>
    [
        "sub", "iss-evil-last", "iss-evil-first", "exp-past-last", "aud-other-last", "alg-header-none-last-signed",
    ];

    /// <summary>
    /// RFC 7515 §4 / RFC 7519 §4: reject duplicate member names or take the lexically last one.
    /// Either is acceptable; what must never happen is one parser (validation) seeing one value and
    /// another (identity headers, policy input) seeing the other.
    /// </summary>
    [Theory]
    [MemberData(nameof(DuplicateClaims))]
    public async Task DuplicateJsonKeys_SignedByTrustedKey_DeniedOrLastValueEverywhere(string variant)
    {
        var iss = f.Idp.Issuer;
        var times = $"\"nbf\":{f.Now},\"exp\":{f.Now + 600}";
        var aud = $"\"aud\":\"{SecurityFixture.Audience}\"";
        var header = f.RsHeader(f.TrustedKid);
        var (payload, lastSub, mustDeny) = variant switch
        {
            "sub" => ($$"""{"iss":"{{iss}}",{{aud}},"sub":"alice",{{times}},"sub":"admin"}""", "admin", false),
            "iss-evil-last" => ($$"""{"iss":"{{iss}}",{{aud}},"sub":"alice",{{times}},"iss":"https://evil.example.com"}""", "alice", true),
            "iss-evil-first" => ($$"""{"iss":"https://evil.example.com",{{aud}},"sub":"alice",{{times}},"iss":"{{iss}}"}""", "alice", false),
            "exp-past-last" => ($$"""{"iss":"{{iss}}",{{aud}},"sub":"alice",{{times}},"exp":{{f.Now - 3600}}}""", "alice", true),
            "aud-other-last" => ($$"""{"iss":"{{iss}}",{{aud}},"sub":"alice",{{times}},"aud":"api://other"}""", "alice", true),
            _ => (f.Payload("alice"), "alice", true),
        };
        if (variant == "alg-header-none-last-signed")
        {
            header = $$"""{"alg":"RS256","kid":{{Json(f.TrustedKid)}},"alg":"none"}""";
        }
        var token = RawJwt.Rs256(f.TrustedRsa, header, payload);
        f.Secrets.PlantToken(token);

        var response = await f.CheckAsync(f.Echo, SecurityFixture.WithAuthorization(Bearer(token)));
        var reason = ResponseShape.Reason(response);
        if (mustDeny)
        {
            Assert.NotEqual("allowed", reason);
            return;
        }
        if (reason != "allowed")
        {
            Assert.Equal("invalid_token", reason);
            return;
        }
        var headers = ResponseShape.OkHeaders(response);
        Assert.Equal(lastSub, headers["x-authz-subject"]);
        Assert.Equal(lastSub, headers["x-echo-subject"]);
        Assert.Equal(JsonSerializer.Serialize(lastSub), headers["x-echo-claims-sub"]);
        Assert.Equal(iss, headers["x-authz-issuer"]);
    }

    // ---- numeric claims ----------------------------------------------------------------------

    public static TheoryData<string> BrokenTimeClaims =>
    [
        "exp:1e400", "exp:-1e400", "exp:18446744073709551616", "exp:18446744073709551615", "exp:-9223372036854775809",
        "exp:1.5e308", "exp:\"9999999999\"", "exp:\"abc\"", "exp:null", "exp:true", "exp:[9999999999]", "exp:{}",
        "nbf:1e400", "nbf:18446744073709551616", "nbf:\"abc\"", "nbf:[1]", "nbf:9223372036854775807",
    ];

    [Theory]
    [MemberData(nameof(BrokenTimeClaims))]
    public async Task HugeOrNonNumericTimeClaims_SignedByTrustedKey_DeniedInvalidToken(string claim)
    {
        var name = claim[..3];
        var value = claim[4..];
        var exp = name == "exp" ? value : (f.Now + 600).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var nbf = name == "nbf" ? value : f.Now.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var payload = $$"""{"iss":"{{f.Idp.Issuer}}","aud":"{{SecurityFixture.Audience}}","sub":"alice","nbf":{{nbf}},"exp":{{exp}}}""";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Contains(await ReasonAsync(Bearer(token)), new[] { "invalid_token", "expired_token" });
    }

    public static TheoryData<string> OddButHarmlessClaims =>
    [
        "iat:1e400", "iat:\"x\"", "sub:1e400", "sub:{\"a\":1}", "groups:\"not-an-array\"", "groups:[1e400,null,{}]",
        "scope:18446744073709551616", "act:\"x\"", "exp:9223372036854775807", "exp:253402300800",
    ];

    [Theory]
    [MemberData(nameof(OddButHarmlessClaims))]
    public async Task OddClaimTypes_SignedByTrustedKey_ParsedOrDeniedWithoutInternalError(string claim)
    {
        var name = claim[..claim.IndexOf(':', StringComparison.Ordinal)];
        var value = claim[(name.Length + 1)..];
        var members = new Dictionary<string, string>
        {
            ["iss"] = Json(f.Idp.Issuer), ["aud"] = Json(SecurityFixture.Audience), ["sub"] = "\"alice\"",
            ["nbf"] = f.Now.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["exp"] = (f.Now + 600).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        members[name] = value;
        var payload = "{" + string.Join(',', members.Select(m => $"{Json(m.Key)}:{m.Value}")) + "}";
        var token = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid), payload);
        f.Secrets.PlantToken(token);
        Assert.Contains(await ReasonAsync(Bearer(token), f.Example), new[] { "allowed", "invalid_token", "policy_denied" });
    }

    // ---- the Authorization header itself -----------------------------------------------------

    public static TheoryData<string> MalformedCredentials =>
    [
        "<empty>", "<space>", "Bearer", "Bearer ", "Bearer\t{T}", "Bearer\t\t{T}", "Bearer\r\n{T}", "Bearer {T} {T}", "Bearer {T}\r\nX-Injected: 1",
        "Basic {T}", "Bearer{T}", "Bearer {T},Bearer {T}", "Token {T}", "Bearer \"{T}\"", "Bearer {T}\u0000", "Bearer\u00a0{T}", "Bearer {T}\u0000evil",
        "Bearer \u200b{T}", "Bearer={T}",
    ];

    [Theory]
    [MemberData(nameof(MalformedCredentials))]
    public async Task AuthorizationHeader_Malformed_DeniedInvalidToken(string form)
    {
        var value = form switch
        {
            "<empty>" => "",
            "<space>" => " ",
            _ => form.Replace("{T}", f.Genuine(), StringComparison.Ordinal),
        };
        Assert.Equal("invalid_token", await ReasonAsync(value));
    }

    public static TheoryData<string> Rfc7235Credentials => ["Bearer {T}", "bearer {T}", "BEARER {T}", "Bearer   {T}", "  Bearer {T}  ", "Bearer {T} "];

    [Theory]
    [MemberData(nameof(Rfc7235Credentials))]
    public async Task AuthorizationHeader_Rfc7235Variants_ParsedAndAllowed(string form)
    {
        Assert.Equal("allowed", await ReasonAsync(form.Replace("{T}", f.Genuine(), StringComparison.Ordinal)));
    }

    [Fact]
    public async Task NoCredentials_DeniedMissingToken()
    {
        Assert.Equal("missing_token", await ReasonAsync(null));
    }

    [Fact]
    public async Task BadHeaderWithGenuineCookie_DeniedInvalidToken_NoFallback()
    {
        var extra = new Dictionary<string, string> { ["cookie"] = $"{SecurityFixture.CookieName}={f.Genuine()}" };
        Assert.Equal("invalid_token", await ReasonAsync("Bearer garbage.garbage.garbage", extra: extra));
    }

    public static TheoryData<string> ForgedCookies => ["alg-none", "attacker-signed", "garbage", "quoted-garbage"];

    [Theory]
    [MemberData(nameof(ForgedCookies))]
    public async Task ForgedTokenInCookie_DeniedInvalidToken(string variant)
    {
        var token = variant switch
        {
            "alg-none" => RawJwt.Unsigned("""{"alg":"none"}""", f.Payload("admin")),
            "attacker-signed" => RawJwt.Rs256(f.AttackerRsa, f.RsHeader(f.AttackerKid), f.Payload("admin")),
            "garbage" => "garbage-cookie-value-0123456789",
            _ => "\"garbage.cookie.value0123456789\"",
        };
        var extra = new Dictionary<string, string> { ["cookie"] = $"theme=dark; {SecurityFixture.CookieName}={token}; session=s3cr3t-session-value-42" };
        Assert.Equal("invalid_token", await ReasonAsync(null, extra: extra));
    }

    // ---- identity-header spoofing ------------------------------------------------------------

    private static readonly Dictionary<string, string> Spoofed = new()
    {
        ["x-authz-subject"] = "admin",
        ["X-Authz-Issuer"] = "https://evil.example.com",
        ["x-authz-groups"] = "airflow-admins",
        ["X-AUTHZ-SCOPES"] = "admin:all",
        ["x-authz-decision-id"] = "forged-decision",
        ["x-airflow-conn-id"] = "prod_postgres",
        ["x-remote-user"] = "admin",
    };

    private static void AssertNoSpoofedValueReachesUpstream(Dictionary<string, List<string>> upstream, string? subject, string decisionId)
    {
        foreach (var name in Spoofed.Keys.Select(k => k.ToLowerInvariant()))
        {
            if (!upstream.TryGetValue(name, out var values))
            {
                continue;
            }
            Assert.Single(values);
            Assert.DoesNotContain(values[0], Spoofed.Values);
        }
        Assert.False(upstream.ContainsKey("x-authz-groups"));
        Assert.False(upstream.ContainsKey("x-authz-scopes"));
        Assert.False(upstream.ContainsKey("x-airflow-conn-id"));
        Assert.Equal(decisionId, Assert.Single(upstream["x-authz-decision-id"]));
        if (subject is null)
        {
            Assert.False(upstream.ContainsKey("x-authz-subject"));
            Assert.False(upstream.ContainsKey("x-authz-issuer"));
            Assert.False(upstream.ContainsKey("x-remote-user"));
        }
        else
        {
            Assert.Equal(subject, Assert.Single(upstream["x-authz-subject"]));
            Assert.Equal(subject, Assert.Single(upstream["x-remote-user"]));
        }
    }

    public static TheoryData<string> SpoofingPipelines => ["builtin", "example", "authenticated-engine"];

    [Theory]
    [MemberData(nameof(SpoofingPipelines))]
    public async Task SpoofedIdentityHeaders_WithValidToken_NeverReachUpstream(string pipeline)
    {
        var headers = new Dictionary<string, string>(Spoofed) { ["authorization"] = Bearer(f.Genuine("alice")) };
        var request = Requests.Http(path: "/api/v1/dags", headers: headers);
        var p = pipeline switch { "example" => f.Example, "authenticated-engine" => f.AuthenticatedEngine, _ => f.Builtin };

        var response = await f.CheckAsync(p, request);

        Assert.Equal("allowed", ResponseShape.Reason(response));
        var downstream = request.Attributes.Request.Http.Headers.ToDictionary(h => h.Key, h => h.Value);
        var upstream = EnvoyHeaderMutation.ApplyOk(downstream, response);
        AssertNoSpoofedValueReachesUpstream(upstream, "alice", response.DynamicMetadata.Fields["decision_id"].StringValue);
        Assert.Equal(f.Idp.Issuer, Assert.Single(upstream["x-authz-issuer"]));
    }

    [Fact]
    public async Task SpoofedIdentityHeaders_OnPublicPathWithoutToken_NeverReachUpstream()
    {
        var request = Requests.Http(path: "/healthz", headers: Spoofed);

        var response = await f.CheckAsync(f.Example, request);

        Assert.Equal("allowed", ResponseShape.Reason(response));
        var downstream = request.Attributes.Request.Http.Headers.ToDictionary(h => h.Key, h => h.Value);
        var upstream = EnvoyHeaderMutation.ApplyOk(downstream, response);
        AssertNoSpoofedValueReachesUpstream(upstream, null, response.DynamicMetadata.Fields["decision_id"].StringValue);
    }

    [Fact]
    public async Task SpoofedIdentityHeaders_InHeaderMap_NeverReachUpstream()
    {
        // Envoy sends header_map (with raw_value) instead of headers when encode_raw_headers is set.
        var request = Requests.Http(path: "/api/v1/dags");
        var http = request.Attributes.Request.Http;
        http.Headers.Clear();
        http.HeaderMap = new Envoy.Config.Core.V3.HeaderMap();
        foreach (var (k, v) in new Dictionary<string, string>(Spoofed) { ["authorization"] = Bearer(f.Genuine("alice")), [":path"] = "/api/v1/dags" })
        {
            http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = k.ToLowerInvariant(), RawValue = Google.Protobuf.ByteString.CopyFromUtf8(v) });
        }

        var response = await f.CheckAsync(f.Builtin, request);

        Assert.Equal("allowed", ResponseShape.Reason(response));
        var downstream = http.HeaderMap.Headers.ToDictionary(h => h.Key, h => h.RawValue.ToStringUtf8());
        var upstream = EnvoyHeaderMutation.ApplyOk(downstream, response);
        AssertNoSpoofedValueReachesUpstream(upstream, "alice", response.DynamicMetadata.Fields["decision_id"].StringValue);
    }
}
