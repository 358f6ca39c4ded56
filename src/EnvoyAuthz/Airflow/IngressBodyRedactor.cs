using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Keeps secrets in the bodies of ingress requests out of policy input: for Airflow's
/// connections and variables APIs and for JSON-RPC requests, values under sensitive keys
/// (<c>password</c>, …, see <see cref="SensitiveKeys"/>) become <c>[REDACTED]</c>, recursively, and
/// so does an <c>extra</c> given as a JSON string (redacted inside and re-serialised; a non-JSON
/// extra string is replaced whole); a variable whose <c>key</c> is sensitive has its
/// <c>value</c> masked, as Airflow masks it. Masking rather than removing lets a policy see that a
/// secret was sent.
/// </summary>
public sealed class IngressBodyRedactor(SensitiveKeys sensitive)
{
    private static readonly RegoString Masked = new(SensitiveKeys.Mask);

    /// <summary>The parsed body (<c>input.parsed_body</c>) with secrets masked.</summary>
    public RegoValue Redact(RegoValue parsedBody) => Walk(parsedBody);

    /// <summary>
    /// A raw body string (<c>input.attributes.request.http.body</c>): the re-serialised redacted
    /// JSON, or <c>[REDACTED]</c> when it is not JSON (a form, a truncated body).
    /// </summary>
    public string RedactRaw(string body) =>
        RegoJson.TryParse(body, out var v) ? RegoJson.Serialize(Walk(v)) : SensitiveKeys.Mask;

    /// <summary>
    /// <c>input.attributes</c> with <c>request.http.body</c> and <c>request.http.rawBody</c> redacted
    /// (<see cref="RedactRaw"/>; <c>rawBody</c>, base64 in protojson, becomes <c>[REDACTED]</c>).
    /// </summary>
    public RegoObject RedactAttributes(RegoObject attributes)
    {
        if (attributes["request"] is not RegoObject request || request["http"] is not RegoObject http)
        {
            return attributes;
        }
        var h = new RegoObject.Builder(http.Count);
        foreach (var (k, v) in http.Pairs)
        {
            h.Add(k, k is RegoString { Value: "body" } && v is RegoString s ? RegoValue.From(RedactRaw(s.Value))
                : k is RegoString { Value: "rawBody" } ? Masked : v);
        }
        return Replace(attributes, "request", Replace(request, "http", h.Build()));
    }

    private static RegoObject Replace(RegoObject o, string key, RegoValue value)
    {
        var b = new RegoObject.Builder(o.Count);
        foreach (var (k, v) in o.Pairs)
        {
            b.Add(k, k is RegoString s && s.Value == key ? value : v);
        }
        return b.Build();
    }

    private RegoValue Walk(RegoValue value)
    {
        switch (value)
        {
            case RegoObject o:
                var sensitiveVariable = o["key"] is RegoString key && sensitive.IsSensitive(key.Value);
                var b = new RegoObject.Builder(o.Count);
                foreach (var (k, v) in o.Pairs)
                {
                    var name = k is RegoString s ? s.Value : null;
                    if (name is not null && sensitive.IsSensitive(name) || sensitiveVariable && name == "value")
                    {
                        b.Add(k, Masked);
                    }
                    else if (name == "extra" && v is RegoString extra)
                    {
                        b.Add(k, RegoJson.TryParse(extra.Value, out var parsed) && parsed is RegoObject
                            ? RegoValue.From(RegoJson.Serialize(sensitive.Redact(parsed, mask: true)))
                            : string.IsNullOrEmpty(extra.Value) ? extra : Masked);
                    }
                    else
                    {
                        b.Add(k, Walk(v));
                    }
                }
                return b.Build();
            case RegoArray a:
                var items = new RegoValue[a.Count];
                for (var i = 0; i < items.Length; i++)
                {
                    items[i] = Walk(a[i]);
                }
                return RegoArray.From(items);
            default:
                return value;
        }
    }
}
