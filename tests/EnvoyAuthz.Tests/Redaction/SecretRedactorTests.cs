using EnvoyAuthz.Airflow;
using EnvoyAuthz.Redaction;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Tests.Redaction;

/// <summary>The one redaction of request secrets: each rule on its own, hostile spellings included.</summary>
public sealed class SecretRedactorTests
{
    private static readonly SecretRedactor Redactor = new(SensitiveKeys.Default, "x-custom-token");

    [Theory]
    [InlineData("authorization")]
    [InlineData("Authorization")]
    [InlineData("AUTHORIZATION")]
    [InlineData("Proxy-Authorization")]
    [InlineData("Cookie")]
    [InlineData("COOKIE")]
    [InlineData("X-Api-Key")]
    [InlineData("X-AIRFLOW-PASSWORD")]
    [InlineData("X-Custom-Token")]
    [InlineData("x-auth-token")]
    [InlineData("X-Vault-Token")]
    [InlineData("X-Amz-Security-Token")]
    [InlineData("Private-Token")]
    [InlineData("x-client-secret")]
    public void Header_SecretNameInAnyCase_IsMasked(string name)
    {
        Assert.True(Redactor.IsSecretHeader(name));
        Assert.Equal("[REDACTED]", Redactor.Header(name, "PlantedHeaderSecret"));
    }

