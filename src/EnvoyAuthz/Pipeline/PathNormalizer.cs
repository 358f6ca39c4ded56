using System.Text;

namespace EnvoyAuthz.Pipeline;

/// <summary>Values of <see cref="Configuration.ServerOptions.AmbiguousPaths"/>.</summary>
public static class AmbiguousPathModes
{
    /// <summary>Deny (400 <c>bad_request</c>) a path whose normal form differs from it in a way that matters.</summary>
    public const string Reject = "reject";
    /// <summary>Decide on the normal form (as Envoy's <c>normalize_path</c>, <c>merge_slashes</c> and <c>UNESCAPE_AND_FORWARD</c> would forward it).</summary>
    public const string Normalize = "normalize";

    internal static readonly string[] All = [Reject, Normalize];
}

/// <summary>What is wrong with a request path, if anything.</summary>
public enum PathProblem
{
    /// <summary>Nothing: the path is in normal form, or was normalised as configured.</summary>
    None,
    /// <summary>A <c>%</c> not followed by two hex digits. Always denied.</summary>
    InvalidEncoding,
    /// <summary>A control character or NUL, raw or percent-encoded, or a raw space. Always denied: no spelling of it is safe.</summary>
    ControlCharacter,
    /// <summary>A <c>.</c> or <c>..</c> segment, raw or encoded (<c>%2e</c>).</summary>
    DotSegment,
    /// <summary>An encoded <c>/</c> or <c>\</c> (<c>%2F</c>, <c>%5C</c>): a separator to some servers, data to others.</summary>
    EncodedSlash,
    /// <summary>A raw <c>\</c>: a separator to some servers.</summary>
    Backslash,
    /// <summary>A <c>;</c> segment parameter (<c>/admin;x/users</c>): stripped by some servers, kept by others.</summary>
    PathParameter,
    /// <summary>An encoded <c>%</c> that starts another escape (<c>%2561</c>): decoded twice by some servers. Always denied: there is no one normal form.</summary>
    DoubleEncoding,
}

/// <summary>
/// The one normalisation of request paths, used for gRPC Checks and every HTTP-mode proxy style
/// alike: RFC 3986 §6.2.2 and Envoy's <c>normalize_path</c> / <c>merge_slashes</c>. Each percent-escape
/// is decoded exactly once; runs of slashes are merged; dot segments are removed (also when
/// spelled <c>%2e</c>). Spellings that one server would read differently from another — dot
/// segments, encoded <c>/</c> or <c>\</c>, raw <c>\</c>, <c>;</c> parameters —
/// are <em>ambiguous</em>: denied in <see cref="AmbiguousPathModes.Reject"/> mode (the default),
/// resolved as a WSGI server or Envoy with <c>UNESCAPE_AND_FORWARD</c> would resolve them in
/// <see cref="AmbiguousPathModes.Normalize"/> mode (separators split segments, parameters are
/// stripped, dot segments removed). Control characters and NUL (raw or encoded), a raw space,
/// double encodings and broken escapes have no one normal form: denied in both modes. The result is OPA-Envoy's <c>parsed_path</c> shape: the decoded
/// segments without the leading <c>/</c>; a trailing slash leaves a trailing empty segment.
/// </summary>
public static class PathNormalizer
{
    /// <summary>A fixed-vocabulary description of <paramref name="problem"/> (never request data).</summary>
    public static string Describe(PathProblem problem) => problem switch
    {
        PathProblem.InvalidEncoding => "the request path has an invalid percent-encoding",
        PathProblem.ControlCharacter => "the request path has a control character, NUL or raw space",
        PathProblem.DotSegment => "the request path has a dot segment ('.' or '..')",
        PathProblem.EncodedSlash => "the request path has an encoded '/' or '\\'",
        PathProblem.Backslash => "the request path has a '\\'",
        PathProblem.PathParameter => "the request path has a ';' segment parameter",
        PathProblem.DoubleEncoding => "the request path has a double percent-encoding",
        _ => "the request path is in normal form",
    };

    /// <summary>Whether <paramref name="problem"/> is denied whatever the mode.</summary>
    public static bool IsAlwaysDenied(PathProblem problem) => problem is PathProblem.InvalidEncoding or PathProblem.ControlCharacter or PathProblem.DoubleEncoding;

