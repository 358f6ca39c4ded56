using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Observability;

// The catalogue of log events: one partial class per component, stable EventIds.
// Level by who is at fault: a caller's bad token is Information, a dependency's failure Warning,
// our own fault Error. No event takes a token, a password, a cookie or a query string; request-derived
// text passes Redaction.SecretRedactor's *ForLog (no userinfo, no path parameters) and CheckPipeline.LogSafe.

/// <summary>Decision log events (1000–1099).</summary>
internal static partial class DecisionLog
{
    [LoggerMessage(EventId = 1000, EventName = "Decision", Level = LogLevel.Information,
        Message = "decision {DecisionId} {Decision} reason={Reason} status={HttpStatus} subject={Subject} issuer={Issuer} method={Method} host={Host} path={Path} duration_ms={DurationMs:F3}")]
    public static partial void Decision(ILogger logger, string decisionId, string decision, string reason, int httpStatus,
        string? subject, string? issuer, string method, string host, string path, double durationMs);

    [LoggerMessage(EventId = 1001, EventName = "CheckFailed", Level = LogLevel.Error,
        Message = "decision {DecisionId}: internal error while answering Check; answered {Outcome}")]
    public static partial void CheckFailed(ILogger logger, Exception exception, string decisionId, string outcome);

    // The caller's fault: Information the first time per cause and minute, Debug for the repeats (see LogThrottle).
    [LoggerMessage(EventId = 1002, EventName = "MalformedRequest",
        Message = "decision {DecisionId}: the Check message could not be read ({Cause}); answered 400 bad_request ({Repeats} more since the last report)")]
    public static partial void MalformedRequest(ILogger logger, LogLevel level, string decisionId, string cause, long repeats);

    [LoggerMessage(EventId = 1003, EventName = "CheckCancelled", Level = LogLevel.Debug,
        Message = "decision {DecisionId}: the caller cancelled the Check after {DurationMs:F3} ms ({Stage}); nothing was answered")]
    public static partial void CheckCancelled(ILogger logger, string decisionId, double durationMs, string stage);
}

/// <summary>Identity stage events (1100–1199).</summary>
internal static partial class IdentityLog
{
    [LoggerMessage(EventId = 1100, EventName = "TokenRejected", Level = LogLevel.Information,
        Message = "token rejected: {Reason} ({Detail}); issuer={IssuerName}")]
    public static partial void TokenRejected(ILogger logger, string reason, string detail, string issuerName);

    [LoggerMessage(EventId = 1101, EventName = "KeysFetched", Level = LogLevel.Information,
        Message = "issuer {IssuerName}: fetched {KeyCount} signing keys ({Trigger})")]
    public static partial void KeysFetched(ILogger logger, string issuerName, int keyCount, string trigger);

    [LoggerMessage(EventId = 1102, EventName = "KeysFetchFailed", Level = LogLevel.Warning,
        Message = "issuer {IssuerName}: fetching signing keys failed ({Trigger}): {ErrorType}: {ErrorMessage}")]
    public static partial void KeysFetchFailed(ILogger logger, string issuerName, string trigger, string errorType, string errorMessage);

    [LoggerMessage(EventId = 1103, EventName = "UnknownKidRefetchSuppressed", Level = LogLevel.Debug,
        Message = "issuer {IssuerName}: unknown kid, refetch suppressed (last refetch within the interval)")]
    public static partial void UnknownKidRefetchSuppressed(ILogger logger, string issuerName);

    [LoggerMessage(EventId = 1104, EventName = "IssuerMismatch", Level = LogLevel.Warning,
        Message = "issuer {IssuerName}: discovery document names issuer {DocumentIssuer}, configured {ConfiguredIssuer}")]
    public static partial void IssuerMismatch(ILogger logger, string issuerName, string documentIssuer, string configuredIssuer);
}

/// <summary>Policy stage events (1200–1299).</summary>
internal static partial class PolicyLog
{
    [LoggerMessage(EventId = 1200, EventName = "RemoteOpaFailed", Level = LogLevel.Warning,
        Message = "remote OPA decision failed: {ErrorType}: {ErrorMessage}")]
    public static partial void RemoteOpaFailed(ILogger logger, string errorType, string errorMessage);

    [LoggerMessage(EventId = 1201, EventName = "MalformedDecision", Level = LogLevel.Warning,
        Message = "policy decision is malformed: {Problem}")]
    public static partial void MalformedDecision(ILogger logger, string problem);

    [LoggerMessage(EventId = 1202, EventName = "PolicyLoaded", Level = LogLevel.Information,
        Message = "policy loaded from {Path}: {ModuleCount} modules, revision '{Revision}'")]
    public static partial void PolicyLoaded(ILogger logger, string path, int moduleCount, string revision);

    // Error for a new problem, Debug when the same problem repeats (ReloadingSource logs each failure once).
    [LoggerMessage(EventId = 1203, EventName = "PolicyRejected",
        Message = "policy at {Path} rejected ({ErrorCount} errors); the last good policy keeps serving: {Errors}")]
    public static partial void PolicyRejected(ILogger logger, LogLevel level, string path, int errorCount, string errors);

    // Warning for a new problem, Debug when the same problem repeats.
    [LoggerMessage(EventId = 1205, EventName = "BundleDownloadFailed",
        Message = "policy bundle download from {Url} failed ({Cause}); the last good policy keeps serving")]
    public static partial void BundleDownloadFailed(ILogger logger, LogLevel level, string url, string cause);

    [LoggerMessage(EventId = 1204, EventName = "EvaluationFailed", Level = LogLevel.Warning,
        Message = "policy evaluation failed: {Code}: {Message}")]
    public static partial void EvaluationFailed(ILogger logger, string code, string message);
}

/// <summary>Hosting events (1300–1399).</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 1300, EventName = "Listening", Level = LogLevel.Information,
        Message = "envoy-authz listening: gRPC ext_authz on {GrpcEndpoint}, HTTP on {HttpEndpoint}; policy engine {Engine}")]
    public static partial void Listening(ILogger logger, string grpcEndpoint, string httpEndpoint, string engine);

    [LoggerMessage(EventId = 1301, EventName = "DevMode", Level = LogLevel.Warning,
        Message = "DEV MODE: trusting a signing key generated at start (issuer {Issuer}, audience {Audience}); key written to {KeyFile}. Never use dev mode in production.")]
    public static partial void DevMode(ILogger logger, string issuer, string audience, string keyFile);
}
