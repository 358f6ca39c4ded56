using System.Numerics;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>Arithmetic: plus, minus, mul, div, rem, abs, round, ceil, floor, numbers.range.</summary>
internal static class Arithmetic
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "plus", 2, (_, a) => RegoNumber.Add(Arg.Num("plus", a, 0), Arg.Num("plus", a, 1)));
        BuiltinRegistry.Add(r, "minus", 2, (_, a) =>
        {
            if (a[0] is RegoSet s1 && a[1] is RegoSet s2) return RegoSet.FromUnsorted(s1.Items.Where(x => !s2.Contains(x)).ToList());
            if (a[0] is RegoNumber n1 && a[1] is RegoNumber n2) return RegoNumber.Subtract(n1, n2);
            if (a[0] is not RegoNumber and not RegoSet) throw BuiltinException.Type("minus", 1, "one of {number, set}", a[0]);
            throw BuiltinException.Type("minus", 2, a[0] is RegoNumber ? "number" : "set", a[1]);
        });
        BuiltinRegistry.Add(r, "mul", 2, (_, a) => RegoNumber.Multiply(Arg.Num("mul", a, 0), Arg.Num("mul", a, 1)));
        BuiltinRegistry.Add(r, "div", 2, (_, a) =>
        {
            var x = Arg.Num("div", a, 0);
            var y = Arg.Num("div", a, 1);
            return RegoNumber.Divide(x, y) ?? throw BuiltinException.Error("div", "divide by zero");
        });
        BuiltinRegistry.Add(r, "rem", 2, (_, a) =>
        {
            var x = Arg.Num("rem", a, 0);
            var y = Arg.Num("rem", a, 1);
            if (!x.IsInteger || !y.IsInteger) throw BuiltinException.Error("rem", "modulo on floating-point number");
            x.TryGetBigInteger(out var bx);
            y.TryGetBigInteger(out var by);
            if (by.IsZero) throw BuiltinException.Error("rem", "modulo by zero");
            return RegoNumber.FromBigInteger(BigInteger.Remainder(bx, by));
        });
        BuiltinRegistry.Add(r, "abs", 1, (_, a) => RegoNumber.Abs(Arg.Num("abs", a, 0)));
        BuiltinRegistry.Add(r, "round", 1, (_, a) => RegoNumber.Round(Arg.Num("round", a, 0)));
        BuiltinRegistry.Add(r, "ceil", 1, (_, a) => RegoNumber.Ceiling(Arg.Num("ceil", a, 0)));
        BuiltinRegistry.Add(r, "floor", 1, (_, a) => RegoNumber.Floor(Arg.Num("floor", a, 0)));
        BuiltinRegistry.Add(r, "numbers.range", 2, (c, a) => Range("numbers.range", c, Arg.Num("numbers.range", a, 0), Arg.Num("numbers.range", a, 1), RegoNumber.One));
        BuiltinRegistry.Add(r, "numbers.range_step", 3, (c, a) =>
        {
            var step = Arg.Num("numbers.range_step", a, 2);
            if (!step.IsInteger) throw BuiltinException.Error("numbers.range_step", "step must be a positive integer");
            if (step.Sign <= 0) throw BuiltinException.Error("numbers.range_step", "step must be a positive integer");
            return Range("numbers.range_step", c, Arg.Num("numbers.range_step", a, 0), Arg.Num("numbers.range_step", a, 1), step);
        });
    }

    private static RegoValue Range(string fn, BuiltinContext c, RegoNumber a, RegoNumber b, RegoNumber step)
    {
        if (!a.IsInteger) throw BuiltinException.TypeMsg(fn, "operand 1 must be integer number but got floating-point number");
        if (!b.IsInteger) throw BuiltinException.TypeMsg(fn, "operand 2 must be integer number but got floating-point number");
        a.TryGetBigInteger(out var x);
        b.TryGetBigInteger(out var y);
        step.TryGetBigInteger(out var s);
        if (BigInteger.Abs(y - x) / s > 1_000_000) throw BuiltinException.Error(fn, "range too large (more than 1000000 elements)");
        var list = new List<RegoValue>();
        if (x <= y) for (var i = x; i <= y; i += s) { list.Add(RegoNumber.FromBigInteger(i)); if ((list.Count & 4095) == 0) c.CancellationToken.ThrowIfCancellationRequested(); }
        else for (var i = x; i >= y; i -= s) list.Add(RegoNumber.FromBigInteger(i));
        return new RegoArray(list.ToArray());
    }
}
