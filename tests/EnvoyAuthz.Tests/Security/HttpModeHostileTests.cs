using System.Net;
using System.Text.Json;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Http;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// HTTP mode (<c>/authz/…</c>) under attack, for every proxy style — nginx <c>auth_request</c>,
/// Traefik <c>ForwardAuth</c>, Envoy's HTTP ext_authz — through the real endpoint and pipeline. Each
/// request is built as Kestrel hands it over: the raw request target as sent, and
/// <c>HttpRequest.Path</c> already percent-decoded once (so a handler that reads it decodes twice).
/// </summary>
[Collection("Security")]
public sealed class HttpModeHostileTests(SecurityFixture f)
{
    private static readonly AuthzOptions Defaults = new();

    public enum Style
    {
        Nginx,
        Traefik,
        Envoy,
    }

    /// <summary>An auth request as <paramref name="style"/>'s proxy sends it for <paramref name="method"/> <paramref name="target"/>.</summary>
    private static DefaultHttpContext Described(Style style, string method, string target, Dictionary<string, string>? extra = null, string? token = null)
    {
        var headers = new Dictionary<string, string>(extra ?? []);
        if (token is not null)
        {
            headers["authorization"] = "Bearer " + token;
        }
        switch (style)
        {
            case Style.Nginx:
                headers["X-Original-URI"] = target;
                headers["X-Original-Method"] = method;
                headers["X-Original-Host"] = "airflow.example.com";
                return Context("GET", "/authz/nginx", headers);
            case Style.Traefik:
                headers["X-Forwarded-Uri"] = target;
                headers["X-Forwarded-Method"] = method;
                headers["X-Forwarded-Host"] = "airflow.example.com";
                headers["X-Forwarded-Proto"] = "https";
                return Context("GET", "/authz/traefik", headers);
            default:
                headers["Host"] = "airflow.example.com";
                return Context(method, "/authz/envoy" + target, headers);
        }
    }

    /// <summary>A request as Kestrel hands it over: raw target kept, Path decoded once (all but <c>%2F</c>).</summary>
    private static DefaultHttpContext Context(string method, string rawTarget, Dictionary<string, string> headers, string peer = "192.0.2.10")
    {
        var ctx = new DefaultHttpContext();
        ctx.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        ctx.Request.Method = method;
        ctx.Request.Scheme = "http";
        ctx.Request.Protocol = "HTTP/1.1";
        var q = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = q >= 0 ? rawTarget[..q] : rawTarget;
        try
        {
            ctx.Request.Path = PathString.FromUriComponent(rawPath.Replace("%2F", "%252F", StringComparison.OrdinalIgnoreCase));
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // Kestrel answers such a target (e.g. one with %00) 400 itself; the endpoint must deny it too.
            ctx.Request.Path = new PathString(rawPath.StartsWith('/') ? rawPath : "/" + rawPath);
        }
        ctx.Request.QueryString = new QueryString(q >= 0 ? rawTarget[q..] : "");
        foreach (var (k, v) in headers)
        {
            ctx.Request.Headers.Append(k, v);
        }
        ctx.Connection.RemoteIpAddress = IPAddress.Parse(peer);
        ctx.Connection.RemotePort = 50123;
        ctx.Response.Body = new MemoryStream();
        return ctx;
    }

    private static async Task<(int Status, string Reason, IHeaderDictionary Headers)> SendAsync(CheckPipeline pipeline, HttpContext ctx, AuthzOptions? options = null)
    {
        await HttpAuthorizationEndpoint.HandleAsync(ctx, pipeline, options ?? Defaults);
        var status = ctx.Response.StatusCode;
        if (status == 200)
        {
            return (status, "allowed", ctx.Response.Headers);
        }
        ctx.Response.Body.Position = 0;
        using var body = await JsonDocument.ParseAsync(ctx.Response.Body, cancellationToken: TestContext.Current.CancellationToken);
        return (status, body.RootElement.GetProperty("reason").GetString()!, ctx.Response.Headers);
    }

    private string Viewer => f.Genuine("vic", ["viewers"]);

    // ---- one proxy's description per endpoint --------------------------------------------------

