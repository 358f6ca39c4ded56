using Envoy.Service.Auth.V3;
using EnvoyAuthz.Pipeline;
using Grpc.Core;

namespace EnvoyAuthz.Grpc;

/// <summary><c>envoy.service.auth.v3.Authorization/Check</c>: hands each call to the pipeline.</summary>
public sealed class AuthorizationService(CheckPipeline pipeline) : Authorization.AuthorizationBase
{
    /// <inheritdoc />
    public override Task<CheckResponse> Check(CheckRequest request, ServerCallContext context) =>
        pipeline.CheckAsync(request, context.CancellationToken, context.Deadline);
}
