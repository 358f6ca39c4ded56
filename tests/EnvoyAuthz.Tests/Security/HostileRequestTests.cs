using System.Text;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// Hostile request shapes — paths, headers, bodies — through the parser, the policy input builder
/// and the whole pipeline. Each is parsed as OPA-Envoy parses it (so its policies port unchanged)
/// or denied with <c>bad_request</c>; never an internal error, never an allow the policy did not grant.
/// </summary>
[Collection("Security")]
public sealed class HostileRequestTests(SecurityFixture f)
{
    private async Task<(string Reason, CheckResponse Response)> CheckAsync(CheckPipeline pipeline, CheckRequest request)
    {
        var errorsFrom = f.Logs.Count;
        var response = await f.CheckAsync(pipeline, request);
        var reason = ResponseShape.Reason(response);
        var errors = f.Logs.ErrorsSince(errorsFrom);
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        Assert.Empty(f.Logs.LeaksSince(errorsFrom));
        return (reason, response);
    }

    // ---- parsed_path ----------------------------------------------------------------------------

    /// <summary>
    /// Every spelling class of <see cref="EnvoyAuthz.Tests.Pipeline.PathNormalizerTests.Table"/>
    /// through the whole pipeline in the default (<c>reject</c>) mode: a path in normal form (or one
    /// only slash-merging changes) reaches the policy as its normalised segments, with the raw path
    /// unchanged in <c>attributes.request.http.path</c>; an ambiguous one is a 400 <c>bad_request</c>.
    /// </summary>
    [Theory]
    [MemberData(nameof(EnvoyAuthz.Tests.Pipeline.PathNormalizerTests.Table), MemberType = typeof(EnvoyAuthz.Tests.Pipeline.PathNormalizerTests))]
    public async Task HostilePath_ReachesPolicyInputNormalised_RawPathKept_OrDeniedBadRequest(string path, string reject, string normalize)
    {
        _ = normalize;
        var request = Requests.Http(path: path + "?q=1", headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("alice") });

        var (reason, response) = await CheckAsync(f.Echo, request);

