using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

// The Airflow stage's log events (EventIds 1400–1499). Level by who is at fault: a bad request is
// Information or Debug, a broken configuration file or an unreachable Airflow is Warning.
// No event carries a password, a secret extra, a URI or a token: only ids, counts, paths of
// configuration files, HTTP status codes and fixed problem texts.
internal static partial class AirflowLog
{
    [LoggerMessage(EventId = 1400, EventName = "ConnectionsFileLoaded", Level = LogLevel.Information,
        Message = "Airflow connections file {Path} loaded: {Count} connections")]
    public static partial void FileLoaded(ILogger logger, string path, int count);

    // Warning for a new problem, Debug when the same problem repeats (ReloadingSource logs each failure once).
    [LoggerMessage(EventId = 1401, EventName = "ConnectionsFileRejected",
        Message = "Airflow connections file {Path} rejected ({Problem}); keeping the last good copy of {Count} connections")]
    public static partial void FileRejected(ILogger logger, LogLevel level, string path, string problem, int count);

    [LoggerMessage(EventId = 1402, EventName = "ConnectionSkipped", Level = LogLevel.Warning,
        Message = "Airflow connection {ConnId} from {Source} skipped: {Problem}")]
    public static partial void ConnectionSkipped(ILogger logger, string connId, string source, string problem);

    [LoggerMessage(EventId = 1403, EventName = "ConnectionExtraIgnored", Level = LogLevel.Warning,
        Message = "Airflow connection {ConnId} from {Source}: {Problem}")]
    public static partial void ConnectionExtraIgnored(ILogger logger, string connId, string source, string problem);

    [LoggerMessage(EventId = 1404, EventName = "EnvironmentConnectionsLoaded", Level = LogLevel.Information,
        Message = "Airflow connections from AIRFLOW_CONN_* variables: {Count} loaded, {Skipped} skipped")]
    public static partial void EnvironmentLoaded(ILogger logger, int count, int skipped);

    [LoggerMessage(EventId = 1405, EventName = "ApiConnectionsRefreshed", Level = LogLevel.Debug,
        Message = "Airflow API connections refreshed: {Count} connections in {Pages} pages")]
    public static partial void ApiRefreshed(ILogger logger, int count, int pages);

    // Warning for a new problem, Debug when the same problem repeats.
    [LoggerMessage(EventId = 1406, EventName = "ApiConnectionsRefreshFailed",
        Message = "Airflow API connections refresh failed ({Problem}); keeping the last good copy of {Count} connections, {Age} old")]
    public static partial void ApiRefreshFailed(ILogger logger, LogLevel level, string problem, int count, string age);

    [LoggerMessage(EventId = 1407, EventName = "ApiConnectionsStale", Level = LogLevel.Warning,
        Message = "Airflow API connections are older than the max age {MaxAge}; checks that need them are denied (dependency_unavailable) until a refresh succeeds")]
    public static partial void ApiStale(ILogger logger, TimeSpan maxAge);

    [LoggerMessage(EventId = 1408, EventName = "ApiConnectionsRecovered", Level = LogLevel.Information,
        Message = "Airflow API connections loaded again: {Count} connections")]
    public static partial void ApiRecovered(ILogger logger, int count);

    [LoggerMessage(EventId = 1409, EventName = "ApiTokenObtained", Level = LogLevel.Debug,
        Message = "Airflow API token obtained, valid until {ExpiresAt}")]
    public static partial void ApiTokenObtained(ILogger logger, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 1410, EventName = "ApiUnauthorized", Level = LogLevel.Debug,
        Message = "Airflow API answered 401; renewing the token once")]
    public static partial void ApiUnauthorized(ILogger logger);

    [LoggerMessage(EventId = 1411, EventName = "ConnectionAmbiguous", Level = LogLevel.Debug,
        Message = "Several Airflow connections match the request authority {Host}; none chosen")]
    public static partial void ConnectionAmbiguous(ILogger logger, string host);

    [LoggerMessage(EventId = 1412, EventName = "JsonRpcRejected", Level = LogLevel.Information,
        Message = "JSON-RPC body rejected: {Problem}")]
    public static partial void JsonRpcRejected(ILogger logger, string problem);

    [LoggerMessage(EventId = 1413, EventName = "TaskFieldIgnored", Level = LogLevel.Debug,
        Message = "Airflow task field {Field} from {Source} ignored: not a valid value")]
    public static partial void TaskFieldIgnored(ILogger logger, string field, string source);

    [LoggerMessage(EventId = 1414, EventName = "ConnectionsFileWatchFailed", Level = LogLevel.Warning,
        Message = "Watching the Airflow connections file {Path} failed; polling only")]
    public static partial void FileWatchFailed(ILogger logger, string path);

    [LoggerMessage(EventId = 1415, EventName = "ConnectionsUnavailable", Level = LogLevel.Debug,
        Message = "Airflow connections from {Source} are not trusted (never loaded or older than the max age); denying dependency_unavailable")]
    public static partial void ConnectionsUnavailable(ILogger logger, string source);
}
