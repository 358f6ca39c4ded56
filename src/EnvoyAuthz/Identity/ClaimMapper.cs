using EnvoyAuthz.Configuration;
using EnvoyAuthz.Rego;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>
/// Turns a validated token's payload into a <see cref="CallerIdentity"/>: the payload is parsed once
/// straight into the Rego value tree (it becomes <c>input.identity.claims</c>), and groups, roles,
/// scopes and client id are read from the issuer's configured claims (dotted paths reach into objects).
/// </summary>
public static class ClaimMapper
{
    /// <summary>The token's payload, parsed straight into the Rego value tree.</summary>
    public static RegoObject ParsePayload(JsonWebToken jwt)
    {
        var payload = Base64UrlEncoder.DecodeBytes(jwt.EncodedPayload);
        return RegoJson.Parse(payload) as RegoObject ?? throw new FormatException("the token payload is not a JSON object");
    }

    /// <summary>Maps <paramref name="jwt"/> issued by <paramref name="issuer"/>.</summary>
    public static CallerIdentity Map(JsonWebToken jwt, IssuerOptions issuer, DateTimeOffset expiresAt) =>
        Map(ParsePayload(jwt), issuer, expiresAt);

    /// <summary>Maps the parsed <paramref name="claims"/> of a token issued by <paramref name="issuer"/>.</summary>
    public static CallerIdentity Map(RegoObject claims, IssuerOptions issuer, DateTimeOffset expiresAt)
    {
        return new CallerIdentity
        {
            IssuerName = issuer.Name,
            Issuer = issuer.Issuer,
            Subject = StringClaim(claims, "sub") ?? "",
            Audience = Collect(claims, ["aud"], splitSpaces: false),
            ClientId = FirstString(claims, issuer.EffectiveClientIdClaims),
            Scopes = Collect(claims, issuer.EffectiveScopeClaims, splitSpaces: true),
            Groups = Collect(claims, issuer.EffectiveGroupClaims, splitSpaces: false),
            Roles = Collect(claims, issuer.EffectiveRoleClaims, splitSpaces: false),
            ExpiresAt = expiresAt,
            Claims = claims,
            Actor = claims.TryGetValue("act", out var act) && act is RegoObject ? act : null,
        };
    }

    /// <summary>The value at a dotted path, or null.</summary>
    public static RegoValue? Find(RegoObject claims, string path)
    {
        if (claims.TryGetValue(path, out var direct))
        {
            return direct; // a claim whose name contains dots, e.g. a namespaced URL claim
        }
        RegoValue current = claims;
        foreach (var part in path.Split('.'))
        {
            if (current is not RegoObject o || !o.TryGetValue(part, out var next))
            {
                return null;
            }
            current = next;
        }
        return current;
    }

    private static string? StringClaim(RegoObject claims, string name) =>
        claims.TryGetValue(name, out var v) && v is RegoString s ? s.Value : null;

    private static string? FirstString(RegoObject claims, IReadOnlyList<string> paths)
    {
        foreach (var path in paths)
        {
            if (Find(claims, path) is RegoString { Value.Length: > 0 } s)
            {
                return s.Value;
            }
        }
        return null;
    }

    private static List<string> Collect(RegoObject claims, IReadOnlyList<string> paths, bool splitSpaces)
    {
        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            switch (Find(claims, path))
            {
                case RegoString s:
                    if (splitSpaces)
                    {
                        foreach (var part in s.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        {
                            if (seen.Add(part))
                            {
                                result.Add(part);
                            }
                        }
                    }
                    else if (s.Value.Length > 0 && seen.Add(s.Value))
                    {
                        result.Add(s.Value);
                    }
                    break;
                case RegoArray a:
                    for (var i = 0; i < a.Count; i++)
                    {
                        if (a[i] is RegoString { Value.Length: > 0 } item && seen.Add(item.Value))
                        {
                            result.Add(item.Value);
                        }
                    }
                    break;
            }
        }
        return result;
    }
}
