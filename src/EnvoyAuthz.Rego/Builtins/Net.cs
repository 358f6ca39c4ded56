using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>net.cidr_* builtins.</summary>
internal static class Net
{
    private readonly record struct Range(bool V6, BigInteger Start, BigInteger End);

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "net.cidr_contains", 2, (_, a) =>
        {
            var outer = Cidr("net.cidr_contains", Arg.Str("net.cidr_contains", a, 0));
            var inner = CidrOrIp("net.cidr_contains", Arg.Str("net.cidr_contains", a, 1));
            return Arg.B(Contains(outer, inner));
        });
        BuiltinRegistry.Add(r, "net.cidr_overlap", 2, (_, a) =>
        {
            var outer = Cidr("net.cidr_overlap", Arg.Str("net.cidr_overlap", a, 0));
            var inner = CidrOrIp("net.cidr_overlap", Arg.Str("net.cidr_overlap", a, 1));
            return Arg.B(Contains(outer, inner));
        });
        BuiltinRegistry.Add(r, "net.cidr_intersects", 2, (_, a) =>
        {
            var x = Cidr("net.cidr_intersects", Arg.Str("net.cidr_intersects", a, 0));
            var y = Cidr("net.cidr_intersects", Arg.Str("net.cidr_intersects", a, 1));
            return Arg.B(x.V6 == y.V6 && x.Start <= y.End && y.Start <= x.End);
        });
        BuiltinRegistry.Add(r, "net.cidr_is_valid", 1, (_, a) => Arg.B(a[0] is RegoString s && TryCidr(s.Value, out var _)));
        BuiltinRegistry.Add(r, "net.cidr_expand", 1, (c, a) =>
        {
            var s = Arg.Str("net.cidr_expand", a, 0);
            if (!TryCidr(s, out var range)) throw BuiltinException.Error("net.cidr_expand", $"invalid CIDR address: {s}");
            if (range.End - range.Start > 1 << 20) throw BuiltinException.Error("net.cidr_expand", "CIDR range too large");
            var list = new List<RegoValue>();
            for (var i = range.Start; i <= range.End; i++) list.Add(Arg.S(ToIp(range.V6, i).ToString()));
            return new RegoArray(list.ToArray());
        });
        BuiltinRegistry.Add(r, "net.cidr_merge", 1, (_, a) =>
        {
            const string fn = "net.cidr_merge";
            var items = Arg.Collection(fn, a, 0, "one of {array, set}");
            var ranges = new List<Range>();
            foreach (var it in items)
            {
                if (it is not RegoString s) throw BuiltinException.TypeMsg(fn, "operand 1 must be array of strings");
                if (TryCidr(s.Value, out var rg)) { ranges.Add(rg); continue; }
                if (IPAddress.TryParse(s.Value, out var ip) && !s.Value.Contains('/'))
                {
                    if (ip.AddressFamily == AddressFamily.InterNetworkV6) throw BuiltinException.Error(fn, "IPv6 invalid: needs prefix length");
                    var b = ip.GetAddressBytes();
                    int prefix = b[0] < 128 ? 8 : b[0] < 192 ? 16 : 24;
                    ranges.Add(MakeRange(false, ToInt(b), prefix));
                    continue;
                }
                throw BuiltinException.Error(fn, $"invalid CIDR address: {s.Value}");
            }
            var result = new List<RegoValue>();
            foreach (var v6 in new[] { false, true })
            {
                var rs = ranges.Where(x => x.V6 == v6).OrderBy(x => x.Start).ToList();
                var merged = new List<(BigInteger S, BigInteger E)>();
                foreach (var x in rs)
                {
                    if (merged.Count > 0 && x.Start <= merged[^1].E + 1) merged[^1] = (merged[^1].S, BigInteger.Max(merged[^1].E, x.End));
                    else merged.Add((x.Start, x.End));
                }
                int bits = v6 ? 128 : 32;
                foreach (var (s0, e0) in merged)
                {
                    var s = s0;
                    while (s <= e0)
                    {
                        int size = 0;
                        while (size < bits && (s & ((BigInteger.One << (size + 1)) - 1)).IsZero && s + (BigInteger.One << (size + 1)) - 1 <= e0) size++;
                        result.Add(Arg.S($"{ToIp(v6, s)}/{bits - size}"));
                        s += BigInteger.One << size;
                    }
                }
            }
            return new RegoArray(result.ToArray());
        });
        BuiltinRegistry.Add(r, "net.cidr_contains_matches", 2, (_, a) =>
        {
            const string fn = "net.cidr_contains_matches";
            var cidrs = Entries(fn, a[0], 1);
            var targets = Entries(fn, a[1], 2);
            var result = new List<RegoValue>();
            foreach (var (ck, cv) in cidrs)
            {
                var outer = Cidr(fn, cv);
                foreach (var (tk, tv) in targets)
                    if (Contains(outer, CidrOrIp(fn, tv))) result.Add(new RegoArray([ck, tk]));
            }
            return RegoSet.FromUnsorted(result);
        });
    }

    private static List<(RegoValue Key, string Value)> Entries(string fn, RegoValue v, int operand)
    {
        var list = new List<(RegoValue, string)>();
        string Elem(RegoValue e) => e switch
        {
            RegoString s => s.Value,
            RegoArray { Count: > 0 } arr when arr[0] is RegoString s0 => s0.Value,
            _ => throw BuiltinException.Error(fn, $"operand {operand}: element must be string or non-empty array"),
        };
        switch (v)
        {
            case RegoString s: list.Add((s, s.Value)); break;
            case RegoArray arr: for (int i = 0; i < arr.Count; i++) list.Add((RegoNumber.FromInt64(i), Elem(arr[i]))); break;
            case RegoSet set: foreach (var e in set.Items) list.Add((e, Elem(e))); break;
            case RegoObject o: foreach (var kv in o.Pairs) list.Add((kv.Key, Elem(kv.Value))); break;
            default: throw BuiltinException.Type(fn, operand, "one of {string, array, set, object}", v);
        }
        return list;
    }

    private static bool Contains(Range outer, Range inner) => outer.V6 == inner.V6 && outer.Start <= inner.Start && inner.End <= outer.End;

    private static Range Cidr(string fn, string s) =>
        TryCidr(s, out var r) ? r : throw BuiltinException.Error(fn, $"invalid CIDR address: {s}");

    private static Range CidrOrIp(string fn, string s)
    {
        if (TryCidr(s, out var r)) return r;
        if (!s.Contains('/') && IPAddress.TryParse(s, out var ip))
        {
            var b = ip.GetAddressBytes();
            bool v6 = ip.AddressFamily == AddressFamily.InterNetworkV6;
            return MakeRange(v6, ToInt(b), v6 ? 128 : 32);
        }
        throw BuiltinException.Error(fn, $"invalid CIDR address: {s}");
    }

    private static bool TryCidr(string s, out Range r)
    {
        r = default;
        int slash = s.IndexOf('/');
        if (slash <= 0) return false;
        var ipText = s[..slash];
        if (!int.TryParse(s.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int prefix)) return false;
        if (!IPAddress.TryParse(ipText, out var ip)) return false;
        bool v6 = ip.AddressFamily == AddressFamily.InterNetworkV6;
        if (!v6 && ipText.Count(c => c == '.') != 3) return false;
        if (prefix > (v6 ? 128 : 32)) return false;
        r = MakeRange(v6, ToInt(ip.GetAddressBytes()), prefix);
        return true;
    }

    private static Range MakeRange(bool v6, BigInteger addr, int prefix)
    {
        int bits = v6 ? 128 : 32;
        var hostMask = (BigInteger.One << (bits - prefix)) - 1;
        var start = addr & ~hostMask & ((BigInteger.One << bits) - 1);
        return new Range(v6, start, start | hostMask);
    }

    private static BigInteger ToInt(byte[] b) => new(b, isUnsigned: true, isBigEndian: true);

    private static IPAddress ToIp(bool v6, BigInteger v)
    {
        var bytes = v.ToByteArray(isUnsigned: true, isBigEndian: true);
        var full = new byte[v6 ? 16 : 4];
        Array.Copy(bytes, 0, full, full.Length - bytes.Length, bytes.Length);
        return new IPAddress(full);
    }
}
