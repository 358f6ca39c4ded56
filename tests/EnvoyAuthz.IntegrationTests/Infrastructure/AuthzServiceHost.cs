using System.Net;
using System.Net.Sockets;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Hosting;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// The real service (the same <see cref="AuthzHost"/> <c>make run</c> uses) on two free loopback
/// ports, with a gRPC client generated from the upstream Envoy protos, an HTTP client for
/// /healthz, /readyz and /metrics, and a capture of everything it logs.
/// </summary>
public sealed class AuthzServiceHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private AuthzServiceHost(WebApplication app, int grpcPort, int httpPort, LogCapture logs)
    {
        _app = app;
        GrpcPort = grpcPort;
        HttpPort = httpPort;
        Logs = logs;
        _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}");
        Client = new Envoy.Service.Auth.V3.Authorization.AuthorizationClient(_channel);
        Http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
    }

    /// <summary>The gRPC port.</summary>
    public int GrpcPort { get; }
    /// <summary>The HTTP port.</summary>
    public int HttpPort { get; }
    /// <summary>Everything the service logged.</summary>
    public LogCapture Logs { get; }
    /// <summary>ext_authz client.</summary>
    public Envoy.Service.Auth.V3.Authorization.AuthorizationClient Client { get; }
    /// <summary>HTTP client for the HTTP listener.</summary>
    public HttpClient Http { get; }
    /// <summary>The service's DI container.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>Starts the service with <paramref name="settings"/> (keys under <c>EnvoyAuthz:</c>).</summary>
    public static async Task<AuthzServiceHost> StartAsync(IEnumerable<KeyValuePair<string, string?>> settings,
        Action<IServiceCollection>? configureServices = null, bool dev = false)
    {
        var (grpcPort, httpPort) = TwoFreePorts();
        var all = new List<KeyValuePair<string, string?>>
        {
            new("EnvoyAuthz:Server:GrpcPort", grpcPort.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("EnvoyAuthz:Server:HttpPort", httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("EnvoyAuthz:Server:BindAddress", "127.0.0.1"),
            // A shared 2-core CI machine: a generous budget unless a test sets its own.
            new("EnvoyAuthz:Server:CheckTimeout", "00:00:10"),
        };
        all.AddRange(settings);
        // Later settings override earlier ones (test defaults first).
        var merged = all.GroupBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(g => g.Last()).ToList();
        var (options, configuration) = AuthzHost.LoadConfiguration(null, dev, merged);
        var logs = new LogCapture();
        var app = AuthzHost.Build(options, configuration, configureServices, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(logs);
            logging.SetMinimumLevel(LogLevel.Debug);
        });
        await app.StartAsync();
        return new AuthzServiceHost(app, grpcPort, httpPort, logs);
    }

    /// <summary>Settings trusting <paramref name="idp"/> as issuer <c>oidc</c> with its default audience.</summary>
    public static List<KeyValuePair<string, string?>> IssuerSettings(OidcProviderFixture idp, int index = 0, string name = "oidc") =>
    [
        new($"EnvoyAuthz:Identity:Issuers:{index}:Name", name),
        new($"EnvoyAuthz:Identity:Issuers:{index}:Issuer", idp.Issuer),
        new($"EnvoyAuthz:Identity:Issuers:{index}:Audiences:0", OidcProviderFixture.DefaultAudience),
        new($"EnvoyAuthz:Identity:Issuers:{index}:RequireHttpsMetadata", "false"),
    ];

    /// <summary>Sends one Check.</summary>
    public async Task<CheckResponse> CheckAsync(CheckRequest request) =>
        await Client.CheckAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken);

    /// <summary>Waits until /readyz answers 200.</summary>
    public async Task WaitReadyAsync(TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (DateTime.UtcNow < until)
        {
            using var r = await Http.GetAsync("/readyz", TestContext.Current.CancellationToken);
            if (r.StatusCode == HttpStatusCode.OK)
            {
                return;
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("the service did not become ready");
    }

    /// <summary>The value of one series in /metrics, or null if absent.</summary>
    public async Task<double?> MetricAsync(string series)
    {
        var text = await Http.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Two distinct free ports (both listeners held open while reading, so the OS cannot hand out one twice).</summary>
    private static (int, int) TwoFreePorts()
    {
        using var a = new TcpListener(IPAddress.Loopback, 0);
        using var b = new TcpListener(IPAddress.Loopback, 0);
        a.Start();
        b.Start();
        return (((IPEndPoint)a.LocalEndpoint).Port, ((IPEndPoint)b.LocalEndpoint).Port);
    }
}

/// <summary>Captures every log line (message and exception) a host writes.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly List<string> _lines = [];

    /// <summary>All lines so far.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>All lines joined.</summary>
    public string Text => string.Join('\n', Lines);

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)}";
            if (state is IEnumerable<KeyValuePair<string, object?>> props)
            {
                line += " {" + string.Join(", ", props.Select(p => $"{p.Key}={p.Value}")) + "}";
            }
            if (exception is not null)
            {
                line += "\n" + exception;
            }
            lock (owner._lines)
            {
                owner._lines.Add(line);
            }
        }
    }
}
