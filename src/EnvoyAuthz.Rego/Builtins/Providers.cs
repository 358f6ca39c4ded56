using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>providers.aws.sign_req: AWS Signature Version 4 request signing.</summary>
internal static class Providers
{
    private const string Fn = "providers.aws.sign_req";

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, Fn, 3, (_, a) => Sign(Arg.Obj(Fn, a, 0), Arg.Obj(Fn, a, 1), Arg.Num(Fn, a, 2)));
    }

    private static string Keys(IEnumerable<string> keys) => "{" + string.Join(", ", keys.Select(Strings.Quote)) + "}";

    private static RegoValue Sign(RegoObject req, RegoObject cfg, RegoNumber timeNs)
    {
        string[] reqKeys = ["method", "url"];
        var missing = reqKeys.Where(k => !req.TryGetValue(k, out RegoValue _)).ToList();
        if (missing.Count > 0) throw BuiltinException.TypeMsg(Fn, $"operand 1 missing required request parameters(s): {Keys(missing)}");
        var badReq = reqKeys.Where(k => req[k] is not RegoString).ToList();
        if (badReq.Count > 0) throw BuiltinException.TypeMsg(Fn, $"operand 1 invalid values for required request parameters(s): {Keys(badReq)}");
        string[] cfgKeys = ["aws_access_key", "aws_region", "aws_secret_access_key", "aws_service"];
        var missingCfg = cfgKeys.Where(k => !cfg.TryGetValue(k, out RegoValue _)).ToList();
        if (missingCfg.Count > 0) throw BuiltinException.TypeMsg(Fn, $"operand 2 missing required AWS config parameters(s): {Keys(missingCfg)}");
        var badCfg = cfgKeys.Where(k => cfg[k] is not RegoString).ToList();
        if (badCfg.Count > 0) throw BuiltinException.TypeMsg(Fn, $"operand 2 invalid values for required AWS config parameters(s): {Keys(badCfg)}");
        bool unsignedPayload = false;
        if (cfg["disable_payload_signing"] is { } dps)
        {
            if (dps is not RegoBoolean b) throw BuiltinException.TypeMsg(Fn, "operand 2 invalid value for 'disable_payload_signing' in AWS config");
            unsignedPayload = b.Value;
        }
        if (!timeNs.TryGetInt64(out var ns) || ns < 0) throw BuiltinException.TypeMsg(Fn, "operand 3 could not convert time_ns value into a unix timestamp");
        string S(RegoObject o, string k) => ((RegoString)o[k]!).Value;
        var method = S(req, "method");
        var url = S(req, "url");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)) throw BuiltinException.Error(Fn, $"invalid url {url}");
        var access = S(cfg, "aws_access_key");
        var secret = S(cfg, "aws_secret_access_key");
        var region = S(cfg, "aws_region");
        var service = S(cfg, "aws_service");
        var token = cfg["aws_session_token"] as RegoString;

        byte[] body = req["raw_body"] is RegoString raw ? Encoding.UTF8.GetBytes(raw.Value)
            : req["body"] is { } bv ? Encoding.UTF8.GetBytes(bv.ToJson()) : [];
        var payloadHash = unsignedPayload ? "UNSIGNED-PAYLOAD" : Convert.ToHexString(SHA256.HashData(body)).ToLowerInvariant();

        var time = DateTime.UnixEpoch.AddTicks(ns / 100);
        var amzDate = time.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var date = time.ToString("yyyyMMdd", CultureInfo.InvariantCulture);

        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var outHeaders = new RegoObject.Builder();
        if (req["headers"] is RegoObject hs)
            foreach (var kv in hs.Pairs)
            {
                var name = (kv.Key as RegoString)?.Value ?? kv.Key.ToString();
                var value = kv.Value is RegoString vs ? vs.Value : kv.Value.ToJson();
                headers[name.ToLowerInvariant()] = value.Trim();
                outHeaders.Add(name, kv.Value);
            }
        headers["host"] = uri.IsDefaultPort ? uri.Host : uri.Host + ":" + uri.Port.ToString(CultureInfo.InvariantCulture);
        headers["x-amz-date"] = amzDate;
        // an existing content hash header is signed as given (as OPA's signer does); the output carries the computed one
        headers.TryAdd("x-amz-content-sha256", payloadHash);
        if (token is not null) headers["x-amz-security-token"] = token.Value;

        var signedHeaders = string.Join(";", headers.Keys);
        var canonicalHeaders = string.Concat(headers.Select(kv => kv.Key + ":" + kv.Value + "\n"));
        // the path as written (Go's URL.EscapedPath): empty when the URL has none
        int schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        int pathStart = schemeEnd < 0 ? -1 : url.IndexOf('/', schemeEnd + 3);
        var path = pathStart < 0 ? "" : uri.AbsolutePath;
        var query = uri.Query.TrimStart('?');
        var canonicalQuery = string.Join("&", query.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => { int eq = p.IndexOf('='); return (K: Uri.EscapeDataString(Uri.UnescapeDataString(eq < 0 ? p : p[..eq])), V: eq < 0 ? "" : Uri.EscapeDataString(Uri.UnescapeDataString(p[(eq + 1)..]))); })
            .OrderBy(p => p.K, StringComparer.Ordinal).ThenBy(p => p.V, StringComparer.Ordinal).Select(p => p.K + "=" + p.V));
        var canonicalRequest = $"{method}\n{path}\n{canonicalQuery}\n{canonicalHeaders}\n{signedHeaders}\n{payloadHash}";
        var scope = $"{date}/{region}/{service}/aws4_request";
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest))).ToLowerInvariant()}";
        var kDate = HMACSHA256.HashData(Encoding.UTF8.GetBytes("AWS4" + secret), Encoding.UTF8.GetBytes(date));
        var kRegion = HMACSHA256.HashData(kDate, Encoding.UTF8.GetBytes(region));
        var kService = HMACSHA256.HashData(kRegion, Encoding.UTF8.GetBytes(service));
        var kSigning = HMACSHA256.HashData(kService, "aws4_request"u8.ToArray());
        var signature = Convert.ToHexString(HMACSHA256.HashData(kSigning, Encoding.UTF8.GetBytes(stringToSign))).ToLowerInvariant();

        outHeaders.Add("Authorization", Arg.S($"AWS4-HMAC-SHA256 Credential={access}/{scope},SignedHeaders={signedHeaders},Signature={signature}"));
        outHeaders.Add("host", Arg.S(headers["host"]));
        outHeaders.Add("x-amz-content-sha256", Arg.S(payloadHash));
        outHeaders.Add("x-amz-date", Arg.S(amzDate));
        if (token is not null) outHeaders.Add("x-amz-security-token", token);
        var result = new RegoObject.Builder();
        foreach (var kv in req.Pairs) if (!(kv.Key is RegoString { Value: "headers" })) result.Add(kv.Key, kv.Value);
        result.Add("headers", outHeaders.Build());
        return result.Build();
    }
}
