using Envoy.Service.Auth.V3;
using Grpc.Net.Client;

namespace EnvoyAuthz.Cli;

/// <summary><c>envoy-authz call</c>: sends one Check to a running service, as Envoy would, and prints the answer.</summary>
public static class CallCommand
{
    /// <summary>Runs the verb.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = CliArgs.Parse(args, flags: [], options: ["--addr", "--token", "--method", "--path", "--host", "--header", "--write-frame"]);
        var addr = cli.Option("--addr") ?? "127.0.0.1:9191";
        var http = new AttributeContext.Types.HttpRequest
        {
            Id = Guid.NewGuid().ToString("N"),
            Method = (cli.Option("--method") ?? "GET").ToUpperInvariant(),
            Path = cli.Option("--path") ?? "/",
            Host = cli.Option("--host") ?? "localhost",
            Scheme = "http",
            Protocol = "HTTP/1.1",
        };
        http.Headers[":method"] = http.Method;
        http.Headers[":path"] = http.Path;
        http.Headers[":authority"] = http.Host;
        if (cli.Option("--token") is { } token)
        {
            http.Headers["authorization"] = "Bearer " + token;
        }
        foreach (var h in cli.Options("--header"))
        {
            var eq = h.IndexOf('=');
            if (eq <= 0)
            {
                throw new CliUsageException($"--header '{h}' must be name=value");
            }
            http.Headers[h[..eq].Trim().ToLowerInvariant()] = h[(eq + 1)..];
        }
        var request = new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };
        if (cli.Option("--write-frame") is { } framePath)
        {
            // A gRPC length-prefixed message (flag 0, 4-byte big-endian length, protobuf), for load generators such as h2load.
            var payload = Google.Protobuf.MessageExtensions.ToByteArray(request);
            var frame = new byte[5 + payload.Length];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), payload.Length);
            payload.CopyTo(frame, 5);
            await File.WriteAllBytesAsync(framePath, frame);
            stdout.WriteLine($"wrote {frame.Length} bytes to {framePath}");
            return 0;
        }
        using var channel = GrpcChannel.ForAddress("http://" + addr);
        var client = new Authorization.AuthorizationClient(channel);
        CheckResponse response;
        try
        {
            response = await client.CheckAsync(request, deadline: DateTime.UtcNow.AddSeconds(10));
        }
        catch (global::Grpc.Core.RpcException ex)
        {
            stderr.WriteLine($"envoy-authz call: {ex.Status.StatusCode}: {ex.Status.Detail}");
            return 1;
        }
        if (response.Status.Code == 0)
        {
            stdout.WriteLine("ALLOW");
            foreach (var h in response.OkResponse.Headers)
            {
                stdout.WriteLine($"  set    {h.Header.Key}: {h.Header.Value}");
            }
            foreach (var h in response.OkResponse.HeadersToRemove)
            {
                stdout.WriteLine($"  remove {h}");
            }
        }
        else
        {
            stdout.WriteLine($"DENY {(int)response.DeniedResponse.Status.Code} ({response.Status.Message})");
            foreach (var h in response.DeniedResponse.Headers)
            {
                stdout.WriteLine($"  {h.Header.Key}: {h.Header.Value}");
            }
            stdout.WriteLine("  body: " + response.DeniedResponse.Body);
        }
        return 0;
    }
}
