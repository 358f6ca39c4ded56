using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Observability;

/// <summary>Key-fetch state changes (1105–1109): one warning when fetches start failing (1102), Debug while they keep failing, one line when they recover.</summary>
internal static partial class IdentityLog
{
    [LoggerMessage(EventId = 1105, EventName = "KeysStillFailing", Level = LogLevel.Debug,
        Message = "issuer {IssuerName}: fetching signing keys failed again ({Trigger}, {Failures} in a row): {ErrorType}: {ErrorMessage}; next attempt in {RetrySeconds} s")]
    public static partial void KeysStillFailing(ILogger logger, string issuerName, string trigger, int failures, string errorType, string errorMessage, double retrySeconds);

    [LoggerMessage(EventId = 1106, EventName = "KeysRecovered", Level = LogLevel.Information,
        Message = "issuer {IssuerName}: fetched {KeyCount} signing keys ({Trigger}) after {Failures} failed attempts")]
    public static partial void KeysRecovered(ILogger logger, string issuerName, int keyCount, string trigger, int failures);

    [LoggerMessage(EventId = 1107, EventName = "KeysWaitAbandoned", Level = LogLevel.Debug,
        Message = "issuer {IssuerName}: a check's time budget ended while signing keys were being fetched ({Trigger}); the fetch goes on, the check is denied dependency_unavailable")]
    public static partial void KeysWaitAbandoned(ILogger logger, string issuerName, string trigger);
}
