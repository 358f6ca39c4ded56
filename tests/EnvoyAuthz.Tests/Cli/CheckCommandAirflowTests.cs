using System.Text.Json;
using EnvoyAuthz.Cli;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace EnvoyAuthz.Tests.Cli;

/// <summary>
/// The <c>check</c> verb with Airflow on loads the connection sources <c>serve</c> runs — the
/// file, the environment and the API (a stand-in on loopback) — before the one Check, and fails
/// clearly (exit 2) when one cannot be loaded, instead of answering every Check 503.
/// </summary>
public sealed class CheckCommandAirflowTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-check-airflow-").FullName;
    private WebApplication? _api;
    private string _apiUrl = "";

    public async ValueTask InitializeAsync()
    {
        (_api, _apiUrl) = await LoopbackServer.StartAsync(app =>
            app.MapGet("/api/v1/connections", () => Results.Json(new
            {
                connections = new[] { new { connection_id = "api_conn", conn_type = "http", host = "https://api-only.example", password = "PlantedApiPw" } },
                total_entries = 1,
            })));
        File.WriteAllText(Path.Combine(_dir, "connections.env"),
            "# airflow connections export connections.env --format env\n" +
            "partner_api=http://https://svc:PlantedFilePw@api.partner.example:8443/v2?timeout=10\n");
    }

    public async ValueTask DisposeAsync()
    {
        if (_api is not null)
        {
            await _api.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    private string Config(string connectionsFile, string apiUrl)
    {
        var config = Path.Combine(_dir, "config.yaml");
        File.WriteAllText(config, $"""
            EnvoyAuthz:
              Policy:
                Path: {RepoPaths.Of("envoy", "policy")}
              Airflow:
                Enabled: true
                Connections:
                  File: {connectionsFile}
                  Environment: true
                  Api:
                    BaseUrl: {apiUrl}
                    Version: v1
                    RequestTimeout: "00:00:02"
            """);
        return config;
    }

    private string Request(string host, string? connId)
    {
        var request = Path.Combine(_dir, $"request-{Guid.NewGuid():N}.json");
        var extensions = connId is null ? "" : $$""", "contextExtensions": { "airflow_conn_id": "{{connId}}" }""";
        File.WriteAllText(request, $$"""
            { "attributes": { "request": { "http": { "method": "GET", "path": "/v2/items", "host": "{{host}}", "scheme": "https",
              "headers": { ":authority": "{{host}}" } } }{{extensions}} } }
            """);
        return request;
    }

    private static async Task<(int Code, JsonElement? Root, string Err)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await CheckCommand.RunAsync(args, stdout, stderr);
        var text = stdout.ToString();
        return (code, text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : null, stderr.ToString());
    }

    [Theory]
    // by the request authority: the file's connection (an .env export, a double-scheme URI)
    [InlineData("api.partner.example:8443", null, "partner_api", "https://api.partner.example")]
    // by context extension: a connection only the API holds
    [InlineData("anything.example", "api_conn", "api_conn", "https://api-only.example")]
    public async Task Check_LoadsFileAndApiSources_ConnectionReachesThePolicyInput(string host, string? connId, string expectedId, string expectedHost)
    {
        var (code, root, err) = await Run("--config", Config(Path.Combine(_dir, "connections.env"), _apiUrl), "--request", Request(host, connId));

        Assert.True(root is not null, err);
        var decision = root.Value.GetProperty("decision");
        Assert.NotEqual("dependency_unavailable", decision.GetProperty("reason").GetString());
        Assert.NotEqual(503, decision.GetProperty("http_status").GetInt32());
        var connection = root.Value.GetProperty("input").GetProperty("airflow").GetProperty("connection");
        Assert.Equal(expectedId, connection.GetProperty("conn_id").GetString());
        Assert.Equal(expectedHost, connection.GetProperty("host").GetString());
        Assert.Equal(1, code); // no token: denied 401, decided with the connection known
        Assert.DoesNotContain("Planted", root.Value.GetRawText() + err);
    }

    [Fact]
    public async Task Check_ConnectionFileMissing_FailsClearly()
    {
        var missing = Path.Combine(_dir, "nope.json");
        var (code, root, err) = await Run("--config", Config(missing, _apiUrl), "--request", Request("h.example", null));
        Assert.Equal(2, code);
        Assert.Null(root);
        Assert.StartsWith("envoy-authz check: ", err, StringComparison.Ordinal);
        Assert.Contains("The Airflow connections file", err, StringComparison.Ordinal);
        Assert.Contains("does not exist", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_ConnectionFileRefused_FailsClearly_WithoutContent()
    {
        var file = Path.Combine(_dir, "bad.json");
        File.WriteAllText(file, """{"a": {"conn_type": "http", "host": "h", "passwd": "PlantedTypo"}}""");
        var (code, root, err) = await Run("--config", Config(file, _apiUrl), "--request", Request("h", null));
        Assert.Equal(2, code);
        Assert.Null(root);
        Assert.Contains("connection 'a'", err, StringComparison.Ordinal);
        Assert.DoesNotContain("Planted", err);
    }

    [Fact]
    public async Task Check_ApiUnreachable_FailsClearly()
    {
        // a port that was just free: nothing listens there
        var (gone, goneUrl) = await LoopbackServer.StartAsync(_ => { });
        await gone.DisposeAsync();
        var (code, root, err) = await Run("--config", Config(Path.Combine(_dir, "connections.env"), goneUrl), "--request", Request("h.example", null));
        Assert.Equal(2, code);
        Assert.Null(root);
        Assert.Contains("could not be loaded from the Airflow API", err, StringComparison.Ordinal);
    }
}
