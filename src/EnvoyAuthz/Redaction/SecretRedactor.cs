using System.Text;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Redaction;

/// <summary>
/// The one place that decides what of a request is a secret, used by every view of it: the policy
/// input (headers, <c>header_map</c>, host, path and query, raw and parsed bodies, JSON-RPC
/// <c>params</c>) and the decision log. Secrets are masked as <c>[REDACTED]</c> rather than removed,
/// so a policy can see that one was sent.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><b>Headers</b>, by case-insensitive name: <c>authorization</c>, <c>proxy-authorization</c>,
/// <c>cookie</c>, <c>x-api-key</c>, <c>x-airflow-password</c>, the configured token header, and any
/// name that is a sensitive key (<see cref="SensitiveKeys"/>, with <c>-</c> read as <c>_</c>:
/// <c>x-auth-token</c>, <c>x-vault-token</c>, …). Userinfo in <c>host</c>/<c>:authority</c>
/// (and <c>x-forwarded-host</c>) and in any URL inside a header value is masked; so are sensitive
/// query parameters of header values that are request targets or URLs (<c>:path</c>,
/// <c>x-envoy-original-path</c>, <c>x-original-uri</c>, <c>x-forwarded-uri</c>, <c>referer</c>, …).</item>
/// <item><b>Paths and query strings</b> (<c>path</c>, <c>:path</c>, <c>parsed_path</c>,
/// <c>parsed_query</c>): values of query parameters with sensitive keys (<c>access_token</c>,
/// <c>password</c>, …); userinfo of an absolute-form target. Path parameters (<c>;jsessionid=…</c>)
/// stay in the policy input, as OPA-Envoy's <c>parsed_path</c> keeps them; logs never show them.</item>
/// <item><b>Bodies</b>, parsed (JSON, forms) and raw: values under sensitive keys, recursively; a
/// variable whose <c>key</c> is sensitive has its <c>value</c> masked (as Airflow masks it); a string
/// holding JSON is redacted inside and re-serialised (an <c>extra</c> string that is not a JSON
/// object is masked whole); userinfo of URLs inside strings is masked. Under a sensitive key, strings,
/// numbers and objects are masked, arrays element by element, while <c>null</c> and booleans (which
/// carry no secret) stay. A raw body that was redacted is replaced by its redacted form (JSON
/// re-serialised; a form with only the secret values replaced); a raw body that cannot be parsed
/// (truncated, another format) but mentions a sensitive key is replaced by <c>[REDACTED]</c> whole.
/// An untouched body stays byte for byte.</item>
/// <item><b>Logs</b>: <see cref="HostForLog"/>, <see cref="PathForLog"/>, <see cref="MethodForLog"/>
/// drop userinfo, path parameters (<c>;jsessionid=…</c>) and queries altogether.</item>
/// </list>
/// </remarks>
public sealed class SecretRedactor
{
    /// <summary>What replaces a secret.</summary>
    public const string Mask = SensitiveKeys.Mask;

    /// <summary>Headers whose values never reach policy input, whatever else is configured.</summary>
    public static readonly IReadOnlyList<string> AlwaysRedactedHeaders =
        ["authorization", "proxy-authorization", "cookie", "x-api-key", "x-airflow-password"];

