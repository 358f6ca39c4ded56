using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Hot reload of the embedded engine's policy (<see cref="RegoPolicyEngine.RunReloadsAsync"/>): a
/// file-system watcher triggers a check at once, and a poll every
/// <see cref="Configuration.PolicyOptions.ReloadInterval"/> catches what watchers miss (network
/// volumes, ConfigMap symlink swaps); a remote bundle is polled. A failed reload of any kind keeps
/// the last good policy; the loop itself never faults.
/// </summary>
internal sealed class PolicyReloadService(IPolicyEngine engine) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        engine is RegoPolicyEngine rego ? rego.RunReloadsAsync(stoppingToken) : Task.CompletedTask;
}
