using EnvoyAuthz.Redaction;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Where <c>http.send</c> may go (<see cref="Configuration.PolicyHttpSendOptions.AllowedUrlPrefixes"/>),
/// compared as parsed URIs, never as strings: the scheme, the exact host (case-insensitive, IDN
/// in its ASCII form; <c>api.example.com.</c> is not <c>api.example.com</c>), the effective port, then
/// the path prefix on a segment boundary (<c>/v1</c> matches <c>/v1</c> and <c>/v1/x</c>, not
/// <c>/v10</c>; paths compare case-sensitively).
/// </summary>
/// <remarks>
/// A prefix is an origin with an optional path: absolute <c>http</c>/<c>https</c>, a host, no
/// userinfo, no query, no fragment, no dot segments. A requested URL is refused when it carries
/// userinfo, whitespace, control characters or backslashes, or when its path hides structure
/// behind escapes (<c>%2e%2e</c>, <c>%2f</c>, <c>%5c</c>), which servers may decode differently
/// from this check.
/// </remarks>
public sealed class HttpSendAllowList
{
    /// <summary>One parsed prefix.</summary>
    /// <param name="Scheme"><c>http</c> or <c>https</c>.</param>
    /// <param name="Host">The host in its ASCII (IDN) form, lowercase.</param>
    /// <param name="Port">The effective port.</param>
    /// <param name="Path">The path prefix, as <see cref="Uri.AbsolutePath"/> spells it (at least <c>/</c>).</param>
    public sealed record Prefix(string Scheme, string Host, int Port, string Path);

    private readonly Prefix[] _prefixes;

    /// <summary>Parses <paramref name="prefixes"/>; any that does not parse is left out (the options validator rejects it at start).</summary>
    public HttpSendAllowList(IEnumerable<string> prefixes)
    {
        _prefixes = [.. prefixes.Select(p => TryParsePrefix(p, out var prefix, out _) ? prefix : null).OfType<Prefix>()];
    }

    /// <summary>The parsed prefixes.</summary>
    public IReadOnlyList<Prefix> Prefixes => _prefixes;

    /// <summary>Parses a configured prefix; on failure <paramref name="problem"/> says why (never quoting userinfo).</summary>
    public static bool TryParsePrefix(string text, out Prefix? prefix, out string? problem)
    {
        prefix = null;
        if (!TryParseUrl(text, out var uri, out problem))
        {
            return false;
        }
        if (uri.Query.Length > 0 || text.Contains('?'))
        {
            problem = "must not have a query";
            return false;
        }
        if (uri.Fragment.Length > 0 || text.Contains('#'))
        {
            problem = "must not have a fragment";
            return false;
        }
        prefix = new Prefix(uri.Scheme, uri.IdnHost.ToLowerInvariant(), uri.Port, uri.AbsolutePath);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="url"/> may be called. On success <paramref name="uri"/> is what to
    /// request; on failure <paramref name="problem"/> says why, naming at most scheme, host and port.
    /// </summary>
    public bool IsAllowed(string url, out Uri uri, out string? problem)
    {
        if (!TryParseUrl(url, out uri, out problem))
        {
            problem = "url " + problem;
            return false;
        }
        var host = uri.IdnHost.ToLowerInvariant();
        foreach (var p in _prefixes)
        {
            if (p.Scheme == uri.Scheme && p.Host == host && p.Port == uri.Port && PathMatches(p.Path, uri.AbsolutePath))
            {
                return true;
            }
        }
        // No userinfo got this far, so the authority is safe to name.
        problem = $"{uri.GetLeftPart(UriPartial.Authority)} is not an allowed destination";
        return false;
    }

    // "/v1" matches "/v1" and "/v1/…"; "/v1/" matches "/v1/…"; "/" matches everything.
    private static bool PathMatches(string prefix, string path) =>
        path.StartsWith(prefix, StringComparison.Ordinal) &&
        (path.Length == prefix.Length || prefix.EndsWith('/') || path[prefix.Length] == '/');

    private static bool TryParseUrl(string text, out Uri uri, out string? problem)
    {
        uri = null!;
        problem = null;
        foreach (var c in text)
        {
            if (c <= ' ' || c == '\x7f' || c == '\\')
            {
                problem = "must not contain whitespace, control characters or backslashes";
                return false;
            }
        }
        if (!Uri.TryCreate(text, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps))
        {
            problem = "is not an absolute http(s) URL";
            return false;
        }
        // The raw authority too: "https://@host" has an empty userinfo that Uri does not report.
        var authorityStart = text.IndexOf("://", StringComparison.Ordinal) + 3;
        var authorityEnd = text.IndexOfAny(['/', '?', '#'], authorityStart);
        var authority = text.AsSpan(authorityStart, (authorityEnd < 0 ? text.Length : authorityEnd) - authorityStart);
        if (parsed.UserInfo.Length > 0 || authority.Contains('@'))
        {
            problem = "must not carry user information";
            return false;
        }
        if (parsed.HostNameType is UriHostNameType.Unknown or UriHostNameType.Basic || parsed.IdnHost.Length == 0)
        {
            problem = "has no valid host";
            return false;
        }
        var rawPath = authorityEnd < 0 ? "" : text[authorityEnd..];
        var rawPathEnd = rawPath.IndexOfAny(['?', '#']);
        if (HasHiddenStructure(parsed.AbsolutePath) || HasHiddenStructure(rawPathEnd < 0 ? rawPath : rawPath[..rawPathEnd]))
        {
            problem = "has a path with dot segments or encoded separators";
            return false;
        }
        uri = parsed;
        return true;
    }

    // Dot segments (before or after parsing), or escapes that decode to '/', '\', NUL or a dot segment.
    private static bool HasHiddenStructure(string absolutePath)
    {
        if (absolutePath.Contains("%2f", StringComparison.OrdinalIgnoreCase) || absolutePath.Contains("%5c", StringComparison.OrdinalIgnoreCase) ||
            absolutePath.Contains("%00", StringComparison.Ordinal))
        {
            return true;
        }
        foreach (var segment in Uri.UnescapeDataString(absolutePath).Split('/'))
        {
            if (segment is "." or "..")
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A configured prefix as it may appear in an error message (userinfo masked).</summary>
    public static string Describe(string text) => SecretRedactor.MaskUserInfo(text);
}
