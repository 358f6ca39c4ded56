namespace EnvoyAuthz.Rego.Builtins;

/// <summary>object.* builtins.</summary>
internal static class Objects
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "object.get", 3, (_, a) =>
        {
            var o = Arg.Obj("object.get", a, 0);
            if (a[1] is RegoArray path)
            {
                RegoValue cur = o;
                foreach (var k in path.Items)
                {
                    RegoValue? next = cur switch
                    {
                        RegoObject co => co.TryGetValue(k, out var v) ? v : null,
                        RegoArray ca => k is RegoNumber n && n.TryGetInt64(out var i) && i >= 0 && i < ca.Count ? ca.Items[i] : null,
                        RegoSet cs => cs.Contains(k) ? k : null,
                        _ => null,
                    };
                    if (next is null) return a[2];
                    cur = next;
                }
                return cur;
            }
            return o.TryGetValue(a[1], out var val) ? val : a[2];
        });
        BuiltinRegistry.Add(r, "object.keys", 1, (_, a) => RegoSet.FromUnsorted([.. Arg.Obj("object.keys", a, 0).Keys]));
        BuiltinRegistry.Add(r, "object.remove", 2, (_, a) =>
        {
            var o = Arg.Obj("object.remove", a, 0);
            var keys = KeySet("object.remove", a, 1);
            var b = new RegoObject.Builder();
            foreach (var kv in o.Pairs) if (!keys.Contains(kv.Key)) b.Add(kv.Key, kv.Value);
            return b.Build();
        });
        BuiltinRegistry.Add(r, "object.filter", 2, (_, a) =>
        {
            var o = Arg.Obj("object.filter", a, 0);
            var keys = KeySet("object.filter", a, 1);
            var b = new RegoObject.Builder();
            foreach (var kv in o.Pairs) if (keys.Contains(kv.Key)) b.Add(kv.Key, kv.Value);
            return b.Build();
        });
        BuiltinRegistry.Add(r, "object.union", 2, (_, a) => Union(Arg.Obj("object.union", a, 0), Arg.Obj("object.union", a, 1)));
        BuiltinRegistry.Add(r, "object.union_n", 1, (_, a) =>
        {
            var arr = Arg.Arr("object.union_n", a, 0);
            RegoObject acc = RegoObject.Empty;
            foreach (var x in arr.Items) acc = Union(acc, x as RegoObject ?? throw BuiltinException.TypeMsg("object.union_n", "operand 1 must be array of objects but got array containing " + x.TypeName));
            return acc;
        });
        BuiltinRegistry.Add(r, "object.subset", 2, (_, a) =>
        {
            if (a[0] is not (RegoObject or RegoArray or RegoSet)) throw BuiltinException.Type("object.subset", 1, "one of {array, object, set}", a[0]);
            if (a[1] is not (RegoObject or RegoArray or RegoSet)) throw BuiltinException.Type("object.subset", 2, "one of {array, object, set}", a[1]);
            return Arg.B(Subset(a[0], a[1]));
        });
    }

    private static HashSet<RegoValue> KeySet(string fn, RegoValue[] a, int i) => a[i] switch
    {
        RegoArray arr => new HashSet<RegoValue>(arr.Items),
        RegoSet s => new HashSet<RegoValue>(s.Items),
        RegoObject o => new HashSet<RegoValue>(o.Keys),
        _ => throw BuiltinException.Type(fn, i + 1, "one of {object, set, array}", a[i]),
    };

    internal static RegoObject Union(RegoObject a, RegoObject b)
    {
        var builder = new RegoObject.Builder(a.Count + b.Count);
        foreach (var kv in a.Pairs)
        {
            if (b.TryGetValue(kv.Key, out var bv))
            {
                if (kv.Value is RegoObject ao && bv is RegoObject bo) builder.Add(kv.Key, Union(ao, bo));
                else builder.Add(kv.Key, bv);
            }
            else builder.Add(kv.Key, kv.Value);
        }
        foreach (var kv in b.Pairs) if (!a.TryGetValue(kv.Key, out _)) builder.Add(kv.Key, kv.Value);
        return builder.Build();
    }

    private static bool Subset(RegoValue super, RegoValue sub)
    {
        switch (super, sub)
        {
            case (RegoObject so, RegoObject bo):
                foreach (var kv in bo.Pairs)
                {
                    if (!so.TryGetValue(kv.Key, out var sv)) return false;
                    if (sv is RegoObject && kv.Value is RegoObject) { if (!Subset(sv, kv.Value)) return false; }
                    else if (sv is RegoSet && kv.Value is RegoSet) { if (!Subset(sv, kv.Value)) return false; }
                    else if (sv is RegoArray && kv.Value is RegoArray) { if (!Subset(sv, kv.Value)) return false; }
                    else if (!sv.Equals(kv.Value)) return false;
                }
                return true;
            case (RegoSet ss, RegoSet bs):
                return bs.Items.All(ss.Contains);
            case (RegoArray sa, RegoArray ba):
                if (ba.Count == 0) return true;
                for (int i = 0; i + ba.Count <= sa.Count; i++)
                {
                    bool ok = true;
                    for (int j = 0; j < ba.Count; j++) if (!sa.Items[i + j].Equals(ba.Items[j])) { ok = false; break; }
                    if (ok) return true;
                }
                return false;
            case (RegoSet ss2, RegoArray ba2):
                return ba2.Items.All(ss2.Contains);
            case (RegoArray sa3, RegoSet bs3):
                return bs3.Items.All(x => sa3.Items.Contains(x));
        }
        return false;
    }
}
