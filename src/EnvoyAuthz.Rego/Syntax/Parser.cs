using System.Text;

namespace EnvoyAuthz.Rego.Syntax;

/// <summary>
/// Recursive-descent parser for Rego v1. It runs in time linear in the number of tokens: the one
/// ambiguity that needs a second reading (<c>[a | b]</c> is a comprehension when <c>b</c> parses
/// as a body, else an array holding <c>a | b</c>) is settled by re-reading only that body, and
/// every bracketed term is parsed once and remembered by its position, so nesting never multiplies
/// the work. Nesting deeper than <c>maxDepth</c> is a parse error (<see cref="RegoParseException.IsLimit"/>).
/// </summary>
internal sealed class Parser
{
    private readonly List<Token> _t;
    private readonly string _file;
    private readonly string _src;
    private readonly int _maxDepth;
    private readonly WildcardCounter _wild;
    private readonly CancellationToken _ct;
    // token index of each opening bracket → index of its closing bracket (-1 when unclosed)
    private readonly int[] _match;
    // bracketed terms already parsed, by the token index of their opening bracket
    private readonly Dictionary<int, Memo> _memo = [];
    private int _p;
    private int _depth;
    private int _work;

    internal sealed class WildcardCounter { public int N; }

    private readonly record struct Memo(Term? Term, int End, int Depth, RegoParseException? Error);

    private Parser(string src, List<Token> toks, string file, int maxDepth, WildcardCounter wild, CancellationToken ct = default)
    {
        _src = src;
        _t = toks;
        _file = file;
        _maxDepth = maxDepth;
        _wild = wild;
        _ct = ct;
        _match = MatchBrackets(toks);
    }

    /// <summary>Pairs every opening bracket with the next closing one at its level (any kind closes any kind, as the look-ahead always counted them).</summary>
    private static int[] MatchBrackets(List<Token> toks)
    {
        var match = new int[toks.Count];
        var open = new Stack<int>();
        for (int i = 0; i < toks.Count; i++)
        {
            match[i] = -1;
            switch (toks[i].Kind)
            {
                case Tok.LBrace or Tok.LBrack or Tok.LParen:
                    open.Push(i);
                    break;
                case Tok.RBrace or Tok.RBrack or Tok.RParen when open.Count > 0:
                    match[open.Pop()] = i;
                    break;
            }
        }
        return match;
    }

    /// <summary>Parses a module; <paramref name="ct"/> (e.g. an evaluation's deadline for <c>rego.parse_module</c>) is observed as the parser advances.</summary>
    public static Module ParseModule(string file, string src, int maxDepth, WildcardCounter wild, CancellationToken ct = default)
    {
        var comments = new List<(int Line, string Text)>();
        var p = new Parser(src, Lexer.Lex(src, 0, 0, comments), file, maxDepth, wild, ct);
        var m = p.Module();
        if (comments.Count > 0) Annotations.Attach(m, comments, p._t);
        return m;
    }

    /// <summary>Parses a module and reports how many primary terms the parser read (a measure of its work, for tests: linear in the tokens).</summary>
    internal static Module ParseModule(string file, string src, int maxDepth, out int termsRead)
    {
        var p = new Parser(src, Lexer.Lex(src), file, maxDepth, new WildcardCounter());
        try
        {
            return p.Module();
        }
        finally
        {
            termsRead = p._work;
        }
    }

    public static Body ParseQuery(string src, int maxDepth, WildcardCounter wild)
    {
        var p = new Parser(src, Lexer.Lex(src), "query", maxDepth, wild);
        var body = p.BodyUntil(Tok.EOF);
        if (body.Exprs.Count == 0) throw new RegoParseException("empty query", 1, 1);
        return body;
    }

    public static Term ParseTermText(string src, WildcardCounter wild)
    {
        var p = new Parser(src, Lexer.Lex(src), "term", 512, wild);
        var t = p.TermIn();
        if (p.Cur.Kind != Tok.EOF) throw p.Err("unexpected " + p.Cur.Kind);
        return t;
    }

    private Token Cur => _t[_p];
    private Token Peek(int n = 1) => _t[Math.Min(_p + n, _t.Count - 1)];
    private Loc L(Token t) => new(_file, t.Line, t.Col);
    private RegoParseException Err(string msg) => new(msg, Cur.Line, Cur.Col);
    private bool IsIdent(string s) => Cur.Kind == Tok.Ident && Cur.Text == s && !DotFollows(_p);

