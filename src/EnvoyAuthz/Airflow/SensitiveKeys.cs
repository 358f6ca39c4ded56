using System.Text;
using System.Text.RegularExpressions;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Which values are secrets, by key and by value. A key is sensitive as Airflow's secrets masker
/// decides (<c>should_hide_value_for_key</c>: the key contains a fragment), but compared on
/// normalised text — lowercased, with everything but letters and digits dropped — so the HTTP
/// spellings <c>X-Api-Key</c>, <c>privateKey</c>, <c>Access-Token</c> match <c>api_key</c>,
/// <c>private_key</c>, <c>access_token</c>. A value is a secret, whatever its key, when it holds
/// a URI with userinfo (<c>postgres://u:p@h/db</c>, <c>https://token@host</c>), a connection
/// string or query with a sensitive name (<c>Password=…;</c>, <c>PWD=…</c>, <c>AccountKey=…</c>,
/// <c>?token=…</c>), or JSON text that contains either. Applied recursively: objects inside objects
/// and arrays are walked too.
/// </summary>
/// <remarks>
/// More fragments: <c>EnvoyAuthz:Airflow:SensitiveKeys</c> (like Airflow's
/// <c>[core] sensitive_var_conn_names</c>); each is normalised the same way.
/// </remarks>
public sealed partial class SensitiveKeys
{
    /// <summary>Airflow's <c>DEFAULT_SENSITIVE_FIELDS</c> (<c>airflow/utils/log/secrets_masker.py</c>, unchanged in Airflow 3's task SDK).</summary>
    public static readonly IReadOnlyList<string> AirflowDefaults =
    [
        "access_token", "api_key", "apikey", "authorization", "passphrase", "passwd", "password",
        "private_key", "secret", "token", "keyfile_dict", "service_account",
    ];

    /// <summary>
    /// Fragments Airflow does not hide but HTTP and database connections commonly hold secrets
    /// under: <c>credential</c>, <c>cookie</c>, <c>jwt</c>, <c>bearer</c>, <c>pwd</c>, <c>dsn</c>,
    /// <c>connection_string</c>, <c>conn_str</c>, <c>account_key</c>, <c>shared_access_key</c>.
    /// </summary>
    public static readonly IReadOnlyList<string> HttpDefaults =
    [
        "credential", "cookie", "jwt", "bearer", "pwd", "dsn", "connection_string", "conn_str", "account_key", "shared_access_key",
    ];

    /// <summary>Names that make a <c>name=value</c> pair inside a value secret although they are too short to be key fragments (ODBC/ADO.NET/Azure connection strings, SAS URLs).</summary>
    private static readonly HashSet<string> ConnectionStringNames = new(StringComparer.Ordinal)
    {
        "pwd", "sig", "accountkey", "sharedaccesskey", "sharedaccesssignature",
    };

    /// <summary>What replaces a secret value when masking instead of removing.</summary>
    public const string Mask = "[REDACTED]";

    private static readonly RegoString MaskValue = new(Mask);

    private readonly string[] _fragments;

