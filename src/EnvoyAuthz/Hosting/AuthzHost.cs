using System.Net;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Grpc;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Response;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;
using Prometheus;

namespace EnvoyAuthz.Hosting;

/// <summary>The configuration is invalid; <see cref="Errors"/> lists every problem.</summary>
public sealed class ConfigurationErrorsException(IReadOnlyList<string> errors)
    : Exception("invalid configuration:\n  " + string.Join("\n  ", errors))
{
    /// <summary>Every problem found.</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}

/// <summary>Builds the service: configuration, the stages, the two listeners and their endpoints.</summary>
public static class AuthzHost
{
    private const string ListenerItem = "envoy-authz.listener";
    private const string GrpcListener = "grpc";
    private const string HttpListener = "http";

    /// <summary>
    /// Loads configuration: the defaults in <see cref="AuthzOptions"/>, then <c>--config FILE</c>
    /// (JSON, or YAML by extension), then <c>EnvoyAuthz__…</c> environment variables, then
    /// <paramref name="overrides"/> (tests). Throws <see cref="ConfigurationErrorsException"/> listing every error.
    /// </summary>
    public static (AuthzOptions Options, IConfiguration Configuration) LoadConfiguration(
        string? configFile, bool dev, IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            var full = Path.GetFullPath(configFile);
            if (!File.Exists(full))
            {
                throw new ConfigurationErrorsException([$"--config: file '{configFile}' does not exist."]);
            }
            var ext = Path.GetExtension(full).ToLowerInvariant();
            if (ext is ".yaml" or ".yml")
            {
                builder.Add(new YamlConfigurationSource
                {
                    FileProvider = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(Path.GetDirectoryName(full)!),
                    Path = Path.GetFileName(full),
                    Optional = false,
                    ReloadOnChange = false,
                });
            }
            else
            {
                builder.AddJsonFile(full, optional: false, reloadOnChange: false);
            }
        }
        builder.AddEnvironmentVariables();
        if (overrides is not null)
        {
            builder.AddInMemoryCollection(overrides);
        }
        IConfigurationRoot config;
        try
        {
            config = builder.Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or YamlDotNet.Core.YamlException or System.Text.Json.JsonException)
        {
            throw new ConfigurationErrorsException([$"--config: '{configFile}' cannot be parsed: {ex.Message}"]);
        }

        var options = new AuthzOptions();
        try
        {
            config.GetSection(AuthzOptions.SectionName).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            throw new ConfigurationErrorsException([ex.Message + (ex.InnerException is { } inner ? " " + inner.Message : "")]);
        }
        if (dev)
        {
            options.Dev.Enabled = true;
        }
        if (configFile is not null && options.Policy.Path is { } policyPath && !Path.IsPathRooted(policyPath))
        {
            // Paths in a configuration file are relative to that file.
            options.Policy.Path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(configFile))!, policyPath));
        }
        if (options.Dev.Enabled && config[$"{AuthzOptions.SectionName}:Server:BindAddress"] is null)
        {
            options.Server.BindAddress = "127.0.0.1"; // dev mode stays on loopback unless told otherwise
        }
        var errors = AuthzOptionsValidator.Collect(options);
        if (errors.Count > 0)
        {
            throw new ConfigurationErrorsException(errors);
        }
        return (options, config);
    }

    /// <summary>Builds the web application for validated <paramref name="options"/>.</summary>
    public static WebApplication Build(AuthzOptions options, IConfiguration configuration, Action<IServiceCollection>? configureServices = null,
        Action<ILoggingBuilder>? configureLogging = null)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "envoy-authz" });
        builder.Configuration.AddConfiguration(configuration);
        builder.WebHost.UseKestrelCore();
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        // Logging never holds up a Check: when stdout falls behind in a burst, the console drops lines
        // (and writes how many) instead of blocking request threads until Kestrel's own loops starve.
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(
            o => o.QueueFullMode = Microsoft.Extensions.Logging.Console.ConsoleLoggerQueueFullMode.DropWrite);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        // The host's own errors repeat what Program reports once (a start-up error, a faulted service);
        // its Critical line for a faulted background service (with the exception) stays.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        configureLogging?.Invoke(builder.Logging);

        builder.WebHost.ConfigureKestrel(k =>
        {
            var address = options.Server.BindAddress == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Server.BindAddress);
            k.AddServerHeader = false;
            // More streams per connection than Checks can be admitted or queued, so a burst on one
            // connection reaches the service and is answered (503 overloaded, shed before any work)
            // instead of waiting behind the connection's stream limit until Envoy times out; Kestrel
            // sizes its per-connection output queue from this limit too.
            k.Limits.Http2.MaxStreamsPerConnection = Math.Max(100, options.Server.MaxConcurrentChecks + options.Server.MaxQueuedChecks + 100);
            // Identity headers in HTTP mode may hold non-ASCII text: sent as UTF-8, as Envoy sends them over gRPC
            // (CheckResponseFactory drops values with control characters, which no header may carry).
            k.ResponseHeaderEncodingSelector = static _ => System.Text.Encoding.UTF8;
            k.Listen(address, options.Server.GrpcPort, lo =>
            {
                lo.Protocols = HttpProtocols.Http2;
                lo.Use(next => ctx => { ctx.Items[ListenerItem] = GrpcListener; return next(ctx); });
            });
            k.Listen(address, options.Server.HttpPort, lo =>
            {
                lo.Protocols = HttpProtocols.Http1;
                lo.Use(next => ctx => { ctx.Items[ListenerItem] = HttpListener; return next(ctx); });
            });
        });

        var s = builder.Services;
        s.AddSingleton(options);
        // A background service that faults stops the host, and Program exits non-zero (FaultedServices).
        s.Configure<HostOptions>(h => h.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost);
        s.TryAddSingleton(TimeProvider.System);
        s.AddSingleton(new AuthzMetrics(Prometheus.Metrics.NewCustomRegistry()));
        s.AddHttpClient("oidc-metadata");
        s.AddHttpClient("remote-opa");
        s.AddHttpClient("policy-bundle", h => h.Timeout = options.Policy.BundleTimeout + TimeSpan.FromSeconds(1));
        s.AddHttpClient("policy-http-send", h => h.Timeout = options.Policy.HttpSend.Timeout + TimeSpan.FromSeconds(1))
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false });
        s.AddRouting();
        s.AddGrpc(o => o.EnableDetailedErrors = false);
        s.AddSingleton<global::Grpc.AspNetCore.Server.Model.IServiceMethodProvider<AuthorizationService>, AuthorizationMethodProvider>();
        s.AddGrpcHealthChecks().AddCheck<ReadinessCheck>("ready", tags: ["ready"]);

        SecurityKey? devKey = null;
        if (options.Dev.Enabled)
        {
            devKey = DevSigningKey.Generate(options.Dev.KeyFile ?? DevSigningKey.DefaultPath, options.Dev.Issuer, options.Dev.Audience);
        }
        s.AddSingleton(sp => new IssuerRegistry(options, sp.GetRequiredService<IHttpClientFactory>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<AuthzMetrics>(), sp.GetRequiredService<ILoggerFactory>(), devKey, sp.GetRequiredService<Resilience.DependencyGuards>()));
        s.AddSingleton(sp => new ValidatedTokenCache(options.Identity.CacheSize, options.Identity.CacheMaxLifetime,
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<AuthzMetrics>()));
        s.TryAddSingleton<IIdentityStage, JwtIdentityStage>();
        s.AddAirflow(options);
        switch (options.Policy.Engine)
        {
            case PolicyEngines.RemoteOpa:
                s.TryAddSingleton<IPolicyEngine, RemoteOpaPolicyEngine>();
                break;
            case PolicyEngines.Authenticated:
                s.TryAddSingleton<IPolicyEngine, AuthenticatedPolicyEngine>();
                break;
            default:
                s.TryAddSingleton<IPolicyEngine, RegoPolicyEngine>();
                s.AddHostedService<PolicyReloadService>();
                break;
        }
        s.AddSingleton<Resilience.DependencyGuards>();
        if (options.RateLimits.Enabled && options.RateLimits.Backend == RateLimitBackends.Redis)
        {
            s.TryAddSingleton<RateLimiting.RedisRateLimiter>();
            s.TryAddSingleton<RateLimiting.IRateLimiter>(sp => sp.GetRequiredService<RateLimiting.RedisRateLimiter>());
        }
        else if (options.RateLimits.Enabled)
        {
            s.TryAddSingleton<RateLimiting.IRateLimiter, RateLimiting.LocalRateLimiter>();
        }
        else
        {
            s.TryAddSingleton<RateLimiting.IRateLimiter, RateLimiting.NoRateLimiter>();
        }
        s.AddSingleton<PolicyInputBuilder>();
        s.AddSingleton<CheckResponseFactory>();
        s.AddSingleton<CheckPipeline>();
        s.AddHostedService<KeyWarmUpService>();
        configureServices?.Invoke(s);

        var app = builder.Build();
        try
        {
            // Fail fast: a policy that does not load or compile stops the start, every error listed.
            app.Services.GetRequiredService<IPolicyEngine>();
        }
        catch (PolicyLoadException ex)
        {
            throw new ConfigurationErrorsException([.. ex.Errors.Select(err => $"{AuthzOptions.SectionName}:Policy:Path: {err}")]);
        }
        try
        {
            // Fail fast likewise on the connections file: a missing or broken one stops the start with one message.
            app.Services.GetService<FileConnectionSource>()?.LoadInitial();
        }
        catch (InvalidOperationException ex)
        {
            throw new ConfigurationErrorsException([$"{AuthzOptions.SectionName}:Airflow:Connections:File: {ex.Message}"]);
        }

        // Each endpoint answers only on its own listener.
        app.Use(async (ctx, next) =>
        {
            var listener = ctx.Features.Get<IConnectionItemsFeature>()?.Items[ListenerItem] as string;
            var isGrpc = ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true;
            if (listener == GrpcListener && !isGrpc)
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            if (listener == HttpListener && isGrpc)
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            await next(ctx);
        });
        app.UseMiddleware<CheckCallBuffer>();
        app.UseRouting();
        app.MapGrpcService<AuthorizationService>();
        app.MapGrpcHealthChecksService();
        app.Map(Http.HttpAuthorizationEndpoint.Prefix + "/{**path}", (HttpContext ctx, CheckPipeline pipeline) =>
            Http.HttpAuthorizationEndpoint.HandleAsync(ctx, pipeline, options));
        app.Map(Http.HttpAuthorizationEndpoint.Prefix, (HttpContext ctx, CheckPipeline pipeline) =>
            Http.HttpAuthorizationEndpoint.HandleAsync(ctx, pipeline, options));
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", (HttpContext ctx) =>
            IsReady(ctx.RequestServices) ? Results.Text("ready\n") : Results.Text("not ready: " + NotReadyReason + "\n", statusCode: 503));
        var metrics = app.Services.GetRequiredService<AuthzMetrics>();
        app.MapMetrics("/metrics", metrics.Registry);

        app.Services.GetService<RateLimiting.RedisRateLimiter>()?.Warm();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EnvoyAuthz");
        if (options.Dev.Enabled)
        {
            HostLog.DevMode(logger, options.Dev.Issuer, options.Dev.Audience, options.Dev.KeyFile ?? DevSigningKey.DefaultPath);
        }
        app.Lifetime.ApplicationStarted.Register(() => HostLog.Listening(logger,
            $"{options.Server.BindAddress}:{options.Server.GrpcPort}", $"{options.Server.BindAddress}:{options.Server.HttpPort}", options.Policy.Engine));
        return app;
    }

    private const string NotReadyReason = "signing keys, policy or Airflow connections not loaded";

    /// <summary>
    /// Ready when the pipeline is (keys, policy, warm-up) and every configured Airflow connection
    /// source has loaded at least once (an API source that never answered keeps the pod out of the Service).
    /// </summary>
    internal static bool IsReady(IServiceProvider services) =>
        services.GetRequiredService<CheckPipeline>().Ready && services.GetService<ConnectionCatalog>()?.AllLoaded != false;

    /// <summary>
    /// The background services whose <c>ExecuteAsync</c> faulted (they stopped the host): Program
    /// exits non-zero when there are any, so a supervisor restarts the service instead of treating
    /// the stop as a clean exit.
    /// </summary>
    public static IReadOnlyList<string> FaultedServices(IServiceProvider services) =>
        [.. services.GetServices<IHostedService>().OfType<BackgroundService>()
            .Where(s => s.ExecuteTask is { IsFaulted: true })
            .Select(s => $"{s.GetType().Name}: {s.ExecuteTask!.Exception!.InnerException?.GetType().Name ?? "fault"}")];

    /// <summary>Readiness for the gRPC health service and <c>/readyz</c>.</summary>
    private sealed class ReadinessCheck(IServiceProvider services) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(IsReady(services) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy(NotReadyReason));
    }
}

/// <summary>Warms the hot path, then fetches every issuer's keys, retrying with backoff until each has loaded once.</summary>
internal sealed class KeyWarmUpService(IssuerRegistry issuers, CheckPipeline pipeline, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await pipeline.WarmUpAsync(stoppingToken).ConfigureAwait(false);
        var delay = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            var all = true;
            foreach (var issuer in issuers.All)
            {
                all &= await issuer.WarmUpAsync(stoppingToken).ConfigureAwait(false);
            }
            if (all)
            {
                return;
            }
            await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
        }
    }
}
