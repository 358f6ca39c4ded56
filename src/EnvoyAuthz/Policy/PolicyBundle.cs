using System.Formats.Tar;
using System.IO.Compression;
using System.IO.Enumeration;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using EnvoyAuthz.Rego;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Policy files read from a folder or an OPA bundle (<c>.tar.gz</c>): every <c>.rego</c> module, and
/// every <c>data.json</c>/<c>data.yaml</c> merged into the base document at the path of its folder
/// (<c>a/b/data.json</c> → <c>data.a.b</c>), as OPA's loader does. Test modules (<c>*_test.rego</c>)
/// are included too: their rules live in their own packages and are never the decision path.
/// </summary>
public sealed partial class PolicyBundle
{
    private PolicyBundle(IReadOnlyList<RegoModuleSource> modules, RegoObject data, string revision, string fingerprint)
    {
        Modules = modules;
        Data = data;
        Revision = revision;
        Fingerprint = fingerprint;
    }

    /// <summary>Rego modules, named by their relative path.</summary>
    public IReadOnlyList<RegoModuleSource> Modules { get; }

    /// <summary>The merged base document.</summary>
    public RegoObject Data { get; }

    /// <summary>The bundle manifest's revision, or empty.</summary>
    public string Revision { get; }

    /// <summary>A hash of every file read (what changed detection compares).</summary>
    public string Fingerprint { get; }

    /// <summary>Largest bundle (downloaded, or decompressed) accepted unless configured otherwise.</summary>
    public const long DefaultMaxBytes = 64L << 20;

    private const int MaxYamlNodes = 1_000_000;
    private const int MaxYamlDepth = 256;

    /// <summary>
    /// A cheap fingerprint of a folder or bundle (names, sizes, times of the files a symbolic link
    /// points at), to detect changes without reading; a missing path stamps as <c>missing</c>.
    /// </summary>
    public static string Stamp(string path)
    {
        var sb = new StringBuilder();
        if (File.Exists(path))
        {
            Append(sb, path);
        }
        else if (Directory.Exists(path))
        {
            foreach (var f in PolicyFiles(path))
            {
                sb.Append(f).Append(':');
                Append(sb, f);
                sb.Append(';');
            }
        }
        else
        {
            sb.Append("missing");
        }
        return sb.ToString();

        static void Append(StringBuilder sb, string file)
        {
            // Through symbolic links (a Kubernetes ConfigMap swaps a directory link): the target's size and time.
            var fi = new FileInfo(file);
            var target = fi.LinkTarget is null ? fi : fi.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? fi;
            if (target.Exists)
            {
                sb.Append(target.FullName).Append('#').Append(target.Length).Append('@').Append(target.LastWriteTimeUtc.Ticks);
            }
            else
            {
                sb.Append("dangling");
            }
        }
    }

    /// <summary>
    /// Reads a folder or a <c>.tar.gz</c> bundle. Throws <see cref="PolicyLoadException"/> on
    /// unreadable content, and when the path is missing (a deleted policy is a failed load,
    /// never an empty policy).
    /// </summary>
    public static PolicyBundle Load(string path) => Load(path, DefaultMaxBytes);

