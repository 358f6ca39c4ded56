namespace EnvoyAuthz.Rego.Builtins;

/// <summary>graph.reachable and graph.reachable_paths.</summary>
internal static class Graph
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "graph.reachable", 2, (c, a) =>
        {
            const string fn = "graph.reachable";
            var g = Arg.Obj(fn, a, 0);
            var queue = new Queue<RegoValue>(Arg.Collection(fn, a, 1));
            var seen = new HashSet<RegoValue>();
            var result = new List<RegoValue>();
            while (queue.Count > 0)
            {
                var n = queue.Dequeue();
                if (!seen.Add(n)) continue;
                if (!g.TryGetValue(n, out var edges)) continue;
                result.Add(n);
                foreach (var m in Edges(fn, edges)) if (!seen.Contains(m)) queue.Enqueue(m);
                if ((result.Count & 1023) == 0) c.CancellationToken.ThrowIfCancellationRequested();
            }
            return RegoSet.FromUnsorted(result);
        });
        BuiltinRegistry.Add(r, "graph.reachable_paths", 2, (c, a) =>
        {
            const string fn = "graph.reachable_paths";
            var g = Arg.Obj(fn, a, 0);
            var result = new List<RegoValue>();
            foreach (var start in Arg.Collection(fn, a, 1))
            {
                if (!g.TryGetValue(start, out _)) continue;
                Dfs(fn, g, start, [], new HashSet<RegoValue>(), result, c);
            }
            return RegoSet.FromUnsorted(result);
        });
    }

    private static void Dfs(string fn, RegoObject g, RegoValue node, List<RegoValue> path, HashSet<RegoValue> reached, List<RegoValue> acc, BuiltinContext c)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        c.CancellationToken.ThrowIfCancellationRequested();
        if (acc.Count > 100_000) throw BuiltinException.Error("graph.reachable_paths", "too many paths");
        path.Add(node);
        var next = g.TryGetValue(node, out var edges) ? Edges(fn, edges).Where(m => g.TryGetValue(m, out _)).ToArray() : [];
        if (next.Length == 0) acc.Add(new RegoArray(path.ToArray()));
        else
        {
            reached.Add(node);
            foreach (var m in next)
            {
                if (reached.Contains(m)) acc.Add(new RegoArray(path.ToArray()));
                else Dfs(fn, g, m, path, reached, acc, c);
            }
        }
        path.RemoveAt(path.Count - 1);
    }

    private static RegoValue[] Edges(string fn, RegoValue edges) => edges switch
    {
        RegoSet s => s.Items,
        RegoArray a => a.Items,
        RegoNull => [],
        _ => throw BuiltinException.TypeMsg(fn, "operand 1 must be object[any: any<array[any], set[any]>]"),
    };
}
