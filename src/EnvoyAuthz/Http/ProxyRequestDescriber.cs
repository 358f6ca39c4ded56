using System.Net;
using EnvoyAuthz.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace EnvoyAuthz.Http;

/// <summary>The proxy styles of HTTP mode, one endpoint each.</summary>
public enum ProxyStyle
{
    /// <summary>No endpoint matched.</summary>
    Unknown,
    /// <summary>Envoy's HTTP ext_authz, <c>path_prefix: /authz/envoy</c>: the original path follows the prefix, the method is the request's.</summary>
    Envoy,
    /// <summary>nginx <c>auth_request</c> at <c>/authz/nginx</c>: <c>X-Original-URI</c>, <c>X-Original-Method</c>, <c>X-Original-Host</c>, <c>X-Original-Proto</c>.</summary>
    Nginx,
    /// <summary>Traefik <c>ForwardAuth</c> at <c>/authz/traefik</c>: <c>X-Forwarded-Uri</c>, <c>-Method</c>, <c>-Host</c>, <c>-Proto</c>.</summary>
    Traefik,
}

/// <summary>The original request as one proxy described it.</summary>
/// <param name="Style">Which endpoint (and so which proxy) described it.</param>
/// <param name="Method">The original method, a valid HTTP token.</param>
/// <param name="Target">The original request target (path and query) in origin form, as the client sent it: never decoded here.</param>
/// <param name="Host">The original host (authority).</param>
/// <param name="Scheme">The original scheme.</param>
/// <param name="SourceAddress">The client's address: the TCP peer, or from <c>X-Forwarded-For</c> behind a trusted proxy.</param>
/// <param name="SourcePort">The client's port, 0 when it came from <c>X-Forwarded-For</c>.</param>
internal sealed record RequestDescription(ProxyStyle Style, string Method, string Target, string Host, string Scheme, string SourceAddress, int SourcePort);

/// <summary>
/// Reads the description of the original request from exactly one proxy's headers, chosen by the
/// endpoint (never by which headers happen to be present): <c>/authz/nginx</c> reads only nginx's
/// <c>X-Original-*</c>, <c>/authz/traefik</c> only Traefik's <c>X-Forwarded-*</c>, and
/// <c>/authz/envoy/…</c> only its own raw request target and method. The endpoint is matched on the
/// raw request target (<see cref="IHttpRequestFeature.RawTarget"/>), case-insensitively as routing
/// matches it, and the prefix is stripped from the raw target, so the original path is decoded once,
/// later, by <see cref="Pipeline.PathNormalizer"/> — never here (ASP.NET's <c>HttpRequest.Path</c>
/// is already decoded). A description header that is missing, empty, repeated or malformed is a
/// problem, not a fallback.
/// </summary>
internal static class ProxyRequestDescriber
{
    /// <summary>The path prefix of Envoy's HTTP ext_authz (its <c>http_service.path_prefix</c>).</summary>
    public const string EnvoyPrefix = HttpAuthorizationEndpoint.Prefix + "/envoy";
    /// <summary>nginx <c>auth_request</c>'s endpoint.</summary>
    public const string NginxPath = HttpAuthorizationEndpoint.Prefix + "/nginx";
    /// <summary>Traefik <c>ForwardAuth</c>'s endpoint.</summary>
    public const string TraefikPath = HttpAuthorizationEndpoint.Prefix + "/traefik";

