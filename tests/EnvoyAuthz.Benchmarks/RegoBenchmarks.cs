using BenchmarkDotNet.Attributes;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Benchmarks;

/// <summary>
/// The embedded engine evaluating the shipped example policy (envoy/policy) on a typical input —
/// an authenticated POST to Airflow's DAG-run API — against the baseline of a constant policy,
/// so the ratio shows what the policy itself costs.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class RegoEvaluationBenchmarks
{
    private RegoPolicy _example = null!;
    private RegoPolicy _constant = null!;
    private RegoObject _input = null!;

    [GlobalSetup]
    public void Setup()
    {
        var bundle = PolicyBundle.Load(Path.Combine(RepoRoot(), "envoy", "policy"));
        _example = RegoCompiler.Compile(bundle.Modules, bundle.Data).Policy ?? throw new InvalidOperationException("example policy does not compile");
        _constant = RegoCompiler.Compile([new RegoModuleSource("c.rego", "package envoy.authz\nallow := {\"allowed\": true}\n")]).Policy!;
        var check = new Envoy.Service.Auth.V3.CheckRequest
        {
            Attributes = new Envoy.Service.Auth.V3.AttributeContext
            {
                Request = new Envoy.Service.Auth.V3.AttributeContext.Types.Request
                {
                    Http = new Envoy.Service.Auth.V3.AttributeContext.Types.HttpRequest
                    {
                        Method = "POST", Path = "/api/v1/dags/etl_daily/dagRuns", Host = "airflow.example.com", Scheme = "https",
                        Headers = { ["content-type"] = "application/json", ["user-agent"] = "airflow-client/2.9" },
                        Body = """{"conf":{"date":"2026-11-23"}}""",
                    },
                },
            },
        };
        new PolicyInputBuilder(new AuthzOptions()).TryBuild(CheckRequestParser.Parse(check, out _)!, null, null, out var input, out _);
        var b = new RegoObject.Builder();
        foreach (var (k, v) in input.Pairs)
        {
            b.Add(k, v);
        }
        _input = b.Add("identity", RegoJson.Parse("""
            {"issuer":"https://idp.example.com","subject":"ed","audience":["api"],"client_id":"ci","scopes":["read","write"],
             "groups":["data-eng","viewers"],"roles":[],"expires_at":1795398627,"claims":{"sub":"ed"}}
            """)).Build();
        if (_example.Evaluate("data.envoy.authz.allow", _input) is not { IsDefined: true, Value: RegoObject decision } || decision["allowed"] != RegoValue.True)
        {
            throw new InvalidOperationException("the typical input is not allowed by the example policy");
        }
    }

    /// <summary>Baseline: a constant decision.</summary>
    [Benchmark(Baseline = true)]
    public RegoEvalResult ConstantPolicy() => _constant.Evaluate("data.envoy.authz.allow", _input);

    /// <summary>The shipped example policy on a typical input.</summary>
    [Benchmark]
    public RegoEvalResult ExamplePolicy_TypicalInput() => _example.Evaluate("data.envoy.authz.allow", _input);

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("EnvoyAuthz.sln not found");
    }
}

/// <summary>
/// <c>regex.match</c> is linear-time (RE2 semantics, .NET's NonBacktracking engine): the classic
/// catastrophic pattern <c>(a+)+$</c> on <c>aaa…a!</c> takes time proportional to the input, where
/// a backtracking engine doubles its time with every extra <c>a</c>. Baseline: the same input
/// against a plain pattern.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class RegexLinearTimeBenchmarks
{
    private RegoPolicy _policy = null!;
    private RegoObject _input = null!;

    [Params(20, 1_000, 100_000)]
    public int Length { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _policy = RegoCompiler.Compile([new RegoModuleSource("r.rego", """
            package bench
            import rego.v1
            pathological := regex.match(`^(a+)+$`, input.s)
            plain := regex.match(`^a+$`, input.s)
            """)]).Policy!;
        _input = new RegoObject.Builder().Add("s", RegoValue.From(new string('a', Length) + "!")).Build();
        if (_policy.Evaluate("data.bench.pathological", _input).Value != RegoValue.False)
        {
            throw new InvalidOperationException("regex.match is not available or wrong");
        }
    }

    /// <summary>Baseline: <c>^a+$</c>.</summary>
    [Benchmark(Baseline = true)]
    public RegoEvalResult PlainPattern() => _policy.Evaluate("data.bench.plain", _input);

    /// <summary><c>^(a+)+$</c>: exponential for backtracking engines.</summary>
    [Benchmark]
    public RegoEvalResult PathologicalPattern() => _policy.Evaluate("data.bench.pathological", _input);
}