    private bool DotFollows(int i) => i + 1 < _t.Count && (_t[i + 1].Kind == Tok.Dot || _t[i + 1].Kind == Tok.LBrack) && _t[i + 1].Pos == _t[i].End;

    private Token Expect(Tok k)
    {
        if (Cur.Kind != k) throw Err($"unexpected {Describe(Cur)} token: expected {k.ToString().ToLowerInvariant()}");
        return _t[_p++];
    }

    private static string Describe(Token t) => t.Kind switch
    {
        Tok.EOF => "eof",
        Tok.Ident => "ident",
        Tok.String or Tok.RawString => "string",
        Tok.Number => "number",
        _ => t.Kind.ToString().ToLowerInvariant(),
    };

    private void Enter()
    {
        if (++_depth > _maxDepth) throw Limit($"nesting too deep (more than {_maxDepth} levels)", Cur.Line, Cur.Col);
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
    }

    private static RegoParseException Limit(string msg, int line, int col) => new(msg, line, col) { IsLimit = true };

    /// <summary>Counts parsing work; every 1024 terms the caller's token is checked (<see cref="OperationCanceledException"/>).</summary>
    private void Work()
    {
        if ((++_work & 1023) == 0) _ct.ThrowIfCancellationRequested();
    }

    // ---------------- module ----------------

    private Module Module()
    {
        var m = new Module { File = _file };
        if (!IsIdent("package")) throw Err("package expected");
        _p++;
        m.Package = RefOnly();
        while (IsIdent("import"))
        {
            var tok = Cur;
            _p++;
            var imp = new Import { Loc = L(tok), Path = RefOnly() };
            if (IsIdent("as") && !Cur.NewlineBefore) { _p++; imp.Alias = Expect(Tok.Ident).Text; }
            m.Imports.Add(imp);
        }
        while (Cur.Kind != Tok.EOF)
        {
            var rules = RuleDecl(m);
            m.Rules.AddRange(rules);
        }
        return m;
    }

    private RefTerm RefOnly()
    {
        var tok = Expect(Tok.Ident);
        var head = new VarTerm(tok.Text) { Loc = L(tok) };
        var path = new List<Term>();
        while (!Cur.NewlineBefore && (Cur.Kind == Tok.Dot || Cur.Kind == Tok.LBrack))
        {
            if (Cur.Kind == Tok.Dot)
            {
                _p++;
                var id = Expect(Tok.Ident);
                path.Add(new ScalarTerm(new RegoString(id.Text)) { Loc = L(id) });
            }
            else
            {
                _p++;
                path.Add(TermIn());
                Expect(Tok.RBrack);
            }
        }
        return new RefTerm(head, path.ToArray()) { Loc = head.Loc };
    }

    private static readonly HashSet<string> Keywords = ["package", "import", "default", "else", "not", "some", "with", "if", "contains", "in", "every", "as"];

