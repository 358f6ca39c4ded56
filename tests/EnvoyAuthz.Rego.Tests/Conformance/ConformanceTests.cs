using EnvoyAuthz.Rego.Conformance;

namespace EnvoyAuthz.Rego.Tests.Conformance;

/// <summary>OPA conformance cases: every case listed in passing.txt must keep passing.</summary>
public sealed class ConformanceTests
{
    private static readonly Lazy<string?> CaseDir = new(() => CaseLoader.FindCaseDirectory());
    private static readonly Lazy<Dictionary<string, ConformanceCase>> Cases = new(() =>
    {
        var dir = CaseDir.Value;
        var result = new Dictionary<string, ConformanceCase>(StringComparer.Ordinal);
        if (dir is null) return result;
        foreach (var c in CaseLoader.LoadAll(dir)) result[c.Id.Replace('\n', ' ')] = c;
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
        Assert.True(Cases.Value.TryGetValue(id, out var c), $"listed case {id} no longer exists");
        var outcome = CaseRunner.Run(c!);
        Assert.True(outcome.Passed, outcome.Detail);
    }

    [Fact]
    public void UnlistedCases_ReportNewlyPassing()
    {
        if (CaseDir.Value is null)
            Assert.Skip("conformance cases not found: set REGO_CONFORMANCE_DIR or place them at <repo>/../shared/rego-conformance");
        var listed = new HashSet<string>(ListedIds(), StringComparer.Ordinal);
        var newly = new List<string>();
        foreach (var (id, c) in Cases.Value)
        {
            if (listed.Contains(id)) continue;
            if (CaseRunner.Run(c, TimeSpan.FromSeconds(2)).Passed) newly.Add(id);
        }
        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{newly.Count} unlisted cases now pass; add them to Conformance/passing.txt:");
        foreach (var id in newly.OrderBy(x => x, StringComparer.Ordinal)) output?.WriteLine(id);
    }
}
