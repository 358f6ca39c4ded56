using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// What a request to Airflow's own REST API does: <c>input.airflow.api</c>.
/// </summary>
/// <param name="Version"><c>v1</c> (Airflow 2) or <c>v2</c> (Airflow 3).</param>
/// <param name="Resource">The deepest collection addressed, as named in the path (<c>dags</c>, <c>dagRuns</c>, <c>taskInstances</c>, <c>connections</c>, <c>variables</c>, …); null for a path that is not well-formed.</param>
/// <param name="Action"><c>read</c>, <c>create</c>, <c>update</c>, <c>delete</c> or <c>trigger</c>; null when the method or path is not understood (policies then deny).</param>
/// <param name="DagId"><c>{dag_id}</c> (<c>~</c> means all DAGs, as in the API).</param>
/// <param name="DagRunId"><c>{dag_run_id}</c>.</param>
/// <param name="TaskId"><c>{task_id}</c>.</param>
/// <param name="ConnectionId"><c>{connection_id}</c>.</param>
public sealed record AirflowApiCall(string Version, string? Resource, string? Action, string? DagId, string? DagRunId, string? TaskId, string? ConnectionId)
{
    /// <summary>The Rego object; absent fields are left out.</summary>
    public RegoObject ToRego()
    {
        var b = new RegoObject.Builder(7).Add("version", RegoValue.From(Version));
        Add(b, "resource", Resource);
        Add(b, "action", Action);
        Add(b, "dag_id", DagId);
        Add(b, "dag_run_id", DagRunId);
        Add(b, "task_id", TaskId);
        Add(b, "connection_id", ConnectionId);
        return b.Build();
    }

    private static void Add(RegoObject.Builder b, string key, string? value)
    {
        if (value is not null)
        {
            b.Add(key, RegoValue.From(value));
        }
    }
}

/// <summary>
/// Recognises requests to Airflow's REST API (<c>{prefix}/api/v1/…</c>, <c>{prefix}/api/v2/…</c>)
/// from the method and the decoded path segments, per the two OpenAPI specifications.
/// </summary>
/// <remarks>
/// Actions: <c>GET</c>/<c>HEAD</c> read; <c>POST</c> create, except <c>…/dagRuns</c> directly under a
/// DAG and <c>assets/{id}/materialize</c> and <c>backfills</c> (trigger), <c>…/list</c> and
/// <c>backfills/dry_run</c> (read: batch reads), and <c>clear</c>, <c>clearTaskInstances</c>,
/// <c>updateTaskInstancesState</c>, <c>favorite</c>, <c>unfavorite</c> (update);
/// <c>connections/test</c> is create (it carries credentials); <c>PUT</c>/<c>PATCH</c> update
/// (a <c>dry_run</c> PATCH is read); <c>DELETE</c> delete. A path with empty, <c>.</c> or
/// <c>..</c> segments yields only the version (no resource, no action), so policies deny it.
/// </remarks>
public sealed class AirflowApiClassifier
{
    private static readonly HashSet<string> Verbs = new(StringComparer.Ordinal)
    {
        "list", "dry_run", "test", "defaults", "clear", "clearTaskInstances", "updateTaskInstancesState", "setNote",
        "favorite", "unfavorite", "materialize", "cancel", "pause", "unpause", "details", "wait", "dependencies", "links",
        "listMapped",
    };

    private static readonly HashSet<string> UpdateVerbs = new(StringComparer.Ordinal)
    {
        "clear", "clearTaskInstances", "updateTaskInstancesState", "favorite", "unfavorite", "cancel", "pause", "unpause", "setNote",
    };

    private readonly string[] _prefix;
    private readonly HashSet<string>? _hosts;
    private readonly bool _enabled;

    /// <summary>Creates the classifier.</summary>
    public AirflowApiClassifier(AirflowIngressOptions options)
    {
        _enabled = options.Enabled;
        _prefix = options.PathPrefix.Trim('/').Length == 0 ? [] : options.PathPrefix.Trim('/').Split('/');
        _hosts = options.Hosts.Count == 0 ? null : new HashSet<string>(options.Hosts.Select(h => h.ToLowerInvariant()), StringComparer.Ordinal);
    }

