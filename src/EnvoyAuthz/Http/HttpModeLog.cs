using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Http;

/// <summary>HTTP-mode events (1700–1799).</summary>
internal static partial class HttpModeLog
{
    /// <summary>A proxy (or a client) asked without a proper description of the original request: a 400 <c>bad_request</c> deny follows.</summary>
    [LoggerMessage(EventId = 1700, EventName = "RequestNotDescribed", Level = LogLevel.Information,
        Message = "HTTP-mode request ({Endpoint} endpoint) not answered with a decision: {Problem}; denied 400 bad_request")]
    public static partial void NotDescribed(ILogger logger, string endpoint, string problem);
}