    /// <summary><see cref="Load(string)"/> with a size limit for a bundle file (decompressed).</summary>
    public static PolicyBundle Load(string path, long maxBytes)
    {
        var files = new List<(string Name, byte[] Content)>();
        if (File.Exists(path))
        {
            ReadTarGz(path, files, maxBytes);
        }
        else if (Directory.Exists(path))
        {
            try
            {
                foreach (var f in PolicyFiles(path))
                {
                    files.Add((Path.GetRelativePath(path, f).Replace('\\', '/'), File.ReadAllBytes(f)));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Deleted or replaced while being read: a failed load; the next change reloads.
                throw new PolicyLoadException([$"{path}: cannot be read ({ex.GetType().Name}: {ex.Message})"]);
            }
        }
        else
        {
            throw new PolicyLoadException([$"{path}: no such policy folder or bundle"]);
        }
        return FromFiles(files);
    }

    /// <summary>
    /// The policy files under <paramref name="folder"/>, in ordinal order. Folders whose name starts
    /// with <c>.</c> are skipped, as <c>opa run --ignore '.*'</c> does: they hold tooling state, and a
    /// Kubernetes ConfigMap volume keeps a second copy of every file in <c>..data/</c> and a
    /// timestamped <c>..YYYY_…</c> folder.
    /// </summary>
    private static IEnumerable<string> PolicyFiles(string folder)
    {
        var files = new FileSystemEnumerable<string>(folder, (ref FileSystemEntry e) => e.ToFullPath(),
            new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        {
            ShouldIncludePredicate = (ref FileSystemEntry e) => !e.IsDirectory && IsPolicyFile(e.FileName.ToString()),
            ShouldRecursePredicate = (ref FileSystemEntry e) => !e.FileName.StartsWith('.'),
        };
        return files.Order(StringComparer.Ordinal);
    }

    /// <summary>Builds a bundle from named files (relative paths with <c>/</c>).</summary>
    public static PolicyBundle FromFiles(IReadOnlyList<(string Name, byte[] Content)> files)
    {
        var errors = new List<string>();
        var modules = new List<RegoModuleSource>();
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var revision = "";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, content) in files.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(name));
            hash.AppendData(content);
            var file = Path.GetFileName(name);
            var dir = Path.GetDirectoryName(name)?.Replace('\\', '/').Trim('/') ?? "";
            try
            {
                if (name.EndsWith(".rego", StringComparison.Ordinal))
                {
                    modules.Add(new RegoModuleSource(name, Encoding.UTF8.GetString(content)));
                }
                else if (file is "data.json")
                {
                    Merge(data, dir, RegoJson.Parse(content), name);
                }
                else if (file is "data.yaml" or "data.yml")
                {
                    Merge(data, dir, YamlToRego(Encoding.UTF8.GetString(content)), name);
                }
                else if (file == ".manifest")
                {
                    if (RegoJson.Parse(content) is RegoObject manifest && manifest.TryGetValue("revision", out var rev) && rev is RegoString rs)
                    {
                        revision = rs.Value;
                    }
                }
            }
            catch (YamlDotNet.Core.YamlException ex)
            {
                errors.Add($"{name}:{ex.Start.Line}:{ex.Start.Column}: {Flatten(MarkPrefix().Replace(ex.Message, ""))}");
            }
            catch (System.Text.Json.JsonException ex)
            {
                errors.Add(ex.LineNumber is { } line ? $"{name}:{line + 1}:{(ex.BytePositionInLine ?? 0) + 1}: {Flatten(ex.Message)}" : $"{name}: {Flatten(ex.Message)}");
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Any other fault reading one file (a cast, a limit) is that file's problem, never the process's.
                var message = Flatten(ex.Message);
                var known = ex is FormatException or InvalidOperationException or InvalidDataException;
                errors.Add(known && message.StartsWith(name + ":", StringComparison.Ordinal) ? message : $"{name}: {(known ? "" : ex.GetType().Name + ": ")}{message}");
            }
        }
        if (modules.Count == 0)
        {
            errors.Add("no .rego modules found");
        }
        if (errors.Count > 0)
        {
            throw new PolicyLoadException(errors);
        }
        return new PolicyBundle(modules, ToRego(data), revision, Convert.ToHexString(hash.GetHashAndReset()));
    }

    private static bool IsPolicyFile(string f)
    {
        var name = Path.GetFileName(f);
        return name.EndsWith(".rego", StringComparison.Ordinal) || name is "data.json" or "data.yaml" or "data.yml" or ".manifest";
    }

    /// <summary>Reads an OPA bundle (<c>.tar.gz</c>) from memory, e.g. a downloaded one.</summary>
    public static PolicyBundle FromTarGz(byte[] content, string origin) => FromTarGz(content, origin, DefaultMaxBytes);

    /// <summary><see cref="FromTarGz(byte[], string)"/> with a limit on the decompressed size.</summary>
    public static PolicyBundle FromTarGz(byte[] content, string origin, long maxBytes)
    {
        var files = new List<(string, byte[])>();
        ReadTarGz(origin, files, () => new MemoryStream(content, writable: false), maxBytes);
        return FromFiles(files);
    }

    private static void ReadTarGz(string path, List<(string, byte[])> files, long maxBytes) => ReadTarGz(path, files, () => File.OpenRead(path), maxBytes);

    private static void ReadTarGz(string path, List<(string, byte[])> files, Func<Stream> open, long maxBytes)
    {
        try
        {
            // Every decompressed byte counts, skipped entries too: a small gzip cannot expand without bound.
            using var gz = new LimitedReadStream(new GZipStream(open(), CompressionMode.Decompress), maxBytes, path);
            using var tar = new TarReader(gz);
            long total = 0;
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
                {
                    continue;
                }
                var name = entry.Name.Replace('\\', '/');
                while (name.StartsWith('/') || name.StartsWith("./", StringComparison.Ordinal))
                {
                    name = name[(name[0] == '/' ? 1 : 2)..];
                }
                if (name.Contains("..", StringComparison.Ordinal) || !IsPolicyFile(name))
                {
                    continue;
                }
                total += entry.Length;
                if (total > maxBytes)
                {
                    throw new PolicyLoadException([$"{path}: bundle larger than {maxBytes} bytes"]);
                }
                using var ms = new MemoryStream();
                entry.DataStream.CopyTo(ms);
                files.Add((name, ms.ToArray()));
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or EndOfStreamException or IOException)
        {
            throw new PolicyLoadException([$"{path}: not a readable .tar.gz bundle ({ex.Message})"]);
        }
    }

    private static void Merge(Dictionary<string, object> root, string dir, RegoValue value, string file)
    {
        var node = root;
        if (dir.Length > 0)
        {
            foreach (var part in dir.Split('/'))
            {
                if (!node.TryGetValue(part, out var next))
                {
                    next = new Dictionary<string, object>(StringComparer.Ordinal);
                    node[part] = next;
                }
                node = next as Dictionary<string, object> ?? throw new InvalidOperationException($"{file}: data path '{dir}' conflicts with a value");
            }
        }
        if (value is not RegoObject obj)
        {
            throw new InvalidOperationException($"{file}: the document must be an object");
        }
        foreach (var (k, v) in obj.Pairs)
        {
            var key = k is RegoString ks ? ks.Value : k.ToJson();
            if (node.TryGetValue(key, out var existing))
            {
                if (existing is Dictionary<string, object> sub && v is RegoObject vo)
                {
                    foreach (var (k2, v2) in vo.Pairs)
                    {
                        Merge(sub, "", new RegoObject.Builder(1).Add(k2, v2).Build(), file);
                    }
                    continue;
                }
                throw new InvalidOperationException($"{file}: key '{key}' is defined twice");
            }
            node[key] = v is RegoObject nested ? ToDictionary(nested) : v;
        }
    }

    private static Dictionary<string, object> ToDictionary(RegoObject o)
    {
        var d = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (k, v) in o.Pairs)
        {
            d[k is RegoString ks ? ks.Value : k.ToJson()] = v is RegoObject nested ? ToDictionary(nested) : v;
        }
        return d;
    }

    private static RegoObject ToRego(Dictionary<string, object> d)
    {
        var b = new RegoObject.Builder(d.Count);
        foreach (var (k, v) in d)
        {
            b.Add(k, v is Dictionary<string, object> nested ? ToRego(nested) : (RegoValue)v);
        }
        return b.Build();
    }

    private static string Flatten(string message) => message.ReplaceLineEndings(" ");

    /// <summary>The <c>(Line: 1, Col: 3, Idx: 2) - (…): </c> prefix YamlDotNet may put before its message (the location is given as file:line:col instead).</summary>
    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\):\s*")]
    private static partial Regex MarkPrefix();

    /// <summary>
    /// A <c>data.yaml</c> document as a value: mappings with scalar keys, sequences, and YAML 1.2
    /// core-schema scalars. Any other key (a sequence or mapping used as a key), more than
    /// <see cref="MaxYamlNodes"/> nodes (aliases count each time they are used) or nesting deeper
    /// than <see cref="MaxYamlDepth"/> is an error naming line and column.
    /// </summary>
    private static RegoValue YamlToRego(string text)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(text));
        if (yaml.Documents.Count == 0)
        {
            return new RegoObject.Builder().Build();
        }
        var budget = MaxYamlNodes;
        return Node(yaml.Documents[0].RootNode, 0, ref budget);

        static RegoValue Node(YamlNode n, int depth, ref int budget)
        {
            if (--budget < 0)
            {
                throw Problem(n, $"more than {MaxYamlNodes} nodes");
            }
            if (depth > MaxYamlDepth)
            {
                throw Problem(n, $"nested deeper than {MaxYamlDepth} levels");
            }
            switch (n)
            {
                case YamlMappingNode m:
                    var b = new RegoObject.Builder(m.Children.Count);
                    foreach (var (key, value) in m.Children)
                    {
                        if (key is not YamlScalarNode scalarKey)
                        {
                            throw Problem(key, "a mapping key must be a scalar, not a sequence or a mapping");
                        }
                        b.Add(scalarKey.Value ?? "", Node(value, depth + 1, ref budget));
                    }
                    return b.Build();
                case YamlSequenceNode s:
                    var items = new List<RegoValue>(s.Children.Count);
                    foreach (var c in s.Children)
                    {
                        items.Add(Node(c, depth + 1, ref budget));
                    }
                    return RegoArray.From(items);
                case YamlScalarNode sc:
                    return Scalar(sc);
                default:
                    throw Problem(n, "unsupported YAML node");
            }
        }

        static YamlDotNet.Core.YamlException Problem(YamlNode n, string message) => new(n.Start, n.End, message);

        static RegoValue Scalar(YamlScalarNode s)
        {
            var v = s.Value ?? "";
            if (s.Style != YamlDotNet.Core.ScalarStyle.Plain)
            {
                return RegoValue.From(v);
            }
            return v switch
            {
                "" or "~" or "null" or "Null" or "NULL" => RegoValue.Null,
                "true" or "True" or "TRUE" => RegoValue.True,
                "false" or "False" or "FALSE" => RegoValue.False,
                _ => RegoNumber.TryParse(v, out var num) ? num : RegoValue.From(v),
            };
        }
    }

    /// <summary>A read-only stream that fails once more than a limit has been read through it.</summary>
    private sealed class LimitedReadStream(Stream inner, long limit, string origin) : Stream
    {
        private long _read;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }

        private int Count(int n)
        {
            _read += n;
            if (_read > limit)
            {
                throw new PolicyLoadException([$"{origin}: bundle larger than {limit} bytes decompressed"]);
            }
            return n;
        }
    }
}

/// <summary>A policy could not be loaded or compiled; <see cref="Errors"/> says where and why.</summary>
public sealed class PolicyLoadException(IReadOnlyList<string> errors) : Exception(string.Join("; ", errors))
{
    /// <summary>Every problem (file:line:col where known).</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}
