using System.Text.Json;
using EnvoyAuthz.Cli;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Cli;

public sealed class PolicyCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = PolicyCommand.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Every folder under envoy/ that holds Rego policies.</summary>
    public static TheoryData<string> ShippedPolicyFolders() => new(
        Directory.EnumerateFiles(RepoPaths.Of("envoy"), "*.rego", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(RepoPaths.Root, Path.GetDirectoryName(f)!))
            .Where(d => !Directory.GetParent(RepoPaths.Of(d))!.EnumerateFiles("*.rego").Any()) // top-level policy folders only
            .Distinct().Order());

    [Theory]
    [MemberData(nameof(ShippedPolicyFolders))]
    public void Test_ShippedPolicies_HaveRegoTestsThatAllPass(string folder)
    {
        var (code, output, err) = Run("test", RepoPaths.Of(folder));
        Assert.True(code == 0, output + err);
        Assert.Matches(@"PASS: (\d+)/\1", output);
        Assert.DoesNotContain("FAIL", output);
    }

    [Fact]
    public void Test_FailingAndErroringTests_ReportedWithExitCode1()
    {
        File.WriteAllText(Path.Combine(_dir, "p_test.rego"), """
            package p_test
            import rego.v1
            test_ok if { 1 == 1 }
            test_fails if {
                print("about to fail")
                1 == 2
            }
            test_conflict if { x := {"a": 1, "a": 2}; x }
            test_mocked if { data.p.allow with input as {"user": "ann"} }
            helper := 1
            """);
        File.WriteAllText(Path.Combine(_dir, "p.rego"), "package p\nimport rego.v1\nallow if input.user == \"ann\"\n");
        var (code, output, _) = Run("test", _dir);
        Assert.Equal(1, code);
        Assert.Contains("data.p_test.test_ok: PASS", output);
        Assert.Contains("data.p_test.test_fails: FAIL", output);
        Assert.Contains("about to fail", output); // print output is shown for failures
        Assert.Contains("data.p_test.test_mocked: PASS", output);
        Assert.DoesNotContain("helper", output);
        Assert.Contains("FAIL: 1/4", output);
    }

    [Fact]
    public void Test_Verbose_ShowsPrintOutputOfPassingTests()
    {
        File.WriteAllText(Path.Combine(_dir, "v_test.rego"), "package v_test\nimport rego.v1\ntest_talks if { print(\"hello from rego\") }\n");
        Assert.DoesNotContain("hello from rego", Run("test", _dir).Out);
        Assert.Contains("hello from rego", Run("test", "--verbose", _dir).Out);
    }

    [Fact]
    public void Test_CompileError_ExitCode2WithLocation()
    {
        File.WriteAllText(Path.Combine(_dir, "bad.rego"), "package bad\nallow if {\n");
        var (code, _, err) = Run("test", _dir);
        Assert.Equal(2, code);
        Assert.Contains("bad.rego:", err);
    }

    [Fact]
    public void Eval_Reference_PrintsOpaShapedJson()
    {
        var input = Path.Combine(_dir, "input.json");
        File.WriteAllText(input, """{"identity":{"subject":"a","groups":["viewers"]},"attributes":{"request":{"http":{"method":"GET"}}},"parsed_path":["api","v1","dags"]}""");
        var (code, output, _) = Run("eval", "-d", RepoPaths.Of("envoy", "policy"), "-i", input, "data.envoy.authz.allow");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var value = doc.RootElement.GetProperty("result")[0].GetProperty("expressions")[0].GetProperty("value");
        Assert.True(value.GetProperty("allowed").GetBoolean());
        Assert.Equal("read", value.GetProperty("headers").GetProperty("x-authz-policy").GetString());
    }

    [Fact]
    public void Eval_QueryWithVariables_PrintsBindings()
    {
        var (code, output, _) = Run("eval", "x := [1, 2, 3][_]; x > 1");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var xs = doc.RootElement.GetProperty("result").EnumerateArray().Select(r => r.GetProperty("bindings").GetProperty("x").GetInt32()).Order().ToList();
        Assert.Equal([2, 3], xs);
    }

    [Fact]
    public void Eval_Undefined_EmptyResult()
    {
        var (code, output, _) = Run("eval", "-d", RepoPaths.Of("envoy", "policy"), "data.envoy.authz.nothing_here");
        Assert.Equal(0, code);
        Assert.Equal("{}", output.Trim());
    }

    [Fact]
    public void Usage_NoVerb_Throws() => Assert.Throws<CliUsageException>(() => Run());
}
