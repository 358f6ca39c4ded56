using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// One Airflow connection as policy may see it: no password, and <see cref="Extra"/> holds only
/// non-secret keys (see <see cref="SensitiveKeys"/>). Empty strings are normalised to null.
/// </summary>
public sealed record AirflowConnection
{
    /// <summary>The connection id (<c>conn_id</c>).</summary>
    public required string ConnId { get; init; }
    /// <summary>
    /// <c>conn_type</c> as Airflow has it: from a URI lowercased (the scheme) and normalised
    /// (<c>postgresql</c> → <c>postgres</c>, <c>-</c> → <c>_</c>), from a JSON value normalised,
    /// from a file's or the API's fields as given.
    /// </summary>
    public string? ConnType { get; init; }
    /// <summary>Host; may carry a scheme (<c>https://api.example.com</c>) as Airflow's double-scheme URIs produce.</summary>
    public string? Host { get; init; }
    /// <summary>Port.</summary>
    public int? Port { get; init; }
    /// <summary>Schema (database or path, per connection type).</summary>
    public string? Schema { get; init; }
    /// <summary>Login (not a secret in Airflow's model).</summary>
    public string? Login { get; init; }
    /// <summary>Description.</summary>
    public string? Description { get; init; }
    /// <summary>Non-secret extra keys.</summary>
    public RegoObject Extra { get; init; } = EmptyObject;

    internal static readonly RegoObject EmptyObject = new RegoObject.Builder(0).Build();

    /// <summary><c>input.airflow.connection</c>.</summary>
    public RegoObject InputValue => _input ??= new RegoObject.Builder(8)
        .Add("conn_id", RegoValue.From(ConnId))
        .Add("conn_type", Str(ConnType))
        .Add("host", Str(Host))
        .Add("port", Port is { } p ? RegoValue.From(p) : RegoValue.Null)
        .Add("schema", Str(Schema))
        .Add("login", Str(Login))
        .Add("description", Str(Description))
        .Add("extra", Extra)
        .Build();
    private RegoObject? _input;

    private static RegoValue Str(string? s) => s is null ? RegoValue.Null : RegoValue.From(s);

    internal static string? Blank(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>Airflow's conn_type normalisation.</summary>
    public static string NormalizeConnType(string connType) =>
        connType == "postgresql" ? "postgres" : connType.Replace('-', '_');
}

/// <summary>One source's connections at one moment.</summary>
public sealed class ConnectionSnapshot
{
    private readonly Dictionary<string, AirflowConnection> _byId;
    private readonly Dictionary<string, AirflowConnection>? _byIdIgnoreCase;
    private readonly Dictionary<string, List<AuthorityEntry>> _byHost;

    /// <summary>Creates a snapshot; later duplicates of an id are ignored (first wins).</summary>
    /// <param name="connections">The connections.</param>
    /// <param name="loadedAt">When it was loaded (the source's <see cref="TimeProvider"/>).</param>
    /// <param name="caseInsensitiveIds">Whether ids match ignoring case (environment variables: Airflow upper-cases the id to look one up).</param>
    public ConnectionSnapshot(IEnumerable<AirflowConnection> connections, DateTimeOffset loadedAt, bool caseInsensitiveIds = false)
    {
        LoadedAt = loadedAt;
        _byId = new Dictionary<string, AirflowConnection>(StringComparer.Ordinal);
        _byHost = new Dictionary<string, List<AuthorityEntry>>(StringComparer.OrdinalIgnoreCase);
        foreach (var c in connections)
        {
            if (!_byId.TryAdd(c.ConnId, c))
            {
                continue;
            }
            if (AuthorityEntry.From(c) is { } entry)
            {
                if (!_byHost.TryGetValue(entry.Host, out var list))
                {
                    _byHost[entry.Host] = list = [];
                }
                list.Add(entry);
            }
        }
        if (caseInsensitiveIds)
        {
            _byIdIgnoreCase = new Dictionary<string, AirflowConnection>(StringComparer.OrdinalIgnoreCase);
            foreach (var c in _byId.Values)
            {
                _byIdIgnoreCase.TryAdd(c.ConnId, c);
            }
        }
    }

    /// <summary>An empty snapshot.</summary>
    public static ConnectionSnapshot Empty(DateTimeOffset at) => new([], at);

    /// <summary>When the snapshot was loaded.</summary>
    public DateTimeOffset LoadedAt { get; }

    /// <summary>Number of connections.</summary>
    public int Count => _byId.Count;

    /// <summary>All connections.</summary>
    public IEnumerable<AirflowConnection> All => _byId.Values;

    /// <summary>The connection with this id.</summary>
    public AirflowConnection? Find(string connId) =>
        _byId.TryGetValue(connId, out var c) ? c : _byIdIgnoreCase is not null && _byIdIgnoreCase.TryGetValue(connId, out c) ? c : null;

