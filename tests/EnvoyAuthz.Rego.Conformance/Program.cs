using System.Diagnostics;
using EnvoyAuthz.Rego.Conformance;

// Usage: dotnet run --project tests/EnvoyAuthz.Rego.Conformance -c Release [-- --filter topic/substr] [--verbose] [--write-passing FILE]
// Exit code: 0 when every case run passed (or no cases were found), 1 when any failed, 2 on bad arguments.
return ConformanceCli.Run(args, Console.Out, Console.Error);

namespace EnvoyAuthz.Rego.Conformance
{
    /// <summary>The conformance runner's command line, callable from tests.</summary>
    public static class ConformanceCli
    {
        /// <summary>Runs the cases of <paramref name="caseDir"/> (default: <see cref="CaseLoader.FindCaseDirectory"/>); returns the exit code.</summary>
        public static int Run(string[] args, TextWriter stdout, TextWriter stderr, string? caseDir = null)
        {
            string? filter = null;
            string? writePassing = null;
            bool verbose = false;
            for (int i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--filter" when i + 1 < args.Length: filter = args[++i]; break;
                    case "--write-passing" when i + 1 < args.Length: writePassing = args[++i]; break;
                    case "--verbose": verbose = true; break;
                    default:
                        stderr.WriteLine($"unknown argument {args[i]}");
                        return 2;
                }
            }

            caseDir ??= CaseLoader.FindCaseDirectory();
            if (caseDir is null)
            {
                stdout.WriteLine("conformance: case directory not found (set REGO_CONFORMANCE_DIR)");
                stdout.WriteLine("conformance: 0 passed, 0 failed of 0");
                return 0;
            }
            var classes = CaseLoader.LoadTopicClasses(caseDir);
            var unreadable = new List<string>();
            var cases = CaseLoader.LoadAll(caseDir, unreadable);
            if (filter is not null) cases = cases.Where(c => c.Id.Contains(filter, StringComparison.Ordinal)).ToList();

            var sw = Stopwatch.StartNew();
            var byTopic = new SortedDictionary<string, (int Pass, int Total)>(StringComparer.Ordinal);
            var byClass = new SortedDictionary<string, (int Pass, int Total)>(StringComparer.Ordinal);
            var passing = new List<string>();
            // a case file that cannot be read is a failure: its cases would otherwise vanish unnoticed
            int passed = 0, failed = unreadable.Count;
            foreach (var u in unreadable) stdout.WriteLine($"FAIL cannot load {u}");
            foreach (var c in cases)
            {
                var outcome = CaseRunner.Run(c);
                var cls = classes.TryGetValue(c.Topic, out var k) ? k : "?";
                var t = byTopic.GetValueOrDefault(c.Topic);
                var cl = byClass.GetValueOrDefault(cls);
                if (outcome.Passed)
                {
                    passed++;
                    passing.Add(c.Id);
                    byTopic[c.Topic] = (t.Pass + 1, t.Total + 1);
                    byClass[cls] = (cl.Pass + 1, cl.Total + 1);
                }
                else
                {
                    failed++;
                    byTopic[c.Topic] = (t.Pass, t.Total + 1);
                    byClass[cls] = (cl.Pass, cl.Total + 1);
                    if (verbose) stdout.WriteLine($"FAIL {c.Id}\n      {outcome.Detail}");
                }
            }

            stdout.WriteLine();
            stdout.WriteLine("per topic (passed/total):");
            foreach (var (topic, (p, n)) in byTopic)
                stdout.WriteLine($"  {topic,-40} {(classes.TryGetValue(topic, out var tc) ? tc : "?")}  {p,4}/{n,-4}{(p == n ? "" : "  *")}");
            stdout.WriteLine("per class:");
            foreach (var (cls, (p, n)) in byClass)
                stdout.WriteLine($"  class {cls}: {p}/{n} ({(n == 0 ? 0 : 100.0 * p / n):F1}%)");
            stdout.WriteLine($"elapsed {sw.Elapsed.TotalSeconds:F1}s");
            if (writePassing is not null)
            {
                passing.Sort(StringComparer.Ordinal);
                File.WriteAllLines(writePassing, passing.Select(p => p.Replace('\n', ' ')));
            }
            stdout.WriteLine($"conformance: {passed} passed, {failed} failed of {passed + failed}");
            return failed > 0 ? 1 : 0;
        }
    }
}
