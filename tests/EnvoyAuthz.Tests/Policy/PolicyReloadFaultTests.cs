using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Policy;

/// <summary>
/// Hostile and vanishing policy content, at start and on reload: every problem is a rejected load
/// naming the file (and line and column where there is one); a reload never throws and never
/// replaces the last good policy with an empty one; bodies from a bundle server are bounded.
/// </summary>
public sealed class PolicyReloadFaultTests : IDisposable
{
    private const string GoodPolicy = "package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if input.v == data.envoy.authz.expected\n";
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-reload-").FullName;
    private readonly AuthzMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly FakeLogCollector _logs = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private RegoPolicyEngine Engine(string? path = null, Action<PolicyOptions>? configure = null, IHttpClientFactory? clients = null)
    {
        var options = new AuthzOptions();
        options.Policy.Path = path ?? Path.Combine(_dir, "policy");
        configure?.Invoke(options.Policy);
        return new RegoPolicyEngine(options, _metrics, new FakeTimeProvider(), new FakeLogger<RegoPolicyEngine>(_logs), clients);
    }

    private string Write(string relative, string content, string? root = null)
    {
        var full = Path.Combine(root ?? Path.Combine(_dir, "policy"), relative);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        File.SetLastWriteTimeUtc(full, DateTime.UtcNow.AddSeconds(Random.Shared.Next(1, 100_000)));
        return full;
    }

    private void WriteGoodPolicy()
    {
        Write("authz.rego", GoodPolicy);
        Write("envoy/authz/data.json", """{"expected": 1}""");
    }

    private static async Task<RegoValue?> Decide(RegoPolicyEngine engine, int v)
    {
        var result = await engine.EvaluateAsync(new PolicyContext
        {
            Request = Requests.Parsed(Requests.Http()),
            Input = (RegoObject)RegoJson.Parse($$"""{"v": {{v}}}"""),
        }, TestContext.Current.CancellationToken);
        Assert.Null(result.ErrorReason);
        return result.Decision;
    }

    private double Reloads(string result) => _metrics.PolicyReloads.WithLabels(result).Value;

