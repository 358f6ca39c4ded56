using System.Collections.Frozen;
using System.Text.RegularExpressions;
using EnvoyAuthz.Rego;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// The connection files Airflow's local-filesystem secrets backend reads, read as it reads them
/// (<c>airflow/secrets/local_filesystem.py</c>): JSON or YAML mapping <c>conn_id</c> to a URI or
/// to fields, and the <c>.env</c> format of <c>airflow connections export --format env</c>
/// (<c>conn_id=value</c> lines). An entry of fields may hold only the parameters of Airflow's
/// <c>Connection</c> (<c>conn_id</c>, <c>conn_type</c>, <c>description</c>, <c>host</c>,
/// <c>login</c>, <c>password</c>, <c>schema</c>, <c>port</c>, <c>extra</c>, <c>uri</c>) and
/// <c>extra_dejson</c>.
/// </summary>
/// <remarks>
/// Whatever makes Airflow's loader raise rejects the whole file, as it does in Airflow (no
/// connection of that file can then be used): an unknown key, <c>extra</c> together with
/// <c>extra_dejson</c>, a <c>conn_id</c> that differs from its key, a <c>uri</c> together with
/// other fields, an <c>extra</c> that is not a JSON object, a URI Airflow refuses (more than two
/// <c>://</c>, a bad port), a value that is neither text nor a mapping; in <c>.env</c>: a line
/// without <c>=</c>, an empty key or value, an id given twice. An entry Airflow would load but
/// this service cannot represent (a port that is not an integer, text that is no URI) is skipped
/// and reported. Problems never quote the content (it may hold a password); they may name a
/// connection id.
/// </remarks>
public static partial class ConnectionFileParser
{
    private const int MaxYamlNodes = 1_000_000;

    /// <summary>The parameters of Airflow's <c>Connection.__init__</c> and <c>extra_dejson</c>: the keys an entry may have.</summary>
    public static readonly FrozenSet<string> EntryKeys = FrozenSet.ToFrozenSet(
        ["conn_id", "conn_type", "description", "host", "login", "password", "schema", "port", "extra", "uri", "extra_dejson"], StringComparer.Ordinal);

