using EnvoyAuthz.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>One path parameter as a specification declares it.</summary>
internal sealed record SpecParam(string Name, string? Type, string? Format, string? Const);

/// <summary>One operation: a template (relative to the version root), a method and the template's path parameters.</summary>
internal sealed record SpecOperation(string Version, string Template, string Method, IReadOnlyDictionary<string, SpecParam> Params)
{
    /// <summary>The template's segments, leading <c>/</c> dropped.</summary>
    public string[] Segments => Template.TrimStart('/').Split('/');
}

/// <summary>
/// Reads Airflow's two OpenAPI specifications from <c>../shared/airflow-openapi</c> (or
/// <c>AIRFLOW_OPENAPI_DIR</c>): every path × method with its path parameters. Nothing of them is
/// copied into the project; tests skip, saying why, when the files are absent.
/// </summary>
internal static class AirflowSpecs
{
    private static readonly string[] Methods = ["get", "put", "post", "delete", "patch"];

    private static readonly Lazy<IReadOnlyList<SpecOperation>?> Loaded = new(Load);

    /// <summary>The folder holding the specifications, or null.</summary>
    public static string? Directory()
    {
        var env = Environment.GetEnvironmentVariable("AIRFLOW_OPENAPI_DIR");
        if (!string.IsNullOrEmpty(env))
        {
            return System.IO.Directory.Exists(env) ? env : null;
        }
        var candidate = Path.Combine(Path.GetDirectoryName(RepoPaths.Root)!, "shared", "airflow-openapi");
        return System.IO.Directory.Exists(candidate) ? candidate : null;
    }

    /// <summary>Every operation of both specifications; skips the calling test when the files are absent.</summary>
    public static IReadOnlyList<SpecOperation> Operations()
    {
        if (Loaded.Value is null)
        {
            Assert.Skip("Airflow's OpenAPI specifications not found: set AIRFLOW_OPENAPI_DIR or place them at <repo>/../shared/airflow-openapi "
                + "(airflow-2-api-v1.yaml, airflow-3-api-v2.yaml)");
        }
        return Loaded.Value!;
    }

    private static IReadOnlyList<SpecOperation>? Load()
    {
        var dir = Directory();
        if (dir is null || !File.Exists(Path.Combine(dir, "airflow-2-api-v1.yaml")) || !File.Exists(Path.Combine(dir, "airflow-3-api-v2.yaml")))
        {
            return null;
        }
        return [.. Read(Path.Combine(dir, "airflow-2-api-v1.yaml"), "v1"), .. Read(Path.Combine(dir, "airflow-3-api-v2.yaml"), "v2")];
    }

    private static List<SpecOperation> Read(string file, string version)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(file))
        {
            stream.Load(reader);
        }
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        var shared = Child(Child(root, "components"), "parameters") as YamlMappingNode;
        var result = new List<SpecOperation>();
        foreach (var (key, value) in ((YamlMappingNode)Child(root, "paths")!).Children)
        {
            var path = ((YamlScalarNode)key).Value!;
            // v2 writes its paths from the server root (/api/v2/...); v1 relative to its server URL /api/v1.
            var template = version == "v2" ? path["/api/v2".Length..] : path;
            var item = (YamlMappingNode)value;
            var common = Params(Child(item, "parameters"), shared);
            foreach (var method in Methods)
            {
                if (Child(item, method) is not YamlMappingNode op)
                {
                    continue;
                }
                var all = new Dictionary<string, SpecParam>(common, StringComparer.Ordinal);
                foreach (var (name, p) in Params(Child(op, "parameters"), shared))
                {
                    all[name] = p;
                }
                result.Add(new SpecOperation(version, template, method.ToUpperInvariant(), all));
            }
        }
        return result;
    }

    private static Dictionary<string, SpecParam> Params(YamlNode? list, YamlMappingNode? shared)
    {
        var result = new Dictionary<string, SpecParam>(StringComparer.Ordinal);
        if (list is not YamlSequenceNode seq)
        {
            return result;
        }
        foreach (var node in seq.Children)
        {
            var p = (YamlMappingNode)node;
            if (Scalar(p, "$ref") is { } reference)
            {
                p = (YamlMappingNode)Child(shared, reference[(reference.LastIndexOf('/') + 1)..])!;
            }
            if (Scalar(p, "in") != "path")
            {
                continue;
            }
            var schema = Child(p, "schema") as YamlMappingNode;
            var name = Scalar(p, "name")!;
            result[name] = new SpecParam(name, Scalar(schema, "type"), Scalar(schema, "format"), Scalar(schema, "const"));
        }
        return result;
    }

    private static YamlNode? Child(YamlNode? node, string key) =>
        node is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    private static string? Scalar(YamlNode? node, string key) => (Child(node, key) as YamlScalarNode)?.Value;
}
