namespace EnvoyAuthz.Rego.Builtins;

/// <summary>Comparison and membership operators.</summary>
internal static class Comparison
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "equal", 2, (_, a) => Arg.B(a[0].Equals(a[1])));
        BuiltinRegistry.Add(r, "neq", 2, (_, a) => Arg.B(!a[0].Equals(a[1])));
        BuiltinRegistry.Add(r, "lt", 2, (_, a) => Arg.B(a[0].CompareTo(a[1]) < 0));
        BuiltinRegistry.Add(r, "lte", 2, (_, a) => Arg.B(a[0].CompareTo(a[1]) <= 0));
        BuiltinRegistry.Add(r, "gt", 2, (_, a) => Arg.B(a[0].CompareTo(a[1]) > 0));
        BuiltinRegistry.Add(r, "gte", 2, (_, a) => Arg.B(a[0].CompareTo(a[1]) >= 0));
        BuiltinRegistry.Add(r, "internal.member_2", 2, (_, a) => Arg.B(Member(a[0], a[1])));
        BuiltinRegistry.Add(r, "internal.member_3", 3, (_, a) => Arg.B(Member3(a[0], a[1], a[2])));
    }

    private static bool Member(RegoValue x, RegoValue coll)
    {
        switch (coll)
        {
            case RegoArray arr:
                foreach (var e in arr.Items) if (e.Equals(x)) return true;
                return false;
            case RegoSet s: return s.Contains(x);
            case RegoObject o:
                foreach (var v in o.Values) if (v.Equals(x)) return true;
                return false;
        }
        return false;
    }

    private static bool Member3(RegoValue k, RegoValue v, RegoValue coll)
    {
        switch (coll)
        {
            case RegoArray arr:
                return k is RegoNumber n && n.TryGetInt64(out long i) && i >= 0 && i < arr.Count && arr.Items[i].Equals(v);
            case RegoObject o:
                return o.TryGetValue(k, out var ov) && ov.Equals(v);
            case RegoSet s:
                return k.Equals(v) && s.Contains(k);
        }
        return false;
    }
}
