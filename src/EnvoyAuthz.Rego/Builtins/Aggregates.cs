using System.Globalization;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>count, sum, product, max, min, sort, all, any.</summary>
internal static class Aggregates
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "count", 1, (_, a) => a[0] switch
        {
            RegoString s => Arg.N(new StringInfo(s.Value).LengthInTextElements == s.Value.Length ? s.Value.Length : s.Value.EnumerateRunes().Count()),
            RegoArray x => Arg.N(x.Count),
            RegoSet x => Arg.N(x.Count),
            RegoObject x => Arg.N(x.Count),
            _ => throw BuiltinException.Type("count", 1, "one of {array, object, set, string}", a[0]),
        });
        BuiltinRegistry.Add(r, "sum", 1, (_, a) =>
        {
            RegoNumber acc = RegoNumber.Zero;
            foreach (var v in Arg.Collection("sum", a, 0)) acc = RegoNumber.Add(acc, v as RegoNumber ?? throw BuiltinException.TypeMsg("sum", "operand 1 must be array of numbers or set of numbers but got " + a[0].TypeName + " containing " + v.TypeName));
            return acc;
        });
        BuiltinRegistry.Add(r, "product", 1, (_, a) =>
        {
            RegoNumber acc = RegoNumber.One;
            foreach (var v in Arg.Collection("product", a, 0)) acc = RegoNumber.Multiply(acc, v as RegoNumber ?? throw BuiltinException.TypeMsg("product", "operand 1 must be array of numbers or set of numbers"));
            return acc;
        });
        BuiltinRegistry.Add(r, "max", 1, (_, a) =>
        {
            var items = Arg.Collection("max", a, 0);
            if (items.Length == 0) return null;
            var m = items[0];
            foreach (var v in items) if (v.CompareTo(m) > 0) m = v;
            return m;
        });
        BuiltinRegistry.Add(r, "min", 1, (_, a) =>
        {
            var items = Arg.Collection("min", a, 0);
            if (items.Length == 0) return null;
            var m = items[0];
            foreach (var v in items) if (v.CompareTo(m) < 0) m = v;
            return m;
        });
        BuiltinRegistry.Add(r, "sort", 1, (_, a) =>
        {
            var items = (RegoValue[])Arg.Collection("sort", a, 0).Clone();
            Array.Sort(items, static (x, y) => x.CompareTo(y));
            return new RegoArray(items);
        });
        BuiltinRegistry.Add(r, "all", 1, (_, a) => Arg.B(Arg.Collection("all", a, 0).All(v => v is RegoBoolean { Value: true })));
        BuiltinRegistry.Add(r, "any", 1, (_, a) => Arg.B(Arg.Collection("any", a, 0).Any(v => v is RegoBoolean { Value: true })));
    }
}