    /// <summary>The defaults (<see cref="AirflowDefaults"/>, <see cref="HttpDefaults"/>) plus <paramref name="additions"/>.</summary>
    public SensitiveKeys(IEnumerable<string>? additions = null)
    {
        _fragments = [.. AirflowDefaults.Concat(HttpDefaults).Concat(additions ?? []).Select(Normalize).Where(a => a.Length > 0).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The defaults only.</summary>
    public static SensitiveKeys Default { get; } = new();

    /// <summary>The text keys and fragments are compared on: lowercase, letters and digits only.</summary>
    public static string Normalize(string key)
    {
        var sb = new StringBuilder(key.Length);
        foreach (var c in key)
        {
            if (char.IsLetterOrDigit(c))
            {
                sb.Append(char.ToLowerInvariant(c));
            }
        }
        return sb.ToString();
    }

    /// <summary>Whether a value under <paramref name="key"/> is a secret.</summary>
    public bool IsSensitive(string key)
    {
        var k = Normalize(key);
        foreach (var f in _fragments)
        {
            if (k.Contains(f, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether a string value is a secret by its content: a URI with userinfo, a connection string or query naming a secret, or JSON text holding one.</summary>
    public bool IsSensitiveValue(string value) => IsSecretText(value, depth: 0);

    private bool IsSecretText(string value, int depth)
    {
        if (value.Length < 3)
        {
            return false;
        }
        if (value.Contains("://", StringComparison.Ordinal) && UriWithUserInfo().IsMatch(value))
        {
            return true;
        }
        if (value.Contains('=', StringComparison.Ordinal))
        {
            foreach (Match m in NameBeforeEquals().Matches(value))
            {
                var name = m.Groups[1].Value;
                if (ConnectionStringNames.Contains(Normalize(name)) || IsSensitive(name))
                {
                    return true;
                }
            }
        }
        var t = value.AsSpan().Trim();
        if (depth < 4 && t.Length > 1 && (t[0] == '{' && t[^1] == '}' || t[0] == '[' && t[^1] == ']') && RegoJson.TryParse(value, out var parsed))
        {
            return HoldsSecret(parsed, depth + 1);
        }
        return false;
    }

    private bool HoldsSecret(RegoValue value, int depth)
    {
        switch (value)
        {
            case RegoString s:
                return IsSecretText(s.Value, depth);
            case RegoObject o:
                foreach (var (k, v) in o.Pairs)
                {
                    if (k is RegoString ks && IsSensitive(ks.Value) || HoldsSecret(v, depth))
                    {
                        return true;
                    }
                }
                return false;
            case RegoArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    if (HoldsSecret(a[i], depth))
                    {
                        return true;
                    }
                }
                return false;
            default:
                return false;
        }
    }

    /// <summary>
    /// The value with every secret removed (<paramref name="mask"/> false: sensitive keys and
    /// secret array items dropped) or replaced by <see cref="Mask"/> (<paramref name="mask"/> true).
    /// A secret string at the top is <see cref="Mask"/> either way.
    /// </summary>
    public RegoValue Redact(RegoValue value, bool mask) => value switch
    {
        RegoObject o => RedactObject(o, mask),
        RegoArray a => RedactArray(a, mask),
        RegoString s when IsSensitiveValue(s.Value) => MaskValue,
        _ => value,
    };

    /// <summary>An object with every sensitive key or secret value removed or masked, recursively.</summary>
    public RegoObject RedactObject(RegoObject o, bool mask)
    {
        var b = new RegoObject.Builder(o.Count);
        foreach (var (k, v) in o.Pairs)
        {
            if (k is RegoString s && IsSensitive(s.Value) || v is RegoString sv && IsSensitiveValue(sv.Value))
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
        var items = new List<RegoValue>(a.Count);
        for (var i = 0; i < a.Count; i++)
        {
            if (a[i] is RegoString s && IsSensitiveValue(s.Value))
            {
                if (mask)
                {
                    items.Add(MaskValue);
                }
                continue;
            }
            items.Add(Redact(a[i], mask));
        }
        return RegoArray.From([.. items]);
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

    /// <summary>A URI whose authority has userinfo (<c>scheme://user@</c>, <c>scheme://user:pass@</c>, also a password holding <c>/</c>).</summary>
    [GeneratedRegex(@"[A-Za-z][A-Za-z0-9+.\-]*://(?:[^\s/?#@]*@|[^\s/?#@:]*:[^\s@]*@)", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking)]
    private static partial Regex UriWithUserInfo();

    /// <summary>The name of each <c>name=</c> pair at the start or after <c>;</c>, <c>&amp;</c>, <c>?</c>, <c>,</c> or white space.</summary>
    [GeneratedRegex(@"(?:^|[;&?,\s])\s*([A-Za-z][A-Za-z0-9 _.\-]{0,63})\s*=", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking)]
    private static partial Regex NameBeforeEquals();
}
