using System.Globalization;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>The outcome of a connection lookup.</summary>
/// <param name="Connection">The connection found, or null.</param>
/// <param name="UnavailableSource">The source that could not be trusted (never loaded or past its max age) before a match was found; the check must be denied <c>dependency_unavailable</c>.</param>
public readonly record struct ConnectionLookup(AirflowConnection? Connection, string? UnavailableSource);

/// <summary>
/// All connection sources in Airflow's lookup order (file — a secrets backend —, environment
/// variables, then the API — the metastore): the first source holding a connection wins. A source
/// that cannot be trusted and is reached before a match makes the lookup unavailable: an entry
/// it might hold (or have removed) cannot be vouched for, so the check fails closed.
/// </summary>
public sealed class ConnectionCatalog(IReadOnlyList<IConnectionSource> sources, TimeProvider time, ILogger logger)
{
    /// <summary>The sources, in lookup order.</summary>
    public IReadOnlyList<IConnectionSource> Sources => sources;

    /// <summary>Whether every source has loaded at least once (a readiness signal; trust may still lapse later).</summary>
    public bool AllLoaded => sources.All(s => s.Current is not null);

    /// <summary>Looks a connection up by id.</summary>
    public ConnectionLookup FindById(string connId)
    {
        var now = time.GetUtcNow();
        foreach (var s in sources)
        {
            if (!s.IsTrusted(now))
            {
                AirflowLog.ConnectionsUnavailable(logger, s.Name);
                return new ConnectionLookup(null, s.Name);
            }
            if (s.Current!.Find(connId) is { } c)
            {
                return new ConnectionLookup(c, null);
            }
        }
        return default;
    }

    /// <summary>
    /// Looks a connection up by request authority (<c>host[:port]</c>, an IPv6 host in brackets)
    /// and scheme; a port-less authority gets the scheme's default port (80/443). Several equally
    /// good matches in one source match nothing (the route must name the connection). A
    /// connection whose id a source earlier in the lookup order also holds is shadowed — Airflow
    /// would use that other copy — so its host matches nothing.
    /// </summary>
    public ConnectionLookup FindByAuthority(string authority, string scheme)
    {
        if (!TrySplitAuthority(authority, scheme, out var host, out var port))
        {
            return default;
        }
        var now = time.GetUtcNow();
        for (var i = 0; i < sources.Count; i++)
        {
            var s = sources[i];
            if (!s.IsTrusted(now))
            {
                AirflowLog.ConnectionsUnavailable(logger, s.Name);
                return new ConnectionLookup(null, s.Name);
            }
            var earlier = i;
            var m = s.Current!.FindByAuthority(host, port, scheme, c => Shadowed(c.ConnId, earlier));
            if (m.Ambiguous)
            {
                AirflowLog.ConnectionAmbiguous(logger, Pipeline.CheckPipeline.LogSafe(Redaction.SecretRedactor.HostForLog(host))!);
                return default;
            }
            if (m.Connection is { } c)
            {
                return new ConnectionLookup(c, null);
            }
        }
        return default;
    }

    /// <summary>Whether a source before <paramref name="index"/> (all trusted by then) holds <paramref name="connId"/>, by its own id rules.</summary>
    private bool Shadowed(string connId, int index)
    {
        for (var j = 0; j < index; j++)
        {
            if (sources[j].Current?.Find(connId) is not null)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Splits a request authority into a lowercase host (an IPv6 address canonical, without its
    /// brackets) and a port (the scheme's default when none is given, else -1). False for what is
    /// no authority: an unclosed or non-IPv6 bracket, an IPv6 address without brackets, a bad port.
    /// </summary>
    internal static bool TrySplitAuthority(string authority, string scheme, out string host, out int port)
    {
        host = authority.ToLowerInvariant();
        port = AuthorityEntry.DefaultPort(scheme.ToLowerInvariant()) ?? -1;
        string? portText = null;
        if (host.StartsWith('['))
        {
            var close = host.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }
            if (close + 1 < host.Length)
            {
                if (host[close + 1] != ':')
                {
                    return false;
                }
                portText = host[(close + 2)..];
            }
            if (AuthorityEntry.Ipv6(host[1..close]) is not { } v6)
            {
                return false;
            }
            host = v6;
        }
        else
        {
            if (host.Count(c => c == ':') > 1)
            {
                return false;
            }
            var colon = host.LastIndexOf(':');
            if (colon >= 0)
            {
                portText = host[(colon + 1)..];
                host = host[..colon];
            }
        }
        if (portText is not null)
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535)
            {
                return false;
            }
        }
        return host.Length > 0;
    }
}
