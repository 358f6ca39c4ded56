using System.Globalization;
using System.Text;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Airflow's two textual forms of a connection, parsed the way Airflow parses them, with the
/// password dropped on the spot and secret extras removed. Problems come back as fixed
/// messages that never quote the input (it may hold a password).
/// </summary>
/// <remarks>
/// URI rules follow <c>Connection._parse_from_uri</c>: at most two <c>://</c>; with two, the
/// first scheme is the conn_type and the second stays on the host (<c>http://https://h</c> →
/// conn_type <c>http</c>, host <c>https://h</c>), and the part before the second <c>://</c> may
/// hold neither <c>@</c> nor <c>:</c>; conn_type is lowercased and normalised
/// (<c>postgresql</c> → <c>postgres</c>, <c>-</c> → <c>_</c>); host is lowercased and
/// percent-decoded (a decoded <c>/</c> keeps the raw netloc host); schema is the decoded path
/// without its leading <c>/</c>; login and password are percent-decoded; the query becomes the
/// extra: <c>__extra__</c> holds the whole extra as JSON, otherwise every parameter is a string
/// extra (the last of repeated names wins, <c>+</c> is a space, blank values kept).
/// </remarks>
public static class ConnectionParser
{
    /// <summary>The query parameter holding the whole extra as JSON.</summary>
    public const string ExtraKey = "__extra__";

    private const string MoreThanTwoSchemes = "more than two '://' in the URI";
    private const string BadProtocol = "the host's protocol in a double-scheme URI is not valid";
    private const string UnclosedIpv6 = "an IPv6 host is missing its ']'";
    private const string TextAfterIpv6 = "unexpected text after an IPv6 host";
    private const string BadPort = "the port is not a number between 0 and 65535";

    /// <summary>
    /// Whether Airflow's own URI parsing raises on what <see cref="ParseUri"/> reported as
    /// <paramref name="problem"/> (more than two <c>://</c>, a bad double-scheme protocol, a bad
    /// port or IPv6 host). Otherwise Airflow builds a connection without a usable host.
    /// </summary>
    public static bool AirflowRefuses(string problem) => problem is MoreThanTwoSchemes or BadProtocol or UnclosedIpv6 or TextAfterIpv6 or BadPort;

    /// <summary>Parses the URI form.</summary>
    public static AirflowConnection? ParseUri(string connId, string uri, SensitiveKeys sensitive, out string? problem)
    {
        problem = null;
        uri = uri.Trim();
        var schemes = CountOf(uri, "://");
        if (schemes is 0 or > 2)
        {
            problem = schemes == 0 ? "not a URI (no '://')" : MoreThanTwoSchemes;
            return null;
        }
        var first = uri.IndexOf("://", StringComparison.Ordinal);
        var connType = uri[..first];
        if (!IsScheme(connType))
        {
            problem = "the connection type (URI scheme) is not valid";
            return null;
        }
        connType = AirflowConnection.NormalizeConnType(connType.ToLowerInvariant());
        var rest = uri[(first + 3)..];
        string? protocol = null;
        if (schemes == 2)
        {
            var second = rest.IndexOf("://", StringComparison.Ordinal);
            var proto = rest[..second];
            if (proto.Contains('@', StringComparison.Ordinal) || proto.Contains(':', StringComparison.Ordinal) || !IsScheme(proto))
            {
                problem = BadProtocol;
                return null;
            }
            protocol = proto.ToLowerInvariant();
            rest = rest[(second + 3)..];
        }

        // Split off fragment, query and path (urlsplit order: '#' first, then '?', path from '/').
        var hash = rest.IndexOf('#', StringComparison.Ordinal);
        if (hash >= 0)
        {
            rest = rest[..hash];
        }
        var query = "";
        var q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        var netloc = rest;
        var path = "";
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            netloc = rest[..slash];
            path = rest[slash..];
        }

        string? username = null;
        var hostPort = netloc;
        var at = netloc.LastIndexOf('@');
        if (at >= 0)
        {
            var userInfo = netloc[..at];
            hostPort = netloc[(at + 1)..];
            var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
            username = colon >= 0 ? userInfo[..colon] : userInfo;
            // The password (after the colon) is deliberately never read.
        }

