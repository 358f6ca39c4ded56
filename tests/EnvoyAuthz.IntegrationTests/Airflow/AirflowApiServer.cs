using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace EnvoyAuthz.IntegrationTests.Airflow;

/// <summary>What the stand-in does wrong on purpose.</summary>
public enum AirflowApiFault
{
    /// <summary>Answers as the specs say.</summary>
    None,
    /// <summary>503 on every list request.</summary>
    ServerError,
    /// <summary>Answers the list after <see cref="AirflowApiServer.SlowDelay"/>.</summary>
    Slow,
    /// <summary>Answers the list with a body that is not JSON.</summary>
    MalformedJson,
    /// <summary>Answers the list with JSON of the wrong shape.</summary>
    WrongShape,
    /// <summary>503 on every page after the first.</summary>
    FailAfterFirstPage,
}

/// <summary>
/// A loopback HTTP server answering as Airflow's REST API does for connections (Airflow itself
/// cannot be installed here), reproducing the documented shapes of
/// <c>/work/shared/airflow-openapi</c>:
/// <list type="bullet">
/// <item>v1 (Airflow 2): <c>GET {base}/api/v1/connections?limit&amp;offset</c> with HTTP basic auth →
/// <c>ConnectionCollection</c> <c>{connections: [ConnectionCollectionItem], total_entries}</c>
/// (items: connection_id, conn_type, description, host, login, schema, port — no password, no extra);
/// 401 as <c>{type, title, status, detail}</c>; default limit 100.</item>
/// <item>v2 (Airflow 3): <c>POST {base}/auth/token</c> <c>{username, password}</c> → 201
/// <c>{access_token}</c> (a JWT with <c>exp</c>); <c>GET {base}/api/v2/connections?limit&amp;offset</c>
/// with the bearer token → <c>ConnectionCollectionResponse</c> (items add extra as a JSON string,
/// password masked); 401 <c>{detail}</c> for a missing, unknown or expired token; default limit 50.</item>
/// </list>
/// Faults: <see cref="AirflowApiFault"/>. Every request path and query is kept for assertions.
/// </summary>
public sealed class AirflowApiServer : IAsyncDisposable
{
    /// <summary>The user the stand-in accepts.</summary>
    public const string Username = "envoy-authz";
    /// <summary>The password the stand-in accepts (a planted secret: it must never be logged).</summary>
    public const string Password = "PlantedApiUserPassword";

    private WebApplication _app = null!;
    private readonly List<string> _requests = [];
    private readonly HashSet<string> _validTokens = [];
    private int _tokenCounter;

    private AirflowApiServer(string basePath) => BasePath = basePath;

    /// <summary>Root URL including the base path (what <c>Api:BaseUrl</c> takes).</summary>
    public string Url { get; private set; } = "";
    /// <summary>Base path Airflow is served under ("" or e.g. "/airflow").</summary>
    public string BasePath { get; }
    /// <summary>The connections served, as Airflow's metastore holds them (with password and extra).</summary>
    public List<JsonObject> Connections { get; } = [];
    /// <summary>The current fault.</summary>
    public AirflowApiFault Fault { get; set; }
    /// <summary>Delay for <see cref="AirflowApiFault.Slow"/>.</summary>
    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>Lifetime written into issued tokens' <c>exp</c>.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(1);
    /// <summary>When true, v2 answers leak the real password (a misbehaving server) to prove it is dropped.</summary>
    public bool LeakPasswords { get; set; }
    /// <summary>Tokens issued.</summary>
    public int TokensIssued => Volatile.Read(ref _tokenCounter);

    /// <summary>Requests received ("METHOD path?query"), in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Invalidates every issued token (as if they expired): the next use answers 401.</summary>
    public void ExpireTokens()
    {
        lock (_validTokens)
        {
            _validTokens.Clear();
        }
    }

    /// <summary>Adds <paramref name="count"/> connections <c>conn_0…</c>, each with a planted password and secret extra.</summary>
    public void AddConnections(int count, string hostPrefix = "svc", string idPrefix = "conn_")
    {
        for (var i = 0; i < count; i++)
        {
            Connections.Add(Connection($"{idPrefix}{i}", "http", $"{hostPrefix}{i}.example", 443,
                $$$"""{"timeout": {{{i}}}, "api_key": "PlantedApiExtraKey{{{i}}}", "nested": {"token": "PlantedNestedToken", "ok": true} }"""));
        }
    }

    /// <summary>One connection as the metastore holds it.</summary>
    public static JsonObject Connection(string id, string type, string? host, int? port, string? extra, string? login = "svc",
        string? schema = null, string? description = "from the Airflow API") => new()
        {
            ["connection_id"] = id, ["conn_type"] = type, ["host"] = host, ["port"] = port, ["login"] = login, ["schema"] = schema,
            ["description"] = description, ["extra"] = extra, ["password"] = "PlantedMetastorePassword",
        };

