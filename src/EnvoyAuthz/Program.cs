using EnvoyAuthz.Cli;
using EnvoyAuthz.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz;

/// <summary>Entry point: <c>serve</c> (default), <c>token</c>, <c>call</c>, <c>policy</c>, <c>check</c>, <c>help</c>.</summary>
public static class Program
{
    /// <summary>Runs the verb named by the first argument.</summary>
    public static async Task<int> Main(string[] args)
    {
        var verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "serve";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        try
        {
            return verb switch
            {
                "serve" => await ServeAsync(rest),
                "token" => TokenCommand.Run(rest, Console.Out, Console.Error),
                "call" => await CallCommand.RunAsync(rest, Console.Out, Console.Error),
                "policy" => PolicyCommand.Run(rest, Console.Out, Console.Error),
                "check" => await CheckCommand.RunAsync(rest, Console.Out, Console.Error),
                "help" or "--help" or "-h" => Help(),
                _ => Unknown(verb),
            };
        }
        catch (CliUsageException ex)
        {
            await Console.Error.WriteLineAsync($"envoy-authz {verb}: {ex.Message}");
            return 2;
        }
    }

    private static Task<int> ServeAsync(string[] args) => ServeAsync(args, Console.Error);

    /// <summary>
    /// <c>serve</c>: 0 after a clean shutdown; 2 for any start-up error (invalid configuration, a
    /// policy or connections file that does not load, a port in use), told in one message on
    /// <paramref name="stderr"/>; 1 when a background service faulted and stopped the host.
    /// </summary>
    internal static async Task<int> ServeAsync(string[] args, TextWriter stderr, Action<IServiceCollection>? configureServices = null)
    {
        var cli = CliArgs.Parse(args, flags: ["--dev"], options: ["--config"]);
        WebApplication app;
        try
        {
            var (options, configuration) = AuthzHost.LoadConfiguration(cli.Option("--config"), cli.Flag("--dev"));
            app = AuthzHost.Build(options, configuration, configureServices);
        }
        catch (ConfigurationErrorsException ex)
        {
            await ReportAsync(stderr, ex);
            return 2;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            await stderr.WriteLineAsync($"envoy-authz: cannot start: {Describe(ex)}");
            return 2;
        }
        await using (app)
        {
            try
            {
                await app.StartAsync();
            }
            catch (ConfigurationErrorsException ex)
            {
                await ReportAsync(stderr, ex);
                return 2;
            }
            catch (OperationCanceledException) when (app.Lifetime.ApplicationStopping.IsCancellationRequested)
            {
                // Stopped while starting: by a faulting background service, or a signal.
                return await StoppedAsync(app, stderr);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                await stderr.WriteLineAsync($"envoy-authz: cannot start: {Describe(ex)}");
                return 2;
            }
            await app.WaitForShutdownAsync();
            return await StoppedAsync(app, stderr);
        }
    }

    private static async Task<int> StoppedAsync(WebApplication app, TextWriter stderr)
    {
        var faulted = AuthzHost.FaultedServices(app.Services);
        if (faulted.Count == 0)
        {
            return 0;
        }
        await stderr.WriteLineAsync($"envoy-authz: stopped because a background service failed ({string.Join(", ", faulted)})");
        return 1;
    }

    private static async Task ReportAsync(TextWriter stderr, ConfigurationErrorsException ex)
    {
        await stderr.WriteLineAsync($"envoy-authz: invalid configuration ({ex.Errors.Count} problem{(ex.Errors.Count == 1 ? "" : "s")}):");
        foreach (var e in ex.Errors)
        {
            await stderr.WriteLineAsync("  - " + e);
        }
    }

    /// <summary>An exception's message, with the innermost one when it is wrapped (a bind failure names the address).</summary>
    private static string Describe(Exception ex)
    {
        var inner = ex;
        while (inner is AggregateException { InnerException: { } next } || inner.InnerException is not null && inner.Message.Length == 0)
        {
            inner = inner.InnerException!;
        }
        return $"{inner.Message.ReplaceLineEndings(" ")} ({inner.GetType().Name})";
    }

    private static int Help()
    {
        Console.WriteLine("""
            envoy-authz — Envoy ext_authz service (OIDC tokens, Rego/OPA policies, Airflow awareness)

            usage:
              envoy-authz [serve] [--config FILE] [--dev]   run the service (gRPC :9191, HTTP :9192)
              envoy-authz token [--sub S] [--groups a,b] [--scopes 'x y'] [--ttl 1h] [--key FILE]
                                                            mint a token the dev-mode service trusts
              envoy-authz call [--addr 127.0.0.1:9191] [--token T] [--method GET] [--path /p]
                               [--host H] [--header k=v]... [--write-frame FILE]
                                                            send one Check and print the answer (or write
                                                            it as a gRPC frame for load generators)
              envoy-authz policy test PATH... [--verbose] [--run REGEX]
                                                            run Rego unit tests (rules named test_*), like opa test
              envoy-authz policy eval -d PATH [-i input.json] QUERY
                                                            evaluate a query, like opa eval (JSON output)
              envoy-authz check --config FILE --request request.json
                                                            one CheckRequest (protojson) through the pipeline, offline
              envoy-authz help
            configuration: --config FILE (JSON or YAML), then EnvoyAuthz__… environment variables.
            """);
        return 0;
    }

    private static int Unknown(string verb)
    {
        Console.Error.WriteLine($"envoy-authz: unknown verb '{verb}' (try 'envoy-authz help')");
        return 2;
    }
}
