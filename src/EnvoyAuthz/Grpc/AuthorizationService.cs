using Envoy.Service.Auth.V3;
using EnvoyAuthz.Pipeline;
using Grpc.Core;

namespace EnvoyAuthz.Grpc;

/// <summary>
/// <c>envoy.service.auth.v3.Authorization/Check</c>: hands each call to the pipeline. Bound by
/// <see cref="AuthorizationMethodProvider"/> with <see cref="CheckCall.Marshaller"/>, so a message
/// that is not a valid <c>CheckRequest</c> arrives here as a <see cref="CheckCall"/> with a
/// <see cref="CheckCall.Problem"/> and is answered as a counted 400 <c>bad_request</c> deny, never
/// as a handler exception (gRPC <c>UNKNOWN</c> with an Error log).
/// </summary>
public sealed class AuthorizationService(CheckPipeline pipeline)
{
    /// <summary>Answers one Check.</summary>
    public async Task<CheckResponse> Check(CheckCall call, ServerCallContext context)
    {
        // The deadline is the system clock's (grpc-dotnet's: now + grpc-timeout): what is left of it is
        // measured against that clock, once, here; the pipeline times the rest on its TimeProvider.
        TimeSpan? timeLeft = context.Deadline == DateTime.MaxValue ? null : context.Deadline.ToUniversalTime() - DateTime.UtcNow;
        try
        {
            return call.Request is { } request
                ? await pipeline.CheckAsync(request, context.CancellationToken, timeLeft).ConfigureAwait(false)
                : await pipeline.RejectMalformedAsync(call.Problem ?? MalformedRequest.MalformedProtobuf, context.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The caller reset the call (the pipeline counted it and logged it at Debug). A status
            // rather than an exception: gRPC logs neither at Error nor with a stack trace.
            throw new RpcException(new Status(StatusCode.Cancelled, "the caller cancelled the call"));
        }
    }
}