    /// <summary>The other proxies' description headers, all saying <c>GET /api/v1/dags</c> (which a viewer may do).</summary>
    private static Dictionary<string, string> ForeignDescriptions(Style style)
    {
        var h = new Dictionary<string, string>();
        if (style != Style.Nginx)
        {
            h["X-Original-URI"] = "/api/v1/dags";
            h["X-Original-Method"] = "GET";
            h["X-Original-Host"] = "other.example.com";
        }
        if (style != Style.Traefik)
        {
            h["X-Forwarded-Uri"] = "/api/v1/dags";
            h["X-Forwarded-Method"] = "GET";
            h["X-Forwarded-Host"] = "other.example.com";
        }
        return h;
    }

    /// <summary>
    /// Issue 9: behind Traefik (which passes the client's headers to the auth server) a client adds
    /// <c>X-Original-URI: /api/v1/dags</c> and <c>X-Original-Method: GET</c> to a real
    /// <c>DELETE /admin/users</c>. Every endpoint reads its own proxy's description only.
    /// </summary>
    [Theory]
    [InlineData(Style.Traefik)]
    [InlineData(Style.Nginx)]
    [InlineData(Style.Envoy)]
    public async Task ForeignDescriptionHeaders_ViewerToken_DecidedOnTheEndpointsOwnProxy(Style style)
    {
        var (status, reason, _) = await SendAsync(f.Example, Described(style, "DELETE", "/admin/users", ForeignDescriptions(style), Viewer));
        Assert.Equal(403, status);
        Assert.Equal("policy_denied", reason);

        var (echoStatus, _, echoed) = await SendAsync(f.Echo, Described(style, "DELETE", "/admin/users", ForeignDescriptions(style), Viewer));
        Assert.Equal(200, echoStatus);
        Assert.Equal("DELETE", echoed["x-echo-method"].ToString());
        Assert.Equal("""["admin","users"]""", echoed["x-echo-parsed-path"].ToString());
        Assert.Equal("airflow.example.com", echoed["x-echo-host"].ToString());
        var names = echoed["x-echo-header-names"].ToString().Split(',');
        foreach (var description in ProxyRequestDescriber.DescriptionHeaders)
        {
            Assert.DoesNotContain(description, names);
        }
        Assert.DoesNotContain("host", names);
    }

    public static TheoryData<Style, string, string> MissingDescriptions => new()
    {
        { Style.Nginx, "X-Original-URI", "<absent>" },
        { Style.Nginx, "X-Original-URI", "" },
        { Style.Nginx, "X-Original-URI", "  " },
        { Style.Nginx, "X-Original-URI", "<twice>" },
        { Style.Nginx, "X-Original-Method", "<absent>" },
        { Style.Nginx, "X-Original-Method", "" },
        { Style.Nginx, "X-Original-Host", "" },
        { Style.Traefik, "X-Forwarded-Uri", "<absent>" },
        { Style.Traefik, "X-Forwarded-Uri", "" },
        { Style.Traefik, "X-Forwarded-Uri", "<twice>" },
        { Style.Traefik, "X-Forwarded-Method", "<absent>" },
        { Style.Traefik, "X-Forwarded-Method", "" },
        { Style.Traefik, "X-Forwarded-Proto", "" },
    };

    /// <summary>
    /// Issue 9: an empty <c>X-Original-URI</c> or <c>X-Forwarded-Uri</c> used to fall back to the auth
    /// request itself. A missing, empty or repeated description header is a 400 <c>bad_request</c>.
    /// </summary>
    [Theory]
    [MemberData(nameof(MissingDescriptions))]
    public async Task DescriptionHeader_MissingEmptyOrRepeated_DeniedBadRequestWithJsonBody(Style style, string header, string value)
    {
        var ctx = Described(style, "GET", "/api/v1/dags", token: Viewer);
        switch (value)
        {
            case "<absent>":
                ctx.Request.Headers.Remove(header);
                break;
            case "<twice>":
                ctx.Request.Headers[header] = new Microsoft.Extensions.Primitives.StringValues(["/api/v1/dags", "/admin/users"]);
                break;
            default:
                ctx.Request.Headers[header] = value;
                break;
        }
        var (status, reason, headers) = await SendAsync(f.Example, ctx);
        Assert.Equal(400, status);
        Assert.Equal("bad_request", reason);
        Assert.DoesNotContain("x-authz-subject", headers.Keys, StringComparer.OrdinalIgnoreCase);
    }