    /// <summary>
    /// Normalises <paramref name="path"/> (a path without query or fragment, still percent-encoded).
    /// Returns <see cref="PathProblem.None"/> and the segments, or the problem that denies it
    /// (<paramref name="segments"/> is then empty). With <paramref name="rejectAmbiguous"/> false,
    /// ambiguous spellings are resolved instead of denied.
    /// </summary>
    public static PathProblem Normalize(string path, bool rejectAmbiguous, out IReadOnlyList<string> segments)
    {
        segments = [];
        var ambiguity = PathProblem.None;
        void Ambiguous(PathProblem p)
        {
            if (ambiguity == PathProblem.None)
            {
                ambiguity = p;
            }
        }

        var output = new List<string>();
        var bytes = new List<byte>(Math.Min(path.Length, 256));
        Span<byte> utf8 = stackalloc byte[4];
        var inParameter = false;
        var endedWithSeparator = false;

        void EndSegment(bool bySeparator)
        {
            var segment = Encoding.UTF8.GetString(bytes.ToArray());
            bytes.Clear();
            inParameter = false;
            if (segment is "." or "..")
            {
                Ambiguous(PathProblem.DotSegment);
                if (segment == ".." && output.Count > 0)
                {
                    output.RemoveAt(output.Count - 1);
                }
                // "/a/." and "/a/.." name a directory: keep the trailing slash (RFC 3986 §5.2.4).
                endedWithSeparator = true;
                return;
            }
            if (segment.Length > 0)
            {
                output.Add(segment);
            }
            endedWithSeparator = bySeparator || (segment.Length == 0 && endedWithSeparator);
        }

        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (c == '/')
            {
                EndSegment(bySeparator: true);
                continue;
            }
            if (c == '\\')
            {
                Ambiguous(PathProblem.Backslash);
                EndSegment(bySeparator: true);
                continue;
            }
            if (c is < ' ' or ' ' or '\x7f')
            {
                return PathProblem.ControlCharacter;
            }
            if (c == ';' && !inParameter)
            {
                Ambiguous(PathProblem.PathParameter);
                inParameter = true;
                continue;
            }
            if (c == '%')
            {
                if (i + 2 >= path.Length || !IsHex(path[i + 1]) || !IsHex(path[i + 2]))
                {
                    return PathProblem.InvalidEncoding;
                }
                var b = (byte)(HexValue(path[i + 1]) << 4 | HexValue(path[i + 2]));
                i += 2;
                if (b is < 0x20 or 0x7f)
                {
                    return PathProblem.ControlCharacter;
                }
                if (b is (byte)'/' or (byte)'\\')
                {
                    Ambiguous(PathProblem.EncodedSlash);
                    EndSegment(bySeparator: true);
                    continue;
                }
                if (b == '%' && i + 2 < path.Length && IsHex(path[i + 1]) && IsHex(path[i + 2]))
                {
                    return PathProblem.DoubleEncoding;
                }
                if (!inParameter)
                {
                    bytes.Add(b);
                }
                continue;
            }
            if (inParameter)
            {
                continue;
            }
            if (c < 0x80)
            {
                bytes.Add((byte)c);
                continue;
            }
            // A valid surrogate pair is one code point; a lone surrogate becomes U+FFFD (3 bytes).
            var n = i + 1 < path.Length && char.IsSurrogatePair(c, path[i + 1])
                ? Encoding.UTF8.GetBytes(path.AsSpan(i++, 2), utf8)
                : Encoding.UTF8.GetBytes(path.AsSpan(i, 1), utf8);
            for (var k = 0; k < n; k++)
            {
                bytes.Add(utf8[k]);
            }
        }
        EndSegment(bySeparator: false);

        if (rejectAmbiguous && ambiguity != PathProblem.None)
        {
            return ambiguity;
        }
        if (output.Count == 0 || endedWithSeparator)
        {
            output.Add("");
        }
        segments = output;
        return PathProblem.None;
    }

    private static bool IsHex(char c) => c is >= '0' and <= '9' or >= 'a' and <= 'f' or >= 'A' and <= 'F';

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
