using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// The PrometheusRule's recording rules and alerts, as rendered by kustomize, run through the real
/// <c>promtool</c> (Debian <c>prometheus</c>): <c>check rules</c>, then <c>test rules</c> with
/// <c>alerts.test.yaml</c>, whose synthetic series make every alert fire when it should and stay
/// quiet when it should not.
/// </summary>
[Collection(K8sTools.Collection)]
public sealed class PrometheusRuleTests
{
    private static string Promtool => K8sTools.Require("promtool", "apt-get install prometheus (.ci/run installs it)");

    /// <summary>The rendered PrometheusRule's groups.</summary>
    internal static async Task<JsonArray> RuleGroupsAsync()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        return docs.Single(d => (string?)d["kind"] == "PrometheusRule")["spec"]!["groups"]!.AsArray();
    }

    /// <summary>A folder holding rules.yaml (the rendered groups) and a copy of alerts.test.yaml.</summary>
    private static async Task<string> StageAsync(Func<string, string>? mutateRules = null)
    {
        var dir = Directory.CreateTempSubdirectory("envoyauthz-promtool-").FullName;
        // JSON is YAML: Prometheus reads the groups as they are in the PrometheusRule's spec.
        var rules = new JsonObject { ["groups"] = (await RuleGroupsAsync()).DeepClone() }
            .ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        await File.WriteAllTextAsync(Path.Combine(dir, "rules.yaml"), mutateRules is null ? rules : mutateRules(rules), TestContext.Current.CancellationToken);
        File.Copy(Path.Combine(K8sTools.TestDirectory, "alerts.test.yaml"), Path.Combine(dir, "alerts.test.yaml"));
        return dir;
    }

    [Fact]
    public async Task Rules_PassPromtoolCheck_AndEveryAlertsUnitTests()
    {
        var dir = await StageAsync();
        try
        {
            var check = await K8sTools.RunAsync(Promtool, ["check", "rules", "rules.yaml"], dir);
            Assert.True(check.Exit == 0, check.Out + check.Err);
            Assert.Contains("SUCCESS", check.Out + check.Err);
            var test = await K8sTools.RunAsync(Promtool, ["test", "rules", "alerts.test.yaml"], dir);
            Assert.True(test.Exit == 0, test.Out + test.Err);
            Assert.Contains("SUCCESS", test.Out + test.Err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("== 2", "== 3", "EnvoyAuthzCircuitOpen")]                 // an alert that can no longer fire
    [InlineData(") + 0.2", ") + 0.5", "EnvoyAuthzDenyRatioJump")]          // a threshold moved
    [InlineData("> 0.01", "> 0.001", "EnvoyAuthzUnavailableDenies")]       // a threshold that fires on the quiet case
    [InlineData("min by (namespace, job, source) (envoy_authz_airflow_connections_trusted) == 0", "min by (namespace, job, source) (envoy_authz_airflow_connections_trustd) == 0", "EnvoyAuthzAirflowConnectionsUntrusted")] // a metric name typo
    public async Task UnitTests_FailWhenAnAlertIsBroken(string from, string to, string alert)
    {
        var dir = await StageAsync(rules =>
        {
            Assert.Contains(from, rules);
            return rules.Replace(from, to, StringComparison.Ordinal);
        });
        try
        {
            var test = await K8sTools.RunAsync(Promtool, ["test", "rules", "alerts.test.yaml"], dir);
            Assert.NotEqual(0, test.Exit);
            Assert.Contains("FAILED", test.Out + test.Err);
            Assert.Contains(alert, test.Out + test.Err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task EveryAlert_HasAFiringCase_AndAQuietCase()
    {
        var alerts = (await RuleGroupsAsync()).SelectMany(g => g!["rules"]!.AsArray())
            .Select(r => (string?)r!["alert"]).OfType<string>().ToList();
        Assert.Equal(9, alerts.Count);
        var tests = K8sTools.Documents(await File.ReadAllTextAsync(Path.Combine(K8sTools.TestDirectory, "alerts.test.yaml"), TestContext.Current.CancellationToken))
            .Single()["tests"]!.AsArray()
            .SelectMany(t => t!["alert_rule_test"]?.AsArray() ?? [])
            .Select(a => (Name: (string)a!["alertname"]!, Fires: a["exp_alerts"]!.AsArray().Count > 0))
            .ToList();
        foreach (var alert in alerts)
        {
            Assert.True(tests.Any(t => t.Name == alert && t.Fires), $"{alert}: no case where it fires");
            Assert.True(tests.Any(t => t.Name == alert && !t.Fires), $"{alert}: no case where it stays quiet");
        }
        // The alerts the operators asked for are there.
        Assert.Subset(alerts.ToHashSet(), new HashSet<string>
        {
            "EnvoyAuthzDenyRatioJump", "EnvoyAuthzUnavailableDenies", "EnvoyAuthzLatencyP99High", "EnvoyAuthzCircuitOpen",
            "EnvoyAuthzPolicyReloadFailing", "EnvoyAuthzJwksRefreshFailing", "EnvoyAuthzAirflowConnectionsUntrusted", "EnvoyAuthzShedding",
        });
    }
}
