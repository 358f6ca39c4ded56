using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// Converts a protobuf message straight into the Rego value tree in its protojson form (what
/// OPA-Envoy's <c>input.attributes</c> is): lowerCamelCase names, default-valued fields omitted,
/// 64-bit integers as strings, bytes as base64, enums by name, well-known types as protojson writes
/// them. No JSON text is produced on the way. A <see cref="HeaderFilter"/> redacts secret headers.
/// <c>Struct</c>/<c>ListValue</c> nesting (metadata) is bounded by <see cref="MaxStructDepth"/>: deeper
/// values throw <see cref="NestingTooDeepException"/> rather than recurse without bound.
/// </summary>
public sealed class ProtoValueConverter(ProtoValueConverter.HeaderFilter? headerFilter = null)
{
    /// <summary>
    /// Most levels of <c>Struct</c>/<c>ListValue</c> nesting converted, the outermost included: 32, the
    /// depth at which protobuf's parser (recursion limit 100) already stops a <c>metadata_context</c> Struct.
    /// </summary>
    public const int MaxStructDepth = 32;

    /// <summary>A <c>Struct</c>/<c>ListValue</c> nests beyond <see cref="MaxStructDepth"/>.</summary>
    public sealed class NestingTooDeepException() : Exception($"metadata nests deeper than {MaxStructDepth} levels");

    /// <summary>Returns the value to expose for a header (name lowercased, whatever case the request used), or null to expose it unchanged.</summary>
    public delegate string? HeaderFilter(string lowercaseName, string value);

    private static readonly RegoString Redacted = new("[REDACTED]");

