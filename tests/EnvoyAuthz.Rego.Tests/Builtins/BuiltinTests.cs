using EnvoyAuthz.Rego.Builtins;

namespace EnvoyAuthz.Rego.Tests.Builtins;

public sealed class BuiltinTests
{
    private static RegoValue? Eval(string expr, string? input = null)
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("b.rego", $"package b\n\nx := {expr}\n")]);
        Assert.True(r.Success, string.Join("; ", r.Errors));
        var res = r.Policy!.Evaluate("data.b.x", input is null ? null : RegoJson.Parse(input), new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Null(res.Error);
        return res.Value;
    }

    [Theory]
    [InlineData("sprintf(\"%s-%d-%v\", [\"a\", 42, [1, \"x\"]])", "\"a-42-[1, \\\"x\\\"]\"")]
    [InlineData("concat(\",\", [\"a\", \"b\"])", "\"a,b\"")]
    [InlineData("split(\"a.b.c\", \".\")", "[\"a\",\"b\",\"c\"]")]
    [InlineData("trim_prefix(\"/api/v1\", \"/api\")", "\"/v1\"")]
    [InlineData("count(\"héllo\")", "5")]
    [InlineData("sum([1, 2.5])", "3.5")]
    [InlineData("max({3, 1, 2})", "3")]
    [InlineData("sort([3, \"a\", null])", "[null,3,\"a\"]")]
    [InlineData("object.get({\"a\": {\"b\": 1}}, [\"a\", \"b\"], 0)", "1")]
    [InlineData("json.unmarshal(\"{\\\"a\\\": [1, 2]}\")", "{\"a\":[1,2]}")]
    [InlineData("base64url.encode_no_pad(\"hi?\")", "\"aGk_\"")]
    [InlineData("glob.match(\"*.example.com\", [\".\"], \"api.example.com\")", "true")]
    [InlineData("regex.match(\"^/users/[0-9]+$\", \"/users/42\")", "true")]
    [InlineData("net.cidr_contains(\"10.0.0.0/8\", \"10.1.2.3\")", "true")]
    [InlineData("units.parse_bytes(\"1KiB\")", "1024")]
    [InlineData("semver.compare(\"1.2.3\", \"1.10.0\")", "-1")]
    [InlineData("time.parse_rfc3339_ns(\"2020-01-01T00:00:00Z\")", "1577836800000000000")]
    [InlineData("urlquery.encode_object({\"q\": \"a b\"})", "\"q=a+b\"")]
    [InlineData("yaml.unmarshal(\"a:\\n  - 1\\n  - b\\n\")", "{\"a\":[1,\"b\"]}")]
    [InlineData("18446744073709551617 + 1", "18446744073709551618")]
    [InlineData("0.1 + 0.2", "0.3")]
    public void Builtin_ReturnsOpaValue(string expr, string json)
    {
        var v = Eval(expr);
        Assert.NotNull(v);
        Assert.Equal(RegoJson.Parse(json), v);
    }

    [Theory]
    // version 2 (DCE security): time_low holds the local id (1000) and still counts in `time`, as OPA reads it
    [InlineData("000003e8-48b9-21ee-b200-325096b39f47", "1693566990121469600")]
    // version 1 with the same time_mid/time_hi and time_low 0x4a4
    [InlineData("000004a4-48b9-11ee-b200-325096b39f47", "1693566990121488400")]
    public void UuidParse_TimeIncludesTimeLow(string uuid, string nanos)
    {
        var v = Assert.IsType<RegoObject>(Eval($"uuid.parse(\"{uuid}\")"));
        Assert.Equal(RegoJson.Parse(nanos), v["time"]);
    }

    [Fact]
    public void JwtHs256_RoundTrips()
    {
        var v = Eval("io.jwt.decode_verify(io.jwt.encode_sign({\"alg\": \"HS256\"}, {\"sub\": \"u\"}, {\"kty\": \"oct\", \"k\": base64url.encode_no_pad(\"secret\")}), {\"secret\": \"secret\"})");
        var arr = Assert.IsType<RegoArray>(v);
        Assert.Equal(RegoValue.True, arr[0]);
        Assert.Equal(RegoValue.From("u"), ((RegoObject)arr[2])["sub"]);
    }

    [Fact]
    public void TypeErrors_AreUndefinedUnlessStrict()
    {
        // the argument comes from input: a constant one is a compile-time type error (CompileCheckTests)
        var p = RegoCompiler.Compile([new RegoModuleSource("b.rego", "package b\n\nx := upper(input.v)\n")]).Policy!;
        var input = RegoJson.Parse("{\"v\": 1}");
        Assert.False(p.Evaluate("data.b.x", input).IsDefined);
        var strict = p.Evaluate("data.b.x", input, new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Equal("eval_type_error", strict.Error?.Code);
        Assert.Contains("upper: operand 1 must be string but got number", strict.Error!.Message);
    }

    [Fact]
    public void Registry_HasOneEntryPerName_WithArity()
    {
        Assert.True(BuiltinRegistry.TryGet("count", out var count));
        Assert.Equal(1, count.Arity);
        Assert.True(BuiltinRegistry.TryGet("time.now_ns", out var now));
        Assert.True(now.Nondeterministic);
        Assert.True(BuiltinRegistry.Names.Count() > 150);
    }

    [Fact]
    public void Mocking_ReplacesBuiltinForCalledRules()
    {
        var p = RegoCompiler.Compile([new RegoModuleSource("m.rego", "package m\n\nnow := time.now_ns()\n\nx := y if y := now with time.now_ns as 7\n")]).Policy!;
        Assert.Equal(RegoValue.From(7), p.Evaluate("data.m.x", null).Value);
    }
}

