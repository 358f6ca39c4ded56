using EnvoyAuthz.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace EnvoyAuthz.Airflow;

/// <summary>Registers the Airflow stage.</summary>
public static class AirflowServiceCollectionExtensions
{
    /// <summary>Adds the Airflow stage configured by <paramref name="options"/>.</summary>
    public static IServiceCollection AddAirflow(this IServiceCollection services, AuthzOptions options)
    {
        services.TryAddSingleton<IAirflowStage, NoAirflowStage>();
        return services;
    }
}