    public static TheoryData<Style, string, string> MalformedDescriptions => new()
    {
        { Style.Nginx, "X-Original-URI", "http://airflow.example.com/api/v1/dags" },
        { Style.Nginx, "X-Original-URI", "*" },
        { Style.Nginx, "X-Original-URI", "api/v1/dags" },
        { Style.Nginx, "X-Original-URI", "/api/v1/dags?x=\u0001" },
        { Style.Nginx, "X-Original-Method", "GET /admin" },
        { Style.Nginx, "X-Original-Method", "G\u0000ET" },
        { Style.Nginx, "X-Original-Host", "a.example.com, b.example.com" },
        { Style.Traefik, "X-Forwarded-Uri", "//evil.example.com/admin" },
        { Style.Traefik, "X-Forwarded-Method", "GET\r\nX: y" },
        { Style.Traefik, "X-Forwarded-Host", "evil.example.com/admin" },
        { Style.Traefik, "X-Forwarded-Proto", "https://x" },
    };

    [Theory]
    [MemberData(nameof(MalformedDescriptions))]
    public async Task DescriptionHeader_Malformed_DeniedBadRequest(Style style, string header, string value)
    {
        var ctx = Described(style, "GET", "/api/v1/dags", token: Viewer);
        ctx.Request.Headers[header] = value;
        var (status, reason, _) = await SendAsync(f.Example, ctx);
        if (value.StartsWith("//", StringComparison.Ordinal))
        {
            // "//evil.example.com/admin" is an origin-form path with merged slashes: /evil.example.com/admin, not an API path.
            Assert.Equal("policy_denied", reason);
            return;
        }
        Assert.Equal(400, status);
        Assert.Equal("bad_request", reason);
    }

    // ---- the auth request's own target ----------------------------------------------------------

    public static TheoryData<string, int, string> AuthRequestTargets => new()
    {
        // Issue 9: "%3F" and "%23" were decoded by ASP.NET and then cut as query and fragment: /healthz, public.
        { "/authz/envoy/healthz%3F/x", 401, "missing_token" },
        { "/authz/envoy/healthz%23/x", 401, "missing_token" },
        { "/authz/envoy/healthz%3Fx", 401, "missing_token" },
        { "/authz/healthz%3F/x", 400, "bad_request" },
        { "/authz/healthz%23/x", 400, "bad_request" },
        { "/authz/healthz", 400, "bad_request" },
        { "/authz", 400, "bad_request" },
        { "/authz/", 400, "bad_request" },
        { "/authz/nginx/", 400, "bad_request" },
        { "/authz/nginxx", 400, "bad_request" },
        { "/authz/envoyx/healthz", 400, "bad_request" },
        { "/authz/%65nvoy/healthz", 400, "bad_request" },
        { "/authz/envoy%2Fhealthz", 400, "bad_request" },
        { "/authz/envoy/%2561dmin/users", 400, "bad_request" },
        { "/authz/envoy/%252e%252e/healthz", 400, "bad_request" },
        { "/authz/envoy/x/../healthz", 400, "bad_request" },
        { "/authz/envoy/healthz", 200, "allowed" },
        { "/authz/envoy//healthz", 200, "allowed" },
        { "/authz/envoy/healthz?probe=1", 200, "allowed" },
        { "/AUTHZ/ENVOY/healthz", 200, "allowed" },
    };

    /// <summary>Without a token, under the example policy (public /healthz): the path is read from the raw target and decoded once.</summary>
    [Theory]
    [MemberData(nameof(AuthRequestTargets))]
    public async Task AuthRequestTarget_NoToken_DecodedOnceFromTheRawTarget(string rawTarget, int expectedStatus, string expectedReason)
    {
        var (status, reason, _) = await SendAsync(f.Example, Context("GET", rawTarget, new Dictionary<string, string> { ["Host"] = "airflow.example.com" }));
        Assert.Equal(expectedReason, reason);
        Assert.Equal(expectedStatus, status);
    }

