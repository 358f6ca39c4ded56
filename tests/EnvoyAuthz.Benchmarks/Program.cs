using BenchmarkDotNet.Running;

namespace EnvoyAuthz.Benchmarks;

/// <summary>Runs the benchmarks: <c>make bench ARGS="--filter *Check*"</c>.</summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
