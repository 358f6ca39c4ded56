using EnvoyAuthz.Configuration;
using Microsoft.Extensions.Hosting;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Hot reload of the embedded engine's policy: a file-system watcher triggers a check at once, and
/// a poll every <see cref="PolicyOptions.ReloadInterval"/> catches what watchers miss (network
/// volumes, ConfigMap symlink swaps).
/// </summary>
internal sealed class PolicyReloadService(IPolicyEngine engine, AuthzOptions options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (engine is not RegoPolicyEngine rego)
        {
            return;
        }
        if (options.Policy.BundleUrl is not null)
        {
            // Remote bundle: first download at once (readiness waits for it), then poll.
            while (!stoppingToken.IsCancellationRequested)
            {
                var loaded = await rego.TryReloadRemoteAsync(stoppingToken).ConfigureAwait(false) || rego.Ready;
                try
                {
                    await Task.Delay(loaded ? options.Policy.BundlePollInterval : TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            return;
        }
        if (options.Policy.Path is not { } path || options.Policy.ReloadInterval <= TimeSpan.Zero)
        {
            return;
        }
        using var signal = new SemaphoreSlim(0, 1);
        using var watcher = CreateWatcher(path, () =>
        {
            if (signal.CurrentCount == 0)
            {
                try
                {
                    signal.Release();
                }
                catch (SemaphoreFullException)
                {
                }
            }
        });
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await signal.WaitAsync(options.Policy.ReloadInterval, stoppingToken).ConfigureAwait(false);
                // Let a burst of writes settle before reading.
                await Task.Delay(TimeSpan.FromMilliseconds(50), time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            rego.TryReload();
        }
    }

    private static FileSystemWatcher? CreateWatcher(string path, Action changed)
    {
        try
        {
            var dir = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
            var w = new FileSystemWatcher(dir) { IncludeSubdirectories = Directory.Exists(path), EnableRaisingEvents = true };
            w.Changed += (_, _) => changed();
            w.Created += (_, _) => changed();
            w.Deleted += (_, _) => changed();
            w.Renamed += (_, _) => changed();
            return w;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            return null; // polling still works
        }
    }
}
