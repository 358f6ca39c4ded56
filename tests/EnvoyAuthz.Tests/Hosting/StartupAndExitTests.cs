using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz.Tests.Hosting;

/// <summary>
/// How the process ends: every start-up error exits 2 with one message (no unhandled exception,
/// no stack trace — the real executable, so the exit code is the one a supervisor sees), a
/// background service that faults exits non-zero, a clean shutdown exits 0.
/// </summary>
public sealed class StartupAndExitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("envoy-authz-start-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Config(string body, int grpcPort = 0, string server = "")
    {
        var path = Path.Combine(_dir, "config.yaml");
        File.WriteAllText(path, $$"""
            EnvoyAuthz:
              Server: { GrpcPort: {{grpcPort}}, HttpPort: 0, BindAddress: 127.0.0.1{{server}} }
            {{body}}
            """);
        return path;
    }

    private string File_(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Serve(string config)
    {
        var exe = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "envoy-authz.exe" : "envoy-authz");
        var start = File.Exists(exe)
            ? new ProcessStartInfo(exe, ["serve", "--config", config])
            : new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "envoy-authz.dll"), "serve", "--config", config]);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(guard.Token); // a start-up error ends the process by itself
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("the service kept running: the start-up error was not an exit");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    public static TheoryData<string, string> StartupErrors() => new()
    {
        { "connections file: broken YAML", "EnvoyAuthz:Airflow:Connections:File: The Airflow connections file" },
        { "connections file: missing", "the file does not exist" },
        { "policy: data.yaml with a sequence as key", "data.yaml:1:3: a mapping key must be a scalar" },
        { "policy: Rego syntax error", "EnvoyAuthz:Policy:Path: authz.rego:" },
        { "option out of range", "EnvoyAuthz:Server:CheckTimeout" },
        { "port in use", "cannot start:" },
    };

    [Theory]
    [MemberData(nameof(StartupErrors))]
    public async Task StartupError_ExitsTwo_WithOneMessage(string what, string expected)
    {
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        string config;
        switch (what)
        {
            case "connections file: broken YAML":
                config = Config($"  Airflow: {{ Enabled: true, Connections: {{ File: {File_("conns.yaml", "a:\n  password: PlantedSecret\n   bad: [\n")} }} }}");
                break;
            case "connections file: missing":
                config = Config($"  Airflow: {{ Enabled: true, Connections: {{ File: {Path.Combine(_dir, "missing.yaml")} }} }}");
                break;
            case "policy: data.yaml with a sequence as key":
                File_("policy/authz.rego", "package envoy.authz\nallow := true\n");
                File_("policy/data.yaml", "? [a, b]\n: c\n");
                config = Config($"  Policy: {{ Path: {Path.Combine(_dir, "policy")} }}");
                break;
            case "policy: Rego syntax error":
                File_("policy/authz.rego", "package envoy.authz\nimport rego.v1\n\nallow if {\n  input.x ==\n}\n");
                config = Config($"  Policy: {{ Path: {Path.Combine(_dir, "policy")} }}");
                break;
            case "option out of range":
                config = Config("", server: ", CheckTimeout: '00:00:00'");
                break;
            default:
                busy.Start();
                config = Config("", grpcPort: ((IPEndPoint)busy.LocalEndpoint).Port);
                break;
        }

        var (code, stdout, stderr) = await Serve(config);

        Assert.Equal(2, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        var all = stdout + stderr;
        Assert.DoesNotContain("Unhandled exception", all, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal); // no stack trace anywhere
        Assert.DoesNotContain("Planted", all, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n'), l => l.StartsWith("envoy-authz:", StringComparison.Ordinal)); // one headline
    }

    private sealed class FaultingService : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Yield();
            throw new InvalidCastException("a reload loop that let an exception escape");
        }
    }

    private sealed class StoppingService(IHostApplicationLifetime lifetime) : BackgroundService
    {
        protected override Task ExecuteAsync(CancellationToken stoppingToken)
        {
            lifetime.ApplicationStarted.Register(lifetime.StopApplication); // as a SIGTERM once running
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task BackgroundServiceFaults_TheHostStops_AndTheExitCodeIsNonZero()
    {
        var stderr = new StringWriter();
        var code = await Program.ServeAsync(["--config", Config("")], stderr, s => s.AddHostedService<FaultingService>())
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, code);
        Assert.Contains("stopped because a background service failed (FaultingService: InvalidCastException)", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CleanShutdown_ExitsZero()
    {
        var stderr = new StringWriter();
        var code = await Program.ServeAsync(["--config", Config("")], stderr, s => s.AddHostedService<StoppingService>())
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(0, code);
        Assert.Equal("", stderr.ToString());
    }
}
