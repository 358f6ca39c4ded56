namespace EnvoyAuthz.Rego.Conformance;

/// <summary>One conformance case (OPA's YAML schema).</summary>
public sealed class ConformanceCase
{
    /// <summary>Path of the file relative to the case directory, with '/' separators.</summary>
    public required string File { get; init; }
    /// <summary>Topic (first folder under v1/ or v1-supplement/).</summary>
    public required string Topic { get; init; }
    /// <summary>Case name.</summary>
    public required string Note { get; init; }
    /// <summary>Stable id: <c>file#note</c>.</summary>
    public string Id => File + "#" + Note;
    /// <summary>Query body.</summary>
    public required string Query { get; init; }
    /// <summary>Modules.</summary>
    public IReadOnlyList<string> Modules { get; init; } = [];
    /// <summary>Base document.</summary>
    public RegoValue? Data { get; init; }
    /// <summary>Input (JSON).</summary>
    public RegoValue? Input { get; init; }
    /// <summary>Input as Rego term text.</summary>
    public string? InputTerm { get; init; }
    /// <summary>Expected bindings (null when an error is expected).</summary>
    public RegoArray? WantResult { get; init; }
    /// <summary>Expected error code.</summary>
    public string? WantErrorCode { get; init; }
    /// <summary>Expected error message substring.</summary>
    public string? WantError { get; init; }
    /// <summary>Strict builtin errors.</summary>
    public bool StrictError { get; init; }
    /// <summary>Sort array bindings before comparing.</summary>
    public bool SortBindings { get; init; }
    /// <summary>Ignore generated variables.</summary>
    public bool IgnoreGeneratedVars { get; init; }
}
