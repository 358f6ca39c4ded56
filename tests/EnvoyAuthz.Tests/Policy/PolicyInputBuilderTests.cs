using EnvoyAuthz.Configuration;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Policy;

public class PolicyInputBuilderTests
{
    private static RegoObject Build(Envoy.Service.Auth.V3.CheckRequest check, AuthzOptions? options = null)
    {
        var builder = new PolicyInputBuilder(options ?? new AuthzOptions());
        Assert.True(builder.TryBuild(Requests.Parsed(check), null, null, out var input, out var problem), problem);
        return input;
    }

    private static RegoValue At(RegoValue v, params string[] path)
    {
        foreach (var p in path)
        {
            Assert.True(((RegoObject)v).TryGetValue(p, out v!), $"missing '{p}'");
        }
        return v;
    }

    [Fact]
    public void Build_OpaEnvoyShape_AttributesInProtojson()
    {
        var input = Build(Requests.Http("POST", "/api/v1/dags/etl/dagRuns?limit=5&limit=6", "airflow.example.com",
            new Dictionary<string, string> { ["content-type"] = "application/json", ["x-trace"] = "t1" },
            body: """{"conf":{"k":1},"note":"hi"}""", contextExtensions: new Dictionary<string, string> { ["airflow_conn_id"] = "http_default" }));

        Assert.Equal("POST", ((RegoString)At(input, "attributes", "request", "http", "method")).Value);
        Assert.Equal("airflow.example.com", ((RegoString)At(input, "attributes", "request", "http", "host")).Value);
        Assert.Equal("t1", ((RegoString)At(input, "attributes", "request", "http", "headers", "x-trace")).Value);
        // int64 as a string (protojson), uint32 as a number, lowerCamelCase names
        Assert.Equal(RegoValue.From("28"), At(input, "attributes", "request", "http", "size"));
        Assert.Equal(RegoValue.From(41234), At(input, "attributes", "source", "address", "socketAddress", "portValue"));
        Assert.Equal("http_default", ((RegoString)At(input, "attributes", "contextExtensions", "airflow_conn_id")).Value);
        Assert.Equal(RegoJson.Parse("""["api","v1","dags","etl","dagRuns"]"""), At(input, "parsed_path"));
        Assert.Equal(RegoJson.Parse("""{"limit":["5","6"]}"""), At(input, "parsed_query"));
        Assert.Equal(RegoJson.Parse("""{"conf":{"k":1},"note":"hi"}"""), At(input, "parsed_body"));
        Assert.Equal(RegoValue.False, At(input, "truncated_body"));
        Assert.Equal(RegoJson.Parse("""{"ext_authz":"v3","encoding":"protojson"}"""), At(input, "version"));
        Assert.False(input.TryGetValue("identity", out _));
        Assert.False(input.TryGetValue("airflow", out _));
    }

    [Fact]
    public void Build_FormBody_ParsedAsNameToValues()
    {
        var input = Build(Requests.Http("POST", "/login", headers: new Dictionary<string, string> { ["content-type"] = "application/x-www-form-urlencoded" },
            body: "user=ann&role=a&role=b"));
        Assert.Equal(RegoJson.Parse("""{"user":["ann"],"role":["a","b"]}"""), At(input, "parsed_body"));
    }

    [Fact]
    public void Build_TruncatedBody_NotParsed()
    {
        var input = Build(Requests.Http("POST", "/x", headers: new Dictionary<string, string> { ["content-type"] = "application/json", ["content-length"] = "9999" },
            body: """{"a":"""));
        Assert.Equal(RegoValue.True, At(input, "truncated_body"));
        Assert.False(input.TryGetValue("parsed_body", out _));
    }

    [Fact]
    public void Build_MalformedJsonBody_FailsWithProblem()
    {
        var builder = new PolicyInputBuilder(new AuthzOptions());
        var ok = builder.TryBuild(Requests.Parsed(Requests.Http("POST", "/x", headers: new Dictionary<string, string> { ["content-type"] = "application/json" }, body: "{nope")),
            null, null, out _, out var problem);
        Assert.False(ok);
        Assert.Equal("the JSON request body is malformed", problem);
    }