    private static string AliasBomb()
    {
        var sb = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i <= 7; i++)
        {
            sb.Append($"a{i}: &a{i} [").Append(string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))).Append("]\n");
        }
        return sb.ToString(); // 10^8 nodes once aliases are expanded
    }

    public static TheoryData<string, string, string> HostileDataFiles() => new()
    {
        // The example: a sequence as a mapping key threw InvalidCastException out of the reload loop.
        { "extra/data.yaml", "? [a, b]\n: c\n", "extra/data.yaml:1:3: a mapping key must be a scalar" },
        { "extra/data.yaml", "? {a: 1}\n: c\n", "extra/data.yaml:1:3: a mapping key must be a scalar" },
        { "extra/data.yaml", "k:\n  ? [x]\n  : y\n", "extra/data.yaml:2:5: a mapping key must be a scalar" },
        { "extra/data.yaml", AliasBomb(), "more than 1000000 nodes" },
        { "extra/data.yaml", string.Concat(Enumerable.Repeat("[", 300)) + string.Concat(Enumerable.Repeat("]", 300)), "nested deeper than 256 levels" },
        { "extra/data.yaml", "a: b: c\n", "extra/data.yaml:1:" },
        { "extra/data.yaml", "- just\n- a list\n", "extra/data.yaml: the document must be an object" },
        { "extra/data.json", "[1, 2]", "extra/data.json: the document must be an object" },
        { "extra/data.json", "{\"a\": ", "extra/data.json:1:" },
        { "envoy/authz/data.yaml", "expected: 2\n", "key 'expected' is defined twice" },
    };

    [Theory]
    [MemberData(nameof(HostileDataFiles))]
    public async Task Reload_HostileDataFile_IsRejectedWithItsLocation_TheLastGoodPolicyKeepsServing(string file, string content, string expected)
    {
        WriteGoodPolicy();
        var engine = Engine();
        Assert.Equal(RegoValue.True, await Decide(engine, 1));

        Write(file, content);
        Assert.False(engine.TryReload()); // never throws
        Assert.Equal(RegoValue.True, await Decide(engine, 1));
        Assert.Equal(1, Reloads("failure"));
        var rejected = Assert.Single(_logs.GetSnapshot(), r => r.Id.Name == "PolicyRejected");
        Assert.Equal(LogLevel.Error, rejected.Level);
        Assert.Contains(expected, rejected.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(HostileDataFiles))]
    public void Start_HostileDataFile_FailsWithItsLocation(string file, string content, string expected)
    {
        WriteGoodPolicy();
        Write(file, content);
        var ex = Assert.Throws<PolicyLoadException>(() => Engine());
        Assert.Contains(ex.Errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reload_TheSameBrokenFileAgain_IsLoggedOnce()
    {
        WriteGoodPolicy();
        var engine = Engine();
        Write("extra/data.yaml", "? [a, b]\n: c\n");
        Assert.False(engine.TryReload());
        Write("extra/data.yaml", "? [a, b]\n: c\n"); // touched again, same problem
        Assert.False(engine.TryReload());
        Assert.Equal(2, Reloads("failure"));
        Assert.Equal([LogLevel.Error, LogLevel.Debug], _logs.GetSnapshot().Where(r => r.Id.Name == "PolicyRejected").Select(r => r.Level));
        Assert.Equal(RegoValue.True, await Decide(engine, 1));
    }

    public static TheoryData<string> Deletions() => ["the folder", "every module", "the bundle file"];

    [Theory]
    [MemberData(nameof(Deletions))]
    public async Task Reload_PolicyDeleted_IsAFailedReload_NotAnEmptyPolicy(string what)
    {
        string path;
        if (what == "the bundle file")
        {
            path = Path.Combine(_dir, "bundle.tar.gz");
            File.WriteAllBytes(path, TarGz(("envoy/authz/policy.rego", GoodPolicy), ("envoy/authz/data.json", """{"expected": 1}""")));
        }
        else
        {
            WriteGoodPolicy();
            path = Path.Combine(_dir, "policy");
        }
        var engine = Engine(path);
        Assert.Equal(RegoValue.True, await Decide(engine, 1));

        switch (what)
        {
            case "the folder":
                Directory.Delete(path, recursive: true);
                break;
            case "every module":
                File.Delete(Path.Combine(path, "authz.rego"));
                break;
            default:
                File.Delete(path);
                break;
        }
        Assert.False(engine.TryReload());
        Assert.True(engine.Ready);
        Assert.Equal(RegoValue.True, await Decide(engine, 1));
        Assert.Equal(1, Reloads("failure"));
    }

    [Fact]
    public async Task ConfigMapVolume_LoadsEachFileOnce_AndFollowsTheSymlinkSwap()
    {
        // The layout of a Kubernetes ConfigMap volume: the files are symlinks into ..data, itself a
        // symlink to a timestamped folder that an update replaces atomically.
        var root = Path.Combine(_dir, "cm");
        Write("authz.rego", GoodPolicy, Path.Combine(root, "..2026_11_23_12_00_00.000000001"));
        Write("data.yaml", "envoy:\n  authz:\n    expected: 1\n", Path.Combine(root, "..2026_11_23_12_00_00.000000001"));
        File.CreateSymbolicLink(Path.Combine(root, "..data"), "..2026_11_23_12_00_00.000000001");
        File.CreateSymbolicLink(Path.Combine(root, "authz.rego"), "..data/authz.rego");
        File.CreateSymbolicLink(Path.Combine(root, "data.yaml"), "..data/data.yaml");

        var engine = Engine(root);
        Assert.Equal(2, engine.Bundle.Modules.Count + 1); // one module (and one data file), not three copies
        Assert.Equal(RegoValue.True, await Decide(engine, 1));

        Write("authz.rego", GoodPolicy, Path.Combine(root, "..2026_11_23_12_05_00.000000002"));
        Write("data.yaml", "envoy:\n  authz:\n    expected: 2\n", Path.Combine(root, "..2026_11_23_12_05_00.000000002"));
        File.CreateSymbolicLink(Path.Combine(root, "..data_tmp"), "..2026_11_23_12_05_00.000000002");
        RenameOver(Path.Combine(root, "..data_tmp"), Path.Combine(root, "..data"));
        Directory.Delete(Path.Combine(root, "..2026_11_23_12_00_00.000000001"), recursive: true);

        Assert.True(engine.TryReload());
        Assert.Equal(RegoValue.True, await Decide(engine, 2));
        Assert.Equal(0, Reloads("failure"));
    }

    [Fact]
    public void Bundle_ThatDecompressesBeyondTheLimit_IsRejected()
    {
        // 8 MiB of zeros in an entry no policy reads compresses to a few KiB.
        var bundle = TarGz(("envoy/authz/policy.rego", GoodPolicy), ("big.bin", new string('\0', 8 << 20)));
        Assert.True(bundle.Length < 64 << 10);
        var ex = Assert.Throws<PolicyLoadException>(() => PolicyBundle.FromTarGz(bundle, "bundle.tar.gz", maxBytes: 1 << 20));
        Assert.Contains("larger than 1048576 bytes decompressed", Assert.Single(ex.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RemoteBundle_ChunkedWithoutEnd_ReadStopsAtTheLimit_TheLastGoodPolicyKeepsServing()
    {
        await using var server = new RawHttpServer { ContentType = "application/gzip" };
        server.Body = TarGz(("envoy/authz/policy.rego", "package envoy.authz\nallow := true\n"));
        server.Chunked = true;
        var clients = new ServiceCollection().AddHttpClient().BuildServiceProvider().GetRequiredService<IHttpClientFactory>();
        var engine = Engine(configure: o =>
        {
            o.Path = null;
            o.BundleUrl = server.Url + "/bundle.tar.gz";
        }, clients: clients);
        Assert.False(engine.Ready);
        Assert.True(await engine.TryReloadRemoteAsync(TestContext.Current.CancellationToken).WaitAsync(HangGuard, TestContext.Current.CancellationToken));
        Assert.True(engine.Ready);

        server.Mode = RawHttpMode.Endless; // a chunked body has no Content-Length to refuse up front
        Assert.False(await engine.TryReloadRemoteAsync(TestContext.Current.CancellationToken).WaitAsync(HangGuard, TestContext.Current.CancellationToken));
        Assert.True(server.BytesSent < 256L << 20, $"the server sent {server.BytesSent} bytes");
        Assert.Equal(1, Reloads("failure"));
        Assert.Contains(_logs.GetSnapshot(), r => r.Id.Name == "BundleDownloadFailed" && r.Message.Contains("larger than 67108864 bytes", StringComparison.Ordinal));
        Assert.True(engine.Ready);
        Assert.Equal(RegoValue.True, await Decide(engine, 0));
    }

    /// <summary>rename(2), as Kubernetes' atomic writer swaps ..data (File.Move would follow the link to a folder).</summary>
    private static void RenameOver(string from, string to)
    {
        using var mv = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mv", ["-T", "-f", from, to]) { UseShellExecute = false })!;
        mv.WaitForExit();
        Assert.Equal(0, mv.ExitCode);
    }

    private static byte[] TarGz(params (string Name, string Text)[] files)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Pax))
        {
            foreach (var (name, text) in files)
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) });
            }
        }
        return ms.ToArray();
    }
}
