using System.Text;
using Envoy.Service.Auth.V3;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// Stage 1: <see cref="CheckRequest"/> → <see cref="AuthzRequest"/>. The path is normalised once by
/// <see cref="PathNormalizer"/> into <c>parsed_path</c> (OPA-Envoy's shape: decoded segments, no
/// leading <c>/</c>); the raw path stays in <c>attributes.request.http.path</c>. The query is parsed
/// as OPA-Envoy parses it (<c>parsed_query</c>: Go's query rules, <c>+</c> is a space). A request
/// Envoy could not have sent (no HTTP attributes; a bad percent escape, a double encoding, a NUL or
/// control character in the path) or, by default, an ambiguous path (dot segments, encoded
/// <c>/</c> or <c>\</c>, a raw <c>\</c>, <c>;</c> parameters) is a <c>bad_request</c>.
/// </summary>
public static class CheckRequestParser
{
    /// <summary>Parses <paramref name="check"/>, denying ambiguous paths; on failure returns null and a fixed-vocabulary problem.</summary>
    public static AuthzRequest? Parse(CheckRequest check, out string? problem) => Parse(check, rejectAmbiguousPaths: true, out problem);

    /// <summary>
    /// Parses <paramref name="check"/>; on failure returns null and a fixed-vocabulary problem. With
    /// <paramref name="rejectAmbiguousPaths"/> false an ambiguous path is normalised instead of denied.
    /// </summary>
    public static AuthzRequest? Parse(CheckRequest check, bool rejectAmbiguousPaths, out string? problem)
    {
        problem = null;
        var http = check.Attributes?.Request?.Http;
        if (http is null)
        {
            problem = "the CheckRequest has no HTTP request attributes";
            return null;
        }
        var headers = CollectHeaders(http);
        var rawPath = http.Path;
        if (string.IsNullOrEmpty(rawPath) && headers.TryGetValue(":path", out var pseudo))
        {
            rawPath = pseudo;
        }
        var q = rawPath.IndexOf('?', StringComparison.Ordinal);
        var pathOnly = q >= 0 ? rawPath[..q] : rawPath;
        var fragment = pathOnly.IndexOf('#', StringComparison.Ordinal);
        if (fragment >= 0)
        {
            pathOnly = pathOnly[..fragment];
        }
        var query = q >= 0 ? rawPath[(q + 1)..] : "";
        var hash = query.IndexOf('#', StringComparison.Ordinal);
        if (hash >= 0)
        {
            query = query[..hash];
        }
        if (HasScheme(pathOnly))
        {
            // Envoy's codecs split an absolute-form target (http://user:pw@host/path) into :authority
            // and an origin-form :path, so a Check never carries one; such a path is not decided on.
            // (RFC 3986 §4.2: a first segment with ':' is a scheme, not a relative path.)
            problem = "the request path is not in origin form";
            return null;
        }
        var pathProblem = PathNormalizer.Normalize(pathOnly, rejectAmbiguousPaths, out var segments);
        if (pathProblem != PathProblem.None)
        {
            problem = PathNormalizer.Describe(pathProblem);
            return null;
        }

        ReadOnlyMemory<byte> body = http.RawBody.Length > 0
            ? http.RawBody.Memory
            : http.Body.Length > 0 ? Encoding.UTF8.GetBytes(http.Body) : ReadOnlyMemory<byte>.Empty;
        var truncated = headers.TryGetValue("x-envoy-auth-partial-body", out var partial) && partial.Equals("true", StringComparison.OrdinalIgnoreCase);
        if (!truncated && headers.TryGetValue("content-length", out var cl) && long.TryParse(cl, out var length) && length > body.Length)
        {
            truncated = true;
        }

        var host = http.Host;
        if (string.IsNullOrEmpty(host) && headers.TryGetValue(":authority", out var authority))
        {
            host = authority;
        }
        var method = http.Method;
        if (string.IsNullOrEmpty(method) && headers.TryGetValue(":method", out var m))
        {
            method = m;
        }
        return new AuthzRequest
        {
            Check = check,
            Method = method.ToUpperInvariant(),
            RawPath = rawPath,
            PathOnly = pathOnly,
            Query = query,
            Host = host.ToLowerInvariant(),
            Scheme = http.Scheme,
            Headers = headers,
            ContextExtensions = check.Attributes!.ContextExtensions,
            ParsedPath = segments,
            ParsedQuery = ParseQuery(query),
            Body = body,
            TruncatedBody = truncated,
        };
    }