    [Fact]
    public void Build_SecretHeaders_NeverReachInput()
    {
        const string token = "eyJhbGciOiJSUzI1NiJ9.secret-payload.sig";
        var options = new AuthzOptions();
        options.Identity.TokenHeader = "x-custom-token";
        var input = Build(Requests.Http(headers: new Dictionary<string, string>
        {
            ["authorization"] = "Bearer " + token,
            ["cookie"] = "session=topsecret",
            ["x-custom-token"] = token,
            ["proxy-authorization"] = "Basic dXNlcjpwYXNz",
        }), options);
        var json = input.ToJson();
        Assert.DoesNotContain(token, json);
        Assert.DoesNotContain("topsecret", json);
        Assert.DoesNotContain("dXNlcjpwYXNz", json);
        Assert.Equal(RegoValue.From("[REDACTED]"), At(input, "attributes", "request", "http", "headers", "authorization"));
    }

    public static TheoryData<string, bool> SecretHeaderNames() => new()
    {
        { "Authorization", false }, { "AUTHORIZATION", false }, { "Cookie", false }, { "X-Api-Key", false },
        { "Proxy-Authorization", false }, { "X-Custom-Token", false }, { "X-Airflow-Password", false }, { "X-Auth-Token", false },
        { "Authorization", true }, { "COOKIE", true }, { "X-Api-Key", true }, { "Proxy-Authorization", true }, { "X-Custom-Token", true },
    };

