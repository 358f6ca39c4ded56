using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace EnvoyAuthz.Tests.Policy;

public sealed class RegoPolicyEngineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-policy-").FullName;
    private readonly AuthzMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private RegoPolicyEngine Engine(string? path = null, string decisionPath = "envoy/authz/allow")
    {
        var options = new AuthzOptions();
        options.Policy.Path = path ?? _dir;
        options.Policy.DecisionPath = decisionPath;
        return new RegoPolicyEngine(options, _metrics, TimeProvider.System, NullLogger<RegoPolicyEngine>.Instance);
    }

    private void Write(string relative, string content)
    {
        var full = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        File.SetLastWriteTimeUtc(full, DateTime.UtcNow.AddSeconds(Random.Shared.Next(1, 1000)));
    }

    private static async Task<RegoValue?> Decide(RegoPolicyEngine engine, RegoObject input)
    {
        var result = await engine.EvaluateAsync(new PolicyContext { Request = Requests.Parsed(Requests.Http()), Input = input }, TestContext.Current.CancellationToken);
        Assert.Null(result.ErrorReason);
        return result.Decision;
    }

    private static RegoObject Input(string json) => (RegoObject)RegoJson.Parse(json);

    [Fact]
    public async Task Folder_ModulesAndDataFilesMergedByPath()
    {
        Write("authz.rego", """
            package envoy.authz
            import rego.v1
            allow if input.user in data.envoy.authz.users
            allow if input.user in data.extra.users
            """);
        Write("envoy/authz/data.json", """{"users": ["ann"]}""");
        Write("extra/data.yaml", "users:\n  - bob\n");
        var engine = Engine();
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"user":"ann"}""")));
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"user":"bob"}""")));
        Assert.Null(await Decide(engine, Input("""{"user":"eve"}""")));
        Assert.Equal(1, _metrics.PolicyReloads.WithLabels("success").Value);
    }

    [Fact]
    public async Task Bundle_TarGzWithManifest_Loads()
    {
        var bundle = Path.Combine(_dir, "bundle.tar.gz");
        using (var file = File.Create(bundle))
        using (var gz = new GZipStream(file, CompressionLevel.Fastest))
        using (var tar = new TarWriter(gz, TarEntryFormat.Pax))
        {
            void Add(string name, string text)
            {
                var entry = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) };
                tar.WriteEntry(entry);
            }
            Add("/.manifest", """{"revision": "rev-42", "roots": ["envoy"]}""");
            Add("/envoy/authz/policy.rego", "package envoy.authz\nimport rego.v1\nallow if input.n > data.envoy.authz.min\n");
            Add("/envoy/authz/data.json", """{"min": 3}""");
        }
        var engine = Engine(bundle);
        Assert.Equal("rev-42", engine.Bundle.Revision);
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"n": 5}""")));
        Assert.Null(await Decide(engine, Input("""{"n": 1}""")));
    }

    [Fact]
    public void BrokenPolicyAtStart_FailsWithFileLineAndColumn()
    {
        Write("authz.rego", "package envoy.authz\nimport rego.v1\n\nallow if {\n  input.x ==\n}\n");
        var ex = Assert.Throws<PolicyLoadException>(() => Engine());
        Assert.Contains(ex.Errors, e => e.StartsWith("authz.rego:", StringComparison.Ordinal));
        Assert.Equal(1, _metrics.PolicyReloads.WithLabels("failure").Value);
    }

    [Fact]
    public async Task Reload_BrokenPolicyKeepsTheOld_FixedOneTakesOver()
    {
        Write("authz.rego", "package envoy.authz\nimport rego.v1\nallow if input.v == 1\n");
        var engine = Engine();
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"v":1}""")));

        Write("authz.rego", "package envoy.authz\nimport rego.v1\nallow if input.v == \n");
        Assert.False(engine.TryReload());
        Assert.Equal(1, _metrics.PolicyReloads.WithLabels("failure").Value);
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"v":1}""")));

        Write("authz.rego", "package envoy.authz\nimport rego.v1\nallow if input.v == 2\n");
        Assert.True(engine.TryReload());
        Assert.Null(await Decide(engine, Input("""{"v":1}""")));
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"v":2}""")));
        Assert.Equal(2, _metrics.PolicyReloads.WithLabels("success").Value);
    }

    [Fact]
    public void Reload_Unchanged_DoesNothing()
    {
        Write("authz.rego", "package envoy.authz\nallow := true\n");
        var engine = Engine();
        Assert.False(engine.TryReload());
        Assert.Equal(1, _metrics.PolicyReloads.WithLabels("success").Value);
    }

    [Fact]
    public async Task EvaluationError_IsPolicyError()
    {
        Write("authz.rego", "package envoy.authz\nimport rego.v1\nallow := input.a\nallow := input.b\n");
        var engine = Engine();
        var result = await engine.EvaluateAsync(new PolicyContext { Request = Requests.Parsed(Requests.Http()), Input = Input("""{"a":1,"b":2}""") }, TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.PolicyError, result.ErrorReason);
    }

    [Fact]
    public async Task RunawayPolicy_StopsAtTheStepLimit()
    {
        Write("authz.rego", "package envoy.authz\nimport rego.v1\nallow if { count([1 | some a in input.xs; some b in input.xs; some c in input.xs]) > 0 }\n");
        var engine = Engine();
        var xs = "[" + string.Join(',', Enumerable.Range(0, 500)) + "]";
        var result = await engine.EvaluateAsync(new PolicyContext { Request = Requests.Parsed(Requests.Http()), Input = Input($$"""{"xs":{{xs}}}""") }, TestContext.Current.CancellationToken);
        Assert.Equal(ReasonCode.PolicyError, result.ErrorReason);
    }

    [Fact]
    public async Task NoPath_BuiltInPolicyAllowsIffIdentity()
    {
        var engine = new RegoPolicyEngine(new AuthzOptions(), _metrics, TimeProvider.System, NullLogger<RegoPolicyEngine>.Instance);
        Assert.Equal(RegoValue.True, await Decide(engine, Input("""{"identity":{"subject":"ann"}}""")));
        Assert.Equal(RegoValue.False, await Decide(engine, Input("{}")));
    }

    public static TheoryData<string, string, string, bool> ExamplePolicyCases() => new()
    {
        { "GET", "/api/v1/dags", """{"subject":"ann","groups":["viewers"]}""", true },
        { "POST", "/api/v1/dags/etl/dagRuns", """{"subject":"ann","groups":["viewers"]}""", false },
        { "POST", "/api/v1/dags/etl/dagRuns", """{"subject":"ed","groups":["data-eng"]}""", true },
        { "GET", "/admin/users", """{"subject":"ed","groups":["data-eng"]}""", false },
        { "GET", "/admin/users", """{"subject":"root","groups":["airflow-admins"]}""", true },
        { "GET", "/healthz", "null", true },
        { "GET", "/api/v1/dags", "null", false },
    };

    [Theory]
    [MemberData(nameof(ExamplePolicyCases))]
    public async Task ShippedExamplePolicy_Decides(string method, string path, string identity, bool allowed)
    {
        var engine = Engine(RepoPaths.Of("envoy", "policy"));
        var builder = new PolicyInputBuilder(new AuthzOptions());
        Assert.True(builder.TryBuild(Requests.Parsed(Requests.Http(method, path)), null, null, out var input, out _));
        if (identity != "null")
        {
            var b = new RegoObject.Builder();
            foreach (var (k, v) in input.Pairs)
            {
                b.Add(k, v);
            }
            input = b.Add("identity", RegoJson.Parse(identity)).Build();
        }
        var decision = Assert.IsType<RegoObject>(await Decide(engine, input));
        Assert.Equal(RegoValue.From(allowed), decision["allowed"]);
    }
}
