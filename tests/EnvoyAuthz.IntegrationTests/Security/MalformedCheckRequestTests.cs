using System.Text;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.IntegrationTests.Infrastructure;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;

namespace EnvoyAuthz.IntegrationTests.Security;

/// <summary>
/// Bytes Envoy should never send, sent to the real service over gRPC with a raw byte marshaller:
/// invalid UTF-8 in a proto3 string field (Envoy forwards such header values unless
/// <c>encode_raw_headers</c> is set), metadata nested beyond 32 levels, truncated, garbled and
/// bit-flipped protobuf. Every one is answered (a successful RPC carrying a 400
/// <c>bad_request</c> deny), counted in <c>envoy_authz_checks_total</c>, and logged without an Error
/// line or a stack trace: the cause once at Information, repeats at Debug.
/// </summary>
public sealed class MalformedCheckRequestTests
{
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);
    private static readonly Method<byte[], byte[]> RawCheck =
        new(MethodType.Unary, "envoy.service.auth.v3.Authorization", "Check", Raw, Raw);

    private const string BadRequests = "envoy_authz_checks_total{decision=\"deny\",reason=\"bad_request\"}";

    /// <summary>A well-formed Check (no token: the built-in policy answers 401 <c>missing_token</c>) carrying <c>MARK</c> in the field named.</summary>
    private static CheckRequest WithMarker(string field)
    {
        var check = Requests.Http(headers: new Dictionary<string, string> { ["x-ok"] = "fine" });
        var http = check.Attributes.Request.Http;
        switch (field)
        {
            case "header value": http.Headers["x-bad"] = "MARK"; break;
            case "header name": http.Headers["x-MARK"] = "v"; break;
            case "path": http.Path = "/MARK"; http.Headers[":path"] = "/MARK"; break;
            case "host": http.Host = "MARK.example.com"; break;
            case "method": http.Method = "MARK"; break;
            case "body": http.Body = "{\"a\":\"MARK\"}"; break;
            case "query": http.Query = "q=MARK"; break;
            case "context extension": check.Attributes.ContextExtensions["MARK"] = "x"; break;
            case "source principal": check.Attributes.Source.Principal = "spiffe://MARK"; break;
            case "metadata string":
                var s = new Struct();
                s.Fields["k"] = Value.ForString("MARK");
                check.Attributes.MetadataContext = new Envoy.Config.Core.V3.Metadata();
                check.Attributes.MetadataContext.FilterMetadata["f"] = s;
                break;
            default: throw new ArgumentOutOfRangeException(nameof(field), field, null);
        }
        return check;
    }

    /// <summary>The serialised Check with the four bytes of <c>MARK</c> replaced by <paramref name="replacement"/> (same length: framing stays valid).</summary>
    private static byte[] Patched(CheckRequest check, byte[] replacement)
    {
        var bytes = check.ToByteArray();
        var at = bytes.AsSpan().IndexOf("MARK"u8);
        Assert.True(at >= 0, "marker present");
        Assert.Equal(4, replacement.Length);
        replacement.CopyTo(bytes, at);
        return bytes;
    }

    private static CheckRequest NestedStructs(int depth) => Requests.NestedMetadata(depth, lists: false);

    private static CheckRequest NestedLists(int depth) => Requests.NestedMetadata(depth, lists: true);

    private sealed class Service : IAsyncDisposable
    {
        private readonly GrpcChannel _channel;

        private Service(AuthzServiceHost host)
        {
            Host = host;
            _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{host.GrpcPort}");
            Invoker = _channel.CreateCallInvoker();
        }

        public AuthzServiceHost Host { get; }
        public CallInvoker Invoker { get; }

        public static async Task<Service> StartAsync() => new(await AuthzServiceHost.StartAsync([]));

        /// <summary>Sends <paramref name="payload"/> as the Check message; the answer, parsed.</summary>
        public async Task<CheckResponse> SendAsync(byte[] payload)
        {
            var answer = await Invoker.AsyncUnaryCall(RawCheck, null,
                new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken), payload);
            return CheckResponse.Parser.ParseFrom(answer);
        }

        public async Task<double> BadRequestsAsync() => await Host.MetricAsync(BadRequests) ?? 0;

        public async Task<double> AllChecksAsync()
        {
            var text = await Host.Http.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
            return text.Split('\n').Where(l => l.StartsWith("envoy_authz_checks_total{", StringComparison.Ordinal))
                .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        }

        public async ValueTask DisposeAsync()
        {
            _channel.Dispose();
            await Host.DisposeAsync();
        }
    }

    private static string Reason(CheckResponse r)
    {
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, r.HttpResponseCase);
        using var body = JsonDocument.Parse(r.DeniedResponse.Body);
        return body.RootElement.GetProperty("reason").GetString()!;
    }

    private static string DecisionId(CheckResponse r) => r.DynamicMetadata.Fields["decision_id"].StringValue;

    /// <summary>No Error or Critical line, no exception stack trace, anywhere in the service's log.</summary>
    private static void AssertQuietLog(AuthzServiceHost host)
    {
        var lines = host.Logs.Lines;
        Assert.DoesNotContain(lines, l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("\n   at ", StringComparison.Ordinal));
    }

    /// <summary>Each decision id has exactly one cause line naming <paramref name="cause"/>; the first at Information, repeats at Debug.</summary>
    private static void AssertCauseLoggedOnce(AuthzServiceHost host, string cause, IReadOnlyList<string> decisionIds)
    {
        var causeLines = host.Logs.Lines.Where(l => l.Contains("[1002]", StringComparison.Ordinal)).ToList();
        foreach (var id in decisionIds)
        {
            var mine = causeLines.Where(l => l.Contains(id, StringComparison.Ordinal)).ToList();
            Assert.True(mine.Count == 1, $"decision {id}: {mine.Count} cause lines");
            Assert.Contains(cause, mine[0], StringComparison.Ordinal);
        }
        var forCause = causeLines.Where(l => l.Contains(cause, StringComparison.Ordinal)).ToList();
        Assert.StartsWith("Information", forCause[0], StringComparison.Ordinal);
        Assert.All(forCause.Skip(1), l => Assert.StartsWith("Debug", l, StringComparison.Ordinal));
    }

    public static readonly string[] StringFields =
        ["header value", "header name", "path", "host", "method", "body", "query", "context extension", "source principal", "metadata string"];

    [Fact]
    public async Task InvalidUtf8_InEveryStringField_DeniedBadRequest_CountedAndLoggedOnceWithoutAStackTrace()
    {
        await using var service = await Service.StartAsync();
        var before = await service.BadRequestsAsync();
        var ids = new List<string>();
        byte[][] invalid =
        [
            [0x4d, 0x41, 0xff, 0xfe],   // bytes that never occur in UTF-8
            [0x4d, 0x41, 0xc3, 0x28],   // a lead byte without its continuation
            [0x4d, 0xed, 0xa0, 0x80],   // an encoded surrogate (U+D800)
            [0x4d, 0xc0, 0xaf, 0x41],   // an overlong encoding of '/'
        ];
        foreach (var field in StringFields)
        {
            foreach (var bytes in invalid)
            {
                var response = await service.SendAsync(Patched(WithMarker(field), bytes));
                Assert.True(response.Status.Code != 0, $"{field}: denied");
                Assert.Equal(400, (int)response.DeniedResponse.Status.Code);
                Assert.Equal("bad_request", Reason(response));
                ids.Add(DecisionId(response));
            }
        }
        Assert.Equal(StringFields.Length * invalid.Length, await service.BadRequestsAsync() - before);
        AssertQuietLog(service.Host);
        AssertCauseLoggedOnce(service.Host, "invalid_utf8", ids);

        // The same request with valid UTF-8 in those places is answered as usual (401: no token).
        foreach (var field in StringFields)
        {
            var response = await service.SendAsync(Patched(WithMarker(field), "M\u00e9A"u8.ToArray()));
            Assert.Equal("missing_token", Reason(response));
        }
    }

    [Fact]
    public async Task MetadataNestedBeyond32Levels_DeniedBadRequest_Counted_32LevelsStillAnswered()
    {
        await using var service = await Service.StartAsync();
        var before = await service.BadRequestsAsync();

        Assert.Equal("missing_token", Reason(await service.SendAsync(NestedStructs(32).ToByteArray())));
        Assert.Equal("missing_token", Reason(await service.SendAsync(NestedLists(32).ToByteArray())));

        // Beyond protobuf's recursion limit: not readable at all (the cause is logged).
        var ids = new List<string>();
        foreach (var payload in new[] { NestedStructs(33), NestedStructs(40), NestedStructs(100), NestedStructs(1000), NestedLists(60), NestedLists(2000) })
        {
            var response = await service.SendAsync(payload.ToByteArray());
            Assert.Equal(400, (int)response.DeniedResponse.Status.Code);
            Assert.Equal("bad_request", Reason(response));
            ids.Add(DecisionId(response));
        }
        // Lists nest with fewer protobuf levels: readable, but beyond 32 levels all the same.
        var lists = await service.SendAsync(NestedLists(33).ToByteArray());
        Assert.Equal(400, (int)lists.DeniedResponse.Status.Code);
        Assert.Equal("bad_request", Reason(lists));

        Assert.Equal(ids.Count + 1, await service.BadRequestsAsync() - before);
        AssertQuietLog(service.Host);
        AssertCauseLoggedOnce(service.Host, "nesting_too_deep", ids);
    }

    [Fact]
    public async Task CorruptProtobuf_TruncatedOrGarbled_DeniedBadRequest_Counted()
    {
        await using var service = await Service.StartAsync();
        var valid = Requests.Http(headers: new Dictionary<string, string> { ["x-a"] = "some value" }).ToByteArray();
        byte[][] corrupt =
        [
            valid[..^3],                                            // ends inside a field
            valid[..(valid.Length / 2)],                            // ends inside a nested message
            [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],                   // a length far beyond the payload
            [0x0f, 0x01, 0x02],                                     // a tag with wire type 7 (invalid)
            [0x00, 0x00, 0x00],                                     // field number 0
            [0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // a varint longer than 10 bytes
            [0x0b, 0x0a, 0x00],                                     // a start-group that never ends
            Encoding.UTF8.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ];
        var before = await service.BadRequestsAsync();
        var ids = new List<string>();
        foreach (var payload in corrupt)
        {
            var response = await service.SendAsync(payload);
            Assert.Equal(400, (int)response.DeniedResponse.Status.Code);
            Assert.Equal("bad_request", Reason(response));
            ids.Add(DecisionId(response));
        }
        Assert.Equal(corrupt.Length, await service.BadRequestsAsync() - before);
        AssertQuietLog(service.Host);
        AssertCauseLoggedOnce(service.Host, "malformed_protobuf", ids);
    }

    [Fact]
    public async Task BitFlips_EveryCallAnsweredAsACountedDeny_NeverAnErrorOrAnAllow()
    {
        await using var service = await Service.StartAsync();
        var valid = Requests.Http(path: "/api/v1/dags?limit=5", headers: new Dictionary<string, string> { ["x-a"] = "some value", ["accept"] = "application/json" }).ToByteArray();
        var random = new Random(20240611);
        const int Calls = 300;
        var before = await service.AllChecksAsync();
        for (var i = 0; i < Calls; i++)
        {
            var payload = (byte[])valid.Clone();
            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                payload[random.Next(payload.Length)] ^= (byte)(1 << random.Next(8));
            }
            var response = await service.SendAsync(payload); // an RpcException (e.g. UNKNOWN) fails the test
            Assert.NotEqual(0, response.Status.Code);
        }
        Assert.Equal(Calls, await service.AllChecksAsync() - before);
        AssertQuietLog(service.Host);
    }
}
