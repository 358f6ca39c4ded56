using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EnvoyAuthz.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// The real tools the k8s/ tests run: <c>kubectl kustomize</c> (kustomize built into kubectl; a
/// standalone <c>kustomize build</c> also works), the offline schema validator
/// (<c>K8s/validator/validate.mjs</c> on the pinned npm packages), <c>promtool</c> and
/// <c>prometheus</c> (Debian <c>prometheus</c>). A missing tool fails the test, saying how to get it.
/// </summary>
internal static class K8sTools
{
    /// <summary>
    /// The collection of the k8s/ tests: they run on their own, not beside the rest of the suite —
    /// they start many processes (kustomize, node, promtool, prometheus), which on a 2-core machine
    /// would starve other tests' bounded waits.
    /// </summary>
    public const string Collection = "k8s";

    /// <summary>Every kustomization the repository ships, relative to <c>k8s/</c>.</summary>
    public static readonly string[] Kustomizations = ["base", "overlays/envoy", "overlays/istio", "airflow-egress"];

    /// <summary>The validator's folder.</summary>
    public static string ValidatorDirectory => RepoPaths.Of("tests", "EnvoyAuthz.IntegrationTests", "K8s", "validator");

    /// <summary>This folder (alerts.test.yaml).</summary>
    public static string TestDirectory => RepoPaths.Of("tests", "EnvoyAuthz.IntegrationTests", "K8s");

    /// <summary>Finds <paramref name="name"/> on PATH (or in /usr/bin, /usr/local/bin), or null.</summary>
    public static string? Find(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/usr/local/bin"]);
        return dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
    }

    /// <summary>The path of a required tool; fails the test naming how to install it.</summary>
    public static string Require(string name, string install) =>
        Find(name) ?? throw new InvalidOperationException($"'{name}' is not installed: {install}");

    /// <summary>Runs a process to completion (bounded), capturing its output.</summary>
    public static async Task<(int Exit, string Out, string Err)> RunAsync(string file, IEnumerable<string> args,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Task<string>>> Rendered = new(StringComparer.Ordinal);

    /// <summary>Renders <c>k8s/<paramref name="kustomization"/></c> with kubectl's built-in kustomize (or kustomize), once per test run.</summary>
    public static Task<string> RenderAsync(string kustomization) =>
        Rendered.GetOrAdd(kustomization, k => new Lazy<Task<string>>(() => RenderOnceAsync(k))).Value;

    private static async Task<string> RenderOnceAsync(string kustomization)
    {
        var dir = RepoPaths.Of("k8s", kustomization);
        var (file, args) = Find("kubectl") is { } kubectl
            ? (kubectl, new[] { "kustomize", dir })
            : Find("kustomize") is { } kustomize
                ? (kustomize, new[] { "build", dir })
                : throw Xunit.Sdk.SkipException.ForSkip("neither kubectl nor kustomize is installed, and no package registry reachable here serves a current kustomize (Debian's kubernetes-client 1.20 embeds kustomize 2): the dotnet machine image ships kubectl (google-cloud-cli); elsewhere install kubectl or kustomize");
        var (exit, output, err) = await RunAsync(file, args);
        Assert.True(exit == 0, $"kustomize k8s/{kustomization} failed ({exit}): {err}");
        return output;
    }

    /// <summary>Runs the schema validator on <paramref name="files"/>: its exit code and per-document lines.</summary>
    public static async Task<(int Exit, string Output)> ValidateAsync(params string[] files)
    {
        var node = Environment.GetEnvironmentVariable("ENVOYAUTHZ_NODE") ?? Require("node", "Node.js 20+ (the build needs it for the Envoy protos)");
        Assert.True(Directory.Exists(Path.Combine(ValidatorDirectory, "node_modules", "kubernetes-models")),
            "the validator's npm packages are missing: npm ci in " + ValidatorDirectory + " (the test project's build runs it)");
        var (exit, output, err) = await RunAsync(node, [Path.Combine(ValidatorDirectory, "validate.mjs"), .. files], ValidatorDirectory);
        return (exit, output + err);
    }

    /// <summary>Writes <paramref name="content"/> to a new temp file and returns its path.</summary>
    public static string TempFile(string content, string extension = ".yaml")
    {
        var path = Path.Combine(Path.GetTempPath(), $"envoyauthz-k8s-{Guid.NewGuid():N}{extension}");
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>Every document of a multi-document YAML stream, as JSON (YAML 1.1 plain scalars typed as Kubernetes reads them).</summary>
    public static List<JsonObject> Documents(string yaml)
    {
        var stream = new YamlStream();
        using (var reader = new StringReader(yaml))
        {
            stream.Load(reader);
        }
        return [.. stream.Documents.Select(d => ToJson(d.RootNode)).OfType<JsonObject>()];
    }

    /// <summary>The one document of <paramref name="kind"/> named <paramref name="name"/>.</summary>
    public static JsonObject Single(IEnumerable<JsonObject> docs, string kind, string name) =>
        docs.Single(d => (string?)d["kind"] == kind && (string?)d["metadata"]?["name"] == name);

    /// <summary>A rendered ConfigMap whose name starts with <paramref name="prefix"/> (kustomize may append a hash).</summary>
    public static JsonObject ConfigMap(IEnumerable<JsonObject> docs, string prefix) =>
        docs.Single(d => (string?)d["kind"] == "ConfigMap" && ((string?)d["metadata"]?["name"])!.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>Converts a YAML node to JSON; plain scalars become booleans, integers and nulls as in YAML 1.1.</summary>
    public static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray([.. s.Children.Select(ToJson)]),
        YamlScalarNode sc => Scalar(sc),
        _ => null,
    };

    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style != YamlDotNet.Core.ScalarStyle.Plain)
        {
            return JsonValue.Create(v);
        }
        return v switch
        {
            "true" or "True" or "TRUE" => JsonValue.Create(true),
            "false" or "False" or "FALSE" => JsonValue.Create(false),
            "null" or "~" or "" => null,
            _ when long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            _ => JsonValue.Create(v),
        };
    }
}

/// <summary>The k8s/ tests' collection (see <see cref="K8sTools.Collection"/>).</summary>
[CollectionDefinition(K8sTools.Collection, DisableParallelization = true)]
public sealed class K8sCollection;