    /// <summary>Converts a message.</summary>
    public RegoValue Convert(IMessage message)
    {
        switch (message)
        {
            case Timestamp ts:
                return RegoValue.From(JsonFormatter.Default.Format(ts).Trim('"'));
            case Duration d:
                return RegoValue.From(JsonFormatter.Default.Format(d).Trim('"'));
            case Struct s:
                return ConvertStruct(s, 1);
            case Value v:
                return ConvertValue(v, 0);
            case ListValue l:
                return ConvertList(l, 1);
            case Any any:
                return new RegoObject.Builder(2).Add("@type", RegoValue.From(any.TypeUrl))
                    .Add("value", RegoValue.From(any.Value.ToBase64())).Build();
            case FieldMask fm:
                return RegoValue.From(string.Join(',', fm.Paths));
        }
        var descriptor = message.Descriptor;
        if (descriptor.File == Int64Value.Descriptor.File || descriptor.FullName.StartsWith("google.protobuf.", StringComparison.Ordinal) && descriptor.Fields.InDeclarationOrder().Count == 1 && descriptor.Name.EndsWith("Value", StringComparison.Ordinal))
        {
            var f = descriptor.Fields.InDeclarationOrder()[0];
            return Scalar(f, f.Accessor.GetValue(message));
        }

        var b = new RegoObject.Builder();
        var isHttpRequest = descriptor == Envoy.Service.Auth.V3.AttributeContext.Types.HttpRequest.Descriptor;
        foreach (var field in descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                var dict = (IDictionary)value;
                if (dict.Count == 0)
                {
                    continue;
                }
                var valueField = field.MessageType.FindFieldByNumber(2);
                var mb = new RegoObject.Builder(dict.Count);
                foreach (DictionaryEntry e in dict)
                {
                    var key = e.Key is bool kb ? (kb ? "true" : "false") : System.Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture)!;
                    if (isHttpRequest && field.Name == "headers" && headerFilter is not null && e.Value is string hv)
                    {
                        // A direct gRPC client may send header names in any letter case.
                        var replaced = headerFilter(key.ToLowerInvariant(), hv);
                        mb.Add(key, replaced is null ? RegoValue.From(hv) : replaced == "[REDACTED]" ? Redacted : RegoValue.From(replaced));
                        continue;
                    }
                    mb.Add(key, Single(valueField, e.Value!));
                }
                b.Add(field.JsonName, mb.Build());
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                if (list.Count == 0)
                {
                    continue;
                }
                var items = new RegoValue[list.Count];
                for (var i = 0; i < items.Length; i++)
                {
                    items[i] = descriptor == Envoy.Config.Core.V3.HeaderMap.Descriptor && list[i] is Envoy.Config.Core.V3.HeaderValue hvalue
                        ? ConvertHeaderValue(hvalue)
                        : Single(field, list[i]!);
                }
                b.Add(field.JsonName, RegoArray.From(items));
            }
            else
            {
                if (field.HasPresence ? !field.Accessor.HasValue(message) : IsDefault(field, value))
                {
                    continue;
                }
                b.Add(field.JsonName, Single(field, value));
            }
        }
        return b.Build();
    }

    private RegoValue ConvertHeaderValue(Envoy.Config.Core.V3.HeaderValue h)
    {
        if (headerFilter is not null)
        {
            var raw = h.RawValue.Length > 0 ? h.RawValue.ToStringUtf8() : h.Value;
            if (headerFilter(h.Key.ToLowerInvariant(), raw) is { } replaced)
            {
                var b = new RegoObject.Builder(2).Add("key", RegoValue.From(h.Key));
                b.Add(h.RawValue.Length > 0 ? "rawValue" : "value",
                    RegoValue.From(h.RawValue.Length > 0 ? System.Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(replaced)) : replaced));
                return b.Build();
            }
        }
        return Convert(h);
    }

    private RegoValue Single(FieldDescriptor field, object value) =>
        field.FieldType == FieldType.Message || field.FieldType == FieldType.Group ? Convert((IMessage)value) : Scalar(field, value);

    private static RegoValue Scalar(FieldDescriptor field, object value) => field.FieldType switch
    {
        FieldType.Bool => RegoValue.From((bool)value),
        FieldType.String => RegoValue.From((string)value),
        FieldType.Bytes => RegoValue.From(((ByteString)value).ToBase64()),
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => RegoValue.From((long)(int)value),
        FieldType.UInt32 or FieldType.Fixed32 => RegoValue.From((long)(uint)value),
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => RegoValue.From(((long)value).ToString(System.Globalization.CultureInfo.InvariantCulture)),
        FieldType.UInt64 or FieldType.Fixed64 => RegoValue.From(((ulong)value).ToString(System.Globalization.CultureInfo.InvariantCulture)),
        FieldType.Double => Floating((double)value),
        FieldType.Float => Floating((float)value),
        FieldType.Enum => EnumName(field, (int)value),
        _ => RegoValue.Null,
    };

    private static RegoValue Floating(double d) =>
        double.IsNaN(d) ? RegoValue.From("NaN") : double.IsPositiveInfinity(d) ? RegoValue.From("Infinity") :
        double.IsNegativeInfinity(d) ? RegoValue.From("-Infinity") : RegoValue.From(d);

    private static RegoValue EnumName(FieldDescriptor field, int number) =>
        field.EnumType.FindValueByNumber(number) is { } v ? RegoValue.From(v.Name) : RegoValue.From((long)number);

    private static bool IsDefault(FieldDescriptor field, object value) => value switch
    {
        string s => s.Length == 0,
        ByteString bs => bs.IsEmpty,
        bool b => !b,
        int i => i == 0,
        uint u => u == 0,
        long l => l == 0,
        ulong ul => ul == 0,
        double d => d == 0 && !double.IsNegative(d),
        float f => f == 0 && !float.IsNegative(f),
        System.Enum e => System.Convert.ToInt32(e, System.Globalization.CultureInfo.InvariantCulture) == 0,
        null => true,
        _ => false,
    };

    private static RegoObject ConvertStruct(Struct s, int depth)
    {
        if (depth > MaxStructDepth)
        {
            throw new NestingTooDeepException();
        }
        var b = new RegoObject.Builder(s.Fields.Count);
        foreach (var (k, v) in s.Fields)
        {
            b.Add(k, ConvertValue(v, depth));
        }
        return b.Build();
    }

    private static RegoArray ConvertList(ListValue l, int depth)
    {
        if (depth > MaxStructDepth)
        {
            throw new NestingTooDeepException();
        }
        var items = new RegoValue[l.Values.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = ConvertValue(l.Values[i], depth);
        }
        return RegoArray.From(items);
    }

    /// <summary>A Value inside a container at <paramref name="depth"/> (0: a bare Value).</summary>
    private static RegoValue ConvertValue(Value v, int depth) => v.KindCase switch
    {
        Value.KindOneofCase.NullValue => RegoValue.Null,
        Value.KindOneofCase.BoolValue => RegoValue.From(v.BoolValue),
        Value.KindOneofCase.NumberValue => Floating(v.NumberValue), // NaN and ±∞ as protojson spells them
        Value.KindOneofCase.StringValue => RegoValue.From(v.StringValue),
        Value.KindOneofCase.StructValue => ConvertStruct(v.StructValue, depth + 1),
        Value.KindOneofCase.ListValue => ConvertList(v.ListValue, depth + 1),
        _ => RegoValue.Null,
    };
}