public sealed class HostileBuiltinInputTests
{
    private static RegoEvalResult Eval(string rego, RegoValue input)
    {
        var p = RegoCompiler.Compile([new RegoModuleSource("h.rego", rego)]).Policy!;
        return p.Evaluate("data.h.x", input, new RegoEvalOptions { Timeout = TimeSpan.FromSeconds(2) });
    }

    [Fact]
    public void DeepGraphqlQuery_IsRejectedNotCrashing()
    {
        var q = new string('{', 50_000) + new string('}', 50_000);
        var r = Eval("package h\n\nx := graphql.parse_query(input.q)\n", new RegoObject.Builder().Add("q", RegoValue.From("query " + q)).Build());
        Assert.False(r.IsDefined);
    }

    [Fact]
    public void SelfReferencingGraphqlFragments_Terminate()
    {
        var schema = "type Query { a: A } type A { b: A, c: Int }";
        var query = "{ a { ...f } } fragment f on A { b { ...f ...f } c }";
        var r = Eval("package h\n\nx := graphql.is_valid(input.q, input.s)\n",
            new RegoObject.Builder().Add("q", RegoValue.From(query)).Add("s", RegoValue.From(schema)).Build());
        Assert.True(r.IsDefined);
    }

    [Fact]
    public void DeepYaml_IsRejectedNotCrashing()
    {
        var doc = new string('[', 20_000) + new string(']', 20_000);
        var r = Eval("package h\n\nx := yaml.unmarshal(input.d)\n", new RegoObject.Builder().Add("d", RegoValue.From(doc)).Build());
        Assert.False(r.IsDefined);
    }

    [Fact]
    public void HugeSprintfWidth_IsRejected()
    {
        var r = Eval("package h\n\nx := sprintf(\"%999999999d\", [1])\n", RegoObject.Empty);
        Assert.False(r.IsDefined);
    }

    [Fact]
    public void PathologicalRegex_DoesNotHang()
    {
        var r = Eval("package h\n\nx := regex.match(\"(a+)+$\", input.s)\n", new RegoObject.Builder().Add("s", RegoValue.From(new string('a', 50_000) + "!")).Build());
        Assert.Equal(RegoValue.False, r.Value);
    }
}
