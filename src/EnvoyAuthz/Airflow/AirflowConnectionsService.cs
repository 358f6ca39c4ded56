using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Loads the connection file at start unless the host did already (a missing or broken file stops
/// the service: fail fast on first load), then keeps the file watched and the API source refreshed
/// until shutdown. Neither loop faults: a failed reload keeps the last good copy.
/// </summary>
public sealed class AirflowConnectionsService(ConnectionCatalog catalog, FileConnectionSource? file, ApiConnectionSource? api) : BackgroundService
{
    /// <inheritdoc />
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        file?.LoadInitial();
        _ = catalog.Sources; // constructs every source now (the environment is read at start)
        return base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var loops = new List<Task>(2);
        if (file is not null)
        {
            loops.Add(Task.Run(() => file.RunAsync(stoppingToken), stoppingToken));
        }
        if (api is not null)
        {
            loops.Add(Task.Run(() => api.RunAsync(stoppingToken), stoppingToken));
        }
        return Task.WhenAll(loops);
    }
}
