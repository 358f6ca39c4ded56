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
