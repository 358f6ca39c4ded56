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
        Exception? thrown = null;
        var t = new Thread(() =>
        {
            try
            {
                var src = "package x\n\np := " + new string('(', 500) + "1" + new string(')', 500) + "\n";
                result = RegoCompiler.Compile([new RegoModuleSource("s.rego", src)]);
            }
            catch (Exception ex)
            {
                thrown = ex;
            }
        }, 256 * 1024);
        t.Start();
        t.Join();
        Assert.Null(thrown);
        Assert.NotNull(result);
        // 500 levels fit the nesting limit but not a 256 KiB stack: an error, reported as one.
        Assert.False(result.Success);
        var e = Assert.Single(result.Errors);
        Assert.Equal("rego_parse_error", e.Code);
        Assert.Equal("s.rego", e.File);
        Assert.Contains("nesting too deep", e.Message, StringComparison.Ordinal);
    }

    private static readonly string[] KnownCompileCodes =
        ["rego_parse_error", "rego_compile_error", "rego_unsafe_var_error", "rego_type_error", "rego_recursion_error"];

    private static readonly string[] KnownEvalCodes =
        ["eval_type_error", "eval_builtin_error", "eval_conflict_error", "eval_cancel_error", "eval_limit_error", "eval_recursion_error"];

    [Fact]
    public void GarbageInput_NeverThrows()
    {
        var rnd = new Random(42);
        const string alphabet = "package x\n{}[]()|:=,.;\"`$ if else not some every in with as contains default 1 2.5e3 abc _";
        int compiled = 0, rejected = 0;
        for (int i = 0; i < 500; i++)
        {
            var chars = new char[rnd.Next(1, 200)];
            for (int j = 0; j < chars.Length; j++) chars[j] = alphabet[rnd.Next(alphabet.Length)];
            // every 10th input nests brackets deeply, where a backtracking parser used to explode
            // every 10th (from 5) is a valid rule followed by the garbage as a comment: random tokens
            // hardly ever form a Rego v1 rule (a bare head `abc` is no rule), and both outcomes are exercised
            var body = i % 10 == 0 ? "p := " + new string('[', 30 + i % 40) + new string(chars)
                : i % 10 == 5 ? "p := 1\n# " + new string(chars).Replace('\n', ' ')
                : new string(chars);
            var src = "package x\n" + body;
            var lines = src.Split('\n').Length;
            RegoCompileResult r;
            try
            {
                r = RegoCompiler.Compile([new RegoModuleSource("g.rego", src)]);
            }
            catch (Exception ex)
            {
                Assert.Fail($"input {i}: Compile threw {ex.GetType().Name}: {ex.Message}");
                return;
            }
            if (!r.Success)
            {
                rejected++;
                Assert.NotEmpty(r.Errors);
                foreach (var e in r.Errors)
                {
                    Assert.Contains(e.Code, KnownCompileCodes);
                    Assert.False(e.Message.StartsWith("internal", StringComparison.Ordinal), $"input {i}: {e}");
                    Assert.InRange(e.Line, 0, lines);
                }
                continue;
            }
            compiled++;
            RegoEvalResult result;
            try
            {
                result = r.Policy!.Evaluate("data.x", RegoObject.Empty, new RegoEvalOptions { Timeout = TimeSpan.FromMilliseconds(100) });
            }
            catch (Exception ex)
            {
                Assert.Fail($"input {i}: Evaluate threw {ex.GetType().Name}: {ex.Message}");
                return;
            }
            Assert.True(result.Error is null || KnownEvalCodes.Contains(result.Error.Code), $"input {i}: {result.Error}");
            Assert.True(result.Error is not null || result.Value is RegoObject, $"input {i}: data.x is always an object when it evaluates");
        }
        // the corpus exercises both outcomes
        Assert.InRange(compiled, 1, 499);
        Assert.InRange(rejected, 1, 499);
    }

    private static string Nested(char open, char close, int depth) =>
        "package x\n\np := " + new string(open, depth) + "1" + new string(close, depth) + "\n";

    [Theory]
    [InlineData(24)]
    [InlineData(256)]
    [InlineData(512)]
    public void NestedArrays_WithinTheLimit_ParseToTheirStructure(int depth)
    {
        RegoCompileResult? r = null;
        var t = new Thread(() => r = RegoCompiler.Compile([new RegoModuleSource("n.rego", Nested('[', ']', depth))]), 16 * 1024 * 1024);
        t.Start();
        t.Join();
        Assert.True(r!.Success, string.Join("; ", r.Errors));
        var v = r.Policy!.Evaluate("data.x.p", null).Value;
        for (int i = 0; i < depth; i++)
        {
            var a = Assert.IsType<RegoArray>(v);
            Assert.Equal(1, a.Count);
            v = a[0];
        }
        Assert.Equal(RegoValue.From(1), v);
    }

    [Theory]
    [InlineData('[', ']', 1000)]
    [InlineData('[', ']', 513)]
    [InlineData('{', '}', 1000)]
    [InlineData('(', ')', 1000)]
    public void NestingPastTheLimit_IsAParseErrorNamingTheLimit(char open, char close, int depth)
    {
        RegoCompileResult? r = null;
        var t = new Thread(() => r = RegoCompiler.Compile([new RegoModuleSource("n.rego", Nested(open, close, depth))]), 16 * 1024 * 1024);
        t.Start();
        t.Join();
        Assert.False(r!.Success);
        var e = Assert.Single(r.Errors);
        Assert.Equal("rego_parse_error", e.Code);
        Assert.Equal(3, e.Line);
        Assert.Equal("nesting too deep (more than 512 levels)", e.Message);
    }

    /// <summary>Nesting shapes that make a backtracking parser read inner brackets again at every level.</summary>
    public static TheoryData<string, string, string> NestingShapes() => new()
    {
        { "arrays", "[", "]" },
        { "sets", "{", "}" },
        { "objects", "{\"k\": ", "}" },
        { "array after a failed comprehension body", "[1 | ", ", 0]" },
        { "set after a failed comprehension body", "{1 | ", ", 0}" },
        { "object after a failed comprehension body", "{1: 2 | ", ", 3: 4}" },
        { "arrays in a comprehension head", "[", " | true]" },
        { "parentheses", "(", ")" },
        { "calls", "f(", ")" },
        { "pairs in arrays", "[0, ", "]" },
    };

    [Theory]
    [MemberData(nameof(NestingShapes))]
    public void ParsingWork_IsLinearInNesting(string shape, string open, string close)
    {
        int Work(int depth)
        {
            var src = "package x\n\np := " + string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)) + "\n";
            var terms = 0;
            var t = new Thread(() => EnvoyAuthz.Rego.Syntax.Parser.ParseModule("w.rego", src, 512, out terms), 16 * 1024 * 1024);
            t.Start();
            t.Join();
            return terms;
        }
        var at16 = Work(16);
        var at32 = Work(32);
        var at256 = Work(256);
        Assert.True(at16 > 0, shape);
        // a term read a bounded number of times per nesting level; doubling the depth at most doubles the work (plus a constant)
        Assert.InRange(at32, at16, 2 * at16 + 8);
        Assert.InRange(at256, at32, 8 * at32 + 64);
        // at most 5 terms per level in these shapes, none read more than twice
        Assert.True(at256 <= 10 * 256 + 16, $"{shape}: {at256} terms read for 256 levels");
    }
}
