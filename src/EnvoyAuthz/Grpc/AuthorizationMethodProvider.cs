using Grpc.AspNetCore.Server.Model;

namespace EnvoyAuthz.Grpc;

/// <summary>
/// Binds <see cref="AuthorizationService.Check"/> to <see cref="CheckCall.Method"/> (the generated
/// binder's marshaller throws on a malformed message, which gRPC turns into <c>UNKNOWN</c> and an
/// Error log with a stack trace).
/// </summary>
internal sealed class AuthorizationMethodProvider : IServiceMethodProvider<AuthorizationService>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<AuthorizationService> context) =>
        context.AddUnaryMethod(CheckCall.Method, [], static (service, call, callContext) => service.Check(call, callContext));
}
