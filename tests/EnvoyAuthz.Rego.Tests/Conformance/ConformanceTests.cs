using EnvoyAuthz.Rego.Conformance;

namespace EnvoyAuthz.Rego.Tests.Conformance;

/// <summary>
/// OPA conformance cases: every case listed in passing.txt must keep passing. A few upstream
/// files repeat a case name, so one id may name several cases: all of them run under it.
/// </summary>
public sealed class ConformanceTests
{
    private static readonly Lazy<string?> CaseDir = new(() => CaseLoader.FindCaseDirectory());
    private static readonly Lazy<Dictionary<string, List<ConformanceCase>>> Cases = new(() =>
    {
        var dir = CaseDir.Value;
        var result = new Dictionary<string, List<ConformanceCase>>(StringComparer.Ordinal);
        if (dir is null) return result;
        foreach (var c in CaseLoader.LoadAll(dir))
        {
            var id = c.Id.Replace('\n', ' ');
            if (!result.TryGetValue(id, out var list)) result[id] = list = [];
            list.Add(c);
        }
        return result;
    });

    private static string PassingFile => Path.Combine(AppContext.BaseDirectory, "Conformance", "passing.txt");

    private static IEnumerable<string> ListedIds() =>
        File.Exists(PassingFile)
            ? File.ReadAllLines(PassingFile).Where(l => l.Length > 0 && !l.StartsWith("//", StringComparison.Ordinal))
            : [];

    /// <summary>One row per listed case.</summary>
    public static TheoryData<string> Listed()
    {
        var data = new TheoryData<string>();
        foreach (var id in ListedIds()) data.Add(id);
        return data;
    }

    [Theory]
    [MemberData(nameof(Listed))]
    public void ListedCase_Passes(string id)
    {
        if (CaseDir.Value is null)
            Assert.Skip("conformance cases not found: set REGO_CONFORMANCE_DIR or place them at <repo>/../shared/rego-conformance");
        Assert.True(Cases.Value.TryGetValue(id, out var cases), $"listed case {id} no longer exists");
        for (var i = 0; i < cases!.Count; i++)
        {
            var outcome = CaseRunner.Run(cases[i]);
            Assert.True(outcome.Passed, $"{id} (case {i + 1} of {cases.Count} with this id): {outcome.Detail}");
        }
    }

    [Fact]
    public void UnlistedCases_ReportNewlyPassing()
    {
        if (CaseDir.Value is null)
            Assert.Skip("conformance cases not found: set REGO_CONFORMANCE_DIR or place them at <repo>/../shared/rego-conformance");
        var listed = new HashSet<string>(ListedIds(), StringComparer.Ordinal);
        var newly = new List<string>();
        foreach (var (id, cases) in Cases.Value)
        {
            if (listed.Contains(id)) continue;
            if (cases.All(c => CaseRunner.Run(c, TimeSpan.FromSeconds(2)).Passed)) newly.Add(id);
        }
        // The list only grows: a case that passes belongs on it, so the gain is kept by ListedCase_Passes.
        Assert.True(newly.Count == 0,
            $"{newly.Count} unlisted cases now pass; add them to Conformance/passing.txt:\n" + string.Join("\n", newly.OrderBy(x => x, StringComparer.Ordinal)));
    }

    [Fact]
    public void ListedIds_AreListedOnce()
    {
        // an id listed twice would be one theory row twice; an id naming several cases runs them all
        var listedTwice = ListedIds().GroupBy(x => x, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(listedTwice.Count == 0, "listed twice: " + string.Join(", ", listedTwice));
    }
}

/// <summary>The conformance runner itself: exact comparison and its exit code.</summary>
public sealed class ConformanceRunnerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rego-conformance-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("1", "1.0", true)]
    [InlineData("1e3", "1000", true)]
    [InlineData("12345678901234567890", "12345678901234567890.0", true)]
    // uuid.parse's v2 `time` when time_low was left out: 100,000 ns off, hidden by a 1e-9 relative tolerance
    [InlineData("1693566990121469600", "1693566990121369600", false)]
    [InlineData("0.1", "0.10000000001", false)]
    [InlineData("[1, {\"a\": 2}]", "[1, {\"a\": 2.000000000001}]", false)]
    public void DeepEqual_ComparesNumbersExactlyByValue(string a, string b, bool equal)
    {
        Assert.Equal(equal, CaseRunner.DeepEqual(RegoJson.Parse(a), RegoJson.Parse(b)));
        Assert.Equal(equal, CaseRunner.DeepEqual(RegoJson.Parse(b), RegoJson.Parse(a)));
    }

    private void WriteCases(string name, string json)
    {
        var topic = Path.Combine(_dir, "v1", "topic");
        Directory.CreateDirectory(topic);
        File.WriteAllText(Path.Combine(topic, name), json);
    }

    private const string Passing = """{"cases": [{"note": "t/ok", "query": "data.t.p = x", "modules": ["package t\n\np := 1\n"], "want_result": [{"x": 1}]}]}""";

    [Fact]
    public void Runner_AllCasesPass_ExitsZero()
    {
        WriteCases("a.json", Passing);
        var stdout = new StringWriter();
        Assert.Equal(0, ConformanceCli.Run([], stdout, new StringWriter(), _dir));
        Assert.Contains("conformance: 1 passed, 0 failed of 1", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    // a wrong answer, off by less than a 1e-9 relative tolerance would see
    [InlineData("""{"cases": [{"note": "t/off", "query": "data.t.p = x", "modules": ["package t\n\np := 1693566990121369600\n"], "want_result": [{"x": 1693566990121469600}]}]}""")]
    // an unexpected error
    [InlineData("""{"cases": [{"note": "t/err", "query": "data.t.p = x", "modules": ["package t\n\np := 1 / 0\n"], "strict_error": true, "want_result": [{"x": 1}]}]}""")]
    // a file that cannot be read
    [InlineData("""{"cases": [""")]
    public void Runner_ACaseFails_ExitsNonZero(string failing)
    {
        WriteCases("a.json", Passing);
        WriteCases("b.json", failing);
        var stdout = new StringWriter();
        Assert.Equal(1, ConformanceCli.Run([], stdout, new StringWriter(), _dir));
        Assert.Contains("1 passed, 1 failed", stdout.ToString(), StringComparison.Ordinal);
    }
}