        if (!reject.StartsWith('['))
        {
            Assert.Equal("bad_request", reason);
            Assert.Equal(400, (int)response.DeniedResponse.Status.Code);
            return;
        }
        Assert.Equal("allowed", reason);
        var headers = ResponseShape.OkHeaders(response);
        Assert.Equal(RegoJson.Parse(reject), RegoJson.Parse(headers["x-echo-parsed-path"]));
        if (!path.Any(char.IsSurrogate))
        {
            Assert.Equal(path + "?q=1", JsonSerializer.Deserialize<string>(headers["x-echo-raw-path"]));
        }
    }

    public static TheoryData<string, string> QueryAndFragmentPaths => new()
    {
        { "/healthz?x=%zz", """["healthz"]""" },
        { "/healthz?x=/../admin", """["healthz"]""" },
        { "/healthz#/admin", """["healthz"]""" },
        { "/healthz#/../admin", """["healthz"]""" },
        { "/api/v1/dags?x=%00", """["api","v1","dags"]""" },
    };

    [Theory]
    [MemberData(nameof(QueryAndFragmentPaths))]
    public void ParsedPath_QueryAndFragment_NotPartOfThePath(string path, string expected)
    {
        var request = CheckRequestParser.Parse(Requests.Http(path: path), out var problem);
        Assert.Null(problem);
        Assert.Equal(JsonSerializer.Deserialize<string[]>(expected), request!.ParsedPath);
    }

    /// <summary>The spellings of <c>/admin/users</c> from issue 9 (685 allows in one fuzz run before the fix).</summary>
    public static TheoryData<string> IssueAdminSpellings =>
    [
        "/x/../admin/users", "/%2e%2e/admin/users", "/admin;x/users", "/admin%00/users", "/ADMIN/users", "\\admin\\users",
    ];

    /// <summary>
    /// A viewer's token under the example policy, in both path modes: never allowed. In <c>reject</c>
    /// mode an ambiguous spelling is a 400 before the policy runs; in <c>normalize</c> mode it is
    /// decided as <c>/admin/users</c> (403). <c>/ADMIN/users</c> is in normal form: the policy
    /// denies it because it allows known paths only.
    /// </summary>
    [Theory]
    [MemberData(nameof(IssueAdminSpellings))]
    public async Task IssueAdminSpelling_ViewerToken_ExamplePolicy_BothPathModes_NeverAllowed(string path)
    {
        foreach (var (pipeline, mode) in new[] { (f.Example, "reject"), (f.ExampleNormalize, "normalize") })
        {
            var request = Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("vic", ["viewers"]) });
            var (reason, _) = await CheckAsync(pipeline, request);
            var expected = path == "/ADMIN/users" ? "policy_denied"
                : path.Contains("%00", StringComparison.Ordinal) || mode == "reject" ? "bad_request"
                : "policy_denied";
            Assert.True(expected == reason, $"{mode}: {path} was {reason}, expected {expected}");
        }
    }

    /// <summary>
    /// Every combination of <see cref="HostilePathSpellings.AdminDisguises"/> (over 1500 spellings of
    /// <c>/admin/users</c>) with a viewer's token under the example policy, in both path modes:
    /// none is allowed, and each is denied <c>bad_request</c> or <c>policy_denied</c>.
    /// </summary>
    [Fact]
    public async Task AdminDisguises_ViewerToken_ExamplePolicy_BothPathModes_NeverAllowed()
    {
        var token = f.Genuine("vic", ["viewers"]);
        var failures = new List<string>();
        var count = 0;
        foreach (var path in HostilePathSpellings.AdminDisguises())
        {
            foreach (var (pipeline, mode) in new[] { (f.Example, "reject"), (f.ExampleNormalize, "normalize") })
            {
                var (reason, _) = await CheckAsync(pipeline, Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));
                count++;
                if (reason is not ("bad_request" or "policy_denied"))
                {
                    failures.Add($"{mode}: {path} → {reason}");
                }
            }
        }
        Assert.True(count > 3000, $"only {count} checks");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count}:\n" + string.Join("\n", failures.Take(40)));
    }

    /// <summary>
    /// The other side of the same table: in <c>normalize</c> mode a spelling whose normal form is
    /// exactly <c>/admin/users</c> is decided as that path (an admin is allowed by the admin rule),
    /// so normalisation is faithful and not merely a deny.
    /// </summary>
    [Fact]
    public async Task AdminDisguises_AdminToken_NormalizeMode_DecidedAsAdminUsers()
    {
        var token = f.Genuine("root", ["airflow-admins"]);
        var failures = new List<string>();
        var count = 0;
        foreach (var path in HostilePathSpellings.AdminDisguises().Where(HostilePathSpellings.IsExactAdmin))
        {
            count++;
            var (reason, response) = await CheckAsync(f.ExampleNormalize, Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));
            if (reason != "allowed" || ResponseShape.OkHeaders(response)["x-authz-policy"] != "admin")
            {
                failures.Add($"{path} → {reason}");
            }
        }
        Assert.True(count > 300, $"only {count} spellings normalise to /admin/users");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(40)));
    }

    public static TheoryData<string> InvalidPercentEncodings => ["/%zz", "/a%", "/a%2", "/%%", "/%G0admin", "/admin%2", "/%u0061dmin", "/%%32%65"];

    [Theory]
    [MemberData(nameof(InvalidPercentEncodings))]
    public async Task InvalidPercentEncoding_DeniedBadRequest(string path)
    {
        var request = Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("alice") });
        var (reason, response) = await CheckAsync(f.Example, request);
        Assert.Equal("bad_request", reason);
        Assert.Equal(400, (int)response.DeniedResponse.Status.Code);
    }

    public static TheoryData<string> DisguisedAdminPaths =>
    [
        "/admin", "//admin", "///admin/users", "/%61dmin", "/admin/", "/%2Fadmin", "/%2F%2Fadmin/users", "/admin?x=/healthz",
        "/admin#/healthz", "/%61%64%6d%69%6e/x",
    ];

    [Theory]
    [MemberData(nameof(DisguisedAdminPaths))]
    public async Task DisguisedAdminPath_ReaderToken_ExamplePolicy_NeverAllowed(string path)
    {
        var request = Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("reader", ["viewers"]) });
        var (reason, _) = await CheckAsync(f.Example, request);
        Assert.NotEqual("allowed", reason);
    }

    public static TheoryData<string> NotQuiteHealthz =>
    [
        "/healthz/", "/healthz/../admin", "/healthz%2F..%2Fadmin", "/healthz;/admin", "/healthz%00", "/healthz%20", "/HEALTHZ",
        "/healthz/admin", "/admin/healthz", "/healthz%2Fadmin", "/%2e/healthz", "/healthz\u0000",
    ];

    [Theory]
    [MemberData(nameof(NotQuiteHealthz))]
    public async Task NotQuiteThePublicPath_NoToken_ExamplePolicy_Denied(string path)
    {
        var (reason, _) = await CheckAsync(f.Example, Requests.Http(path: path));
        Assert.Contains(reason, new[] { "missing_token", "policy_denied", "bad_request" });
    }

    public static TheoryData<string> PublicPathSpellings => ["/healthz", "//healthz", "/health", "/%68ealthz", "/healthz?probe=1", "/healthz#x"];

    [Theory]
    [MemberData(nameof(PublicPathSpellings))]
    public async Task PublicPathSpellings_NoToken_ExamplePolicy_AllowedWithoutIdentity(string path)
    {
        var (reason, response) = await CheckAsync(f.Example, Requests.Http(path: path));
        Assert.Equal("allowed", reason);
        Assert.DoesNotContain(response.OkResponse.Headers, h => h.Header.Key == "x-authz-subject");
        Assert.Contains("x-authz-subject", response.OkResponse.HeadersToRemove);
    }

    public static TheoryData<string> OddPathForms => ["<1MiB>", "<100k-segments>", "<lone-surrogate>", "<surrogate-pair-then-escape>", "<two-high-surrogates-then-escape>", "<raw-nul>", "<crlf>"];

    [Theory]
    [MemberData(nameof(OddPathForms))]
    public async Task OddPathForms_ParsedOrDeniedBadRequest_NeverInternalError(string form)
    {
        var path = form switch
        {
            "<1MiB>" => "/" + new string('a', 1024 * 1024),
            "<100k-segments>" => string.Concat(Enumerable.Repeat("/%2e", 100_000)),
            "<lone-surrogate>" => "/a\ud800b",
            "<surrogate-pair-then-escape>" => "/\ud83d\udd12%41",
            "<two-high-surrogates-then-escape>" => "/%41\ud800\ud800",
            "<raw-nul>" => "/admin\u0000/x",
            _ => "/a\r\nx-injected: 1",
        };
        var request = Requests.Http(path: path, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("alice") });
        var (reason, _) = await CheckAsync(f.Builtin, request);
        Assert.Contains(reason, new[] { "allowed", "bad_request" });
    }

    // ---- metadata_context and context_extensions ----------------------------------------------

    public static TheoryData<string> HostileMetadata => ["NaN", "Infinity", "-Infinity", "max-double", "nested-90", "hostile-keys"];

    [Theory]
    [MemberData(nameof(HostileMetadata))]
    public async Task MetadataContextAndExtensions_Hostile_ParsedNeverInternalError(string variant)
    {
        var request = Requests.Http(path: "/api/v1/dags", headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + f.Genuine("alice") },
            contextExtensions: new Dictionary<string, string> { ["conn_id"] = "\u0000../../x", [""] = "\ud800", ["route\r\n"] = new string('x', 100_000) });
        var fields = new Google.Protobuf.WellKnownTypes.Struct();
        switch (variant)
        {
            case "NaN":
                fields.Fields["n"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(double.NaN);
                break;
            case "Infinity":
                fields.Fields["n"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(double.PositiveInfinity);
                break;
            case "-Infinity":
                fields.Fields["n"] = Google.Protobuf.WellKnownTypes.Value.ForList(Google.Protobuf.WellKnownTypes.Value.ForNumber(double.NegativeInfinity));
                break;
            case "max-double":
                fields.Fields["n"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(double.MaxValue);
                fields.Fields["e"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(double.Epsilon);
                break;
            case "nested-90":
                var inner = Google.Protobuf.WellKnownTypes.Value.ForString("deep");
                for (var i = 0; i < 90; i++)
                {
                    inner = Google.Protobuf.WellKnownTypes.Value.ForList(inner);
                }
                fields.Fields["deep"] = inner;
                break;
            default:
                fields.Fields[""] = Google.Protobuf.WellKnownTypes.Value.ForNull();
                fields.Fields["\u0000"] = Google.Protobuf.WellKnownTypes.Value.ForString("\ud800");
                fields.Fields["__proto__"] = Google.Protobuf.WellKnownTypes.Value.ForBool(true);
                break;
        }
        request.Attributes.MetadataContext = new Envoy.Config.Core.V3.Metadata();
        request.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"] = fields;

        var (reason, _) = await CheckAsync(f.Example, request);

        // Metadata nested beyond 32 levels is a bad_request, as it is when it comes over gRPC (where
        // protobuf's recursion limit already refuses it); everything else here is parsed and allowed.
        Assert.Equal(variant == "nested-90" ? "bad_request" : "allowed", reason);
    }

    // ---- headers -----------------------------------------------------------------------------

    public static TheoryData<string> HostileHeaderSets => ["1MiB-value", "10k-headers", "crlf-values", "nul-values", "unicode-names", "invalid-utf8-raw", "duplicate-case"];

    [Theory]
    [MemberData(nameof(HostileHeaderSets))]
    public async Task HostileHeaders_WithValidToken_AllowedAndWithout_Denied(string variant)
    {
        foreach (var withToken in new[] { true, false })
        {
            var request = Requests.Http(path: "/api/v1/dags");
            var http = request.Attributes.Request.Http;
            switch (variant)
            {
                case "1MiB-value":
                    http.Headers["x-big"] = new string('v', 1024 * 1024);
                    break;
                case "10k-headers":
                    for (var i = 0; i < 10_000; i++)
                    {
                        http.Headers["x-h-" + i] = "v" + i;
                    }
                    break;
                case "crlf-values":
                    http.Headers["x-crlf"] = "a\r\nx-authz-subject: admin";
                    http.Headers["x-lf"] = "\n\n";
                    break;
                case "nul-values":
                    http.Headers["x-nul"] = "a\u0000b";
                    break;
                case "unicode-names":
                    http.Headers["x-ünï"] = "日本";
                    http.Headers["X-MIXED-Case"] = "v";
                    break;
                case "invalid-utf8-raw":
                    http.HeaderMap = new Envoy.Config.Core.V3.HeaderMap();
                    http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = "x-raw", RawValue = ByteString.CopyFrom(0xff, 0xfe, 0xc0, 0xaf, 0x00) });
                    http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = "x-raw", RawValue = ByteString.CopyFrom(0xed, 0xa0, 0x80) });
                    break;
                default:
                    http.Headers["Authorization"] = "Bearer forged.forged.forged";
                    break;
            }
            if (withToken)
            {
                http.Headers["authorization"] = "Bearer " + f.Genuine("alice");
            }
            var (reason, _) = await CheckAsync(f.Example, request);
            if (variant == "duplicate-case")
            {
                // Two spellings of one header cannot come from Envoy (names are lowercase and unique); either outcome is sound.
                Assert.Contains(reason, withToken ? new[] { "allowed", "invalid_token" } : new[] { "invalid_token" });
                continue;
            }
            Assert.Equal(withToken ? "allowed" : "missing_token", reason);
        }
    }

    // ---- bodies ------------------------------------------------------------------------------

    private CheckRequest WithBody(string contentType, byte[]? raw = null, string? body = null, string method = "POST", bool token = true)
    {
        var headers = new Dictionary<string, string>();
        if (contentType.Length > 0)
        {
            headers["content-type"] = contentType;
        }
        if (token)
        {
            headers["authorization"] = "Bearer " + f.Genuine("writer", ["writers"]);
        }
        var request = Requests.Http(method: method, path: "/api/v1/dags/etl/dagRuns", headers: headers, body: body);
        if (raw is not null)
        {
            request.Attributes.Request.Http.RawBody = ByteString.CopyFrom(raw);
            request.Attributes.Request.Http.Size = raw.Length;
        }
        return request;
    }

    public static TheoryData<string> MalformedJsonBodies =>
    [
        "{", "{\"a\":}", "[1,2", "nul", "{\"a\":1}garbage", "{'a':1}", "/*c*/{}", "[1,]", "{\"a\":1,}", "\"unterminated", "{\"a\" 1}",
        "NaN", "{\"a\":01}", "{\"a\":\"\\x41\"}", "{\"a\":\"\\ud800\"}x", "\u0000", "{\"a\":1e99999}x", "}{",
    ];

    [Theory]
    [MemberData(nameof(MalformedJsonBodies))]
    public async Task MalformedJsonBody_ContentTypeJson_DeniedBadRequest(string body)
    {
        foreach (var pipeline in new[] { f.Builtin, f.Example })
        {
            var (reason, _) = await CheckAsync(pipeline, WithBody("application/json; charset=utf-8", body: body));
            Assert.Equal("bad_request", reason);
        }
    }

    public static TheoryData<string> ExtremeJsonValues =>
    [
        "{\"a\":1e99999}", "{\"a\":-1e99999}", "{\"a\":1e-99999}", "[18446744073709551616000000000000]", "[-0]", "[1.0e+400, 4.9e-325]", "{\"lone\":\"\\ud800\"}", "{\"pair\":\"\\ud83d\\udd12\"}",
        "<5000-digits>",
    ];

    [Theory]
    [MemberData(nameof(ExtremeJsonValues))]
    public async Task ExtremeJsonValuesInBody_ParsedOrDeniedBadRequest_NeverInternalError(string body)
    {
        if (body == "<5000-digits>")
        {
            body = "[1" + new string('0', 5000) + "]";
        }
        var (reason, _) = await CheckAsync(f.Example, WithBody("application/json", body: body));
        Assert.Contains(reason, new[] { "allowed", "bad_request" });
    }

    public static TheoryData<string> NestedBodies => ["array-10000", "object-10000", "mixed-10000", "array-1001", "array-200000"];

    [Theory]
    [MemberData(nameof(NestedBodies))]
    public async Task DeeplyNestedJsonBody_DeniedBadRequest_NeverStackOverflow(string variant)
    {
        var depth = int.Parse(variant[(variant.IndexOf('-', StringComparison.Ordinal) + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var body = variant.StartsWith("array", StringComparison.Ordinal) ? new string('[', depth) + new string(']', depth)
            : variant.StartsWith("object", StringComparison.Ordinal) ? string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth)
            : string.Concat(Enumerable.Repeat("[{\"a\":", depth / 2)) + "1" + string.Concat(Enumerable.Repeat("}]", depth / 2));
        var (reason, _) = await CheckAsync(f.Builtin, WithBody("application/json", raw: Encoding.UTF8.GetBytes(body)));
        // Bodies above the parse limit (64 KiB by default) are not parsed at all; those below are too deep.
        Assert.Contains(reason, body.Length > new AuthzOptions().Policy.MaxParsedBodyBytes ? new[] { "allowed" } : new[] { "bad_request" });
    }

    [Fact]
    public async Task NestedJsonBody_WithinDepthLimit_ParsedAndAllowed()
    {
        var body = new string('[', 500) + new string(']', 500);
        var (reason, _) = await CheckAsync(f.Builtin, WithBody("application/json", raw: Encoding.UTF8.GetBytes(body)));
        Assert.Equal("allowed", reason);
    }

    public static TheoryData<string> InvalidUtf8Bodies => ["json-string", "json-raw-ff", "json-overlong-slash", "json-surrogate-bytes", "form", "text", "none", "+json"];

    [Theory]
    [MemberData(nameof(InvalidUtf8Bodies))]
    public async Task InvalidUtf8RawBody_JsonDeniedBadRequest_OthersParsedLeniently(string variant)
    {
        byte[] Bytes(string prefix, byte[] bad, string suffix) => [.. Encoding.ASCII.GetBytes(prefix), .. bad, .. Encoding.ASCII.GetBytes(suffix)];
        var (contentType, raw) = variant switch
        {
            "json-string" => ("application/json", Bytes("{\"a\":\"", [0xff, 0xfe], "\"}")),
            "json-raw-ff" => ("application/json", new byte[] { 0xff, 0xfe, 0xfd }),
            "json-overlong-slash" => ("application/json", Bytes("{\"path\":\"", [0xc0, 0xaf], "admin\"}")),
            "json-surrogate-bytes" => ("application/json", Bytes("{\"a\":\"", [0xed, 0xa0, 0x80], "\"}")),
            "+json" => ("application/vnd.api+json", Bytes("{\"a\":\"", [0xc3, 0x28], "\"}")),
            "form" => ("application/x-www-form-urlencoded", Bytes("a=", [0xff, 0xc0, 0xaf], "&b=%ff%c0")),
            "text" => ("text/plain", new byte[] { 0xff, 0x00, 0xc0, 0xaf }),
            _ => ("", new byte[] { 0xff, 0x00, 0xc0, 0xaf }),
        };
        var (reason, _) = await CheckAsync(f.Example, WithBody(contentType, raw: raw));
        Assert.Equal(variant.Contains("json", StringComparison.Ordinal) ? "bad_request" : "allowed", reason);
    }

    public static TheoryData<string> LargeBodies => ["json-over-limit", "json-10MiB", "truncated-malformed", "content-length-larger", "binary-1MiB"];

    [Theory]
    [MemberData(nameof(LargeBodies))]
    public async Task OversizedOrTruncatedBody_NotParsed_Allowed(string variant)
    {
        var big = "{\"a\":\"" + new string('x', 70_000) + "\"}";
        var request = variant switch
        {
            "json-over-limit" => WithBody("application/json", body: big),
            "json-10MiB" => WithBody("application/json", raw: Encoding.UTF8.GetBytes("{\"a\":\"" + new string('x', 10 * 1024 * 1024) + "\"")),
            "truncated-malformed" => WithBody("application/json", body: "{\"a\":"),
            "content-length-larger" => WithBody("application/json", body: "{\"a\":"),
            _ => WithBody("application/octet-stream", raw: Enumerable.Range(0, 1024 * 1024).Select(i => (byte)(i * 31)).ToArray()),
        };
        if (variant == "truncated-malformed")
        {
            request.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true";
        }
        if (variant == "content-length-larger")
        {
            request.Attributes.Request.Http.Headers["content-length"] = "100000";
        }
        var (reason, _) = await CheckAsync(f.Example, request);
        Assert.Equal("allowed", reason);
    }

    [Fact]
    public async Task MalformedJsonBody_WithoutToken_DeniedNotAllowed()
    {
        var (reason, _) = await CheckAsync(f.Example, WithBody("application/json", body: "{", token: false));
        Assert.Contains(reason, new[] { "bad_request", "missing_token" });
    }

    // ---- client-triggerable faults must not depend on the failure mode -------------------------

    public static TheoryData<string> ClientTriggerableInputs =>
    [
        "json-invalid-utf8", "json-lone-surrogate-escape", "metadata-nan", "path-two-high-surrogates", "token-exp-at-max-date",
        "malformed-json", "bad-percent-encoding", "alg-none",
    ];

    /// <summary>
    /// With <c>Server:FailureMode=error</c> an internal fault is answered with a gRPC error so that
    /// Envoy's <c>failure_mode_allow</c> decides — which, when it is true, lets the request through.
    /// So nothing a client can put in a request may reach that path: hostile input is a deny
    /// (<c>bad_request</c>, <c>invalid_token</c>, <c>missing_token</c>), never a gRPC error.
    /// </summary>
    [Theory]
    [MemberData(nameof(ClientTriggerableInputs))]
    public async Task HostileInput_FailureModeError_AnsweredAsDeny_NeverAGrpcErrorEnvoyCouldFailOpenOn(string variant)
    {
        var request = variant switch
        {
            "json-invalid-utf8" => WithBody("application/json", raw: [.. "{\"a\":\""u8.ToArray(), 0xff, 0xc0, 0xaf, .. "\"}"u8.ToArray()], token: false),
            "json-lone-surrogate-escape" => WithBody("application/json", body: "{\"a\":\"\\ud800\"}", token: false),
            "malformed-json" => WithBody("application/json", body: "{", token: false),
            "path-two-high-surrogates" => Requests.Http(path: "/%41\ud800\ud800"),
            "bad-percent-encoding" => Requests.Http(path: "/%zz"),
            "token-exp-at-max-date" => SecurityFixture.WithAuthorization("Bearer " + RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid),
                $$"""{"iss":"{{f.Idp.Issuer}}","aud":"{{SecurityFixture.Audience}}","sub":"alice","exp":253402300799}""")),
            "alg-none" => SecurityFixture.WithAuthorization("Bearer " + RawJwt.Unsigned("""{"alg":"none"}""", f.Payload("admin"))),
            _ => Requests.Http(path: "/api/v1/dags"),
        };
        if (variant == "metadata-nan")
        {
            var fields = new Google.Protobuf.WellKnownTypes.Struct();
            fields.Fields["n"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(double.NaN);
            request.Attributes.MetadataContext = new Envoy.Config.Core.V3.Metadata();
            request.Attributes.MetadataContext.FilterMetadata["lua"] = fields;
        }

        CheckResponse response;
        try
        {
            response = await f.CheckAsync(f.ErrorMode, request);
        }
        catch (global::Grpc.Core.RpcException ex)
        {
            Assert.Fail($"a client-controlled input produced a gRPC {ex.StatusCode} error; with failure_mode_allow Envoy would let it through");
            return;
        }
        Assert.Contains(ResponseShape.Reason(response), new[] { "bad_request", "invalid_token", "missing_token", "policy_denied", "allowed" });
        if (variant != "token-exp-at-max-date")
        {
            Assert.NotEqual("allowed", ResponseShape.Reason(response));
        }
    }

    [Fact]
    public void PolicyInput_NeverCarriesCredentialValues()
    {
        var token = f.Genuine("alice");
        var request = Requests.Parsed(Requests.Http(headers: new Dictionary<string, string>
        {
            ["authorization"] = "Bearer " + token,
            ["cookie"] = "access_token=" + token + "; session=cookie-secret-0123456789",
            ["proxy-authorization"] = "Basic cHJveHk6cHJveHktc2VjcmV0LTAxMjM0NTY3ODk=",
            ["x-api-key"] = "api-key-secret-0123456789",
            ["x-airflow-password"] = "airflow-password-0123456789",
        }));
        var builder = new PolicyInputBuilder(new AuthzOptions());
        Assert.True(builder.TryBuild(request, null, null, out var input, out _));
        var json = input.ToJson();
        foreach (var secret in new[] { token, "cookie-secret-0123456789", "cHJveHk6cHJveHktc2VjcmV0LTAxMjM0NTY3ODk=", "api-key-secret-0123456789", "airflow-password-0123456789" })
        {
            Assert.DoesNotContain(secret, json, StringComparison.Ordinal);
        }
    }
}
