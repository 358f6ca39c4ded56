using EnvoyAuthz.Observability;
using Prometheus;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// The Airflow stage's metrics, on the host's registry. Label values are only the fixed source
/// names (<c>file</c>, <c>env</c>, <c>api</c>) and results (<c>success</c>, <c>failure</c>).
/// </summary>
public sealed class AirflowMetrics
{
    private readonly List<IConnectionSource> _sources = [];
    private readonly TimeProvider _time;

    /// <summary>Creates the metrics on <paramref name="metrics"/>' registry.</summary>
    public AirflowMetrics(AuthzMetrics metrics, TimeProvider time)
    {
        _time = time;
        var f = Prometheus.Metrics.WithCustomRegistry(metrics.Registry);
        Refreshes = f.CreateCounter("envoy_authz_airflow_connection_refreshes_total",
            "Airflow connection (re)loads, by source (file, env, api) and result (success, failure).",
            new CounterConfiguration { LabelNames = ["source", "result"] });
        Connections = f.CreateGauge("envoy_authz_airflow_connections",
            "Airflow connections in the last good copy, by source.", new GaugeConfiguration { LabelNames = ["source"] });
        Age = f.CreateGauge("envoy_authz_airflow_connections_age_seconds",
            "Age of the last good copy of Airflow connections, by source (-1 before the first load).", new GaugeConfiguration { LabelNames = ["source"] });
        Trusted = f.CreateGauge("envoy_authz_airflow_connections_trusted",
            "1 when a source's connections are loaded and within their max age, else 0.", new GaugeConfiguration { LabelNames = ["source"] });
        metrics.Registry.AddBeforeCollectCallback(Update);
    }

    /// <summary><c>envoy_authz_airflow_connection_refreshes_total{source,result}</c>.</summary>
    public Counter Refreshes { get; }
    /// <summary><c>envoy_authz_airflow_connections{source}</c>.</summary>
    public Gauge Connections { get; }
    /// <summary><c>envoy_authz_airflow_connections_age_seconds{source}</c>.</summary>
    public Gauge Age { get; }
    /// <summary><c>envoy_authz_airflow_connections_trusted{source}</c>.</summary>
    public Gauge Trusted { get; }

    /// <summary>Tracks <paramref name="source"/> in the gauges; pre-creates its series.</summary>
    public void Track(IConnectionSource source)
    {
        lock (_sources)
        {
            _sources.Add(source);
        }
        Refreshes.WithLabels(source.Name, "success");
        Refreshes.WithLabels(source.Name, "failure");
    }

    /// <summary>Counts one (re)load.</summary>
    public void Refreshed(string source, bool success) => Refreshes.WithLabels(source, success ? "success" : "failure").Inc();

    private void Update()
    {
        var now = _time.GetUtcNow();
        lock (_sources)
        {
            foreach (var s in _sources)
            {
                var snap = s.Current;
                Connections.WithLabels(s.Name).Set(snap?.Count ?? 0);
                Age.WithLabels(s.Name).Set(snap is null ? -1 : (now - snap.LoadedAt).TotalSeconds);
                Trusted.WithLabels(s.Name).Set(s.IsTrusted(now) ? 1 : 0);
            }
        }
    }
}
