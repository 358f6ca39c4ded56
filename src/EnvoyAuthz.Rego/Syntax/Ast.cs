namespace EnvoyAuthz.Rego.Syntax;

/// <summary>Source location.</summary>
internal readonly record struct Loc(string File, int Line, int Col)
{
    public override string ToString() => $"{File}:{Line}";
}

internal abstract class Term
{
    public Loc Loc;
}

internal sealed class ScalarTerm(RegoValue value) : Term
{
    public readonly RegoValue Value = value;
}

internal sealed class VarTerm(string name) : Term
{
    public string Name = name;
    public bool IsWildcard => Name.StartsWith("$_", StringComparison.Ordinal);
    public bool IsGenerated => Name.StartsWith('$') || Name.StartsWith("__local", StringComparison.Ordinal);
}

internal sealed class RefTerm(Term head, Term[] path) : Term
{
    public Term Head = head;
    public Term[] Path = path;
}

internal sealed class ArrayTerm(Term[] items) : Term
{
    public Term[] Items = items;
}

internal sealed class SetTerm(Term[] items) : Term
{
    public Term[] Items = items;
}

internal sealed class ObjectTerm((Term Key, Term Value)[] items) : Term
{
    public (Term Key, Term Value)[] Items = items;
}

internal sealed class CallTerm(Term name, Term[] args) : Term
{
    /// <summary>Name as parsed (VarTerm or RefTerm); resolved by the compiler.</summary>
    public Term Name = name;
    public Term[] Args = args;
    /// <summary>Resolved: builtin name or data path (e.g. "data.pkg.f").</summary>
    public string? Resolved;
    public bool IsUserFunction;
}

internal sealed class ComprehensionTerm(ComprehensionKind kind, Term head, Term? value, Body body) : Term
{
    public readonly ComprehensionKind Kind = kind;
    public Term Head = head;
    public Term? Value = value;
    public Body Body = body;
}

internal enum ComprehensionKind { Array, Set, Object }

internal sealed class TemplateTerm(object[] parts) : Term
{
    /// <summary>Each part is a string literal or an <see cref="Expr"/>.</summary>
    public object[] Parts = parts;
}

internal enum ExprKind { Term, Unify, Assign, Not, SomeDecl, SomeIn, Every }

internal sealed class WithModifier(Term target, Term value)
{
    public Term Target = target;
    public Term Value = value;
    public Loc Loc;
}

internal sealed class Expr
{
    public ExprKind Kind;
    public Loc Loc;
    public Term? Term;          // Term
    public Term? Left, Right;   // Unify/Assign; SomeIn: Left=key (nullable), Right=value; Every: same
    public Term? Domain;        // SomeIn / Every
    public Expr? Inner;         // Not
    public Body? Body;          // Every
    public string[]? DeclVars;  // SomeDecl
    public WithModifier[] With = [];
    public int Index;           // original position

    public Expr Clone() => (Expr)MemberwiseClone();
}

internal sealed class Body(List<Expr> exprs)
{
    public List<Expr> Exprs = exprs;
}

internal enum RuleKind { Complete, PartialSet, Function }

internal sealed class Rule
{
    public Loc Loc;
    public string File = "";
    public bool IsDefault;
    /// <summary>Head ref, first element a VarTerm (name), others terms.</summary>
    public RefTerm HeadRef = null!;
    public Term[]? Args;
    public Term? Value;     // complete: value (null => true); partial set: null
    public Term? Key;       // partial set: contains term
    public bool IsContains;
    public bool IsAssign;
    public Body Body = new([]);
    public Rule? Else;
    public Module Module = null!;
    /// <summary>Absolute path (strings) of the ground prefix after package resolution, including "data".</summary>
    public List<RegoValue> Path = [];
    /// <summary>Dynamic (non-ground) suffix of the head ref after the ground prefix.</summary>
    public Term[] DynamicSuffix = [];
    public RuleKind Kind;
    /// <summary>METADATA annotations (normalised), or null.</summary>
    public RegoObject? Annotations;
}

internal sealed class Import
{
    public RefTerm Path = null!;
    public string? Alias;
    public Loc Loc;
}

internal sealed class Module
{
    public string File = "";
    public RefTerm Package = null!;
    public List<RegoValue> PackagePath = [];
    public List<Import> Imports = [];
    public List<Rule> Rules = [];
    /// <summary>Package-scope METADATA annotations (normalised), or null.</summary>
    public RegoObject? PackageAnnotations;
}
