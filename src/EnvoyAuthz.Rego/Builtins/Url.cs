using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>urlquery.* builtins (Go net/url query escaping).</summary>
internal static class Url
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "urlquery.encode", 1, (_, a) => Arg.S(Escape(Arg.Str("urlquery.encode", a, 0))));
        BuiltinRegistry.Add(r, "urlquery.decode", 1, (_, a) => Arg.S(Unescape("urlquery.decode", Arg.Str("urlquery.decode", a, 0))));
        BuiltinRegistry.Add(r, "urlquery.encode_object", 1, (_, a) =>
        {
            const string fn = "urlquery.encode_object";
            var o = Arg.Obj(fn, a, 0);
            var parts = new List<(string K, string V)>();
            foreach (var kv in o.Pairs)
            {
                var k = (kv.Key as RegoString)?.Value ?? throw BuiltinException.TypeMsg(fn, "operand 1 must be object[string: any<string, array[string], set[string]>]");
                IEnumerable<RegoValue> vals = kv.Value switch
                {
                    RegoString s => [s],
                    RegoArray arr => arr.Items,
                    RegoSet set => set.Items,
                    _ => throw BuiltinException.TypeMsg(fn, "operand 1 must be object[string: any<string, array[string], set[string]>]"),
                };
                foreach (var v in vals) parts.Add((k, (v as RegoString)?.Value ?? throw BuiltinException.TypeMsg(fn, "operand 1 must contain strings")));
            }
            return Arg.S(string.Join("&", parts.OrderBy(p => p.K, StringComparer.Ordinal).Select(p => Escape(p.K) + "=" + Escape(p.V))));
        });
        BuiltinRegistry.Add(r, "urlquery.decode_object", 1, (_, a) =>
        {
            const string fn = "urlquery.decode_object";
            var s = Arg.Str(fn, a, 0);
            var map = new Dictionary<string, List<RegoValue>>(StringComparer.Ordinal);
            var order = new List<string>();
            foreach (var part in s.Split('&'))
            {
                if (part.Length == 0) continue;
                int eq = part.IndexOf('=');
                var k = Unescape(fn, eq < 0 ? part : part[..eq]);
                var v = eq < 0 ? "" : Unescape(fn, part[(eq + 1)..]);
                if (!map.TryGetValue(k, out var list)) { map[k] = list = []; order.Add(k); }
                list.Add(Arg.S(v));
            }
            var b = new RegoObject.Builder(map.Count);
            foreach (var k in order) b.Add(k, new RegoArray(map[k].ToArray()));
            return b.Build();
        });
    }

    internal static string Escape(string s) => Uri.EscapeDataString(s).Replace("%20", "+", StringComparison.Ordinal);

    private static string Unescape(string fn, string s)
    {
        var bytes = new List<byte>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '+') bytes.Add((byte)' ');
            else if (c == '%')
            {
                if (i + 2 >= s.Length || !char.IsAsciiHexDigit(s[i + 1]) || !char.IsAsciiHexDigit(s[i + 2]))
                    throw BuiltinException.Error(fn, $"invalid URL escape {Strings.Quote(s.Substring(i, Math.Min(3, s.Length - i)))}");
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
