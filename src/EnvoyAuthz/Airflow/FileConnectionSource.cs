using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Resilience;
using Microsoft.Extensions.Logging;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from a file in the format <c>airflow connections export</c> writes — JSON or YAML,
/// <c>{conn_id: {conn_type, description, login, password, host, port, schema, extra}}</c> with
/// <c>extra</c> a JSON string or an object; a value may also be a connection URI (as Airflow's
/// local-filesystem secrets backend accepts). Reloaded (a <see cref="ReloadingSource{T}"/>) when a
/// file-system watcher sees a change in its folder (Kubernetes ConfigMap symlink swaps included)
/// and on a polling interval; a change is detected by content hash. A broken or deleted file keeps
/// the last good copy (logged once, counted); at start it stops the service.
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
