using System.Text.RegularExpressions;

namespace EnvoyAuthz.Airflow;

/// <summary>Airflow awareness: connection sources, task context, API awareness. Section <c>EnvoyAuthz:Airflow</c>.</summary>
public sealed class AirflowOptions
{
    /// <summary>Turn the Airflow stage on. Default false (then <c>input.airflow</c> is absent).</summary>
    public bool Enabled { get; set; }

    /// <summary>Where connections come from (file, <c>AIRFLOW_CONN_*</c> variables, the REST API).</summary>
    public AirflowConnectionsOptions Connections { get; set; } = new();

    /// <summary>How a request is matched to a connection.</summary>
    public AirflowMatchOptions Match { get; set; } = new();

    /// <summary>Where <c>dag_id</c>, <c>task_id</c>, <c>run_id</c>, <c>try_number</c>, <c>map_index</c> come from.</summary>
    public AirflowTaskContextOptions TaskContext { get; set; } = new();

    /// <summary>Recognition of requests to Airflow's own REST API (<c>input.airflow.api</c>).</summary>
    public AirflowIngressOptions Ingress { get; set; } = new();

    /// <summary>JSON-RPC 2.0 bodies (<c>input.jsonrpc</c>).</summary>
    public AirflowJsonRpcOptions JsonRpc { get; set; } = new();

    /// <summary>
    /// Extra key fragments treated as sensitive, in addition to Airflow's defaults
    /// (<c>access_token</c>, <c>api_key</c>, <c>apikey</c>, <c>authorization</c>, <c>passphrase</c>,
    /// <c>passwd</c>, <c>password</c>, <c>private_key</c>, <c>secret</c>, <c>token</c>,
    /// <c>keyfile_dict</c>, <c>service_account</c>) and the HTTP ones (<c>credential</c>,
    /// <c>cookie</c>, <c>jwt</c>, <c>bearer</c>, <c>pwd</c>, <c>dsn</c>, <c>connection_string</c>,
    /// <c>conn_str</c>, <c>account_key</c>, <c>shared_access_key</c>) — like Airflow's
    /// <c>[core] sensitive_var_conn_names</c>. A key is sensitive when its name contains a fragment,
    /// both compared lowercased with everything but letters and digits dropped (<c>X-Api-Key</c>
    /// contains <c>api_key</c>). Default empty; each entry 1–100 characters with a letter or digit.
    /// </summary>
    public List<string> SensitiveKeys { get; set; } = [];
}

/// <summary>Connection sources. Lookup order is Airflow's: file (a secrets backend), then environment, then the API (the metastore).</summary>
public sealed class AirflowConnectionsOptions
{
    /// <summary>
    /// A file as <c>airflow connections export</c> writes it (<c>.json</c>, <c>.yaml</c>/<c>.yml</c>;
    /// other extensions are tried as JSON, then YAML). Hot-reloaded; a broken file keeps the last
    /// good copy. Default none. A missing or broken file at start stops the service.
    /// </summary>
    public string? File { get; set; }

    /// <summary>How often the file is polled besides the file-system watcher. Default 30 s; range 1 s – 1 h.</summary>
    public TimeSpan FilePollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Read <c>AIRFLOW_CONN_{ID}</c> environment variables (URI or JSON form) at start. Default true.</summary>
    public bool Environment { get; set; } = true;

    /// <summary>The Airflow REST API as a source. Off unless <see cref="AirflowApiOptions.BaseUrl"/> is set.</summary>
    public AirflowApiOptions Api { get; set; } = new();
}

/// <summary>The Airflow REST API connection source.</summary>
public sealed class AirflowApiOptions
{
    /// <summary>Airflow's base URL, e.g. <c>http://airflow-webserver:8080</c> (a base path is kept). Default none (source off).</summary>
    public string? BaseUrl { get; set; }

    /// <summary>API version: <c>v1</c> (Airflow 2, basic auth) or <c>v2</c> (Airflow 3, JWT from <c>POST /auth/token</c>). Default <c>v2</c>.</summary>
    public string Version { get; set; } = "v2";

    /// <summary>User for basic auth (v1) or <c>/auth/token</c> (v2). Default none (no authentication).</summary>
    public string? Username { get; set; }

    /// <summary>Password (prefer <see cref="PasswordFile"/>). Default none. Never logged.</summary>
    public string? Password { get; set; }

