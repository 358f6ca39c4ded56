using System.Text.Json.Nodes;
using Envoy.Config.Bootstrap.V3;
using Envoy.Extensions.Filters.Http.ExtAuthz.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Tests.EnvoyConfig;

/// <summary>
/// The shipped Envoy configs parse as Envoy v3 <c>Bootstrap</c> messages — every field name, type
/// and <c>typed_config</c> checked against the upstream protos (unknown fields are errors) — and
/// wire ext_authz to this service the way its contracts expect (gRPC v3, fail closed).
/// </summary>
public class EnvoyConfigTests
{
    private static readonly TypeRegistry Registry = TypeRegistry.FromFiles(
        Bootstrap.Descriptor.File,
        ExtAuthz.Descriptor.File,
        HttpConnectionManager.Descriptor.File,
        global::Envoy.Extensions.Filters.Http.Router.V3.Router.Descriptor.File,
        global::Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions.Descriptor.File,
        global::Envoy.Extensions.Filters.Http.HeaderToMetadata.V3.Config.Descriptor.File);

    public static TheoryData<string> Configs() => new(
        Directory.EnumerateFiles(RepoPaths.Of("envoy"), "envoy.yaml", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(RepoPaths.Root, p)).Order());

    internal static Bootstrap Parse(string relativePath)
    {
        var yaml = new YamlStream();
        using (var reader = File.OpenText(RepoPaths.Of(relativePath)))
        {
            yaml.Load(reader);
        }
        var json = ToJson(yaml.Documents[0].RootNode)!.ToJsonString();
        return new JsonParser(JsonParser.Settings.Default.WithTypeRegistry(Registry)).Parse<Bootstrap>(json);
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void Config_IsAValidEnvoyV3Bootstrap_WithFailClosedExtAuthz(string path)
    {
        var bootstrap = Parse(path);
        var hcm = bootstrap.StaticResources.Listeners
            .SelectMany(l => l.FilterChains).SelectMany(c => c.Filters)
            .Where(f => f.Name == "envoy.filters.network.http_connection_manager")
            .Select(f => f.TypedConfig.Unpack<HttpConnectionManager>())
            .ToList();
        Assert.NotEmpty(hcm);
        foreach (var manager in hcm)
        {
            var filters = manager.HttpFilters.ToList();
            var extAuthzIndex = filters.FindIndex(f => f.Name == "envoy.filters.http.ext_authz");
            Assert.True(extAuthzIndex >= 0, "ext_authz filter missing");
            Assert.True(extAuthzIndex < filters.FindIndex(f => f.Name == "envoy.filters.http.router"), "ext_authz must run before the router");
            var extAuthz = filters[extAuthzIndex].TypedConfig.Unpack<ExtAuthz>();
            Assert.Equal(global::Envoy.Config.Core.V3.ApiVersion.V3, extAuthz.TransportApiVersion);
            Assert.False(extAuthz.FailureModeAllow, "fail closed");
            var cluster = extAuthz.GrpcService.EnvoyGrpc.ClusterName;
            var target = bootstrap.StaticResources.Clusters.Single(c => c.Name == cluster);
            var port = target.LoadAssignment.Endpoints.Single().LbEndpoints.Single().Endpoint.Address.SocketAddress.PortValue;
            Assert.Equal(9191u, port);
            Assert.True(extAuthz.GrpcService.Timeout.ToTimeSpan() <= TimeSpan.FromMilliseconds(250));
        }
    }

    [Fact]
    public void Egress_RoutesNameTheirAirflowConnection()
    {
        var bootstrap = Parse("envoy/egress/envoy.yaml");
        var hcm = bootstrap.StaticResources.Listeners[0].FilterChains[0].Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
        var vhost = hcm.RouteConfig.VirtualHosts.Single(v => v.Name == "http_default");
        var perRoute = vhost.TypedPerFilterConfig["envoy.filters.http.ext_authz"].Unpack<ExtAuthzPerRoute>();
        Assert.Equal("http_default", perRoute.CheckSettings.ContextExtensions["airflow_conn_id"]);
        // The task context comes from the route too (a trusted source), not from the task's own headers.
        Assert.Equal("etl_daily", perRoute.CheckSettings.ContextExtensions["airflow_dag_id"]);
    }

    [Fact]
    public void Parse_UnknownField_IsRejected()
    {
        var bad = Path.Combine(Path.GetTempPath(), $"envoy-bad-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(bad, "static_resources:\n  listenerz: []\n");
        try
        {
            Assert.ThrowsAny<InvalidProtocolBufferException>(() => Parse(Path.GetRelativePath(RepoPaths.Root, bad)));
        }
        finally
        {
            File.Delete(bad);
        }
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray([.. s.Children.Select(ToJson)]),
        YamlScalarNode sc => Scalar(sc),
        _ => null,
    };

    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style != YamlDotNet.Core.ScalarStyle.Plain)
        {
            return JsonValue.Create(v);
        }
        if (v is "true" or "false")
        {
            return JsonValue.Create(v == "true");
        }
        if (v is "null" or "~" or "")
        {
            return null;
        }
        return long.TryParse(v, out var l) ? JsonValue.Create(l) : double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var d) && !v.EndsWith('s') ? JsonValue.Create(d) : JsonValue.Create(v);
    }
}