        string hostname;
        string? portText = null;
        if (hostPort.StartsWith('['))
        {
            var close = hostPort.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                problem = UnclosedIpv6;
                return null;
            }
            hostname = hostPort[1..close];
            var after = hostPort[(close + 1)..];
            if (after.StartsWith(':'))
            {
                portText = after[1..];
            }
            else if (after.Length > 0)
            {
                problem = TextAfterIpv6;
                return null;
            }
        }
        else
        {
            var colon = hostPort.LastIndexOf(':');
            hostname = colon >= 0 ? hostPort[..colon] : hostPort;
            portText = colon >= 0 ? hostPort[(colon + 1)..] : null;
        }
        int? port = null;
        if (!string.IsNullOrEmpty(portText))
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p > 65535)
            {
                problem = BadPort;
                return null;
            }
            port = p;
        }

        var host = Unquote(hostname.ToLowerInvariant());
        if (host.Contains('/', StringComparison.Ordinal))
        {
            // Airflow keeps the raw netloc host here (e.g. a socket path), without lowercasing.
            var raw = netloc;
            var a = raw.LastIndexOf('@');
            if (a >= 0)
            {
                raw = raw[(a + 1)..];
            }
            var c = raw.IndexOf(':', StringComparison.Ordinal);
            if (c >= 0)
            {
                raw = raw[..c];
            }
            host = Unquote(raw);
        }
        if (protocol is not null && host.Length > 0)
        {
            host = $"{protocol}://{host}";
        }

        var schema = path.Length > 1 ? Unquote(path[1..]) : null;
        var login = string.IsNullOrEmpty(username) ? null : Unquote(username);

        RegoValue? extra = null;
        if (query.Length > 0)
        {
            var pairs = ParseQs(query);
            if (pairs.TryGetValue(ExtraKey, out var json))
            {
                extra = RegoValue.From(json);
            }
            else
            {
                var b = new RegoObject.Builder(pairs.Count);
                foreach (var (k, v) in pairs)
                {
                    b.Add(k, RegoValue.From(v));
                }
                extra = b.Build();
            }
        }
        var extraObj = sensitive.ParseExtra(extra, out var invalid);
        if (invalid)
        {
            problem = "the __extra__ parameter is not a JSON object (extra ignored)";
        }
        return new AirflowConnection
        {
            ConnId = connId,
            ConnType = AirflowConnection.Blank(connType),
            Host = AirflowConnection.Blank(host),
            Port = port,
            Schema = AirflowConnection.Blank(schema),
            Login = login,
            Extra = extraObj,
        };
    }

    /// <summary>
    /// Parses the field form (<c>connections export</c> JSON/YAML, the JSON form of
    /// <c>AIRFLOW_CONN_*</c>, the REST API): <c>conn_type</c>, <c>description</c>, <c>login</c>,
    /// <c>host</c>, <c>port</c> (number or numeric string), <c>schema</c>, <c>extra</c> (JSON
    /// string or object). <c>password</c> and unknown fields are ignored; userinfo in <c>host</c> is
    /// dropped, and a <c>schema</c> or <c>description</c> that holds a secret (see
    /// <see cref="SensitiveKeys.IsSensitiveValue"/>) is left out. <c>conn_type</c> is
    /// kept as given (as Airflow keeps the fields of a file entry or of its metastore) unless
    /// <paramref name="normalizeConnType"/> (as Airflow's <c>Connection.from_json</c> does).
    /// </summary>
    public static AirflowConnection? FromFields(string connId, RegoObject fields, SensitiveKeys sensitive, out string? problem, bool normalizeConnType = false)
    {
        problem = null;
        if (!TryText(fields, "conn_type", out var connType) || !TryText(fields, "host", out var host) ||
            !TryText(fields, "login", out var login) || !TryText(fields, "schema", out var schema) ||
            !TryText(fields, "description", out var description))
        {
            problem = "a field that must be text is not";
            return null;
        }
        int? port = null;
        switch (fields["port"])
        {
            case null or RegoNull:
                break;
            case RegoNumber n when n.TryGetInt32(out var p) && p is >= 0 and <= 65535:
                port = p;
                break;
            case RegoString s when s.Value.Length == 0:
                break;
            case RegoString s when int.TryParse(s.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= 65535:
                port = p;
                break;
            default:
                problem = "port is not an integer between 0 and 65535";
                return null;
        }
        var extra = sensitive.ParseExtra(fields["extra"], out var invalid);
        if (invalid)
        {
            problem = "extra is not a JSON object (extra ignored)";
        }
        return new AirflowConnection
        {
            ConnId = connId,
            ConnType = connType is null ? null : AirflowConnection.Blank(normalizeConnType ? AirflowConnection.NormalizeConnType(connType) : connType),
            Host = AirflowConnection.Blank(WithoutUserInfo(host)),
            Port = port,
            Schema = AirflowConnection.Blank(Unless(sensitive, schema)),
            Login = AirflowConnection.Blank(login),
            Description = AirflowConnection.Blank(Unless(sensitive, description)),
            Extra = extra,
        };
    }

    /// <summary>Null when <paramref name="value"/> holds a secret (a DSN with a password, a connection string naming one).</summary>
    private static string? Unless(SensitiveKeys sensitive, string? value) =>
        value is not null && sensitive.IsSensitiveValue(value) ? null : value;

    /// <summary>A host field without any userinfo someone put in it (<c>https://u:p@h</c> → <c>https://h</c>): a host never holds <c>@</c>.</summary>
    internal static string? WithoutUserInfo(string? host)
    {
        if (host is null)
        {
            return null;
        }
        var at = host.LastIndexOf('@');
        if (at < 0)
        {
            return host;
        }
        var scheme = host.IndexOf("://", StringComparison.Ordinal);
        var start = scheme >= 0 && scheme < at ? scheme + 3 : 0;
        return host[..start] + host[(at + 1)..];
    }

    /// <summary>Parses the JSON form of an <c>AIRFLOW_CONN_*</c> value (starts with <c>{</c>); <c>conn_type</c> is normalised as <c>Connection.from_json</c> does.</summary>
    public static AirflowConnection? ParseJson(string connId, string json, SensitiveKeys sensitive, out string? problem)
    {
        if (!RegoJson.TryParse(json, out var value) || value is not RegoObject o)
        {
            problem = "not a JSON object";
            return null;
        }
        return FromFields(connId, o, sensitive, out problem, normalizeConnType: true);
    }

    private static bool TryText(RegoObject o, string key, out string? value)
    {
        switch (o[key])
        {
            case null or RegoNull:
                value = null;
                return true;
            case RegoString s:
                value = s.Value;
                return true;
            case RegoNumber n when key is "host" or "schema" or "login":
                value = n.ToString();
                return true;
            default:
                value = null;
                return false;
        }
    }

    private static int CountOf(string s, string part)
    {
        var n = 0;
        for (var i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + part.Length, StringComparison.Ordinal))
        {
            n++;
        }
        return n;
    }

    private static bool IsScheme(string s)
    {
        if (s.Length == 0 || !char.IsAsciiLetter(s[0]))
        {
            return false;
        }
        foreach (var c in s)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('+' or '-' or '.'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Python's <c>dict(parse_qsl(q, keep_blank_values=True))</c>: last value wins.</summary>
    internal static Dictionary<string, string> ParseQs(string query)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in query.Split('&'))
        {
            if (part.Length == 0)
            {
                continue;
            }
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            var name = eq >= 0 ? part[..eq] : part;
            var value = eq >= 0 ? part[(eq + 1)..] : "";
            result[Unquote(name.Replace('+', ' '))] = Unquote(value.Replace('+', ' '));
        }
        return result;
    }

    /// <summary>Python's <c>unquote</c>: UTF-8 percent-decoding; bad escapes stay as they are.</summary>
    internal static string Unquote(string s)
    {
        if (!s.Contains('%', StringComparison.Ordinal))
        {
            return s;
        }
        var bytes = new List<byte>(s.Length);
        var sb = new StringBuilder(s.Length);
        void Flush()
        {
            if (bytes.Count > 0)
            {
                sb.Append(Encoding.UTF8.GetString([.. bytes]));
                bytes.Clear();
            }
        }
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '%' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                bytes.Add((byte)Convert.ToInt32(s.Substring(i + 1, 2), 16));
                i += 2;
                continue;
            }
            Flush();
            sb.Append(s[i]);
        }
        Flush();
        return sb.ToString();
    }
}
