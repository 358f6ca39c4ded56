using Envoy.Service.Auth.V3;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>Builds CheckRequests the way Envoy fills them.</summary>
internal static class Requests
{
    public static CheckRequest Http(string method = "GET", string path = "/", string host = "api.example.com",
        IReadOnlyDictionary<string, string>? headers = null, string? body = null, IReadOnlyDictionary<string, string>? contextExtensions = null)
    {
        var http = new AttributeContext.Types.HttpRequest
        {
            Id = "req-1",
            Method = method,
            Path = path,
            Host = host,
            Scheme = "https",
            Protocol = "HTTP/1.1",
        };
        http.Headers[":method"] = method;
        http.Headers[":path"] = path;
        http.Headers[":authority"] = host;
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
        {
            http.Headers[k] = v;
        }
        if (body is not null)
        {
            http.Body = body;
            http.Size = body.Length;
        }
        var attrs = new AttributeContext
        {
            Request = new AttributeContext.Types.Request { Http = http },
            Source = new AttributeContext.Types.Peer
            {
                Address = new Envoy.Config.Core.V3.Address
                {
                    SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = "10.0.0.7", PortValue = 41234 },
                },
                Principal = "spiffe://cluster.local/ns/airflow/sa/worker",
            },
        };
        foreach (var (k, v) in contextExtensions ?? new Dictionary<string, string>())
        {
            attrs.ContextExtensions[k] = v;
        }
        return new CheckRequest { Attributes = attrs };
    }

    public static AuthzRequest Parsed(CheckRequest check) =>
        CheckRequestParser.Parse(check, out var problem) ?? throw new InvalidOperationException(problem);
}
