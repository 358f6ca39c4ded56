using EnvoyAuthz.Rego.Syntax;
using EnvoyAuthz.Rego.Compiler;

namespace EnvoyAuthz.Rego.Evaluation;

/// <summary>A node of the rule tree under <c>data</c>. Immutable after compilation.</summary>
internal sealed class RuleNode
{
    public RuleNode(RegoValue? key, RuleNode? parent, int id)
    {
        Key = key;
        Parent = parent;
        Id = id;
        Path = parent is null ? [] : [.. parent.Path, key!];
    }

    public RegoValue? Key { get; }
    public RuleNode? Parent { get; }
    public int Id { get; }
    public RegoValue[] Path { get; }
    public Dictionary<RegoValue, RuleNode> Children { get; } = new();

    public List<Rule> Complete { get; } = [];
    public List<Rule> PartialSet { get; } = [];
    public List<Rule> ObjectRules { get; } = [];
    public List<Rule> Functions { get; } = [];
    public Rule? Default { get; set; }
    /// <summary>Package-scope METADATA of the package at this node (from any of its modules).</summary>
    public RegoObject? PackageAnnotations { get; set; }
    public Compiler.RuleIndex? CompleteIndex { get; set; }
    public Compiler.RuleIndex? PartialSetIndex { get; set; }
    public Compiler.RuleIndex? ObjectIndex { get; set; }
    public int Arity { get; set; } = -1;

    /// <summary>True when a complete rule's value is a constant (the body can stop at its first solution).</summary>
    public bool HasRules => Complete.Count > 0 || PartialSet.Count > 0 || ObjectRules.Count > 0 || (Default is not null && Default.Args is null);
    public bool IsFunction => Functions.Count > 0 || (Default is not null && Default.Args is not null);

    /// <summary>Whether this subtree contains any non-function rule.</summary>
    public bool HasVirtual { get; set; }

    public string DottedPath => "data" + string.Concat(Path.Select(p => p is RegoString s ? "." + s.Value : "[" + p + "]"));
}

/// <summary>The compiled, immutable policy shared by evaluations.</summary>
internal sealed class CompiledPolicy
{
    public CompiledPolicy(RegoValue data, RuleNode root, Dictionary<string, RuleNode> functions, int nodeCount)
    {
        BaseData = data;
        Root = root;
        Functions = functions;
        NodeCount = nodeCount;
    }

    public RegoValue BaseData { get; }
    public RuleNode Root { get; }
    public Dictionary<string, RuleNode> Functions { get; }
    public int NodeCount { get; }
    /// <summary>Whether queries may call test-only builtins (as the modules could).</summary>
    public bool AllowTestBuiltins { get; init; }

    /// <summary>Compiled queries by text (bounded); compiled query bodies are immutable and shared.</summary>
    internal System.Collections.Concurrent.ConcurrentDictionary<string, (Body Body, List<string> Vars)> QueryCache { get; } = new(StringComparer.Ordinal);
}