    /// <summary>
    /// The connection whose host/port (and scheme, when its host carries one) match the request
    /// authority. Null when none or when several match equally (ambiguous: the request must name
    /// its connection by context extension or header). Connections <paramref name="hidden"/>
    /// says are shadowed (by a source Airflow asks first) take no part.
    /// </summary>
    /// <param name="host">Lowercase host; an IPv6 address in canonical form without brackets.</param>
    /// <param name="port">The request's port (the scheme's default when it named none).</param>
    /// <param name="scheme">The request's scheme.</param>
    /// <param name="hidden">Connections to leave out, or null.</param>
    public AuthorityMatch FindByAuthority(string host, int port, string scheme, Func<AirflowConnection, bool>? hidden = null)
    {
        if (!_byHost.TryGetValue(host, out var list))
        {
            return new AuthorityMatch(null, false);
        }
        AirflowConnection? best = null;
        var bestScore = 0;
        var ambiguous = false;
        foreach (var e in list)
        {
            var score = hidden is not null && hidden(e.Connection) ? 0 : e.Score(port, scheme);
            if (score == 0)
            {
                continue;
            }
            if (score > bestScore)
            {
                (best, bestScore, ambiguous) = (e.Connection, score, false);
            }
            else if (score == bestScore)
            {
                ambiguous = true;
            }
        }
        return ambiguous ? new AuthorityMatch(null, true) : new AuthorityMatch(best, false);
    }
}

/// <summary>Result of an authority lookup.</summary>
/// <param name="Connection">The single best match, or null.</param>
/// <param name="Ambiguous">Whether several connections matched equally.</param>
public readonly record struct AuthorityMatch(AirflowConnection? Connection, bool Ambiguous);

/// <summary>A connection's host, port and scheme as a request authority would show them.</summary>
internal sealed record AuthorityEntry(AirflowConnection Connection, string Host, int? Port, string? Scheme)
{
    public static AuthorityEntry? From(AirflowConnection c)
    {
        var host = c.Host;
        if (string.IsNullOrWhiteSpace(host))
        {
            return null;
        }
        string? scheme = null;
        var sep = host.IndexOf("://", StringComparison.Ordinal);
        if (sep > 0)
        {
            scheme = host[..sep].ToLowerInvariant();
            host = host[(sep + 3)..];
        }
        var slash = host.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            host = host[..slash];
        }
        var at = host.LastIndexOf('@');
        if (at >= 0)
        {
            host = host[(at + 1)..];
        }
        int? port = c.Port;
        if (host.StartsWith('['))
        {
            var close = host.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return null;
            }
            if (port is null && close + 1 < host.Length && host[close + 1] == ':' &&
                int.TryParse(host.AsSpan(close + 2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p6))
            {
                port = p6;
            }
            host = host[1..close];
            if (Ipv6(host) is not { } bracketed)
            {
                return null;
            }
            host = bracketed;
        }
        else if (host.Count(ch => ch == ':') > 1)
        {
            // An IPv6 address as Airflow's URI parser leaves it (no brackets, so no port in it).
            if (Ipv6(host) is not { } bare)
            {
                return null;
            }
            host = bare;
        }
        else
        {
            var colon = host.LastIndexOf(':');
            if (colon >= 0)
            {
                if (port is null && int.TryParse(host.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p))
                {
                    port = p;
                }
                host = host[..colon];
            }
        }
        if (host.Length == 0)
        {
            return null;
        }
        if (port is null && scheme is not null)
        {
            port = DefaultPort(scheme);
        }
        return new AuthorityEntry(c, host.ToLowerInvariant(), port, scheme);
    }

    /// <summary>
    /// An IPv6 address in canonical text form (lowercase, zeros compressed, no brackets), or null
    /// when <paramref name="text"/> is not one; a zone id (<c>%eth0</c>) is not accepted (a parser
    /// would drop or keep it, so it could name another interface's host).
    /// </summary>
    public static string? Ipv6(string text) =>
        !text.Contains('%', StringComparison.Ordinal) && text.Contains(':', StringComparison.Ordinal) &&
        System.Net.IPAddress.TryParse(text, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? ip.ToString()
            : null;

    /// <summary>0 = no match; higher is more specific (explicit port and scheme agreement).</summary>
    public int Score(int port, string scheme)
    {
        if (Scheme is not null && !string.Equals(Scheme, scheme, StringComparison.OrdinalIgnoreCase))
        {
            return 0;
        }
        if (Port is not null && Port != port)
        {
            return 0;
        }
        return 1 + (Port is not null ? 2 : 0) + (Scheme is not null ? 1 : 0);
    }

    public static int? DefaultPort(string scheme) => scheme switch
    {
        "http" or "ws" => 80,
        "https" or "wss" => 443,
        _ => null,
    };
}
