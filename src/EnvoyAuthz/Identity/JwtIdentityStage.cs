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

        JsonWebToken unverified;
        try
        {
            if (token.Count(c => c == '.') != 2)
            {
                return Reject("unknown", ReasonCode.InvalidToken, "the token is not a signed JWT");
            }
            unverified = _handler.ReadJsonWebToken(token);
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
        if (!jwt.TryGetPayloadValue<long>("exp", out var exp))
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token has no expiry");
        }
        var expiresAt = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(exp, -62135596800L, 253402300799L));
        if (now >= expiresAt + skew)
        {
            return Reject(issuerName, ReasonCode.ExpiredToken, "the token expired");
        }
        if (jwt.TryGetPayloadValue<long>("nbf", out var nbf) &&
            now + skew < DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(nbf, -62135596800L, 253402300799L)))
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token is not valid yet");
        }

        CallerIdentity identity;
        try
        {
            identity = ClaimMapper.Map(jwt, source.Issuer, expiresAt);
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or ArgumentException or InvalidOperationException)
        {
            return Reject(issuerName, ReasonCode.InvalidToken, "the token's claims are malformed");
        }
        _cache.Add(cacheKey, identity);
        _metrics.TokenValidations.WithLabels(issuerName, "valid").Inc();
        return IdentityResult.Valid(identity);
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
