using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// What a request to Airflow's own REST API does: <c>input.airflow.api</c>.
/// </summary>
/// <param name="Version"><c>v1</c> (Airflow 2) or <c>v2</c> (Airflow 3).</param>
/// <param name="Resource">
/// The collection the matched path template addresses (<c>dags</c>, <c>dagRuns</c>,
/// <c>taskInstances</c>, <c>connections</c>, <c>variables</c>, …), or <see cref="AirflowApiClassifier.Unknown"/>
/// when no template of the version's specification matches the path and method.
/// </param>
/// <param name="Action"><c>read</c>, <c>create</c>, <c>update</c>, <c>delete</c> or <c>trigger</c>; null when the path or method is not in the specification (policies then deny).</param>
public sealed record AirflowApiCall(string Version, string Resource, string? Action)
{
    /// <summary>The matched template relative to the version root, as the specification writes it (<c>/dags/{dag_id}/dagRuns</c>); null when unknown.</summary>
    public string? Template { get; init; }

    /// <summary><c>{dag_id}</c> (<c>~</c> means all DAGs, as in the API).</summary>
    public string? DagId { get; init; }

    /// <summary><c>{dag_run_id}</c> (<c>~</c> means all runs).</summary>
    public string? DagRunId { get; init; }

    /// <summary><c>{task_id}</c>.</summary>
    public string? TaskId { get; init; }

    /// <summary><c>{connection_id}</c>.</summary>
    public string? ConnectionId { get; init; }

    /// <summary><c>{variable_key}</c> (in v1 a key may hold <c>/</c>: the parameter takes the rest of the path).</summary>
    public string? VariableKey { get; init; }

    /// <summary>Every path parameter of the template by its specification name, in path order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Params { get; init; } = [];

    /// <summary>The Rego object; absent fields are left out.</summary>
    public RegoObject ToRego()
    {
        var b = new RegoObject.Builder(10).Add("version", RegoValue.From(Version)).Add("resource", RegoValue.From(Resource));
        Add(b, "action", Action);
        Add(b, "template", Template);
        Add(b, "dag_id", DagId);
        Add(b, "dag_run_id", DagRunId);
        Add(b, "task_id", TaskId);
        Add(b, "connection_id", ConnectionId);
        Add(b, "variable_key", VariableKey);
        if (Params.Count > 0)
        {
            var p = new RegoObject.Builder(Params.Count);
            foreach (var (k, v) in Params)
            {
                p.Add(k, RegoValue.From(v));
            }
            b.Add("params", p.Build());
        }
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
/// by matching the method and the decoded path segments against the path templates of the two
/// OpenAPI specifications (Airflow 2's stable API v1, Airflow 3's public API v2).
/// </summary>
/// <remarks>
/// <para>Matching, as Airflow's routers match: the decoded path is split at every <c>/</c> (an
/// encoded <c>%2F</c> is a separator to Airflow, which routes on the decoded path); a literal
/// segment matches exactly and case-sensitively; <c>{param}</c> matches one non-empty segment
/// (an integer parameter only an integer); a <c>format: path</c> parameter (v1's
/// <c>{variable_key}</c> and dataset <c>{uri}</c>) takes the rest of the path, joined by
/// <c>/</c>. Only templates that define the method count (<c>HEAD</c> counts as <c>GET</c>); when
/// several match, the one with a literal at the first position where they differ wins (a typed
/// parameter before a string, a string before a path). One trailing <c>/</c> is ignored. A path
/// with a <c>.</c> or <c>..</c> segment, a control character, an empty segment outside a path
/// parameter, or no matching template with that method is <see cref="Unknown"/> with no action.</para>
/// <para>Actions: <c>GET</c>/<c>HEAD</c> read; <c>POST</c> create, except a DAG run under a DAG,
/// <c>assets/{id}/materialize</c> and <c>backfills</c> (trigger), <c>…/list</c> and
/// <c>backfills/dry_run</c> (read: batch reads), and <c>clear</c>, <c>clearTaskInstances</c>,
/// <c>updateTaskInstancesState</c>, <c>favorite</c>, <c>unfavorite</c> (update);
/// <c>connections/test</c> is create (it carries credentials); <c>PUT</c>/<c>PATCH</c> update
/// (a <c>dry_run</c> PATCH is read); <c>DELETE</c> delete.</para>
/// <para>Ids: <c>dag_id</c>, <c>dag_run_id</c>, <c>task_id</c>, <c>connection_id</c>,
/// <c>variable_key</c> from the parameters of those names (v2 <c>dagSources/{dag_id}</c> too);
/// v1's literal <c>dags/~</c> and <c>dagRuns/~</c> give <c>~</c>.</para>
/// </remarks>
public sealed class AirflowApiClassifier
{
    /// <summary>The resource of a request to the API that no template of its version matches.</summary>
    public const string Unknown = "unknown";

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

    /// <summary>The call for a method and decoded path segments (leading <c>/</c> dropped), or null when the path is not under <c>{prefix}/api/v1</c> or <c>/api/v2</c>.</summary>
    public AirflowApiCall? Classify(string method, IReadOnlyList<string> path)
    {
        var seg = Split(path);
        var p = _prefix.Length;
        if (seg.Count < p + 2)
        {
            return null;
        }
        for (var i = 0; i < p; i++)
        {
            if (!string.Equals(seg[i], _prefix[i], StringComparison.Ordinal))
            {
                return null;
            }
        }
        if (seg[p] != "api" || seg[p + 1] is not ("v1" or "v2"))
        {
            return null;
        }
        var version = seg[p + 1];
        seg.RemoveRange(0, p + 2);
        if (seg.Count > 0 && seg[^1].Length == 0)
        {
            seg.RemoveAt(seg.Count - 1); // one trailing slash
        }
        var unknown = new AirflowApiCall(version, Unknown, null);
        if (seg.Count == 0 || seg.Exists(s => s is "." or ".." || s.Any(char.IsControl)))
        {
            return unknown;
        }

        var lookup = method == "HEAD" ? "GET" : method;
        ApiTemplate? best = null;
        foreach (var t in version == "v1" ? AirflowApiTemplates.V1 : AirflowApiTemplates.V2)
        {
            if (t.Actions.ContainsKey(lookup) && t.Matches(seg) && (best is null || t.MoreSpecificThan(best)))
            {
                best = t;
            }
        }
        if (best is null)
        {
            return unknown;
        }

        var values = best.Bind(seg);
        string? Value(string name)
        {
            foreach (var (k, v) in values)
            {
                if (k == name)
                {
                    return v;
                }
            }
            return null;
        }
        return new AirflowApiCall(version, best.Resource, best.Actions[lookup])
        {
            Template = best.Text,
            DagId = best.FixedDagId ?? Value("dag_id"),
            DagRunId = best.FixedDagRunId ?? Value("dag_run_id"),
            TaskId = Value("task_id"),
            ConnectionId = Value("connection_id"),
            VariableKey = Value("variable_key"),
            Params = values,
        };
    }

    /// <summary>The segments with any <c>/</c> inside one (a decoded <c>%2F</c>) made a separator, as Airflow's routers see them.</summary>
    private static List<string> Split(IReadOnlyList<string> path)
    {
        var result = new List<string>(path.Count + 2);
        foreach (var s in path)
        {
            if (s.Contains('/', StringComparison.Ordinal))
            {
                result.AddRange(s.Split('/'));
            }
            else
            {
                result.Add(s);
            }
        }
        return result;
    }

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