    [Theory]
    [InlineData("content-type", "application/json")]
    [InlineData(":method", "POST")]
    [InlineData("x-airflow-conn-id", "http_default")]
    [InlineData("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]
    [InlineData("referer", "https://airflow.example.com/home")]
    [InlineData(":path", "/api/v2/dags?limit=5")]
    [InlineData(":authority", "airflow.example.com:8443")]
    public void Header_Ordinary_IsUnchanged(string name, string value) => Assert.Null(Redactor.Header(name, value));

    [Theory]
    [InlineData(":authority", "user:PlantedPw@airflow.example.com", "[REDACTED]@airflow.example.com")]
    [InlineData("Host", "PlantedUser@airflow.example.com:8080", "[REDACTED]@airflow.example.com:8080")]
    [InlineData("referer", "https://u:PlantedPw@airflow.example.com/home", "https://[REDACTED]@airflow.example.com/home")]
    [InlineData(":path", "/api/v2/dags?access_token=PlantedTok&limit=5", "/api/v2/dags?access_token=%5BREDACTED%5D&limit=5")]
    [InlineData("x-envoy-original-path", "/x?token=PlantedTok", "/x?token=%5BREDACTED%5D")]
    [InlineData("X-Original-URI", "/x?password=PlantedPw", "/x?password=%5BREDACTED%5D")]
    [InlineData("X-Forwarded-Uri", "/x?api_key=PlantedKey#f", "/x?api_key=%5BREDACTED%5D#f")]
    [InlineData("Referer", "https://airflow.example.com/login?next=%2F&token=PlantedTok", "https://airflow.example.com/login?next=%2F&token=%5BREDACTED%5D")]
    [InlineData("X-Forwarded-Host", "u:PlantedPw@airflow.example.com", "[REDACTED]@airflow.example.com")]
    [InlineData("x-note", "see https://u:PlantedPw@h/x and more", "see https://[REDACTED]@h/x and more")]
    public void Header_WithEmbeddedSecret_IsRedactedInside(string name, string value, string expected) =>
        Assert.Equal(expected, Redactor.Header(name, value));

    [Theory]
    [InlineData("", "")]
    [InlineData("limit=5&offset=0", "limit=5&offset=0")]
    [InlineData("access_token=PlantedTok", "access_token=%5BREDACTED%5D")]
    [InlineData("a=1&TOKEN=PlantedTok&b=2", "a=1&TOKEN=%5BREDACTED%5D&b=2")]
    [InlineData("%74oken=PlantedTok", "%74oken=%5BREDACTED%5D")]
    [InlineData("api+key=x&api_key=PlantedKey", "api+key=%5BREDACTED%5D&api_key=%5BREDACTED%5D")] // "api key" normalises to the fragment apikey
    [InlineData("page+size=x&api_key=PlantedKey", "page+size=x&api_key=%5BREDACTED%5D")]
    [InlineData("password=PlantedPw;x=1", "password=%5BREDACTED%5D")]
    [InlineData("token", "token")]
    [InlineData("&&password=PlantedPw&", "&&password=%5BREDACTED%5D&")]
    [InlineData("next=https%3A%2F%2Fu%3APlantedPw%40h%2Fx", "next=https%3A%2F%2F%5BREDACTED%5D%40h%2Fx")]
    [InlineData("conf=%7B%22password%22%3A%22PlantedPw%22%7D", "conf=%7B%22password%22%3A%22%5BREDACTED%5D%22%7D")]
    [InlineData("next=https://u:PlantedPw@h/%zz", "next=https://[REDACTED]@h/%zz")]
    public void Query_SensitiveValues_Masked_EverythingElseByteForByte(string query, string expected) =>
        Assert.Equal(expected, Redactor.Query(query));

    [Theory]
    [InlineData("/api/v1/dags", "/api/v1/dags")]
    [InlineData("/x?token=PlantedTok#frag", "/x?token=%5BREDACTED%5D#frag")]
    [InlineData("http://u:PlantedPw@h/x?y=1", "http://[REDACTED]@h/x?y=1")]
    [InlineData("/a;version=2/b", "/a;version=2/b")]
    public void PathAndQuery_Redacted(string target, string expected) => Assert.Equal(expected, Redactor.PathAndQuery(target));

    [Fact]
    public void ParsedPath_AbsoluteFormUserInfo_Masked()
    {
        IReadOnlyList<string> plain = ["api", "v2", "dags"];
        Assert.Same(plain, Redactor.ParsedPath(plain));
        Assert.Equal(["http:", "", "[REDACTED]@h", "x"], Redactor.ParsedPath(["http:", "", "u:PlantedPw@h", "x"]));
    }

    [Theory]
    [InlineData("airflow.example.com", "airflow.example.com")]
    [InlineData("user:password@airflow.example.com", "airflow.example.com")]
    [InlineData("a@b@airflow.example.com:8080", "airflow.example.com:8080")]
    [InlineData("[::1]:8080", "[::1]:8080")]
    public void HostForLog_DropsUserInfo(string host, string expected) => Assert.Equal(expected, SecretRedactor.HostForLog(host));

    [Theory]
    [InlineData("/api/v1/dags", "/api/v1/dags")]
    [InlineData("/app;jsessionid=PlantedSession", "/app")]
    [InlineData("/a;x=1;y=2/b;c/d", "/a/b/d")]
    [InlineData("/x?token=PlantedTok", "/x")]
    [InlineData("/x#frag", "/x")]
    [InlineData("http://u:PlantedPw@h/x;s=1", "/x")]
    [InlineData("https://u:PlantedPw@h", "/")]
    [InlineData("*", "*")]
    public void PathForLog_DropsParametersQueryAndAuthority(string path, string expected) => Assert.Equal(expected, SecretRedactor.PathForLog(path));

    [Theory]
    [InlineData("GET", "GET")]
    [InlineData("PROPFIND", "PROPFIND")]
    [InlineData("EYJHBGCIOIJSUZI1NIJ9PLANTED", "(invalid)")]
    [InlineData("GET /X", "(invalid)")]
    [InlineData("", "(invalid)")]
    public void MethodForLog_OnlyShortTokens(string method, string expected) => Assert.Equal(expected, SecretRedactor.MethodForLog(method));

    [Fact]
    public void Body_SensitiveKeysAnyDepth_ExtraJsonString_NestedJsonStrings()
    {
        var body = RegoJson.Parse("""
            {"connection_id":"c","Password":"PlantedPw","port":5432,
             "extra":"{\"api_key\":\"PlantedKey\",\"nested\":\"{\\\"client_secret\\\":\\\"PlantedNested\\\"}\",\"timeout\":5}",
             "list":[{"token":"PlantedTok"},{"keep":"me"}],
             "uri":"postgres://admin:PlantedUriPw@db:5432/x",
             "flags":{"verify_token":true,"secret":null,"passwords":["PlantedA","PlantedB"],"private_key":{"k":"PlantedObj"}}}
            """);
        var json = RegoJson.Serialize(Redactor.Body(body));
        Assert.DoesNotContain("Planted", json);
        Assert.Contains("\"port\":5432", json);
        Assert.Contains("timeout", json);
        Assert.Contains("\"keep\":\"me\"", json);
        Assert.Contains("\"verify_token\":true", json);
        Assert.Contains("\"secret\":null", json);
        Assert.Contains("\"passwords\":[\"[REDACTED]\",\"[REDACTED]\"]", json);
        Assert.Contains("postgres://[REDACTED]@db:5432/x", json);
    }

    [Fact]
    public void Body_WithoutSecrets_IsTheSameInstance()
    {
        var body = RegoJson.Parse("""{"conf":{"k":1,"s":"{\"a\":1}"},"note":"https://example.com/x","list":[1,"two"]}""");
        Assert.Same(body, Redactor.Body(body));
    }

    [Fact]
    public void Body_DeeplyNestedJsonStrings_AreMaskedWhole()
    {
        var inner = """{"password":"PlantedDeep"}""";
        for (var i = 0; i < 6; i++)
        {
            inner = RegoJson.Serialize(new RegoObject.Builder().Add("v", RegoValue.From(inner)).Build());
        }
        Assert.DoesNotContain("PlantedDeep", RegoJson.Serialize(Redactor.Body(RegoJson.Parse(inner))));
    }

    [Fact]
    public void Body_AirflowVariableWithSensitiveKey_ValueMasked_NonJsonExtraMasked()
    {
        Assert.DoesNotContain("PlantedVar", RegoJson.Serialize(Redactor.Body(RegoJson.Parse("""{"key":"db_password","value":"PlantedVar"}"""))));
        Assert.Contains("visible", RegoJson.Serialize(Redactor.Body(RegoJson.Parse("""{"key":"region","value":"visible"}"""))));
        Assert.Equal("""{"extra":"[REDACTED]"}""", RegoJson.Serialize(Redactor.Body(RegoJson.Parse("""{"extra":"PlantedNotJson"}"""))));
        Assert.Equal("""{"extra":""}""", RegoJson.Serialize(Redactor.Body(RegoJson.Parse("""{"extra":""}"""))));
    }

    [Theory]
    [InlineData("application/json", """{"username":"admin","password":"PlantedPw"}""", """{"password":"[REDACTED]","username":"admin"}""")]
    [InlineData("text/plain", """{"password":"PlantedPw"}""", """{"password":"[REDACTED]"}""")]
    [InlineData("application/x-www-form-urlencoded", "username=admin&password=PlantedPw&csrf_token=PlantedCsrf&next=%2Fhome",
        "username=admin&password=%5BREDACTED%5D&csrf_token=%5BREDACTED%5D&next=%2Fhome")]
    [InlineData("application/json", """{"username":"admin","password":"PlantedTrunc""", "[REDACTED]")]
    [InlineData("application/xml", "<login><password>PlantedPw</password></login>", "[REDACTED]")]
    [InlineData("text/plain", "see https://u:PlantedPw@h/x", "[REDACTED]")]
    public void RawBody_WithSecrets_IsRedacted(string contentType, string body, string expected) =>
        Assert.Equal(expected, Redactor.RawBody(body, contentType));

    [Theory]
    [InlineData("application/json", """{ "conf" : {"k": 1},  "note":"hi" }""")]
    [InlineData("application/x-www-form-urlencoded", "user=ann&role=a&role=b")]
    [InlineData("text/plain", "hello world")]
    [InlineData("application/json", "{\"truncated\": \"no secr")]
    public void RawBody_WithoutSecrets_StaysByteForByte(string contentType, string body) =>
        Assert.Same(body, Redactor.RawBody(body, contentType));

    [Fact]
    public void HttpAttributes_HostPathQueryBodyAndRawBody_Redacted()
    {
        var rawBytes = Convert.ToBase64String("{\"password\":\"PlantedBytes\"}"u8.ToArray());
        var attrs = (RegoObject)RegoJson.Parse($$$"""
            {"request":{"http":{"method":"POST","host":"u:PlantedHostPw@h","path":"/x?token=PlantedQ",
             "query":"password=PlantedQuery","body":"{\"password\":\"PlantedRaw\"}",
             "rawBody":"{{{rawBytes}}}"}},"source":{"principal":"p"}}
            """);
        var json = RegoJson.Serialize(Redactor.HttpAttributes(attrs, "application/json"));
        Assert.DoesNotContain("Planted", json);
        Assert.DoesNotContain(rawBytes, json);
        Assert.Contains("\"method\":\"POST\"", json);
        Assert.Contains("\"principal\":\"p\"", json);
        var rawBody = ((RegoString)((RegoObject)((RegoObject)((RegoObject)RegoJson.Parse(json))["request"]!)["http"]!)["rawBody"]!).Value;
        Assert.Equal("""{"password":"[REDACTED]"}""", System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(rawBody)));
    }

    [Theory]
    [InlineData("no url here")]
    [InlineData("https://example.com/x@y")]
    [InlineData("mailto:someone@example.com")]
    [InlineData("https://[REDACTED]@h/")]
    public void MaskUserInfo_WithoutUserInfo_IsTheSameInstance(string text) => Assert.Same(text, SecretRedactor.MaskUserInfo(text));
}
