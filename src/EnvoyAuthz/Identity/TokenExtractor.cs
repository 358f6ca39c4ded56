using EnvoyAuthz.Configuration;
using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.Identity;

/// <summary>Finds the bearer token: the configured header (default <c>authorization</c>), then the configured cookie.</summary>
public sealed class TokenExtractor(IdentityOptions options)
{
    private readonly string _header = options.TokenHeader.ToLowerInvariant();
    private readonly string? _cookie = string.IsNullOrWhiteSpace(options.TokenCookie) ? null : options.TokenCookie;

    /// <summary>The outcome of looking for a token.</summary>
    public enum Result
    {
        /// <summary>No token anywhere.</summary>
        None,
        /// <summary>A token was found.</summary>
        Found,
        /// <summary>The header is present but not a bearer credential (e.g. <c>Basic</c>, or empty).</summary>
        Malformed,
    }

    /// <summary>Looks for the token in the request.</summary>
    public Result TryExtract(AuthzRequest request, out string token)
    {
        token = "";
        if (request.Headers.TryGetValue(_header, out var raw))
        {
            var value = raw.AsSpan().Trim();
            if (value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                value = value[7..].Trim();
            }
            else if (_header == "authorization")
            {
                // Authorization carries a scheme; anything but Bearer is not ours to accept.
                return Result.Malformed;
            }
            if (value.IsEmpty || value.Contains(' '))
            {
                return Result.Malformed;
            }
            token = value.ToString();
            return Result.Found;
        }
        if (_cookie is not null && request.Headers.TryGetValue("cookie", out var cookies) && FindCookie(cookies, _cookie) is { Length: > 0 } c)
        {
            token = c;
            return Result.Found;
        }
        return Result.None;
    }

    private static string? FindCookie(string header, string name)
    {
        foreach (var part in header.Split(';'))
        {
            var kv = part.AsSpan().Trim();
            var eq = kv.IndexOf('=');
            if (eq > 0 && kv[..eq].Trim().SequenceEqual(name))
            {
                var v = kv[(eq + 1)..].Trim();
                if (v.Length >= 2 && v[0] == '"' && v[^1] == '"')
                {
                    v = v[1..^1];
                }
                return v.ToString();
            }
        }
        return null;
    }
}
