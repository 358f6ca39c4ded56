using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Hosting;

/// <summary>A YAML file as .NET configuration: mappings become sections, sequences indexed children.</summary>
public sealed class YamlConfigurationSource : FileConfigurationSource
{
    /// <inheritdoc />
    public override IConfigurationProvider Build(IConfigurationBuilder builder)
    {
        EnsureDefaults(builder);
        return new YamlConfigurationProvider(this);
    }
}

/// <summary>Reads a <see cref="YamlConfigurationSource"/>.</summary>
public sealed class YamlConfigurationProvider(YamlConfigurationSource source) : FileConfigurationProvider(source)
{
    /// <inheritdoc />
    public override void Load(Stream stream) => Data = Flatten(stream);

    /// <summary>Flattens a YAML document into configuration keys.</summary>
    public static Dictionary<string, string?> Flatten(Stream stream)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var yaml = new YamlStream();
        using (var reader = new StreamReader(stream))
        {
            yaml.Load(reader);
        }
        if (yaml.Documents.Count > 0)
        {
            Visit(yaml.Documents[0].RootNode, "", data);
        }
        return data;
    }

    private static void Visit(YamlNode node, string prefix, Dictionary<string, string?> data)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    var key = ((YamlScalarNode)k).Value ?? "";
                    Visit(v, prefix.Length == 0 ? key : prefix + ConfigurationPath.KeyDelimiter + key, data);
                }
                break;
            case YamlSequenceNode seq:
                for (var i = 0; i < seq.Children.Count; i++)
                {
                    Visit(seq.Children[i], prefix + ConfigurationPath.KeyDelimiter + i, data);
                }
                break;
            case YamlScalarNode scalar:
                var isNull = scalar.Style == YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is null or "~" or "null";
                data[prefix] = isNull ? null : scalar.Value;
                break;
        }
    }
}
