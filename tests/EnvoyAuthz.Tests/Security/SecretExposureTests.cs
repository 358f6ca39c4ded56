using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// One service, built by the real <see cref="AuthzHost.Build"/> with a policy that echoes its whole
/// <c>input</c> into a response header, Airflow awareness and a JSON-RPC endpoint; every log line it
/// writes (Trace and up) goes to a <see cref="SecurityLogSink"/>.
/// </summary>
public sealed class SecretExposureFixture : IAsyncLifetime
{
    public const string Audience = "api://authz";
    private readonly string _policyDir = Directory.CreateTempSubdirectory("envoy-authz-exposure-").FullName;
    private WebApplication _app = null!;

    internal JwksServer Idp { get; private set; } = null!;
    public PlantedSecrets Secrets { get; } = new();
    public SecurityLogSink Logs { get; }
    public CheckPipeline Pipeline { get; private set; } = null!;
    public AuthzMetrics Metrics { get; private set; } = null!;

    public SecretExposureFixture() => Logs = new SecurityLogSink(Secrets);

    public async ValueTask InitializeAsync()
    {
        Idp = await JwksServer.StartAsync();
        await File.WriteAllTextAsync(Path.Combine(_policyDir, "echo.rego"), """
            package envoy.authz

            import rego.v1

            default allow := false

            allow := {"allowed": true, "headers": {"x-echo-input": json.marshal(input)}} if input.identity.subject
            """, TestContext.Current.CancellationToken);
        List<KeyValuePair<string, string?>> settings =
        [
            new("EnvoyAuthz:Identity:Issuers:0:Name", "corp"),
            new("EnvoyAuthz:Identity:Issuers:0:Issuer", Idp.Issuer),
            new("EnvoyAuthz:Identity:Issuers:0:Audiences:0", Audience),
            new("EnvoyAuthz:Identity:Issuers:0:RequireHttpsMetadata", "false"),
            new("EnvoyAuthz:Policy:Path", _policyDir),
            new("EnvoyAuthz:Airflow:Enabled", "true"),
            new("EnvoyAuthz:Airflow:Connections:Environment", "false"),
            new("EnvoyAuthz:Airflow:JsonRpc:Paths:0", "/mcp"),
            // Outcomes, not speed, are under test: on 2 shared cores a Check must not be shed as overloaded.
            new("EnvoyAuthz:Server:CheckTimeout", "00:00:30"),
            new("EnvoyAuthz:Server:QueueTimeout", "00:00:01"),
            new("EnvoyAuthz:Policy:EvaluationTimeout", "00:00:05"),
        ];
        var (options, configuration) = AuthzHost.LoadConfiguration(null, dev: false, settings);
        _app = AuthzHost.Build(options, configuration, null, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(Logs);
            logging.SetMinimumLevel(LogLevel.Trace);
        });
        Pipeline = _app.Services.GetRequiredService<CheckPipeline>();
        Metrics = _app.Services.GetRequiredService<AuthzMetrics>();
    }

    public string Token()
    {
        var token = Idp.Mint(DateTimeOffset.UtcNow, c => c["sub"] = "alice", audience: Audience, lifetime: TimeSpan.FromHours(1));
        Secrets.PlantToken(token);
        return token;
    }

    public async Task<string> MetricsTextAsync()
    {
        using var stream = new MemoryStream();
        await Metrics.Registry.CollectAndExportAsTextAsync(stream, TestContext.Current.CancellationToken);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await Idp.DisposeAsync();
        Directory.Delete(_policyDir, recursive: true);
    }
}

/// <summary>
/// A hostile table: a secret planted in every caller-controlled place of a Check (header names in
/// any case, <c>header_map</c>, userinfo in the host, the query, an absolute-form target, URLs in
/// headers, JSON, form and raw bodies, Airflow 3's and Airflow 2's login bodies, JSON-RPC
/// <c>params</c> with an <c>extra</c> given as a JSON string, truncated bodies) never reaches the
/// policy's <c>input</c>, any log line, or the <c>/metrics</c> text; path parameters and the method,
/// which the policy input keeps, never reach a log line or a metric. Each request is allowed, so
/// the policy did see its input.
/// </summary>
public sealed class SecretExposureTests(SecretExposureFixture f) : IClassFixture<SecretExposureFixture>
{
    private delegate void Plant(CheckRequest request, string token, string secret);

