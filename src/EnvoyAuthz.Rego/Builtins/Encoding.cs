using System.Text;
using System.Text.Json;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>json.*, base64*, hex.* builtins.</summary>
internal static class Encoding_
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "json.marshal", 1, (_, a) => Arg.S(a[0].ToJson()));
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
