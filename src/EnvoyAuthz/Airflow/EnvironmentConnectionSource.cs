using System.Collections;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from <c>AIRFLOW_CONN_{CONN_ID}</c> environment variables, read once at start, in
/// both forms Airflow accepts: a JSON object (the value starts with <c>{</c>) or a URI (see
/// <see cref="ConnectionParser"/>). The id is the variable's suffix lowercased, and is matched
/// ignoring case, because Airflow finds a connection <c>my_db</c> under <c>AIRFLOW_CONN_MY_DB</c>.
/// A variable that does not parse is skipped with a warning naming the variable, never its value.
/// </summary>
public sealed class EnvironmentConnectionSource : IConnectionSource
{
    /// <summary>The variable prefix.</summary>
    public const string Prefix = "AIRFLOW_CONN_";

    private readonly ConnectionSnapshot _current;

    /// <summary>Reads the process environment.</summary>
    public EnvironmentConnectionSource(SensitiveKeys sensitive, TimeProvider time, AirflowMetrics? metrics, ILogger logger)
        : this(ReadEnvironment(), sensitive, time, metrics, logger)
    {
    }

    /// <summary>Reads <paramref name="variables"/> (name → value).</summary>
    public EnvironmentConnectionSource(IEnumerable<KeyValuePair<string, string>> variables, SensitiveKeys sensitive, TimeProvider time,
        AirflowMetrics? metrics, ILogger logger)
    {
        var list = new List<AirflowConnection>();
        var skipped = 0;
        foreach (var (name, value) in variables.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal) || name.Length == Prefix.Length)
            {
                continue;
            }
            var id = name[Prefix.Length..].ToLowerInvariant();
            var conn = Parse(id, value, sensitive, out var problem);
            if (conn is null)
            {
                skipped++;
                AirflowLog.ConnectionSkipped(logger, name, Name, problem ?? "unreadable");
                continue;
            }
            if (problem is not null)
            {
                AirflowLog.ConnectionExtraIgnored(logger, name, Name, problem);
            }
            list.Add(conn);
        }
        _current = new ConnectionSnapshot(list, time.GetUtcNow(), caseInsensitiveIds: true);
        metrics?.Track(this);
        metrics?.Refreshed(Name, true);
        AirflowLog.EnvironmentLoaded(logger, list.Count, skipped);
    }

    /// <summary>Parses one variable's value.</summary>
    public static AirflowConnection? Parse(string connId, string value, SensitiveKeys sensitive, out string? problem) =>
        value.TrimStart().StartsWith('{')
            ? ConnectionParser.ParseJson(connId, value, sensitive, out problem)
            : ConnectionParser.ParseUri(connId, value, sensitive, out problem);

    /// <inheritdoc />
    public string Name => "env";

    /// <inheritdoc />
    public ConnectionSnapshot? Current => _current;

    /// <inheritdoc />
    public bool IsTrusted(DateTimeOffset now) => true;

    private static List<KeyValuePair<string, string>> ReadEnvironment()
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is string k && e.Value is string v && k.StartsWith(Prefix, StringComparison.Ordinal))
            {
                result.Add(new(k, v));
            }
        }
        return result;
    }
}