    /// <summary>The format a path's extension implies: <c>json</c>, <c>yaml</c>, <c>env</c>, or null (decided by the content).</summary>
    public static string? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => "json",
        ".yaml" or ".yml" => "yaml",
        ".env" => "env",
        _ => null,
    };

    /// <summary>
    /// Parses a connection file. Null, with a <paramref name="problem"/>, when Airflow would refuse
    /// the file; entries this service cannot represent are left out and listed in <paramref name="skipped"/>.
    /// </summary>
    /// <param name="text">The file's text.</param>
    /// <param name="format"><c>json</c>, <c>yaml</c>, <c>env</c>, or null to decide by the content.</param>
    /// <param name="sensitive">Which extra keys are secret (dropped).</param>
    /// <param name="now">The snapshot's load time.</param>
    /// <param name="problem">Why the file is refused.</param>
    /// <param name="skipped">Entries left out, with the reason.</param>
    public static ConnectionSnapshot? Parse(string text, string? format, SensitiveKeys sensitive, DateTimeOffset now,
        out string? problem, out List<(string ConnId, string Problem)> skipped)
    {
        skipped = [];
        format ??= Sniff(text);
        var entries = format == "env" ? ParseEnv(text, out problem) : ParseDocument(text, format, out problem);
        if (entries is null)
        {
            return null;
        }
        var list = new List<AirflowConnection>(entries.Count);
        foreach (var (id, value) in entries)
        {
            var conn = Entry(id, value, format == "env", sensitive, out var why, out var refuse);
            if (refuse)
            {
                problem = $"connection '{id}': {why}";
                return null;
            }
            if (conn is null)
            {
                skipped.Add((id, why ?? "unreadable"));
                continue;
            }
            list.Add(conn);
        }
        return new ConnectionSnapshot(list, now);
    }

    /// <summary>One entry: a URI (text) or fields (a mapping), as <c>_create_connection</c> reads it.</summary>
    private static AirflowConnection? Entry(string id, RegoValue value, bool envFile, SensitiveKeys sensitive, out string? problem, out bool refuse)
    {
        refuse = false;
        switch (value)
        {
            case RegoString { Value: var text } when envFile && text.TrimStart().StartsWith('{'):
                // `connections export --format env --serialization-format json`: the JSON form of AIRFLOW_CONN_* values
                var fromJson = ConnectionParser.ParseJson(id, text, sensitive, out problem);
                refuse = problem is not null;
                return refuse ? null : fromJson;
            case RegoString { Value: var uri }:
                return FromUri(id, uri, null, sensitive, out problem, out refuse);
            case RegoObject fields:
                return FromFields(id, fields, sensitive, out problem, out refuse);
            default:
                problem = "the entry is neither a URI nor a mapping of fields";
                refuse = true;
                return null;
        }
    }

    private static AirflowConnection? FromUri(string id, string uri, string? description, SensitiveKeys sensitive, out string? problem, out bool refuse)
    {
        var conn = ConnectionParser.ParseUri(id, uri, sensitive, out problem);
        // Airflow raises on what its URI parser refuses and on an __extra__ that is not a JSON
        // object; text it reads as a (useless) connection without a host is skipped here.
        refuse = problem is not null && (conn is not null || ConnectionParser.AirflowRefuses(problem));
        if (refuse)
        {
            return null;
        }
        return conn is not null && description is not null ? conn with { Description = AirflowConnection.Blank(description) } : conn;
    }

    private static AirflowConnection? FromFields(string id, RegoObject fields, SensitiveKeys sensitive, out string? problem, out bool refuse)
    {
        refuse = true;
        var unknown = fields.KeyList.Count(k => k is not RegoString { Value: var name } || !EntryKeys.Contains(name));
        if (unknown > 0)
        {
            problem = $"{unknown} key(s) that Airflow's Connection does not take (allowed: {string.Join(", ", EntryKeys.Order(StringComparer.Ordinal))})";
            return null;
        }
        if (fields.TryGetValue("extra", out _) && fields.TryGetValue("extra_dejson", out _))
        {
            problem = "extra and extra_dejson are mutually exclusive";
            return null;
        }
        if (fields["conn_id"] is { } connId && (connId is not RegoString cid || cid.Value != id))
        {
            problem = "conn_id differs from the entry's key";
            return null;
        }
        var extra = fields["extra"];
        var hasExtra = Truthy(extra);
        if (fields["extra_dejson"] is { } dejson)
        {
            // serialised as JSON text (never empty), then validated as Airflow's extra: it must be an object
            if (dejson is not RegoObject)
            {
                problem = "extra_dejson is not a JSON object";
                return null;
            }
            extra = dejson;
            hasExtra = true;
        }
        if (hasExtra && !IsJsonObject(extra!))
        {
            problem = "extra is not a JSON object";
            return null;
        }
        var description = fields["description"] as RegoString;
        if (fields["uri"] is { } uriValue && Truthy(uriValue))
        {
            if (uriValue is not RegoString uri)
            {
                problem = "uri is not text";
                return null;
            }
            if (new[] { "conn_type", "host", "login", "password", "schema", "port" }.Any(k => Truthy(fields[k])) || hasExtra)
            {
                problem = "a uri cannot be combined with conn_type, host, login, password, schema, port or extra";
                return null;
            }
            return FromUri(id, uri.Value, description?.Value, sensitive, out problem, out refuse);
        }
        refuse = false;
        // A file's fields are taken as written: Airflow normalises conn_type only in URIs and JSON values.
        return ConnectionParser.FromFields(id, WithExtra(fields, hasExtra ? extra : null), sensitive, out problem, normalizeConnType: false);
    }

    /// <summary>The fields with <c>extra</c> replaced (a falsy extra is no extra, as in Airflow) and <c>extra_dejson</c> dropped.</summary>
    private static RegoObject WithExtra(RegoObject fields, RegoValue? extra)
    {
        var b = new RegoObject.Builder(fields.Count);
        foreach (var (k, v) in fields.Pairs)
        {
            if (k is RegoString { Value: "extra" or "extra_dejson" })
            {
                continue;
            }
            b.Add(k, v);
        }
        if (extra is not null)
        {
            b.Add("extra", extra);
        }
        return b.Build();
    }

    /// <summary>Python truthiness of a JSON value.</summary>
    private static bool Truthy(RegoValue? v) => v switch
    {
        null or RegoNull => false,
        RegoBoolean b => b.Value,
        RegoString s => s.Value.Length > 0,
        RegoNumber n => n.Sign != 0,
        RegoArray a => a.Count > 0,
        RegoObject o => o.Count > 0,
        _ => true,
    };

    private static bool IsJsonObject(RegoValue v) => v switch
    {
        RegoObject => true,
        RegoString s => RegoJson.TryParse(s.Value, out var parsed) && parsed is RegoObject,
        _ => false,
    };

    /// <summary>JSON when the text starts with <c>{</c>; <c>.env</c> when every line that is not blank or a comment is <c>id=value</c> with an id free of <c>:</c> and spaces; otherwise YAML.</summary>
    private static string Sniff(string text)
    {
        if (text.TrimStart().StartsWith('{'))
        {
            return "json";
        }
        var any = false;
        foreach (var line in Lines(text))
        {
            if (line.Length == 0 || CommentLine().IsMatch(line))
            {
                continue;
            }
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || line.AsSpan(0, eq).IndexOfAny(": \t") >= 0)
            {
                return "yaml";
            }
            any = true;
        }
        return any ? "env" : "yaml";
    }

    /// <summary>Lines as Python's <c>str.splitlines</c> splits them.</summary>
    private static List<string> Lines(string text)
    {
        var lines = new List<string>();
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                lines.Add(text[start..i]);
                if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
                {
                    i++;
                }
                start = i + 1;
            }
        }
        if (start < text.Length)
        {
            lines.Add(text[start..]);
        }
        return lines;
    }

    [GeneratedRegex(@"^\s*#", RegexOptions.CultureInvariant)]
    private static partial Regex CommentLine();

    /// <summary><c>_parse_env_file</c> and the uniqueness check of <c>load_connections_dict</c>.</summary>
    private static List<(string Id, RegoValue Value)>? ParseEnv(string text, out string? problem)
    {
        problem = null;
        var entries = new List<(string, RegoValue)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lineNo = 0;
        foreach (var line in Lines(text))
        {
            lineNo++;
            if (line.Length == 0 || CommentLine().IsMatch(line))
            {
                continue;
            }
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                problem = $"line {lineNo} has no '='";
                return null;
            }
            var key = line[..eq];
            var value = line[(eq + 1)..];
            if (key.Length == 0 || value.Length == 0)
            {
                problem = key.Length == 0 ? $"line {lineNo} has an empty key" : $"line {lineNo} has an empty value";
                return null;
            }
            if (!seen.Add(key))
            {
                problem = $"connection '{key}' is given more than once";
                return null;
            }
            entries.Add((key, RegoValue.From(value)));
        }
        return entries;
    }

    private static List<(string Id, RegoValue Value)>? ParseDocument(string text, string? format, out string? problem)
    {
        problem = null;
        RegoValue? doc;
        if (string.IsNullOrWhiteSpace(text))
        {
            doc = AirflowConnection.EmptyObject;
        }
        else if (format == "json")
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
        return root.Pairs.Select(p => (p.Key is RegoString s ? s.Value : p.Key.ToString(), p.Value)).ToList();
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
}