    /// <summary>File holding the password (e.g. a mounted Kubernetes secret), read at each authentication. Default none.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>Time between successful refreshes. Default 60 s; range 1 s – 1 day.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Time before retrying after a failed refresh. Default 10 s; range 1 s – 1 day, at most <see cref="RefreshInterval"/>.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Age of the last good copy after which its entries are no longer trusted and checks needing
    /// them are denied with <c>dependency_unavailable</c>. Default 10 min; range 1 s – 7 days, at
    /// least <see cref="RefreshInterval"/>.
    /// </summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Timeout of each HTTP request. Default 10 s; range 100 ms – 5 min.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Page size (<c>limit</c>). Default 100 (Airflow 2's maximum page limit); range 1 – 1000.</summary>
    public int PageSize { get; set; } = 100;

    /// <summary>Most connections accepted in one refresh; more fails the refresh. Default 100 000; range 1 – 10 000 000.</summary>
    public int MaxConnections { get; set; } = 100_000;

    /// <summary>Largest answer accepted per request (one page, or the token), in bytes; a larger one fails the refresh. Default 16777216 (16 MiB); range 4096–268435456.</summary>
    public int MaxResponseBytes { get; set; } = 16 << 20;
}

/// <summary>Which connection a request concerns.</summary>
public sealed class AirflowMatchOptions
{
    /// <summary>Context extension naming the connection (set per route in Envoy). Default <c>airflow_conn_id</c>; empty disables.</summary>
    public string ContextExtension { get; set; } = "airflow_conn_id";

    /// <summary>Request header naming the connection. Default <c>x-airflow-conn-id</c>; empty disables.</summary>
    public string Header { get; set; } = "x-airflow-conn-id";

    /// <summary>Match the request authority (host, port, scheme) against connections' host/port when no id is given. Default true.</summary>
    public bool ByAuthority { get; set; } = true;
}

/// <summary>Task context sources and their precedence.</summary>
public sealed class AirflowTaskContextOptions
{
    /// <summary>
    /// Sources in precedence order; the first that has a field wins, per field, and
    /// <c>input.airflow.task_source</c> names it. Values <c>claims</c> (the validated token),
    /// <c>context_extensions</c> (the route's <c>check_settings.context_extensions</c>, set by the
    /// operator in Envoy), <c>metadata</c> (Envoy <c>metadata_context</c>) — all three trusted — and
    /// <c>headers</c> (request headers: the caller's own words, never trusted; off unless listed).
    /// Default (empty list) <c>claims, context_extensions, metadata</c>; list only some to ignore the others.
    /// </summary>
    public List<string> Sources { get; set; } = [];

    internal static readonly IReadOnlyList<string> DefaultSources = ["claims", "context_extensions", "metadata"];

    internal IReadOnlyList<string> EffectiveSources => Sources.Count == 0 ? DefaultSources : Sources;

    /// <summary>Header names per field (used only when <see cref="Sources"/> lists <c>headers</c>). Defaults <c>x-airflow-dag-id</c>, <c>x-airflow-task-id</c>, <c>x-airflow-run-id</c>, <c>x-airflow-try-number</c>, <c>x-airflow-map-index</c>.</summary>
    public AirflowTaskFieldNames Headers { get; set; } = new()
    {
        DagId = "x-airflow-dag-id", TaskId = "x-airflow-task-id", RunId = "x-airflow-run-id",
        TryNumber = "x-airflow-try-number", MapIndex = "x-airflow-map-index",
    };

    /// <summary>Token claim names per field. Defaults <c>dag_id</c>, <c>task_id</c>, <c>run_id</c>, <c>try_number</c>, <c>map_index</c>.</summary>
    public AirflowTaskFieldNames Claims { get; set; } = new();

    /// <summary>Context extension keys per field (set per route in Envoy). Defaults <c>airflow_dag_id</c>, <c>airflow_task_id</c>, <c>airflow_run_id</c>, <c>airflow_try_number</c>, <c>airflow_map_index</c>.</summary>
    public AirflowTaskFieldNames ContextExtensions { get; set; } = new()
    {
        DagId = "airflow_dag_id", TaskId = "airflow_task_id", RunId = "airflow_run_id",
        TryNumber = "airflow_try_number", MapIndex = "airflow_map_index",
    };

    /// <summary><c>filter_metadata</c> namespace holding the task fields (e.g. pod labels a mesh passes). Default <c>airflow</c>.</summary>
    public string MetadataNamespace { get; set; } = "airflow";

    /// <summary>Keys per field within <see cref="MetadataNamespace"/>. Defaults are the KubernetesExecutor pod labels <c>dag_id</c>, <c>task_id</c>, <c>run_id</c>, <c>try_number</c>, <c>map_index</c>.</summary>
    public AirflowTaskFieldNames Metadata { get; set; } = new();
}

