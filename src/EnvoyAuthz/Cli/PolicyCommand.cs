using System.Diagnostics;
using System.Text;
using System.Text.Json;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Cli;

/// <summary>
/// <c>envoy-authz policy test PATH…</c> runs Rego unit tests (rules named <c>test_*</c>) like
/// <c>opa test</c>; <c>envoy-authz policy eval -d PATH [-i input.json] QUERY</c> evaluates a query
/// like <c>opa eval</c> and prints JSON. Exit codes: 0 success, 1 a test failed or the query
/// errored, 2 usage or compile errors.
/// </summary>
public static class PolicyCommand
{
    /// <summary>Runs <c>policy test</c> or <c>policy eval</c>.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => args.Length switch
    {
        > 0 when args[0] == "test" => Test(args[1..], stdout, stderr),
        > 0 when args[0] == "eval" => Eval(args[1..], stdout, stderr),
        _ => throw new CliUsageException("usage: policy test PATH... [--verbose] [--run REGEX] | policy eval -d PATH [-i FILE] QUERY"),
    };

    private static int Test(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = CliArgs.Parse(args, flags: ["--verbose", "-v"], options: ["--run", "--timeout"]);
        if (cli.Positional.Count == 0)
        {
            throw new CliUsageException("policy test needs at least one PATH (a .rego file, a folder or a bundle)");
        }
        var verbose = cli.Flag("--verbose") || cli.Flag("-v");
        var filter = cli.Option("--run") is { } run ? new System.Text.RegularExpressions.Regex(run, System.Text.RegularExpressions.RegexOptions.NonBacktracking) : null;
        var timeout = cli.Option("--timeout") is { } t && TokenCommand.TryParseDuration(t, out var ts) ? ts : TimeSpan.FromSeconds(5);
        var policy = CompileOrReport(cli.Positional, stderr);
        if (policy is null)
        {
            return 2;
        }
        var tests = policy.Rules().Where(r => !r.IsFunction && LastSegment(r.Ref).StartsWith("test_", StringComparison.Ordinal))
            .Where(r => filter is null || filter.IsMatch(r.Ref)).ToList();
        int passed = 0, failed = 0, errors = 0;
        string? currentFile = null;
        foreach (var test in tests.OrderBy(t => t.File, StringComparer.Ordinal).ThenBy(t => t.Line))
        {
            if (test.File != currentFile)
            {
                currentFile = test.File;
                stdout.WriteLine($"{currentFile}:");
            }
            var printed = new StringBuilder();
            var sw = Stopwatch.StartNew();
            var result = policy.Evaluate(test.Ref, null, new RegoEvalOptions
            {
                Timeout = timeout,
                PrintSink = line => printed.AppendLine(line),
            });
            var elapsed = sw.Elapsed;
            string outcome;
            if (result.Error is { } error)
            {
                errors++;
                outcome = $"ERROR ({Fmt(elapsed)})\n  {error.Code}: {error.Message}";
            }
            else if (result.IsDefined && result.Value is RegoBoolean { Value: true })
            {
                passed++;
                outcome = $"PASS ({Fmt(elapsed)})";
            }
            else
            {
                failed++;
                outcome = $"FAIL ({Fmt(elapsed)})";
            }
            stdout.WriteLine($"{test.Ref}: {outcome}");
            if ((verbose || !outcome.StartsWith("PASS", StringComparison.Ordinal)) && printed.Length > 0)
            {
                foreach (var line in printed.ToString().TrimEnd().Split('\n'))
                {
                    stdout.WriteLine("  " + line.TrimEnd('\r'));
                }
            }
        }
        stdout.WriteLine(new string('-', 80));
        var total = tests.Count;
        if (passed > 0)
        {
            stdout.WriteLine($"PASS: {passed}/{total}");
        }
        if (failed > 0)
        {
            stdout.WriteLine($"FAIL: {failed}/{total}");
        }
        if (errors > 0)
        {
            stdout.WriteLine($"ERROR: {errors}/{total}");
        }
        if (total == 0)
        {
            stdout.WriteLine("no tests found (rules named test_*)");
            return 1;
        }
        return failed + errors == 0 ? 0 : 1;
    }

