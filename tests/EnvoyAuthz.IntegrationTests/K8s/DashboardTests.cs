using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// The service with every feature the dashboard shows switched on (a real OpenID provider, the
/// policy k8s/ ships, Airflow connections from a file, a rate limit), scraped every second by a
/// real Prometheus while allows and denies are driven through gRPC.
/// </summary>
public sealed class ObservedServiceFixture : IAsyncLifetime
{
    private const string Connections = """
        {
          "partner_api": {"conn_type": "http", "description": "Partner", "login": "svc", "password": "dashboard-test-password",
                          "host": "https://api.partner.example", "port": null, "schema": null, "extra": null}
        }
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("envoyauthz-dashboard-").FullName;
    private OidcProviderFixture? _idp;

    /// <summary>The service.</summary>
    public AuthzServiceHost Host { get; private set; } = null!;

    /// <summary>Prometheus scraping it.</summary>
    public PrometheusServer Prometheus { get; private set; } = null!;

    /// <summary>The Prometheus job name.</summary>
    public const string Job = "envoy-authz";

    /// <summary>Checks sent, by the reason each was answered with.</summary>
    public Dictionary<string, int> Sent { get; } = [];

    /// <summary>The metric names the service's /metrics exposes.</summary>
    public HashSet<string> ExportedNames { get; } = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public async ValueTask InitializeAsync()
    {
        _idp = await OidcProviderFixture.StartAsync();
        var connections = Path.Combine(_dir, "connections.json");
        await File.WriteAllTextAsync(connections, Connections);
        var settings = AuthzServiceHost.IssuerSettings(_idp);
        settings.AddRange(
        [
            new("EnvoyAuthz:Policy:Engine", "rego"),
            new("EnvoyAuthz:Policy:Path", RepoPaths.Of("k8s", "base", "policy")),
            new("EnvoyAuthz:Airflow:Enabled", "true"),
            new("EnvoyAuthz:Airflow:Connections:File", connections),
            new("EnvoyAuthz:Airflow:Connections:Environment", "false"),
            new("EnvoyAuthz:RateLimits:Enabled", "true"),
            new("EnvoyAuthz:RateLimits:Rules:0:Name", "limited"),
            new("EnvoyAuthz:RateLimits:Rules:0:Limit", "2"),
            new("EnvoyAuthz:RateLimits:Rules:0:Window", "00:10:00"),
            new("EnvoyAuthz:RateLimits:Rules:0:PathPrefix", "/limited"),
        ]);
        Host = await AuthzServiceHost.StartAsync(settings);
        await Host.WaitReadyAsync();
        Prometheus = await PrometheusServer.StartAsync($"127.0.0.1:{Host.HttpPort}", Job);
        // Prometheus applies discovered targets a few seconds after it starts: traffic before its
        // first scrape would land in the first sample, where no rate() can see it.
        var scraping = DateTime.UtcNow.AddSeconds(60);
        while ((await Prometheus.ValuesAsync($"up{{job=\"{Job}\"}}")) is not ["1"])
        {
            Assert.True(DateTime.UtcNow < scraping, "Prometheus never scraped the service");
            await Task.Delay(250);
        }

        var token = await _idp.GetAccessTokenAsync();
        var bearer = new Dictionary<string, string> { ["authorization"] = "Bearer " + token };
        var partner = new Dictionary<string, string> { ["airflow_conn_id"] = "partner_api" };
        // Several rounds over a few seconds, so every rate() has scraped samples on both sides.
        for (var round = 0; round < 6; round++)
        {
            await SendAsync(Requests.Http("GET", "/api/v2/dags", headers: bearer), "allowed");
            await SendAsync(Requests.Http("GET", "/api/v2/dags/etl", headers: bearer), "allowed");
            await SendAsync(Requests.Http("GET", "/v1/orders", host: "api.partner.example", headers: bearer, contextExtensions: partner), "allowed");
            await SendAsync(Requests.Http("POST", "/api/v2/dags/etl/dagRuns", headers: bearer, body: "{}"), "policy_denied");
            await SendAsync(Requests.Http("GET", "/api/v2/dags"), "missing_token");
            await SendAsync(Requests.Http("GET", "/api/v2/dags", headers: new Dictionary<string, string> { ["authorization"] = "Bearer not.a.token" }), "invalid_token");
            await SendAsync(Requests.Http("GET", "/limited/report", headers: bearer), round < 2 ? "allowed" : "rate_limited");
            await Task.Delay(700);
        }
        var total = Sent.Values.Sum();
        var until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var seen = await Prometheus.ValuesAsync($"sum(envoy_authz_checks_total{{job=\"{Job}\"}})");
            if (seen.Count == 1 && double.Parse(seen[0], CultureInfo.InvariantCulture) >= total)
            {
                break;
            }
            Assert.True(DateTime.UtcNow < until, $"Prometheus did not scrape the {total} Checks sent (sees {string.Join(",", seen)})");
            await Task.Delay(250);
        }
        await Task.Delay(2000); // a couple more scrapes after the last Check: every rate() window has its end point

        var text = await Host.Http.GetStringAsync("/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.Length > 0 && line[0] != '#')
            {
                ExportedNames.Add(Regex.Match(line, "^[a-zA-Z_:][a-zA-Z0-9_:]*").Value);
            }
        }
    }

    private async Task SendAsync(CheckRequest request, string expectedReason)
    {
        var response = await Host.CheckAsync(request);
        var reason = response.Status.Code == 0 ? "allowed" : JsonDocument.Parse(response.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;
        Assert.Equal(expectedReason, reason);
        Sent[reason] = Sent.GetValueOrDefault(reason) + 1;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Prometheus is not null)
        {
            await Prometheus.DisposeAsync();
        }
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }
        if (_idp is not null)
        {
            await _idp.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// The Grafana dashboard (k8s/base/dashboards/envoy-authz.json) against a real Prometheus that
/// scrapes the running service: every panel query returns data, names only metrics the service
/// exports (a typo fails), and the JSON is provisionable. The PrometheusRule's expressions are
/// held to the same metric names.
/// </summary>
[Collection(K8sTools.Collection)]
public sealed class DashboardTests(ObservedServiceFixture service) : IClassFixture<ObservedServiceFixture>
{
    private static readonly string DashboardPath = RepoPaths.Of("k8s", "base", "dashboards", "envoy-authz.json");

    private static readonly HashSet<string> PromQlWords = new(StringComparer.Ordinal)
    {
        "and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN",
    };

    /// <summary>Every (panel title, refId, expr) of the dashboard.</summary>
    public static TheoryData<string, string, string> PanelQueries()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var (title, refId, expr) in Targets(Dashboard()))
        {
            data.Add(title, refId, expr);
        }
        return data;
    }

    private static JsonObject Dashboard() => JsonNode.Parse(File.ReadAllText(DashboardPath))!.AsObject();

    private static IEnumerable<(string Title, string RefId, string Expr)> Targets(JsonObject dashboard) =>
        dashboard["panels"]!.AsArray()
            .Where(p => (string?)p!["type"] != "row")
            .SelectMany(p => p!["targets"]!.AsArray().Select(t => ((string)p["title"]!, (string)t!["refId"]!, (string)t["expr"]!)));

    /// <summary>The query Grafana would send with every job and instance selected.</summary>
    private static string Expand(string expr) => expr
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$job", ".*", StringComparison.Ordinal)
        .Replace("$instance", ".*", StringComparison.Ordinal);

    /// <summary>The metric names a PromQL expression selects (not functions, keywords, labels or durations).</summary>
    internal static HashSet<string> MetricNames(string expr)
    {
        var s = Regex.Replace(expr, "\"(?:[^\"\\\\]|\\\\.)*\"", "\"\"");
        s = Regex.Replace(s, @"\{[^}]*\}", " ");
        s = Regex.Replace(s, @"\[[^\]]*\]", " ");
        s = Regex.Replace(s, @"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(s, @"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*"))
        {
            var rest = s[(m.Index + m.Length)..].TrimStart();
            if (!rest.StartsWith('(') && !PromQlWords.Contains(m.Value))
            {
                names.Add(m.Value);
            }
        }
        return names;
    }

    [Theory]
    [MemberData(nameof(PanelQueries))]
    public async Task PanelQuery_ReturnsData_FromARealPrometheusScrapingTheService(string panel, string refId, string expr)
    {
        var values = await service.Prometheus.ValuesAsync(Expand(expr));
        Assert.True(values.Count > 0, $"panel '{panel}' {refId}: no series for {Expand(expr)}");
        Assert.True(values.Any(v => v != "NaN"), $"panel '{panel}' {refId}: only NaN for {Expand(expr)}");
    }

    [Theory]
    [MemberData(nameof(PanelQueries))]
    public void PanelQuery_NamesOnlyMetricsTheServiceExports(string panel, string refId, string expr)
    {
        var names = MetricNames(expr);
        Assert.NotEmpty(names);
        foreach (var name in names)
        {
            Assert.True(service.ExportedNames.Contains(name), $"panel '{panel}' {refId}: {name} is not in the service's /metrics");
        }
    }

    [Fact]
    public async Task RuleExpressions_NameOnlyMetricsTheServiceExports_OrRecordingRules()
    {
        var rules = (await PrometheusRuleTests.RuleGroupsAsync()).SelectMany(g => g!["rules"]!.AsArray()).ToList();
        var recorded = rules.Select(r => (string?)r!["record"]).OfType<string>().ToHashSet();
        foreach (var rule in rules)
        {
            var expr = (string)rule!["expr"]!;
            foreach (var name in MetricNames(expr))
            {
                Assert.True(service.ExportedNames.Contains(name) || recorded.Contains(name) || name == "up",
                    $"{(string?)rule["alert"] ?? (string?)rule["record"]}: {name} is not in the service's /metrics");
            }
        }
        Assert.Contains("envoy_authz_checks_total", rules.SelectMany(r => MetricNames((string)r!["expr"]!)));
    }

    [Fact]
    public async Task AQueryNamingAMissingMetric_FailsBothChecks()
    {
        const string typo = "sum by (reason) (rate(envoy_authz_checks_totl{job=~\"$job\"}[$__rate_interval]))";
        Assert.Equal(["envoy_authz_checks_totl"], MetricNames(typo));
        Assert.DoesNotContain("envoy_authz_checks_totl", service.ExportedNames);
        Assert.Empty(await service.Prometheus.ValuesAsync(Expand(typo)));
        // The same query spelled right has data: the checks above are not vacuous.
        Assert.NotEmpty(await service.Prometheus.ValuesAsync(Expand(typo.Replace("totl", "total", StringComparison.Ordinal))));
    }

    [Fact]
    public void MetricNames_SkipsFunctionsLabelsKeywordsAndDurations()
    {
        Assert.Equal(
            ["a_total", "b_bucket", "c"],
            MetricNames("histogram_quantile(0.99, sum by (le, stage) (rate(b_bucket{x=\"y\"}[5m] offset 10m))) / ignoring(reason) group_left sum(a_total) and on(job) c > 0.1").Order().ToArray());
    }

    [Fact]
    public async Task Dashboard_IsProvisionable_AndShowsWhatSresAskedFor()
    {
        var dashboard = Dashboard();
        Assert.Equal("envoy-authz", (string?)dashboard["uid"]);
        Assert.False(string.IsNullOrEmpty((string?)dashboard["title"]));
        Assert.Null(dashboard["__inputs"]); // a provisioned file, not an export needing import-time inputs
        Assert.Null(dashboard["id"]);
        Assert.True((int)dashboard["schemaVersion"]! >= 36);
        var variables = dashboard["templating"]!["list"]!.AsArray();
        Assert.Contains(variables, v => (string?)v!["type"] == "datasource" && (string?)v["query"] == "prometheus" && (string?)v["name"] == "datasource");
        var panels = dashboard["panels"]!.AsArray();
        Assert.Equal(panels.Count, panels.Select(p => (int)p!["id"]!).Distinct().Count());
        foreach (var p in panels.Where(p => (string?)p!["type"] != "row"))
        {
            Assert.Equal("${datasource}", (string?)p!["datasource"]!["uid"]);
            var refs = p["targets"]!.AsArray().Select(t => (string)t!["refId"]!).ToList();
            Assert.NotEmpty(refs);
            Assert.Equal(refs.Count, refs.Distinct().Count());
            Assert.NotNull(p["gridPos"]);
        }
        var exprs = Targets(dashboard).ToList();
        bool Shows(string metric, string? by = null) => exprs.Any(t => MetricNames(t.Expr).Contains(metric) && (by is null || t.Expr.Contains(by, StringComparison.Ordinal)));
        Assert.True(Shows("envoy_authz_checks_total", "by (decision, reason)"), "decisions by reason");
        Assert.True(Shows("envoy_authz_stage_duration_seconds_bucket", "by (stage, le)"), "latency percentiles per stage");
        Assert.True(Shows("envoy_authz_check_duration_seconds_bucket"), "check latency");
        Assert.True(Shows("envoy_authz_circuit_state", "by (dependency)"), "breaker states");
        Assert.True(Shows("envoy_authz_token_validations_total", "result=\"cached\""), "cache hit ratio");
        Assert.True(Shows("envoy_authz_shed_total"), "shed");
        Assert.True(Shows("envoy_authz_rate_limited_total"), "rate-limited");
        Assert.True(Shows("envoy_authz_airflow_connections_age_seconds"), "Airflow connection freshness");
        Assert.True(Shows("envoy_authz_policy_reloads_total"), "policy revisions");
    }

    [Fact]
    public async Task DashboardConfigMap_CarriesTheFile_ForGrafanasSidecar()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var cm = K8sTools.Single(docs, "ConfigMap", "envoy-authz-dashboard");
        Assert.Equal("1", (string?)cm["metadata"]!["labels"]!["grafana_dashboard"]);
        var embedded = JsonNode.Parse((string)cm["data"]!["envoy-authz.json"]!);
        Assert.True(JsonNode.DeepEquals(Dashboard(), embedded));
    }
}
