using EnvoyAuthz.Airflow;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>A source with a given snapshot and trust, for catalog and stage tests.</summary>
internal sealed class FixedSource(string name, ConnectionSnapshot? snapshot, bool trusted = true) : IConnectionSource
{
    public string Name => name;
    public ConnectionSnapshot? Current { get; set; } = snapshot;
    public bool Trusted { get; set; } = trusted;
    public bool IsTrusted(DateTimeOffset now) => Trusted && Current is not null;
}

internal static class AirflowTestSupport
{
    /// <summary>A logger whose every line (formatted message and structured state) is kept.</summary>
    public static (FakeLogCollector Collector, ILogger<T> Logger) Logger<T>()
    {
        var collector = new FakeLogCollector();
        return (collector, new FakeLogger<T>(collector));
    }

    /// <summary>Every log line with its state, for "never in any log" assertions.</summary>
    public static string AllText(FakeLogCollector collector) =>
        string.Join('\n', collector.GetSnapshot().Select(r =>
            $"{r.Level} {r.Message} {string.Join(",", r.StructuredState?.Select(kv => kv.Key + "=" + kv.Value) ?? [])} {r.Exception}"));

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "envoyauthz-airflow-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
