using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Resilience;

/// <summary>What one reload did.</summary>
public enum ReloadOutcome
{
    /// <summary>A new value took over.</summary>
    Updated,
    /// <summary>Nothing changed (same content, <c>304</c>); the current value stays.</summary>
    Unchanged,
    /// <summary>The reload failed; the last good value stays.</summary>
    Failed,
}

/// <summary>A source's first load failed, so the service cannot start; <see cref="Problems"/> says where and why.</summary>
public sealed class SourceLoadException : InvalidOperationException
{
    /// <summary>One problem.</summary>
    public SourceLoadException(string problem) : this([problem])
    {
    }

    /// <summary>Several problems (file:line:col where known).</summary>
    public SourceLoadException(IReadOnlyList<string> problems, Exception? inner = null) : base(string.Join("; ", problems), inner)
    {
        Problems = problems;
    }

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>A failed reload, as a source's hook sees it.</summary>
/// <param name="Exception">What the loader threw.</param>
/// <param name="Problem">The one-line description the source gave it (never secret content).</param>
/// <param name="Level">The level to log it at: the source's level for a new problem, <see cref="LogLevel.Debug"/> for the same problem again.</param>
/// <param name="ConsecutiveFailures">Failures in a row, this one included.</param>
public readonly record struct ReloadFailure(Exception Exception, string Problem, LogLevel Level, int ConsecutiveFailures);

/// <summary>What a <see cref="ReloadingSource{T}"/> reports to its owner: the metric and the log events are the owner's own.</summary>
/// <typeparam name="T">The loaded value.</typeparam>
public sealed class ReloadHooks<T>
    where T : class
{
    /// <summary>One-line description of a failure for logs (never content that may be secret). Default: the exception's type and message.</summary>
    public Func<Exception, string> Describe { get; init; } = ex => $"{ex.GetType().Name}: {ex.Message}";

    /// <summary>Counts one (re)load: true for success, false for failure (unchanged reloads are not counted).</summary>
    public Action<bool>? Count { get; init; }

    /// <summary>A new value took over; the flag is true when it ends a run of failures.</summary>
    public Action<T, bool>? Loaded { get; init; }

    /// <summary>A reload failed and the last good value (the argument, null if none) keeps serving.</summary>
    public Action<ReloadFailure, T?>? Failed { get; init; }

    /// <summary>Level of a new failure. Default <see cref="LogLevel.Warning"/>.</summary>
    public LogLevel FailureLevel { get; init; } = LogLevel.Warning;
}

/// <summary>
/// The one reload discipline of every hot-reloaded source — policy folders and bundle files,
/// remote bundles, the Airflow connections file and the Airflow connections API: the first load
/// fails fast (<see cref="LoadInitialAsync"/> throws <see cref="SourceLoadException"/>, which
/// stops the start with one message); a reload catches every exception, counts it, logs it once
/// per distinct problem (the same problem again is Debug), and keeps the last good value; a
/// missing file is a failed reload, never an empty value. <see cref="RunAsync"/> reloads on a
/// signal (a file watcher) or a delay on the injected <see cref="TimeProvider"/>, and never
/// faults.
/// </summary>
/// <typeparam name="T">The immutable loaded value (a compiled policy, a connection snapshot).</typeparam>
public sealed class ReloadingSource<T> : IDisposable
    where T : class
{
    private const int MaxProblemLength = 1000;

    private readonly Func<T?, CancellationToken, ValueTask<T?>> _load;
    private readonly ReloadHooks<T> _hooks;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _signal = new(0, 1);
    private volatile T? _current;
    private volatile string? _lastProblem;
    private int _failures;
    private long _loadedAtTicks = long.MinValue;

    /// <summary>
    /// Creates the source; nothing is read yet. <paramref name="load"/> gets the current value (null
    /// before the first load) and returns the new one, or null when nothing changed; it throws
    /// when the source cannot be read or its content is broken.
    /// </summary>
    public ReloadingSource(string name, Func<T?, CancellationToken, ValueTask<T?>> load, ReloadHooks<T> hooks, TimeProvider time)
    {
        Name = name;
        _load = load;
        _hooks = hooks;
        _time = time;
    }

    /// <summary>The source's name (logs, metrics).</summary>
    public string Name { get; }

    /// <summary>The last good value, or null before the first successful load.</summary>
    public T? Current => _current;

    /// <summary>True once a load succeeded (readiness).</summary>
    public bool LoadedOnce => _current is not null;

    /// <summary>When the current value was loaded, or null.</summary>
    public DateTimeOffset? LoadedAt
    {
        get
        {
            var ticks = Interlocked.Read(ref _loadedAtTicks);
            return ticks == long.MinValue ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>Failed reloads in a row (0 after a success).</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _failures);

    /// <summary>The last failure's description while failing, else null.</summary>
    public string? LastProblem => _lastProblem;

    /// <summary>
    /// First load, fail fast: throws <see cref="SourceLoadException"/> (the loader's exception as
    /// its inner exception) when it fails — counted, not logged: the start-up error says it once.
    /// A success is counted and reported like any load. Does nothing when a value is already loaded.
    /// </summary>
    public async ValueTask LoadInitialAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_current is not null)
            {
                return;
            }
            T? value;
            try
            {
                value = await _load(null, cancellationToken).ConfigureAwait(false);
                if (value is null)
                {
                    throw new SourceLoadException("nothing was loaded");
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                var problem = Describe(ex);
                Interlocked.Increment(ref _failures);
                _lastProblem = problem;
                _hooks.Count?.Invoke(false);
                throw new SourceLoadException([problem], ex);
            }
            Accept(value);
            _hooks.Count?.Invoke(true);
            _hooks.Loaded?.Invoke(value, false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary><see cref="LoadInitialAsync"/> for loaders that complete synchronously (files).</summary>
    public void LoadInitial() => LoadInitialAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// One reload. Never throws but for <paramref name="cancellationToken"/>: a failure of any kind
    /// is counted, logged once per distinct problem, and leaves the last good value serving.
    /// </summary>
    public async ValueTask<ReloadOutcome> ReloadAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            T? next;
            try
            {
                next = await _load(_current, cancellationToken).ConfigureAwait(false);
                if (next is null && _current is null)
                {
                    throw new SourceLoadException("nothing was loaded");
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                var problem = Describe(ex);
                var repeated = _failures > 0 && problem == _lastProblem;
                var failures = Interlocked.Increment(ref _failures);
                _lastProblem = problem;
                _hooks.Count?.Invoke(false);
                _hooks.Failed?.Invoke(new ReloadFailure(ex, problem, repeated ? LogLevel.Debug : _hooks.FailureLevel, failures), _current);
                return ReloadOutcome.Failed;
            }
            if (next is null)
            {
                // The source answered and nothing changed: it is healthy again.
                Volatile.Write(ref _failures, 0);
                _lastProblem = null;
                return ReloadOutcome.Unchanged;
            }
            var recovered = _failures > 0;
            Accept(next);
            _hooks.Count?.Invoke(true);
            _hooks.Loaded?.Invoke(next, recovered);
            return ReloadOutcome.Updated;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary><see cref="ReloadAsync"/> for loaders that complete synchronously (files).</summary>
    public ReloadOutcome Reload() => ReloadAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>Asks <see cref="RunAsync"/> to reload now (after its settle delay); called by file watchers.</summary>
    public void Signal()
    {
        try
        {
            if (_signal.CurrentCount == 0)
            {
                _signal.Release();
            }
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

    /// <summary>
    /// Reloads until <paramref name="cancellationToken"/> fires: at once when nothing is loaded
    /// yet, then after <paramref name="nextDelay"/> (given the last outcome) or a
    /// <see cref="Signal"/> followed by <paramref name="settle"/> (lets a burst of writes finish).
    /// Returns when cancelled; never faults.
    /// </summary>
    public async Task RunAsync(Func<ReloadOutcome, TimeSpan> nextDelay, TimeSpan settle, CancellationToken cancellationToken)
    {
        try
        {
            var last = _current is null ? await ReloadAsync(cancellationToken).ConfigureAwait(false) : ReloadOutcome.Unchanged;
            while (!cancellationToken.IsCancellationRequested)
            {
                if (await WaitAsync(nextDelay(last), cancellationToken).ConfigureAwait(false) && settle > TimeSpan.Zero)
                {
                    await Task.Delay(settle, _time, cancellationToken).ConfigureAwait(false);
                }
                last = await ReloadAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // shutdown
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _signal.Dispose();
        _gate.Dispose();
    }

    /// <summary>True when woken by <see cref="Signal"/>, false when the delay passed.</summary>
    private async Task<bool> WaitAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timer = Task.Delay(delay, _time, either.Token);
        var signal = _signal.WaitAsync(either.Token);
        var first = await Task.WhenAny(timer, signal).ConfigureAwait(false);
        await either.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return first == signal && signal.IsCompletedSuccessfully;
    }

    private void Accept(T value)
    {
        _current = value;
        Interlocked.Exchange(ref _loadedAtTicks, _time.GetUtcNow().UtcTicks);
        Volatile.Write(ref _failures, 0);
        _lastProblem = null;
    }

    private string Describe(Exception ex)
    {
        string problem;
        try
        {
            problem = _hooks.Describe(ex);
        }
        catch (Exception inner) when (inner is not OutOfMemoryException)
        {
            problem = $"unexpected {ex.GetType().Name}";
        }
        return problem.Length > MaxProblemLength ? problem[..MaxProblemLength] + "…" : problem;
    }
}

/// <summary>File-system watchers that signal a <see cref="ReloadingSource{T}"/>; polling still works when one cannot be created.</summary>
internal static class FileWatch
{
    /// <summary>Watches <paramref name="directory"/>; every change calls <paramref name="changed"/>. Null when watching is impossible.</summary>
    public static FileSystemWatcher? Create(string directory, bool recursive, Action changed, Action? failed = null)
    {
        try
        {
            var w = new FileSystemWatcher(directory)
            {
                IncludeSubdirectories = recursive,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            w.Changed += (_, _) => changed();
            w.Created += (_, _) => changed();
            w.Deleted += (_, _) => changed();
            w.Renamed += (_, _) => changed();
            if (failed is not null)
            {
                w.Error += (_, _) => failed();
            }
            w.EnableRaisingEvents = true;
            return w;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            failed?.Invoke();
            return null;
        }
    }
}
