using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class AirflowApiClassifierTests
{
    private static readonly AirflowApiClassifier Root = new(new AirflowIngressOptions());

    /// <summary>
    /// Classify a path as <c>input.parsed_path</c> gives it (percent-decoded once, leading <c>/</c>
    /// dropped, split at <c>/</c>), without the request parser, so these tests hold whatever the
    /// parser denies before the Airflow stage runs.
    /// </summary>
    private static AirflowApiCall? Classify(string method, string path) =>
        Root.Classify(method, Uri.UnescapeDataString(path).TrimStart('/').Split('/'));

    /// <summary>Classify decoded segments directly (as a parser that keeps a decoded <c>%2F</c> inside its segment hands them over).</summary>
    private static AirflowApiCall? ClassifySegments(string method, params string[] segments) => Root.Classify(method, segments);

    [Theory]
    // method, path, version, resource, action, template, dag_id, dag_run_id, task_id, connection_id
    [InlineData("GET", "/api/v1/dags", "v1", "dags", "read", "/dags", null, null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl", "v1", "dags", "read", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("HEAD", "/api/v1/dags/etl", "v1", "dags", "read", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("PATCH", "/api/v1/dags/etl", "v1", "dags", "update", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("DELETE", "/api/v1/dags/etl", "v1", "dags", "delete", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns", "v1", "dagRuns", "trigger", "/dags/{dag_id}/dagRuns", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns", "v1", "dagRuns", "read", "/dags/{dag_id}/dagRuns", "etl", null, null, null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/manual__1", "v1", "dagRuns", "update", "/dags/{dag_id}/dagRuns/{dag_run_id}", "etl", "manual__1", null, null)]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns/r1/clear", "v1", "dagRuns", "update", "/dags/{dag_id}/dagRuns/{dag_run_id}/clear", "etl", "r1", null, null)]
    [InlineData("POST", "/api/v1/dags/~/dagRuns/list", "v1", "dagRuns", "read", "/dags/~/dagRuns/list", "~", null, null, null)]
    [InlineData("POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", "v1", "taskInstances", "read", "/dags/~/dagRuns/~/taskInstances/list", "~", "~", null, null)]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/logs/2", "v1", "logs", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{task_try_number}", "etl", "r1", "load", null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/3", "v1", "taskInstances", "update", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", "etl", "r1", "load", null)]
    [InlineData("PATCH", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/setNote", "v1", "taskInstances", "update", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/setNote", "etl", "r1", "load", null)]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns/r1/taskInstances/load/links", "v1", "taskInstances", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/links", "etl", "r1", "load", null)]
    [InlineData("POST", "/api/v1/dags/etl/clearTaskInstances", "v1", "taskInstances", "update", "/dags/{dag_id}/clearTaskInstances", "etl", null, null, null)]
    [InlineData("POST", "/api/v1/dags/etl/updateTaskInstancesState", "v1", "taskInstances", "update", "/dags/{dag_id}/updateTaskInstancesState", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/tasks/load", "v1", "tasks", "read", "/dags/{dag_id}/tasks/{task_id}", "etl", null, "load", null)]
    [InlineData("GET", "/api/v1/connections", "v1", "connections", "read", "/connections", null, null, null, null)]
    [InlineData("POST", "/api/v1/connections", "v1", "connections", "create", "/connections", null, null, null, null)]
    [InlineData("GET", "/api/v1/connections/my_db", "v1", "connections", "read", "/connections/{connection_id}", null, null, null, "my_db")]
    [InlineData("PATCH", "/api/v1/connections/my_db", "v1", "connections", "update", "/connections/{connection_id}", null, null, null, "my_db")]
    [InlineData("DELETE", "/api/v1/connections/my_db", "v1", "connections", "delete", "/connections/{connection_id}", null, null, null, "my_db")]
    [InlineData("POST", "/api/v1/connections/test", "v1", "connections", "create", "/connections/test", null, null, null, null)]
    [InlineData("GET", "/api/v1/connections/test", "v1", "connections", "read", "/connections/{connection_id}", null, null, null, "test")]
    [InlineData("GET", "/api/v1/config/section/core/option/fernet_key", "v1", "config", "read", "/config/section/{section}/option/{option}", null, null, null, null)]
    [InlineData("POST", "/api/v1/variables", "v1", "variables", "create", "/variables", null, null, null, null)]
    [InlineData("GET", "/api/v1/dags/etl/", "v1", "dags", "read", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("GET", "/api/v2/dags/etl", "v2", "dags", "read", "/dags/{dag_id}", "etl", null, null, null)]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns", "v2", "dagRuns", "trigger", "/dags/{dag_id}/dagRuns", "etl", null, null, null)]
    [InlineData("POST", "/api/v2/dags/~/dagRuns/list", "v2", "dagRuns", "read", "/dags/{dag_id}/dagRuns/list", "~", null, null, null)]
    [InlineData("GET", "/api/v2/dags/etl/dagRuns/list", "v2", "dagRuns", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}", "etl", "list", null, null)]
    [InlineData("POST", "/api/v2/dags/list/dagRuns", "v2", "dagRuns", "trigger", "/dags/{dag_id}/dagRuns", "list", null, null, null)]
    [InlineData("PATCH", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/dry_run", "v2", "taskInstances", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", "etl", "r", "t", null)]
    [InlineData("PATCH", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/0/dry_run", "v2", "taskInstances", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dry_run", "etl", "r", "t", null)]
    [InlineData("DELETE", "/api/v2/dags/etl/dagRuns/r/taskInstances/t", "v2", "taskInstances", "delete", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", "etl", "r", "t", null)]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns/r/taskInstances/t/xcomEntries", "v2", "xcomEntries", "create", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", "etl", "r", "t", null)]
    [InlineData("GET", "/api/v2/dags/etl/dagRuns/r/wait", "v2", "dagRuns", "read", "/dags/{dag_id}/dagRuns/{dag_run_id}/wait", "etl", "r", null, null)]
    [InlineData("PATCH", "/api/v2/connections", "v2", "connections", "update", "/connections", null, null, null, null)]
    [InlineData("POST", "/api/v2/connections/defaults", "v2", "connections", "create", "/connections/defaults", null, null, null, null)]
    [InlineData("POST", "/api/v2/assets/7/materialize", "v2", "assets", "trigger", "/assets/{asset_id}/materialize", null, null, null, null)]
    [InlineData("GET", "/api/v2/assets/aliases", "v2", "aliases", "read", "/assets/aliases", null, null, null, null)]
    [InlineData("POST", "/api/v2/backfills", "v2", "backfills", "trigger", "/backfills", null, null, null, null)]
    [InlineData("POST", "/api/v2/backfills/dry_run", "v2", "backfills", "read", "/backfills/dry_run", null, null, null, null)]
    [InlineData("PUT", "/api/v2/backfills/3/pause", "v2", "backfills", "update", "/backfills/{backfill_id}/pause", null, null, null, null)]
    [InlineData("POST", "/api/v2/dags/etl/favorite", "v2", "dags", "update", "/dags/{dag_id}/favorite", "etl", null, null, null)]
    // The examples of paths classified wrongly before templates.
    [InlineData("GET", "/api/v2/dagSources/etl", "v2", "dagSources", "read", "/dagSources/{dag_id}", "etl", null, null, null)]
    [InlineData("GET", "/api/v2/monitor/health", "v2", "health", "read", "/monitor/health", null, null, null, null)]
    [InlineData("DELETE", "/api/v2/dags/etl/assets/queuedEvents", "v2", "queuedEvents", "delete", "/dags/{dag_id}/assets/queuedEvents", "etl", null, null, null)]
    [InlineData("GET", "/api/v2/dags/etl/assets/5/queuedEvents", "v2", "queuedEvents", "read", "/dags/{dag_id}/assets/{asset_id}/queuedEvents", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/datasets/s3://bucket/dags/etl_daily", "v1", "datasets", "read", "/datasets/{uri}", null, null, null, null)]
    [InlineData("DELETE", "/api/v1/dags/etl/datasets/queuedEvent/s3://bucket/connections/x", "v1", "queuedEvent", "delete", "/dags/{dag_id}/datasets/queuedEvent/{uri}", "etl", null, null, null)]
    [InlineData("GET", "/api/v1/datasets/events", "v1", "events", "read", "/datasets/events", null, null, null, null)]
    public void Classify_MethodAndPath(string method, string path, string version, string resource, string action, string template,
        string? dagId, string? runId, string? taskId, string? connId)
    {
        var call = Classify(method, path)!;
        Assert.Equal((version, resource, action, template), (call.Version, call.Resource, call.Action, call.Template));
        Assert.Equal((dagId, runId, taskId, connId), (call.DagId, call.DagRunId, call.TaskId, call.ConnectionId));
    }

    /// <summary>Issue 9.3: a <c>format: path</c> variable key swallows the rest, so it cannot be steered to another resource or DAG.</summary>
    [Theory]
    [InlineData("GET", "read", "team/secret")]
    [InlineData("DELETE", "delete", "etl_x/dags/etl_daily")]
    [InlineData("PATCH", "update", "a/connections/b")]
    [InlineData("GET", "read", "x/dags/etl_daily/dagRuns")]
    public void VariableKeyWithSlashes_IsOneVariable_NeverAnotherResource(string method, string action, string key)
    {
        foreach (var call in new[]
        {
            Classify(method, "/api/v1/variables/" + key)!,
            Classify(method, "/api/v1/variables/" + key.Replace("/", "%2F", StringComparison.Ordinal))!,
            ClassifySegments(method, "api", "v1", "variables", key)!,
        })
        {
            Assert.Equal(("variables", action, "/variables/{variable_key}", key), (call.Resource, call.Action, call.Template, call.VariableKey));
            Assert.Null(call.DagId);
            Assert.Equal([new("variable_key", key)], call.Params);
        }
    }

    [Fact]
    public void V2VariableKey_IsOneSegment_SoSlashesMatchNoTemplate()
    {
        Assert.Equal("team", Classify("GET", "/api/v2/variables/team")!.VariableKey);
        var call = Classify("GET", "/api/v2/variables/team/secret")!;
        Assert.Equal(AirflowApiClassifier.Unknown, call.Resource);
        Assert.Null(call.Action);
        Assert.Equal(AirflowApiClassifier.Unknown, ClassifySegments("DELETE", "api", "v2", "variables", "etl_x/dags/etl_daily")!.Resource);
    }

    [Theory]
    [InlineData("GET", "/api/v1//dags")]
    [InlineData("GET", "/api/v1/dags/../connections")]
    [InlineData("GET", "/api/v1/dags/./x")]
    [InlineData("GET", "/api/v1/dags/a%2F..%2F..%2Fconnections")]
    [InlineData("GET", "/api/v1/variables/a/../b")]
    [InlineData("GET", "/api/v1/variables/%2E%2E/connections")]
    [InlineData("GET", "/api/v1/datasets//x")]
    [InlineData("GET", "/api/v1/dags/etl//dagRuns")]
    [InlineData("GET", "/api/v1")]
    [InlineData("GET", "/api/v1/")]
    [InlineData("GET", "/api/v1/DAGS")]
    [InlineData("GET", "/api/v1/Variables/x")]
    [InlineData("GET", "/api/v1/no_such_collection")]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns/r/taskInstances/t/notAnInteger/tries")]
    [InlineData("GET", "/api/v1/eventLogs/abc")]
    [InlineData("GET", "/api/v2/backfills/1e3")]
    [InlineData("GET", "/api/v1/dags/etl%00/dagRuns")]
    [InlineData("PUT", "/api/v1/dags/etl")]
    [InlineData("POST", "/api/v1/connections/my_db")]
    [InlineData("OPTIONS", "/api/v2/dags")]
    [InlineData("TRACE", "/api/v1/dags")]
    [InlineData("POST", "/api/v1/dags/etl/dagRuns/list")]
    [InlineData("POST", "/api/v2/dags/etl/dagRuns/list")]
    [InlineData("POST", "/api/v2/dags/~/dagRuns/etl/taskInstances/list")]
    [InlineData("GET", "/api/v1/dags/etl/dagRuns/r/taskInstances/t/0/dry_run")]
    public void HostileOrUnknownPaths_AreUnknownWithoutAction(string method, string path)
    {
        var call = Classify(method, path);
        Assert.NotNull(call);
        Assert.Equal(AirflowApiClassifier.Unknown, call!.Resource);
        Assert.Null(call.Action);
        Assert.Null(call.Template);
        Assert.Null(call.DagId);
        Assert.Equal($$"""{"resource":"unknown","version":"{{call.Version}}"}""", RegoJson.Serialize(call.ToRego()));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/api/v3/dags")]
    [InlineData("/API/v1/dags")]
    [InlineData("/apiv1/dags")]
    [InlineData("/health")]
    public void NotAirflowApi_IsNull(string path) =>
        Assert.Null(Classify("GET", path));

    [Fact]
    public void PathPrefix_AndHosts_Restrict()
    {
        var c = new AirflowApiClassifier(new AirflowIngressOptions { PathPrefix = "/airflow", Hosts = ["airflow.example.com"] });
        Assert.Equal("etl", c.Classify(Requests.Parsed(Requests.Http("GET", "/airflow/api/v2/dags/etl", host: "airflow.example.com:8443")))!.DagId);
        Assert.Null(c.Classify(Requests.Parsed(Requests.Http("GET", "/api/v2/dags/etl", host: "airflow.example.com"))));
        Assert.Null(c.Classify(Requests.Parsed(Requests.Http("GET", "/airflow/api/v2/dags/etl", host: "other.example.com"))));
        Assert.Null(new AirflowApiClassifier(new AirflowIngressOptions { Enabled = false }).Classify(Requests.Parsed(Requests.Http("GET", "/api/v2/dags"))));
    }

    [Fact]
    public void ToRego_LeavesOutUnknownFields()
    {
        var call = Classify("POST", "/api/v1/dags/etl/dagRuns")!;
        Assert.Equal("""{"action":"trigger","dag_id":"etl","params":{"dag_id":"etl"},"resource":"dagRuns","template":"/dags/{dag_id}/dagRuns","version":"v1"}""",
            RegoJson.Serialize(call.ToRego()));
        Assert.Equal("""{"action":"delete","params":{"variable_key":"a/b"},"resource":"variables","template":"/variables/{variable_key}","variable_key":"a/b","version":"v1"}""",
            RegoJson.Serialize(Classify("DELETE", "/api/v1/variables/a/b")!.ToRego()));
    }

    // ---- The table against the specifications ------------------------------------------------

    private static IReadOnlyList<ApiTemplate> Table(string version) => version == "v1" ? AirflowApiTemplates.V1 : AirflowApiTemplates.V2;

    /// <summary>The table has exactly the specifications' templates and methods, and each parameter's kind as the spec declares it.</summary>
    [Fact]
    public void Table_HasEveryTemplateAndMethodOfBothSpecs_AndNothingElse()
    {
        var spec = AirflowSpecs.Operations();
        var fromSpec = spec.Select(o => $"{o.Version} {o.Method} {o.Template}").Order(StringComparer.Ordinal).ToList();
        var fromTable = new[] { "v1", "v2" }.SelectMany(v => Table(v).SelectMany(t => t.Actions.Keys.Select(m => $"{v} {m} {t.Text}")))
            .Order(StringComparer.Ordinal).ToList();
        Assert.Equal(fromSpec, fromTable);
        Assert.True(fromSpec.Count > 150, $"only {fromSpec.Count} operations read from the specifications");

        foreach (var op in spec)
        {
            var t = Table(op.Version).Single(t => t.Text == op.Template);
            foreach (var s in t.Segments.Where(s => s.Kind != ApiSegmentKind.Literal))
            {
                var p = op.Params[s.Text];
                var expected = p.Const is not null ? ApiSegmentKind.Const
                    : p.Format == "path" ? ApiSegmentKind.Path
                    : p.Type == "integer" ? ApiSegmentKind.Int
                    : ApiSegmentKind.String;
                Assert.True(expected == s.Kind, $"{op.Version} {op.Method} {op.Template}: {{{s.Text}}} is {s.Kind} in the table, {expected} in the spec");
                Assert.Equal(p.Const, s.Value);
            }
        }
    }

    /// <summary>
    /// Every template × method of both specs, with its parameters filled by ordinary and hostile
    /// values (other collections' names, <c>~</c>, verbs, values with <c>/</c> for path parameters,
    /// as separate segments and as one decoded <c>%2F</c> segment): the classifier returns the
    /// template the spec's routing picks (a literal before a parameter, as Airflow's routers do),
    /// with its ids, and the action of today's semantics.
    /// </summary>
    [Fact]
    public void EveryTemplateAndMethodOfBothSpecs_WithHostileValues_ClassifiedToTheRoutedTemplate()
    {
        var spec = AirflowSpecs.Operations();
        var checkedCount = 0;
        var sameTemplate = 0;
        foreach (var op in spec)
        {
            foreach (var fill in Fills(op))
            {
                foreach (var (segments, asOneSegment) in Concrete(op, fill))
                {
                    var expected = Route(spec, op.Version, op.Method, segments);
                    var call = ClassifySegments(op.Method, ["api", op.Version, .. asOneSegment]);
                    var where = $"{op.Method} /api/{op.Version}/{string.Join('/', asOneSegment)} (from {op.Template})";
                    Assert.True(call is not null, where);
                    Assert.True(expected is not null, where);
                    Assert.True(expected!.Template == call!.Template, $"{where}: classified {call.Template ?? call.Resource}, routed {expected.Template}");
                    var values = Bind(expected, segments);
                    Assert.Equal(values, call.Params.ToDictionary());
                    Assert.Equal(ExpectedAction(expected), call.Action);
                    Assert.Equal(values.GetValueOrDefault("dag_id") ?? Fixed(expected, "dags"), call.DagId);
                    Assert.Equal(values.GetValueOrDefault("dag_run_id") ?? Fixed(expected, "dagRuns"), call.DagRunId);
                    Assert.Equal(values.GetValueOrDefault("task_id"), call.TaskId);
                    Assert.Equal(values.GetValueOrDefault("connection_id"), call.ConnectionId);
                    Assert.Equal(values.GetValueOrDefault("variable_key"), call.VariableKey);
                    Assert.NotEqual(AirflowApiClassifier.Unknown, call.Resource);
                    if (values.ContainsKey("variable_key"))
                    {
                        Assert.Equal("variables", call.Resource);
                    }
                    if (values.ContainsKey("connection_id"))
                    {
                        Assert.Equal("connections", call.Resource);
                    }
                    checkedCount++;
                    sameTemplate += expected.Template == op.Template ? 1 : 0;

                    // HEAD reads what GET reads.
                    if (op.Method == "GET")
                    {
                        Assert.Equal(call with { }, ClassifySegments("HEAD", ["api", op.Version, .. asOneSegment])! with { Params = call.Params });
                    }
                }
            }
        }
        Assert.True(checkedCount > 2000, $"only {checkedCount} concrete paths");
        Assert.True(sameTemplate > checkedCount * 9 / 10, $"{sameTemplate} of {checkedCount} paths routed to their own template");
    }

    /// <summary>Every template × method with a method it does not define (and no other template of that path does) is unknown.</summary>
    [Fact]
    public void EveryTemplateOfBothSpecs_WithAnUndefinedMethod_IsUnknown()
    {
        var spec = AirflowSpecs.Operations();
        var n = 0;
        foreach (var op in spec)
        {
            var segments = Concrete(op, Fills(op).First()).First().Segments;
            foreach (var method in new[] { "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT" })
            {
                if (Route(spec, op.Version, method, segments) is null)
                {
                    var call = ClassifySegments(method, ["api", op.Version, .. segments])!;
                    Assert.True(call.Resource == AirflowApiClassifier.Unknown && call.Action is null, $"{method} {op.Template}: {call.Resource} {call.Action}");
                    n++;
                }
            }
        }
        Assert.True(n > 300, $"only {n} undefined methods tried");
    }

    private static readonly string[] HostileStrings =
        ["etl_daily", "dags", "dagRuns", "connections", "variables", "list", "~", "test", "clear", "dry_run", "a.b-c", "x y", "%2F", "é", "123"];

    private static readonly string[] HostilePaths =
        ["team/secret", "etl_x/dags/etl_daily", "s3://bucket/dags/etl_daily/dagRuns", "connections", "a/connections/b", "events", "queuedEvent/x"];

    /// <summary>Fillings of the template's parameters: each hostile value in turn for each parameter, the others ordinary.</summary>
    private static IEnumerable<Dictionary<string, string>> Fills(SpecOperation op)
    {
        var names = op.Segments.Where(s => s.StartsWith('{')).Select(s => s[1..^1]).ToList();
        Dictionary<string, string> Ordinary() => names.ToDictionary(n => n, n => Ordinary1(op.Params[n], n));
        yield return Ordinary();
        foreach (var n in names)
        {
            var p = op.Params[n];
            var hostile = p.Const is not null ? [p.Const]
                : p.Type == "integer" ? ["0", "-1", "42"]
                : p.Format == "path" ? HostilePaths.Concat(HostileStrings)
                : HostileStrings;
            foreach (var h in hostile)
            {
                var fill = Ordinary();
                fill[n] = h;
                yield return fill;
            }
        }
    }

    private static string Ordinary1(SpecParam p, string name) =>
        p.Const ?? (p.Type == "integer" ? "7" : name + "_1");

    /// <summary>The decoded segments (each <c>/</c> a separator) and the same path with each value one segment (a decoded <c>%2F</c>).</summary>
    private static IEnumerable<(List<string> Segments, List<string> AsOneSegment)> Concrete(SpecOperation op, Dictionary<string, string> fill)
    {
        var split = new List<string>();
        var one = new List<string>();
        foreach (var s in op.Segments)
        {
            var v = s.StartsWith('{') ? fill[s[1..^1]] : s;
            split.AddRange(v.Split('/'));
            one.Add(v);
        }
        yield return (split, split);
        if (one.Count != split.Count)
        {
            yield return (split, one);
        }
    }

    /// <summary>The operation Airflow's router picks for a path and method, from the specs alone: templates that match and define the method, the one with a literal (or const) at the first position where they differ.</summary>
    private static SpecOperation? Route(IReadOnlyList<SpecOperation> spec, string version, string method, List<string> path)
    {
        var lookup = method == "HEAD" ? "GET" : method;
        SpecOperation? best = null;
        int[]? bestRank = null;
        foreach (var op in spec.Where(o => o.Version == version && o.Method == lookup))
        {
            if (SpecMatch(op, path) is { } rank && (bestRank is null || Better(rank, bestRank)))
            {
                (best, bestRank) = (op, rank);
            }
        }
        return best;
    }

    private static bool Better(int[] a, int[] b)
    {
        for (var i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i])
            {
                return a[i] < b[i];
            }
        }
        return false;
    }

    /// <summary>Per-segment rank (0 literal or const, 1 integer, 2 string, 3 path) when the operation's template matches, else null.</summary>
    private static int[]? SpecMatch(SpecOperation op, List<string> path)
    {
        var t = op.Segments;
        var rank = new int[t.Length];
        for (var i = 0; i < t.Length; i++)
        {
            if (i >= path.Count)
            {
                return null;
            }
            if (!t[i].StartsWith('{'))
            {
                if (t[i] != path[i])
                {
                    return null;
                }
                continue;
            }
            var p = op.Params[t[i][1..^1]];
            if (path[i].Length == 0)
            {
                return null;
            }
            if (p.Format == "path")
            {
                rank[i] = 3;
                return rank;
            }
            if (p.Const is not null && path[i] != p.Const || p.Type == "integer" && !long.TryParse(path[i], out _))
            {
                return null;
            }
            rank[i] = p.Const is not null ? 0 : p.Type == "integer" ? 1 : 2;
        }
        return path.Count == t.Length ? rank : null;
    }

    private static Dictionary<string, string> Bind(SpecOperation op, List<string> path)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var t = op.Segments;
        for (var i = 0; i < t.Length; i++)
        {
            if (t[i].StartsWith('{'))
            {
                var name = t[i][1..^1];
                values[name] = op.Params[name].Format == "path" ? string.Join('/', path.Skip(i)) : path[i];
            }
        }
        return values;
    }

    private static string? Fixed(SpecOperation op, string collection)
    {
        var t = op.Segments;
        for (var i = 1; i < t.Length; i++)
        {
            if (t[i] == "~" && t[i - 1] == collection)
            {
                return "~";
            }
        }
        return null;
    }

    /// <summary>Today's action semantics, stated independently of the table.</summary>
    private static string ExpectedAction(SpecOperation op)
    {
        var last = op.Segments[^1];
        return op.Method switch
        {
            "GET" => "read",
            "POST" when op.Template.EndsWith("/dags/{dag_id}/dagRuns", StringComparison.Ordinal) || op.Template == "/backfills" || last == "materialize" => "trigger",
            "POST" when last is "list" or "dry_run" => "read",
            "POST" when last is "clear" or "clearTaskInstances" or "updateTaskInstancesState" or "favorite" or "unfavorite" => "update",
            "POST" => "create",
            "PATCH" when last == "dry_run" => "read",
            "PUT" or "PATCH" => "update",
            "DELETE" => "delete",
            _ => throw new InvalidOperationException(op.Method),
        };
    }
}
