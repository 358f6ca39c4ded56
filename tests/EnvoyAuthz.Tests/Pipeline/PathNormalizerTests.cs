using System.Text.Json;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.Tests.Pipeline;

public class PathNormalizerTests
{
    /// <summary>
    /// Every hostile spelling class, as (raw path, outcome in <c>reject</c> mode, outcome in
    /// <c>normalize</c> mode); an outcome is the JSON of <c>parsed_path</c> or the problem's name.
    /// </summary>
    public static TheoryData<string, string, string> Table => new()
    {
        // normal form, or harmless to normalise (slashes merged)
        { "/api/v1/dags", """["api","v1","dags"]""", """["api","v1","dags"]""" },
        { "", """[""]""", """[""]""" },
        { "/", """[""]""", """[""]""" },
        { "//", """[""]""", """[""]""" },
        { "//admin", """["admin"]""", """["admin"]""" },
        { "///admin//x", """["admin","x"]""", """["admin","x"]""" },
        { "/admin/", """["admin",""]""", """["admin",""]""" },
        { "/admin//", """["admin",""]""", """["admin",""]""" },
        { "admin/x", """["admin","x"]""", """["admin","x"]""" },
        { "/%61dmin", """["admin"]""", """["admin"]""" },
        { "/%61%64%6d%69%6e/x", """["admin","x"]""", """["admin","x"]""" },
        { "/ADMIN/users", """["ADMIN","users"]""", """["ADMIN","users"]""" },
        { "/a%3Bb", """["a;b"]""", """["a;b"]""" },
        { "/healthz%3F/x", """["healthz?","x"]""", """["healthz?","x"]""" },
        { "/healthz%23/x", """["healthz#","x"]""", """["healthz#","x"]""" },
        { "/a%20b", """["a b"]""", """["a b"]""" },
        { "/a+b", """["a+b"]""", """["a+b"]""" },
        { "/...", """["..."]""", """["..."]""" },
        { "/%2e%2e%2e", """["..."]""", """["..."]""" },
        { "/.well-known/openid-configuration", """[".well-known","openid-configuration"]""", """[".well-known","openid-configuration"]""" },
        { "/a.", """["a."]""", """["a."]""" },
        { "/a%c0%afb", "[\"a\\uFFFD\\uFFFDb\"]", "[\"a\\uFFFD\\uFFFDb\"]" },
        { "/%e0%80%af", "[\"\\uFFFD\\uFFFD\\uFFFD\"]", "[\"\\uFFFD\\uFFFD\\uFFFD\"]" },
        { "/%ff%fe", "[\"\\uFFFD\\uFFFD\"]", "[\"\\uFFFD\\uFFFD\"]" },
        { "/caf%C3%A9/%E6%97%A5", """["café","日"]""", """["café","日"]""" },
        { "/café/日本/🔒", """["café","日本","🔒"]""", """["café","日本","🔒"]""" },
        { "/a\ud800b", "[\"a\\uFFFDb\"]", "[\"a\\uFFFDb\"]" },
        { "/%25", """["%"]""", """["%"]""" },
        { "/%25zz", """["%zz"]""", """["%zz"]""" },

        // dot segments, raw or encoded
        { "/../admin", "DotSegment", """["admin"]""" },
        { "/x/../admin/users", "DotSegment", """["admin","users"]""" },
        { "/api/v1/../../admin/users", "DotSegment", """["admin","users"]""" },
        { "/%2e%2e/admin/users", "DotSegment", """["admin","users"]""" },
        { "/%2E%2E/admin", "DotSegment", """["admin"]""" },
        { "/.%2e/admin", "DotSegment", """["admin"]""" },
        { "/%2e./admin", "DotSegment", """["admin"]""" },
        { "/./admin", "DotSegment", """["admin"]""" },
        { "/%2e/admin", "DotSegment", """["admin"]""" },
        { "/admin/.", "DotSegment", """["admin",""]""" },
        { "/admin/x/..", "DotSegment", """["admin",""]""" },
        { "/a/b/../../../c", "DotSegment", """["c"]""" },
        { "/healthz/../admin", "DotSegment", """["admin"]""" },
        { "/..", "DotSegment", """[""]""" },

        // encoded separators and backslashes
        { "/a%2Fb", "EncodedSlash", """["a","b"]""" },
        { "/a%2fb", "EncodedSlash", """["a","b"]""" },
        { "/%2Fadmin", "EncodedSlash", """["admin"]""" },
        { "/%2F%2Fadmin/x", "EncodedSlash", """["admin","x"]""" },
        { "/admin%2Fusers", "EncodedSlash", """["admin","users"]""" },
        { "/a%5Cb", "EncodedSlash", """["a","b"]""" },
        { "/a%5cb", "EncodedSlash", """["a","b"]""" },
        { "/%2E%2E%2Fadmin", "EncodedSlash", """["admin"]""" },
        { "/healthz%2F..%2Fadmin", "EncodedSlash", """["admin"]""" },
        { "/a%c0%2fb", "EncodedSlash", "[\"a\\uFFFD\",\"b\"]" },
        { "\\admin\\users", "Backslash", """["admin","users"]""" },
        { "/admin\\users", "Backslash", """["admin","users"]""" },
        { "/x\\..\\admin", "Backslash", """["admin"]""" },

        // segment parameters
        { "/admin;x/users", "PathParameter", """["admin","users"]""" },
        { "/admin;jsessionid=1", "PathParameter", """["admin"]""" },
        { "/healthz;/admin", "PathParameter", """["healthz","admin"]""" },
        { "/..;/admin", "PathParameter", """["admin"]""" },
        { "/api/v1/dags;/../../admin", "PathParameter", """["api","admin"]""" },
        { "/admin;a;b/x", "PathParameter", """["admin","x"]""" },

        // always denied: double encodings, NUL, control characters, raw space, broken escapes
        { "/%2561dmin/users", "DoubleEncoding", "DoubleEncoding" },
        { "/%252e%252e/admin", "DoubleEncoding", "DoubleEncoding" },
        { "/a%252Fb", "DoubleEncoding", "DoubleEncoding" },

        { "/admin%00/users", "ControlCharacter", "ControlCharacter" },
        { "/healthz%00", "ControlCharacter", "ControlCharacter" },
        { "/admin\u0000/x", "ControlCharacter", "ControlCharacter" },
        { "/a%09b", "ControlCharacter", "ControlCharacter" },
        { "/a%0d%0ab", "ControlCharacter", "ControlCharacter" },
        { "/a\r\nx-injected: 1", "ControlCharacter", "ControlCharacter" },
        { "/a%7Fb", "ControlCharacter", "ControlCharacter" },
        { "/a b", "ControlCharacter", "ControlCharacter" },
        { "/admin;%00/x", "ControlCharacter", "ControlCharacter" },
        { "/%zz", "InvalidEncoding", "InvalidEncoding" },
        { "/a%", "InvalidEncoding", "InvalidEncoding" },
        { "/a%2", "InvalidEncoding", "InvalidEncoding" },
        { "/%u0061dmin", "InvalidEncoding", "InvalidEncoding" },
        { "/admin;%zz/x", "InvalidEncoding", "InvalidEncoding" },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Normalize_RejectMode_DeniesAmbiguousSpellings(string path, string reject, string normalize)
    {
        _ = normalize;
        AssertOutcome(path, rejectAmbiguous: true, reject);
    }

    [Theory]
    [MemberData(nameof(Table))]
    public void Normalize_NormalizeMode_ResolvesAmbiguousSpellings(string path, string reject, string normalize)
    {
        _ = reject;
        AssertOutcome(path, rejectAmbiguous: false, normalize);
    }

    /// <summary>Normalising is idempotent: the normal form, spelled as a path, normalises to itself.</summary>
    [Theory]
    [MemberData(nameof(Table))]
    public void Normalize_NormalForm_IsAFixedPoint(string path, string reject, string normalize)
    {
        _ = reject;
        if (!normalize.StartsWith('['))
        {
            return;
        }
        var segments = JsonSerializer.Deserialize<string[]>(normalize)!;
        var spelled = "/" + string.Join('/', segments.Select(s => Uri.EscapeDataString(s)));
        Assert.Equal(PathProblem.None, PathNormalizer.Normalize(spelled, rejectAmbiguous: false, out var again));
        Assert.Equal(segments, again);
        _ = path;
    }

    [Fact]
    public void Normalize_HundredThousandDotSegments_NoStackOrQuadraticBlowUp()
    {
        var path = string.Concat(Enumerable.Repeat("/a/%2e%2e", 100_000)) + "/b";
        Assert.Equal(PathProblem.DotSegment, PathNormalizer.Normalize(path, rejectAmbiguous: true, out _));
        Assert.Equal(PathProblem.None, PathNormalizer.Normalize(path, rejectAmbiguous: false, out var segments));
        Assert.Equal(["b"], segments);
    }

    [Fact]
    public void Describe_EveryProblem_FixedVocabulary()
    {
        foreach (var p in Enum.GetValues<PathProblem>())
        {
            Assert.StartsWith("the request path ", PathNormalizer.Describe(p));
        }
        Assert.Equal("the request path has an invalid percent-encoding", PathNormalizer.Describe(PathProblem.InvalidEncoding));
    }

    private static void AssertOutcome(string path, bool rejectAmbiguous, string expected)
    {
        var problem = PathNormalizer.Normalize(path, rejectAmbiguous, out var segments);
        if (expected.StartsWith('['))
        {
            Assert.Equal(PathProblem.None, problem);
            Assert.Equal(JsonSerializer.Deserialize<string[]>(expected), segments);
        }
        else
        {
            Assert.Equal(Enum.Parse<PathProblem>(expected), problem);
            Assert.Empty(segments);
        }
    }
}
