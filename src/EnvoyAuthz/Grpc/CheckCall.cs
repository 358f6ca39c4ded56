using System.Text;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Pipeline;
using Google.Protobuf;
using Grpc.Core;

namespace EnvoyAuthz.Grpc;

/// <summary>
/// The request message of a Check as read off the wire: the parsed <see cref="CheckRequest"/>, or
/// why the bytes are not one. Reading never throws, so a malformed message reaches the handler and
/// is answered (a counted 400 <c>bad_request</c> deny) instead of failing inside gRPC.
/// </summary>
public sealed class CheckCall
{
    private CheckCall(CheckRequest? request, MalformedRequest? problem)
    {
        Request = request;
        Problem = problem;
    }

    /// <summary>The parsed request, or null when <see cref="Problem"/> says why not.</summary>
    public CheckRequest? Request { get; }

    /// <summary>Why the message is not a CheckRequest, when it is not.</summary>
    public MalformedRequest? Problem { get; }

    /// <summary>Reads a Check message; never throws.</summary>
    public static CheckCall Read(DeserializationContext context)
    {
        try
        {
            return new CheckCall(CheckRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence()), null);
        }
        catch (InvalidProtocolBufferException ex) when (ex.InnerException is DecoderFallbackException)
        {
            // Google.Protobuf checks proto3 strings strictly; Envoy forwards header bytes as they came.
            return new CheckCall(null, MalformedRequest.InvalidUtf8);
        }
        catch (InvalidProtocolBufferException ex) when (ex.Message.Contains("levels of nesting", StringComparison.Ordinal))
        {
            return new CheckCall(null, MalformedRequest.NestingTooDeep);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Truncated, a bad tag or wire type, a length beyond the payload — or any other way the parser gives up.
            return new CheckCall(null, MalformedRequest.MalformedProtobuf);
        }
    }

    /// <summary>The marshaller for the Check request: <see cref="Read"/> in, the request's bytes out.</summary>
    public static Marshaller<CheckCall> Marshaller { get; } = Marshallers.Create<CheckCall>(
        (call, context) =>
        {
            var request = call.Request ?? throw new InvalidOperationException("a malformed Check cannot be serialised");
            context.SetPayloadLength(request.CalculateSize());
            request.WriteTo(context.GetBufferWriter());
            context.Complete();
        },
        Read);

    /// <summary>The marshaller for the Check response.</summary>
    public static Marshaller<CheckResponse> ResponseMarshaller { get; } = Marshallers.Create<CheckResponse>(
        (response, context) =>
        {
            context.SetPayloadLength(response.CalculateSize());
            response.WriteTo(context.GetBufferWriter());
            context.Complete();
        },
        context => CheckResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary><c>envoy.service.auth.v3.Authorization/Check</c> with these marshallers.</summary>
    public static Method<CheckCall, CheckResponse> Method { get; } = new(
        MethodType.Unary, Authorization.Descriptor.FullName, "Check", Marshaller, ResponseMarshaller);
}
