using EnvoyAuthz.Rego.Compiler;
using EnvoyAuthz.Rego.Syntax;

namespace EnvoyAuthz.Rego.Evaluation;

/// <summary>Entry points: runs one evaluation with limits, converting every failure into a result.</summary>
internal static class Engine
{
    private const int BigStackBytes = 256 * 1024 * 1024;

    /// <summary>Bounds how many deep evaluations may run on large-stack threads at once.</summary>
    private static readonly SemaphoreSlim DeepSlots = new(Math.Max(2, Environment.ProcessorCount));

    public static RegoEvalResult EvaluateRef(CompiledPolicy p, string refPath, RegoValue? input, RegoEvalOptions options)
    {
        Body body;
        List<string> vars;
        try
        {
            (body, vars) = Compile(p, refPath);
        }
        catch (Exception ex) when (ex is RegoParseException or CompileException or InsufficientExecutionStackException)
        {
            return new RegoEvalResult(null, new RegoEvalError(ex is CompileException ce ? ce.Code : "rego_parse_error", ex.Message));
        }
        if (body.Exprs.Count != 1 || body.Exprs[0].Kind != ExprKind.Term)
            return new RegoEvalResult(null, new RegoEvalError("rego_parse_error", "expected a reference"));
        var term = body.Exprs[0].Term!;
        return Run(() =>
        {
            using var ev = new Evaluator(p, input, options);
            RegoValue? result = null;
            ev.EvalTerm(new Frame(), term, v => { result = v; return false; });
            return new RegoEvalResult(result, null);
        }, e => new RegoEvalResult(null, e));
    }

    public static RegoQueryResult Query(CompiledPolicy p, string query, RegoValue? input, RegoEvalOptions options)
    {
        Body body;
        List<string> vars;
        try
        {
            (body, vars) = Compile(p, query);
        }
        catch (Exception ex) when (ex is RegoParseException or CompileException or InsufficientExecutionStackException)
        {
            return new RegoQueryResult([], new RegoEvalError(ex is CompileException ce ? ce.Code : "rego_parse_error", ex.Message));
        }
        return Run(() =>
        {
            using var ev = new Evaluator(p, input, options);
            var rows = new List<IReadOnlyDictionary<string, RegoValue>>();
            var f = new Frame();
            ev.EvalBody(f, body.Exprs, 0, () =>
            {
                var row = new Dictionary<string, RegoValue>(vars.Count, StringComparer.Ordinal);
                foreach (var v in vars) if (f.TryGet(v, out var val)) row[v] = val;
                rows.Add(row);
                return true;
            });
            return new RegoQueryResult(rows, null);
        }, e => new RegoQueryResult([], e));
    }

    private static (Body, List<string>) Compile(CompiledPolicy p, string query)
    {
        if (p.QueryCache.TryGetValue(query, out var cached)) return cached;
        var body = PolicyCompiler.CompileQuery(p, query, out var vars);
        if (p.QueryCache.Count > 1024) p.QueryCache.Clear();
        p.QueryCache[query] = (body, vars);
        return (body, vars);
    }

    private static T Run<T>(Func<T> work, Func<RegoEvalError, T> onError)
    {
        try
        {
            return work();
        }
        catch (Exception ex) when (ex is StackLimitException or InsufficientExecutionStackException)
        {
            // retry on a thread with a large stack (bounded concurrency)
            if (!DeepSlots.Wait(TimeSpan.FromMilliseconds(100)))
                return onError(new RegoEvalError("eval_limit_error", "evaluation exceeded the maximum stack depth"));
            try
            {
                return RunOnBigStack(work, onError);
            }
            finally
            {
                DeepSlots.Release();
            }
        }
        catch (Exception ex)
        {
            return onError(ToError(ex));
        }
    }

    private static T RunOnBigStack<T>(Func<T> work, Func<RegoEvalError, T> onError)
    {
        {
            T? result = default;
            Exception? failure = null;
            var t = new Thread(() =>
            {
                try { result = work(); }
                catch (Exception ex) { failure = ex; }
            }, BigStackBytes);
            t.Start();
            t.Join();
            if (failure is null) return result!;
            return onError(ToError(failure));
        }
    }

    private static RegoEvalError ToError(Exception ex) => ex switch
    {
        EvalException ee => new RegoEvalError(ee.Code, ee.Message) { File = ee.Location?.File, Line = ee.Location?.Line ?? 0, Column = ee.Location?.Col ?? 0 },
        StackLimitException => new RegoEvalError("eval_limit_error", "evaluation exceeded the maximum stack depth"),
        InsufficientExecutionStackException => new RegoEvalError("eval_limit_error", "evaluation exceeded the maximum stack depth"),
        OperationCanceledException => new RegoEvalError("eval_cancel_error", "caller cancelled query execution"),
        OutOfMemoryException => new RegoEvalError("eval_limit_error", "out of memory"),
        RegoNumberOverflowException => new RegoEvalError("eval_builtin_error", ex.Message),
        _ => new RegoEvalError("eval_internal_error", ex.GetType().Name + ": " + ex.Message),
    };
}
