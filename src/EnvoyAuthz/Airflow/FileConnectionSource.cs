using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using EnvoyAuthz.Resilience;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from a file as Airflow's local-filesystem secrets backend reads it (see
/// <see cref="ConnectionFileParser"/>): JSON or YAML as <c>airflow connections export</c> writes
/// them, <c>{conn_id: {conn_type, description, login, password, host, port, schema, extra}}</c>
/// or <c>{conn_id: uri}</c>, and its <c>.env</c> format (<c>conn_id=uri</c> lines). Reloaded (a
/// <see cref="ReloadingSource{T}"/>) when a file-system watcher sees a change in its folder
/// (Kubernetes ConfigMap symlink swaps included) and on a polling interval; a change is detected by
/// content hash. A broken or deleted file keeps the last good copy (logged once, counted); at start
/// it stops the service.
/// </summary>
public sealed class FileConnectionSource : IConnectionSource, IDisposable
{
    /// <summary>Largest file accepted.</summary>
    public const int MaxFileBytes = 16 * 1024 * 1024;

    private readonly string _path;
    private readonly TimeSpan _pollInterval;
    private readonly SensitiveKeys _sensitive;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ReloadingSource<Loaded> _source;
    private FileSystemWatcher? _watcher;

    /// <summary>Creates the source; nothing is read until <see cref="LoadInitial"/>.</summary>
    public FileConnectionSource(string path, TimeSpan pollInterval, SensitiveKeys sensitive, TimeProvider time, AirflowMetrics? metrics, ILogger logger)
    {
        _path = Path.GetFullPath(path);
        _pollInterval = pollInterval;
        _sensitive = sensitive;
        _time = time;
        _logger = logger;
        _source = new ReloadingSource<Loaded>(Name, Load, new ReloadHooks<Loaded>
        {
            // Problems are fixed texts (never file content); anything unexpected is named by its type only.
            Describe = ex => ex is SourceLoadException s ? s.Message : $"unexpected {ex.GetType().Name}",
            Count = ok => metrics?.Refreshed(Name, ok),
            Loaded = (loaded, _) => AirflowLog.FileLoaded(_logger, _path, loaded.Snapshot.Count),
            Failed = (failure, last) => AirflowLog.FileRejected(_logger, failure.Level, _path, failure.Problem, last?.Snapshot.Count ?? 0),
        }, time);
        metrics?.Track(this);
    }

    /// <inheritdoc />
    public string Name => "file";

    /// <summary>The file's full path.</summary>
    public string FilePath => _path;

    /// <inheritdoc />
    public ConnectionSnapshot? Current => _source.Current?.Snapshot;

    /// <inheritdoc />
    public bool IsTrusted(DateTimeOffset now) => _source.Current is not null;

    /// <summary>
    /// First load: fails fast (throws <see cref="InvalidOperationException"/> naming the file and the
    /// problem, never its content) when the file is missing or broken. Does nothing once loaded.
    /// </summary>
    public void LoadInitial()
    {
        try
        {
            _source.LoadInitial();
        }
        catch (SourceLoadException ex)
        {
            throw new InvalidOperationException($"The Airflow connections file '{_path}' cannot be loaded: {ex.Problems[0]}.");
        }
    }

    /// <summary>Reloads when the content changed. False (last good copy kept, logged once, counted) when the file is missing or broken.</summary>
    public bool TryReload(out string? problem)
    {
        var outcome = _source.Reload();
        problem = outcome == ReloadOutcome.Failed ? _source.LastProblem : null;
        return outcome != ReloadOutcome.Failed;
    }

    /// <summary>Watches and polls until <paramref name="cancellationToken"/> fires; never faults.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _watcher = FileWatch.Create(Path.GetDirectoryName(_path)!, recursive: false, _source.Signal, () => AirflowLog.FileWatchFailed(_logger, _path));
        // After a change, let a writer finish before reading (a half-written file would be rejected and retried anyway).
        await _source.RunAsync(_ => _pollInterval, TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_watcher is { } w)
        {
            w.EnableRaisingEvents = false;
            w.Dispose();
        }
        _source.Dispose();
    }

    /// <summary>Reads the file; null when its content is unchanged. Throws <see cref="SourceLoadException"/> with a problem that never quotes the content.</summary>
    private ValueTask<Loaded?> Load(Loaded? current, CancellationToken cancellationToken)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(_path);
            if (!info.Exists)
            {
                throw new SourceLoadException("the file does not exist");
            }
            if (info.Length > MaxFileBytes)
            {
                throw new SourceLoadException($"the file is larger than {MaxFileBytes} bytes");
            }
            bytes = File.ReadAllBytes(_path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SourceLoadException($"the file cannot be read ({ex.GetType().Name})");
        }
        var hash = SHA256.HashData(bytes);
        if (current is not null && hash.AsSpan().SequenceEqual(current.Hash))
        {
            return ValueTask.FromResult<Loaded?>(null);
        }
        var parsed = Parse(Encoding.UTF8.GetString(bytes), FormatOf(_path), _sensitive, _time.GetUtcNow(), out var problem, out var skipped);
        if (parsed is null)
        {
            throw new SourceLoadException(problem ?? "the file cannot be parsed");
        }
        foreach (var (id, why) in skipped)
        {
            AirflowLog.ConnectionSkipped(_logger, id, Name, why);
        }
        return ValueTask.FromResult<Loaded?>(new Loaded(parsed, hash));
    }

    private sealed record Loaded(ConnectionSnapshot Snapshot, byte[] Hash);

    /// <summary>The format a path's extension implies (see <see cref="ConnectionFileParser.FormatOf"/>).</summary>
    public static string? FormatOf(string path) => ConnectionFileParser.FormatOf(path);

    /// <summary>Parses a connection file (see <see cref="ConnectionFileParser.Parse"/>).</summary>
    public static ConnectionSnapshot? Parse(string text, string? format, SensitiveKeys sensitive, DateTimeOffset now,
        out string? problem, out List<(string ConnId, string Problem)> skipped) =>
        ConnectionFileParser.Parse(text, format, sensitive, now, out problem, out skipped);

    internal static string Describe(TimeSpan t) => t.ToString("g", CultureInfo.InvariantCulture);
}
