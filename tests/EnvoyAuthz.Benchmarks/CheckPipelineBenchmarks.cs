using BenchmarkDotNet.Attributes;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Benchmarks;

/// <summary>
/// One Check through the whole pipeline, in process (no gRPC transport), against the baseline of
/// only parsing the CheckRequest: a repeated token (cache hit), a token validated every time
/// (ES256 signature check), and building the policy input document.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class CheckPipelineBenchmarks
{
    private WebApplication _cachedApp = null!;
    private WebApplication _uncachedApp = null!;
    private CheckPipeline _cached = null!;
    private CheckPipeline _uncached = null!;
    private PolicyInputBuilder _inputBuilder = null!;
    private CheckRequest _request = null!;
    private CheckRequest _requestUncached = null!;
    private AuthzRequest _parsed = null!;

    [GlobalSetup]
    public void Setup()
    {
        // Each host generates its own dev key at start; tokens are minted for each.
        var cachedKey = Path.Combine(Path.GetTempPath(), $"envoy-authz-bench-{Environment.ProcessId}-a.json");
        var uncachedKey = Path.Combine(Path.GetTempPath(), $"envoy-authz-bench-{Environment.ProcessId}-b.json");
        (_cachedApp, _cached) = Build(cachedKey, cacheSize: 10_000);
        (_uncachedApp, _uncached) = Build(uncachedKey, cacheSize: 0);
        _inputBuilder = _cachedApp.Services.GetRequiredService<PolicyInputBuilder>();
        _request = Typical(DevSigningKey.Mint(cachedKey, "alice", ["airflow-admins", "viewers"], ["read", "write"], TimeSpan.FromHours(2)));
        _requestUncached = Typical(DevSigningKey.Mint(uncachedKey, "alice", ["airflow-admins", "viewers"], ["read", "write"], TimeSpan.FromHours(2)));
        _parsed = CheckRequestParser.Parse(_request, out _)!;
        if (_cached.CheckAsync(_request, default).GetAwaiter().GetResult().Status.Code != 0 ||
            _uncached.CheckAsync(_requestUncached, default).GetAwaiter().GetResult().Status.Code != 0)
        {
            throw new InvalidOperationException("benchmark setup: the typical request is not allowed");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cachedApp.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _uncachedApp.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Baseline: parse the CheckRequest only.</summary>
    [Benchmark(Baseline = true)]
    public AuthzRequest? ParseOnly() => CheckRequestParser.Parse(_request, out _);

    /// <summary>Whole pipeline, token already validated (cache hit).</summary>
    [Benchmark]
    public Task<CheckResponse> Check_CachedToken() => _cached.CheckAsync(_request, default);

    /// <summary>Whole pipeline, signature and claims validated every time.</summary>
    [Benchmark]
    public Task<CheckResponse> Check_ValidateEveryTime() => _uncached.CheckAsync(_requestUncached, default);

    /// <summary>The policy input document (what remote OPA and the Rego engine get).</summary>
    [Benchmark]
    public bool BuildPolicyInput() => _inputBuilder.TryBuild(_parsed, null, null, out _, out _);

    private static (WebApplication, CheckPipeline) Build(string keyFile, int cacheSize)
    {
        var (options, configuration) = AuthzHost.LoadConfiguration(null, dev: true,
        [
            new("EnvoyAuthz:Dev:KeyFile", keyFile),
            new("EnvoyAuthz:Identity:CacheSize", cacheSize.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ]);
        var app = AuthzHost.Build(options, configuration, configureLogging: l => l.ClearProviders());
        return (app, app.Services.GetRequiredService<CheckPipeline>());
    }

    private static CheckRequest Typical(string token)
    {
        var http = new AttributeContext.Types.HttpRequest
        {
            Id = "7f1c", Method = "POST", Path = "/api/v1/dags/etl_daily/dagRuns?limit=10", Host = "airflow.example.com",
            Scheme = "https", Protocol = "HTTP/2",
        };
        foreach (var (k, v) in new Dictionary<string, string>
                 {
                     [":method"] = "POST", [":path"] = http.Path, [":authority"] = http.Host, ["authorization"] = "Bearer " + token,
                     ["content-type"] = "application/json", ["user-agent"] = "airflow-client/2.9", ["x-request-id"] = "b7a1c0de",
                     ["accept"] = "application/json", ["x-forwarded-for"] = "10.1.2.3",
                 })
        {
            http.Headers[k] = v;
        }
        http.Body = """{"conf":{"date":"2026-11-23"},"note":"manual"}""";
        return new CheckRequest
        {
            Attributes = new AttributeContext
            {
                Request = new AttributeContext.Types.Request { Http = http },
                Source = new AttributeContext.Types.Peer
                {
                    Address = new Envoy.Config.Core.V3.Address { SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = "10.1.2.3", PortValue = 51234 } },
                },
            },
        };
    }
}
