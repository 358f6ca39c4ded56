namespace EnvoyAuthz.Rego;

/// <summary>A Rego module to compile: a name (used as the file in error locations) and its source text.</summary>
/// <param name="Name">File name reported in errors.</param>
/// <param name="Source">Rego v1 source.</param>
public sealed record RegoModuleSource(string Name, string Source);

/// <summary>Options for <see cref="RegoCompiler.Compile"/>.</summary>
public sealed class RegoCompileOptions
{
    /// <summary>Maximum source size per module in bytes. Default 4 MiB.</summary>
    public int MaxModuleBytes { get; init; } = 4 * 1024 * 1024;
    /// <summary>Maximum nesting depth of terms and bodies accepted by the parser. Default 512.</summary>
    public int MaxNestingDepth { get; init; } = 512;
    /// <summary>Whether test-only builtins (<c>test.sleep</c>) may be called: for test runners, never for a served policy. Default false.</summary>
    public bool AllowTestBuiltins { get; init; }
}

/// <summary>A compile error with OPA's error code and location.</summary>
/// <param name="Code">e.g. <c>rego_parse_error</c>, <c>rego_compile_error</c>, <c>rego_unsafe_var_error</c>, <c>rego_type_error</c>, <c>rego_recursion_error</c>.</param>
/// <param name="File">Module name.</param>
/// <param name="Line">1-based line (0 when unknown).</param>
/// <param name="Column">1-based column (0 when unknown).</param>
/// <param name="Message">Message as OPA words it.</param>
public sealed record RegoCompileError(string Code, string File, int Line, int Column, string Message)
{
    /// <summary>OPA style <c>file:line: code: message</c>.</summary>
    public override string ToString() => $"{File}:{Line}: {Code}: {Message}";
}

/// <summary>Result of compiling modules.</summary>
public sealed class RegoCompileResult
{
    internal RegoCompileResult(RegoPolicy? policy, IReadOnlyList<RegoCompileError> errors)
    {
        Policy = policy;
        Errors = errors;
    }

    /// <summary>True when compilation succeeded and <see cref="Policy"/> is set.</summary>
    public bool Success => Policy is not null;
    /// <summary>The compiled policy, or null on failure.</summary>
    public RegoPolicy? Policy { get; }
    /// <summary>Errors (empty on success).</summary>
    public IReadOnlyList<RegoCompileError> Errors { get; }
}

/// <summary>Options for one evaluation.</summary>
public sealed class RegoEvalOptions
{
    /// <summary>Shared default options.</summary>
    public static readonly RegoEvalOptions Default = new();
    /// <summary>When true, builtin errors abort evaluation with <c>eval_builtin_error</c> instead of making the expression undefined. Default false.</summary>
    public bool StrictBuiltinErrors { get; init; }
    /// <summary>Cancels the evaluation (result error code <c>eval_cancel_error</c>).</summary>
    public CancellationToken CancellationToken { get; init; }
    /// <summary>Wall-clock limit for one evaluation (result error <c>eval_cancel_error</c>, "evaluation timed out"); null = none.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Limit on evaluation steps (expressions evaluated and variable bindings made; result error <c>eval_limit_error</c>); null = none.</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Limit on the size in bytes of any collection built during evaluation (approximate) and of the result; null = none.</summary>
    public long? MaxOutputBytes { get; init; }
    /// <summary>Clock for <c>time.now_ns</c> (read once per evaluation). Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }
    /// <summary>Receives <c>print</c> output; null discards it.</summary>
    public Action<string>? PrintSink { get; init; }
    /// <summary>Maximum evaluation depth (nested rule/function calls and comprehension nesting). Default 2000.</summary>
    public int MaxDepth { get; init; } = 2000;

    /// <summary>What policies may reach outside the engine (<c>http.send</c>, DNS, <c>opa.runtime</c>); null (default) = nothing.</summary>
    public RegoHost? Host { get; init; }
}

/// <summary>An evaluation error.</summary>
/// <param name="Code"><c>eval_type_error</c>, <c>eval_builtin_error</c>, <c>eval_conflict_error</c>, <c>eval_cancel_error</c>, <c>eval_limit_error</c>, <c>eval_recursion_error</c>, <c>eval_internal_error</c>.</param>
/// <param name="Message">Message (OPA wording where OPA has one).</param>
public sealed record RegoEvalError(string Code, string Message)
{
    /// <summary>Module name of the expression that failed, when known.</summary>
    public string? File { get; init; }
    /// <summary>1-based line of the expression that failed (0 when unknown).</summary>
    public int Line { get; init; }
    /// <summary>1-based column of the expression that failed (0 when unknown).</summary>
    public int Column { get; init; }

    /// <summary>OPA style <c>file:line: code: message</c> (location omitted when unknown).</summary>
    public override string ToString() => File is null ? $"{Code}: {Message}" : $"{File}:{Line}: {Code}: {Message}";
}

/// <summary>Result of <see cref="RegoPolicy.Evaluate"/>.</summary>
public sealed class RegoEvalResult
{
    internal RegoEvalResult(RegoValue? value, RegoEvalError? error)
    {
        Value = value;
        Error = error;
    }

    /// <summary>True when the document is defined (and no error happened).</summary>
    public bool IsDefined => Value is not null && Error is null;
    /// <summary>The value, or null when undefined or on error.</summary>
    public RegoValue? Value { get; }
    /// <summary>The error, or null.</summary>
    public RegoEvalError? Error { get; }
}

/// <summary>Result of <see cref="RegoPolicy.Query"/>: all solutions, each a map from query variable to value.</summary>
public sealed class RegoQueryResult
{
    internal RegoQueryResult(IReadOnlyList<IReadOnlyDictionary<string, RegoValue>> bindings, RegoEvalError? error)
    {
        Bindings = bindings;
        Error = error;
    }

    /// <summary>Solutions (empty when undefined or on error).</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, RegoValue>> Bindings { get; }
    /// <summary>The error, or null.</summary>
    public RegoEvalError? Error { get; }
}

/// <summary>Compiles Rego modules into an immutable <see cref="RegoPolicy"/>.</summary>
public static class RegoCompiler
{
    /// <summary>Parses and compiles modules with an optional base document. Never throws for bad policy text.</summary>
    public static RegoCompileResult Compile(IReadOnlyList<RegoModuleSource> modules, RegoValue? data = null, RegoCompileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        return Compiler.PolicyCompiler.Compile(modules, data ?? RegoObject.Empty, options ?? new RegoCompileOptions());
    }
}
