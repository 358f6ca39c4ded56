using System.Buffers;
using System.Text;
using System.Text.Json;

namespace EnvoyAuthz.Rego;

/// <summary>JSON conversion for Rego values. Numbers stay exact (big integers and decimals are not rounded).</summary>
public static class RegoJson
{
    private const int MaxDepth = 1000;

    /// <summary>Parses JSON text.</summary>
    /// <exception cref="JsonException">The text is not valid JSON.</exception>
    public static RegoValue Parse(string json) => Parse(Encoding.UTF8.GetBytes(json));

    /// <summary>Parses UTF-8 JSON.</summary>
    /// <exception cref="JsonException">The text is not valid JSON.</exception>
    public static RegoValue Parse(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth, CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            if (!reader.Read()) throw new JsonException("empty JSON document");
            var v = ReadValue(ref reader);
            if (reader.Read()) throw new JsonException("trailing data after JSON value");
            return v;
        }
        catch (InvalidOperationException ex)
        {
            // Strings that are not valid UTF-16 once unescaped (lone surrogates, invalid UTF-8 bytes):
            // callers handle one exception type for every kind of bad JSON.
            throw new JsonException("the JSON text holds an invalid string: " + ex.Message, ex);
        }
    }

    /// <summary>Tries to parse JSON text; false when it is invalid.</summary>
    public static bool TryParse(string json, out RegoValue value)
    {
        try
        {
            value = Parse(json);
            return true;
        }
        catch (JsonException)
        {
            value = null!;
            return false;
        }
    }

    private static RegoValue ReadValue(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return RegoValue.Null;
            case JsonTokenType.True: return RegoValue.True;
            case JsonTokenType.False: return RegoValue.False;
            case JsonTokenType.String: return new RegoString(reader.GetString()!);
            case JsonTokenType.Number:
                {
                    var span = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan.ToArray();
                    var text = Encoding.ASCII.GetString(span);
                    if (!RegoNumber.TryParse(text, out var n)) throw new JsonException("invalid number " + text);
                    return n;
                }
            case JsonTokenType.StartArray:
                {
                    var list = new List<RegoValue>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) list.Add(ReadValue(ref reader));
                    return list.Count == 0 ? RegoArray.Empty : new RegoArray(list.ToArray());
                }
            case JsonTokenType.StartObject:
                {
                    var b = new RegoObject.Builder();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                    {
                        var key = reader.GetString()!;
                        reader.Read();
                        b.Add(key, ReadValue(ref reader));
                    }
                    return b.Build();
                }
            default:
                throw new JsonException("unexpected JSON token " + reader.TokenType);
        }
    }

    /// <summary>Converts a <see cref="JsonElement"/>.</summary>
    public static RegoValue FromElement(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Null: return RegoValue.Null;
            case JsonValueKind.True: return RegoValue.True;
            case JsonValueKind.False: return RegoValue.False;
            case JsonValueKind.String: return new RegoString(element.GetString()!);
            case JsonValueKind.Number:
                return RegoNumber.TryParse(element.GetRawText(), out var n) ? n : throw new JsonException("invalid number");
            case JsonValueKind.Array:
                {
                    var list = new List<RegoValue>(element.GetArrayLength());
                    foreach (var e in element.EnumerateArray()) list.Add(FromElement(e));
                    return new RegoArray(list.ToArray());
                }
            case JsonValueKind.Object:
                {
                    var b = new RegoObject.Builder();
                    foreach (var p in element.EnumerateObject()) b.Add(p.Name, FromElement(p.Value));
                    return b.Build();
                }
            default:
                throw new JsonException("undefined JSON value");
        }
    }

    /// <summary>Serialises a value as compact JSON.</summary>
    public static string Serialize(RegoValue value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true, MaxDepth = MaxDepth * 4 }))
            Write(w, value);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes a value to a JSON writer.</summary>
    public static void Write(Utf8JsonWriter writer, RegoValue value)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (value)
        {
            case RegoNull: writer.WriteNullValue(); break;
            case RegoBoolean b: writer.WriteBooleanValue(b.Value); break;
            case RegoNumber n: writer.WriteRawValue(n.ToString(), skipInputValidation: true); break;
            case RegoString s: writer.WriteStringValue(s.Value); break;
            case RegoArray a:
                writer.WriteStartArray();
                foreach (var e in a.Items) Write(writer, e);
                writer.WriteEndArray();
                break;
            case RegoSet s:
                writer.WriteStartArray();
                foreach (var e in s.Items) Write(writer, e);
                writer.WriteEndArray();
                break;
            case RegoObject o:
                writer.WriteStartObject();
                for (int i = 0; i < o.Keys.Length; i++)
                {
                    writer.WritePropertyName(o.Keys[i] is RegoString ks ? ks.Value : Serialize(o.Keys[i]));
                    Write(writer, o.Values[i]);
                }
                writer.WriteEndObject();
                break;
        }
    }

    internal static void AppendQuoted(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