    // Nested JSON strings are opened this deep; deeper ones are masked when they mention a secret.
    private const int MaxNestedJson = 4;
    // Larger raw bodies are not parsed: masked whole when they mention a secret.
    private const int MaxParsedRawBody = 4 << 20;
    private const string FormMask = "%5BREDACTED%5D";
    private static readonly RegoString MaskValue = new(Mask);
    // Headers holding an authority (host[:port]) whose userinfo is masked.
    private static readonly HashSet<string> AuthorityHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        ":authority", "host", "x-forwarded-host", "x-original-host",
    };

    private readonly SensitiveKeys _sensitive;
    private readonly HashSet<string> _secretHeaders;

    /// <summary>Creates the redactor over <paramref name="sensitive"/> key names, also masking <paramref name="tokenHeader"/>.</summary>
    public SecretRedactor(SensitiveKeys sensitive, string? tokenHeader = null)
    {
        _sensitive = sensitive;
        _secretHeaders = new HashSet<string>(AlwaysRedactedHeaders, StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrWhiteSpace(tokenHeader))
        {
            _secretHeaders.Add(tokenHeader.Trim());
        }
    }

    /// <summary>The redactor the configuration describes (<c>Identity:TokenHeader</c>, <c>Airflow:SensitiveKeys</c>).</summary>
    public static SecretRedactor For(AuthzOptions options) =>
        new(new SensitiveKeys(options.Airflow.SensitiveKeys), options.Identity.TokenHeader);

    /// <summary>Whether a header's value is a secret; <paramref name="name"/> in any letter case.</summary>
    public bool IsSecretHeader(string name)
    {
        if (_secretHeaders.Contains(name))
        {
            return true;
        }
        // Header names repeat on every Check: remember the verdict (bounded, so random names cannot grow it).
        if (_headerVerdicts.TryGetValue(name, out var known))
        {
            return known;
        }
        var secret = name.Length > 0 && name[0] != ':' && _sensitive.IsSensitive(name.Replace('-', '_'));
        if (_headerVerdicts.Count < MaxRememberedHeaderNames)
        {
            _headerVerdicts.TryAdd(name, secret);
        }
        return secret;
    }

    private const int MaxRememberedHeaderNames = 4096;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _headerVerdicts = new(StringComparer.Ordinal);

    /// <summary>
    /// A header's value as the policy may see it, or null when it is shown unchanged. Fits
    /// <see cref="ProtoValueConverter.HeaderFilter"/>.
    /// </summary>
    public string? Header(string name, string value)
    {
        if (IsSecretHeader(name))
        {
            return Mask;
        }
        string redacted;
        if (AuthorityHeaders.Contains(name))
        {
            redacted = Authority(value);
        }
        else if (value.StartsWith('/') || LooksLikeUrl(value))
        {
            // :path, x-envoy-original-path, nginx's X-Original-URI, Traefik's X-Forwarded-Uri, Referer, …
            redacted = PathAndQuery(value);
        }
        else
        {
            redacted = MaskUserInfo(value);
        }
        return ReferenceEquals(redacted, value) ? null : redacted;
    }

    // scheme "://" at the start (RFC 3986 scheme characters).
    private static bool LooksLikeUrl(string value)
    {
        var sep = value.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0 || !char.IsAsciiLetter(value[0]))
        {
            return false;
        }
        foreach (var c in value.AsSpan(0, sep))
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>An authority (<c>host[:port]</c>) with any userinfo masked: <c>u:pw@h</c> → <c>[REDACTED]@h</c>.</summary>
    public static string Authority(string authority)
    {
        var at = authority.LastIndexOf('@');
        return at < 0 ? MaskUserInfo(authority) : Mask + authority[at..];
    }

    /// <summary>A request target (<c>/path?query#fragment</c>): sensitive query values masked, userinfo of an absolute form masked.</summary>
    public string PathAndQuery(string target)
    {
        var q = target.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? target : target[..q];
        var maskedPath = MaskUserInfo(path);
        if (q < 0)
        {
            return maskedPath;
        }
        var rest = target[(q + 1)..];
        var hash = rest.IndexOf('#', StringComparison.Ordinal);
        var query = hash < 0 ? rest : rest[..hash];
        var maskedQuery = Query(query);
        if (ReferenceEquals(maskedPath, path) && ReferenceEquals(maskedQuery, query))
        {
            return target;
        }
        return maskedPath + "?" + maskedQuery + (hash < 0 ? "" : rest[hash..]);
    }

    /// <summary>Decoded path segments (<c>parsed_path</c>) with the userinfo of an absolute-form target masked (<c>["http:", "", "u:pw@h", …]</c>).</summary>
    public IReadOnlyList<string> ParsedPath(IReadOnlyList<string> segments)
    {
        string[]? result = null;
        for (var i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            var r = i == 2 && segments[0].EndsWith(':') && segments[1].Length == 0 ? Authority(s) : s;
            if (result is null && !ReferenceEquals(r, s))
            {
                result = [.. segments];
            }
            if (result is not null)
            {
                result[i] = r;
            }
        }
        return result ?? segments;
    }

    /// <summary>
    /// A query string or <c>application/x-www-form-urlencoded</c> body: values of sensitive keys
    /// become <c>%5BREDACTED%5D</c>, values holding JSON or URLs with userinfo are redacted inside;
    /// every other byte stays. Returns the same instance when nothing changed.
    /// </summary>
    public string Query(string query)
    {
        if (query.Length == 0)
        {
            return query;
        }
        StringBuilder? sb = null;
        var start = 0;
        while (start <= query.Length)
        {
            var end = query.IndexOf('&', start);
            if (end < 0)
            {
                end = query.Length;
            }
            var pair = query.AsSpan(start, end - start);
            var eq = pair.IndexOf('=');
            var rawKey = eq < 0 ? pair : pair[..eq];
            string? replacement = null;
            if (rawKey.Length > 0)
            {
                var key = CheckRequestParser.TryUnescape(rawKey.ToString(), plusIsSpace: true, out var k) ? k : rawKey.ToString();
                if (_sensitive.IsSensitive(key))
                {
                    replacement = eq < 0 ? null : string.Concat(rawKey, "=", FormMask);
                }
                else if (eq >= 0)
                {
                    var raw = pair[(eq + 1)..].ToString();
                    if (CheckRequestParser.TryUnescape(raw, plusIsSpace: true, out var value))
                    {
                        var redacted = RedactString(value, 0);
                        replacement = ReferenceEquals(redacted, value) ? null : string.Concat(rawKey, "=", Uri.EscapeDataString(redacted));
                    }
                    else if (MaskUserInfo(raw) is var masked && !ReferenceEquals(masked, raw))
                    {
                        replacement = string.Concat(rawKey, "=", masked); // a bad escape: redact what can be read
                    }
                }
            }
            if (replacement is not null)
            {
                sb ??= new StringBuilder(query.Length + 16).Append(query, 0, start);
                sb.Append(replacement);
            }
            else
            {
                sb?.Append(pair);
            }
            if (end < query.Length)
            {
                sb?.Append('&');
            }
            start = end + 1;
        }
        return sb?.ToString() ?? query;
    }

    /// <summary>A parsed body (JSON value, or a form as name → values) with its secrets masked; the same instance when it has none.</summary>
    public RegoValue Body(RegoValue parsed) => Walk(parsed, 0);

    /// <summary>
    /// A raw body as text: the redacted form when it has secrets (see the class remarks), else
    /// <paramref name="body"/> itself.
    /// </summary>
    public string RawBody(string body, string? contentType)
    {
        if (body.Length == 0)
        {
            return body;
        }
        if (body.Length > MaxParsedRawBody)
        {
            return MentionsSecret(body) ? Mask : body;
        }
        if (contentType is not null && contentType.Contains("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            return Query(body);
        }
        if (LooksLikeJson(body) && RegoJson.TryParse(body, out var parsed))
        {
            var redacted = Walk(parsed, 0);
            return ReferenceEquals(redacted, parsed) ? body : RegoJson.Serialize(redacted);
        }
        return MentionsSecret(body) ? Mask : body;
    }

    /// <summary>
    /// <c>input.attributes</c> (protojson of <c>CheckRequest.attributes</c>, headers already filtered
    /// by <see cref="Header"/>) with <c>request.http.host</c>, <c>path</c>, <c>query</c>,
    /// <c>body</c> and <c>rawBody</c> (base64) redacted.
    /// </summary>
    public RegoObject HttpAttributes(RegoObject attributes, string? contentType)
    {
        if (attributes["request"] is not RegoObject request || request["http"] is not RegoObject http)
        {
            return attributes;
        }
        var h = new RegoObject.Builder(http.Count);
        var changed = false;
        foreach (var (k, v) in http.Pairs)
        {
            var replaced = k is RegoString { Value: var name } && v is RegoString { Value: var s } ? name switch
            {
                "host" => Authority(s),
                "path" => PathAndQuery(s),
                "query" => Query(s),
                "body" => RawBody(s, contentType),
                "rawBody" => RawBase64(s, contentType),
                _ => s,
            } : null;
            if (replaced is not null && !ReferenceEquals(replaced, ((RegoString)v).Value))
            {
                h.Add(k, RegoValue.From(replaced));
                changed = true;
            }
            else
            {
                h.Add(k, v);
            }
        }
        return changed ? Replace(attributes, "request", Replace(request, "http", h.Build())) : attributes;
    }

    /// <summary>A request authority for a log line: userinfo dropped (<c>u:pw@h</c> → <c>h</c>).</summary>
    public static string? HostForLog(string? host)
    {
        if (host is null)
        {
            return null;
        }
        var at = host.LastIndexOf('@');
        return at < 0 ? host : host[(at + 1)..];
    }

    /// <summary>
    /// A request path for a log line: no query or fragment, no path parameters (<c>;jsessionid=…</c>
    /// up to the next <c>/</c>), and for an absolute-form target only its path (no scheme, no authority).
    /// </summary>
    public static string? PathForLog(string? path)
    {
        if (path is null)
        {
            return null;
        }
        var end = path.IndexOfAny(['?', '#']);
        if (end >= 0)
        {
            path = path[..end];
        }
        if (!path.StartsWith('/') && path.IndexOf("://", StringComparison.Ordinal) is var scheme and > 0)
        {
            var slash = path.IndexOf('/', scheme + 3);
            path = slash < 0 ? "/" : path[slash..];
        }
        if (!path.Contains(';'))
        {
            return path;
        }
        var sb = new StringBuilder(path.Length);
        var inParams = false;
        foreach (var c in path)
        {
            if (c == '/')
            {
                inParams = false;
            }
            else if (c == ';')
            {
                inParams = true;
            }
            if (!inParams)
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }

    /// <summary>A request method for a log line: an RFC 9110 token of at most 20 characters, else <c>(invalid)</c>.</summary>
    public static string? MethodForLog(string? method)
    {
        if (method is null)
        {
            return null;
        }
        if (method.Length is 0 or > 20)
        {
            return "(invalid)";
        }
        foreach (var c in method)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c)))
            {
                return "(invalid)";
            }
        }
        return method;
    }

    /// <summary>Every URL inside <paramref name="text"/> (<c>scheme://userinfo@host…</c>) with its userinfo masked; the same instance when there is none.</summary>
    public static string MaskUserInfo(string text)
    {
        var from = 0;
        StringBuilder? sb = null;
        var copied = 0;
        while (from < text.Length && text.IndexOf("://", from, StringComparison.Ordinal) is var sep and >= 0)
        {
            var authStart = sep + 3;
            var authEnd = text.IndexOfAny(['/', '?', '#', ' ', '"', '\'', '<', '>', '\t', '\r', '\n', '\\'], authStart);
            if (authEnd < 0)
            {
                authEnd = text.Length;
            }
            var at = authEnd > authStart ? text.LastIndexOf('@', authEnd - 1, authEnd - authStart) : -1;
            if (at >= authStart && !text.AsSpan(authStart, at - authStart).SequenceEqual(Mask))
            {
                sb ??= new StringBuilder(text.Length);
                sb.Append(text, copied, authStart - copied).Append(Mask);
                copied = at;
            }
            from = authEnd;
        }
        if (sb is null)
        {
            return text;
        }
        return sb.Append(text, copied, text.Length - copied).ToString();
    }

    private string RawBase64(string base64, string? contentType)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64);
        }
        catch (FormatException)
        {
            return Mask;
        }
        var text = Encoding.UTF8.GetString(bytes);
        var redacted = RawBody(text, contentType);
        return ReferenceEquals(redacted, text) ? base64 : Convert.ToBase64String(Encoding.UTF8.GetBytes(redacted));
    }

    private RegoValue Walk(RegoValue value, int nesting)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (value)
        {
            case RegoObject o:
                {
                    var sensitiveVariable = o["key"] is RegoString key && _sensitive.IsSensitive(key.Value);
                    var pairs = new KeyValuePair<RegoValue, RegoValue>[o.Count];
                    var changed = false;
                    var i = 0;
                    foreach (var (k, v) in o.Pairs)
                    {
                        var name = k is RegoString s ? s.Value : null;
                        RegoValue r;
                        if (name is not null && (_sensitive.IsSensitive(name) || sensitiveVariable && name == "value"))
                        {
                            r = MaskSecret(v);
                        }
                        else if (name == "extra" && v is RegoString { Value: var extra } && !string.IsNullOrWhiteSpace(extra) &&
                                 !(LooksLikeJson(extra) && RegoJson.TryParse(extra, out var parsedExtra) && parsedExtra is RegoObject))
                        {
                            r = MaskValue; // an Airflow extra that is not a JSON object cannot be inspected
                        }
                        else
                        {
                            r = Walk(v, nesting);
                        }
                        changed |= !ReferenceEquals(r, v);
                        pairs[i++] = new(k, r);
                    }
                    return changed ? RegoObject.From(pairs) : o;
                }
            case RegoArray a:
                {
                    RegoValue[]? items = null;
                    for (var i = 0; i < a.Count; i++)
                    {
                        var r = Walk(a[i], nesting);
                        if (items is null && !ReferenceEquals(r, a[i]))
                        {
                            items = new RegoValue[a.Count];
                            for (var j = 0; j < i; j++)
                            {
                                items[j] = a[j];
                            }
                        }
                        if (items is not null)
                        {
                            items[i] = r;
                        }
                    }
                    return items is null ? a : RegoArray.From(items);
                }
            case RegoString s:
                {
                    var r = RedactString(s.Value, nesting);
                    return ReferenceEquals(r, s.Value) ? s : RegoValue.From(r);
                }
            default:
                return value;
        }
    }

    // A string value: JSON inside is redacted and re-serialised; URLs lose their userinfo.
    private string RedactString(string value, int nesting)
    {
        if (LooksLikeJson(value))
        {
            if (nesting >= MaxNestedJson)
            {
                return MentionsSecret(value) ? Mask : value;
            }
            if (RegoJson.TryParse(value, out var inner) && inner is RegoObject or RegoArray)
            {
                var r = Walk(inner, nesting + 1);
                return ReferenceEquals(r, inner) ? value : RegoJson.Serialize(r);
            }
        }
        return MaskUserInfo(value);
    }

    private static RegoValue MaskSecret(RegoValue value) => value switch
    {
        RegoNull or RegoBoolean => value,
        RegoArray a => RegoArray.From(a.Elements.Select(MaskSecret)),
        _ => MaskValue,
    };

    private bool MentionsSecret(string text) => _sensitive.IsSensitive(text) || !ReferenceEquals(MaskUserInfo(text), text);

    private static bool LooksLikeJson(string s)
    {
        foreach (var c in s)
        {
            if (c is ' ' or '\t' or '\r' or '\n')
            {
                continue;
            }
            return c is '{' or '[';
        }
        return false;
    }

    private static RegoObject Replace(RegoObject o, string key, RegoValue value)
    {
        var b = new RegoObject.Builder(o.Count);
        foreach (var (k, v) in o.Pairs)
        {
            b.Add(k, k is RegoString s && s.Value == key ? value : v);
        }
        return b.Build();
    }
}
