using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from a file as Airflow's local-filesystem secrets backend reads it (see
/// <see cref="ConnectionFileParser"/>): JSON or YAML as <c>airflow connections export</c> writes
/// them, <c>{conn_id: {conn_type, description, login, password, host, port, schema, extra}}</c>
/// or <c>{conn_id: uri}</c>, and its <c>.env</c> format (<c>conn_id=uri</c> lines). Reloaded when a file-system watcher sees a change
/// in its folder (Kubernetes ConfigMap symlink swaps included) and on a polling interval; a
/// change is detected by content hash. A broken file keeps the last good copy (logged, counted).
/// </summary>
public sealed partial class FileConnectionSource : IConnectionSource, IDisposable
{
    /// <summary>Largest file accepted.</summary>
    public const int MaxFileBytes = 16 * 1024 * 1024;

    private readonly string _path;
    private readonly TimeSpan _pollInterval;
    private readonly SensitiveKeys _sensitive;
    private readonly TimeProvider _time;
    private readonly AirflowMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _changed = new(0, 1);
    private readonly Lock _reloadGate = new();
    private FileSystemWatcher? _watcher;
    private volatile ConnectionSnapshot? _current;
    private byte[]? _hash;

    /// <summary>Creates the source; nothing is read until <see cref="LoadInitial"/>.</summary>
    public FileConnectionSource(string path, TimeSpan pollInterval, SensitiveKeys sensitive, TimeProvider time, AirflowMetrics? metrics, ILogger logger)
    {
        _path = Path.GetFullPath(path);
        _pollInterval = pollInterval;
        _sensitive = sensitive;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _metrics?.Track(this);
    }

    /// <inheritdoc />
    public string Name => "file";

    /// <summary>The file's full path.</summary>
    public string FilePath => _path;

    /// <inheritdoc />
    public ConnectionSnapshot? Current => _current;

    /// <inheritdoc />
    public bool IsTrusted(DateTimeOffset now) => _current is not null;

    /// <summary>First load: fails fast (throws <see cref="InvalidOperationException"/>) when the file is missing or broken.</summary>
    public void LoadInitial()
    {
        if (!TryReload(out var problem))
        {
            throw new InvalidOperationException($"The Airflow connections file '{_path}' cannot be loaded: {problem}.");
        }
    }

    /// <summary>Reloads when the content changed. False (last good copy kept, logged, counted) when the file is missing or broken.</summary>
    public bool TryReload(out string? problem)
    {
        lock (_reloadGate)
        {
            problem = null;
            byte[] bytes;
            try
            {
                var info = new FileInfo(_path);
                if (!info.Exists)
                {
                    problem = "the file does not exist";
                }
                else if (info.Length > MaxFileBytes)
                {
                    problem = $"the file is larger than {MaxFileBytes} bytes";
                }
                bytes = problem is null ? File.ReadAllBytes(_path) : [];
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                problem = $"the file cannot be read ({ex.GetType().Name})";
                bytes = [];
            }
            if (problem is null)
            {
                var hash = SHA256.HashData(bytes);
                if (_current is not null && _hash is not null && hash.AsSpan().SequenceEqual(_hash))
                {
                    return true;
                }
                var parsed = Parse(Encoding.UTF8.GetString(bytes), FormatOf(_path), _sensitive, _time.GetUtcNow(), out problem, out var skipped);
                if (parsed is not null)
                {
                    foreach (var (id, why) in skipped)
                    {
                        AirflowLog.ConnectionSkipped(_logger, id, Name, why);
                    }
                    _current = parsed;
                    _hash = hash;
                    _metrics?.Refreshed(Name, true);
                    AirflowLog.FileLoaded(_logger, _path, parsed.Count);
                    return true;
                }
            }
            _metrics?.Refreshed(Name, false);
            AirflowLog.FileRejected(_logger, _path, problem!, _current?.Count ?? 0);
            return false;
        }
    }

    /// <summary>Watches and polls until <paramref name="cancellationToken"/> fires.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        StartWatcher();
        while (!cancellationToken.IsCancellationRequested)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var delay = Task.Delay(_pollInterval, _time, cts.Token);
            var signal = _changed.WaitAsync(cts.Token);
            try
            {
                var done = await Task.WhenAny(delay, signal).ConfigureAwait(false);
                if (done == signal)
                {
                    // Let a writer finish before reading (a half-written file would be rejected and retried anyway).
                    await Task.Delay(TimeSpan.FromMilliseconds(200), _time, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
            finally
            {
                await cts.CancelAsync().ConfigureAwait(false);
            }
            try
            {
                TryReload(out _);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Keep watching: the last good copy stays; the type only, never content.
                _metrics?.Refreshed(Name, false);
                AirflowLog.FileRejected(_logger, _path, $"unexpected {ex.GetType().Name}", _current?.Count ?? 0);
            }
        }
    }

    private void StartWatcher()
    {
        try
        {
            var dir = Path.GetDirectoryName(_path)!;
            _watcher = new FileSystemWatcher(dir)
            {
                IncludeSubdirectories = false,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            _watcher.Changed += (_, _) => Signal();
            _watcher.Created += (_, _) => Signal();
            _watcher.Renamed += (_, _) => Signal();
            _watcher.Deleted += (_, _) => Signal();
            _watcher.Error += (_, _) => AirflowLog.FileWatchFailed(_logger, _path);
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            AirflowLog.FileWatchFailed(_logger, _path);
        }
    }

    private void Signal()
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // a reload is already pending
        }
        catch (ObjectDisposedException)
        {
            // an event raced with shutdown
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_watcher is { } w)
        {
            w.EnableRaisingEvents = false;
            w.Dispose();
        }
        _changed.Dispose();
    }

    /// <summary>The format a path's extension implies (see <see cref="ConnectionFileParser.FormatOf"/>).</summary>
    public static string? FormatOf(string path) => ConnectionFileParser.FormatOf(path);

    /// <summary>Parses a connection file (see <see cref="ConnectionFileParser.Parse"/>).</summary>
    public static ConnectionSnapshot? Parse(string text, string? format, SensitiveKeys sensitive, DateTimeOffset now,
        out string? problem, out List<(string ConnId, string Problem)> skipped) =>
        ConnectionFileParser.Parse(text, format, sensitive, now, out problem, out skipped);

    internal static string Describe(TimeSpan t) => t.ToString("g", CultureInfo.InvariantCulture);
}
