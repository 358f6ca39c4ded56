using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using EnvoyAuthz.Rego.Builtins;
using EnvoyAuthz.Rego.Compiler;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Evaluation;

/// <summary>An evaluation error that aborts the whole evaluation.</summary>
internal sealed class EvalException(string code, string message, Loc? location = null) : Exception(message)
{
    public string Code { get; } = code;
    public Loc? Location { get; } = location;
}

/// <summary>Thrown when the machine stack is nearly exhausted; the engine retries on a large-stack thread.</summary>
internal sealed class StackLimitException : Exception
{
    public StackLimitException() : base("stack limit") { }
}

internal delegate bool Cont();
internal delegate bool VCont(RegoValue v);

/// <summary>Variable bindings of one rule body / query.</summary>
internal sealed class Frame
{
    // bindings are pushed and popped in LIFO order; a small array beats a dictionary for typical bodies
    private string[] _names = new string[4];
    private RegoValue[] _values = new RegoValue[4];
    private int _count;

    public bool TryGet(string n, out RegoValue v)
    {
        for (int i = _count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(_names[i], n) || string.Equals(_names[i], n, StringComparison.Ordinal))
            {
                v = _values[i];
                return true;
            }
        }
        v = null!;
        return false;
    }

    public void Bind(string n, RegoValue v)
    {
        if (_count == _names.Length)
        {
            Array.Resize(ref _names, _count * 2);
            Array.Resize(ref _values, _count * 2);
        }
        _names[_count] = n;
        _values[_count] = v;
        _count++;
    }

    public void Unbind(string n)
    {
        for (int i = _count - 1; i >= 0; i--)
        {
            if (string.Equals(_names[i], n, StringComparison.Ordinal))
            {
                Array.Copy(_names, i + 1, _names, i, _count - i - 1);
                Array.Copy(_values, i + 1, _values, i, _count - i - 1);
                _count--;
                _names[_count] = null!;
                _values[_count] = null!;
                return;
            }
        }
    }
}

internal sealed class FuncOverride
{
    public string? Target;
    public RegoValue? Value;
}

internal sealed class PathSeg(RegoValue key, PathSeg? parent)
{
    public readonly RegoValue Key = key;
    public readonly PathSeg? Parent = parent;
    public readonly int Length = (parent?.Length ?? 0) + 1;

    public RegoValue[] ToArray()
    {
        var arr = new RegoValue[Length];
        var s = this;
        for (int i = Length - 1; i >= 0; i--) { arr[i] = s!.Key; s = s.Parent; }
        return arr;
    }
}

/// <summary>
/// Evaluates a compiled policy by backtracking over bindings (continuation-passing).
/// One instance per evaluation; never shared between threads.
/// </summary>
internal sealed class Evaluator : IDisposable
{
    private static readonly ScalarTerm TrueTerm = new(RegoValue.True);
    private readonly CompiledPolicy _p;
    private readonly RegoEvalOptions _o;
    private readonly BuiltinContext _bctx;
    private readonly long _deadline;
    private readonly long _maxSteps;
    private readonly long _maxAlloc;
    private RegoValue? _input;
    private List<(RegoValue[] Path, RegoValue Value)>? _dataOverrides;
    private Dictionary<string, FuncOverride>? _funcOverrides;
    private Dictionary<RuleNode, RegoValue?>? _cache;
    private HashSet<RuleNode>? _inProgress;
    private long _steps;
    private long _alloc;
    private int _depth;

