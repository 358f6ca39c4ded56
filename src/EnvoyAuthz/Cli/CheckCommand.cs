using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Cli;

/// <summary>
/// <c>envoy-authz check --config FILE --request request.json</c>: runs one CheckRequest (protojson,
/// as Envoy's API defines it) through the whole pipeline offline — no listener is opened — and
/// prints the input document the policy saw, the decision, the reason and the headers that would
/// be sent. The Airflow connection sources <c>serve</c> would use (file, environment, API) are
/// loaded once first. Exit code 0 for allow, 1 for deny, 2 for usage or configuration errors and
/// for a connection source that cannot be loaded.
/// </summary>
public static class CheckCommand
{
    /// <summary>Runs the verb.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = CliArgs.Parse(args, flags: ["--dev"], options: ["--config", "--request"]);
        var requestFile = cli.Option("--request") ?? throw new CliUsageException("--request FILE (a CheckRequest in protojson) is required");
        CheckRequest request;
        try
        {
            request = JsonParser.Default.Parse<CheckRequest>(await File.ReadAllTextAsync(requestFile));
        }
        catch (Exception ex) when (ex is IOException or InvalidProtocolBufferException or InvalidJsonException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"envoy-authz check: {requestFile}: not a CheckRequest: {ex.Message}");
            return 2;
        }

        AuthzOptions options;
        Microsoft.Extensions.Configuration.IConfiguration configuration;
        try
        {
            (options, configuration) = AuthzHost.LoadConfiguration(cli.Option("--config"), cli.Flag("--dev"));
        }
        catch (ConfigurationErrorsException ex)
        {
            foreach (var e in ex.Errors)
            {
                await stderr.WriteLineAsync("envoy-authz check: " + e);
            }
            return 2;
        }
        WebApplicationHolder holder;
        try
        {
            holder = new(AuthzHost.Build(options, configuration, configureLogging: l => l.ClearProviders().AddProvider(new StderrLoggerProvider(stderr))));
        }
        catch (ConfigurationErrorsException ex)
        {
            foreach (var e in ex.Errors)
            {
                await stderr.WriteLineAsync("envoy-authz check: " + e);
            }
            return 2;
        }
        await using var _ = holder;
        var services = holder.App.Services;
        if (!await LoadConnectionSourcesAsync(services, options, stderr))
        {
            return 2;
        }
        var pipeline = services.GetRequiredService<CheckPipeline>();

        // The input document, built the way the pipeline builds it.
        Rego.RegoValue? input = null;
        if (CheckRequestParser.Parse(request, options.Server.AmbiguousPaths != AmbiguousPathModes.Normalize, out var problem) is { } parsed)
        {
            var identity = await services.GetRequiredService<IIdentityStage>().AuthenticateAsync(parsed, CancellationToken.None);
            var airflow = await services.GetRequiredService<IAirflowStage>().ResolveAsync(parsed, identity.Identity, CancellationToken.None);
            if (services.GetRequiredService<PolicyInputBuilder>().TryBuild(parsed, identity.Identity, airflow, out var doc, out problem))
            {
                input = doc;
            }
        }
        var response = await pipeline.CheckAsync(request, CancellationToken.None);

        using var buffer = new MemoryStream();
        using var w = new Utf8JsonWriter(buffer, JsonOutput.Options);
        w.WriteStartObject();
        w.WritePropertyName("input");
        if (input is not null)
        {
            input.WriteJson(w);
        }
        else
        {
            w.WriteNullValue();
        }
        var allowed = response.Status.Code == 0;
        w.WriteStartObject("decision");
        w.WriteBoolean("allowed", allowed);
        w.WriteString("reason", response.DynamicMetadata.Fields.TryGetValue("reason", out var reason) ? reason.StringValue : "");
        w.WriteNumber("http_status", allowed ? 200 : (int)response.DeniedResponse.Status.Code);
        w.WriteString("decision_id", response.DynamicMetadata.Fields[options.Response.DecisionIdMetadataKey].StringValue);
        w.WriteEndObject();
        w.WriteStartObject("headers");
        foreach (var h in allowed ? response.OkResponse.Headers : response.DeniedResponse.Headers)
        {
            w.WriteString(h.Header.Key, h.Header.Value);
        }
        w.WriteEndObject();
        if (allowed)
        {
            w.WriteStartArray("headers_to_remove");
            foreach (var h in response.OkResponse.HeadersToRemove)
            {
                w.WriteStringValue(h);
            }
            w.WriteEndArray();
        }
        else
        {
            w.WriteString("body", response.DeniedResponse.Body);
        }
        w.WriteEndObject();
        w.Flush();
        await stdout.WriteLineAsync(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        return allowed ? 0 : 1;
    }

    /// <summary>
    /// Loads the Airflow connection sources <c>serve</c> runs (the same registrations): the file
    /// (as at start: missing or broken fails), the environment, and one refresh of the API. False,
    /// with a line on stderr per source, when one cannot be loaded; true when Airflow is off.
    /// </summary>
    internal static async Task<bool> LoadConnectionSourcesAsync(IServiceProvider services, AuthzOptions options, TextWriter stderr)
    {
        if (!options.Airflow.Enabled || services.GetService<ConnectionCatalog>() is not { } catalog)
        {
            return true;
        }
        var ok = true;
        foreach (var source in catalog.Sources)
        {
            switch (source)
            {
                case FileConnectionSource file:
                    try
                    {
                        file.LoadInitial();
                    }
                    catch (InvalidOperationException ex)
                    {
                        await stderr.WriteLineAsync("envoy-authz check: " + ex.Message);
                        ok = false;
                    }
                    break;
                case ApiConnectionSource api:
                    // The refresh bounds each request; this bounds the whole (paged) load as the circuit breaker does.
                    var apiOptions = options.Airflow.Connections.Api;
                    using (var cts = new CancellationTokenSource(TimeSpan.FromTicks(apiOptions.RequestTimeout.Ticks * 20)))
                    {
                        bool loaded;
                        try
                        {
                            loaded = await api.RefreshAsync(cts.Token);
                        }
                        catch (OperationCanceledException)
                        {
                            loaded = false;
                        }
                        if (!loaded)
                        {
                            await stderr.WriteLineAsync("envoy-authz check: the Airflow connections could not be loaded from the Airflow API (the warning above says why).");
                            ok = false;
                        }
                    }
                    break;
            }
        }
        return ok;
    }

    private sealed class WebApplicationHolder(Microsoft.AspNetCore.Builder.WebApplication app) : IAsyncDisposable
    {
        public Microsoft.AspNetCore.Builder.WebApplication App { get; } = app;

        public ValueTask DisposeAsync() => App.DisposeAsync();
    }

    /// <summary>Diagnostics go to stderr so stdout stays one JSON document.</summary>
    private sealed class StderrLoggerProvider(TextWriter stderr) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(stderr);

        public void Dispose()
        {
        }

        private sealed class Logger(TextWriter stderr) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                {
                    stderr.WriteLine($"{logLevel}: {formatter(state, exception)}");
                }
            }
        }
    }
}
