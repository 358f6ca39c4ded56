using EnvoyAuthz.Pipeline;
using Prometheus;

namespace EnvoyAuthz.Observability;

/// <summary>
/// The metric catalogue. Label values come only from configuration names (issuer names, stage
/// names) and the fixed reason codes — never from request data. One instance per host, on its own
/// registry, so several hosts in one process (tests) do not share counters.
/// </summary>
public sealed class AuthzMetrics
{
    /// <summary>Stage names used as <c>stage</c> label values.</summary>
    public static class Stages
    {
        /// <summary>CheckRequest parsing.</summary>
        public const string Request = "request";
        /// <summary>Token validation.</summary>
        public const string Identity = "identity";
        /// <summary>Airflow context.</summary>
        public const string Airflow = "airflow";
        /// <summary>Policy evaluation.</summary>
        public const string Policy = "policy";
        /// <summary>Response building.</summary>
        public const string Response = "response";
    }

    /// <summary>Sub-millisecond to one second.</summary>
    private static readonly double[] LatencyBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    /// <summary>Creates the catalogue on <paramref name="registry"/>.</summary>
    public AuthzMetrics(CollectorRegistry registry)
    {
        Registry = registry;
        DotNetStats.Register(registry); // process_* and dotnet_* (memory, CPU, GC, threads) for the same scrape
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        Checks = f.CreateCounter("envoy_authz_checks_total", "Check decisions, by decision and reason code.",
            new CounterConfiguration { LabelNames = ["decision", "reason"] });
        CheckDuration = f.CreateHistogram("envoy_authz_check_duration_seconds", "Time to answer one Check, by decision.",
            new HistogramConfiguration { LabelNames = ["decision"], Buckets = LatencyBuckets });
        StageDuration = f.CreateHistogram("envoy_authz_stage_duration_seconds", "Time spent in each stage of a Check.",
            new HistogramConfiguration { LabelNames = ["stage"], Buckets = LatencyBuckets });
        TokenValidations = f.CreateCounter("envoy_authz_token_validations_total", "Token validations, by configured issuer name and result.",
            new CounterConfiguration { LabelNames = ["issuer", "result"] });
        JwksRefreshes = f.CreateCounter("envoy_authz_jwks_refreshes_total", "Discovery/JWKS fetches, by configured issuer name and result.",
            new CounterConfiguration { LabelNames = ["issuer", "result"] });
        Inflight = f.CreateGauge("envoy_authz_inflight_checks", "Checks being answered right now.");
        PolicyReloads = f.CreateCounter("envoy_authz_policy_reloads_total", "Policy (re)loads, by result.",
            new CounterConfiguration { LabelNames = ["result"] });
        TokenCacheEntries = f.CreateGauge("envoy_authz_token_cache_entries", "Validated tokens currently cached.");
        CircuitState = f.CreateGauge("envoy_authz_circuit_state", "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
            new GaugeConfiguration { LabelNames = ["dependency"] });
        DependencyRequests = f.CreateCounter("envoy_authz_dependency_requests_total", "Calls to dependencies, by dependency and result (success, failure, timeout, circuit_open, cancelled).",
            new CounterConfiguration { LabelNames = ["dependency", "result"] });
        Shed = f.CreateCounter("envoy_authz_shed_total", "Checks shed under overload, by cause (queue_full, queue_timeout, deadline).",
            new CounterConfiguration { LabelNames = ["cause"] });
        RateLimited = f.CreateCounter("envoy_authz_rate_limited_total", "Checks denied by a rate limit, by configured rule.",
            new CounterConfiguration { LabelNames = ["rule"] });
        RateLimitFallbacks = f.CreateCounter("envoy_authz_rate_limit_fallbacks_total", "Rate-limit decisions taken locally because the shared (Redis) backend was unavailable.");
        Cancelled = f.CreateCounter("envoy_authz_checks_cancelled_total", "Checks the caller cancelled (reset the stream) before an answer: nothing was answered, so they are not in envoy_authz_checks_total.");
        foreach (var cause in new[] { "queue_full", "queue_timeout", "deadline" })
        {
            Shed.WithLabels(cause);
        }

        // Pre-create the fixed series so dashboards see zeros rather than gaps.
        foreach (var reason in ReasonCodes.All)
        {
            Checks.WithLabels(reason == "allowed" ? "allow" : "deny", reason);
        }
        CheckDuration.WithLabels("allow");
        CheckDuration.WithLabels("deny");
        foreach (var stage in new[] { Stages.Request, Stages.Identity, Stages.Airflow, Stages.Policy, Stages.Response })
        {
            StageDuration.WithLabels(stage);
        }
    }

    /// <summary>The registry <c>/metrics</c> serves.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary><c>envoy_authz_checks_total{decision,reason}</c>.</summary>
    public Counter Checks { get; }
    /// <summary><c>envoy_authz_check_duration_seconds{decision}</c>.</summary>
    public Histogram CheckDuration { get; }
    /// <summary><c>envoy_authz_stage_duration_seconds{stage}</c>.</summary>
    public Histogram StageDuration { get; }
    /// <summary><c>envoy_authz_token_validations_total{issuer,result}</c>.</summary>
    public Counter TokenValidations { get; }
    /// <summary><c>envoy_authz_jwks_refreshes_total{issuer,result}</c>.</summary>
    public Counter JwksRefreshes { get; }
    /// <summary><c>envoy_authz_inflight_checks</c>.</summary>
    public Gauge Inflight { get; }
    /// <summary><c>envoy_authz_policy_reloads_total{result}</c>.</summary>
    public Counter PolicyReloads { get; }
    /// <summary><c>envoy_authz_token_cache_entries</c>.</summary>
    public Gauge TokenCacheEntries { get; }
    /// <summary><c>envoy_authz_circuit_state{dependency}</c>.</summary>
    public Gauge CircuitState { get; }
    /// <summary><c>envoy_authz_dependency_requests_total{dependency,result}</c>.</summary>
    public Counter DependencyRequests { get; }
    /// <summary><c>envoy_authz_shed_total{cause}</c>.</summary>
    public Counter Shed { get; }
    /// <summary><c>envoy_authz_rate_limited_total{rule}</c>.</summary>
    public Counter RateLimited { get; }
    /// <summary><c>envoy_authz_rate_limit_fallbacks_total</c>.</summary>
    public Counter RateLimitFallbacks { get; }
    /// <summary><c>envoy_authz_checks_cancelled_total</c>.</summary>
    public Counter Cancelled { get; }

    /// <summary>Records one finished Check.</summary>
    public void RecordCheck(bool allowed, ReasonCode reason, double seconds)
    {
        var decision = allowed ? "allow" : "deny";
        Checks.WithLabels(decision, reason.ToWire()).Inc();
        CheckDuration.WithLabels(decision).Observe(seconds);
    }
}
