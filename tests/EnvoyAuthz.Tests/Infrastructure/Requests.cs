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

    /// <summary>
    /// A request whose <c>metadata_context.filter_metadata["f"]</c> is a Struct whose <c>a</c> nests
    /// <paramref name="levels"/> − 1 more levels: Structs, or with <paramref name="lists"/> ListValues.
    /// </summary>
    public static CheckRequest NestedMetadata(int levels, bool lists)
    {
        var v = Google.Protobuf.WellKnownTypes.Value.ForString("leaf");
        for (var i = 0; i < levels - 1; i++)
        {
            if (lists)
            {
                v = Google.Protobuf.WellKnownTypes.Value.ForList(v);
            }
            else
            {
                var inner = new Google.Protobuf.WellKnownTypes.Struct();
                inner.Fields["a"] = v;
                v = Google.Protobuf.WellKnownTypes.Value.ForStruct(inner);
            }
        }
        var top = new Google.Protobuf.WellKnownTypes.Struct();
        top.Fields["a"] = v;
        var check = Http();
        check.Attributes.MetadataContext = new Envoy.Config.Core.V3.Metadata();
        check.Attributes.MetadataContext.FilterMetadata["f"] = top;
        return check;
    }
}