/// <summary>Names of the five task fields in one source; an empty name ignores that field.</summary>
public sealed class AirflowTaskFieldNames
{
    /// <summary>Name carrying <c>dag_id</c>. Default <c>dag_id</c>.</summary>
    public string DagId { get; set; } = "dag_id";
    /// <summary>Name carrying <c>task_id</c>. Default <c>task_id</c>.</summary>
    public string TaskId { get; set; } = "task_id";
    /// <summary>Name carrying <c>run_id</c>. Default <c>run_id</c>.</summary>
    public string RunId { get; set; } = "run_id";
    /// <summary>Name carrying <c>try_number</c> (an integer ≥ 0). Default <c>try_number</c>.</summary>
    public string TryNumber { get; set; } = "try_number";
    /// <summary>Name carrying <c>map_index</c> (an integer ≥ -1). Default <c>map_index</c>.</summary>
    public string MapIndex { get; set; } = "map_index";

    internal IEnumerable<(string Field, string Name)> All()
    {
        yield return ("DagId", DagId);
        yield return ("TaskId", TaskId);
        yield return ("RunId", RunId);
        yield return ("TryNumber", TryNumber);
        yield return ("MapIndex", MapIndex);
    }
}

/// <summary>Recognition of Airflow REST API requests (ingress).</summary>
public sealed class AirflowIngressOptions
{
    /// <summary>Recognise <c>/api/v1/…</c> and <c>/api/v2/…</c> requests and fill <c>input.airflow.api</c>. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Base path Airflow is served under, e.g. <c>/airflow</c>. Default empty (root).</summary>
    public string PathPrefix { get; set; } = "";

    /// <summary>Hosts (authority without port, lowercase) that serve Airflow's API. Default empty: any host.</summary>
    public List<string> Hosts { get; set; } = [];
}

/// <summary>JSON-RPC 2.0 bodies.</summary>
public sealed class AirflowJsonRpcOptions
{
    /// <summary>Paths (exact, without query) that are JSON-RPC endpoints; their body must be JSON-RPC 2.0 or the check is denied <c>bad_request</c>. Default empty.</summary>
    public List<string> Paths { get; set; } = [];

    /// <summary>Also parse JSON bodies of other paths that are JSON-RPC 2.0 by content (<c>"jsonrpc": "2.0"</c>). Default true.</summary>
    public bool DetectByContent { get; set; } = true;

    /// <summary>Most calls in one batch; a larger batch is denied <c>bad_request</c>. Default 100; range 1 – 10 000.</summary>
    public int MaxBatchSize { get; set; } = 100;
}

/// <summary>Validation of <see cref="AirflowOptions"/>, called by the service's options validator.</summary>
public static partial class AirflowOptionsValidator
{
    private static readonly HashSet<string> KnownSources = new(StringComparer.Ordinal) { "claims", "context_extensions", "metadata", "headers" };

    /// <summary>Adds every problem of <paramref name="options"/> to <paramref name="errors"/>, keys prefixed with <paramref name="prefix"/>.</summary>
    public static void Collect(AirflowOptions options, string prefix, List<string> errors)
    {
        var c = options.Connections;
        var p = $"{prefix}:Connections";
        if (c.File is not null && string.IsNullOrWhiteSpace(c.File))
        {
            errors.Add($"{p}:File is empty: give a path or remove the key.");
        }
        Range(errors, $"{p}:FilePollInterval", c.FilePollInterval, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));

