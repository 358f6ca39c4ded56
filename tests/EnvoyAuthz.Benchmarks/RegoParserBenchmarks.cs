using BenchmarkDotNet.Attributes;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Benchmarks;

/// <summary>
/// Compiling a module whose one rule nests brackets <see cref="Depth"/> deep: <c>p := [[[…1…]]]</c>,
/// and the same nesting where every level first reads as a comprehension whose body turns out not
/// to be one (<c>[1 | [1 | … , 0], 0]</c>). A parser that re-reads nested terms doubles its time
/// with every level (depth 24 took 14.6 s); this one is linear, so the time per level stays flat.
/// The parser's nesting limit is 512 levels of terms and bodies (deeper is a <c>rego_parse_error</c>);
/// the second shape spends two of them per level (the array and the body tried inside it).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class RegoParserNestingBenchmarks
{
    private RegoModuleSource _arrays = null!;
    private RegoModuleSource _fallbacks = null!;

    /// <summary>Nesting depth.</summary>
    [Params(16, 20, 24, 64, 256)]
    public int Depth { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _arrays = new("n.rego", "package bench\n\np := " + new string('[', Depth) + "1" + new string(']', Depth) + "\n");
        _fallbacks = new("f.rego", "package bench\n\np := " + string.Concat(Enumerable.Repeat("[1 | ", Depth)) + "1" + string.Concat(Enumerable.Repeat(", 0]", Depth)) + "\n");
        foreach (var m in new[] { _arrays, _fallbacks })
        {
            var r = RegoCompiler.Compile([m]);
            if (!r.Success && r.Errors.Any(e => e.Code == "rego_parse_error"))
            {
                throw new InvalidOperationException($"depth {Depth} does not parse: {r.Errors[0]}");
            }
        }
    }

    /// <summary><c>p := [[[…1…]]]</c>.</summary>
    [Benchmark(Baseline = true)]
    public RegoCompileResult NestedArrays() => RegoCompiler.Compile([_arrays]);

    /// <summary><c>p := [1 | [1 | … 1, 0], 0]</c>: every level's comprehension body fails at its comma.</summary>
    [Benchmark]
    public RegoCompileResult NestedArraysAfterFailedComprehensionBodies() => RegoCompiler.Compile([_fallbacks]);
}