    private List<Rule> RuleDecl(Module m)
    {
        var start = Cur;
        _chain = 0;
        var rule = new Rule { Loc = L(start), File = _file, Module = m };
        if (IsIdent("default"))
        {
            rule.IsDefault = true;
            _p++;
        }
        if (Cur.Kind != Tok.Ident || (Keywords.Contains(Cur.Text) && !DotFollows(_p))) throw Err($"unexpected {Describe(Cur)} token");
        // head ref
        var headTok = Cur;
        var head = new VarTerm(Expect(Tok.Ident).Text) { Loc = L(headTok) };
        var path = new List<Term>();
        while (!Cur.NewlineBefore && (Cur.Kind == Tok.Dot || Cur.Kind == Tok.LBrack))
        {
            if (Cur.Kind == Tok.Dot)
            {
                _p++;
                var id = Expect(Tok.Ident);
                path.Add(new ScalarTerm(new RegoString(id.Text)) { Loc = L(id) });
            }
            else
            {
                _p++;
                path.Add(TermIn());
                Expect(Tok.RBrack);
            }
        }
        rule.HeadRef = new RefTerm(head, path.ToArray()) { Loc = head.Loc };
        if (Cur.Kind == Tok.LParen && !Cur.NewlineBefore)
        {
            _p++;
            var args = new List<Term>();
            while (Cur.Kind != Tok.RParen)
            {
                args.Add(TermIn());
                if (Cur.Kind == Tok.Comma) _p++;
                else break;
            }
            Expect(Tok.RParen);
            rule.Args = args.ToArray();
        }
        if (IsIdent("contains") && !Cur.NewlineBefore)
        {
            _p++;
            rule.IsContains = true;
            rule.Key = TermIn();
        }
        else if ((Cur.Kind == Tok.Assign || Cur.Kind == Tok.Unify) && !Cur.NewlineBefore)
        {
            rule.IsAssign = Cur.Kind == Tok.Assign;
            _p++;
            rule.Value = TermIn();
        }
        if (rule.IsDefault) CheckDefaultValue(rule);
        bool hasBody = false;
        if (IsIdent("if") && !Cur.NewlineBefore)
        {
            _p++;
            if (Cur.Kind == Tok.LBrace && LooksLikeBodyBlock()) rule.Body = BraceBody();
            else rule.Body = new Body([ExprWithMods()]);
            hasBody = true;
        }
        else if (Cur.Kind == Tok.LBrace && !Cur.NewlineBefore)
        {
            // Rego v1: a body needs `if`; a v0 `p[x] { ... }` would otherwise build an object
            throw new RegoParseException($"`if` keyword is required before {RuleWord(rule)} body", rule.Loc.Line, rule.Loc.Col);
        }
        if (!hasBody && rule.Value is null && !rule.IsContains)
        {
            // Rego v1: a bare head (`p`, `q.r`, `deny[msg]`) is neither a value nor a body
            throw new RegoParseException($"{RuleWord(rule)} must have value assignment and/or body declaration", rule.Loc.Line, rule.Loc.Col);
        }
        if (!hasBody)
        {
            rule.Body = new Body([new Expr { Kind = ExprKind.Term, Term = new ScalarTerm(RegoValue.True) { Loc = rule.Loc }, Loc = rule.Loc }]);
        }
        // else chain
        var cur = rule;
        while (IsIdent("else"))
        {
            var elseTok = Cur;
            _p++;
            var e = new Rule { Loc = L(elseTok), File = _file, Module = m, HeadRef = rule.HeadRef, Args = rule.Args };
            if (Cur.Kind == Tok.Assign || Cur.Kind == Tok.Unify)
            {
                e.IsAssign = Cur.Kind == Tok.Assign;
                _p++;
                e.Value = TermIn();
            }
            if (IsIdent("if"))
            {
                _p++;
                if (Cur.Kind == Tok.LBrace && LooksLikeBodyBlock()) e.Body = BraceBody();
                else e.Body = new Body([ExprWithMods()]);
            }
            else if (Cur.Kind == Tok.LBrace) throw new RegoParseException($"`if` keyword is required before {RuleWord(rule)} body", e.Loc.Line, e.Loc.Col);
            else e.Body = new Body([new Expr { Kind = ExprKind.Term, Term = new ScalarTerm(RegoValue.True) { Loc = e.Loc }, Loc = e.Loc }]);
            cur.Else = e;
            cur = e;
        }
        var result = new List<Rule> { rule };
        // v0-style chained bodies `p { a } { b }` are not Rego v1; treat as error
        if (Cur.Kind == Tok.LBrace && !Cur.NewlineBefore) throw Err("unexpected { token");
        return result;
    }

    /// <summary>OPA: a default value is a constant; comprehensions may hold anything.</summary>
    private static void CheckDefaultValue(Rule rule)
    {
        if (rule.Value is null)
            throw new RegoParseException("illegal default rule (must have a value)", rule.Loc.Line, rule.Loc.Col);
        var bad = Illegal(rule.Value);
        if (bad is not null)
            throw new RegoParseException($"illegal default rule (value cannot contain {bad})", rule.Loc.Line, rule.Loc.Col);
        if (rule.Args is not null)
            foreach (var a in rule.Args)
                if (a is not VarTerm)
                    throw new RegoParseException($"illegal default rule (arguments cannot contain {Illegal(a) ?? "a non-var"})", rule.Loc.Line, rule.Loc.Col);

        static string? Illegal(Term t) => t switch
        {
            RefTerm => "ref",
            VarTerm => "var",
            CallTerm => "call",
            TemplateTerm => "call",
            ArrayTerm a => a.Items.Select(Illegal).FirstOrDefault(x => x is not null),
            SetTerm s => s.Items.Select(Illegal).FirstOrDefault(x => x is not null),
            ObjectTerm o => o.Items.Select(i => Illegal(i.Key) ?? Illegal(i.Value)).FirstOrDefault(x => x is not null),
            _ => null,
        };
    }

