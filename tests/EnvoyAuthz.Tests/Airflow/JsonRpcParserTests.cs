using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class JsonRpcParserTests
{
    private static readonly JsonRpcParser Parser = new(new AirflowJsonRpcOptions { Paths = ["/mcp"], MaxBatchSize = 3 }, SensitiveKeys.Default);

    private static JsonRpcResult Parse(string path, string? body, string method = "POST", Dictionary<string, string>? headers = null) =>
        Parser.Parse(Requests.Parsed(Requests.Http(method, path, body: body,
            headers: headers ?? new Dictionary<string, string> { ["content-type"] = "application/json" })));

    [Fact]
    public void Single_IsAnArrayOfOne()
    {
        var r = Parse("/mcp", """{"jsonrpc":"2.0","method":"tools/call","params":{"name":"trigger_dag","arguments":{"dag_id":"etl"}},"id":1}""");
        Assert.Equal(JsonRpcStatus.Calls, r.Status);
        Assert.Equal("""[{"id":1,"method":"tools/call","params":{"arguments":{"dag_id":"etl"},"name":"trigger_dag"}}]""", RegoJson.Serialize(r.Calls!));
    }

    [Fact]
    public void Batch_KeepsOrder_NotificationsHaveNoId_ResponsesMarked()
    {
        var r = Parse("/mcp", """[{"jsonrpc":"2.0","method":"a","id":"x"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":7,"result":{}}]""");
        Assert.Equal("""[{"id":"x","method":"a"},{"method":"notifications/initialized"},{"id":7,"response":true}]""", RegoJson.Serialize(r.Calls!));
    }

    [Fact]
    public void SecretParams_AreMasked()
    {
        var r = Parse("/mcp", """{"jsonrpc":"2.0","method":"create_connection","params":{"conn_id":"x","password":"PlantedRpcPw","extra":{"api_key":"k"}},"id":1}""");
        var json = RegoJson.Serialize(r.Calls!);
        Assert.DoesNotContain("PlantedRpcPw", json);
        Assert.Contains("\"password\":\"[REDACTED]\"", json);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","method":"create_connection","params":{"conn_id":"x","extra":"{\"token\": \"PlantedExtraTok\", \"timeout\": 5}"},"id":1}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"create_connection","params":{"conn_id":"x","extra":"not json PlantedExtraTok"},"id":1}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"body":"{\"connection\":{\"password\":\"PlantedExtraTok\"}}"}},"id":1}""")]
    [InlineData("""[{"jsonrpc":"2.0","method":"a","params":["{\"api_key\":\"PlantedExtraTok\"}"]}]""")]
    [InlineData("""{"jsonrpc":"2.0","method":"a","params":{"uri":"postgres://u:PlantedExtraTok@db/x"}}""")]
    public void SecretsInJsonStringsOfParams_AreMasked(string body)
    {
        var r = Parse("/mcp", body);
        Assert.Equal(JsonRpcStatus.Calls, r.Status);
        var json = RegoJson.Serialize(r.Calls!);
        Assert.DoesNotContain("PlantedExtraTok", json);
        Assert.Contains("[REDACTED]", json);
    }

    [Theory]
    [InlineData("""{"method":"a","id":1}""")]
    [InlineData("""{"jsonrpc":"1.0","method":"a","id":1}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"","id":1}""")]
    [InlineData("""{"jsonrpc":"2.0","method":5}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"a","params":"x"}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"a","id":{"x":1}}""")]
    [InlineData("""[]""")]
    [InlineData("""[1]""")]
    [InlineData("""[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0"}]""")]
    [InlineData("""[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"},{"jsonrpc":"2.0","method":"c"},{"jsonrpc":"2.0","method":"d"}]""")]
    [InlineData("""{"jsonrpc":"2.0","method":"a" """)]
    [InlineData("""not json""")]
    [InlineData("""42""")]
    public void Endpoint_MalformedBody_IsMalformed(string body) =>
        Assert.Equal(JsonRpcStatus.Malformed, Parse("/mcp", body).Status);

    [Fact]
    public void Endpoint_EmptyPost_IsMalformed_EmptyGet_IsNone()
    {
        Assert.Equal(JsonRpcStatus.Malformed, Parse("/mcp", null).Status);
        Assert.Equal(JsonRpcStatus.None, Parse("/mcp", null, "GET").Status);
    }

    [Fact]
    public void Endpoint_TruncatedBody_IsMalformed()
    {
        var headers = new Dictionary<string, string> { ["content-type"] = "application/json", ["x-envoy-auth-partial-body"] = "true" };
        Assert.Equal(JsonRpcStatus.Malformed, Parse("/mcp", """{"jsonrpc":"2.0","method":"a"}""", headers: headers).Status);
    }

    [Fact]
    public void OtherPath_DetectedByContent_OrIgnored()
    {
        Assert.Equal(JsonRpcStatus.Calls, Parse("/rpc", """{"jsonrpc":"2.0","method":"a","id":1}""").Status);
        Assert.Equal(JsonRpcStatus.Malformed, Parse("/rpc", """{"jsonrpc":"2.0","id":1}""").Status);
        Assert.Equal(JsonRpcStatus.None, Parse("/rpc", """{"dag_id":"x"}""").Status);
        Assert.Equal(JsonRpcStatus.None, Parse("/rpc", "not json").Status);
        var off = new JsonRpcParser(new AirflowJsonRpcOptions { DetectByContent = false }, SensitiveKeys.Default);
        Assert.Equal(JsonRpcStatus.None, off.Parse(Requests.Parsed(Requests.Http("POST", "/rpc", body: """{"jsonrpc":"2.0","method":"a"}"""))).Status);
    }
}