    [Theory]
    [MemberData(nameof(SecretHeaderNames))]
    public void Build_SecretHeaderInAnyCase_HeadersAndHeaderMap_NeverReachInput(string name, bool headerMap)
    {
        const string secret = "PlantedHeaderSecret-0123456789";
        var options = new AuthzOptions();
        options.Identity.TokenHeader = "x-custom-token";
        var check = Requests.Http();
        var http = check.Attributes.Request.Http;
        if (headerMap)
        {
            // A direct gRPC client, or Envoy with encode_raw_headers: header_map, value and raw_value.
            http.Headers.Clear();
            http.HeaderMap = new Envoy.Config.Core.V3.HeaderMap();
            http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = ":path", Value = "/" });
            http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = name, RawValue = Google.Protobuf.ByteString.CopyFromUtf8(secret) });
            http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = name.ToUpperInvariant(), Value = secret + "-2" });
        }
        else
        {
            http.Headers[name] = secret;
        }
        var json = Build(check, options).ToJson();
        Assert.DoesNotContain(secret, json);
        Assert.DoesNotContain(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(secret)), json);
        Assert.Contains("[REDACTED]", json);
    }

    [Fact]
    public void Build_UserInfoInHostAndAuthority_NeverReachesInput()
    {
        var check = Requests.Http(host: "admin:PlantedHostPw@airflow.example.com", headers: new Dictionary<string, string>
        {
            ["referer"] = "https://u:PlantedRefererPw@airflow.example.com/home",
        });
        var input = Build(check);
        var json = input.ToJson();
        Assert.DoesNotContain("Planted", json);
        Assert.Equal("[REDACTED]@airflow.example.com", ((RegoString)At(input, "attributes", "request", "http", "host")).Value);
        Assert.Equal("[REDACTED]@airflow.example.com", ((RegoString)At(input, "attributes", "request", "http", "headers", ":authority")).Value);
    }

    [Fact]
    public void Build_TokensInQuery_NeverReachInput()
    {
        var input = Build(Requests.Http(path: "/app/dags?access_token=PlantedQueryTok&limit=5&password=PlantedQueryPw"));
        var json = input.ToJson();
        Assert.DoesNotContain("Planted", json);
        Assert.Equal(RegoJson.Parse("""{"access_token":["[REDACTED]"],"limit":["5"],"password":["[REDACTED]"]}"""), At(input, "parsed_query"));
        Assert.Equal(RegoJson.Parse("""["app","dags"]"""), At(input, "parsed_path"));
        Assert.Equal("/app/dags?access_token=%5BREDACTED%5D&limit=5&password=%5BREDACTED%5D",
            ((RegoString)At(input, "attributes", "request", "http", "path")).Value);
        Assert.Equal("/app/dags?access_token=%5BREDACTED%5D&limit=5&password=%5BREDACTED%5D",
            ((RegoString)At(input, "attributes", "request", "http", "headers", ":path")).Value);
    }

    public static TheoryData<string, string, string, bool> SecretBodies() => new()
    {
        // Airflow 3: POST /auth/token (JSON), as body and as raw_body bytes.
        { "/auth/token", "application/json", """{"username":"admin","password":"PlantedAirflow3Pw"}""", false },
        { "/auth/token", "application/json", """{"username":"admin","password":"PlantedAirflow3Pw"}""", true },
        // Airflow 2: the login form (FAB) and the connection form of the UI.
        { "/login/", "application/x-www-form-urlencoded", "username=admin&password=PlantedAirflow2Pw&csrf_token=PlantedCsrfToken", false },
        { "/connection/add", "application/x-www-form-urlencoded", "conn_id=c&password=PlantedConnPw&extra=%7B%22token%22%3A%22PlantedExtraTok%22%7D", true },
        // Any JSON body, not only Airflow's API: an OAuth client, an egress call.
        { "/oauth/token", "application/json", """{"grant_type":"client_credentials","client_secret":"PlantedClientSecret"}""", false },
        { "/v1/things", "application/json", """{"config":"{\"api_key\": \"PlantedNestedKey\"}","extra":"PlantedNotJsonExtra"}""", false },
        // A truncated JSON body cannot be parsed: replaced whole when it mentions a secret.
        { "/auth/token", "application/json", """{"username":"admin","password":"PlantedTruncated""", false },
    };

    [Theory]
    [MemberData(nameof(SecretBodies))]
    public void Build_SecretsInBodies_NeverReachParsedOrRawBody(string path, string contentType, string body, bool asBytes)
    {
        var check = Requests.Http("POST", path, headers: new Dictionary<string, string> { ["content-type"] = contentType }, body: body);
        if (asBytes)
        {
            check.Attributes.Request.Http.Body = "";
            check.Attributes.Request.Http.RawBody = Google.Protobuf.ByteString.CopyFromUtf8(body);
        }
        if (body.EndsWith("PlantedTruncated", StringComparison.Ordinal))
        {
            check.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true";
        }
        var input = Build(check);
        var json = input.ToJson();
        Assert.DoesNotContain("Planted", json);
        var bytesBase64 = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(body));
        Assert.DoesNotContain(bytesBase64[..Math.Min(bytesBase64.Length, 40)], json);
        Assert.Contains("[REDACTED]", json);
    }

    [Fact]
    public void Build_BodyWithoutSecrets_RawBodyByteForByte()
    {
        const string body = """{ "conf" : {"k":1},"note":"hi" }""";
        var input = Build(Requests.Http("POST", "/api/v1/dags/etl/dagRuns", headers: new Dictionary<string, string> { ["content-type"] = "application/json" }, body: body));
        Assert.Equal(body, ((RegoString)At(input, "attributes", "request", "http", "body")).Value);
    }

    [Theory]
    [InlineData(33, false)]
    [InlineData(33, true)]
    [InlineData(200, false)]
    [InlineData(5_000, true)] // built in process, never parsed: only the converter's bound stops it
    public void Build_MetadataNestedBeyond32Levels_FailsWithProblem_NoUnboundedRecursion(int levels, bool lists)
    {
        var builder = new PolicyInputBuilder(new AuthzOptions());
        var ok = builder.TryBuild(Requests.Parsed(Requests.NestedMetadata(levels, lists)), null, null, out _, out var problem);
        Assert.False(ok);
        Assert.Equal("metadata nests deeper than 32 levels", problem);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Build_Metadata32LevelsDeep_Converted(bool lists)
    {
        var input = Build(Requests.NestedMetadata(32, lists));
        var v = At(input, "attributes", "metadataContext", "filterMetadata", "f", "a");
        for (var i = 0; i < 31; i++)
        {
            v = lists ? ((RegoArray)v).Elements[0] : At(v, "a");
        }
        Assert.Equal(RegoValue.From("leaf"), v);
    }
}