    private static string RuleWord(Rule rule) => rule.Args is null ? "rule" : "function";

    /// <summary>After `if`, a `{` opens a body unless it is an object/set literal expression like `{1} == x`.</summary>
    private bool LooksLikeBodyBlock()
    {
        // Look at the first statement's top-level tokens only (nested brackets are skipped by
        // their precomputed partner), then at the token after the matching brace.
        int close = _match[_p];
        if (close < 0) return true;
        for (int i = _p + 1; i < close; i++)
        {
            var k = _t[i].Kind;
            if (i > _p + 1 && (_t[i].NewlineBefore || k is Tok.Semi or Tok.Assign or Tok.Unify)) break;
            if (k == Tok.Colon || k == Tok.Pipe) return false; // object or comprehension
            if (k is Tok.LBrace or Tok.LBrack or Tok.LParen)
            {
                if (_match[i] < 0) return true;
                i = _match[i];
            }
        }
        var next = _t[close + 1 < _t.Count ? close + 1 : close];
        if (close + 1 >= _t.Count || next.NewlineBefore || next.Kind == Tok.EOF) return true;
        return next.Kind switch
        {
            Tok.Eq or Tok.Neq or Tok.Lt or Tok.Lte or Tok.Gt or Tok.Gte or Tok.Unify or Tok.Plus or Tok.Minus or Tok.Star or Tok.Slash or Tok.Amp or Tok.Pipe or Tok.LBrack or Tok.Dot => false,
            Tok.Ident => next.Text is not ("in" or "with"),
            _ => true,
        };
    }

    private Body BraceBody()
    {
        Expect(Tok.LBrace);
        var b = BodyUntil(Tok.RBrace);
        Expect(Tok.RBrace);
        return b;
    }

    private Body BodyUntil(Tok end)
    {
        Enter();
        var exprs = new List<Expr>();
        while (Cur.Kind != end)
        {
            if (Cur.Kind == Tok.EOF) throw Err("unexpected eof token");
            if (exprs.Count > 0 && !Cur.NewlineBefore && _t[_p - 1].Kind != Tok.Semi) throw Err($"unexpected {Describe(Cur)} token");
            _chain = 0;
            var e = ExprWithMods();
            e.Index = exprs.Count;
            exprs.Add(e);
            if (Cur.Kind == Tok.Semi) _p++;
        }
        _depth--;
        if (exprs.Count == 0) throw Err("found empty body");
        return new Body(exprs);
    }

    // ---------------- expressions ----------------

    private Expr ExprWithMods()
    {
        var e = Expr0();
        if (IsIdent("with"))
        {
            var mods = new List<WithModifier>();
            while (IsIdent("with"))
            {
                var wt = Cur;
                _p++;
                var target = TermIn();
                if (!IsIdent("as")) throw Err("expected as");
                _p++;
                var value = TermIn();
                mods.Add(new WithModifier(target, value) { Loc = L(wt) });
            }
            e.With = mods.ToArray();
        }
        return e;
    }