    [Fact]
    public async Task EnvoyPrefix_EncodedQuestionMark_ReachesPolicyAsASegmentCharacter()
    {
        var (status, _, echoed) = await SendAsync(f.Echo, Context("GET", "/authz/envoy/healthz%3F/x?y=1", new Dictionary<string, string> { ["authorization"] = "Bearer " + Viewer }));
        Assert.Equal(200, status);
        Assert.Equal("""["healthz?","x"]""", echoed["x-echo-parsed-path"].ToString());
        Assert.Equal("\"/healthz%3F/x?y=1\"", echoed["x-echo-raw-path"].ToString());
    }

    public static TheoryData<string> PrefixCases => ["/AUTHZ/ENVOY/admin/users", "/Authz/Envoy/admin/users", "/authz/ENVOY/admin/users", "/AUTHZ/envoy/admin/users"];

    /// <summary>Issue 9: <c>/AUTHZ/admin/users</c> matched the route but the prefix was stripped only in lower case.</summary>
    [Theory]
    [MemberData(nameof(PrefixCases))]
    public async Task PrefixInAnyCase_StrippedAsMatched_ViewerDeniedAdmin(string rawTarget)
    {
        var (status, reason, _) = await SendAsync(f.Example, Context("GET", rawTarget, new Dictionary<string, string> { ["authorization"] = "Bearer " + Viewer }));
        Assert.Equal("policy_denied", reason);
        Assert.Equal(403, status);

        var (_, _, echoed) = await SendAsync(f.Echo, Context("GET", rawTarget, new Dictionary<string, string> { ["authorization"] = "Bearer " + Viewer }));
        Assert.Equal("""["admin","users"]""", echoed["x-echo-parsed-path"].ToString());
    }

    [Theory]
    [InlineData("/AUTHZ/admin/users")]
    [InlineData("/Authz/admin/users")]
    public async Task OldPrefixWithoutEndpoint_AnyCase_DeniedBadRequest(string rawTarget)
    {
        var (status, reason, _) = await SendAsync(f.Example, Context("GET", rawTarget, new Dictionary<string, string> { ["authorization"] = "Bearer " + Viewer }));
        Assert.Equal(400, status);
        Assert.Equal("bad_request", reason);
    }

    [Theory]
    [InlineData("/AUTHZ/NGINX", Style.Nginx)]
    [InlineData("/Authz/Traefik", Style.Traefik)]
    public async Task EndpointNameInAnyCase_SameEndpoint(string rawTarget, Style style)
    {
        var ctx = Described(style, "GET", "/api/v1/dags", token: Viewer);
        ctx.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        var (status, _, _) = await SendAsync(f.Example, ctx);
        Assert.Equal(200, status);
    }

    // ---- hostile paths through every proxy style -------------------------------------------------

    public static TheoryData<Style, string> IssueExamplesByStyle()
    {
        var data = new TheoryData<Style, string>();
        foreach (var style in Enum.GetValues<Style>())
        {
            foreach (var path in new[] { "/x/../admin/users", "/%2e%2e/admin/users", "/admin;x/users", "/admin%00/users", "/ADMIN/users", "/\\admin\\users" })
            {
                data.Add(style, path);
            }
        }
        return data;
    }

    /// <summary>Issue 9's spellings of <c>/admin/users</c> with a viewer's token (nginx with a raw <c>$request_uri</c>, Traefik, Envoy without <c>normalize_path</c>).</summary>
    [Theory]
    [MemberData(nameof(IssueExamplesByStyle))]
    public async Task IssueAdminSpelling_EveryProxyStyle_ViewerToken_NeverAllowed(Style style, string path)
    {
        var (status, reason, _) = await SendAsync(f.Example, Described(style, "GET", path, token: Viewer));
        Assert.Contains(reason, new[] { "bad_request", "policy_denied" });
        Assert.NotEqual(200, status);
    }

