using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Pipeline;

public class CheckRequestParserTests
{
    // Ordinary and harmless paths: parsed_path in OPA-Envoy's shape (no leading '/', percent-decoded
    // once, split on '/'), slashes merged, never throwing.
    [Theory]
    [InlineData("/", new[] { "" })]
    [InlineData("/api/v1/dags", new[] { "api", "v1", "dags" })]
    [InlineData("//admin", new[] { "admin" })]
    [InlineData("/a%3Bb=c/d", new[] { "a;b=c", "d" })]
    [InlineData("/caf%C3%A9?x=1", new[] { "café" })]
    [InlineData("/over%C0%AFlong", new[] { "over\uFFFD\uFFFDlong" })]
    [InlineData("/a+b", new[] { "a+b" })]
    [InlineData("/trailing/", new[] { "trailing", "" })]
    public void Parse_Path_SegmentsAsOpaEnvoy(string path, string[] expected)
    {
        var parsed = Requests.Parsed(Requests.Http(path: path));
        Assert.Equal(expected, parsed.ParsedPath);
        Assert.Equal(path.Split('?')[0], parsed.PathOnly);
    }

    [Theory]
    [InlineData("/%zz", "the request path has an invalid percent-encoding")]
    [InlineData("/bad%2", "the request path has an invalid percent-encoding")]
    [InlineData("/%", "the request path has an invalid percent-encoding")]
    [InlineData("/nul%00byte", "the request path has a control character, NUL or raw space")]
    [InlineData("/a/../admin", "the request path has a dot segment ('.' or '..')")]
    [InlineData("/%2e%2e/admin", "the request path has a dot segment ('.' or '..')")]
    [InlineData("/a%2Fb", "the request path has an encoded '/' or '\\'")]
    [InlineData("/a\\b", "the request path has a '\\'")]
    [InlineData("/a;b=c/d", "the request path has a ';' segment parameter")]
    [InlineData("/%2561dmin", "the request path has a double percent-encoding")]
    [InlineData("http://admin:pw@airflow.example.com/api/v2/dags", "the request path is not in origin form")]
    [InlineData("https://airflow.example.com", "the request path is not in origin form")]
    [InlineData("javascript:alert(1)", "the request path is not in origin form")]
    [InlineData("HTTP://h/admin/users", "the request path is not in origin form")]
    public void Parse_InvalidOrAmbiguousPath_IsBadRequest(string path, string expectedProblem)
    {
        var result = CheckRequestParser.Parse(Requests.Http(path: path), out var problem);
        Assert.Null(result);
        Assert.Equal(expectedProblem, problem);
    }

    [Theory]
    [InlineData("/a/../admin", new[] { "admin" })]
    [InlineData("/a%2Fb", new[] { "a", "b" })]
    [InlineData("/admin;x/users", new[] { "admin", "users" })]
    public void Parse_AmbiguousPath_NormalizeMode_DecidedOnNormalForm_RawPathKept(string path, string[] expected)
    {
        var parsed = CheckRequestParser.Parse(Requests.Http(path: path + "?q=1"), rejectAmbiguousPaths: false, out var problem);
        Assert.Null(problem);
        Assert.Equal(expected, parsed!.ParsedPath);
        Assert.Equal("/" + string.Join('/', expected), parsed.NormalizedPath);
        Assert.Equal(path + "?q=1", parsed.RawPath);
        Assert.Equal(path, parsed.PathOnly);
    }

    [Fact]
    public void Parse_NulInPath_NormalizeMode_StillBadRequest()
    {
        Assert.Null(CheckRequestParser.Parse(Requests.Http(path: "/admin%00/users"), rejectAmbiguousPaths: false, out var problem));
        Assert.Equal("the request path has a control character, NUL or raw space", problem);
    }

    [Fact]
    public void Parse_Query_FollowsGoRules()
    {
        var parsed = Requests.Parsed(Requests.Http(path: "/x?a=1&b=two+words&a=2&empty=&flag&bad=%zz&semi=1;2&c=%26"));
        var q = parsed.ParsedQuery.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(["1", "2"], q["a"]);
        Assert.Equal(["two words"], q["b"]);
        Assert.Equal([""], q["empty"]);
        Assert.Equal([""], q["flag"]);
        Assert.Equal(["&"], q["c"]);
        Assert.False(q.ContainsKey("bad"));
        Assert.False(q.ContainsKey("semi"));
        Assert.Equal("/x", parsed.PathOnly);
    }

    [Fact]
    public void Parse_NoHttpAttributes_IsBadRequest()
    {
        var result = CheckRequestParser.Parse(new Envoy.Service.Auth.V3.CheckRequest(), out var problem);
        Assert.Null(result);
        Assert.NotNull(problem);
    }

    [Fact]
    public void Parse_ContentLengthBeyondBody_MarksTruncated()
    {
        var parsed = Requests.Parsed(Requests.Http(method: "POST", body: "{\"a\":", headers: new Dictionary<string, string> { ["content-length"] = "100" }));
        Assert.True(parsed.TruncatedBody);
    }

    [Fact]
    public void Parse_HeaderMapInsteadOfHeaders_IsRead()
    {
        var check = Requests.Http();
        var http = check.Attributes.Request.Http;
        http.Headers.Clear();
        http.HeaderMap = new Envoy.Config.Core.V3.HeaderMap();
        http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = "X-Raw", RawValue = Google.Protobuf.ByteString.CopyFromUtf8("v1") });
        var parsed = Requests.Parsed(check);
        Assert.Equal("v1", parsed.Header("x-raw"));
    }
}

public class LogSafeTests
{
    [Theory]
    [InlineData("/api/v1/dags", "/api/v1/dags")]
    [InlineData("/x\r\nINFO forged line", "/x\\x0d\\x0aINFO forged line")]
    [InlineData("a\0b", "a\\x00b")]
    public void LogSafe_EscapesControlCharacters(string input, string expected) => Assert.Equal(expected, CheckPipeline.LogSafe(input));

    [Fact]
    public void LogSafe_BoundsLength() => Assert.Equal(513, CheckPipeline.LogSafe(new string('a', 10_000))!.Length);
}
