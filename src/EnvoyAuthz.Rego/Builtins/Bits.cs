using System.Numerics;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>bits.* builtins on arbitrary-precision integers.</summary>
internal static class Bits
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        Binary(r, "bits.and", (a, b) => a & b);
        Binary(r, "bits.or", (a, b) => a | b);
        Binary(r, "bits.xor", (a, b) => a ^ b);
        BuiltinRegistry.Add(r, "bits.negate", 1, (_, a) => RegoNumber.FromBigInteger(-Int("bits.negate", a, 0) - 1));
        Shift(r, "bits.lsh", (a, n) => a << n);
        Shift(r, "bits.rsh", (a, n) => a >> n);
    }

    private static BigInteger Int(string fn, RegoValue[] a, int i)
    {
        var n = Arg.Num(fn, a, i);
        if (!n.IsInteger || !n.TryGetBigInteger(out var v)) throw BuiltinException.TypeMsg(fn, $"operand {i + 1} must be integer number but got floating-point number");
        return v;
    }

    private static void Binary(Dictionary<string, BuiltinDef> r, string name, Func<BigInteger, BigInteger, BigInteger> op) =>
        BuiltinRegistry.Add(r, name, 2, (_, a) => RegoNumber.FromBigInteger(op(Int(name, a, 0), Int(name, a, 1))));

    private static void Shift(Dictionary<string, BuiltinDef> r, string name, Func<BigInteger, int, BigInteger> op) =>
        BuiltinRegistry.Add(r, name, 2, (_, a) =>
        {
            var x = Int(name, a, 0);
            var n = Int(name, a, 1);
            if (n.Sign < 0) throw BuiltinException.TypeMsg(name, "operand 2 must be an unsigned integer number but got a negative integer");
            if (n > 65536) throw BuiltinException.Error(name, "shift too large");
            return RegoNumber.FromBigInteger(op(x, (int)n));
        });
}
