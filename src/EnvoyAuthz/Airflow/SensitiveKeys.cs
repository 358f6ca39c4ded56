using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Key names whose values are secrets, matched as Airflow's secrets masker matches them
/// (<c>should_hide_value_for_key</c>): the key, trimmed and lowercased, contains one of the
/// fragments. Applied recursively: objects inside objects and arrays are walked too.
/// </summary>
public sealed class SensitiveKeys
{
    /// <summary>Airflow's <c>DEFAULT_SENSITIVE_FIELDS</c>.</summary>
    public static readonly IReadOnlyList<string> AirflowDefaults =
    [
        "access_token", "api_key", "apikey", "authorization", "passphrase", "passwd", "password",
        "private_key", "secret", "token", "keyfile_dict", "service_account",
    ];

    /// <summary>What replaces a secret value when masking instead of removing.</summary>
    public const string Mask = "[REDACTED]";

    private static readonly RegoString MaskValue = new(Mask);

    private readonly string[] _fragments;

    /// <summary>Airflow's defaults plus <paramref name="additions"/> (lowercased, trimmed).</summary>
    public SensitiveKeys(IEnumerable<string>? additions = null)
    {
        _fragments = [.. AirflowDefaults.Concat((additions ?? []).Select(a => a.Trim().ToLowerInvariant()).Where(a => a.Length > 0)).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The defaults only.</summary>
    public static SensitiveKeys Default { get; } = new();

    /// <summary>Whether a value under <paramref name="key"/> is a secret.</summary>
    public bool IsSensitive(string key)
    {
        var k = key.Trim();
        foreach (var f in _fragments)
        {
            if (k.Contains(f, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The value with every sensitive key removed (<paramref name="mask"/> false) or its value replaced by <see cref="Mask"/>.</summary>
    public RegoValue Redact(RegoValue value, bool mask) => value switch
    {
        RegoObject o => RedactObject(o, mask),
        RegoArray a => RedactArray(a, mask),
        _ => value,
    };

    /// <summary>An object with every sensitive key removed or masked, recursively.</summary>
    public RegoObject RedactObject(RegoObject o, bool mask)
    {
        var b = new RegoObject.Builder(o.Count);
        foreach (var (k, v) in o.Pairs)
        {
            if (k is RegoString s && IsSensitive(s.Value))
            {
                if (mask)
                {
                    b.Add(k, MaskValue);
                }
                continue;
            }
            b.Add(k, Redact(v, mask));
        }
        return b.Build();
    }

    private RegoArray RedactArray(RegoArray a, bool mask)
    {
        var items = new RegoValue[a.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = Redact(a[i], mask);
        }
        return RegoArray.From(items);
    }

    /// <summary>
    /// An Airflow <c>extra</c> (a JSON string or an already parsed value) as a redacted object:
    /// empty when absent, not JSON or not an object (Airflow's <c>extra_dejson</c> is then empty too).
    /// </summary>
    public RegoObject ParseExtra(RegoValue? extra, out bool invalid)
    {
        invalid = false;
        switch (extra)
        {
            case null or RegoNull:
                return AirflowConnection.EmptyObject;
            case RegoObject o:
                return RedactObject(o, mask: false);
            case RegoString { Value: var s }:
                if (string.IsNullOrWhiteSpace(s))
                {
                    return AirflowConnection.EmptyObject;
                }
                if (RegoJson.TryParse(s, out var parsed) && parsed is RegoObject po)
                {
                    return RedactObject(po, mask: false);
                }
                invalid = true;
                return AirflowConnection.EmptyObject;
            default:
                invalid = true;
                return AirflowConnection.EmptyObject;
        }
    }
}
