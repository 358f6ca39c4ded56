namespace EnvoyAuthz.Rego.Tests.Evaluation;

public sealed class HostileInputTests
{
    [Fact]
    public void InfiniteLoopLikePolicy_StopsAtTimeout()
    {
        var p = EvaluatorTests.Compile("package x\n\np := count([1 | numbers.range(1, 1000)[_]; numbers.range(1, 1000)[_]; numbers.range(1, 1000)[_]])\n");
        var r = p.Evaluate("data.x.p", null, new RegoEvalOptions { Timeout = TimeSpan.FromMilliseconds(200) });
        Assert.Equal("eval_cancel_error", r.Error?.Code);
    }

    [Fact]
    public void Cancellation_StopsEvaluation()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var p = EvaluatorTests.Compile("package x\n\np := count([1 | numbers.range(1, 1000)[_]; numbers.range(1, 1000)[_]])\n");
        var r = p.Evaluate("data.x.p", null, new RegoEvalOptions { CancellationToken = cts.Token });
        Assert.Equal("eval_cancel_error", r.Error?.Code);
    }

    private static RegoObject Src(string src) => new RegoObject.Builder().Add("src", RegoValue.From(src)).Build();

    private const string ParseModulePolicy = "package x\n\np := rego.parse_module(\"in.rego\", input.src)\n";

    [Theory]
    [InlineData(24)]
    [InlineData(400)]
    public void ParseModule_OnRequestData_NestedWithinTheLimit_ReturnsTheModule(int depth)
    {
        var p = EvaluatorTests.Compile(ParseModulePolicy);
        var src = "package y\n\nq := " + new string('[', depth) + "1" + new string(']', depth) + "\n";
        var r = p.Evaluate("data.x.p", Src(src), new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Null(r.Error);
        var module = Assert.IsType<RegoObject>(r.Value);
        var rule = Assert.IsType<RegoObject>(Assert.Single(Assert.IsType<RegoArray>(module["rules"]).Elements));
        Assert.Equal(RegoValue.From("q"), ((RegoObject)rule["head"]!)["name"]);
    }

    [Fact]
    public void ParseModule_OnRequestData_NestedPastTheLimit_IsABuiltinError()
    {
        var p = EvaluatorTests.Compile(ParseModulePolicy);
        var src = "package y\n\nq := " + new string('[', 1000) + "1" + new string(']', 1000) + "\n";
        var r = p.Evaluate("data.x.p", Src(src), new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Equal("eval_builtin_error", r.Error?.Code);
        Assert.Contains("in.rego:3: rego_parse_error: nesting too deep", r.Error!.Message, StringComparison.Ordinal);
        // without strict errors the expression is undefined: a deny, not a crash
        Assert.False(p.Evaluate("data.x.p", Src(src)).IsDefined);
    }

    [Fact]
    public void ParseModule_OnRequestData_ObservesTheEvaluationsCancellation()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var p = EvaluatorTests.Compile(ParseModulePolicy);
        var src = "package y\n\nq := [" + string.Join(", ", Enumerable.Range(0, 5000)) + "]\n";
        var r = p.Evaluate("data.x.p", Src(src), new RegoEvalOptions { CancellationToken = cts.Token });
        Assert.Equal("eval_cancel_error", r.Error?.Code);
    }

    [Fact]
    public void ParseModule_OnRequestData_LargerThanAModuleMayBe_IsABuiltinError()
    {
        var p = EvaluatorTests.Compile(ParseModulePolicy);
        var src = "package y\n" + new string(' ', new RegoCompileOptions().MaxModuleBytes);
        var r = p.Evaluate("data.x.p", Src(src), new RegoEvalOptions { StrictBuiltinErrors = true });
        Assert.Equal("eval_builtin_error", r.Error?.Code);
        Assert.Contains("module too large", r.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StepLimit_IsEnforced()
    {
        var p = EvaluatorTests.Compile("package x\n\np := count([1 | numbers.range(1, 100000)[_]])\n");
        var r = p.Evaluate("data.x.p", null, new RegoEvalOptions { MaxSteps = 1000 });
        Assert.Equal("eval_limit_error", r.Error?.Code);
    }

    [Fact]
    public void OutputLimit_IsEnforced()
    {
        var p = EvaluatorTests.Compile("package x\n\np := [x | some x in numbers.range(1, 100000)]\n");
        var r = p.Evaluate("data.x.p", null, new RegoEvalOptions { MaxOutputBytes = 10_000 });
        Assert.Equal("eval_limit_error", r.Error?.Code);
    }

    [Fact]
    public void DeeplyNestedInput_DoesNotCrash()
    {
        RegoValue v = RegoValue.From(1);
        for (int i = 0; i < 100_000; i++) v = RegoArray.From(v);
        var p = EvaluatorTests.Compile("package x\n\np := input == input\n\nq := json.marshal(input)\n\nr := count([x | walk(input, x)])\n");
        foreach (var rule in new[] { "p", "q" })
        {
            var r = p.Evaluate("data.x." + rule, v);
            Assert.NotNull(r);
        }
        RegoValue shallow = RegoValue.From(1);
        for (int i = 0; i < 2_000; i++) shallow = RegoArray.From(shallow);
        Assert.Equal(RegoValue.From(2_001), p.Evaluate("data.x.r", shallow).Value);
    }

    [Fact]
    public void LongBody_EvaluatesWithoutStackOverflow()
    {
        var body = string.Join("\n", Enumerable.Range(0, 20_000).Select(i => $"  x{i} := {i}"));
        var p = EvaluatorTests.Compile($"package x\n\np if {{\n{body}\n}}\n");
        var r = p.Evaluate("data.x.p", null);
        Assert.True(r.IsDefined || r.Error?.Code == "eval_limit_error", r.Error?.ToString());
    }

    [Fact]
    public void HugePolicy_Compiles()
    {
        var rules = string.Join("\n", Enumerable.Range(0, 5_000).Select(i => $"r{i} if input.v == {i}"));
        var p = EvaluatorTests.Compile($"package x\n\n{rules}\n");
        Assert.True(p.Evaluate("data.x.r4999", RegoJson.Parse("{\"v\":4999}")).IsDefined);
    }
}

public sealed class RuntimeRecursionTests
{
    [Fact]
    public void MockInducedRecursion_ReportsErrorNotCrash()
    {
        var p = EvaluatorTests.Compile("package x\n\nf(n) := g(n)\n\ng(n) := n\n\np := y if y := f(1) with g as h\n\nh(n) := f(n)\n");
        var r = p.Evaluate("data.x.p", null);
        Assert.NotNull(r);
        Assert.False(r.IsDefined && r.Error is not null);
    }

    [Fact]
    public void LongRuleChain_EvaluatesOnSmallStackThread()
    {
        var rules = string.Join("\n", Enumerable.Range(0, 1500).Select(i => $"r{i} := r{i + 1} + 1"));
        var p = EvaluatorTests.Compile($"package x\n\n{rules}\n\nr1500 := 0\n");
        RegoEvalResult? result = null;
        var t = new Thread(() => result = p.Evaluate("data.x.r0", null), 512 * 1024);
        t.Start();
        t.Join();
        Assert.NotNull(result);
        Assert.True(result.IsDefined ? result.Value!.Equals(RegoValue.From(1500)) : result.Error?.Code == "eval_limit_error", result.Error?.ToString());
    }
}
