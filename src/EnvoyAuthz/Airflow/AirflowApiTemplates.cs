namespace EnvoyAuthz.Airflow;

/// <summary>
/// The path templates of Airflow's REST API, per version, with the methods each defines, the
/// action of each method and the collection it addresses. Facts from the published OpenAPI
/// specifications (Airflow 2.10 <c>/api/v1</c>, Airflow 3 <c>/api/v2</c>); a test checks this
/// table against the specification files, template by template and method by method.
/// </summary>
/// <remarks>
/// Written as the specifications write them, relative to the version root, with the parameter's
/// kind where it is not a plain string: <c>{name:int}</c> (schema type integer) and
/// <c>{name:path}</c> (<c>format: path</c>: it takes the rest of the path), and <c>{name=value}</c>
/// for a parameter whose schema allows one value (<c>const</c>). Methods: <c>GET</c> is
/// read, <c>POST</c> create, <c>PUT</c>/<c>PATCH</c> update, <c>DELETE</c> delete, unless
/// written <c>METHOD=action</c>.
/// </remarks>
internal static class AirflowApiTemplates
{
    private const string TaskInstance = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}";

    /// <summary>Airflow 2, <c>/api/v1</c>.</summary>
    public static readonly IReadOnlyList<ApiTemplate> V1 =
    [
        new("/config", "config", "GET"),
        new("/config/section/{section}/option/{option}", "config", "GET"),
        new("/connections", "connections", "GET POST"),
        new("/connections/test", "connections", "POST"),
        new("/connections/{connection_id}", "connections", "GET PATCH DELETE"),
        new("/dagSources/{file_token}", "dagSources", "GET"),
        new("/dagStats", "dagStats", "GET"),
        new("/dagWarnings", "dagWarnings", "GET"),
        new("/dags", "dags", "GET PATCH"),
        new("/dags/{dag_id}", "dags", "GET PATCH DELETE"),
        new("/dags/{dag_id}/clearTaskInstances", "taskInstances", "POST=update"),
        new("/dags/{dag_id}/dagRuns", "dagRuns", "GET POST=trigger"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}", "dagRuns", "GET PATCH DELETE"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/clear", "dagRuns", "POST=update"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/setNote", "dagRuns", "PATCH"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", "taskInstances", "GET"),
        new(TaskInstance, "taskInstances", "GET PATCH"),
        new(TaskInstance + "/dependencies", "taskInstances", "GET"),
        new(TaskInstance + "/links", "taskInstances", "GET"),
        new(TaskInstance + "/listMapped", "taskInstances", "GET"),
        new(TaskInstance + "/logs/{task_try_number:int}", "logs", "GET"),
        new(TaskInstance + "/setNote", "taskInstances", "PATCH"),
        new(TaskInstance + "/tries", "tries", "GET"),
        new(TaskInstance + "/tries/{task_try_number:int}", "tries", "GET"),
        new(TaskInstance + "/xcomEntries", "xcomEntries", "GET"),
        new(TaskInstance + "/xcomEntries/{xcom_key}", "xcomEntries", "GET"),
        new(TaskInstance + "/{map_index:int}", "taskInstances", "GET PATCH"),
        new(TaskInstance + "/{map_index:int}/dependencies", "taskInstances", "GET"),
        new(TaskInstance + "/{map_index:int}/setNote", "taskInstances", "PATCH"),
        new(TaskInstance + "/{map_index:int}/tries", "tries", "GET"),
        new(TaskInstance + "/{map_index:int}/tries/{task_try_number:int}", "tries", "GET"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/upstreamDatasetEvents", "upstreamDatasetEvents", "GET"),
        new("/dags/{dag_id}/datasets/queuedEvent", "queuedEvent", "GET DELETE"),
        new("/dags/{dag_id}/datasets/queuedEvent/{uri:path}", "queuedEvent", "GET DELETE"),
        new("/dags/{dag_id}/details", "dags", "GET"),
        new("/dags/{dag_id}/tasks", "tasks", "GET"),
        new("/dags/{dag_id}/tasks/{task_id}", "tasks", "GET"),
        new("/dags/{dag_id}/updateTaskInstancesState", "taskInstances", "POST=update"),
        new("/dags/~/dagRuns/list", "dagRuns", "POST=read"),
        new("/dags/~/dagRuns/~/taskInstances/list", "taskInstances", "POST=read"),
        new("/datasets", "datasets", "GET"),
        new("/datasets/events", "events", "GET POST"),
        new("/datasets/queuedEvent/{uri:path}", "queuedEvent", "GET DELETE"),
        new("/datasets/{uri:path}", "datasets", "GET"),
        new("/eventLogs", "eventLogs", "GET"),
        new("/eventLogs/{event_log_id:int}", "eventLogs", "GET"),
        new("/health", "health", "GET"),
        new("/importErrors", "importErrors", "GET"),
        new("/importErrors/{import_error_id:int}", "importErrors", "GET"),
        new("/parseDagFile/{file_token}", "parseDagFile", "PUT"),
        new("/permissions", "permissions", "GET"),
        new("/plugins", "plugins", "GET"),
        new("/pools", "pools", "GET POST"),
        new("/pools/{pool_name}", "pools", "GET PATCH DELETE"),
        new("/providers", "providers", "GET"),
        new("/roles", "roles", "GET POST"),
        new("/roles/{role_name}", "roles", "GET PATCH DELETE"),
        new("/users", "users", "GET POST"),
        new("/users/{username}", "users", "GET PATCH DELETE"),
        new("/variables", "variables", "GET POST"),
        new("/variables/{variable_key:path}", "variables", "GET PATCH DELETE"),
        new("/version", "version", "GET"),
    ];

    /// <summary>Airflow 3, <c>/api/v2</c>.</summary>
    public static readonly IReadOnlyList<ApiTemplate> V2 =
    [
        new("/assets", "assets", "GET"),
        new("/assets/aliases", "aliases", "GET"),
        new("/assets/aliases/{asset_alias_id:int}", "aliases", "GET"),
        new("/assets/events", "events", "GET POST"),
        new("/assets/{asset_id:int}", "assets", "GET"),
        new("/assets/{asset_id:int}/materialize", "assets", "POST=trigger"),
        new("/assets/{asset_id:int}/queuedEvents", "queuedEvents", "GET DELETE"),
        new("/auth/login", "auth", "GET"),
        new("/auth/logout", "auth", "GET"),
        new("/backfills", "backfills", "GET POST=trigger"),
        new("/backfills/dry_run", "backfills", "POST=read"),
        new("/backfills/{backfill_id:int}", "backfills", "GET"),
        new("/backfills/{backfill_id:int}/cancel", "backfills", "PUT"),
        new("/backfills/{backfill_id:int}/pause", "backfills", "PUT"),
        new("/backfills/{backfill_id:int}/unpause", "backfills", "PUT"),
        new("/config", "config", "GET"),
        new("/config/section/{section}/option/{option}", "config", "GET"),
        new("/connections", "connections", "GET POST PATCH"),
        new("/connections/defaults", "connections", "POST"),
        new("/connections/test", "connections", "POST"),
        new("/connections/{connection_id}", "connections", "GET PATCH DELETE"),
        new("/dagSources/{dag_id}", "dagSources", "GET"),
        new("/dagStats", "dagStats", "GET"),
        new("/dagTags", "dagTags", "GET"),
        new("/dagWarnings", "dagWarnings", "GET"),
        new("/dags", "dags", "GET PATCH"),
        new("/dags/{dag_id}", "dags", "GET PATCH DELETE"),
        new("/dags/{dag_id}/assets/queuedEvents", "queuedEvents", "GET DELETE"),
        new("/dags/{dag_id}/assets/{asset_id:int}/queuedEvents", "queuedEvents", "GET DELETE"),
        new("/dags/{dag_id}/clearTaskInstances", "taskInstances", "POST=update"),
        new("/dags/{dag_id}/dagRuns", "dagRuns", "GET POST=trigger"),
        new("/dags/{dag_id=~}/dagRuns/list", "dagRuns", "POST=read"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}", "dagRuns", "GET PATCH DELETE"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/clear", "dagRuns", "POST=update"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/hitlDetails", "hitlDetails", "GET"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", "taskInstances", "GET PATCH"),
        new("/dags/{dag_id=~}/dagRuns/{dag_run_id=~}/taskInstances/list", "taskInstances", "POST=read"),
        new(TaskInstance, "taskInstances", "GET PATCH DELETE"),
        new(TaskInstance + "/dependencies", "taskInstances", "GET"),
        new(TaskInstance + "/dry_run", "taskInstances", "PATCH=read"),
        new(TaskInstance + "/externalLogUrl/{try_number:int}", "logs", "GET"),
        new(TaskInstance + "/links", "taskInstances", "GET"),
        new(TaskInstance + "/listMapped", "taskInstances", "GET"),
        new(TaskInstance + "/logs/{try_number:int}", "logs", "GET"),
        new(TaskInstance + "/tries", "tries", "GET"),
        new(TaskInstance + "/tries/{task_try_number:int}", "tries", "GET"),
        new(TaskInstance + "/xcomEntries", "xcomEntries", "GET POST"),
        new(TaskInstance + "/xcomEntries/{xcom_key}", "xcomEntries", "GET PATCH DELETE"),
        new(TaskInstance + "/{map_index:int}", "taskInstances", "GET PATCH"),
        new(TaskInstance + "/{map_index:int}/dependencies", "taskInstances", "GET"),
        new(TaskInstance + "/{map_index:int}/dry_run", "taskInstances", "PATCH=read"),
        new(TaskInstance + "/{map_index:int}/hitlDetails", "hitlDetails", "GET PATCH"),
        new(TaskInstance + "/{map_index:int}/hitlDetails/tries/{try_number:int}", "hitlDetails", "GET"),
        new(TaskInstance + "/{map_index:int}/tries", "tries", "GET"),
        new(TaskInstance + "/{map_index:int}/tries/{task_try_number:int}", "tries", "GET"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/upstreamAssetEvents", "upstreamAssetEvents", "GET"),
        new("/dags/{dag_id}/dagRuns/{dag_run_id}/wait", "dagRuns", "GET"),
        new("/dags/{dag_id}/dagVersions", "dagVersions", "GET"),
        new("/dags/{dag_id}/dagVersions/{version_number:int}", "dagVersions", "GET"),
        new("/dags/{dag_id}/details", "dags", "GET"),
        new("/dags/{dag_id}/favorite", "dags", "POST=update"),
        new("/dags/{dag_id}/tasks", "tasks", "GET"),
        new("/dags/{dag_id}/tasks/{task_id}", "tasks", "GET"),
        new("/dags/{dag_id}/unfavorite", "dags", "POST=update"),
        new("/eventLogs", "eventLogs", "GET"),
        new("/eventLogs/{event_log_id:int}", "eventLogs", "GET"),
        new("/importErrors", "importErrors", "GET"),
        new("/importErrors/{import_error_id:int}", "importErrors", "GET"),
        new("/jobs", "jobs", "GET"),
        new("/monitor/health", "health", "GET"),
        new("/parseDagFile/{file_token}", "parseDagFile", "PUT"),
        new("/plugins", "plugins", "GET"),
        new("/plugins/importErrors", "plugins", "GET"),
        new("/pools", "pools", "GET POST PATCH"),
        new("/pools/{pool_name}", "pools", "GET PATCH DELETE"),
        new("/providers", "providers", "GET"),
        new("/variables", "variables", "GET POST PATCH"),
        new("/variables/{variable_key}", "variables", "GET PATCH DELETE"),
        new("/version", "version", "GET"),
    ];
}