    private Expr Expr0()
    {
        var tok = Cur;
        var loc = L(tok);
        if (IsIdent("not") )
        {
            _p++;
            if (Cur.Kind == Tok.LBrace && LooksLikeBodyBlock())
            {
                var nb = BraceBody();
                return new Expr { Kind = ExprKind.Not, Body = nb, Loc = loc };
            }
            Enter();
            var inner = Expr0();
            _depth--;
            return new Expr { Kind = ExprKind.Not, Inner = inner, Loc = loc };
        }
        if (IsIdent("some"))
        {
            _p++;
            var first = TermRelation();
            Term? second = null;
            var others = new List<Term> { first };
            while (Cur.Kind == Tok.Comma)
            {
                _p++;
                var t = TermRelation();
                others.Add(t);
            }
            if (IsIdent("in"))
            {
                _p++;
                if (others.Count > 2) throw Err("unexpected , token");
                if (others.Count == 2) second = others[1];
                var domain = TermRelation();
                return second is null
                    ? new Expr { Kind = ExprKind.SomeIn, Left = null, Right = first, Domain = domain, Loc = loc }
                    : new Expr { Kind = ExprKind.SomeIn, Left = first, Right = second, Domain = domain, Loc = loc };
            }
            var names = new List<string>();
            foreach (var o in others)
            {
                if (o is not VarTerm v) throw new RegoParseException("expected var in some declaration", tok.Line, tok.Col);
                names.Add(v.Name);
            }
            return new Expr { Kind = ExprKind.SomeDecl, DeclVars = names.ToArray(), Loc = loc };
        }
        if (IsIdent("every"))
        {
            _p++;
            var first = TermRelation();
            Term? key = null, val = first;
            if (Cur.Kind == Tok.Comma)
            {
                _p++;
                key = first;
                val = TermRelation();
            }
            if (!IsIdent("in")) throw Err("expected in");
            _p++;
            var domain = TermRelation();
            var body = BraceBody();
            return new Expr { Kind = ExprKind.Every, Left = key, Right = val, Domain = domain, Body = body, Loc = loc };
        }
        var left = TermIn();
        if (Cur.Kind == Tok.Comma && !Cur.NewlineBefore)
        {
            // `k, v in xs`
            int save = _p;
            _p++;
            var v = TermRelation();
            if (IsIdent("in"))
            {
                _p++;
                var coll = TermRelation();
                Term t = new CallTerm(new VarTerm("internal.member_3"), [left, v, coll]) { Loc = loc };
                while (IsIdent("in"))
                {
                    _p++;
                    var c2 = TermRelation();
                    t = new CallTerm(new VarTerm("internal.member_2"), [t, c2]) { Loc = loc };
                }
                return new Expr { Kind = ExprKind.Term, Term = t, Loc = loc };
            }
            _p = save;
        }
        if ((Cur.Kind == Tok.Unify || Cur.Kind == Tok.Assign) && !Cur.NewlineBefore)
        {
            var kind = Cur.Kind == Tok.Unify ? ExprKind.Unify : ExprKind.Assign;
            _p++;
            var right = TermIn();
            return new Expr { Kind = kind, Left = left, Right = right, Loc = loc };
        }
        return new Expr { Kind = ExprKind.Term, Term = left, Loc = loc };
    }

    private int _chain;

    private Term Call(string name, Term a, Term b, Loc loc)
    {
        if (++_chain > _maxDepth * 8) throw Limit("expression too deeply nested", loc.Line, loc.Col);
        return new CallTerm(new VarTerm(name), [a, b]) { Loc = loc };
    }

    internal Term TermIn() => ContinueIn(TermRelation());

    /// <summary>Continues <c>left (in relation)*</c> from an operand already parsed at the relation level.</summary>
    private Term ContinueIn(Term left)
    {
        while (IsIdent("in") && !Cur.NewlineBefore)
        {
            var loc = L(Cur);
            _p++;
            var right = TermRelation();
            left = Call("internal.member_2", left, right, loc);
        }
        return left;
    }

    /// <summary>A single term (a comprehension head): a primary with its refs and calls, or a negated one; no infix operator.</summary>
    private Term SingleTerm() => Cur.Kind == Tok.Minus ? TermUnary() : Postfix(Primary());

    /// <summary>Finishes a term whose first operand was parsed as a single term (as a comprehension head is): the same term <see cref="TermIn"/> would have read.</summary>
    private Term ContinueFromUnary(Term operand) =>
        ContinueIn(Continue(Continue(Continue(Continue(Continue(operand, TermUnary, FactorOp), TermFactor, ArithOp), TermArith, AndOp), TermAnd, OrOp), TermOr, RelationOp));

    // Left-associative binary levels, loosest first.
    private static string? RelationOp(Tok k) => k switch
    {
        Tok.Eq => "equal", Tok.Neq => "neq", Tok.Lt => "lt", Tok.Lte => "lte", Tok.Gt => "gt", Tok.Gte => "gte", _ => null,
    };

    private static string? OrOp(Tok k) => k == Tok.Pipe ? "or" : null;

    private static string? AndOp(Tok k) => k == Tok.Amp ? "and" : null;

    private static string? ArithOp(Tok k) => k switch { Tok.Plus => "plus", Tok.Minus => "minus", _ => null };

    private static string? FactorOp(Tok k) => k switch { Tok.Star => "mul", Tok.Slash => "div", Tok.Percent => "rem", _ => null };

    private Term TermRelation() => Continue(TermOr(), TermOr, RelationOp);

    private Term TermOr() => Continue(TermAnd(), TermAnd, OrOp);