    /// <summary>What a place is checked for.</summary>
    public enum Check
    {
        /// <summary>The request is allowed; its secret is in no input, log line or metric.</summary>
        Everywhere,
        /// <summary>As <see cref="Everywhere"/>, or the request is refused as a bad request before policy runs (path rules may refuse it).</summary>
        EverywhereUnlessRefused,
        /// <summary>The value may reach policy input (the contract keeps it there) but no log line or metric.</summary>
        LogsAndMetrics,
    }

    private static readonly Dictionary<string, (Plant Plant, Check Check)> Places = new()
    {
        ["Authorization header, capitalised"] = ((r, t, _) => Replace(r, "Authorization", "Bearer " + t), Check.Everywhere),
        ["AUTHORIZATION header, upper case"] = ((r, t, _) => Replace(r, "AUTHORIZATION", "Bearer " + t), Check.Everywhere),
        ["Cookie header, capitalised"] = ((r, _, s) => Headers(r)["Cookie"] = "theme=dark; session=" + s, Check.Everywhere),
        ["Proxy-Authorization header"] = ((r, _, s) => Headers(r)["Proxy-Authorization"] = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("proxy:" + s)), Check.Everywhere),
        ["X-Api-Key header"] = ((r, _, s) => Headers(r)["X-Api-Key"] = s, Check.Everywhere),
        ["X-Auth-Token header (a sensitive name)"] = ((r, _, s) => Headers(r)["X-Auth-Token"] = s, Check.Everywhere),
        ["header_map with raw values in mixed case"] = ((r, t, s) =>
        {
            var http = r.Attributes.Request.Http;
            var map = new HeaderMap();
            foreach (var (k, v) in http.Headers.Where(h => h.Key != "authorization"))
            {
                map.Headers.Add(new HeaderValue { Key = k, RawValue = ByteString.CopyFromUtf8(v) });
            }
            map.Headers.Add(new HeaderValue { Key = "Authorization", RawValue = ByteString.CopyFromUtf8("Bearer " + t) });
            map.Headers.Add(new HeaderValue { Key = "Cookie", RawValue = ByteString.CopyFromUtf8("session=" + s) });
            map.Headers.Add(new HeaderValue { Key = "X-Api-Key", Value = s });
            http.Headers.Clear();
            http.HeaderMap = map;
        }, Check.Everywhere),
        ["userinfo in host and :authority"] = ((r, _, s) =>
        {
            r.Attributes.Request.Http.Host = $"admin:{s}@airflow.example.com";
            Headers(r)[":authority"] = $"admin:{s}@airflow.example.com";
        }, Check.Everywhere),
        // Path parameters stay in parsed_path (as OPA-Envoy keeps them) but never reach a log line.
        ["session path parameter"] = ((r, _, s) => SetPath(r, $"/app;jsessionid={s}/dags"), Check.LogsAndMetrics),
        ["token in the query"] = ((r, _, s) => SetPath(r, $"/api/v2/dags?limit=5&access_token={s}"), Check.Everywhere),
        ["absolute-form target with userinfo"] = ((r, _, s) => SetPath(r, $"http://admin:{s}@airflow.example.com/api/v2/dags"), Check.EverywhereUnlessRefused),
        ["URL with userinfo in the Referer header"] = ((r, _, s) => Headers(r)["referer"] = $"https://admin:{s}@airflow.example.com/home", Check.Everywhere),
        ["Airflow 3 POST /auth/token password"] = ((r, _, s) => SetBody(r, "POST", "/auth/token", "application/json", $$"""{"username":"admin","password":"{{s}}"}"""), Check.Everywhere),
        ["Airflow 2 POST /login/ form"] = ((r, _, s) => SetBody(r, "POST", "/login/", "application/x-www-form-urlencoded", $"username=admin&password={s}&csrf_token={s}"), Check.Everywhere),
        ["Airflow API connection with extra as a JSON string"] = ((r, _, s) => SetBody(r, "POST", "/api/v2/connections", "application/json",
            $$"""{"connection_id":"c","conn_type":"http","extra":"{\"token\": \"{{s}}\"}"}"""), Check.Everywhere),
        ["JSON-RPC params with extra as a JSON string"] = ((r, _, s) => SetBody(r, "POST", "/mcp", "application/json",
            $$"""{"jsonrpc":"2.0","method":"create_connection","params":{"conn_id":"c","extra":"{\"api_key\": \"{{s}}\"}"},"id":1}"""), Check.Everywhere),
        ["raw_body bytes (pack_as_bytes)"] = ((r, _, s) =>
        {
            SetBody(r, "POST", "/v1/things", "application/json", $$"""{"client_secret":"{{s}}"}""");
            r.Attributes.Request.Http.RawBody = ByteString.CopyFromUtf8(r.Attributes.Request.Http.Body);
            r.Attributes.Request.Http.Body = "";
        }, Check.Everywhere),
        ["truncated JSON body"] = ((r, _, s) =>
        {
            SetBody(r, "POST", "/auth/token", "application/json", $$"""{"username":"admin","password":"{{s}}""");
            Headers(r)["x-envoy-auth-partial-body"] = "true";
        }, Check.Everywhere),
        // The method is no secret a policy must not see, but a log line only takes a short token.
        ["a long method"] = ((r, _, s) =>
        {
            r.Attributes.Request.Http.Method = s.ToUpperInvariant();
            Headers(r)[":method"] = s.ToUpperInvariant();
        }, Check.LogsAndMetrics),
    };

    public static TheoryData<string> PlaceNames() => new(Places.Keys);

    [Theory]
    [MemberData(nameof(PlaceNames))]
    public async Task PlantedSecret_NeverReachesPolicyInputLogsOrMetrics(string place)
    {
        var (plant, check) = Places[place];
        var secret = "Planted" + Guid.NewGuid().ToString("N");
        var request = Requests.Http(host: "airflow.example.com");
        var token = f.Token();
        Headers(request)["authorization"] = "Bearer " + token;
        plant(request, token, secret);
        f.Secrets.Plant(secret);
        f.Secrets.Plant(secret.ToUpperInvariant());
        var from = f.Logs.Count;

        var response = await f.Pipeline.CheckAsync(request, TestContext.Current.CancellationToken);

        var reason = ResponseShape.Reason(response);
        if (check == Check.Everywhere || check == Check.EverywhereUnlessRefused && reason != "bad_request")
        {
            Assert.Equal("allowed", reason);
            var input = ResponseShape.OkHeaders(response)["x-echo-input"];
            Assert.Contains("\"attributes\"", input);
            Assert.DoesNotContain(secret, input);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(secret))[..24], input);
            Assert.DoesNotContain(token, input);
            foreach (var part in token.Split('.'))
            {
                Assert.DoesNotContain(part, input);
            }
        }
        Assert.True(f.Logs.Count > from, "the decision was logged");
        Assert.Empty(f.Logs.LeaksSince(from));
        Assert.DoesNotContain(f.Logs.Lines, l => l.Contains(secret, StringComparison.OrdinalIgnoreCase));
        var metrics = await f.MetricsTextAsync();
        Assert.DoesNotContain(secret, metrics, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(token, metrics);
    }

    [Fact]
    public async Task DecisionLog_NamesHostAndPath_WithoutUserInfoOrParameters()
    {
        var secret = "Planted" + Guid.NewGuid().ToString("N");
        f.Secrets.Plant(secret);
        var request = Requests.Http(path: $"/api/v2/dags;jsessionid={secret}/etl?token={secret}", host: $"user:{secret}@airflow.example.com");
        var from = f.Logs.Count;

        await f.Pipeline.CheckAsync(request, TestContext.Current.CancellationToken);

        var line = Assert.Single(f.Logs.Lines.Skip((int)from), l => l.Contains("[1000]", StringComparison.Ordinal));
        Assert.Contains("host=airflow.example.com ", line);
        Assert.Contains("path=/api/v2/dags/etl ", line);
        Assert.DoesNotContain(secret, line);
    }

    private static Google.Protobuf.Collections.MapField<string, string> Headers(CheckRequest r) => r.Attributes.Request.Http.Headers;

    private static void Replace(CheckRequest r, string name, string value)
    {
        Headers(r).Remove("authorization");
        Headers(r)[name] = value;
    }

    private static void SetPath(CheckRequest r, string path)
    {
        r.Attributes.Request.Http.Path = path;
        Headers(r)[":path"] = path;
    }

    private static void SetBody(CheckRequest r, string method, string path, string contentType, string body)
    {
        var http = r.Attributes.Request.Http;
        http.Method = method;
        Headers(r)[":method"] = method;
        SetPath(r, path);
        Headers(r)["content-type"] = contentType;
        http.Body = body;
        http.Size = Encoding.UTF8.GetByteCount(body);
    }
}