    /// <summary>Starts the server on 127.0.0.1 under <paramref name="basePath"/>.</summary>
    public static async Task<AirflowApiServer> StartAsync(string basePath = "")
    {
        var server = new AirflowApiServer(basePath);
        string baseUrl;
        (server._app, baseUrl) = await EnvoyAuthz.Tests.Infrastructure.LoopbackServer.StartAsync(app => app.Run(server.HandleAsync));
        server.Url = baseUrl + basePath;
        return server;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        lock (_requests)
        {
            _requests.Add($"{ctx.Request.Method} {path}{ctx.Request.QueryString}");
        }
        if (!path.StartsWith(BasePath, StringComparison.Ordinal))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        path = path[BasePath.Length..];
        switch (ctx.Request.Method, path)
        {
            case ("POST", "/auth/token"):
                await TokenAsync(ctx);
                return;
            case ("GET", "/api/v1/connections"):
                if (!BasicAuthOk(ctx))
                {
                    await Json(ctx, 401, new JsonObject { ["type"] = "https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html#section/Errors/Unauthenticated", ["title"] = "Unauthorized", ["status"] = 401, ["detail"] = null });
                    return;
                }
                await ListAsync(ctx, v2: false);
                return;
            case ("GET", "/api/v2/connections"):
                if (!BearerOk(ctx))
                {
                    await Json(ctx, 401, new JsonObject { ["detail"] = "Invalid JWT token" });
                    return;
                }
                await ListAsync(ctx, v2: true);
                return;
            default:
                ctx.Response.StatusCode = 404;
                return;
        }
    }

    private async Task TokenAsync(HttpContext ctx)
    {
        var body = await JsonNode.ParseAsync(ctx.Request.Body);
        if (body?["username"]?.GetValue<string>() != Username || body?["password"]?.GetValue<string>() != Password)
        {
            await Json(ctx, 401, new JsonObject { ["detail"] = "Invalid credentials" });
            return;
        }
        var n = Interlocked.Increment(ref _tokenCounter);
        var exp = DateTimeOffset.UtcNow.Add(TokenLifetime).ToUnixTimeSeconds();
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var token = $"{B64("""{"alg":"HS512","typ":"JWT"}""")}.{B64($$"""{"sub":"{{Username}}","exp":{{exp}},"n":{{n}}}""")}.c2ln";
        lock (_validTokens)
        {
            _validTokens.Add(token);
        }
        await Json(ctx, 201, new JsonObject { ["access_token"] = token });
    }

    private async Task ListAsync(HttpContext ctx, bool v2)
    {
        var limit = int.TryParse(ctx.Request.Query["limit"], out var l) ? l : v2 ? 50 : 100;
        var offset = int.TryParse(ctx.Request.Query["offset"], out var o) ? o : 0;
        switch (Fault)
        {
            case AirflowApiFault.ServerError:
            case AirflowApiFault.FailAfterFirstPage when offset > 0:
                await Json(ctx, 503, new JsonObject { ["detail"] = "Service Unavailable" });
                return;
            case AirflowApiFault.Slow:
                try
                {
                    await Task.Delay(SlowDelay, ctx.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                break;
            case AirflowApiFault.MalformedJson:
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync("""{"connections": [{"connection_id": "x", "password": "PlantedInMalformed" """);
                return;
            case AirflowApiFault.WrongShape:
                await Json(ctx, 200, new JsonObject { ["items"] = new JsonArray(), ["total"] = 0 });
                return;
        }
        var page = new JsonArray();
        foreach (var c in Connections.Skip(offset).Take(limit))
        {
            var item = new JsonObject
            {
                ["connection_id"] = c["connection_id"]!.DeepClone(), ["conn_type"] = c["conn_type"]!.DeepClone(),
                ["description"] = c["description"]?.DeepClone(), ["host"] = c["host"]?.DeepClone(), ["login"] = c["login"]?.DeepClone(),
                ["schema"] = c["schema"]?.DeepClone(), ["port"] = c["port"]?.DeepClone(),
            };
            if (v2)
            {
                item["extra"] = c["extra"]?.DeepClone();
                item["password"] = LeakPasswords ? c["password"]?.DeepClone() : "***";
                item["team_name"] = null;
            }
            page.Add(item);
        }
        await Json(ctx, 200, new JsonObject { ["connections"] = page, ["total_entries"] = Connections.Count });
    }

    private static bool BasicAuthOk(HttpContext ctx)
    {
        var h = ctx.Request.Headers.Authorization.ToString();
        return h.StartsWith("Basic ", StringComparison.Ordinal) &&
            Encoding.UTF8.GetString(Convert.FromBase64String(h[6..])) == $"{Username}:{Password}";
    }

    private bool BearerOk(HttpContext ctx)
    {
        var h = ctx.Request.Headers.Authorization.ToString();
        if (!h.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return false;
        }
        lock (_validTokens)
        {
            return _validTokens.Contains(h[7..]);
        }
    }

    private static async Task Json(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(body.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
