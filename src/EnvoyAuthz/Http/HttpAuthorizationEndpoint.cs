using Envoy.Service.Auth.V3;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Pipeline;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EnvoyAuthz.Http;

/// <summary>
/// HTTP-mode authorization on the HTTP listener for proxies that ask over plain HTTP, one endpoint
/// per proxy, each reading only its own proxy's description of the original request:
/// <c>/authz/envoy/…</c> for Envoy's HTTP ext_authz (the original path follows the prefix; the
/// method is the request's), <c>/authz/nginx</c> for nginx <c>auth_request</c> (<c>X-Original-URI</c>,
/// <c>-Method</c>, <c>-Host</c>, <c>-Proto</c>) and <c>/authz/traefik</c> for Traefik <c>ForwardAuth</c>
/// (<c>X-Forwarded-Method</c>, <c>-Uri</c>, <c>-Host</c>, <c>-Proto</c>); any other path under
/// <c>/authz</c> is a 400 <c>bad_request</c> (see <see cref="ProxyRequestDescriber"/>). The
/// request becomes a CheckRequest and goes through the same pipeline as gRPC Checks. Allow: 200 with
/// the identity headers as response headers (and, for Envoy, <c>x-envoy-auth-headers-to-remove</c>);
/// deny: the deny's status, headers and JSON body. (nginx passes only 401 and 403 on; it turns
/// other statuses into 500 — still a deny.)
/// </summary>
public static class HttpAuthorizationEndpoint
{
    /// <summary>The route prefix.</summary>
    public const string Prefix = "/authz";

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
    };

    /// <summary>
    /// Handles one authorization request. The answer is exactly the CheckResponse the decision log
    /// records: its headers are valid HTTP (CheckResponseFactory's rule; non-ASCII values are written
    /// as UTF-8), and a header the server still refuses is left out and, for Envoy, named in
    /// <c>x-envoy-auth-headers-to-remove</c>, so the allow stays an allow. A caller that goes away is
    /// not answered (the pipeline counts it as cancelled).
    /// </summary>
    public static async Task HandleAsync(HttpContext ctx, CheckPipeline pipeline, AuthzOptions options)
    {
        try
        {
            var check = await ToCheckRequestAsync(ctx, options).ConfigureAwait(false);
            var response = await pipeline.CheckAsync(check, ctx.RequestAborted).ConfigureAwait(false);
            await WriteAsync(ctx, response).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && ctx.RequestAborted.IsCancellationRequested)
        {
            // The caller left (nginx or Envoy gave up): nothing to answer, nothing to log above Debug.
        }
    }

    private static async Task WriteAsync(HttpContext ctx, CheckResponse response)
    {
        if (response.Status.Code == 0)
        {
            ctx.Response.StatusCode = StatusCodes.Status200OK;
            var remove = new List<string>(response.OkResponse.HeadersToRemove);
            foreach (var h in response.OkResponse.Headers)
            {
                if (!TrySet(ctx.Response.Headers, h.Header.Key, h.Header.Value) && Response.CheckResponseFactory.IsValidHeaderName(h.Header.Key) && !h.Header.Key.StartsWith(':'))
                {
                    remove.Add(h.Header.Key); // a client-sent copy must not reach upstream either
                }
            }
            if (remove.Count > 0)
            {
                ctx.Response.Headers["x-envoy-auth-headers-to-remove"] = string.Join(", ", remove);
            }
            return;
        }
        var denied = response.DeniedResponse;
        ctx.Response.StatusCode = (int)denied.Status.Code is >= 200 and <= 599 and not 200 ? (int)denied.Status.Code : StatusCodes.Status403Forbidden;
        foreach (var h in denied.Headers)
        {
            TrySet(ctx.Response.Headers, h.Header.Key, h.Header.Value);
        }
        await ctx.Response.WriteAsync(denied.Body, ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Sets a response header; false when the server refuses the name or value (e.g. a pseudo-header).</summary>
    private static bool TrySet(IHeaderDictionary headers, string name, string value)
    {
        try
        {
            headers[name] = value;
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// Builds the CheckRequest Envoy would have sent for the original request, from exactly one
    /// proxy's description of it (<see cref="ProxyRequestDescriber"/>). A request that no proxy
    /// described properly becomes an empty CheckRequest, which stage 1 denies as <c>bad_request</c>
    /// (400 with the JSON body), counted and logged like every other Check.
    /// </summary>
    internal static async Task<CheckRequest> ToCheckRequestAsync(HttpContext ctx, AuthzOptions options)
    {
        var req = ctx.Request;
        if (ProxyRequestDescriber.Describe(ctx, options.Http, out var style, out var problem) is not { } described)
        {
            var logger = ctx.RequestServices?.GetService(typeof(ILoggerFactory)) is ILoggerFactory factory
                ? factory.CreateLogger("EnvoyAuthz.Http")
                : (ILogger)NullLogger.Instance;
            HttpModeLog.NotDescribed(logger, style.ToString().ToLowerInvariant(), problem!);
            return new CheckRequest();
        }
        var method = described.Method;
        var path = described.Target;
        var host = described.Host;
        var scheme = described.Scheme;

        var http = new AttributeContext.Types.HttpRequest
        {
            Id = ctx.TraceIdentifier,
            Method = method.ToUpperInvariant(),
            Path = path,
            Host = host,
            Scheme = scheme,
            Protocol = req.Protocol,
        };
        foreach (var (name, values) in req.Headers)
        {
            if (!HopByHop.Contains(name) && !ProxyRequestDescriber.DescriptionHeaders.Contains(name) && !name.Equals("host", StringComparison.OrdinalIgnoreCase))
            {
                http.Headers[name.ToLowerInvariant()] = values.ToString();
            }
        }
        http.Headers[":method"] = http.Method;
        http.Headers[":path"] = path;
        http.Headers[":authority"] = host;

        if (req.ContentLength is > 0 || req.Headers.ContainsKey("transfer-encoding"))
        {
            var max = options.Policy.MaxParsedBodyBytes;
            var buffer = new byte[Math.Min(max, (int)Math.Min(req.ContentLength ?? max, max))];
            var read = 0;
            while (read < buffer.Length)
            {
                var n = await req.Body.ReadAsync(buffer.AsMemory(read), ctx.RequestAborted).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                read += n;
            }
            http.RawBody = Google.Protobuf.ByteString.CopyFrom(buffer, 0, read);
            http.Size = req.ContentLength ?? read;
        }

        return new CheckRequest
        {
            Attributes = new AttributeContext
            {
                Request = new AttributeContext.Types.Request { Http = http },
                Source = new AttributeContext.Types.Peer
                {
                    Address = new Envoy.Config.Core.V3.Address
                    {
                        SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = described.SourceAddress, PortValue = (uint)described.SourcePort },
                    },
                },
            },
        };
    }
}