/// <summary>The kind of one template segment, in order of preference when templates overlap.</summary>
internal enum ApiSegmentKind
{
    /// <summary>Literal text, matched exactly.</summary>
    Literal,
    /// <summary>A parameter with one allowed value (<c>const</c>), matched exactly.</summary>
    Const,
    /// <summary>An integer parameter: one segment of an optional <c>-</c> and 1–18 ASCII digits.</summary>
    Int,
    /// <summary>A string parameter: one non-empty segment.</summary>
    String,
    /// <summary>A <c>format: path</c> parameter: the rest of the path (first segment non-empty).</summary>
    Path,
}

/// <summary>One segment of a template: a literal (<paramref name="Text"/>), or a parameter named <paramref name="Text"/> of a kind (and its one value for <see cref="ApiSegmentKind.Const"/>).</summary>
internal readonly record struct ApiSegment(ApiSegmentKind Kind, string Text, string? Value = null);

/// <summary>One path template with its methods, their actions and the resource it addresses.</summary>
internal sealed class ApiTemplate
{
    /// <summary>Parses <paramref name="template"/> (see <see cref="AirflowApiTemplates"/>).</summary>
    public ApiTemplate(string template, string resource, string methods)
    {
        Resource = resource;
        var parts = template.TrimStart('/').Split('/');
        Segments = new ApiSegment[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            var s = parts[i];
            if (s.StartsWith('{') && s.EndsWith('}'))
            {
                var inner = s[1..^1];
                var eq = inner.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    Segments[i] = new ApiSegment(ApiSegmentKind.Const, inner[..eq], inner[(eq + 1)..]);
                    continue;
                }
                var colon = inner.IndexOf(':', StringComparison.Ordinal);
                var kind = colon < 0 ? ApiSegmentKind.String : inner[(colon + 1)..] switch
                {
                    "int" => ApiSegmentKind.Int,
                    "path" => ApiSegmentKind.Path,
                    var k => throw new ArgumentException($"unknown parameter kind '{k}' in {template}", nameof(template)),
                };
                if (kind == ApiSegmentKind.Path && i != parts.Length - 1)
                {
                    throw new ArgumentException($"a path parameter must end the template: {template}", nameof(template));
                }
                Segments[i] = new ApiSegment(kind, colon < 0 ? inner : inner[..colon]);
            }
            else
            {
                Segments[i] = new ApiSegment(ApiSegmentKind.Literal, s);
                if (s == "~" && i > 0)
                {
                    if (parts[i - 1] == "dags")
                    {
                        FixedDagId = "~";
                    }
                    else if (parts[i - 1] == "dagRuns")
                    {
                        FixedDagRunId = "~";
                    }
                }
            }
        }
        Text = "/" + string.Join('/', Segments.Select(s => s.Kind == ApiSegmentKind.Literal ? s.Text : "{" + s.Text + "}"));
        var actions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in methods.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = m.IndexOf('=', StringComparison.Ordinal);
            var method = eq < 0 ? m : m[..eq];
            actions[method] = eq >= 0 ? m[(eq + 1)..] : method switch
            {
                "GET" => "read",
                "POST" => "create",
                "PUT" or "PATCH" => "update",
                "DELETE" => "delete",
                _ => throw new ArgumentException($"unknown method '{method}' in {template}", nameof(methods)),
            };
        }
        Actions = actions;
    }

    /// <summary>The template as the specification writes it (<c>/dags/{dag_id}</c>).</summary>
    public string Text { get; }

    /// <summary>The collection addressed.</summary>
    public string Resource { get; }

    /// <summary>Method → action, for the methods the template defines.</summary>
    public IReadOnlyDictionary<string, string> Actions { get; }

    /// <summary>The segments.</summary>
    public ApiSegment[] Segments { get; }

    /// <summary><c>~</c> when the template has the literal <c>dags/~</c>.</summary>
    public string? FixedDagId { get; }

    /// <summary><c>~</c> when the template has the literal <c>dagRuns/~</c>.</summary>
    public string? FixedDagRunId { get; }

    /// <summary>Whether the template matches the path segments (no dot segments, no control characters).</summary>
    public bool Matches(List<string> path)
    {
        var i = 0;
        foreach (var s in Segments)
        {
            if (i >= path.Count)
            {
                return false;
            }
            var p = path[i];
            switch (s.Kind)
            {
                case ApiSegmentKind.Literal when !string.Equals(p, s.Text, StringComparison.Ordinal):
                case ApiSegmentKind.Const when !string.Equals(p, s.Value, StringComparison.Ordinal):
                case ApiSegmentKind.Int when !IsInteger(p):
                case ApiSegmentKind.String or ApiSegmentKind.Path when p.Length == 0:
                    return false;
                case ApiSegmentKind.Path:
                    return true;
            }
            i++;
        }
        return i == path.Count;
    }

    /// <summary>The parameters' values for a path the template <see cref="Matches"/>.</summary>
    public List<KeyValuePair<string, string>> Bind(List<string> path)
    {
        var values = new List<KeyValuePair<string, string>>();
        for (var i = 0; i < Segments.Length; i++)
        {
            var s = Segments[i];
            if (s.Kind == ApiSegmentKind.Literal)
            {
                continue;
            }
            values.Add(new(s.Text, s.Kind == ApiSegmentKind.Path ? string.Join('/', path.Skip(i)) : path[i]));
        }
        return values;
    }

    /// <summary>Whether this template is preferred over <paramref name="other"/> when both match: the better kind at the first position where they differ.</summary>
    public bool MoreSpecificThan(ApiTemplate other)
    {
        var n = Math.Min(Segments.Length, other.Segments.Length);
        for (var i = 0; i < n; i++)
        {
            var a = Rank(Segments[i].Kind);
            var b = Rank(other.Segments[i].Kind);
            if (a != b)
            {
                return a < b;
            }
        }
        return false;
    }

    private static ApiSegmentKind Rank(ApiSegmentKind kind) => kind == ApiSegmentKind.Const ? ApiSegmentKind.Literal : kind;

    private static bool IsInteger(string s)
    {
        var digits = s.StartsWith('-') ? s.AsSpan(1) : s.AsSpan();
        return digits.Length is > 0 and <= 18 && !digits.ContainsAnyExceptInRange('0', '9');
    }
}
