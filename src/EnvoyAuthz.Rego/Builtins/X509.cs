using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>crypto.x509.* and crypto.parse_private_keys, with Go's x509 field names for the commonly used fields.</summary>
internal static class X509
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "crypto.x509.parse_certificates", 1, (_, a) =>
            new RegoArray(LoadCerts("crypto.x509.parse_certificates", Arg.Str("crypto.x509.parse_certificates", a, 0)).Select(ToValue).ToArray()));
        BuiltinRegistry.Add(r, "crypto.x509.parse_and_verify_certificates", 1, (_, a) =>
        {
            const string fn = "crypto.x509.parse_and_verify_certificates";
            List<X509Certificate2> certs;
            try { certs = LoadCerts(fn, Arg.Str(fn, a, 0)); }
            catch (BuiltinException) { return new RegoArray([RegoValue.False, RegoArray.Empty]); }
            // the first certificate is the root, the last the leaf; the verified chain is returned leaf first
            certs.Reverse();
            bool valid = Verify(certs);
            return new RegoArray([Arg.B(valid), valid ? new RegoArray(certs.Select(ToValue).ToArray()) : RegoArray.Empty]);
        });
        BuiltinRegistry.Add(r, "crypto.x509.parse_certificate_request", 1, (_, a) =>
        {
            const string fn = "crypto.x509.parse_certificate_request";
            var der = Decode(fn, Arg.Str(fn, a, 0), "CERTIFICATE REQUEST").FirstOrDefault() ?? throw BuiltinException.Error(fn, "asn1: structure error");
            try
            {
                var req = CertificateRequest.LoadSigningRequest(der, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.SkipSignatureValidation);
                var o = new RegoObject.Builder();
                o.Add("Subject", Name(req.SubjectName));
                o.Add("Raw", Arg.S(Convert.ToBase64String(der)));
                return o.Build();
            }
            catch (CryptographicException ex) { throw BuiltinException.Error(fn, "asn1: structure error: " + ex.Message); }
        });
        BuiltinRegistry.Add(r, "crypto.x509.parse_keypair", 2, (_, a) =>
        {
            const string fn = "crypto.x509.parse_keypair";
            var certs = Decode(fn, Arg.Str(fn, a, 0), "CERTIFICATE");
            var keyText = PemText(fn, Arg.Str(fn, a, 1));
            if (certs.Count == 0) throw BuiltinException.Error(fn, "tls: failed to find any PEM data in certificate input");
            using var cert = X509CertificateLoader.LoadCertificate(certs[0]);
            try
            {
                using var withKey = cert.GetRSAPublicKey() is not null ? CopyRsa(cert, keyText) : CopyEc(cert, keyText);
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException) { throw BuiltinException.Error(fn, "tls: private key does not match public key"); }
            var o = new RegoObject.Builder();
            o.Add("Certificate", new RegoArray(certs.Select(c => (RegoValue)Arg.S(Convert.ToBase64String(c))).ToArray()));
            o.Add("Leaf", RegoValue.Null);
            return o.Build();
        });
        BuiltinRegistry.Add(r, "crypto.x509.parse_rsa_private_key", 1, (_, a) =>
        {
            const string fn = "crypto.x509.parse_rsa_private_key";
            var text = PemText(fn, Arg.Str(fn, a, 0));
            using var rsa = RSA.Create();
            try { rsa.ImportFromPem(text); }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException) { throw BuiltinException.Error(fn, "failed to parse RSA private key"); }
            return Jwk(rsa.ExportParameters(true));
        });
        BuiltinRegistry.Add(r, "crypto.parse_private_keys", 1, (_, a) =>
        {
            const string fn = "crypto.parse_private_keys";
            var s = Arg.Str(fn, a, 0);
            if (s.Length == 0) return RegoValue.Null;
            string text;
            try { text = PemText(fn, s); }
            catch (BuiltinException) { return RegoArray.Empty; }
            var keys = new List<RegoValue>();
            foreach (var block in PemBlocks(text))
            {
                using var rsa = RSA.Create();
                try { rsa.ImportFromPem(block); keys.Add(Jwk(rsa.ExportParameters(true))); }
                catch (Exception ex) when (ex is CryptographicException or ArgumentException) { }
            }
            return new RegoArray(keys.ToArray());
        });
    }

    private static X509Certificate2 CopyRsa(X509Certificate2 c, string pem)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        return c.CopyWithPrivateKey(rsa);
    }

    private static X509Certificate2 CopyEc(X509Certificate2 c, string pem)
    {
        using var ec = ECDsa.Create();
        ec.ImportFromPem(pem);
        return c.CopyWithPrivateKey(ec);
    }

    private static string B64Url(byte[]? b) => b is null ? "" : Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static RegoValue Jwk(RSAParameters p) => new RegoObject.Builder()
        .Add("kty", Arg.S("RSA")).Add("n", Arg.S(B64Url(p.Modulus))).Add("e", Arg.S(B64Url(p.Exponent)))
        .Add("d", Arg.S(B64Url(p.D))).Add("p", Arg.S(B64Url(p.P))).Add("q", Arg.S(B64Url(p.Q)))
        .Add("dp", Arg.S(B64Url(p.DP))).Add("dq", Arg.S(B64Url(p.DQ))).Add("qi", Arg.S(B64Url(p.InverseQ))).Build();

    private static IEnumerable<string> PemBlocks(string text)
    {
        int i = 0;
        while ((i = text.IndexOf("-----BEGIN", i, StringComparison.Ordinal)) >= 0)
        {
            int endLabel = text.IndexOf("-----END", i, StringComparison.Ordinal);
            if (endLabel < 0) yield break;
            int end = text.IndexOf("-----", endLabel + 8, StringComparison.Ordinal);
            if (end < 0) yield break;
            yield return text[i..(end + 5)];
            i = end + 5;
        }
    }

    /// <summary>The input as PEM text: PEM as given, or base64 of PEM.</summary>
    private static string PemText(string fn, string s)
    {
        if (s.Contains("-----BEGIN", StringComparison.Ordinal)) return s;
        try { return Encoding.UTF8.GetString(Convert.FromBase64String(s)); }
        catch (FormatException) { throw BuiltinException.Error(fn, "illegal base64 data"); }
    }

    /// <summary>DER blobs from PEM text, base64 of PEM, or base64 of concatenated DER.</summary>
    private static List<byte[]> Decode(string fn, string s, string label)
    {
        byte[] raw;
        if (s.Contains("-----BEGIN", StringComparison.Ordinal)) raw = Encoding.UTF8.GetBytes(s);
        else
        {
            try { raw = Convert.FromBase64String(s); }
            catch (FormatException) { throw BuiltinException.Error(fn, "illegal base64 data"); }
        }
        var text = Encoding.UTF8.GetString(raw);
        if (text.Contains("-----BEGIN", StringComparison.Ordinal))
        {
            var list = new List<byte[]>();
            foreach (var block in PemBlocks(text))
            {
                var body = string.Concat(block.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal)));
                try { list.Add(Convert.FromBase64String(body)); }
                catch (FormatException) { throw BuiltinException.Error(fn, "illegal base64 data"); }
            }
            return list;
        }
        // concatenated DER
        var result = new List<byte[]>();
        var span = raw.AsMemory();
        while (span.Length > 0)
        {
            try
            {
                var reader = new AsnReader(span, AsnEncodingRules.DER);
                var encoded = reader.ReadEncodedValue();
                result.Add(encoded.ToArray());
                span = span[encoded.Length..];
            }
            catch (AsnContentException) { throw BuiltinException.Error(fn, label == "CERTIFICATE" ? "x509: malformed certificate" : "asn1: structure error"); }
        }
        return result;
    }

    private static List<X509Certificate2> LoadCerts(string fn, string s)
    {
        var list = new List<X509Certificate2>();
        foreach (var der in Decode(fn, s, "CERTIFICATE"))
        {
            try { list.Add(X509CertificateLoader.LoadCertificate(der)); }
            catch (CryptographicException) { throw BuiltinException.Error(fn, "x509: malformed certificate"); }
        }
        if (list.Count == 0) throw BuiltinException.Error(fn, "x509: malformed certificate");
        return list;
    }

    private static bool Verify(List<X509Certificate2> certs)
    {
        if (certs.Count == 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        chain.ChainPolicy.CustomTrustStore.Add(certs[^1]);
        for (int i = 1; i < certs.Count - 1; i++) chain.ChainPolicy.ExtraStore.Add(certs[i]);
        try { return chain.Build(certs[0]); }
        catch (CryptographicException) { return false; }
    }

    private static readonly Dictionary<string, string> NameFields = new(StringComparer.Ordinal)
    {
        ["2.5.4.6"] = "Country",
        ["2.5.4.10"] = "Organization",
        ["2.5.4.11"] = "OrganizationalUnit",
        ["2.5.4.7"] = "Locality",
        ["2.5.4.8"] = "Province",
        ["2.5.4.9"] = "StreetAddress",
        ["2.5.4.17"] = "PostalCode",
    };

    private static RegoValue Name(X500DistinguishedName dn)
    {
        string cn = "", serial = "";
        var lists = NameFields.Values.ToDictionary(v => v, _ => new List<RegoValue>());
        var names = new List<RegoValue>();
        foreach (var rdn in dn.EnumerateRelativeDistinguishedNames())
        {
            var oid = rdn.GetSingleElementType().Value ?? "";
            var value = rdn.GetSingleElementValue() ?? "";
            names.Add(new RegoObject.Builder().Add("Type", IntArray(oid)).Add("Value", Arg.S(value)).Build());
            if (oid == "2.5.4.3") cn = value;
            else if (oid == "2.5.4.5") serial = value;
            else if (NameFields.TryGetValue(oid, out var field)) lists[field].Add(Arg.S(value));
        }
        var o = new RegoObject.Builder();
        foreach (var (k, v) in lists) o.Add(k, v.Count == 0 ? RegoValue.Null : new RegoArray(v.ToArray()));
        o.Add("CommonName", Arg.S(cn)).Add("SerialNumber", Arg.S(serial));
        o.Add("Names", names.Count == 0 ? RegoValue.Null : new RegoArray(names.ToArray()));
        o.Add("ExtraNames", RegoValue.Null);
        return o.Build();
    }

    private static RegoValue IntArray(string oid) =>
        new RegoArray(oid.Split('.').Select(x => (RegoValue)RegoNumber.FromInt64(long.Parse(x, CultureInfo.InvariantCulture))).ToArray());

    private static RegoValue ToValue(X509Certificate2 c)
    {
        var dns = new List<RegoValue>();
        var emails = new List<RegoValue>();
        var uris = new List<RegoValue>();
        var ips = new List<RegoValue>();
        foreach (var ext in c.Extensions)
        {
            if (ext.Oid?.Value != "2.5.29.17") continue;
            try
            {
                var reader = new AsnReader(ext.RawData, AsnEncodingRules.DER).ReadSequence();
                while (reader.HasData)
                {
                    var tag = reader.PeekTag();
                    if (tag.TagClass != TagClass.ContextSpecific) { reader.ReadEncodedValue(); continue; }
                    switch (tag.TagValue)
                    {
                        case 1: emails.Add(Arg.S(reader.ReadCharacterString(UniversalTagNumber.IA5String, tag))); break;
                        case 2: dns.Add(Arg.S(reader.ReadCharacterString(UniversalTagNumber.IA5String, tag))); break;
                        case 6: uris.Add(Arg.S(reader.ReadCharacterString(UniversalTagNumber.IA5String, tag))); break;
                        case 7: ips.Add(Arg.S(new System.Net.IPAddress(reader.ReadOctetString(tag)).ToString())); break;
                        default: reader.ReadEncodedValue(); break;
                    }
                }
            }
            catch (Exception ex) when (ex is AsnContentException or ArgumentException or CryptographicException) { }
        }
        RegoValue ListOrNull(List<RegoValue> l) => l.Count == 0 ? RegoValue.Null : new RegoArray(l.ToArray());
        var serial = new System.Numerics.BigInteger(c.GetSerialNumber(), isUnsigned: true, isBigEndian: false);
        var o = new RegoObject.Builder();
        o.Add("Raw", Arg.S(Convert.ToBase64String(c.RawData)));
        o.Add("Version", Arg.N(c.Version));
        o.Add("SerialNumber", RegoNumber.FromBigInteger(serial));
        o.Add("Subject", Name(c.SubjectName));
        o.Add("Issuer", Name(c.IssuerName));
        o.Add("NotBefore", Arg.S(c.NotBefore.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)));
        o.Add("NotAfter", Arg.S(c.NotAfter.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)));
        o.Add("DNSNames", ListOrNull(dns));
        o.Add("EmailAddresses", ListOrNull(emails));
        o.Add("IPAddresses", ListOrNull(ips));
        o.Add("URIStrings", ListOrNull(uris));
        o.Add("IsCA", Arg.B(c.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority)));
        return o.Build();
    }
}