    public Evaluator(CompiledPolicy p, RegoValue? input, RegoEvalOptions o)
    {
        _p = p;
        _o = o;
        _input = input;
        var tp = o.TimeProvider ?? TimeProvider.System;
        // builtins that loop (graph walks, ranges, templates) observe both the caller's token and the timeout
        var token = o.CancellationToken;
        if (o.Timeout is { } limit)
        {
            _timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(o.CancellationToken);
            _timeoutCts.CancelAfter(limit);
            token = _timeoutCts.Token;
        }
        _bctx = new BuiltinContext(o.StrictBuiltinErrors, token, () => (tp.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100, o.PrintSink, o.Host);
        _deadline = o.Timeout is { } t ? Stopwatch.GetTimestamp() + (long)(t.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        _maxSteps = o.MaxSteps ?? long.MaxValue;
        _maxAlloc = o.MaxOutputBytes ?? long.MaxValue;
    }

    private readonly CancellationTokenSource? _timeoutCts;

    public BuiltinContext BuiltinContext => _bctx;

    public void Dispose() => _timeoutCts?.Dispose();

    // ------------------------------------------------------------------ limits

    private void Step()
    {
        if (++_steps > _maxSteps) throw new EvalException("eval_limit_error", "evaluation exceeded the step limit");
        if ((_steps & 15) == 0)
        {
            if ((_steps & 255) == 0) CheckLimits();
            if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw new StackLimitException();
        }
    }

    public void CheckLimits()
    {
        if (_o.CancellationToken.IsCancellationRequested) throw new EvalException("eval_cancel_error", "caller cancelled query execution");
        if (_deadline != long.MaxValue && Stopwatch.GetTimestamp() > _deadline) throw new EvalException("eval_cancel_error", "evaluation timed out");
    }

    private void Alloc(long bytes)
    {
        _alloc += bytes;
        if (_alloc > _maxAlloc) throw new EvalException("eval_limit_error", "evaluation exceeded the output size limit");
    }

    private void Enter()
    {
        if (++_depth > _o.MaxDepth) throw new EvalException("eval_limit_error", "evaluation exceeded the maximum depth");
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw new StackLimitException();
    }

    private void Leave() => _depth--;

    // ------------------------------------------------------------------ bodies and expressions

    public bool EvalBody(Frame f, List<Expr> exprs, int i, Cont k)
    {
        if (i == exprs.Count) return k();
        if (i == exprs.Count - 1) return EvalExpr(f, exprs[i], k);
        return EvalExpr(f, exprs[i], () => EvalBody(f, exprs, i + 1, k));
    }

    private bool EvalExpr(Frame f, Expr e, Cont k)
    {
        Step();
        if (e.With.Length > 0) return EvalWith(f, e.With, kk => EvalExprNoWith(f, e, kk), k);
        return EvalExprNoWith(f, e, k);
    }

    private bool EvalExprNoWith(Frame f, Expr e, Cont k)
    {
        switch (e.Kind)
        {
            case ExprKind.Term:
                return EvalTerm(f, e.Term!, v => v is RegoBoolean { Value: false } || k());
            case ExprKind.Unify:
            case ExprKind.Assign:
                return Unify(f, e.Left!, e.Right!, k);
            case ExprKind.Not:
                {
                    bool found = false;
                    if (e.Body is not null) EvalBody(f, e.Body.Exprs, 0, () => { found = true; return false; });
                    else EvalExpr(f, e.Inner!, () => { found = true; return false; });
                    return found || k();
                }
            case ExprKind.SomeDecl:
                return k();
            case ExprKind.SomeIn:
                return EvalTerm(f, e.Domain!, coll => IterateIn(f, e.Left, e.Right!, coll, k));
            case ExprKind.Every:
                return EvalTerm(f, e.Domain!, coll =>
                {
                    if (coll is not (RegoArray or RegoObject or RegoSet)) return true;
                    bool all = true;
                    IterateInAll(coll, (key, val) =>
                    {
                        bool ok = false;
                        Cont body = () => EvalBody(f, e.Body!.Exprs, 0, () => { ok = true; return false; });
                        if (e.Left is not null) UnifyValue(f, e.Left, key, () => UnifyValue(f, e.Right!, val, body));
                        else UnifyValue(f, e.Right!, val, body);
                        if (!ok) { all = false; return false; }
                        return true;
                    });
                    return !all || k();
                });
        }
        throw new EvalException("eval_internal_error", "unknown expression");
    }

    private static void IterateInAll(RegoValue coll, Func<RegoValue, RegoValue, bool> each)
    {
        switch (coll)
        {
            case RegoArray a:
                for (int i = 0; i < a.Items.Length; i++) if (!each(RegoNumber.FromInt64(i), a.Items[i])) return;
                return;
            case RegoObject o:
                for (int i = 0; i < o.Keys.Length; i++) if (!each(o.Keys[i], o.Values[i])) return;
                return;
            case RegoSet s:
                foreach (var x in s.Items) if (!each(x, x)) return;
                return;
        }
    }

    private bool IterateIn(Frame f, Term? keyTerm, Term valTerm, RegoValue coll, Cont k)
    {
        switch (coll)
        {
            case RegoArray a:
                for (int i = 0; i < a.Items.Length; i++)
                {
                    var item = a.Items[i];
                    bool r = keyTerm is null ? UnifyValue(f, valTerm, item, k)
                        : UnifyValue(f, keyTerm, RegoNumber.FromInt64(i), () => UnifyValue(f, valTerm, item, k));
                    if (!r) return false;
                }
                return true;
            case RegoObject o:
                for (int i = 0; i < o.Keys.Length; i++)
                {
                    var v = o.Values[i];
                    bool r = keyTerm is null ? UnifyValue(f, valTerm, v, k)
                        : UnifyValue(f, keyTerm, o.Keys[i], () => UnifyValue(f, valTerm, v, k));
                    if (!r) return false;
                }
                return true;
            case RegoSet s:
                foreach (var x in s.Items)
                {
                    bool r = keyTerm is null ? UnifyValue(f, valTerm, x, k)
                        : UnifyValue(f, keyTerm, x, () => UnifyValue(f, valTerm, x, k));
                    if (!r) return false;
                }
                return true;
        }
        return true;
    }

    // ------------------------------------------------------------------ with

    private bool EvalWith(Frame f, WithModifier[] mods, Func<Cont, bool> run, Cont k)
    {
        var values = new object[mods.Length];
        return WithValues(f, mods, 0, values, run, k);
    }

    private bool WithValues(Frame f, WithModifier[] mods, int i, object[] values, Func<Cont, bool> run, Cont k)
    {
        if (i == mods.Length) return ApplyWith(f, mods, values, run, k);
        var m = mods[i];
        var targetName = Resolver.DottedName(m.Target);
        if (targetName is not null && IsFunctionName(targetName))
        {
            var fn = FunctionRefName(m.Value);
            if (fn is not null)
            {
                values[i] = new FuncOverride { Target = fn };
                return WithValues(f, mods, i + 1, values, run, k);
            }
        }
        return EvalTerm(f, m.Value, v => { values[i] = v; return WithValues(f, mods, i + 1, values, run, k); });
    }

    private bool IsFunctionName(string name) =>
        _p.Functions.ContainsKey(name) || (!name.StartsWith("data.", StringComparison.Ordinal) && !name.StartsWith("input", StringComparison.Ordinal) && BuiltinRegistry.TryGet(name, out _));

    private string? FunctionRefName(Term t)
    {
        if (t is CallTerm { Args.Length: 0, Resolved: { } r } c && !c.IsUserFunction) return r;
        var n = Resolver.DottedName(t);
        if (n is not null && _p.Functions.ContainsKey(n)) return n;
        return null;
    }

    private bool ApplyWith(Frame f, WithModifier[] mods, object[] values, Func<Cont, bool> run, Cont k)
    {
        var oldInput = _input;
        var oldData = _dataOverrides;
        var oldFunc = _funcOverrides;
        var oldCache = _cache;
        var oldInProgress = _inProgress;
        RegoValue? newInput = _input;
        List<(RegoValue[] Path, RegoValue Value)>? newData = _dataOverrides;
        Dictionary<string, FuncOverride>? newFunc = _funcOverrides;
        for (int i = 0; i < mods.Length; i++)
        {
            var target = mods[i].Target;
            var name = Resolver.DottedName(target);
            if (name is not null && IsFunctionName(name))
            {
                newFunc = newFunc is null ? new() : new(newFunc);
                newFunc[name] = values[i] as FuncOverride ?? new FuncOverride { Value = (RegoValue)values[i] };
                continue;
            }
            var value = values[i] as RegoValue ?? throw new EvalException("eval_type_error", "with: invalid replacement value");
            if (target is VarTerm { Name: "input" }) { newInput = value; continue; }
            if (target is VarTerm { Name: "data" })
            {
                newData = [([], value)];
                continue;
            }
            if (target is RefTerm { Head: VarTerm hv } rt && (hv.Name == "input" || hv.Name == "data"))
            {
                var path = new RegoValue[rt.Path.Length];
                for (int j = 0; j < path.Length; j++)
                {
                    if (rt.Path[j] is ScalarTerm s) path[j] = s.Value;
                    else if (rt.Path[j] is VarTerm pv && f.TryGet(pv.Name, out var pvv)) path[j] = pvv;
                    else throw new EvalException("eval_type_error", "with: target path must be ground");
                }
                if (hv.Name == "input") newInput = Upsert(newInput, path, 0, value);
                else
                {
                    newData = newData is null ? new() : new(newData);
                    newData.RemoveAll(d => StartsWith(d.Path, path));
                    newData.Add((path, value));
                }
                continue;
            }
            throw new EvalException("eval_type_error", "with: invalid target");
        }
        var newCache = new Dictionary<RuleNode, RegoValue?>();
        HashSet<RuleNode>? newInProgress = null;
        void SetNew() { _input = newInput; _dataOverrides = newData; _funcOverrides = newFunc; _cache = newCache; _inProgress = newInProgress; }
        void SetOld() { _input = oldInput; _dataOverrides = oldData; _funcOverrides = oldFunc; _cache = oldCache; _inProgress = oldInProgress; }
        SetNew();
        try
        {
            return run(() =>
            {
                SetOld();
                try { return k(); }
                finally { SetNew(); }
            });
        }
        finally { SetOld(); }
    }

    private static bool StartsWith(RegoValue[] path, RegoValue[] prefix)
    {
        if (path.Length < prefix.Length) return false;
        for (int i = 0; i < prefix.Length; i++) if (!path[i].Equals(prefix[i])) return false;
        return true;
    }

    internal static RegoValue Upsert(RegoValue? root, RegoValue[] path, int i, RegoValue value)
    {
        if (i == path.Length) return value;
        var obj = root as RegoObject ?? RegoObject.Empty;
        obj.TryGetValue(path[i], out var child);
        var nv = Upsert(child, path, i + 1, value);
        var b = new RegoObject.Builder(obj.Count + 1);
        foreach (var kv in obj.Pairs) if (!kv.Key.Equals(path[i])) b.Add(kv.Key, kv.Value);
        b.Add(path[i], nv);
        return b.Build();
    }

    // ------------------------------------------------------------------ terms

    public bool EvalTerm(Frame f, Term t, VCont k)
    {
        switch (t)
        {
            case ScalarTerm s: return k(s.Value);
            case VarTerm v:
                if (f.TryGet(v.Name, out var val)) return k(val);
                if (v.Name == "input") return _input is null || k(_input);
                if (v.Name == "data") return EvalData(f, [], k);
                throw new EvalException("rego_unsafe_var_error", $"var {v.Name} is unsafe");
            case RefTerm r: return EvalRef(f, r, k);
            case ArrayTerm a:
                if (a.Items.Length == 0) return k(RegoArray.Empty);
                return EvalItems(f, a.Items, 0, new RegoValue[a.Items.Length], vals => k(new RegoArray((RegoValue[])vals.Clone())));
            case SetTerm st:
                if (st.Items.Length == 0) return k(RegoSet.Empty);
                return EvalItems(f, st.Items, 0, new RegoValue[st.Items.Length], vals => k(RegoSet.FromUnsorted([.. vals])));
            case ObjectTerm o:
                {
                    if (o.Items.Length == 0) return k(RegoObject.Empty);
                    var flat = new Term[o.Items.Length * 2];
                    for (int i = 0; i < o.Items.Length; i++) { flat[2 * i] = o.Items[i].Key; flat[2 * i + 1] = o.Items[i].Value; }
                    return EvalItems(f, flat, 0, new RegoValue[flat.Length], vals =>
                    {
                        var b = new RegoObject.Builder(o.Items.Length);
                        for (int i = 0; i < vals.Length; i += 2) b.Add(vals[i], vals[i + 1]);
                        return k(b.Build());
                    });
                }
            case CallTerm c: return EvalCall(f, c, k);
            case ComprehensionTerm ct: return k(EvalComprehension(f, ct));
            case TemplateTerm tt:
                {
                    var s = EvalTemplate(f, tt);
                    return k(s);
                }
        }
        throw new EvalException("eval_internal_error", "unknown term");
    }

    /// <summary>Evaluates call arguments; unbound variable arguments last, so refs in other arguments can bind them.</summary>
    private bool EvalArgs(Frame f, Term[] terms, Func<RegoValue[], bool> k)
    {
        bool anyFree = false;
        foreach (var t in terms) if (IsFree(f, t)) { anyFree = true; break; }
        if (!anyFree) return EvalItems(f, terms, 0, new RegoValue[terms.Length], k);
        var order = new int[terms.Length];
        int w = 0;
        for (int i = 0; i < terms.Length; i++) if (terms[i] is not VarTerm) order[w++] = i;
        for (int i = 0; i < terms.Length; i++) if (terms[i] is VarTerm) order[w++] = i;
        return EvalOrdered(f, terms, order, 0, new RegoValue[terms.Length], k);
    }

    private bool EvalOrdered(Frame f, Term[] terms, int[] order, int i, RegoValue[] buf, Func<RegoValue[], bool> k)
    {
        if (i == order.Length) return k(buf);
        int j = order[i];
        return EvalTerm(f, terms[j], v => { buf[j] = v; return EvalOrdered(f, terms, order, i + 1, buf, k); });
    }

    private bool EvalItems(Frame f, Term[] terms, int i, RegoValue[] buf, Func<RegoValue[], bool> k)
    {
        if (i == terms.Length) return k(buf);
        return EvalTerm(f, terms[i], v => { buf[i] = v; return EvalItems(f, terms, i + 1, buf, k); });
    }

    private RegoValue EvalTemplate(Frame f, TemplateTerm tt)
    {
        var sb = new StringBuilder();
        foreach (var part in tt.Parts)
        {
            if (part is string s) { sb.Append(s); continue; }
            var e = (Expr)part;
            RegoValue? value = null;
            Func<Cont, bool> run = kk => EvalTerm(f, e.Term ?? TrueTerm, v => { value = v; return false; });
            if (e.Kind != ExprKind.Term)
            {
                bool ok = false;
                run = kk => EvalExprNoWith(f, e, () => { ok = true; return false; });
                if (e.With.Length > 0) EvalWith(f, e.With, run, () => false); else run(() => false);
                value = ok ? RegoValue.True : null;
            }
            else if (e.With.Length > 0) EvalWith(f, e.With, run, () => false);
            else run(() => false);
            if (value is null) sb.Append("<undefined>");
            else if (value is RegoString rs) sb.Append(rs.Value);
            else sb.Append(value.ToString());
        }
        return new RegoString(sb.ToString());
    }

    private static RegoValue? Lookup(RegoValue v, RegoValue key, bool data = false)
    {
        switch (v)
        {
            case RegoObject o: return o.TryGetValue(key, out var r) ? r : data && key is RegoNumber && o.TryGetValue(key.ToString(), out var r2) ? r2 : null;
            case RegoArray a:
                if (key is RegoNumber n && n.TryGetInt64(out long idx) && idx >= 0 && idx < a.Items.Length) return a.Items[idx];
                return null;
            case RegoSet s: return s.Contains(key) ? key : null;
        }
        return null;
    }

    private bool IsUnboundPattern(Frame f, Term t)
    {
        switch (t)
        {
            case VarTerm v: return !f.TryGet(v.Name, out _) && !Vars.IsRoot(v.Name);
            case ArrayTerm a: foreach (var i in a.Items) if (IsUnboundPattern(f, i)) return true; return false;
            case ObjectTerm o: foreach (var (_, v) in o.Items) if (IsUnboundPattern(f, v)) return true; return false;
            case SetTerm s: foreach (var i in s.Items) if (IsUnboundPattern(f, i)) return true; return false;
        }
        return false;
    }

    private bool EvalRef(Frame f, RefTerm r, VCont k)
    {
        if (r.Head is VarTerm hv)
        {
            if (f.TryGet(hv.Name, out var hvv)) return EvalPath(f, hvv, r.Path, 0, k);
            if (hv.Name == "input") return _input is null || EvalPath(f, _input, r.Path, 0, k);
            if (hv.Name == "data") return EvalData(f, r.Path, k);
            throw new EvalException("rego_unsafe_var_error", $"var {hv.Name} is unsafe");
        }
        return EvalTerm(f, r.Head, v => EvalPath(f, v, r.Path, 0, k));
    }

    private bool EvalPath(Frame f, RegoValue val, Term[] path, int i, VCont k, bool data = false)
    {
        while (true)
        {
            if (i == path.Length) return k(val);
            var pt = path[i];
            RegoValue? key = null;
            if (pt is ScalarTerm s) key = s.Value;
            else if (pt is VarTerm pv && f.TryGet(pv.Name, out var bound)) key = bound;
            if (key is null) break;
            var c = Lookup(val, key, data);
            if (c is null) return true;
            val = c;
            i++;
        }
        var term = path[i];
        if (IsUnboundPattern(f, term))
        {
            switch (val)
            {
                case RegoObject o:
                    for (int j = 0; j < o.Keys.Length; j++)
                    {
                        var child = o.Values[j];
                        if (!UnifyValue(f, term, o.Keys[j], () => EvalPath(f, child, path, i + 1, k, data))) return false;
                    }
                    return true;
                case RegoArray a:
                    for (int j = 0; j < a.Items.Length; j++)
                    {
                        var child = a.Items[j];
                        if (!UnifyValue(f, term, RegoNumber.FromInt64(j), () => EvalPath(f, child, path, i + 1, k, data))) return false;
                    }
                    return true;
                case RegoSet st:
                    foreach (var x in st.Items)
                        if (!UnifyValue(f, term, x, () => EvalPath(f, x, path, i + 1, k, data))) return false;
                    return true;
                default:
                    return true;
            }
        }
        return EvalTerm(f, term, key =>
        {
            var c = Lookup(val, key, data);
            return c is null || EvalPath(f, c, path, i + 1, k, data);
        });
    }

    // ------------------------------------------------------------------ data

    private bool EvalData(Frame f, Term[] path, VCont k) => DataWalk(f, _p.Root, _p.BaseData, null, path, 0, k);

    private RegoValue? FindOverride(PathSeg? seg)
    {
        if (_dataOverrides is null) return null;
        int len = seg?.Length ?? 0;
        RegoValue[]? arr = null;
        foreach (var (p, v) in _dataOverrides)
        {
            if (p.Length != len) continue;
            arr ??= seg?.ToArray() ?? [];
            if (StartsWith(p, arr)) return v;
        }
        return null;
    }

    private bool AnyDeeper(PathSeg? seg)
    {
        if (_dataOverrides is null) return false;
        var arr = seg?.ToArray() ?? [];
        foreach (var (p, _) in _dataOverrides) if (p.Length > arr.Length && StartsWith(p, arr)) return true;
        return false;
    }

    private RegoValue? PatchDeeper(RegoValue? v, PathSeg? seg)
    {
        if (_dataOverrides is null) return v;
        var arr = seg?.ToArray() ?? [];
        foreach (var (p, ov) in _dataOverrides)
            if (p.Length > arr.Length && StartsWith(p, arr))
                v = Upsert(v, p[arr.Length..], 0, ov);
        return v;
    }

    private bool DataWalk(Frame f, RuleNode? node, RegoValue? baseVal, PathSeg? seg, Term[] path, int i, VCont k)
    {
        if (_dataOverrides is not null)
        {
            var ov = FindOverride(seg);
            if (ov is not null) return EvalPath(f, ov, path, i, k);
        }
        if (node is not null && node.HasRules)
        {
            var v = RuleValue(node);
            if (node.Children.Count > 0 && v is RegoObject)
                v = MergeChildren((RegoObject)v, node, seg);
            v = PatchDeeper(v, seg);
            return v is null || EvalPath(f, v, path, i, k);
        }
        if (node is null && !AnyDeeper(seg))
            return baseVal is null || EvalPath(f, baseVal, path, i, k, data: true);
        if (i == path.Length)
        {
            var m = Materialize(node, baseVal, seg);
            return m is null || k(m);
        }
        var pt = path[i];
        RegoValue? key = pt is ScalarTerm s ? s.Value : pt is VarTerm pv && f.TryGet(pv.Name, out var bv) ? bv : null;
        if (key is not null) return Descend(f, node, baseVal, seg, path, i, key, k);
        if (IsUnboundPattern(f, pt))
        {
            var keys = new List<RegoValue>();
            var seen = new HashSet<RegoValue>();
            if (node is not null)
                foreach (var (ck, cn) in node.Children)
                    if (!cn.IsFunction || cn.Children.Count > 0) if (seen.Add(ck)) keys.Add(ck);
            if (baseVal is RegoObject bo) foreach (var bk in bo.Keys) if (seen.Add(bk)) keys.Add(bk);
            if (_dataOverrides is not null)
            {
                var arr = seg?.ToArray() ?? [];
                foreach (var (p, _) in _dataOverrides)
                    if (p.Length > arr.Length && StartsWith(p, arr) && seen.Add(p[arr.Length])) keys.Add(p[arr.Length]);
            }
            keys.Sort();
            foreach (var ck in keys)
                if (!UnifyValue(f, pt, ck, () => Descend(f, node, baseVal, seg, path, i, ck, k))) return false;
            return true;
        }
        return EvalTerm(f, pt, kv => Descend(f, node, baseVal, seg, path, i, kv, k));
    }

    private bool Descend(Frame f, RuleNode? node, RegoValue? baseVal, PathSeg? seg, Term[] path, int i, RegoValue key, VCont k)
    {
        RuleNode? child = null;
        node?.Children.TryGetValue(key, out child);
        RegoValue? childBase = null;
        if (baseVal is RegoObject bo)
        {
            if (bo.TryGetValue(key, out var cb)) childBase = cb;
            else if (key is RegoNumber && bo.TryGetValue(key.ToString(), out var cb2)) childBase = cb2;
            if (childBase is not null and not RegoObject) child = null;
        }
        var childSeg = _dataOverrides is not null ? new PathSeg(key, seg) : null;
        if (child is null && childBase is null && (_dataOverrides is null || (FindOverride(childSeg) is null && !AnyDeeper(childSeg))))
            return true;
        if (child is not null && child.IsFunction && !child.HasRules && child.Children.Count == 0) return true;
        return DataWalk(f, child, childBase, childSeg, path, i + 1, k);
    }

    private RegoObject MergeChildren(RegoObject v, RuleNode node, PathSeg? seg)
    {
        RegoValue result = v;
        // values produced by rules at this node are complete below the depth of their dynamic ref segments
        int leafDepth = node.Complete.Count > 0 ? 0 : node.ObjectRules.Count > 0 ? node.ObjectRules.Min(r => r.DynamicSuffix.Length) : int.MaxValue;
        foreach (var (ck, cn) in node.Children)
        {
            var cv = Materialize(cn, null, _dataOverrides is not null ? new PathSeg(ck, seg) : null);
            if (cv is null) continue;
            result = MergeValues(result, new RegoObject.Builder(1).Add(ck, cv).Build(), 0, leafDepth);
        }
        return (RegoObject)result;
    }

    /// <summary>Deep merge of documents produced by different rules; differing leaves (values of one rule) are a conflict.</summary>
    private static RegoValue MergeValues(RegoValue a, RegoValue b, int depth = 0, int leafDepth = int.MaxValue)
    {
        if (a is RegoObject ao && b is RegoObject bo && depth < leafDepth)
        {
            var builder = new RegoObject.Builder(ao.Count + bo.Count);
            foreach (var kv in ao.Pairs)
                builder.Add(kv.Key, bo.TryGetValue(kv.Key, out var bv) ? MergeValues(kv.Value, bv, depth + 1, leafDepth) : kv.Value);
            foreach (var kv in bo.Pairs)
                if (!ao.TryGetValue(kv.Key, out _)) builder.Add(kv.Key, kv.Value);
            return builder.Build();
        }
        if (a is RegoSet sa && b is RegoSet sb) return RegoSet.FromUnsorted([.. sa.Items, .. sb.Items]);
        if (a.Equals(b)) return a;
        throw new EvalException("eval_conflict_error", "object keys must be unique");
    }

    private RegoValue? Materialize(RuleNode? node, RegoValue? baseVal, PathSeg? seg)
    {
        if (_dataOverrides is not null)
        {
            var ov = FindOverride(seg);
            if (ov is not null) return ov;
        }
        if (node is null) return PatchDeeper(baseVal, seg);
        if (node.HasRules)
        {
            var rv = RuleValue(node);
            if (node.Children.Count > 0 && rv is RegoObject ro) rv = MergeChildren(ro, node, seg);
            return PatchDeeper(rv, seg);
        }
        if (node.IsFunction && node.Children.Count == 0) return null;
        var b = new RegoObject.Builder();
        var bo = baseVal as RegoObject;
        if (bo is not null)
            foreach (var kv in bo.Pairs)
                if (!node.Children.ContainsKey(kv.Key)) b.Add(kv.Key, kv.Value);
        foreach (var (ck, cn) in node.Children)
        {
            RegoValue? cb = null;
            if (bo is not null && bo.TryGetValue(ck, out var x)) cb = x;
            if (cb is not null and not RegoObject) { b.Add(ck, cb); continue; }
            var cv = Materialize(cn, cb, _dataOverrides is not null ? new PathSeg(ck, seg) : null);
            if (cv is not null) b.Add(ck, cv);
        }
        RegoValue result = b.Build();
        if (baseVal is not null && baseVal is not RegoObject && node.Children.Count == 0) result = baseVal;
        return PatchDeeper(result, seg);
    }

    // ------------------------------------------------------------------ rules

    private RegoValue? RuleValue(RuleNode node)
    {
        _cache ??= new();
        if (_cache.TryGetValue(node, out var cached)) return cached;
        // recursion can only show up in deep evaluations (it is rejected at compile time; `with` can still create it)
        bool track = _depth > 32;
        if (track && !(_inProgress ??= new()).Add(node)) throw new EvalException("rego_recursion_error", $"rule {node.DottedPath} is recursive");
        Enter();
        try
        {
            RegoValue? result = null;
            if (node.Complete.Count > 0) result = EvalComplete(node);
            else if (node.PartialSet.Count > 0 || node.ObjectRules.Count > 0) result = EvalPartial(node);
            if (result is null && node.Default is not null && node.Default.Args is null)
            {
                var f = new Frame();
                EvalTerm(f, node.Default.Value ?? TrueTerm, v => { result = v; return false; });
            }
            _cache[node] = result;
            return result;
        }
        finally
        {
            if (track) _inProgress!.Remove(node);
            Leave();
        }
    }

    private RegoValue? EvalComplete(RuleNode node)
    {
        RegoValue? result = null;
        var completeRules = Select(node.Complete, node.CompleteIndex);
        for (int ri = 0; ri < completeRules.Count; ri++)
        {
            var rule = completeRules[ri];
            for (var r = rule; r is not null; r = r.Else)
            {
                var v = EvalRuleBody(r);
                if (v is null) continue;
                if (result is null) result = v;
                else if (!result.Equals(v)) throw new EvalException("eval_conflict_error", "complete rules must not produce multiple outputs");
                break;
            }
        }
        return result;
    }

    private IReadOnlyList<Rule> Select(List<Rule> rules, Compiler.RuleIndex? index)
    {
        if (index is null) return rules;
        var idx = index.Candidates(_input);
        var result = new Rule[idx.Count];
        for (int i = 0; i < result.Length; i++) result[i] = rules[idx[i]];
        return result;
    }

    private static bool IsConstant(Term? t) => t is null || t is ScalarTerm;

    private Rule? _currentRule;

    private RegoValue? EvalRuleBody(Rule r)
    {
        var saved = _currentRule;
        _currentRule = r;
        try { return EvalRuleBodyCore(r); }
        finally { _currentRule = saved; }
    }

    /// <summary>rego.metadata.rule() / rego.metadata.chain() for the rule being evaluated.</summary>
    private RegoValue Metadata(bool chain)
    {
        var r = _currentRule;
        if (!chain) return r?.Annotations ?? RegoObject.Empty;
        var list = new List<RegoValue>();
        if (r is null) return RegoArray.Empty;
        var path = new RegoArray(r.Path.ToArray());
        var entry = new RegoObject.Builder().Add("path", path);
        if (r.Annotations is not null) entry.Add("annotations", r.Annotations);
        list.Add(entry.Build());
        // document-scope annotations of the other rules of the same document
        var node = _p.Root;
        foreach (var k in r.Path) if (!node.Children.TryGetValue(k, out node!)) break;
        if (node is not null)
            foreach (var other in node.Complete.Concat(node.PartialSet).Concat(node.ObjectRules).Concat(node.Functions))
                if (other != r && other.Annotations is { } oa && oa["scope"] is RegoString { Value: "document" })
                    list.Add(new RegoObject.Builder().Add("path", path).Add("annotations", oa).Build());
        // package annotations, innermost package first
        for (int n = r.Module.PackagePath.Count; n > 0; n--)
        {
            var pn = _p.Root;
            foreach (var k in r.Module.PackagePath.Take(n)) if (!pn.Children.TryGetValue(k, out pn!)) break;
            if (pn?.PackageAnnotations is { } pa)
                list.Add(new RegoObject.Builder().Add("path", new RegoArray(r.Module.PackagePath.Take(n).ToArray())).Add("annotations", pa).Build());
        }
        return new RegoArray(list.ToArray());
    }

    private RegoValue? EvalRuleBodyCore(Rule r)
    {
        var f = new Frame();
        RegoValue? res = null;
        bool constant = IsConstant(r.Value);
        var valueTerm = r.Value ?? TrueTerm;
        EvalBody(f, r.Body.Exprs, 0, () => EvalTerm(f, valueTerm, v =>
        {
            if (res is null) res = v;
            else if (!res.Equals(v)) throw new EvalException("eval_conflict_error", "complete rules must not produce multiple outputs");
            return !constant;
        }));
        return res;
    }

    private sealed class ObjTree
    {
        public readonly Dictionary<RegoValue, object> Entries = new();
        public readonly List<RegoValue> Order = new();

        public RegoValue ToValue()
        {
            var b = new RegoObject.Builder(Entries.Count);
            foreach (var k in Order)
            {
                var e = Entries[k];
                b.Add(k, e switch
                {
                    ObjTree t => t.ToValue(),
                    List<RegoValue> l => RegoSet.FromUnsorted(l),
                    _ => (RegoValue)e,
                });
            }
            return b.Build();
        }
    }

    private RegoValue? EvalPartial(RuleNode node)
    {
        List<RegoValue>? set = null;
        if (node.PartialSet.Count > 0) set = new();
        var setRules = Select(node.PartialSet, node.PartialSetIndex);
        for (int ri = 0; ri < setRules.Count; ri++)
        {
            var rule = setRules[ri];
            var f = new Frame();
            var s = set!;
            EvalBody(f, rule.Body.Exprs, 0, () => EvalTerm(f, rule.Key!, v => { s.Add(v); Alloc(16); return true; }));
        }
        if (node.ObjectRules.Count == 0) return set is null ? null : RegoSet.FromUnsorted(set);
        var tree = new ObjTree();
        bool any = false;
        var objectRules = Select(node.ObjectRules, node.ObjectIndex);
        for (int ri = 0; ri < objectRules.Count; ri++)
        {
            var rule = objectRules[ri];
            var f = new Frame();
            var suffix = rule.DynamicSuffix;
            var buf = new RegoValue[suffix.Length];
            bool isSet = rule.IsContains;
            EvalBody(f, rule.Body.Exprs, 0, () => EvalItems(f, suffix, 0, buf, keys =>
                EvalTerm(f, isSet ? rule.Key! : (rule.Value ?? TrueTerm), v =>
                {
                    Insert(tree, keys, v, isSet);
                    any = true;
                    Alloc(32);
                    return true;
                })));
        }
        if (!any && set is null) return node.Complete.Count == 0 && node.Default is null ? RegoObject.Empty : null;
        return tree.ToValue();
    }

    private static void Insert(ObjTree tree, RegoValue[] keys, RegoValue v, bool isSet)
    {
        var t = tree;
        int last = isSet ? keys.Length : keys.Length - 1;
        for (int j = 0; j < last; j++)
        {
            if (t.Entries.TryGetValue(keys[j], out var e))
            {
                if (j == last - 1 && isSet)
                {
                    if (e is List<RegoValue> l) { l.Add(v); return; }
                    throw new EvalException("eval_conflict_error", "object keys must be unique");
                }
                t = e as ObjTree ?? throw new EvalException("eval_conflict_error", "object keys must be unique");
            }
            else
            {
                if (j == last - 1 && isSet)
                {
                    t.Entries[keys[j]] = new List<RegoValue> { v };
                    t.Order.Add(keys[j]);
                    return;
                }
                var nt = new ObjTree();
                t.Entries[keys[j]] = nt;
                t.Order.Add(keys[j]);
                t = nt;
            }
        }
        if (isSet) return;
        var lk = keys[^1];
        if (t.Entries.TryGetValue(lk, out var existing))
        {
            if (existing is RegoValue ev && ev.Equals(v)) return;
            throw new EvalException("eval_conflict_error", "object keys must be unique");
        }
        t.Entries[lk] = v;
        t.Order.Add(lk);
    }

    // ------------------------------------------------------------------ calls

    private bool EvalCall(Frame f, CallTerm c, VCont k)
    {
        var name = c.Resolved!;
        bool user = c.IsUserFunction;
        if (_funcOverrides is not null && _funcOverrides.TryGetValue(name, out var ov))
        {
            if (ov.Value is not null)
            {
                var mock = ov.Value;
                int ar = ArityOf(name, user);
                if (ar >= 0 && c.Args.Length == ar + 1)
                    return EvalItems(f, c.Args[..^1], 0, new RegoValue[ar], _ => UnifyValue(f, c.Args[^1], mock, () => k(RegoValue.True)));
                return EvalItems(f, c.Args, 0, new RegoValue[c.Args.Length], _ => k(mock));
            }
            name = ov.Target!;
            user = _p.Functions.ContainsKey(name);
            return EvalMockCall(f, c, name, user, k);
        }
        if (name == "print" && !user) return EvalPrint(f, c, k);
        if (!user && name is "rego.metadata.rule" or "rego.metadata.chain")
        {
            var md = Metadata(name == "rego.metadata.chain");
            return c.Args.Length == 1 ? UnifyValue(f, c.Args[0], md, () => k(RegoValue.True)) : k(md);
        }
        int arity;
        RuleNode? fnode = null;
        BuiltinDef? def = null;
        if (user)
        {
            if (!_p.Functions.TryGetValue(name, out fnode))
                throw new EvalException("eval_type_error", $"undefined function {name}");
            arity = fnode.Arity;
        }
        else
        {
            if (!BuiltinRegistry.TryGet(name, out var d)) throw new EvalException("eval_type_error", $"undefined function {name}");
            def = d;
            arity = d.Arity;
        }
        if (c.Args.Length == arity)
        {
            return EvalArgs(f, c.Args, args =>
            {
                var r = user ? InvokeUser(fnode!, args) : InvokeBuiltin(def!, args, c.Loc);
                if (r is RegoArray rel && def is { Relation: true })
                {
                    foreach (var item in rel.Items) if (!k(item)) return false;
                    return true;
                }
                return r is null || k(r);
            });
        }
        if (c.Args.Length == arity + 1)
        {
            var inArgs = c.Args[..^1];
            return EvalItems(f, inArgs, 0, new RegoValue[arity], args =>
            {
                var r = user ? InvokeUser(fnode!, args) : InvokeBuiltin(def!, args, c.Loc);
                if (r is RegoArray rel && def is { Relation: true })
                {
                    foreach (var item in rel.Items)
                        if (!UnifyValue(f, c.Args[^1], item, () => k(RegoValue.True))) return false;
                    return true;
                }
                return r is null || UnifyValue(f, c.Args[^1], r, () => k(RegoValue.True));
            });
        }
        throw new EvalException("rego_type_error", $"{name}: arity mismatch");
    }

    /// <summary>Calls a replacement function: its body runs without any function mocks (as OPA does).</summary>
    private bool EvalMockCall(Frame f, CallTerm c, string name, bool user, VCont k)
    {
        int arity = ArityOf(name, user);
        if (arity < 0) throw new EvalException("eval_type_error", $"undefined function {name}");
        int n = c.Args.Length == arity + 1 ? arity : c.Args.Length;
        RegoValue? Invoke(RegoValue[] args)
        {
            var oldFunc = _funcOverrides;
            var oldCache = _cache;
            var oldInProgress = _inProgress;
            _funcOverrides = null;
            _cache = new();
            _inProgress = null;
            try
            {
                if (user) return InvokeUser(_p.Functions[name], args);
                if (!BuiltinRegistry.TryGet(name, out var d)) throw new EvalException("eval_type_error", $"undefined function {name}");
                return InvokeBuiltin(d, args);
            }
            finally
            {
                _funcOverrides = oldFunc;
                _cache = oldCache;
                _inProgress = oldInProgress;
            }
        }
        if (c.Args.Length == arity + 1)
            return EvalItems(f, c.Args[..^1], 0, new RegoValue[n], args =>
            {
                var r = Invoke(args);
                return r is null || UnifyValue(f, c.Args[^1], r, () => k(RegoValue.True));
            });
        if (c.Args.Length != arity) throw new EvalException("rego_type_error", $"{name}: arity mismatch");
        return EvalItems(f, c.Args, 0, new RegoValue[n], args =>
        {
            var r = Invoke(args);
            return r is null || k(r);
        });
    }

    private int ArityOf(string name, bool user)
    {
        if (_p.Functions.TryGetValue(name, out var n)) return n.Arity;
        if (BuiltinRegistry.TryGet(name, out var d)) return d.Arity;
        return -1;
    }

    private bool EvalPrint(Frame f, CallTerm c, VCont k)
    {
        var parts = new List<string>();
        foreach (var a in c.Args)
        {
            var vals = new List<RegoValue>();
            EvalTerm(f, a, v => { vals.Add(v); return true; });
            if (vals.Count == 0) parts.Add("<undefined>");
            else parts.Add(vals[0] is RegoString s ? s.Value : vals[0].ToString());
        }
        _o.PrintSink?.Invoke(string.Join(" ", parts));
        return k(RegoValue.True);
    }

    internal RegoValue? InvokeBuiltin(BuiltinDef def, RegoValue[] args, Loc? loc = null)
    {
        try
        {
            return def.Impl(_bctx, args);
        }
        catch (BuiltinException ex)
        {
            if (_o.StrictBuiltinErrors) throw new EvalException(ex.Code, ex.Message, loc);
            return null;
        }
        catch (RegoNumberOverflowException ex)
        {
            if (_o.StrictBuiltinErrors) throw new EvalException("eval_builtin_error", $"{def.Name}: {ex.Message}", loc);
            return null;
        }
        catch (InsufficientExecutionStackException)
        {
            throw new StackLimitException();
        }
        catch (OperationCanceledException)
        {
            throw new EvalException("eval_cancel_error", _o.CancellationToken.IsCancellationRequested ? "caller cancelled query execution" : "evaluation timed out");
        }
        catch (Exception ex) when (ex is not EvalException and not StackLimitException and not OutOfMemoryException)
        {
            if (_o.StrictBuiltinErrors) throw new EvalException("eval_builtin_error", $"{def.Name}: {ex.Message}", loc);
            return null;
        }
    }

    internal RegoValue? InvokeUser(RuleNode node, RegoValue[] args)
    {
        Enter();
        try
        {
            RegoValue? result = null;
            foreach (var rule in node.Functions)
            {
                for (var r = rule; r is not null; r = r.Else)
                {
                    var f = new Frame();
                    RegoValue? rv = null;
                    bool constant = IsConstant(r.Value);
                    var valueTerm = r.Value ?? TrueTerm;
                    var ps = r.Args!;
                    UnifyArgs(f, ps, args, 0, () => EvalBody(f, r.Body.Exprs, 0, () => EvalTerm(f, valueTerm, v =>
                    {
                        if (rv is null) rv = v;
                        else if (!rv.Equals(v)) throw new EvalException("eval_conflict_error", "functions must not produce multiple outputs for same inputs");
                        return !constant;
                    })));
                    if (rv is null) continue;
                    if (result is null) result = rv;
                    else if (!result.Equals(rv)) throw new EvalException("eval_conflict_error", "functions must not produce multiple outputs for same inputs");
                    break;
                }
            }
            if (result is null && node.Default is not null)
            {
                var f = new Frame();
                EvalTerm(f, node.Default.Value ?? TrueTerm, v => { result = v; return false; });
            }
            return result;
        }
        finally { Leave(); }
    }

    private bool UnifyArgs(Frame f, Term[] ps, RegoValue[] args, int i, Cont k)
    {
        if (i == ps.Length) return k();
        return UnifyValue(f, ps[i], args[i], () => UnifyArgs(f, ps, args, i + 1, k));
    }

    // ------------------------------------------------------------------ comprehensions

    private RegoValue EvalComprehension(Frame f, ComprehensionTerm ct)
    {
        Enter();
        try
        {
            switch (ct.Kind)
            {
                case ComprehensionKind.Array:
                    {
                        var list = new List<RegoValue>();
                        EvalBody(f, ct.Body.Exprs, 0, () => EvalTerm(f, ct.Head, v => { list.Add(v); Alloc(16); return true; }));
                        return list.Count == 0 ? RegoArray.Empty : new RegoArray(list.ToArray());
                    }
                case ComprehensionKind.Set:
                    {
                        var list = new List<RegoValue>();
                        EvalBody(f, ct.Body.Exprs, 0, () => EvalTerm(f, ct.Head, v => { list.Add(v); Alloc(16); return true; }));
                        return RegoSet.FromUnsorted(list);
                    }
                default:
                    {
                        var dict = new Dictionary<RegoValue, RegoValue>();
                        EvalBody(f, ct.Body.Exprs, 0, () => EvalTerm(f, ct.Head, kv => EvalTerm(f, ct.Value!, vv =>
                        {
                            if (dict.TryGetValue(kv, out var existing))
                            {
                                if (!existing.Equals(vv)) throw new EvalException("eval_conflict_error", "object keys must be unique");
                                return true;
                            }
                            dict[kv] = vv;
                            Alloc(32);
                            return true;
                        })));
                        return RegoObject.From(dict);
                    }
            }
        }
        finally { Leave(); }
    }

    // ------------------------------------------------------------------ unification

    private bool IsFree(Frame f, Term t) => t is VarTerm v && !Vars.IsRoot(v.Name) && !f.TryGet(v.Name, out _);

    private bool Unify(Frame f, Term a, Term b, Cont k)
    {
        if (IsFree(f, a))
        {
            var name = ((VarTerm)a).Name;
            if (IsFree(f, b) || IsUnboundPattern(f, b)) throw new EvalException("rego_unsafe_var_error", $"var {name} is unsafe");
            return EvalTerm(f, b, v => BindThen(f, name, v, k));
        }
        if (IsFree(f, b))
        {
            var name = ((VarTerm)b).Name;
            if (IsUnboundPattern(f, a)) throw new EvalException("rego_unsafe_var_error", $"var {name} is unsafe");
            return EvalTerm(f, a, v => BindThen(f, name, v, k));
        }
        if (a is ArrayTerm aa && b is ArrayTerm ba)
        {
            if (aa.Items.Length != ba.Items.Length) return true;
            return UnifyPairs(f, aa.Items, ba.Items, 0, k);
        }
        if (a is ObjectTerm ao && b is ObjectTerm bo && (IsUnboundPattern(f, a) && IsUnboundPattern(f, b)))
        {
            if (ao.Items.Length != bo.Items.Length) return true;
            var aKeys = new RegoValue[ao.Items.Length];
            var bKeys = new RegoValue[bo.Items.Length];
            for (int i = 0; i < aKeys.Length; i++)
            {
                aKeys[i] = FirstValue(f, ao.Items[i].Key) ?? throw new EvalException("rego_unsafe_var_error", "object key is unsafe");
                bKeys[i] = FirstValue(f, bo.Items[i].Key) ?? throw new EvalException("rego_unsafe_var_error", "object key is unsafe");
            }
            var la = new Term[aKeys.Length];
            var lb = new Term[aKeys.Length];
            for (int i = 0; i < aKeys.Length; i++)
            {
                int j = Array.FindIndex(bKeys, x => x.Equals(aKeys[i]));
                if (j < 0) return true;
                la[i] = ao.Items[i].Value;
                lb[i] = bo.Items[j].Value;
            }
            return UnifyPairs(f, la, lb, 0, k);
        }
        if (!IsUnboundPattern(f, a)) return EvalTerm(f, a, av => UnifyValue(f, b, av, k));
        if (!IsUnboundPattern(f, b)) return EvalTerm(f, b, bv => UnifyValue(f, a, bv, k));
        throw new EvalException("rego_unsafe_var_error", "unification of two unbound patterns");
    }

    private RegoValue? FirstValue(Frame f, Term t)
    {
        RegoValue? r = null;
        EvalTerm(f, t, v => { r = v; return false; });
        return r;
    }

    private bool UnifyPairs(Frame f, Term[] a, Term[] b, int i, Cont k)
    {
        if (i == a.Length) return k();
        return Unify(f, a[i], b[i], () => UnifyPairs(f, a, b, i + 1, k));
    }

    private bool BindThen(Frame f, string name, RegoValue v, Cont k)
    {
        Step();
        f.Bind(name, v);
        var r = k();
        f.Unbind(name);
        return r;
    }

    public bool UnifyValue(Frame f, Term t, RegoValue v, Cont k)
    {
        switch (t)
        {
            case VarTerm vt:
                if (f.TryGet(vt.Name, out var b)) return !b.Equals(v) || k();
                if (Vars.IsRoot(vt.Name)) return EvalTerm(f, t, tv => !tv.Equals(v) || k());
                return BindThen(f, vt.Name, v, k);
            case ScalarTerm s:
                return !s.Value.Equals(v) || k();
            case ArrayTerm at:
                if (v is not RegoArray va || va.Items.Length != at.Items.Length) return true;
                return UnifyValueItems(f, at.Items, va.Items, 0, k);
            case ObjectTerm ot when IsUnboundPattern(f, ot):
                {
                    if (v is not RegoObject vo || vo.Count != ot.Items.Length) return true;
                    var vals = new RegoValue[ot.Items.Length];
                    for (int i = 0; i < ot.Items.Length; i++)
                    {
                        var key = FirstValue(f, ot.Items[i].Key);
                        if (key is null || !vo.TryGetValue(key, out var kv)) return true;
                        vals[i] = kv;
                    }
                    var terms = new Term[ot.Items.Length];
                    for (int i = 0; i < terms.Length; i++) terms[i] = ot.Items[i].Value;
                    return UnifyValueItems(f, terms, vals, 0, k);
                }
            default:
                return EvalTerm(f, t, tv => !tv.Equals(v) || k());
        }
    }

    private bool UnifyValueItems(Frame f, Term[] ts, RegoValue[] vs, int i, Cont k)
    {
        if (i == ts.Length) return k();
        return UnifyValue(f, ts[i], vs[i], () => UnifyValueItems(f, ts, vs, i + 1, k));
    }
}
