using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// A real <c>prometheus</c> (Debian package) on 127.0.0.1 and a free port, scraping one target
/// every second into a temporary storage folder; queried through its HTTP API.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The port of its HTTP API.</summary>
    public int Port { get; }

    /// <summary>Starts Prometheus scraping <c>http://<paramref name="target"/>/metrics</c> as job <paramref name="job"/>.</summary>
    public static async Task<PrometheusServer> StartAsync(string target, string job)
    {
        var binary = K8sTools.Require("prometheus", "apt-get install prometheus (.ci/run installs it)");
        var dir = Directory.CreateTempSubdirectory("envoyauthz-prometheus-").FullName;
        var config = Path.Combine(dir, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 900ms
              evaluation_interval: 1s
            scrape_configs:
              - job_name: {job}
                metrics_path: /metrics
                static_configs:
                  - targets: ["{target}"]
            """);
        int port;
        using (var l = new TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((IPEndPoint)l.LocalEndpoint).Port;
        }
        var psi = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in new[]
                 {
                     "--config.file=" + config, "--storage.tsdb.path=" + Path.Combine(dir, "data"),
                     "--storage.tsdb.retention.time=1h", "--web.listen-address=127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
                     "--log.level=warn",
                 })
        {
            psi.ArgumentList.Add(a);
        }
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, dir, port);
        var until = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < until && !process.HasExited)
        {
            try
            {
                using var r = await server._http.GetAsync("/-/ready");
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(200);
        }
        await server.DisposeAsync();
        throw new TimeoutException("prometheus did not become ready");
    }

    /// <summary>Runs an instant query; returns the API's <c>data</c> element (throws when the API reports an error).</summary>
    public async Task<JsonElement> QueryAsync(string promql)
    {
        using var r = await _http.GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql));
        var body = await r.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(body);
        if (doc.RootElement.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"query failed: {promql}: {body}");
        }
        return doc.RootElement.GetProperty("data").Clone();
    }

    /// <summary>The sample values of an instant vector (or scalar) query, as Prometheus prints them.</summary>
    public async Task<List<string>> ValuesAsync(string promql)
    {
        var data = await QueryAsync(promql);
        var result = data.GetProperty("result");
        return data.GetProperty("resultType").GetString() switch
        {
            "vector" => [.. result.EnumerateArray().Select(s => s.GetProperty("value")[1].GetString()!)],
            "scalar" => [result[1].GetString()!],
            var t => throw new InvalidOperationException($"unexpected result type {t} for {promql}"),
        };
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
