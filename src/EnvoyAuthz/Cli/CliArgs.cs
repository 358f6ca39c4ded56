namespace EnvoyAuthz.Cli;

/// <summary>A usage error: printed with the verb's name, exit code 2.</summary>
public sealed class CliUsageException(string message) : Exception(message);

/// <summary>Minimal <c>--flag</c> / <c>--option value</c> parsing for the CLI verbs.</summary>
public sealed class CliArgs
{
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);

    /// <summary>Positional arguments.</summary>
    public List<string> Positional { get; } = [];

    /// <summary>Parses <paramref name="args"/>; unknown options are usage errors.</summary>
    public static CliArgs Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> flags, IReadOnlyCollection<string> options)
    {
        var result = new CliArgs();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            string? inline = null;
            var eq = a.IndexOf('=');
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = a[(eq + 1)..];
                a = a[..eq];
            }
            if (flags.Contains(a))
            {
                result._flags.Add(a);
            }
            else if (options.Contains(a))
            {
                var value = inline ?? (i + 1 < args.Count ? args[++i] : throw new CliUsageException($"{a} needs a value"));
                if (!result._options.TryGetValue(a, out var list))
                {
                    result._options[a] = list = [];
                }
                list.Add(value);
            }
            else if (a.StartsWith('-') && a.Length > 1)
            {
                throw new CliUsageException($"unknown option {a}");
            }
            else
            {
                result.Positional.Add(args[i]);
            }
        }
        return result;
    }

    /// <summary>Whether a flag was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>The last value of an option, or null.</summary>
    public string? Option(string name) => _options.TryGetValue(name, out var v) ? v[^1] : null;

    /// <summary>Every value of a repeatable option.</summary>
    public IReadOnlyList<string> Options(string name) => _options.TryGetValue(name, out var v) ? v : [];
}

/// <summary>JSON output of the CLI verbs: indented, readable (no escaping of quotes or non-ASCII).</summary>
internal static class JsonOutput
{
    public static readonly System.Text.Json.JsonWriterOptions Options = new()
    {
        Indented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