    /// <summary>Every combination of <see cref="HostilePathSpellings.AdminDisguises"/>, through every proxy style, in both path modes.</summary>
    [Fact]
    public async Task AdminDisguises_EveryProxyStyle_BothPathModes_ViewerToken_NeverAllowed()
    {
        var token = Viewer;
        var failures = new List<string>();
        var count = 0;
        foreach (var path in HostilePathSpellings.AdminDisguises())
        {
            foreach (var style in Enum.GetValues<Style>())
            {
                foreach (var (pipeline, mode) in new[] { (f.Example, "reject"), (f.ExampleNormalize, "normalize") })
                {
                    count++;
                    var (status, reason, _) = await SendAsync(pipeline, Described(style, "GET", path, token: token));
                    if (status == 200 || reason is not ("bad_request" or "policy_denied"))
                    {
                        failures.Add($"{style} {mode}: {path} → {status} {reason}");
                    }
                }
            }
        }
        Assert.True(count > 9000, $"only {count} requests");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count}:\n" + string.Join("\n", failures.Take(40)));
    }

    [Theory]
    [InlineData(Style.Nginx)]
    [InlineData(Style.Traefik)]
    [InlineData(Style.Envoy)]
    public async Task OrdinaryRequest_EveryProxyStyle_Allowed_RawPathKept_SegmentsNormalised(Style style)
    {
        var (status, reason, _) = await SendAsync(f.Example, Described(style, "GET", "/api/v1/dags/%65tl?limit=5", token: Viewer));
        Assert.Equal("allowed", reason);
        Assert.Equal(200, status);

        var (_, _, echoed) = await SendAsync(f.Echo, Described(style, "get", "/api/v1/dags/%65tl?limit=5", token: Viewer));
        Assert.Equal("""["api","v1","dags","etl"]""", echoed["x-echo-parsed-path"].ToString());
        Assert.Equal("\"/api/v1/dags/%65tl?limit=5\"", echoed["x-echo-raw-path"].ToString());
        Assert.Equal("GET", echoed["x-echo-method"].ToString());
        Assert.Equal("airflow.example.com", echoed["x-echo-host"].ToString());
    }

    /// <summary>
    /// Generated requests (the CheckRequest fuzzer's methods, paths and tokens) through every proxy
    /// style, each also carrying the other proxies' description headers claiming a public or
    /// readable path. Oracle: well-formed answers, no internal error, and no allow unless the
    /// endpoint's own description allows it — a genuine token, or the public <c>/healthz</c> — and
    /// never, for a token without an admin group, on a path any server could read as <c>/admin</c>.
    /// </summary>
    [Fact]
    public async Task Fuzz_EveryProxyStyle_ForeignDescriptions_NoAllowBeyondTheOwnDescription()
    {
        const int count = 6000;
        var fuzzer = new CheckRequestFuzzer(f, CheckPipelineFuzzTests.DefaultSeed, shard: 7);
        var genuine = fuzzer.GenuineSubjects;
        var groupsOf = fuzzer.GenuineGroups;
        var failures = new List<string>();
        var outcomes = new Dictionary<string, int>();
        var logFrom = f.Logs.Count;
        for (var i = 0; i < count; i++)
        {
            var c = fuzzer.Generate(i);
            var http = c.Request.Attributes?.Request?.Http;
            if (http is null)
            {
                continue;
            }
            var style = (Style)(i % 3);
            var ownPath = CheckPipelineFuzzTests.PathOf(c.Request);
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var (k, v) in http.Headers)
            {
                if (k.Length > 0 && !k.StartsWith(':') && !ProxyRequestDescriber.DescriptionHeaders.Contains(k) && !k.Equals("host", StringComparison.OrdinalIgnoreCase))
                {
                    headers[k] = v;
                }
            }
            var foreign = i % 2 == 0 ? "/healthz" : "/api/v1/dags";
            foreach (var (k, v) in ForeignDescriptions(style))
            {
                headers[k] = k.EndsWith("uri", StringComparison.OrdinalIgnoreCase) ? foreign : v;
            }
            var method = http.Method.Length > 0 ? http.Method : "GET";
            HttpContext ctx;
            try
            {
                ctx = Described(style, method, ownPath, headers);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException)
            {
                continue; // not a request a server would hand over
            }
            var (status, reason, answer) = await SendAsync(f.Example, ctx);
            outcomes[$"{style}:{reason}"] = outcomes.GetValueOrDefault($"{style}:{reason}") + 1;
            if (reason == "internal_error")
            {
                failures.Add($"#{i} {style}: internal_error");
            }
            if (status != 200)
            {
                continue;
            }
            var parsed = CheckRequestParser.Parse(Requests.Http(method: "GET", path: ownPath.Length > 0 ? ownPath : "/"), out _);
            var isPublic = parsed is not null && parsed.ParsedPath.Count == 1 && parsed.ParsedPath[0] is "healthz" or "health";
            var isGenuine = c.Kind == FuzzToken.Genuine && c.Token is not null && genuine.ContainsKey(c.Token);
            if (!isGenuine && !(isPublic && !answer.ContainsKey("x-authz-subject")))
            {
                failures.Add($"#{i} {style}: allowed {method} {ownPath} (token kind {c.Kind}) while another proxy's headers said {foreign}");
            }
            if (isGenuine && !groupsOf[c.Token!].Contains("airflow-admins") && HostilePathSpellings.UpstreamCouldReadAsAdmin(ownPath))
            {
                failures.Add($"#{i} {style}: a non-admin token allowed on a spelling of /admin: {ownPath}");
            }
        }
        var summary = "http-mode fuzz outcomes: " + string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key}={o.Value}"));
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
        Assert.Empty(f.Logs.LeaksSince(logFrom));
        Assert.Empty(f.Logs.ErrorsSince(logFrom));
        Assert.True(failures.Count == 0, $"{failures.Count} violations:\n" + string.Join("\n", failures.Take(25)) + "\n" + summary);
        Assert.Contains(outcomes.Keys, k => k.EndsWith(":allowed", StringComparison.Ordinal));
    }

    // ---- who may ask, and whose X-Forwarded-For counts -------------------------------------------

    [Theory]
    [InlineData(Style.Nginx)]
    [InlineData(Style.Traefik)]
    [InlineData(Style.Envoy)]
    public async Task XForwardedFor_NoTrustedProxiesConfigured_SourceIsTheTcpPeer(Style style)
    {
        var ctx = Described(style, "GET", "/api/v1/dags", new Dictionary<string, string> { ["X-Forwarded-For"] = "203.0.113.9", ["X-Real-IP"] = "203.0.113.10" }, Viewer);
        var (status, _, echoed) = await SendAsync(f.Echo, ctx);
        Assert.Equal(200, status);
        Assert.Equal("192.0.2.10", echoed["x-echo-source"].ToString());
    }

    [Theory]
    [InlineData("198.51.100.7, 203.0.113.9, 10.1.2.3", "203.0.113.9")]
    [InlineData("203.0.113.9", "203.0.113.9")]
    [InlineData("10.9.9.9, 10.1.2.3", "10.9.9.9")]
    [InlineData("not-an-ip, 10.1.2.3", "10.1.2.3")]
    [InlineData("", "10.0.0.5")]
    public async Task XForwardedFor_FromTrustedProxy_RightMostAddressThatIsNotAProxy(string xff, string expected)
    {
        var options = new AuthzOptions { Http = { TrustedProxies = ["10.0.0.0/8", "fd00::/8"] } };
        var ctx = Described(Style.Nginx, "GET", "/api/v1/dags", xff.Length > 0 ? new Dictionary<string, string> { ["X-Forwarded-For"] = xff } : null, Viewer);
        ctx.Connection.RemoteIpAddress = IPAddress.Parse("10.0.0.5");
        var (status, _, echoed) = await SendAsync(f.Echo, ctx, options);
        Assert.Equal(200, status);
        Assert.Equal(expected, echoed["x-echo-source"].ToString());
    }

    [Theory]
    [InlineData("192.0.2.10")]
    [InlineData("::ffff:192.0.2.10")]
    [InlineData("2001:db8::1")]
    public async Task UntrustedPeer_TrustedProxiesConfigured_DeniedBadRequest(string peer)
    {
        var options = new AuthzOptions { Http = { TrustedProxies = ["10.0.0.0/8", "127.0.0.1"] } };
        var ctx = Described(Style.Traefik, "GET", "/api/v1/dags", new Dictionary<string, string> { ["X-Forwarded-For"] = "10.0.0.1" }, Viewer);
        ctx.Connection.RemoteIpAddress = IPAddress.Parse(peer);
        var (status, reason, _) = await SendAsync(f.Example, ctx, options);
        Assert.Equal(400, status);
        Assert.Equal("bad_request", reason);

        ctx = Described(Style.Traefik, "GET", "/api/v1/dags", token: Viewer);
        ctx.Connection.RemoteIpAddress = IPAddress.Parse("::ffff:127.0.0.1");
        (status, _, _) = await SendAsync(f.Example, ctx, options);
        Assert.Equal(200, status);
    }
}
