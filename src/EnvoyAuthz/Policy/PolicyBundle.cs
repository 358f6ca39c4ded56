using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using EnvoyAuthz.Rego;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Policy files read from a folder or an OPA bundle (<c>.tar.gz</c>): every <c>.rego</c> module, and
/// every <c>data.json</c>/<c>data.yaml</c> merged into the base document at the path of its folder
/// (<c>a/b/data.json</c> → <c>data.a.b</c>), as OPA's loader does. Test modules (<c>*_test.rego</c>)
/// are included too: their rules live in their own packages and are never the decision path.
/// </summary>
public sealed class PolicyBundle
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

    /// <summary>A cheap fingerprint of a folder or bundle (names, sizes, times), to detect changes without reading.</summary>
    public static string Stamp(string path)
    {
        var sb = new StringBuilder();
        if (File.Exists(path))
        {
            var fi = new FileInfo(path);
            sb.Append(fi.Length).Append('@').Append(fi.LastWriteTimeUtc.Ticks);
        }
        else if (Directory.Exists(path))
        {
            foreach (var f in PolicyFiles(path))
            {
                // A ConfigMap volume swaps the target behind an unchanged link: stamp the target.
                var link = new FileInfo(f);
                var fi = link.LinkTarget is null ? link : link.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? link;
                sb.Append(f).Append(':').Append(fi.FullName).Append('#').Append(fi.Exists ? fi.Length : -1).Append('@').Append(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0).Append(';');
            }
        }
        else
        {
            sb.Append("missing");
        }
        return sb.ToString();
    }

    /// <summary>Reads a folder or a <c>.tar.gz</c> bundle. Throws <see cref="PolicyLoadException"/> on unreadable content.</summary>
    public static PolicyBundle Load(string path)
    {
        var files = new List<(string Name, byte[] Content)>();
        if (File.Exists(path))
        {
            ReadTarGz(path, files);
        }
        else if (Directory.Exists(path))
        {
            foreach (var f in PolicyFiles(path))
            {
                files.Add((Path.GetRelativePath(path, f).Replace('\\', '/'), File.ReadAllBytes(f)));
            }
        }
        else
        {
            throw new PolicyLoadException([$"{path}: no such policy folder or bundle"]);
        }
        return FromFiles(files);
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
            catch (Exception ex) when (ex is System.Text.Json.JsonException or YamlDotNet.Core.YamlException or FormatException or InvalidOperationException)
            {
                errors.Add($"{name}: {ex.Message}");
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

    /// <summary>
    /// The policy files under <paramref name="folder"/>, skipping folders whose name starts with
    /// <c>.</c> (as <c>opa run --ignore '.*'</c>): a Kubernetes ConfigMap volume holds a second copy
    /// of every file in <c>..data/</c> and its timestamped <c>..YYYY_…</c> folder.
    /// </summary>
    private static IEnumerable<string> PolicyFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => IsPolicyFile(f) && !Path.GetRelativePath(folder, Path.GetDirectoryName(f)!).Split('/', '\\').Any(d => d.StartsWith('.') && d != "."))
            .Order(StringComparer.Ordinal);

    private static bool IsPolicyFile(string f)
    {
        var name = Path.GetFileName(f);
        return name.EndsWith(".rego", StringComparison.Ordinal) || name is "data.json" or "data.yaml" or "data.yml" or ".manifest";
    }

    /// <summary>Reads an OPA bundle (<c>.tar.gz</c>) from memory, e.g. a downloaded one.</summary>
    public static PolicyBundle FromTarGz(byte[] content, string origin)
    {
        var files = new List<(string, byte[])>();
        ReadTarGz(origin, files, () => new MemoryStream(content, writable: false));
        return FromFiles(files);
    }

    private static void ReadTarGz(string path, List<(string, byte[])> files) => ReadTarGz(path, files, () => File.OpenRead(path));

    private static void ReadTarGz(string path, List<(string, byte[])> files, Func<Stream> open)
    {
        try
        {
            using var gz = new GZipStream(open(), CompressionMode.Decompress);
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
                if (total > 64L << 20)
                {
                    throw new PolicyLoadException([$"{path}: bundle larger than 64 MiB"]);
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

    private static RegoValue YamlToRego(string text)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(text));
        return yaml.Documents.Count == 0 ? new RegoObject.Builder().Build() : Node(yaml.Documents[0].RootNode);

        static RegoValue Node(YamlNode n) => n switch
        {
            YamlMappingNode m => m.Children.Aggregate(new RegoObject.Builder(m.Children.Count),
                (b, kv) => b.Add(((YamlScalarNode)kv.Key).Value ?? "", Node(kv.Value))).Build(),
            YamlSequenceNode s => RegoArray.From(s.Children.Select(Node)),
            YamlScalarNode sc => Scalar(sc),
            _ => RegoValue.Null,
        };

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
}

/// <summary>A policy could not be loaded or compiled; <see cref="Errors"/> says where and why.</summary>
public sealed class PolicyLoadException(IReadOnlyList<string> errors) : Exception(string.Join("; ", errors))
{
    /// <summary>Every problem (file:line:col where known).</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}
