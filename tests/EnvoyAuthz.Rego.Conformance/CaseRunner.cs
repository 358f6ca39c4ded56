namespace EnvoyAuthz.Rego.Conformance;

/// <summary>Outcome of one case.</summary>
/// <param name="Passed">Whether the case passed.</param>
/// <param name="Detail">Why it failed (empty when passed).</param>
public sealed record CaseOutcome(bool Passed, string Detail);

/// <summary>Runs a case against the engine and compares with the expectation.</summary>
public static class CaseRunner
{
    /// <summary>Default per-case limit.</summary>
    public static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Runs a case on a large-stack thread with a time limit; never throws.</summary>
    public static CaseOutcome Run(ConformanceCase c, TimeSpan? timeout = null)
    {
        var limit = timeout ?? CaseTimeout;
        CaseOutcome? outcome = null;
        using var cts = new CancellationTokenSource();
        var thread = new Thread(() =>
        {
            try { outcome = RunInline(c, cts.Token, limit); }
            catch (Exception ex) { outcome = new CaseOutcome(false, "exception: " + ex); }
        }, 64 * 1024 * 1024)
        { IsBackground = true };
        thread.Start();
        if (!thread.Join(limit + TimeSpan.FromSeconds(1)))
        {
            cts.Cancel();
            thread.Join(TimeSpan.FromSeconds(1));
            return new CaseOutcome(false, "timeout");
        }
        return outcome ?? new CaseOutcome(false, "no outcome");
    }

    /// <summary>Runs a case on the calling thread.</summary>
    public static CaseOutcome RunInline(ConformanceCase c, CancellationToken ct, TimeSpan timeout)
    {
        var modules = c.Modules.Select((m, i) => new RegoModuleSource($"test-{i}.rego", m)).ToList();
        var compiled = RegoCompiler.Compile(modules, c.Data, new RegoCompileOptions { AllowTestBuiltins = true });
        if (!compiled.Success)
        {
            var msg = string.Join("; ", compiled.Errors.Select(e => e.ToString()));
            if (c.WantErrorCode is not null || c.WantError is not null)
            {
                if (c.WantError is not null && msg.Contains(c.WantError, StringComparison.Ordinal)) return new CaseOutcome(true, "");
            }
            return new CaseOutcome(false, "compile error: " + msg);
        }
        var policy = compiled.Policy!;
        RegoValue? input = c.Input;
        if (c.InputTerm is not null)
        {
            var r = RegoCompiler.Compile([]).Policy!.Query("__input__ = " + c.InputTerm, null);
            if (r.Error is not null || r.Bindings.Count != 1) return new CaseOutcome(false, "bad input_term: " + r.Error);
            input = r.Bindings[0]["__input__"];
        }
        var options = new RegoEvalOptions
        {
            StrictBuiltinErrors = c.StrictError,
            CancellationToken = ct,
            Timeout = timeout,
        };
        var result = policy.Query(c.Query, input, options);
        if (c.WantErrorCode is not null || c.WantError is not null)
        {
            if (result.Error is null) return new CaseOutcome(false, "expected error, got " + Show(result.Bindings));
            if (c.WantErrorCode is not null && result.Error.Code != c.WantErrorCode)
                return new CaseOutcome(false, $"expected error code {c.WantErrorCode}, got {result.Error}");
            if (c.WantError is not null && !result.Error.ToString().Contains(c.WantError, StringComparison.Ordinal))
                return new CaseOutcome(false, $"expected error containing '{c.WantError}', got {result.Error}");
            return new CaseOutcome(true, "");
        }
        if (result.Error is not null) return new CaseOutcome(false, "unexpected error: " + result.Error);
        var want = c.WantResult ?? RegoArray.From();
        var got = result.Bindings
            .Select(b => Normalize(RegoObject.From(b.Where(kv => !(c.IgnoreGeneratedVars && kv.Key.StartsWith("__", StringComparison.Ordinal)))
                .Select(kv => new KeyValuePair<RegoValue, RegoValue>(RegoValue.From(kv.Key), c.SortBindings ? SortIfArray(kv.Value) : kv.Value)))))
            .ToList();
        var wantRows = want.Elements.Select(w => Normalize(c.SortBindings && w is RegoObject wo ? SortRow(wo) : w)).ToList();
        if (SameSet(got, wantRows)) return new CaseOutcome(true, "");
        return new CaseOutcome(false, $"want {Show(wantRows)}\n      got  {Show(got)}");
    }

    private static RegoValue SortRow(RegoObject o) => RegoObject.From(o.Pairs.Select(kv => new KeyValuePair<RegoValue, RegoValue>(kv.Key, SortIfArray(kv.Value))));

    private static RegoValue SortIfArray(RegoValue v) => v is RegoArray a ? RegoArray.From(a.Elements.Select(Normalize).OrderBy(x => x)) : v;

    /// <summary>Sets become sorted arrays (as JSON would show them); everything else unchanged.</summary>
    public static RegoValue Normalize(RegoValue v) => v switch
    {
        RegoSet s => RegoArray.From(s.Elements.Select(Normalize).OrderBy(x => x)),
        RegoArray a => RegoArray.From(a.Elements.Select(Normalize)),
        RegoObject o => RegoObject.From(o.Pairs.Select(kv => new KeyValuePair<RegoValue, RegoValue>(JsonKey(kv.Key), Normalize(kv.Value)))),
        _ => v,
    };

    private static RegoValue JsonKey(RegoValue k) => k is RegoString ? k : RegoValue.From(k.ToJson());

    private static bool SameSet(List<RegoValue> a, List<RegoValue> b)
    {
        var da = Dedupe(a);
        var db = Dedupe(b);
        if (da.Count != db.Count) return false;
        var used = new bool[db.Count];
        foreach (var x in da)
        {
            int j = -1;
            for (int i = 0; i < db.Count; i++) if (!used[i] && DeepEqual(x, db[i])) { j = i; break; }
            if (j < 0) return false;
            used[j] = true;
        }
        return true;
    }

    private static List<RegoValue> Dedupe(List<RegoValue> xs)
    {
        var r = new List<RegoValue>();
        foreach (var x in xs) if (!r.Any(y => DeepEqual(x, y))) r.Add(x);
        return r;
    }

    /// <summary>
    /// Equality as OPA's test harness has it: JSON numbers are equal when their values are
    /// (<c>1 == 1.0</c>), exactly — no tolerance, so an answer off in its last digit fails.
    /// </summary>
    public static bool DeepEqual(RegoValue a, RegoValue b)
    {
        switch (a, b)
        {
            case (RegoNumber x, RegoNumber y):
                return RegoNumber.Compare(x, y) == 0;
            case (RegoArray x, RegoArray y):
                if (x.Count != y.Count) return false;
                for (int i = 0; i < x.Count; i++) if (!DeepEqual(x[i], y[i])) return false;
                return true;
            case (RegoObject x, RegoObject y):
                if (x.Count != y.Count) return false;
                foreach (var kv in x.Pairs)
                {
                    if (!y.TryGetValue(kv.Key, out var yv) || !DeepEqual(kv.Value, yv)) return false;
                }
                return true;
            default:
                return a.Equals(b);
        }
    }

    private static string Show(IEnumerable<RegoValue> rows) => "[" + string.Join(", ", rows.Select(r => r.ToJson())) + "]";

    private static string Show(IReadOnlyList<IReadOnlyDictionary<string, RegoValue>> rows) =>
        Show(rows.Select(b => (RegoValue)RegoObject.From(b.Select(kv => new KeyValuePair<RegoValue, RegoValue>(RegoValue.From(kv.Key), kv.Value)))));
}
