using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Identity;

/// <summary>
/// Validates bearer JWTs with <see cref="JsonWebTokenHandler"/>: issuer chosen by exact <c>iss</c>,
/// signature against the issuer's cached keys (one rate-limited refetch on an unknown <c>kid</c>),
/// audience, allowed algorithms (never <c>none</c>), optional <c>typ</c>, and <c>exp</c>/<c>nbf</c>
/// against the injected clock with the issuer's skew. Valid tokens are cached by hash.
/// </summary>
public sealed class JwtIdentityStage : IIdentityStage
{
    private readonly IdentityOptions _options;
    private readonly IssuerRegistry _issuers;
    private readonly ValidatedTokenCache _cache;
    private readonly TokenExtractor _extractor;
    private readonly TimeProvider _time;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };

    /// <summary>Creates the stage.</summary>
    public JwtIdentityStage(AuthzOptions options, IssuerRegistry issuers, ValidatedTokenCache cache, TimeProvider time,
        AuthzMetrics metrics, ILogger<JwtIdentityStage> logger)
    {
        _options = options.Identity;
        _issuers = issuers;
        _cache = cache;
        _extractor = new TokenExtractor(options.Identity);
        _time = time;
        _metrics = metrics;
        _logger = logger;
    }

    /// <inheritdoc />
    public bool KeysLoaded => _issuers.All.All(i => i.Loaded);

    /// <inheritdoc />
    public async ValueTask<IdentityResult> AuthenticateAsync(AuthzRequest request, CancellationToken cancellationToken)
    {
        switch (_extractor.TryExtract(request, out var token))
        {
            case TokenExtractor.Result.None:
                return IdentityResult.Missing;
            case TokenExtractor.Result.Malformed:
                return Reject("unknown", ReasonCode.InvalidToken, "the credentials are not a bearer token");
        }
        if (token.Length > _options.MaxTokenBytes)
        {
            return Reject("unknown", ReasonCode.InvalidToken, "the token is too large");
        }

        var cacheKey = ValidatedTokenCache.KeyOf(token);
        if (_cache.TryGet(cacheKey, out var cached))
        {
            _metrics.TokenValidations.WithLabels(cached.IssuerName, "cached").Inc();
            return IdentityResult.Valid(cached);
        }

        if (!IsCanonicalCompactJws(token))
        {
            return Reject("unknown", ReasonCode.InvalidToken, "the token is not a well-formed signed JWT");
        }
        JsonWebToken unverified;
        try
        {
            unverified = _handler.ReadJsonWebToken(token);
            if (unverified.TryGetHeaderValue<object>("crit", out _))
            {
                // RFC 7515 §4.1.11: extensions we do not understand must be rejected, and we understand none.
                return Reject("unknown", ReasonCode.InvalidToken, "the token has critical header extensions");
            }
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or FormatException or System.Text.Json.JsonException)
        {
            return Reject("unknown", ReasonCode.InvalidToken, "the token is malformed");
        }

        string? iss;
        try
        {
            iss = unverified.Issuer;
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or InvalidCastException or FormatException)
        {
            return Reject("unknown", ReasonCode.InvalidToken, "the token's issuer claim is malformed");
        }
        var source = _issuers.Find(iss);
        if (source is null)
        {
            return Reject("unknown", ReasonCode.UntrustedIssuer, "the token's issuer is not trusted");
        }
        var issuerName = source.Issuer.Name;

        var keys = await source.GetKeysAsync(cancellationToken).ConfigureAwait(false);
        if (keys is null)
        {
            _metrics.TokenValidations.WithLabels(issuerName, "keys_unavailable").Inc();
            return IdentityResult.Unavailable("the issuer's signing keys are unavailable");
        }

        var result = await ValidateAsync(token, source, keys).ConfigureAwait(false);
        if (!result.IsValid && IsUnknownKey(result.Exception, unverified, keys))
        {
            var (refreshed, failed) = await source.RefetchForUnknownKidAsync(keys, cancellationToken).ConfigureAwait(false);
            if (refreshed is not null)
            {
                result = await ValidateAsync(token, source, refreshed).ConfigureAwait(false);
            }
            else if (failed)
            {
                // A key we cannot check because the issuer is unreachable: not the caller's fault, still a deny.
                _metrics.TokenValidations.WithLabels(issuerName, "keys_unavailable").Inc();
                return IdentityResult.Unavailable("the issuer's signing keys could not be refreshed");
            }
        }
        if (!result.IsValid)
        {
            var (reason, detail) = Classify(result.Exception);
            return Reject(issuerName, reason, detail);
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        var now = _time.GetUtcNow();
        var skew = source.Issuer.ClockSkew ?? _options.ClockSkew;
        RegoObject claims;
        try
        {
            claims = ClaimMapper.ParsePayload(jwt);
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or ArgumentException or InvalidOperationException)
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token's claims are malformed");
        }
        // exp and nbf are NumericDates (RFC 7519 §2): JSON numbers, not strings.
        if (!claims.TryGetValue("exp", out var expValue) || expValue is not RegoNumber exp)
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token has no numeric expiry");
        }
        var expiresAt = NumericDate(exp);
        if (now - skew >= expiresAt)
        {
            return Reject(issuerName, ReasonCode.ExpiredToken, "the token expired");
        }
        if (claims.TryGetValue("nbf", out var nbfValue))
        {
            if (nbfValue is not RegoNumber nbf)
            {
                return Reject(issuerName, ReasonCode.InvalidToken, "the token's not-before is not a number");
            }
            if (now + skew < NumericDate(nbf))
            {
                return Reject(issuerName, ReasonCode.InvalidToken, "the token is not valid yet");
            }
        }

        CallerIdentity identity;
        try
        {
            identity = ClaimMapper.Map(claims, source.Issuer, expiresAt);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token's claims are malformed");
        }
        _cache.Add(cacheKey, identity);
        _metrics.TokenValidations.WithLabels(issuerName, "valid").Inc();
        return IdentityResult.Valid(identity);
    }

    /// <summary>A NumericDate as an instant, clamped to what <see cref="DateTimeOffset"/> holds (huge values never overflow).</summary>
    private static DateTimeOffset NumericDate(RegoNumber n)
    {
        var seconds = n.ToDouble();
        if (double.IsNaN(seconds))
        {
            return DateTimeOffset.MinValue;
        }
        seconds = Math.Clamp(Math.Floor(seconds), -62135596800d, 253402300799d);
        return DateTimeOffset.FromUnixTimeSeconds((long)seconds);
    }

    /// <summary>
    /// Three base64url segments (header and payload non-empty) over <c>[A-Za-z0-9_-]</c>, each in
    /// canonical form (no padding, no stray bits in the last character): one token, one spelling —
    /// a re-encoded signature is not a new valid token.
    /// </summary>
    internal static bool IsCanonicalCompactJws(string token)
    {
        var first = token.IndexOf('.');
        var second = first < 0 ? -1 : token.IndexOf('.', first + 1);
        if (first <= 0 || second <= first + 1 || token.IndexOf('.', second + 1) >= 0)
        {
            return false;
        }
        return IsCanonicalSegment(token.AsSpan(0, first)) && IsCanonicalSegment(token.AsSpan(first + 1, second - first - 1)) &&
               IsCanonicalSegment(token.AsSpan(second + 1));
    }

    private static bool IsCanonicalSegment(ReadOnlySpan<char> segment)
    {
        foreach (var c in segment)
        {
            if (!(c is >= 'A' and <= 'Z' or >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_'))
            {
                return false;
            }
        }
        var rem = segment.Length % 4;
        if (rem == 1)
        {
            return false;
        }
        if (rem == 0 || segment.IsEmpty)
        {
            return true;
        }
        // The last character carries 2 (rem 2) or 4 (rem 3) bits beyond the data; they must be zero.
        var last = segment[^1];
        var value = last switch
        {
            >= 'A' and <= 'Z' => last - 'A',
            >= 'a' and <= 'z' => last - 'a' + 26,
            >= '0' and <= '9' => last - '0' + 52,
            '-' => 62,
            _ => 63,
        };
        return rem == 2 ? (value & 0x0F) == 0 : (value & 0x03) == 0;
    }

    private Task<TokenValidationResult> ValidateAsync(string token, IssuerKeySource source, IssuerKeySet keys) =>
        _handler.ValidateTokenAsync(token, keys.Parameters ??= BuildParameters(source.Issuer, keys));

    private static TokenValidationParameters BuildParameters(IssuerOptions issuer, IssuerKeySet keys)
    {
        var algorithms = issuer.EffectiveAlgorithms
            .Where(a => !a.StartsWith("HS", StringComparison.Ordinal) || !string.IsNullOrEmpty(issuer.HmacSecret))
            .ToArray();
        return new TokenValidationParameters
        {
            ValidIssuer = issuer.Issuer,
            ValidateIssuer = true,
            ValidAudiences = issuer.Audiences,
            ValidateAudience = true,
            IgnoreTrailingSlashWhenValidatingAudience = false, // "api://authz/" is not "api://authz"
            ValidAlgorithms = algorithms,
            ValidTypes = issuer.RequiredType is { Length: > 0 } typ ? [typ] : null,
            IssuerSigningKeys = keys.Keys,
            RequireSignedTokens = true,
            TryAllIssuerSigningKeys = true,
            // exp/nbf are checked against the injected TimeProvider after the signature.
            ValidateLifetime = false,
            RequireExpirationTime = false,
            ValidateIssuerSigningKey = false,
            SaveSigninToken = false,
        };
    }

    private static bool IsUnknownKey(Exception? ex, JsonWebToken token, IssuerKeySet keys) =>
        ex is SecurityTokenSignatureKeyNotFoundException ||
        (ex is SecurityTokenInvalidSignatureException && token.Kid is { Length: > 0 } kid && !keys.KeyIds.Contains(kid));

    private static (ReasonCode, string) Classify(Exception? ex) => ex switch
    {
        SecurityTokenInvalidAudienceException => (ReasonCode.WrongAudience, "the token is not for this audience"),
        SecurityTokenInvalidIssuerException => (ReasonCode.UntrustedIssuer, "the token's issuer is not trusted"),
        SecurityTokenInvalidAlgorithmException => (ReasonCode.InvalidToken, "the token's algorithm is not allowed"),
        SecurityTokenInvalidTypeException => (ReasonCode.InvalidToken, "the token's type is not accepted"),
        SecurityTokenSignatureKeyNotFoundException => (ReasonCode.InvalidToken, "the token's signing key is unknown"),
        SecurityTokenInvalidSignatureException => (ReasonCode.InvalidToken, "the token's signature is invalid"),
        SecurityTokenMalformedException => (ReasonCode.InvalidToken, "the token is malformed"),
        SecurityTokenDecryptionFailedException => (ReasonCode.InvalidToken, "encrypted tokens are not accepted"),
        _ => (ReasonCode.InvalidToken, "the token was rejected"),
    };

    private IdentityResult Reject(string issuerName, ReasonCode reason, string detail)
    {
        _metrics.TokenValidations.WithLabels(issuerName, reason.ToWire()).Inc();
        IdentityLog.TokenRejected(_logger, reason.ToWire(), detail, issuerName);
        return IdentityResult.Invalid(reason, detail);
    }
}