    /// <summary>
    /// Headers that exist only to describe the original request to an auth server. They are left out
    /// of <c>attributes.request.http.headers</c> on every endpoint: what the endpoint's own proxy said
    /// is in the method, path, host and scheme; the others' are the client's words.
    /// </summary>
    public static readonly HashSet<string> DescriptionHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "x-original-uri", "x-original-method", "x-original-host", "x-original-proto", "x-forwarded-uri", "x-forwarded-method",
    };

    /// <summary>Describes the original request, or returns null with a fixed-vocabulary <paramref name="problem"/>.</summary>
    public static RequestDescription? Describe(HttpContext ctx, HttpModeOptions options, out ProxyStyle style, out string? problem)
    {
        style = ProxyStyle.Unknown;
        var req = ctx.Request;
        var peer = ctx.Connection.RemoteIpAddress is { } p && p.IsIPv4MappedToIPv6 ? p.MapToIPv4() : ctx.Connection.RemoteIpAddress;
        var trusted = options.TrustedNetworks;
        if (trusted.Count > 0 && (peer is null || !IsTrusted(trusted, peer)))
        {
            problem = "the peer is not one of Http:TrustedProxies";
            return null;
        }

        // The raw target, as sent. Without a server that keeps it (tests), the path re-encoded: still decoded only once later.
        var raw = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw))
        {
            raw = (req.PathBase + req.Path).ToUriComponent() + req.QueryString.Value;
        }
        if (!raw.StartsWith('/'))
        {
            problem = "the authorization request's target is not in origin form";
            return null;
        }
        var q = raw.IndexOf('?', StringComparison.Ordinal);
        var rawPath = q >= 0 ? raw[..q] : raw;

        string? method, target, host, scheme;
        if (rawPath.Equals(NginxPath, StringComparison.OrdinalIgnoreCase))
        {
            style = ProxyStyle.Nginx;
            method = Single(req, "x-original-method", out problem);
            target = problem is null ? Single(req, "x-original-uri", out problem) : null;
            host = problem is null ? Optional(req, "x-original-host", out problem) ?? req.Headers.Host.ToString() : null;
            scheme = problem is null ? Optional(req, "x-original-proto", out problem) ?? req.Scheme : null;
        }
        else if (rawPath.Equals(TraefikPath, StringComparison.OrdinalIgnoreCase))
        {
            style = ProxyStyle.Traefik;
            method = Single(req, "x-forwarded-method", out problem);
            target = problem is null ? Single(req, "x-forwarded-uri", out problem) : null;
            host = problem is null ? Optional(req, "x-forwarded-host", out problem) ?? req.Headers.Host.ToString() : null;
            scheme = problem is null ? Optional(req, "x-forwarded-proto", out problem) ?? req.Scheme : null;
        }
        else if (rawPath.StartsWith(EnvoyPrefix, StringComparison.OrdinalIgnoreCase)
                 && (rawPath.Length == EnvoyPrefix.Length || rawPath[EnvoyPrefix.Length] == '/'))
        {
            // Envoy appends the original :path (with its query) to the prefix; strip the prefix as matched.
            style = ProxyStyle.Envoy;
            problem = null;
            method = req.Method;
            target = raw[EnvoyPrefix.Length..];
            target = target.Length == 0 || target[0] == '?' ? "/" + target : target;
            host = req.Headers.Host.ToString();
            scheme = req.Scheme;
        }
        else
        {
            problem = "no HTTP-mode endpoint at this path (use /authz/envoy/…, /authz/nginx or /authz/traefik)";
            return null;
        }
        if (problem is not null)
        {
            return null;
        }
        if (!IsToken(method!))
        {
            problem = "the described method is not an HTTP method token";
            return null;
        }
        if (!target!.StartsWith('/') || target.Any(c => c <= ' ' || c == '\x7f'))
        {
            problem = "the described URI is not an origin-form request target";
            return null;
        }
        if (host!.Any(c => c <= ' ' || c is '\x7f' or ',' or '/' or '\\' or '@'))
        {
            problem = "the described host is not a host";
            return null;
        }
        if (scheme!.Length == 0 || !char.IsAsciiLetter(scheme[0]) || !scheme.All(c => char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.'))
        {
            problem = "the described scheme is not a URI scheme";
            return null;
        }

        var (address, port) = Source(req, peer, ctx.Connection.RemotePort, trusted);
        return new RequestDescription(style, method!, target, host!, scheme!, address, port);
    }

    /// <summary>The client: the TCP peer; behind trusted proxies, the right-most <c>X-Forwarded-For</c> address that is not a trusted proxy.</summary>
    private static (string Address, int Port) Source(HttpRequest req, IPAddress? peer, int peerPort, IReadOnlyList<IPNetwork> trusted)
    {
        if (peer is null)
        {
            return ("", 0);
        }
        if (trusted.Count == 0 || !req.Headers.TryGetValue("x-forwarded-for", out var xff))
        {
            return (peer.ToString(), Math.Max(0, peerPort));
        }
        var hops = xff.SelectMany(v => (v ?? "").Split(',')).Select(h => h.Trim()).ToArray();
        var current = peer;
        var fromHeader = false;
        for (var i = hops.Length - 1; i >= 0 && IsTrusted(trusted, current); i--)
        {
            if (!IPAddress.TryParse(hops[i], out var hop))
            {
                break; // not an address: keep the last hop that was one
            }
            current = hop.IsIPv4MappedToIPv6 ? hop.MapToIPv4() : hop;
            fromHeader = true;
        }
        return (current.ToString(), fromHeader ? 0 : Math.Max(0, peerPort));
    }

    private static bool IsTrusted(IReadOnlyList<IPNetwork> trusted, IPAddress address)
    {
        foreach (var n in trusted)
        {
            if (n.Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A required description header: present once and not empty.</summary>
    private static string? Single(HttpRequest req, string name, out string? problem)
    {
        problem = null;
        if (!req.Headers.TryGetValue(name, out var v) || StringValues.IsNullOrEmpty(v) || v.Count != 1 || string.IsNullOrWhiteSpace(v[0]))
        {
            problem = v.Count > 1 ? $"the {name} header is repeated" : $"the {name} header is missing or empty";
            return null;
        }
        return v[0];
    }

    /// <summary>An optional description header: absent (null), or present once and not empty.</summary>
    private static string? Optional(HttpRequest req, string name, out string? problem)
    {
        problem = null;
        return req.Headers.ContainsKey(name) ? Single(req, name, out problem) ?? "" : null;
    }

    /// <summary>RFC 9110 token (methods), at most 32 characters.</summary>
    private static bool IsToken(string s) =>
        s.Length is > 0 and <= 32 && s.All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c));
}
