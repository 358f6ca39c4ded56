using System.Text.Json;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// A folder laid out the way the kubelet lays out a ConfigMap volume, and updated the way it
/// updates one (its atomic writer): the files live in a timestamped <c>..YYYY_MM_DD_…</c> folder,
/// <c>..data</c> is a symbolic link to it, every file is a link through <c>..data</c>, and an
/// update writes a new timestamped folder, points a temporary link at it and renames that link
/// over <c>..data</c> (one atomic rename), then removes the old folder.
/// </summary>
internal sealed class KubeletConfigMapVolume
{
    private int _generation;

    public KubeletConfigMapVolume(string root) => Root = root;

    /// <summary>The mount point.</summary>
    public string Root { get; }

    /// <summary>Writes the first payload.</summary>
    public async Task CreateAsync(IReadOnlyDictionary<string, string> files)
    {
        Directory.CreateDirectory(Root);
        var ts = await WritePayloadAsync(files);
        File.CreateSymbolicLink(Path.Combine(Root, "..data"), ts);
        foreach (var name in files.Keys)
        {
            File.CreateSymbolicLink(Path.Combine(Root, name), Path.Combine("..data", name));
        }
    }

    /// <summary>Replaces the payload atomically, as the kubelet does on a ConfigMap update.</summary>
    public async Task SwapAsync(IReadOnlyDictionary<string, string> files)
    {
        var old = new FileInfo(Path.Combine(Root, "..data")).LinkTarget!;
        var ts = await WritePayloadAsync(files);
        var tmp = Path.Combine(Root, "..data_tmp");
        File.CreateSymbolicLink(tmp, ts);
        // rename(2) of the new link over ..data (mv -T: the destination is replaced, not entered).
        var (exit, _, err) = await K8sTools.RunAsync("mv", ["-T", tmp, Path.Combine(Root, "..data")], Root);
        Assert.True(exit == 0, err);
        foreach (var name in files.Keys.Where(n => !File.Exists(Path.Combine(Root, n)) && new FileInfo(Path.Combine(Root, n)).LinkTarget is null))
        {
            File.CreateSymbolicLink(Path.Combine(Root, name), Path.Combine("..data", name));
        }
        Directory.Delete(Path.Combine(Root, old), recursive: true);
    }

    private async Task<string> WritePayloadAsync(IReadOnlyDictionary<string, string> files)
    {
        var ts = $"..{DateTime.UtcNow:yyyy_MM_dd_HH_mm_ss}.{++_generation:D9}";
        var dir = Directory.CreateDirectory(Path.Combine(Root, ts)).FullName;
        foreach (var (name, content) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(dir, name), content);
        }
        return ts;
    }
}

/// <summary>
/// Policy hot reload through a Kubernetes ConfigMap volume: the service runs on the policy the
/// k8s base ships, mounted the kubelet's way; the ConfigMap is updated (symlink swap) and the new
/// policy is served without a restart, and again when it is swapped back.
/// </summary>
[Collection(K8sTools.Collection)]
public sealed class ConfigMapPolicyReloadTests(OidcProviderFixture idp) : IClassFixture<OidcProviderFixture>
{
    [Fact]
    public async Task PolicyConfigMap_UpdatedByASymlinkSwap_IsServedWithoutARestart()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var v1 = K8sTools.ConfigMap(docs, "envoy-authz-policy")["data"]!.AsObject()
            .ToDictionary(kv => kv.Key, kv => (string)kv.Value!);
        // The same ConfigMap after an edit: reads are no longer allowed with just any token.
        const string readRule = "http_method in {\"GET\", \"HEAD\", \"OPTIONS\"}";
        Assert.Contains(readRule, v1["authz.rego"]);
        var v2 = new Dictionary<string, string>(v1) { ["authz.rego"] = v1["authz.rego"].Replace(readRule, "http_method in {\"OPTIONS\"}", StringComparison.Ordinal) };
        var reloadInterval = (string)K8sTools.Documents((string)K8sTools.ConfigMap(docs, "envoy-authz-config")["data"]!["envoy-authz.yaml"]!)
            .Single()["EnvoyAuthz"]!["Policy"]!["ReloadInterval"]!;

        var root = Path.Combine(Directory.CreateTempSubdirectory("envoyauthz-configmap-").FullName, "policy");
        var volume = new KubeletConfigMapVolume(root);
        await volume.CreateAsync(v1);
        try
        {
            var settings = AuthzServiceHost.IssuerSettings(idp);
            settings.Add(new("EnvoyAuthz:Policy:Path", root));
            settings.Add(new("EnvoyAuthz:Policy:ReloadInterval", reloadInterval));
            await using var host = await AuthzServiceHost.StartAsync(settings);
            await host.WaitReadyAsync();
            var token = await idp.GetAccessTokenAsync(cancellationToken: TestContext.Current.CancellationToken);
            var read = Requests.Http("GET", "/api/v2/dags", headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });
            Assert.Equal("allowed", await ReasonAsync(host, read));

            await volume.SwapAsync(v2);
            await PollAsync(host, read, "policy_denied");

            await volume.SwapAsync(v1);
            await PollAsync(host, read, "allowed");

            Assert.True(await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"success\"}") >= 3);
            var failures = await host.MetricAsync("envoy_authz_policy_reloads_total{result=\"failure\"}");
            Assert.True(failures is null or 0, $"{failures} policy reloads failed");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(root)!, recursive: true);
        }
    }

    private static async Task<string> ReasonAsync(AuthzServiceHost host, Envoy.Service.Auth.V3.CheckRequest request)
    {
        var r = await host.CheckAsync(request);
        return r.Status.Code == 0 ? "allowed" : JsonDocument.Parse(r.DeniedResponse.Body).RootElement.GetProperty("reason").GetString()!;
    }

    /// <summary>Asks until the answer is <paramref name="expected"/>; the bound is a hang guard, not a timing assertion.</summary>
    private static async Task PollAsync(AuthzServiceHost host, Envoy.Service.Auth.V3.CheckRequest request, string expected)
    {
        var until = DateTime.UtcNow.AddSeconds(60);
        string reason;
        while ((reason = await ReasonAsync(host, request)) != expected && DateTime.UtcNow < until)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        Assert.True(reason == expected, $"still {reason}, expected {expected}; policy log:\n" +
            string.Join('\n', host.Logs.Lines.Where(l => l.Contains("olicy", StringComparison.Ordinal)).TakeLast(10)));
    }
}
