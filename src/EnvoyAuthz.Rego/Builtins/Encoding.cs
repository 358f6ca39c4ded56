using System.Text;
using System.Text.Json;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>json.*, base64*, hex.* builtins.</summary>
internal static class EncodingBuiltins
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "json.marshal", 1, (_, a) => Arg.S(a[0].ToJson()));
        BuiltinRegistry.Add(r, "json.marshal_with_options", 2, (_, a) =>
        {
            const string fn = "json.marshal_with_options";
            var opts = Arg.Obj(fn, a, 1);
            bool pretty = false;
            bool prettySet = false;
            string indent = "\t", prefix = "";
            foreach (var kv in opts.Pairs)
            {
                switch ((kv.Key as RegoString)?.Value)
                {
                    case "pretty": pretty = kv.Value is RegoBoolean { Value: true }; prettySet = true; break;
                    case "indent": indent = (kv.Value as RegoString)?.Value ?? throw BuiltinException.TypeMsg(fn, "indent must be a string"); if (!prettySet) pretty = true; break;
                    case "prefix": prefix = (kv.Value as RegoString)?.Value ?? throw BuiltinException.TypeMsg(fn, "prefix must be a string"); if (!prettySet) pretty = true; break;
                    default: throw BuiltinException.TypeMsg(fn, $"object contained unknown key {kv.Key}");
                }
            }
            if (!pretty) return Arg.S(a[0].ToJson());
            var sb = new System.Text.StringBuilder(prefix);
            Pretty(sb, a[0], prefix, indent, 0);
            return Arg.S(sb.ToString());
        });
        BuiltinRegistry.Add(r, "json.unmarshal", 1, (_, a) =>
        {
            var s = Arg.Str("json.unmarshal", a, 0);
            try { return RegoJson.Parse(s); }
            catch (JsonException ex) { throw BuiltinException.Error("json.unmarshal", ex.Message); }
        });
        BuiltinRegistry.Add(r, "json.is_valid", 1, (_, a) => Arg.B(a[0] is RegoString s && RegoJson.TryParse(s.Value, out var _)));
        BuiltinRegistry.Add(r, "base64.encode", 1, (_, a) => Arg.S(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Arg.Str("base64.encode", a, 0)))));
        BuiltinRegistry.Add(r, "base64.decode", 1, (_, a) =>
        {
            var s = Arg.Str("base64.decode", a, 0);
            var bytes = DecodeBase64(s, url: false) ?? throw BuiltinException.Error("base64.decode", "illegal base64 data at input byte 0");
            return Arg.S(System.Text.Encoding.UTF8.GetString(bytes));
        });
        BuiltinRegistry.Add(r, "base64.is_valid", 1, (_, a) => Arg.B(DecodeBase64(Arg.Str("base64.is_valid", a, 0), url: false) is not null));
        BuiltinRegistry.Add(r, "base64url.encode", 1, (_, a) => Arg.S(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Arg.Str("base64url.encode", a, 0))).Replace('+', '-').Replace('/', '_')));
        BuiltinRegistry.Add(r, "base64url.encode_no_pad", 1, (_, a) => Arg.S(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Arg.Str("base64url.encode_no_pad", a, 0))).Replace('+', '-').Replace('/', '_').TrimEnd('=')));
        BuiltinRegistry.Add(r, "base64url.decode", 1, (_, a) =>
        {
            var s = Arg.Str("base64url.decode", a, 0);
            var bytes = DecodeBase64(s, url: true) ?? throw BuiltinException.Error("base64url.decode", "illegal base64 data at input byte 0");
            return Arg.S(System.Text.Encoding.UTF8.GetString(bytes));
        });
        BuiltinRegistry.Add(r, "hex.encode", 1, (_, a) => Arg.S(Convert.ToHexString(System.Text.Encoding.UTF8.GetBytes(Arg.Str("hex.encode", a, 0))).ToLowerInvariant()));
        BuiltinRegistry.Add(r, "hex.decode", 1, (_, a) =>
        {
            var s = Arg.Str("hex.decode", a, 0);
            for (int i = 0; i < s.Length; i++)
                if (!char.IsAsciiHexDigit(s[i])) throw BuiltinException.Error("hex.decode", $"encoding/hex: invalid byte: U+{(int)s[i]:X4} '{s[i]}'");
            if (s.Length % 2 != 0) throw BuiltinException.Error("hex.decode", "encoding/hex: odd length hex string");
            return Arg.S(System.Text.Encoding.UTF8.GetString(Convert.FromHexString(s)));
        });
    }

    private static void Pretty(System.Text.StringBuilder sb, RegoValue v, string prefix, string indent, int depth)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        void Newline(int d)
        {
            sb.Append('\n').Append(prefix);
            for (int i = 0; i < d; i++) sb.Append(indent);
        }
        switch (v)
        {
            case RegoArray or RegoSet:
                {
                    var items = v is RegoArray arr ? arr.Items : ((RegoSet)v).Items;
                    if (items.Length == 0) { sb.Append("[]"); return; }
                    sb.Append('[');
                    for (int i = 0; i < items.Length; i++)
                    {
                        if (i > 0) sb.Append(',');
                        Newline(depth + 1);
                        Pretty(sb, items[i], prefix, indent, depth + 1);
                    }
                    Newline(depth);
                    sb.Append(']');
                    return;
                }
            case RegoObject o:
                {
                    if (o.Count == 0) { sb.Append("{}"); return; }
                    sb.Append('{');
                    for (int i = 0; i < o.Keys.Length; i++)
                    {
                        if (i > 0) sb.Append(',');
                        Newline(depth + 1);
                        var k = o.Keys[i] is RegoString ks ? ks.Value : o.Keys[i].ToJson();
                        sb.Append(new RegoString(k).ToJson()).Append(": ");
                        Pretty(sb, o.Values[i], prefix, indent, depth + 1);
                    }
                    Newline(depth);
                    sb.Append('}');
                    return;
                }
            default:
                sb.Append(v.ToJson());
                return;
        }
    }

    internal static byte[]? DecodeBase64(string s, bool url)
    {
        var t = url ? s.Replace('-', '+').Replace('_', '/') : s;
        if (url || t.Length % 4 != 0)
        {
            int pad = (4 - t.Length % 4) % 4;
            if (pad == 3) return null;
            if (url) t += new string('=', pad);
        }
        try { return Convert.FromBase64String(t); }
        catch (FormatException) { return null; }
    }
}