    private static int Eval(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = CliArgs.Parse(args, flags: ["--strict-builtin-errors"], options: ["-d", "--data", "-i", "--input", "--format"]);
        if (cli.Positional.Count != 1)
        {
            throw new CliUsageException("policy eval needs exactly one QUERY, e.g. 'data.envoy.authz.allow'");
        }
        var paths = cli.Options("-d").Concat(cli.Options("--data")).ToList();
        var policy = paths.Count == 0
            ? RegoCompiler.Compile([new RegoModuleSource("empty.rego", "package __empty\n")]).Policy
            : CompileOrReport(paths, stderr);
        if (policy is null)
        {
            return 2;
        }
        RegoValue? input = null;
        if ((cli.Option("-i") ?? cli.Option("--input")) is { } inputFile)
        {
            try
            {
                input = RegoJson.Parse(File.ReadAllBytes(inputFile));
            }
            catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"policy eval: {inputFile}: {ex.Message}");
                return 2;
            }
        }
        var query = cli.Positional[0];
        var result = policy.Query(query, input, new RegoEvalOptions { StrictBuiltinErrors = cli.Flag("--strict-builtin-errors"), PrintSink = stderr.WriteLine });
        using var buffer = new MemoryStream();
        using var w = new Utf8JsonWriter(buffer, JsonOutput.Options);
        if (result.Error is { } error)
        {
            w.WriteStartObject();
            w.WriteStartArray("errors");
            w.WriteStartObject();
            w.WriteString("code", error.Code);
            w.WriteString("message", error.Message);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.Flush();
            stdout.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
            return 1;
        }
        // opa eval's shape: one result per solution; a plain reference also gets its value as an expression.
        var isRef = System.Text.RegularExpressions.Regex.IsMatch(query.Trim(), @"^(data|input)(\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]+\])*$");
        RegoValue? refValue = null;
        if (isRef)
        {
            var r = policy.Evaluate(query.Trim(), input);
            refValue = r.IsDefined ? r.Value : null;
        }
        w.WriteStartObject();
        if (result.Bindings.Count > 0 && (!isRef || refValue is not null))
        {
            w.WriteStartArray("result");
            foreach (var binding in result.Bindings)
            {
                w.WriteStartObject();
                if (isRef)
                {
                    w.WriteStartArray("expressions");
                    w.WriteStartObject();
                    w.WritePropertyName("value");
                    refValue!.WriteJson(w);
                    w.WriteString("text", query.Trim());
                    w.WriteEndObject();
                    w.WriteEndArray();
                }
                var visible = binding.Where(kv => !kv.Key.StartsWith("__", StringComparison.Ordinal)).ToList();
                if (visible.Count > 0)
                {
                    w.WriteStartObject("bindings");
                    foreach (var (name, value) in visible.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    {
                        w.WritePropertyName(name);
                        value.WriteJson(w);
                    }
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        w.Flush();
        stdout.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
        return 0;
    }

    /// <summary>Loads and compiles every path; prints errors (file:line:col) and returns null on failure.</summary>
    internal static RegoPolicy? CompileOrReport(IReadOnlyList<string> paths, TextWriter stderr)
    {
        var files = new List<(string, byte[])>();
        try
        {
            foreach (var path in paths)
            {
                if (File.Exists(path) && path.EndsWith(".rego", StringComparison.Ordinal))
                {
                    files.Add((path, File.ReadAllBytes(path)));
                    continue;
                }
                if (File.Exists(path) && path.EndsWith(".json", StringComparison.Ordinal))
                {
                    files.Add(("data.json", File.ReadAllBytes(path))); // a data file given directly sits at the root, as with opa eval -d
                    continue;
                }
                var bundle = PolicyBundle.Load(path);
                var prefix = Directory.Exists(path) ? path.TrimEnd('/') + "/" : path + ":";
                files.AddRange(bundle.Modules.Select(m => (prefix + m.Name, Encoding.UTF8.GetBytes(m.Source))));
                files.Add(("data.json", Encoding.UTF8.GetBytes(bundle.Data.ToJson())));
            }
            var merged = MergeData(files);
            var result = RegoCompiler.Compile(merged.Modules, merged.Data);
            if (!result.Success)
            {
                foreach (var e in result.Errors)
                {
                    stderr.WriteLine($"{e.File}:{e.Line}:{e.Column}: {e.Code}: {e.Message}");
                }
                return null;
            }
            return result.Policy;
        }
        catch (PolicyLoadException ex)
        {
            foreach (var e in ex.Errors)
            {
                stderr.WriteLine(e);
            }
            return null;
        }
    }

    private static (IReadOnlyList<RegoModuleSource> Modules, RegoObject Data) MergeData(List<(string Name, byte[] Content)> files)
    {
        var modules = files.Where(f => f.Name.EndsWith(".rego", StringComparison.Ordinal))
            .Select(f => new RegoModuleSource(f.Name, Encoding.UTF8.GetString(f.Content))).ToList();
        var data = new RegoObject.Builder();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, content) in files.Where(f => !f.Name.EndsWith(".rego", StringComparison.Ordinal)))
        {
            if (RegoJson.Parse(content) is RegoObject o)
            {
                foreach (var (k, v) in o.Pairs)
                {
                    if (seen.Add(k.ToJson()))
                    {
                        data.Add(k, v);
                    }
                    else
                    {
                        throw new PolicyLoadException([$"data key {k} is defined by more than one path"]);
                    }
                }
            }
        }
        return (modules, data.Build());
    }

    private static string LastSegment(string reference) => reference[(reference.LastIndexOf('.') + 1)..];

    private static string Fmt(TimeSpan t) => t.TotalMilliseconds < 1 ? $"{t.TotalMicroseconds:F0}µs" : $"{t.TotalMilliseconds:F1}ms";
}