        var api = c.Api;
        var a = $"{p}:Api";
        if (api.BaseUrl is not null)
        {
            if (!Uri.TryCreate(api.BaseUrl, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(u.UserInfo))
            {
                errors.Add($"{a}:BaseUrl must be an absolute http(s) URL without credentials (e.g. http://airflow-webserver:8080).");
            }
            if (api.Version is not ("v1" or "v2"))
            {
                errors.Add($"{a}:Version must be 'v1' (Airflow 2) or 'v2' (Airflow 3), not '{api.Version}'.");
            }
            if (api.Password is not null && api.PasswordFile is not null)
            {
                errors.Add($"{a}: set Password or PasswordFile, not both.");
            }
            if ((api.Password is not null || api.PasswordFile is not null) && string.IsNullOrEmpty(api.Username))
            {
                errors.Add($"{a}:Username is required when a password is set.");
            }
            if (api.Version == "v2" && string.IsNullOrEmpty(api.Username))
            {
                errors.Add($"{a}:Username and a password are required for v2 (JWT from POST /auth/token).");
            }
        }
        Range(errors, $"{a}:RefreshInterval", api.RefreshInterval, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        Range(errors, $"{a}:RetryInterval", api.RetryInterval, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        Range(errors, $"{a}:MaxAge", api.MaxAge, TimeSpan.FromSeconds(1), TimeSpan.FromDays(7));
        Range(errors, $"{a}:RequestTimeout", api.RequestTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));
        if (api.RetryInterval > api.RefreshInterval)
        {
            errors.Add($"{a}:RetryInterval ({api.RetryInterval}) must not exceed RefreshInterval ({api.RefreshInterval}).");
        }
        if (api.MaxAge < api.RefreshInterval)
        {
            errors.Add($"{a}:MaxAge ({api.MaxAge}) must be at least RefreshInterval ({api.RefreshInterval}).");
        }
        Range(errors, $"{a}:PageSize", api.PageSize, 1, 1000);
        Range(errors, $"{a}:MaxConnections", api.MaxConnections, 1, 10_000_000);
        Range(errors, $"{a}:MaxResponseBytes", api.MaxResponseBytes, 4096, 256 << 20);

        var m = options.Match;
        if (m.Header.Length > 0 && !HeaderName().IsMatch(m.Header))
        {
            errors.Add($"{prefix}:Match:Header must be a lowercase header name (letters, digits, '-') or empty.");
        }

        var t = options.TaskContext;
        for (var i = 0; i < t.Sources.Count; i++)
        {
            if (!KnownSources.Contains(t.Sources[i]))
            {
                errors.Add($"{prefix}:TaskContext:Sources:{i} '{t.Sources[i]}' is not one of claims, context_extensions, metadata, headers.");
            }
        }
        if (t.Sources.Distinct(StringComparer.Ordinal).Count() != t.Sources.Count)
        {
            errors.Add($"{prefix}:TaskContext:Sources names a source twice.");
        }
        foreach (var (field, name) in t.Headers.All())
        {
            if (name.Length > 0 && !HeaderName().IsMatch(name))
            {
                errors.Add($"{prefix}:TaskContext:Headers:{field} must be a lowercase header name (letters, digits, '-') or empty.");
            }
        }

        var ing = options.Ingress;
        if (ing.PathPrefix.Length > 0 && (!ing.PathPrefix.StartsWith('/') || ing.PathPrefix.EndsWith('/') || ing.PathPrefix.Contains("//", StringComparison.Ordinal)
            || ing.PathPrefix.Contains('?', StringComparison.Ordinal) || ing.PathPrefix.Contains('%', StringComparison.Ordinal)))
        {
            errors.Add($"{prefix}:Ingress:PathPrefix must start with '/', not end with '/', and hold plain segments (e.g. /airflow), or be empty.");
        }
        for (var i = 0; i < ing.Hosts.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(ing.Hosts[i]) || ing.Hosts[i].Contains(':', StringComparison.Ordinal) && !ing.Hosts[i].StartsWith('['))
            {
                errors.Add($"{prefix}:Ingress:Hosts:{i} must be a host name without port.");
            }
        }

        var j = options.JsonRpc;
        for (var i = 0; i < j.Paths.Count; i++)
        {
            if (!j.Paths[i].StartsWith('/') || j.Paths[i].Contains('?', StringComparison.Ordinal))
            {
                errors.Add($"{prefix}:JsonRpc:Paths:{i} must be a path starting with '/' and without a query.");
            }
        }
        Range(errors, $"{prefix}:JsonRpc:MaxBatchSize", j.MaxBatchSize, 1, 10_000);

        for (var i = 0; i < options.SensitiveKeys.Count; i++)
        {
            var k = options.SensitiveKeys[i];
            if (string.IsNullOrWhiteSpace(k) || k.Trim().Length > 100 || SensitiveKeys.Normalize(k).Length == 0)
            {
                errors.Add($"{prefix}:SensitiveKeys:{i} must be 1–100 characters with a letter or digit (a fragment of key names to hide).");
            }
        }
    }

    private static void Range(List<string> e, string key, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            e.Add($"{key} is {value}; it must be between {min} and {max}.");
        }
    }

    private static void Range(List<string> e, string key, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            e.Add($"{key} is {value}; it must be between {min} and {max}.");
        }
    }

    [GeneratedRegex("^[a-z0-9-]+$")]
    private static partial Regex HeaderName();
}
