using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> (Debian package) on 127.0.0.1 and a free port, without persistence,
/// for shared rate limits. Tests skip, saying why, when the binary is not installed — and fail under
/// <c>CI=true</c> (<see cref="ExternalComponent"/>).
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;

    private RedisServer(int port) => Port = port;

    /// <summary>The port.</summary>
    public int Port { get; }

    /// <summary><c>127.0.0.1:port</c>.</summary>
    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>The redis-server binary, or null.</summary>
    public static string? Binary => new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);

    /// <summary>Starts a server, or skips the test when redis-server is missing (fails it under <c>CI=true</c>).</summary>
    public static async Task<RedisServer> StartAsync()
    {
        if (Binary is null)
        {
            ExternalComponent.Missing("redis-server", "apt-get install redis-server; .ci/run installs it");
        }
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        var server = new RedisServer(port);
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>Starts the process (again) on the same port.</summary>
    public async Task StartProcessAsync()
    {
        _process = Process.Start(new ProcessStartInfo(Binary!,
            $"--port {Port} --bind 127.0.0.1 --save \"\" --appendonly no --protected-mode yes --loglevel warning")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < until)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException("redis-server did not start");
    }

    /// <summary>Kills the server (for outage tests).</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
    }
}
