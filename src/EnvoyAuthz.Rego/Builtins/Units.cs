using System.Numerics;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>units.parse and units.parse_bytes.</summary>
internal static class Units
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "units.parse_bytes", 1, (_, a) =>
        {
            const string fn = "units.parse_bytes";
            var raw = Arg.Str(fn, a, 0).Replace("\"", "", StringComparison.Ordinal).ToLowerInvariant();
            if (raw.Contains(' ')) throw BuiltinException.Error(fn, "spaces not allowed in resource strings");
            var (num, unit) = Split(raw);
            if (num.Length == 0) throw BuiltinException.Error(fn, "no byte amount provided");
            RegoNumber mult = unit switch
            {
                "" or "b" => RegoNumber.One,
                "kb" or "k" => Pow10(3),
                "kib" or "ki" => Pow2(10),
                "mb" or "m" => Pow10(6),
                "mib" or "mi" => Pow2(20),
                "gb" or "g" => Pow10(9),
                "gib" or "gi" => Pow2(30),
                "tb" or "t" => Pow10(12),
                "tib" or "ti" => Pow2(40),
                "pb" or "p" => Pow10(15),
                "pib" or "pi" => Pow2(50),
                "eb" or "e" => Pow10(18),
                "eib" or "ei" => Pow2(60),
                _ => throw BuiltinException.Error(fn, $"byte unit {unit} not recognized"),
            };
            if (!RegoNumber.TryParse(num, out var n)) throw BuiltinException.Error(fn, "could not parse byte amount to a number");
            return RegoNumber.Truncate(RegoNumber.Multiply(n, mult));
        });
        BuiltinRegistry.Add(r, "units.parse", 1, (_, a) =>
        {
            const string fn = "units.parse";
            var raw = Arg.Str(fn, a, 0).Replace("\"", "", StringComparison.Ordinal);
            if (raw.Contains(' ')) throw BuiltinException.Error(fn, "spaces not allowed in resource strings");
            var (num, unit) = Split(raw);
            if (num.Length == 0) throw BuiltinException.Error(fn, "no amount provided");
            if (unit.Length > 1) unit = unit[..1] + unit[1..].ToLowerInvariant();
            RegoNumber mult = unit switch
            {
                "" => RegoNumber.One,
                "m" => RegoNumber.FromParts(1, -3),
                "k" or "K" => Pow10(3),
                "ki" or "Ki" => Pow2(10),
                "M" => Pow10(6),
                "mi" or "Mi" => Pow2(20),
                "g" or "G" => Pow10(9),
                "gi" or "Gi" => Pow2(30),
                "t" or "T" => Pow10(12),
                "ti" or "Ti" => Pow2(40),
                "p" or "P" => Pow10(15),
                "pi" or "Pi" => Pow2(50),
                "e" or "E" => Pow10(18),
                "ei" or "Ei" => Pow2(60),
                _ => throw BuiltinException.Error(fn, $"unit {unit} not recognized"),
            };
            if (!RegoNumber.TryParse(num, out var n)) throw BuiltinException.Error(fn, "could not parse amount to a number");
            return RegoNumber.Multiply(n, mult);
        });
    }

    private static RegoNumber Pow10(int e) => RegoNumber.FromParts(1, e);
    private static RegoNumber Pow2(int e) => RegoNumber.FromBigInteger(BigInteger.One << e);

    /// <summary>Splits "3.2E2MiB" into number "3.2E2" and unit "MiB" (an e followed by a digit or sign is an exponent).</summary>
    private static (string Num, string Unit) Split(string s)
    {
        int i = 0;
        if (s.StartsWith('-') || s.StartsWith('+')) i = 1;
        while (i < s.Length)
        {
            char c = s[i];
            if (char.IsAsciiDigit(c) || c == '.') { i++; continue; }
            if ((c == 'e' || c == 'E') && i > 0 && char.IsAsciiDigit(s[i - 1]) && i + 1 < s.Length && (char.IsAsciiDigit(s[i + 1]) || ((s[i + 1] == '+' || s[i + 1] == '-') && i + 2 < s.Length && char.IsAsciiDigit(s[i + 2]))))
            {
                i += 2;
                continue;
            }
            break;
        }
        return (s[..i], s[i..]);
    }
}