    private Term TermAnd() => Continue(TermArith(), TermArith, AndOp);

    private Term TermArith() => Continue(TermFactor(), TermFactor, ArithOp);

    private Term TermFactor() => Continue(TermUnary(), TermUnary, FactorOp);

    /// <summary>One precedence level after its first operand: <c>left (op next)*</c>, where <paramref name="op"/> names the builtin of a token, or null.</summary>
    private Term Continue(Term left, Func<Term> next, Func<Tok, string?> op)
    {
        // an infix operator may also lead the next line: OPA reads `a\n  + b` as one expression
        while (op(Cur.Kind) is { } name)
        {
            var loc = L(Cur);
            _p++;
            left = Call(name, left, next(), loc);
        }
        return left;
    }

    private Term TermUnary()
    {
        if (Cur.Kind == Tok.Minus)
        {
            var loc = L(Cur);
            _p++;
            if (Cur.Kind == Tok.Number && Cur.Pos == _t[_p - 1].End)
            {
                var n = _t[_p++];
                if (!RegoNumber.TryParse("-" + n.Text, out var num)) throw new RegoParseException("invalid number", n.Line, n.Col);
                return Postfix(new ScalarTerm(num) { Loc = loc });
            }
            var operand = TermUnary();
            return Call("minus", new ScalarTerm(RegoNumber.Zero) { Loc = loc }, operand, loc);
        }
        return Postfix(Primary());
    }

    private Term Primary()
    {
        Work();
        var tok = Cur;
        var loc = L(tok);
        switch (tok.Kind)
        {
            case Tok.Number:
                _p++;
                if (!RegoNumber.TryParse(tok.Text, out var num)) throw new RegoParseException("invalid number " + tok.Text, tok.Line, tok.Col);
                return new ScalarTerm(num) { Loc = loc };
            case Tok.String:
            case Tok.RawString:
                _p++;
                return new ScalarTerm(new RegoString(tok.Text)) { Loc = loc };
            case Tok.Template:
                _p++;
                return ParseTemplate(tok);
            case Tok.Ident:
                _p++;
                if (DotFollows(_p - 1) || (Cur.Kind == Tok.LParen && Cur.Pos == tok.End && tok.Text is not ("true" or "false" or "null") && !(tok.Text == "set" && Peek().Kind == Tok.RParen))) return new VarTerm(tok.Text) { Loc = loc };
                switch (tok.Text)
                {
                    case "true": return new ScalarTerm(RegoValue.True) { Loc = loc };
                    case "false": return new ScalarTerm(RegoValue.False) { Loc = loc };
                    case "null": return new ScalarTerm(RegoValue.Null) { Loc = loc };
                    case "_": return new VarTerm("$_" + (_wild.N++)) { Loc = loc };
                    case "set" when Cur.Kind == Tok.LParen && Peek().Kind == Tok.RParen && !Cur.NewlineBefore:
                        _p += 2;
                        return new SetTerm([]) { Loc = loc };
                }
                if (Keywords.Contains(tok.Text) && tok.Text != "as") throw new RegoParseException($"unexpected {tok.Text} keyword", tok.Line, tok.Col);
                return new VarTerm(tok.Text) { Loc = loc };
            case Tok.LParen:
                {
                    _p++;
                    Enter();
                    var t = TermIn();
                    if (Cur.Kind == Tok.Comma)
                    {
                        _p++;
                        var v = TermRelation();
                        if (!IsIdent("in")) throw Err("expected in");
                        _p++;
                        var coll = TermRelation();
                        t = new CallTerm(new VarTerm("internal.member_3"), [t, v, coll]) { Loc = loc };
                    }
                    _depth--;
                    Expect(Tok.RParen);
                    return t;
                }
            case Tok.LBrack:
                return ArrayOrCompr();
            case Tok.LBrace:
                return ObjectSetOrCompr();
            default:
                throw Err($"unexpected {Describe(tok)} token");
        }
    }