    /// <summary>The call, or null when the request is not to Airflow's API.</summary>
    public AirflowApiCall? Classify(AuthzRequest request)
    {
        if (!_enabled)
        {
            return null;
        }
        if (_hosts is not null && !_hosts.Contains(HostOnly(request.Host)))
        {
            return null;
        }
        return Classify(request.Method, request.ParsedPath);
    }

    /// <summary>The call for a method and decoded path segments (leading <c>/</c> dropped), or null.</summary>
    public AirflowApiCall? Classify(string method, IReadOnlyList<string> path)
    {
        var p = _prefix.Length;
        if (path.Count < p + 2)
        {
            return null;
        }
        for (var i = 0; i < p; i++)
        {
            if (!string.Equals(path[i], _prefix[i], StringComparison.Ordinal))
            {
                return null;
            }
        }
        if (path[p] != "api" || path[p + 1] is not ("v1" or "v2"))
        {
            return null;
        }
        var version = path[p + 1];
        var seg = new List<string>(path.Count - p - 2);
        for (var i = p + 2; i < path.Count; i++)
        {
            seg.Add(path[i]);
        }
        if (seg.Count > 0 && seg[^1].Length == 0)
        {
            seg.RemoveAt(seg.Count - 1); // one trailing slash
        }
        if (seg.Count == 0 || seg.Exists(s => s.Length == 0 || s is "." or ".." || s.Any(char.IsControl)))
        {
            return new AirflowApiCall(version, null, null, null, null, null, null);
        }

        string? resource = null, verb = null, dagId = null, runId = null, taskId = null, connId = null;
        var i2 = 0;
        while (i2 < seg.Count)
        {
            var name = seg[i2];
            // Every action endpoint of both specs ends the path.
            if (resource is not null && i2 == seg.Count - 1 && Verbs.Contains(name))
            {
                verb = name;
                break;
            }
            resource = name;
            if (i2 + 1 >= seg.Count)
            {
                break;
            }
            var id = seg[i2 + 1];
            // POST …/list, connections/test, connections/defaults, backfills/dry_run sit where an id would;
            // with any other method that segment is an id (GET /connections/test reads connection "test").
            if (i2 + 1 == seg.Count - 1 && method == "POST" && id is "list" or "test" or "defaults" or "dry_run")
            {
                verb = id;
                break;
            }
            switch (name)
            {
                case "dags":
                    dagId = id;
                    break;
                case "dagRuns":
                    runId = id;
                    break;
                case "taskInstances" or "tasks":
                    taskId = id;
                    if (i2 + 2 < seg.Count && int.TryParse(seg[i2 + 2], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
                    {
                        i2++; // {map_index}
                    }
                    break;
                case "connections":
                    connId = id;
                    break;
            }
            i2 += 2;
        }
        if (seg[0] is "config")
        {
            resource = "config";
        }
        else if (verb is "clearTaskInstances" or "updateTaskInstancesState")
        {
            resource = "taskInstances";
        }
        var action = Action(method, resource, verb, seg, runId);
        return new AirflowApiCall(version, resource, action, dagId, runId, taskId, connId);
    }

    private static string? Action(string method, string? resource, string? verb, List<string> seg, string? runId) => method switch
    {
        "GET" or "HEAD" => "read",
        "POST" when verb is "list" or "dry_run" => "read",
        "POST" when verb is "materialize" => "trigger",
        "POST" when verb is null && resource == "dagRuns" && runId is null && seg.Count == 3 && seg[0] == "dags" => "trigger",
        "POST" when verb is null && resource == "backfills" && seg.Count == 1 => "trigger",
        "POST" when verb is not null && UpdateVerbs.Contains(verb) => "update",
        "POST" => "create",
        "PATCH" when verb is "dry_run" => "read",
        "PUT" or "PATCH" => "update",
        "DELETE" => "delete",
        _ => null,
    };

    internal static string HostOnly(string authority)
    {
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? authority[..(close + 1)] : authority;
        }
        var colon = authority.LastIndexOf(':');
        return colon >= 0 ? authority[..colon] : authority;
    }
}
