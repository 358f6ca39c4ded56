using System.Globalization;
using System.Security.Cryptography;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>uuid.rfc4122, uuid.parse and rand.intn (stable per key within one evaluation).</summary>
internal static class Uuid
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "uuid.rfc4122", 1, (c, a) =>
        {
            var key = ("uuid.rfc4122", Arg.Str("uuid.rfc4122", a, 0));
            if (c.Cache.TryGetValue(key, out var v)) return (RegoValue)v;
            var g = Arg.S(Guid.NewGuid().ToString());
            c.Cache[key] = g;
            return g;
        }, nondeterministic: true);
        BuiltinRegistry.Add(r, "rand.intn", 2, (c, a) =>
        {
            var name = Arg.Str("rand.intn", a, 0);
            var n = Arg.Int("rand.intn", a, 1);
            var key = ("rand.intn", name, n);
            if (c.Cache.TryGetValue(key, out var v)) return (RegoValue)v;
            var x = Arg.N(n == 0 ? 0 : RandomNumberGenerator.GetInt32(Math.Abs(n)));
            c.Cache[key] = x;
            return x;
        }, nondeterministic: true);
        BuiltinRegistry.Add(r, "uuid.parse", 1, (_, a) => Parse(Arg.Str("uuid.parse", a, 0)));
    }

    private static RegoValue? Parse(string s)
    {
        var t = s;
        if (t.StartsWith("urn:uuid:", StringComparison.OrdinalIgnoreCase)) t = t[9..];
        if (t.StartsWith('{') && t.EndsWith('}')) t = t[1..^1];
        if (t.Length == 36)
        {
            if (t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-') return null;
            t = t.Replace("-", "", StringComparison.Ordinal);
        }
        if (t.Length != 32 || !t.All(char.IsAsciiHexDigit)) return null;
        var b = Convert.FromHexString(t);
        int version = b[6] >> 4;
        string variant = (b[8] & 0xc0) == 0x80 ? "RFC4122" : (b[8] & 0xe0) == 0xc0 ? "Microsoft" : (b[8] & 0x80) == 0 ? "Reserved" : "Future";
        var o = new RegoObject.Builder();
        o.Add("version", Arg.N(version)).Add("variant", Arg.S(variant));
        if (version is 1 or 2)
        {
            // 100 ns ticks since 1582-10-15 from time_hi, time_mid and time_low, for version 2 as
            // well (as OPA reads it, although DCE security UUIDs put the local id in time_low);
            // int64 arithmetic wraps as Go's does.
            long time = ((long)(((b[6] & 0x0f) << 8) | b[7]) << 48) | ((long)((b[4] << 8) | b[5]) << 32)
                | (uint)((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]);
            const long g1582 = 122192928000000000;
            o.Add("time", Arg.N(unchecked((time - g1582) * 100)));
            o.Add("clocksequence", Arg.N(((b[8] << 8) | b[9]) & 0x3fff));
            o.Add("nodeid", Arg.S(string.Join("-", b[10..16].Select(x => x.ToString("x2", CultureInfo.InvariantCulture)))));
            o.Add("macvariables", Arg.S(((b[10] & 2) == 0 ? "global" : "local") + ":" + ((b[10] & 1) == 0 ? "unicast" : "multicast")));
            if (version == 2)
            {
                o.Add("domain", Arg.S(b[9] switch { 0 => "Person", 1 => "Group", 2 => "Org", _ => "Domain" + b[9].ToString(CultureInfo.InvariantCulture) }));
                o.Add("id", Arg.N((uint)((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3])));
            }
        }
        return o.Build();
    }
}
