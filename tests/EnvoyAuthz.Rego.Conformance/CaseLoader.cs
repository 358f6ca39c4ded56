using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Rego.Conformance;

/// <summary>Finds and loads conformance cases.</summary>
public static class CaseLoader
{
    /// <summary>The case directory: env REGO_CONFORMANCE_DIR, else &lt;repo&gt;/../shared/rego-conformance; null when absent.</summary>
    public static string? FindCaseDirectory(string? startDirectory = null)
    {
        var env = Environment.GetEnvironmentVariable("REGO_CONFORMANCE_DIR");
        if (!string.IsNullOrEmpty(env)) return Directory.Exists(env) ? Path.GetFullPath(env) : null;
        var dir = new DirectoryInfo(startDirectory ?? AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln"))) dir = dir.Parent;
        if (dir is null)
        {
            dir = new DirectoryInfo(Directory.GetCurrentDirectory());
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln"))) dir = dir.Parent;
        }
        if (dir?.Parent is null) return null;
        var candidate = Path.Combine(dir.Parent.FullName, "shared", "rego-conformance");
        return Directory.Exists(candidate) ? candidate : null;
    }

    /// <summary>Topic → class from topic-classes.json (empty when missing).</summary>
    public static Dictionary<string, string> LoadTopicClasses(string caseDir)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var path = Path.Combine(caseDir, "topic-classes.json");
        if (!File.Exists(path)) return result;
        if (RegoJson.Parse(File.ReadAllText(path)) is RegoObject o)
            foreach (var kv in o.Pairs)
                if (kv.Key is RegoString k && kv.Value is RegoObject v && v["class"] is RegoString c) result[k.Value] = c.Value;
        return result;
    }

    /// <summary>Loads every case under v1/ and v1-supplement/ (a file that cannot be read is reported on stderr and skipped).</summary>
    public static List<ConformanceCase> LoadAll(string caseDir) => LoadAll(caseDir, []);

    /// <summary>Loads every case under v1/ and v1-supplement/; each file that cannot be read is added to <paramref name="unreadable"/> as <c>path: reason</c>.</summary>
    public static List<ConformanceCase> LoadAll(string caseDir, List<string> unreadable)
    {
        var cases = new List<ConformanceCase>();
        foreach (var sub in new[] { "v1", "v1-supplement" })
        {
            var root = Path.Combine(caseDir, sub);
            if (!Directory.Exists(root)) continue;
            var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
                .OrderBy(f => f, StringComparer.Ordinal);
            foreach (var file in files)
            {
                var rel = Path.GetRelativePath(caseDir, file).Replace('\\', '/');
                var relToSub = Path.GetRelativePath(root, file).Replace('\\', '/');
                var topic = relToSub.Contains('/') ? relToSub[..relToSub.IndexOf('/')] : "";
                RegoValue doc;
                try { doc = file.EndsWith(".json", StringComparison.Ordinal) ? RegoJson.Parse(File.ReadAllText(file)) : LoadYaml(File.ReadAllText(file)); }
                catch (Exception ex)
                {
                    Console.Error.WriteLine($"cannot load {rel}: {ex.Message}");
                    unreadable.Add($"{rel}: {ex.Message}");
                    continue;
                }
                if (doc is not RegoObject d || d["cases"] is not RegoArray arr)
                {
                    unreadable.Add($"{rel}: no \"cases\" list");
                    continue;
                }
                foreach (var c in arr.Elements.OfType<RegoObject>()) cases.Add(ToCase(rel, topic, c));
            }
        }
        return cases;
    }

    private static ConformanceCase ToCase(string file, string topic, RegoObject c)
    {
        string? S(string k) => c[k] is RegoString s ? s.Value : null;
        bool B(string k) => c[k] is RegoBoolean { Value: true };
        var modules = c["modules"] is RegoArray ma ? ma.Elements.OfType<RegoString>().Select(s => s.Value).ToList() : new List<string>();
        return new ConformanceCase
        {
            File = file,
            Topic = topic,
            Note = S("note") ?? "",
            Query = S("query") ?? "",
            Modules = modules,
            Data = c["data"] is RegoNull ? null : c["data"],
            Input = c["input"],
            InputTerm = S("input_term"),
            WantResult = c["want_result"] as RegoArray,
            WantErrorCode = S("want_error_code"),
            WantError = S("want_error"),
            StrictError = B("strict_error"),
            SortBindings = B("sort_bindings"),
            IgnoreGeneratedVars = B("ignore_generated_vars"),
        };
    }

    /// <summary>Parses YAML into a Rego value (plain scalars typed as YAML 1.2 core schema).</summary>
    public static RegoValue LoadYaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        if (stream.Documents.Count == 0) return RegoValue.Null;
        return Convert(stream.Documents[0].RootNode);
    }

    private static RegoValue Convert(YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode m:
                {
                    var b = new RegoObject.Builder();
                    foreach (var kv in m.Children) b.Add(((YamlScalarNode)kv.Key).Value ?? "", Convert(kv.Value));
                    return b.Build();
                }
            case YamlSequenceNode s:
                return RegoArray.From(s.Children.Select(Convert));
            case YamlScalarNode sc:
                {
                    var v = sc.Value ?? "";
                    if (sc.Style != YamlDotNet.Core.ScalarStyle.Plain) return RegoValue.From(v);
                    switch (v)
                    {
                        case "" or "~" or "null" or "Null" or "NULL": return RegoValue.Null;
                        case "true" or "True" or "TRUE": return RegoValue.True;
                        case "false" or "False" or "FALSE": return RegoValue.False;
                    }
                    if (RegoNumber.TryParse(v, out var n)) return n;
                    if (v.StartsWith("0x", StringComparison.Ordinal) && long.TryParse(v[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hx)) return RegoValue.From(hx);
                    return RegoValue.From(v);
                }
        }
        return RegoValue.Null;
    }
}
