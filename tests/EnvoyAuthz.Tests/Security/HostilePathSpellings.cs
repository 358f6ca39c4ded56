using System.Text;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// Spellings of the admin area (<c>/admin/users</c>) that some server on the way — a proxy that
/// does not normalise, nginx with a raw <c>$request_uri</c>, a WSGI or servlet upstream, a
/// case-insensitive file system — could read as <c>/admin</c>, and an oracle that reads a path as
/// liberally as any of them.
/// </summary>
internal static class HostilePathSpellings
{
    private static readonly string[] Prefixes =
    [
        "", "/x/..", "/api/v1/../..", "/%2e%2e", "/.", "/%2e", "/.%2e", "/healthz/..", "/api/v1/dags/..%2F..%2F..", "/", "/healthz;",
        "/x\\..", "/api/v1/dags/%2e%2e/%2e%2e/%2e%2e", "\\", "/api/v1/dags;/../../..", "/api/v1/%252e%252e/%252e%252e",
    ];

    private static readonly string[] AdminSpellings =
    [
        "admin", "ADMIN", "Admin", "%61dmin", "%41dmin", "%2561dmin", "admin;x", "admin%00", "adm%69n", "admin%3Bx", "ad%00min", "%61%64%6d%69%6e",
    ];

    private static readonly string[] Separators = ["/", "%2F", "\\", "%5C", "//", "/./", ";x/", "/%2e/"];

    /// <summary>Prefix × spelling × separator: every combination ends in a spelling of <c>/admin/users</c>.</summary>
    public static IEnumerable<string> AdminDisguises()
    {
        foreach (var prefix in Prefixes)
        {
            foreach (var admin in AdminSpellings)
            {
                foreach (var sep in Separators)
                {
                    var start = prefix.EndsWith('/') || prefix.EndsWith('\\') ? "" : "/";
                    yield return prefix + start + admin + sep + "users";
                }
            }
        }
    }

    /// <summary>Whether the path is denied in both modes (NUL, control characters, broken escapes).</summary>
    public static bool AlwaysDenied(string path) =>
        PathNormalizer.IsAlwaysDenied(PathNormalizer.Normalize(path.Split('?')[0], rejectAmbiguous: false, out _));

    /// <summary>Whether the normal form (normalize mode) is exactly <c>/admin/users</c>.</summary>
    public static bool IsExactAdmin(string path) =>
        PathNormalizer.Normalize(path.Split('?')[0], rejectAmbiguous: false, out var s) == PathProblem.None && s.SequenceEqual(["admin", "users"]);

    /// <summary>
    /// The oracle: could any server on the way read <paramref name="path"/> as the admin area? It
    /// reads the path as liberally as any of them: query and fragment cut, percent-decoded twice,
    /// <c>\</c> as <c>/</c>, <c>;</c> parameters stripped, a segment ending at NUL, case folded, dot
    /// segments removed, slashes merged.
    /// </summary>
    public static bool UpstreamCouldReadAsAdmin(string path)
    {
        var cut = path.IndexOfAny(['?', '#']);
        var p = cut >= 0 ? path[..cut] : path;
        p = Decode(Decode(p)).Replace('\\', '/');
        var stack = new List<string>();
        foreach (var raw in p.Split('/'))
        {
            var segment = raw;
            var end = segment.IndexOfAny([';', '\0']);
            segment = (end >= 0 ? segment[..end] : segment).ToLowerInvariant();
            switch (segment)
            {
                case "" or ".":
                    continue;
                case "..":
                    if (stack.Count > 0)
                    {
                        stack.RemoveAt(stack.Count - 1);
                    }
                    continue;
                default:
                    stack.Add(segment);
                    break;
            }
        }
        return stack.Count > 0 && stack[0].Trim() == "admin";
    }

    /// <summary>Lenient percent-decoding: a broken escape stays as it is.</summary>
    private static string Decode(string s)
    {
        var bytes = new List<byte>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '%' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