    private Term Postfix(Term t)
    {
        while (!Cur.NewlineBefore)
        {
            if (Cur.Kind == Tok.Dot)
            {
                _p++;
                var id = Expect(Tok.Ident);
                var key = new ScalarTerm(new RegoString(id.Text)) { Loc = L(id) };
                t = AppendRef(t, key);
            }
            else if (Cur.Kind == Tok.LBrack && Cur.Pos == _t[_p - 1].End)
            {
                _p++;
                Enter();
                var key = TermIn();
                _depth--;
                Expect(Tok.RBrack);
                t = AppendRef(t, key);
            }
            else if (Cur.Kind == Tok.LParen && Cur.Pos == _t[_p - 1].End && (t is VarTerm || (t is RefTerm r && r.Head is VarTerm)))
            {
                var loc = t.Loc;
                _p++;
                Enter();
                var args = new List<Term>();
                while (Cur.Kind != Tok.RParen)
                {
                    args.Add(TermIn());
                    if (Cur.Kind == Tok.Comma) _p++;
                    else break;
                }
                _depth--;
                Expect(Tok.RParen);
                t = new CallTerm(t, args.ToArray()) { Loc = loc };
            }
            else break;
        }
        return t;
    }

    private static Term AppendRef(Term t, Term key)
    {
        if (t is RefTerm r)
        {
            var path = new Term[r.Path.Length + 1];
            r.Path.CopyTo(path, 0);
            path[^1] = key;
            return new RefTerm(r.Head, path) { Loc = r.Loc };
        }
        return new RefTerm(t, [key]) { Loc = t.Loc };
    }

    /// <summary>
    /// A bracketed term, parsed once: a later reading of the same tokens (after a comprehension
    /// body turned out not to be one) reuses the result, so nested brackets cost linear time.
    /// </summary>
    private Term Bracketed(Func<Term> parse)
    {
        int start = _p;
        if (_memo.TryGetValue(start, out var m) && _depth <= m.Depth)
        {
            if (m.Error is { } error) throw error;
            _p = m.End;
            return m.Term!;
        }
        try
        {
            var t = parse();
            _memo[start] = new Memo(t, _p, _depth, null);
            return t;
        }
        catch (RegoParseException ex) when (!ex.IsLimit)
        {
            _memo[start] = new Memo(null, 0, _depth, ex);
            throw;
        }
    }

    /// <summary>
    /// At a <c>|</c> after a comprehension head: reads the body up to <paramref name="end"/>. When
    /// the tokens are no body (e.g. <c>[a | b, c]</c>, an array holding <c>a | b</c>), rewinds to
    /// the <c>|</c> and returns false; limits are never retried.
    /// </summary>
    private bool TryComprehensionBody(Tok end, out Body? body)
    {
        int save = _p, depth = _depth, chain = _chain;
        _p++;
        try
        {
            body = BodyUntil(end);
            Expect(end);
            _chain = chain;
            return true;
        }
        catch (RegoParseException ex) when (!ex.IsLimit)
        {
            (_p, _depth, _chain) = (save, depth, chain);
            body = null;
            return false;
        }
    }

    private Term ArrayOrCompr() => Bracketed(ArrayOrComprOnce);

    private Term ArrayOrComprOnce()
    {
        var loc = L(Cur);
        _p++;
        Enter();
        try
        {
            if (Cur.Kind == Tok.RBrack) { _p++; return new ArrayTerm([]) { Loc = loc }; }
            // A comprehension head is a single term (as OPA parses it): `[a & b | c]` is an array
            // holding `a & b | c`. When no body follows, the same operand continues as the first element.
            var head = SingleTerm();
            if (Cur.Kind == Tok.Pipe && TryComprehensionBody(Tok.RBrack, out var body))
                return new ComprehensionTerm(ComprehensionKind.Array, head, null, body!) { Loc = loc };
            var items = new List<Term> { ContinueFromUnary(head) };
            while (Cur.Kind == Tok.Comma)
            {
                _p++;
                if (Cur.Kind == Tok.RBrack) break;
                items.Add(TermIn());
            }
            Expect(Tok.RBrack);
            return new ArrayTerm(items.ToArray()) { Loc = loc };
        }
        finally { _depth--; }
    }

    private Term ObjectSetOrCompr() => Bracketed(ObjectSetOrComprOnce);

