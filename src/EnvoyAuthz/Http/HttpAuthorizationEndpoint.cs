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

    /// <summary>Handles one authorization request.</summary>
    public static async Task HandleAsync(HttpContext ctx, CheckPipeline pipeline, AuthzOptions options)
    {
        var check = await ToCheckRequestAsync(ctx, options).ConfigureAwait(false);
        var response = await pipeline.CheckAsync(check, ctx.RequestAborted).ConfigureAwait(false);
        if (response.Status.Code == 0)
        {
            ctx.Response.StatusCode = StatusCodes.Status200OK;
            foreach (var h in response.OkResponse.Headers)
            {
                ctx.Response.Headers[h.Header.Key] = h.Header.Value;
            }
            if (response.OkResponse.HeadersToRemove.Count > 0)
            {
                ctx.Response.Headers["x-envoy-auth-headers-to-remove"] = string.Join(", ", response.OkResponse.HeadersToRemove);
            }
            return;
        }
        var denied = response.DeniedResponse;
        ctx.Response.StatusCode = (int)denied.Status.Code is >= 200 and <= 599 and not 200 ? (int)denied.Status.Code : StatusCodes.Status403Forbidden;
        foreach (var h in denied.Headers)
        {
            ctx.Response.Headers[h.Header.Key] = h.Header.Value;
        }
        await ctx.Response.WriteAsync(denied.Body, ctx.RequestAborted).ConfigureAwait(false);
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
