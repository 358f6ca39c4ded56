using EnvoyAuthz.Airflow;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>A configured JSON-RPC endpoint is recognised however its path is spelled, so its calls cannot escape per-call checks.</summary>
public class JsonRpcEndpointSpellingTests
{
    private static readonly JsonRpcParser Parser = new(new AirflowJsonRpcOptions { Paths = ["/mcp"], DetectByContent = false }, SensitiveKeys.Default);

    [Theory]
    [InlineData("/mcp", true)]
    [InlineData("//mcp", true)]
    [InlineData("/%6Dcp", true)]
    [InlineData("/%6d%63%70?session=1", true)]
    [InlineData("/mcp/", false)]
    [InlineData("/mcpx", false)]
    [InlineData("/MCP", false)]
    public void IsEndpoint_AnySpellingOfTheConfiguredPath(string path, bool expected) =>
        Assert.Equal(expected, Parser.IsEndpoint(Requests.Parsed(Requests.Http(method: "POST", path: path))));
}
