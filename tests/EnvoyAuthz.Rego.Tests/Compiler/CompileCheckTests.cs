using EnvoyAuthz.Rego.Conformance;

namespace EnvoyAuthz.Rego.Tests.Compiler;

/// <summary>
/// The engine rejects what OPA refuses to compile, and fixes where it answered differently. Cases are
/// in the conformance schema (note, modules, query, want_result, want_error_code, want_error) plus
/// <c>want_loc</c> (<c>"line:col"</c> of the error in its module), one YAML file per class under
/// <c>Compiler/cases/</c>, written from OPA's documentation and source. A case with a
/// <c>want_error_code</c> passes when compiling (or, when it compiles, evaluating the query) fails
/// with that code, a message containing <c>want_error</c> and the location <c>want_loc</c>.
/// </summary>
public sealed class CompileCheckTests
{
    private static string CaseDir => Path.Combine(AppContext.BaseDirectory, "Compiler", "cases");

    private static readonly Lazy<Dictionary<string, RegoObject>> Cases = new(() =>
    {
        var result = new Dictionary<string, RegoObject>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(CaseDir, "*.yaml").Order(StringComparer.Ordinal))
        {
            var doc = (RegoObject)CaseLoader.LoadYaml(File.ReadAllText(file));
            foreach (var c in ((RegoArray)doc["cases"]!).Elements.Cast<RegoObject>())
                result.Add(Path.GetFileNameWithoutExtension(file) + "/" + ((RegoString)c["note"]!).Value, c);
        }
        return result;
    });

    /// <summary>One row per case.</summary>
    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Cases.Value.Keys) data.Add(id);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Case_BehavesAsOpa(string id)
    {
        var c = Cases.Value[id];
        string? S(string k) => c[k] is RegoString s ? s.Value : null;
        var modules = ((RegoArray)c["modules"]!).Elements.Select((m, i) => new RegoModuleSource($"test-{i}.rego", ((RegoString)m).Value)).ToList();
        var wantCode = S("want_error_code");
        var wantError = S("want_error");
        var wantLoc = S("want_loc");
        var compiled = RegoCompiler.Compile(modules, c["data"] is RegoObject d ? d : null);
        if (wantCode is not null && !compiled.Success)
        {
            var shown = string.Join("\n", compiled.Errors.Select(e => $"{e.File}:{e.Line}:{e.Column}: {e.Code}: {e.Message}"));
            Assert.Contains(compiled.Errors, e =>
                e.Code == wantCode
                && (wantError is null || e.Message.Contains(wantError, StringComparison.Ordinal))
                && (wantLoc is null || $"{e.Line}:{e.Column}" == wantLoc));
            Assert.True(compiled.Errors.All(e => e.Line > 0), "every error has a location:\n" + shown);
            return;
        }
        Assert.True(compiled.Success, "compile errors: " + string.Join("; ", compiled.Errors));
        var query = S("query") ?? throw new InvalidOperationException($"{id}: compiled, but the case has no query");
        var outcome = CaseRunner.Run(new ConformanceCase
        {
            File = "compile-checks",
            Topic = "compile-checks",
            Note = id,
            Query = query,
            Modules = modules.Select(m => m.Source).ToList(),
            Data = c["data"] as RegoObject,
            Input = c["input"] is RegoNull or null ? null : c["input"],
            WantResult = c["want_result"] as RegoArray,
            WantErrorCode = wantCode,
            WantError = wantError,
            StrictError = c["strict_error"] is RegoBoolean { Value: true },
        });
        Assert.True(outcome.Passed, outcome.Detail);
    }
}
