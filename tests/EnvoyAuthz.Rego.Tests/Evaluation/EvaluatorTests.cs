namespace EnvoyAuthz.Rego.Tests.Evaluation;

public sealed class EvaluatorTests
{
    internal static RegoPolicy Compile(string src, string? data = null)
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("t.rego", src)], data is null ? null : RegoJson.Parse(data));
        Assert.True(r.Success, string.Join("; ", r.Errors));
        return r.Policy!;
    }

    [Fact]
    public void AllowRule_MatchingInput_IsTrue()
    {
        var p = Compile("package envoy.authz\n\ndefault allow := false\n\nallow if {\n  input.method == \"GET\"\n  startswith(input.path, \"/public\")\n}\n");
        var yes = p.Evaluate("data.envoy.authz.allow", RegoJson.Parse("{\"method\":\"GET\",\"path\":\"/public/x\"}"));
        var no = p.Evaluate("data.envoy.authz.allow", RegoJson.Parse("{\"method\":\"POST\",\"path\":\"/public/x\"}"));
        Assert.Equal(RegoValue.True, yes.Value);
        Assert.Equal(RegoValue.False, no.Value);
    }

    [Fact]
    public void UndefinedRule_IsNotDefined()
    {
        var p = Compile("package x\n\np if input.a\n");
        var r = p.Evaluate("data.x.p", RegoObject.Empty);
        Assert.False(r.IsDefined);
        Assert.Null(r.Error);
    }

    [Fact]
    public void ConflictingCompleteRule_ReportsConflictError()
    {
        var p = Compile("package x\n\np := 1\n\np := 2\n");
        var r = p.Evaluate("data.x.p", null);
        Assert.Equal("eval_conflict_error", r.Error?.Code);
    }

    [Fact]
    public void PartialSetAndObject_Materialise()
    {
        var p = Compile("package x\n\ns contains v if some v in input.xs\n\no[k] := v if some k, v in input.m\n");
        var input = RegoJson.Parse("{\"xs\":[3,1,3],\"m\":{\"a\":1}}");
        Assert.Equal("[1,3]", p.Evaluate("data.x.s", input).Value!.ToJson());
        Assert.Equal("{\"a\":1}", p.Evaluate("data.x.o", input).Value!.ToJson());
    }

    [Fact]
    public void WithKeyword_ReplacesInputAndFunctions()
    {
        var p = Compile("package x\n\nf(a) := a + 1\n\np := f(input.v)\n\nq := y if y := p with input.v as 10\n\nr := y if y := p with f as 100 with input.v as 1\n");
        Assert.Equal(RegoValue.From(11), p.Evaluate("data.x.q", null).Value);
        Assert.Equal(RegoValue.From(100), p.Evaluate("data.x.r", null).Value);
    }

    [Fact]
    public void Every_AllElementsMustHold()
    {
        var p = Compile("package x\n\np if every v in input.xs { v > 0 }\n");
        Assert.True(p.Evaluate("data.x.p", RegoJson.Parse("{\"xs\":[1,2]}")).IsDefined);
        Assert.False(p.Evaluate("data.x.p", RegoJson.Parse("{\"xs\":[1,-2]}")).IsDefined);
    }

    [Fact]
    public void StrictBuiltinErrors_SurfaceAsErrors()
    {
        var p = Compile("package x\n\np := 1 / 0\n");
        Assert.False(p.Evaluate("data.x.p", null).IsDefined);
        var strict = p.Evaluate("data.x.p", null, new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Equal("eval_builtin_error", strict.Error?.Code);
    }

    [Fact]
    public void Query_ReturnsAllBindings()
    {
        var p = Compile("package x\n\nxs := [1, 2, 3]\n");
        var r = p.Query("some i; data.x.xs[i] > 1; y := data.x.xs[i]", null);
        Assert.Null(r.Error);
        Assert.Equal(2, r.Bindings.Count);
    }

    [Fact]
    public void Print_WritesToSink()
    {
        var lines = new List<string>();
        var p = Compile("package x\n\np if print(\"hello\", input.missing)\n");
        p.Evaluate("data.x.p", RegoObject.Empty, new RegoEvalOptions { PrintSink = lines.Add });
        Assert.Equal(["hello <undefined>"], lines);
    }

    [Fact]
    public void TimeNow_IsFixedByTimeProvider()
    {
        var tp = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
        var p = Compile("package x\n\np := time.now_ns()\n");
        var r = p.Evaluate("data.x.p", null, new RegoEvalOptions { TimeProvider = tp });
        Assert.Equal(RegoValue.From(1_700_000_000L * 1_000_000_000L), r.Value);
    }
}

public sealed class CompilerChecksTests
{
    [Fact]
    public void RecursiveRules_ReportRecursionError()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("r.rego", "package x\n\np if q\n\nq if p\n")]);
        Assert.False(r.Success);
        Assert.Equal("rego_recursion_error", r.Errors[0].Code);
        Assert.Contains("data.x.p", r.Errors[0].Message);
    }

    [Fact]
    public void RecursiveFunction_ReportsRecursionError()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("r.rego", "package x\n\nf(n) := f(n - 1)\n")]);
        Assert.Equal("rego_recursion_error", Assert.Single(r.Errors).Code);
    }

    [Fact]
    public void UndefinedFunction_ReportsTypeError()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("r.rego", "package x\n\np if no_such_function(1)\n")]);
        var e = Assert.Single(r.Errors);
        Assert.Equal("rego_type_error", e.Code);
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void StrictBuiltinError_CarriesLocation()
    {
        var p = EvaluatorTests.Compile("package x\n\np := x if {\n  x := 1 / 0\n}\n");
        var err = p.Evaluate("data.x.p", null, new RegoEvalOptions { StrictBuiltinErrors = true }).Error;
        Assert.NotNull(err);
        Assert.Equal("t.rego", err.File);
        Assert.Equal(4, err.Line);
        Assert.StartsWith("t.rego:4: eval_builtin_error: div: divide by zero", err.ToString());
    }

    [Fact]
    public void IndexedRules_MatchUnindexedSemantics()
    {
        var rules = string.Join("\n", Enumerable.Range(0, 50).Select(i => $"allow if {{\n  input.method == \"M{i}\"\n  input.n > {i}\n}}"));
        var p = EvaluatorTests.Compile($"package x\n\ndefault allow := false\n\n{rules}\n\nallow if input.admin\n");
        Assert.Equal(RegoValue.True, p.Evaluate("data.x.allow", RegoJson.Parse("{\"method\":\"M7\",\"n\":8}")).Value);
        Assert.Equal(RegoValue.False, p.Evaluate("data.x.allow", RegoJson.Parse("{\"method\":\"M7\",\"n\":7}")).Value);
        Assert.Equal(RegoValue.True, p.Evaluate("data.x.allow", RegoJson.Parse("{\"method\":\"none\",\"admin\":true}")).Value);
        Assert.Equal(RegoValue.False, p.Evaluate("data.x.allow", RegoJson.Parse("{}")).Value);
        var q = p.Query("x := data.x.allow with input as {\"method\": \"M3\", \"n\": 4}", null);
        Assert.Equal(RegoValue.True, q.Bindings[0]["x"]);
    }
}
