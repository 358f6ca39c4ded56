namespace EnvoyAuthz.Rego.Builtins;

/// <summary>Set and array helpers.</summary>
internal static class Collections
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "and", 2, (_, a) =>
        {
            var x = Arg.Set("and", a, 0);
            var y = Arg.Set("and", a, 1);
            return RegoSet.FromUnsorted(x.Items.Where(y.Contains).ToList());
        });
        BuiltinRegistry.Add(r, "or", 2, (_, a) =>
        {
            var x = Arg.Set("or", a, 0);
            var y = Arg.Set("or", a, 1);
            return RegoSet.FromUnsorted([.. x.Items, .. y.Items]);
        });
        BuiltinRegistry.Add(r, "intersection", 1, (_, a) =>
        {
            var sets = Arg.Set("intersection", a, 0);
            if (sets.Count == 0) return RegoSet.Empty;
            RegoSet? acc = null;
            foreach (var s in sets.Items)
            {
                var ss = s as RegoSet ?? throw BuiltinException.TypeMsg("intersection", "operand 1 must be set of sets but got set containing " + s.TypeName);
                acc = acc is null ? ss : RegoSet.FromUnsorted(acc.Items.Where(ss.Contains).ToList());
            }
            return acc;
        });
        BuiltinRegistry.Add(r, "union", 1, (_, a) =>
        {
            var sets = Arg.Set("union", a, 0);
            var all = new List<RegoValue>();
            foreach (var s in sets.Items)
                all.AddRange((s as RegoSet ?? throw BuiltinException.TypeMsg("union", "operand 1 must be set of sets but got set containing " + s.TypeName)).Items);
            return RegoSet.FromUnsorted(all);
        });
        BuiltinRegistry.Add(r, "array.concat", 2, (_, a) => new RegoArray([.. Arg.Arr("array.concat", a, 0).Items, .. Arg.Arr("array.concat", a, 1).Items]));
        BuiltinRegistry.Add(r, "array.slice", 3, (_, a) =>
        {
            var arr = Arg.Arr("array.slice", a, 0);
            var s = Arg.Num("array.slice", a, 1);
            var e = Arg.Num("array.slice", a, 2);
            if (!s.IsInteger) throw BuiltinException.TypeMsg("array.slice", "operand 2 must be integer number but got floating-point number");
            if (!e.IsInteger) throw BuiltinException.TypeMsg("array.slice", "operand 3 must be integer number but got floating-point number");
            long start = s.TryGetInt64(out var sv) ? sv : (s.Sign < 0 ? long.MinValue : long.MaxValue);
            long stop = e.TryGetInt64(out var ev) ? ev : (e.Sign < 0 ? long.MinValue : long.MaxValue);
            if (start < 0) start = 0;
            if (stop > arr.Count) stop = arr.Count;
            if (start >= stop) return RegoArray.Empty;
            return new RegoArray(arr.Items[(int)start..(int)stop]);
        });
        BuiltinRegistry.Add(r, "array.reverse", 1, (_, a) =>
        {
            var items = (RegoValue[])Arg.Arr("array.reverse", a, 0).Items.Clone();
            Array.Reverse(items);
            return new RegoArray(items);
        });
        BuiltinRegistry.Add(r, "array.flatten", 1, (_, a) =>
        {
            var list = new List<RegoValue>();
            foreach (var i in Arg.Arr("array.flatten", a, 0).Items)
            {
                if (i is RegoArray ia) list.AddRange(ia.Items);
                else list.Add(i);
            }
            return new RegoArray(list.ToArray());
        });
    }
}
