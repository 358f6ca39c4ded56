using System.Diagnostics;
using EnvoyAuthz.Rego.Conformance;

// Usage: dotnet run --project tests/EnvoyAuthz.Rego.Conformance -c Release [-- --filter topic/substr] [--verbose] [--write-passing FILE]
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
            Console.Error.WriteLine($"unknown argument {args[i]}");
            return 2;
    }
}

var caseDir = CaseLoader.FindCaseDirectory();
if (caseDir is null)
{
    Console.WriteLine("conformance: case directory not found (set REGO_CONFORMANCE_DIR)");
    Console.WriteLine("conformance: 0 passed, 0 failed of 0");
    return 0;
}
var classes = CaseLoader.LoadTopicClasses(caseDir);
var cases = CaseLoader.LoadAll(caseDir);
if (filter is not null) cases = cases.Where(c => c.Id.Contains(filter, StringComparison.Ordinal)).ToList();

var sw = Stopwatch.StartNew();
var byTopic = new SortedDictionary<string, (int Pass, int Total)>(StringComparer.Ordinal);
var byClass = new SortedDictionary<string, (int Pass, int Total)>(StringComparer.Ordinal);
var passing = new List<string>();
int passed = 0, failed = 0;
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
        if (verbose) Console.WriteLine($"FAIL {c.Id}\n      {outcome.Detail}");
    }
}

Console.WriteLine();
Console.WriteLine("per topic (passed/total):");
foreach (var (topic, (p, n)) in byTopic)
    Console.WriteLine($"  {topic,-40} {(classes.TryGetValue(topic, out var tc) ? tc : "?")}  {p,4}/{n,-4}{(p == n ? "" : "  *")}");
Console.WriteLine("per class:");
foreach (var (cls, (p, n)) in byClass)
    Console.WriteLine($"  class {cls}: {p}/{n} ({(n == 0 ? 0 : 100.0 * p / n):F1}%)");
Console.WriteLine($"elapsed {sw.Elapsed.TotalSeconds:F1}s");
if (writePassing is not null)
{
    passing.Sort(StringComparer.Ordinal);
    File.WriteAllLines(writePassing, passing.Select(p => p.Replace('\n', ' ')));
}
Console.WriteLine($"conformance: {passed} passed, {failed} failed of {passed + failed}");
return 0;