    private static Dictionary<string, string> CollectHeaders(AttributeContext.Types.HttpRequest http)
    {
        var headers = new Dictionary<string, string>(http.Headers.Count + 4, StringComparer.Ordinal);
        foreach (var (k, v) in http.Headers)
        {
            headers[k.ToLowerInvariant()] = v;
        }
        if (http.HeaderMap is { } map)
        {
            // Envoy sends header_map instead of headers when encode_raw_headers is set.
            foreach (var h in map.Headers)
            {
                var name = h.Key.ToLowerInvariant();
                var value = h.RawValue.Length > 0 ? h.RawValue.ToStringUtf8() : h.Value;
                headers[name] = headers.TryGetValue(name, out var existing) && http.Headers.Count == 0 ? existing + "," + value : value;
            }
        }
        return headers;
    }

    /// <summary>Whether a path that does not start with a separator names a scheme (<c>http:…</c>) in its first segment.</summary>
    private static bool HasScheme(string path)
    {
        if (path.Length == 0 || path[0] is '/' or '\\')
        {
            return false;
        }
        var end = path.IndexOfAny(['/', '\\']);
        return (end < 0 ? path : path[..end]).Contains(':');
    }

    /// <summary>Go's <c>url.ParseQuery</c> as <c>url.Query()</c> uses it: bad pairs are skipped.</summary>
    public static List<KeyValuePair<string, List<string>>> ParseQuery(string query)
    {
        var result = new List<KeyValuePair<string, List<string>>>();
        if (query.Length == 0)
        {
            return result;
        }
        Dictionary<string, List<string>>? index = null;
        foreach (var pair in query.Split('&'))
        {
            if (pair.Length == 0 || pair.Contains(';'))
            {
                continue;
            }
            var eq = pair.IndexOf('=');
            var rawKey = eq >= 0 ? pair[..eq] : pair;
            var rawValue = eq >= 0 ? pair[(eq + 1)..] : "";
            if (!TryUnescape(rawKey, plusIsSpace: true, out var key) || !TryUnescape(rawValue, plusIsSpace: true, out var value))
            {
                continue;
            }
            index ??= new Dictionary<string, List<string>>(StringComparer.Ordinal);
            if (!index.TryGetValue(key, out var values))
            {
                values = [];
                index[key] = values;
                result.Add(new(key, values));
            }
            values.Add(value);
        }
        return result;
    }

    /// <summary>Percent-decoding; invalid UTF-8 becomes U+FFFD (as JSON encoding of Go strings does).</summary>
    public static bool TryUnescape(string s, bool plusIsSpace, out string result)
    {
        if (s.IndexOf('%') < 0 && (!plusIsSpace || s.IndexOf('+') < 0))
        {
            result = s;
            return true;
        }
        var bytes = new List<byte>(s.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '%')
            {
                if (i + 2 >= s.Length || !IsHex(s[i + 1]) || !IsHex(s[i + 2]))
                {
                    result = "";
                    return false;
                }
                bytes.Add((byte)(HexValue(s[i + 1]) << 4 | HexValue(s[i + 2])));
                i += 2;
            }
            else if (c == '+' && plusIsSpace)
            {
                bytes.Add((byte)' ');
            }
            else if (c < 0x80)
            {
                bytes.Add((byte)c);
            }
            else
            {
                // A valid surrogate pair is one code point; a lone surrogate becomes U+FFFD (3 bytes).
                var n = i + 1 < s.Length && char.IsSurrogatePair(c, s[i + 1])
                    ? Encoding.UTF8.GetBytes(s.AsSpan(i++, 2), utf8)
                    : Encoding.UTF8.GetBytes(s.AsSpan(i, 1), utf8);
                for (var k = 0; k < n; k++)
                {
                    bytes.Add(utf8[k]);
                }
            }
        }
        result = Encoding.UTF8.GetString(bytes.ToArray());
        return true;
    }

    private static bool IsHex(char c) => c is >= '0' and <= '9' or >= 'a' and <= 'f' or >= 'A' and <= 'F';

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
