namespace EnvoyAuthz.Rego.Tests.Syntax;

public sealed class ParserTests
{
    [Fact]
    public void MissingPackage_ReportsParseErrorWithLocation()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("a.rego", "p := 1")]);
        Assert.False(r.Success);
        var e = Assert.Single(r.Errors);
        Assert.Equal("rego_parse_error", e.Code);
        Assert.Equal("a.rego", e.File);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void UnterminatedString_ReportsLineAndColumn()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("b.rego", "package x\n\np := \"abc\n")]);
        var e = Assert.Single(r.Errors);
        Assert.Equal("rego_parse_error", e.Code);
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void UnsafeVariable_ReportsUnsafeVarError()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("c.rego", "package x\n\np if {\n  y > 1\n}\n")]);
        var e = Assert.Single(r.Errors);
        Assert.Equal("rego_unsafe_var_error", e.Code);
        Assert.Contains("var y is unsafe", e.Message);
    }

    [Fact]
    public void DeeplyNestedTerm_FailsCleanly()
    {
        var src = "package x\n\np := " + new string('[', 100_000) + new string(']', 100_000) + "\n";
        var r = RegoCompiler.Compile([new RegoModuleSource("d.rego", src)]);
        Assert.False(r.Success);
        Assert.Equal("rego_parse_error", r.Errors[0].Code);
    }

    [Fact]
    public void KeywordsAsRefSegments_Parse()
    {
        var r = RegoCompiler.Compile([new RegoModuleSource("e.rego", "package x\n\nif.else := 1\n\np if { if.else == 1 }\n")]);
        Assert.True(r.Success, string.Join("; ", r.Errors));
        Assert.Equal(RegoValue.True, r.Policy!.Evaluate("data.x.p", null).Value);
    }
}

public sealed class HostileSourceTests
{
    [Theory]
    [InlineData(100_000)]
    public void LongOperatorChain_FailsCleanly(int n)
    {
        var src = "package x\n\np := " + string.Join(" + ", Enumerable.Repeat("1", n)) + "\n";
        var r = RegoCompiler.Compile([new RegoModuleSource("chain.rego", src)]);
        Assert.False(r.Success);
        Assert.Equal("rego_parse_error", r.Errors[0].Code);
    }

    [Fact]
    public void NestedTemplates_FailCleanly()
    {
        var inner = "1";
        for (int i = 0; i < 2000; i++) inner = "$\"{" + inner + "}\"";
        var r = RegoCompiler.Compile([new RegoModuleSource("t.rego", "package x\n\np := " + inner + "\n")]);
        Assert.False(r.Success);
    }

    [Fact]
    public void DeepNestingOnSmallStackThread_ReportsErrorNotCrash()
    {
        RegoCompileResult? result = null;
        var t = new Thread(() =>
        {
            var src = "package x\n\np := " + new string('(', 500) + "1" + new string(')', 500) + "\n";
            result = RegoCompiler.Compile([new RegoModuleSource("s.rego", src)]);
        }, 256 * 1024);
        t.Start();
        t.Join();
        Assert.NotNull(result);
    }

    [Fact]
    public void GarbageInput_NeverThrows()
    {
        var rnd = new Random(42);
        const string alphabet = "package x\n{}[]()|:=,.;\"`$ if else not some every in with as contains default 1 2.5e3 abc _";
        for (int i = 0; i < 500; i++)
        {
            var chars = new char[rnd.Next(1, 200)];
            for (int j = 0; j < chars.Length; j++) chars[j] = alphabet[rnd.Next(alphabet.Length)];
            var r = RegoCompiler.Compile([new RegoModuleSource("g.rego", "package x\n" + new string(chars))]);
            if (r.Success) r.Policy!.Evaluate("data.x", RegoObject.Empty, new RegoEvalOptions { Timeout = TimeSpan.FromMilliseconds(100) });
        }
    }
}
