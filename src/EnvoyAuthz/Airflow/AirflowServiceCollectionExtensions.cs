using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>Registers the Airflow stage.</summary>
public static class AirflowServiceCollectionExtensions
{
    /// <summary>Name of the <see cref="IHttpClientFactory"/> client used for Airflow's REST API.</summary>
    public const string HttpClientName = "airflow-api";

    /// <summary>
    /// Adds the Airflow stage configured by <paramref name="options"/>: with
    /// <c>Airflow:Enabled</c> false, <see cref="NoAirflowStage"/> (no <c>input.airflow</c>);
    /// otherwise <see cref="AirflowStage"/> over the configured connection sources (file,
    /// environment, API, in that lookup order) and the hosted service that loads and refreshes them.
    /// </summary>
    public static IServiceCollection AddAirflow(this IServiceCollection services, AuthzOptions options)
    {
        var o = options.Airflow;
        if (!o.Enabled)
        {
            services.TryAddSingleton<IAirflowStage, NoAirflowStage>();
            return services;
        }
        var c = o.Connections;
        services.TryAddSingleton(o);
        services.TryAddSingleton(new SensitiveKeys(o.SensitiveKeys));
        services.TryAddSingleton(sp => new AirflowMetrics(sp.GetRequiredService<AuthzMetrics>(), sp.GetRequiredService<TimeProvider>()));
        if (c.File is not null)
        {
            services.TryAddSingleton(sp => new FileConnectionSource(c.File, c.FilePollInterval, sp.GetRequiredService<SensitiveKeys>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<AirflowMetrics>(), Logger<FileConnectionSource>(sp)));
        }
        if (c.Environment)
        {
            services.TryAddSingleton(sp => new EnvironmentConnectionSource(sp.GetRequiredService<SensitiveKeys>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<AirflowMetrics>(), Logger<EnvironmentConnectionSource>(sp)));
        }
        if (c.Api.BaseUrl is not null)
        {
            services.AddHttpClient(HttpClientName, h => h.Timeout = c.Api.RequestTimeout + TimeSpan.FromSeconds(5));
            services.TryAddSingleton(sp => new ApiConnectionSource(c.Api, () => sp.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientName),
                sp.GetRequiredService<SensitiveKeys>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<AirflowMetrics>(),
                Logger<ApiConnectionSource>(sp),
                sp.GetService<Resilience.DependencyGuards>()?.For("airflow-api", TimeSpan.FromTicks(c.Api.RequestTimeout.Ticks * 20))));
        }
        services.TryAddSingleton(sp =>
        {
            var sources = new List<IConnectionSource>(3);
            if (c.File is not null)
            {
                sources.Add(sp.GetRequiredService<FileConnectionSource>());
            }
            if (c.Environment)
            {
                sources.Add(sp.GetRequiredService<EnvironmentConnectionSource>());
            }
            if (c.Api.BaseUrl is not null)
            {
                sources.Add(sp.GetRequiredService<ApiConnectionSource>());
            }
            return new ConnectionCatalog(sources, sp.GetRequiredService<TimeProvider>(), Logger<ConnectionCatalog>(sp));
        });
        services.TryAddSingleton(new AirflowApiClassifier(o.Ingress));
        services.TryAddSingleton(sp => new JsonRpcParser(o.JsonRpc, sp.GetRequiredService<SensitiveKeys>()));
        services.TryAddSingleton(sp => new IngressBodyRedactor(sp.GetRequiredService<SensitiveKeys>()));
        services.TryAddSingleton(sp => new TaskContextResolver(o.TaskContext, Logger<TaskContextResolver>(sp)));
        services.TryAddSingleton<IAirflowStage, AirflowStage>();
        services.AddHostedService(sp => new AirflowConnectionsService(sp.GetRequiredService<ConnectionCatalog>(),
            c.File is null ? null : sp.GetRequiredService<FileConnectionSource>(),
            c.Api.BaseUrl is null ? null : sp.GetRequiredService<ApiConnectionSource>()));
        return services;
    }

    private static ILogger Logger<T>(IServiceProvider sp) => sp.GetRequiredService<ILoggerFactory>().CreateLogger<T>();
}
