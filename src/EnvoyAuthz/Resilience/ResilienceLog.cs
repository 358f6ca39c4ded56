using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Resilience;

/// <summary>Resilience events (1500–1599).</summary>
internal static partial class ResilienceLog
{
    [LoggerMessage(EventId = 1500, EventName = "CircuitOpened", Level = LogLevel.Warning,
        Message = "circuit for {Dependency} opened for {BreakSeconds} s: calls fail fast; last good data serves where it is young enough")]
    public static partial void CircuitOpened(ILogger logger, string dependency, double breakSeconds);

    [LoggerMessage(EventId = 1501, EventName = "CircuitClosed", Level = LogLevel.Information,
        Message = "circuit for {Dependency} closed: the dependency answers again")]
    public static partial void CircuitClosed(ILogger logger, string dependency);

    // Overload repeats at will: Warning once per cause and minute with the count held back, Debug for the rest (see LogThrottle).
    [LoggerMessage(EventId = 1502, EventName = "Shed",
        Message = "overloaded ({Cause}): {Inflight} checks in flight, queue full or waited too long; answered 503 overloaded ({Repeats} more shed since the last report)")]
    public static partial void Shed(ILogger logger, LogLevel level, string cause, int inflight, long repeats);

    [LoggerMessage(EventId = 1503, EventName = "RateLimitBackendFallback", Level = LogLevel.Warning,
        Message = "shared rate limits unavailable ({ErrorType}); using local limits")]
    public static partial void RateLimitBackendFallback(ILogger logger, string errorType);
}
