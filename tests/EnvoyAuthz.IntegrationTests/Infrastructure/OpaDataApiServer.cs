using EnvoyAuthz.Tests.Infrastructure;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback HTTP server answering as OPA's REST Data API does (<c>POST /v1/data/{path}</c> with
/// <c>{"input": …}</c> → <c>{"result": …}</c>, <c>{}</c> when undefined, 500 with an OPA error
/// body on evaluation errors). OPA itself cannot be installed here; each decision path below
/// stands for a policy:
/// <list type="bullet">
/// <item><c>envoy/authz/allow</c>: boolean — allow iff <c>input.identity.groups</c> contains <c>admins</c>.</item>
/// <item><c>envoy/authz/decision</c>: object — same rule, with headers, and a 451 deny with a body.</item>
/// <item><c>envoy/authz/undefined</c>: always undefined.</item>
/// <item><c>envoy/authz/error</c>: OPA's 500 evaluation error.</item>
/// <item><c>envoy/authz/slow</c>: answers after two seconds.</item>
/// </list>
/// Every input received is kept for assertions.
/// </summary>
public sealed class OpaDataApiServer : IAsyncDisposable
{
    private WebApplication _app = null!;
    private readonly List<JsonNode> _inputs = [];

    private OpaDataApiServer()
    {
    }

    /// <summary>Base URL.</summary>
    public string Url { get; private set; } = "";

    /// <summary>Inputs received, in order.</summary>
    public IReadOnlyList<JsonNode> Inputs
    {
        get
        {
            lock (_inputs)
            {
                return [.. _inputs];
            }
        }
    }

    /// <summary>Starts the server on 127.0.0.1.</summary>
    public static async Task<OpaDataApiServer> StartAsync()
    {
        var server = new OpaDataApiServer();
        (server._app, server.Url) = await LoopbackServer.StartAsync(app =>
        {
        app.MapPost("/v1/data/{**path}", async (string path, HttpContext ctx) =>
        {
            var doc = await JsonNode.ParseAsync(ctx.Request.Body);
            var input = doc?["input"];
            lock (server._inputs)
            {
                server._inputs.Add(input?.DeepClone() ?? JsonValue.Create((string?)null)!);
            }
            var groups = input?["identity"]?["groups"]?.AsArray().Select(g => g?.GetValue<string>()).ToList() ?? [];
            var admin = groups.Contains("admins");
            switch (path)
            {
                case "envoy/authz/allow":
                    return Results.Json(new { result = admin, decision_id = Guid.NewGuid().ToString() });
                case "envoy/authz/decision":
                    return admin
                        ? Results.Json(new { result = new { allowed = true, headers = new Dictionary<string, string> { ["x-opa-tenant"] = "blue" }, response_headers_to_add = new Dictionary<string, string> { ["x-opa"] = "yes" } } })
                        : Results.Json(new { result = new { allowed = false, http_status = 451, body = "denied by policy", headers = new Dictionary<string, string> { ["x-deny-reason"] = "not-admin" } } });
                case "envoy/authz/undefined":
                    return Results.Text("{}", "application/json");
                case "envoy/authz/error":
                    return Results.Json(new { code = "internal_error", message = "1 error occurred: policy.rego:7: eval_conflict_error: complete rules must not produce multiple outputs" }, statusCode: 500);
                case "envoy/authz/slow":
                    await Task.Delay(2000);
                    return Results.Json(new { result = true });
                default:
                    return Results.Text("{}", "application/json");
            }
        });
        });
        return server;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
