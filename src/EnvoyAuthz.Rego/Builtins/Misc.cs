namespace EnvoyAuthz.Rego.Builtins;

/// <summary>walk, time.now_ns, print placeholder and other small builtins.</summary>
internal static class Misc
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "print", -1, (_, _) => RegoValue.True);
        BuiltinRegistry.Add(r, "time.now_ns", 0, (c, _) => RegoNumber.FromInt64(c.NowNs), nondeterministic: true);
        // walk is relational: it yields every [path, value] pair; the evaluator iterates the returned array
        BuiltinRegistry.Add(r, "walk", 1, (_, a) =>
        {
            var list = new List<RegoValue>();
            Walk(a[0], new List<RegoValue>(), list);
            return new RegoArray(list.ToArray());
        }, relation: true);
        BuiltinRegistry.Add(r, "opa.runtime", 0, (_, _) => RegoObject.Empty);
        BuiltinRegistry.Add(r, "trace", 1, (_, _) => RegoValue.True);
        // network access is not available to policies of this engine; the name exists so that `with http.send as ...` mocks work
        BuiltinRegistry.Add(r, "http.send", 1, (_, _) => throw BuiltinException.Error("http.send", "network access is disabled"), nondeterministic: true);
    }

    private static void Walk(RegoValue v, List<RegoValue> path, List<RegoValue> acc)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        acc.Add(new RegoArray([new RegoArray(path.ToArray()), v]));
        switch (v)
        {
            case RegoArray a:
                for (int i = 0; i < a.Count; i++) { path.Add(RegoNumber.FromInt64(i)); Walk(a.Items[i], path, acc); path.RemoveAt(path.Count - 1); }
                break;
            case RegoObject o:
                foreach (var kv in o.Pairs) { path.Add(kv.Key); Walk(kv.Value, path, acc); path.RemoveAt(path.Count - 1); }
                break;
            case RegoSet s:
                foreach (var x in s.Items) { path.Add(x); Walk(x, path, acc); path.RemoveAt(path.Count - 1); }
                break;
        }
    }
}
