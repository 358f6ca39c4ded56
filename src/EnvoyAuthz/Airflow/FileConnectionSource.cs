using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from a file in the format <c>airflow connections export</c> writes — JSON or YAML,
/// <c>{conn_id: {conn_type, description, login, password, host, port, schema, extra}}</c> with
/// <c>extra</c> a JSON string or an object; a value may also be a connection URI (as Airflow's
/// local-filesystem secrets backend accepts). Reloaded when a file-system watcher sees a change
/// in its folder (Kubernetes ConfigMap symlink swaps included) and on a polling interval; a
/// change is detected by content hash. A broken file keeps the last good copy (logged, counted).
/// </summary>
public sealed partial class FileConnectionSource : IConnectionSource, IDisposable
{
    /// <summary>Largest file accepted.</summary>
    public const int MaxFileBytes = 16 * 1024 * 1024;
    private const int MaxYamlNodes = 1_000_000;

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

    /// <summary>The format a path's extension implies: <c>json</c>, <c>yaml</c>, or null (try both).</summary>
    public static string? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => "json",
        ".yaml" or ".yml" => "yaml",
        _ => null,
    };

    /// <summary>
    /// Parses the export format. Null (with a problem that never quotes the content) when the
    /// document is not a mapping of connection ids; single bad entries are skipped and reported in
    /// <paramref name="skipped"/>.
    /// </summary>
    public static ConnectionSnapshot? Parse(string text, string? format, SensitiveKeys sensitive, DateTimeOffset now,
        out string? problem, out List<(string ConnId, string Problem)> skipped)
    {
        skipped = [];
        problem = null;
        RegoValue? doc;
        if (string.IsNullOrWhiteSpace(text))
        {
            doc = AirflowConnection.EmptyObject;
        }
        else if (format == "json" || format is null && text.TrimStart().StartsWith('{'))
        {
            if (!RegoJson.TryParse(text, out var parsed))
            {
                problem = "the JSON is malformed";
                return null;
            }
            doc = parsed;
        }
        else
        {
            doc = ParseYaml(text, out problem);
            if (doc is null)
            {
                return null;
            }
        }
        if (doc is RegoNull)
        {
            doc = AirflowConnection.EmptyObject;
        }
        if (doc is not RegoObject root)
        {
            problem = "the document is not a mapping of connection ids";
            return null;
        }
        var list = new List<AirflowConnection>(root.Count);
        foreach (var (k, v) in root.Pairs)
        {
            var id = k is RegoString s ? s.Value : k.ToString();
            AirflowConnection? conn;
            string? why;
            switch (v)
            {
                case RegoObject fields:
                    conn = ConnectionParser.FromFields(id, fields, sensitive, out why);
                    break;
                case RegoString uri:
                    conn = ConnectionParser.ParseUri(id, uri.Value, sensitive, out why);
                    break;
                default:
                    conn = null;
                    why = "the entry is neither a mapping of fields nor a URI";
                    break;
            }
            if (why is not null)
            {
                skipped.Add((id, conn is null ? why : why));
            }
            if (conn is not null)
            {
                list.Add(conn);
            }
        }
        return new ConnectionSnapshot(list, now);
    }

    private static RegoValue? ParseYaml(string text, out string? problem)
    {
        problem = null;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count == 0)
            {
                return AirflowConnection.EmptyObject;
            }
            if (stream.Documents.Count > 1)
            {
                problem = "the YAML holds more than one document";
                return null;
            }
            var budget = MaxYamlNodes;
            return FromYaml(stream.Documents[0].RootNode, ref budget);
        }
        catch (YamlException ex)
        {
            problem = $"the YAML is malformed at line {ex.Start.Line}, column {ex.Start.Column}";
            return null;
        }
        catch (InvalidDataException ex)
        {
            problem = ex.Message;
            return null;
        }
    }

    private static RegoValue FromYaml(YamlNode node, ref int budget)
    {
        if (--budget < 0)
        {
            throw new InvalidDataException("the YAML has too many nodes");
        }
        switch (node)
        {
            case YamlMappingNode map:
                var b = new RegoObject.Builder(map.Children.Count);
                foreach (var (k, v) in map.Children)
                {
                    b.Add(k is YamlScalarNode ks ? RegoValue.From(ks.Value ?? "") : FromYaml(k, ref budget), FromYaml(v, ref budget));
                }
                return b.Build();
            case YamlSequenceNode seq:
                var items = new List<RegoValue>(seq.Children.Count);
                foreach (var c in seq.Children)
                {
                    items.Add(FromYaml(c, ref budget));
                }
                return RegoArray.From(items);
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                throw new InvalidDataException("the YAML uses an unsupported node");
        }
    }

    /// <summary>YAML 1.2 core schema resolution of plain scalars; quoted scalars are strings.</summary>
    private static RegoValue Scalar(YamlScalarNode scalar)
    {
        var v = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return RegoValue.From(v);
        }
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return RegoValue.Null;
            case "true" or "True" or "TRUE":
                return RegoValue.True;
            case "false" or "False" or "FALSE":
                return RegoValue.False;
        }
        if (YamlNumber().IsMatch(v) && RegoNumber.TryParse(v.AsSpan().TrimStart('+'), out var n))
        {
            return n;
        }
        return RegoValue.From(v);
    }

    [GeneratedRegex(@"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex YamlNumber();

    internal static string Describe(TimeSpan t) => t.ToString("g", CultureInfo.InvariantCulture);
}
