using System.Buffers;
using System.IO.Pipelines;
using EnvoyAuthz.Observability;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Grpc;

/// <summary>
/// Reads a Check call's request message before gRPC does. A caller that resets the stream while its
/// message is still arriving (Envoy does so when its own timeout fires) is then counted in
/// <c>envoy_authz_checks_cancelled_total</c> and logged at Debug here; otherwise gRPC would see the
/// reset mid-read and log it at Error with a stack trace. gRPC then reads the copy. A message larger
/// than <see cref="MaxMessageBytes"/> is left to gRPC, which answers <c>RESOURCE_EXHAUSTED</c>.
/// </summary>
internal sealed class CheckCallBuffer(RequestDelegate next, AuthzMetrics metrics, ILogger<CheckCallBuffer> logger)
{
    /// <summary>gRPC's default receive limit (4 MiB) plus the 5-byte message prefix.</summary>
    public const long MaxMessageBytes = 4 * 1024 * 1024 + 5;

    private static readonly PathString CheckPath = "/" + Envoy.Service.Auth.V3.Authorization.Descriptor.FullName + "/Check";

    public async Task InvokeAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsPost(ctx.Request.Method) || ctx.Request.Path != CheckPath)
        {
            await next(ctx).ConfigureAwait(false);
            return;
        }
        var reader = ctx.Request.BodyReader;
        byte[]? copy = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(ctx.RequestAborted).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.Length > MaxMessageBytes)
                {
                    reader.AdvanceTo(buffer.Start, buffer.End); // leave it to gRPC's own limit
                    break;
                }
                if (result.IsCompleted)
                {
                    copy = buffer.ToArray();
                    reader.AdvanceTo(buffer.End);
                    break;
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // Reset (or stalled past Kestrel's data-rate limit) before its message arrived: nothing to answer.
            metrics.Cancelled.Inc();
            GrpcLog.CallAbandoned(logger, ex.GetType().Name);
            return;
        }
        if (copy is not null)
        {
            ctx.Features.Set<IRequestBodyPipeFeature>(new BufferedBody(PipeReader.Create(new ReadOnlySequence<byte>(copy))));
        }
        await next(ctx).ConfigureAwait(false);
    }

    private sealed class BufferedBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}

/// <summary>gRPC hosting events (1600–1699).</summary>
internal static partial class GrpcLog
{
    [LoggerMessage(EventId = 1600, EventName = "CallAbandoned", Level = LogLevel.Debug,
        Message = "a Check call was reset by its caller before its message arrived ({ErrorType}); nothing was answered")]
    public static partial void CallAbandoned(ILogger logger, string errorType);
}