    private Term ObjectSetOrComprOnce()
    {
        var loc = L(Cur);
        _p++;
        Enter();
        try
        {
            if (Cur.Kind == Tok.RBrace) { _p++; return new ObjectTerm([]) { Loc = loc }; }
            var head = SingleTerm();
            if (Cur.Kind == Tok.Pipe && TryComprehensionBody(Tok.RBrace, out var setBody))
                return new ComprehensionTerm(ComprehensionKind.Set, head, null, setBody!) { Loc = loc };
            Term first;
            Term firstValue;
            if (Cur.Kind == Tok.Colon)
            {
                // `{k: v | body}` or an object whose first key is `k`
                _p++;
                var val = SingleTerm();
                if (Cur.Kind == Tok.Pipe && TryComprehensionBody(Tok.RBrace, out var objBody))
                    return new ComprehensionTerm(ComprehensionKind.Object, head, val, objBody!) { Loc = loc };
                first = head;
                firstValue = ContinueFromUnary(val);
            }
            else
            {
                first = ContinueFromUnary(head);
                if (Cur.Kind != Tok.Colon) return SetRest(first, loc);
                // `{a + 1: v | body}` is still an object comprehension; its value is again a single term
                _p++;
                var val = SingleTerm();
                if (Cur.Kind == Tok.Pipe && TryComprehensionBody(Tok.RBrace, out var objBody))
                    return new ComprehensionTerm(ComprehensionKind.Object, first, val, objBody!) { Loc = loc };
                firstValue = ContinueFromUnary(val);
            }
            var items = new List<(Term, Term)> { (first, firstValue) };
            while (Cur.Kind == Tok.Comma)
            {
                _p++;
                if (Cur.Kind == Tok.RBrace) break;
                var k = TermIn();
                Expect(Tok.Colon);
                items.Add((k, TermIn()));
            }
            Expect(Tok.RBrace);
            return new ObjectTerm(items.ToArray()) { Loc = loc };
        }
        finally { _depth--; }
    }

    private SetTerm SetRest(Term first, Loc loc)
    {
        var set = new List<Term> { first };
        while (Cur.Kind == Tok.Comma)
        {
            _p++;
            if (Cur.Kind == Tok.RBrace) break;
            set.Add(TermIn());
        }
        Expect(Tok.RBrace);
        return new SetTerm(set.ToArray()) { Loc = loc };
    }

    private Term ParseTemplate(Token tok)
    {
        var parts = new List<object>();
        var s = tok.Text;
        var sb = new StringBuilder();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (tok.TemplateRaw && c == '\\' && i + 1 < s.Length && s[i + 1] == '{')
            {
                sb.Append('{');
                i += 2;
                continue;
            }
            if (!tok.TemplateRaw && c == '\\')
            {
                // decode one escape using the string reader
                int j = i;
                var tmp = s.Substring(j, Math.Min(6, s.Length - j)) + "\"";
                int k = 0;
                string decoded = Lexer.ReadQuoted(tmp, ref k, tok.Line, tok.Col, template: true);
                // ReadQuoted consumed escape plus maybe more chars; take only the escape
                int escLen = s[j + 1] == 'u' ? 6 : 2;
                var one = s.Substring(j, escLen) + "\"";
                k = 0;
                decoded = Lexer.ReadQuoted(one, ref k, tok.Line, tok.Col, template: true);
                sb.Append(decoded);
                i += escLen;
                continue;
            }
            if (c == '{')
            {
                int depth = 1;
                int j = i + 1;
                while (j < s.Length && depth > 0)
                {
                    char d = s[j];
                    if (d == '"') { j++; while (j < s.Length && s[j] != '"') { if (s[j] == '\\') j++; j++; } }
                    else if (d == '`') { j++; while (j < s.Length && s[j] != '`') j++; }
                    else if (d == '{') depth++;
                    else if (d == '}') { depth--; if (depth == 0) break; }
                    j++;
                }
                if (depth != 0) throw new RegoParseException("unterminated template expression", tok.Line, tok.Col);
                var inner = s.Substring(i + 1, j - i - 1);
                if (sb.Length > 0) { parts.Add(sb.ToString()); sb.Clear(); }
                var sub = new Parser(inner, Lexer.Lex(inner, tok.Line - 1, 0), _file, _maxDepth, _wild, _ct) { _depth = _depth + 1 };
                if (sub._depth > _maxDepth) throw Limit($"nesting too deep (more than {_maxDepth} levels)", tok.Line, tok.Col);
                var e = sub.ExprWithMods();
                if (sub.Cur.Kind != Tok.EOF) throw new RegoParseException("unexpected token in template expression", tok.Line, tok.Col);
                parts.Add(e);
                i = j + 1;
                continue;
            }
            sb.Append(c);
            i++;
        }
        if (sb.Length > 0) parts.Add(sb.ToString());
        return new TemplateTerm(parts.ToArray()) { Loc = L(tok) };
    }
}
