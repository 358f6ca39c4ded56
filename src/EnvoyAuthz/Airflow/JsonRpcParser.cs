using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Redaction;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>Outcome of reading a body as JSON-RPC 2.0.</summary>
public enum JsonRpcStatus
{
    /// <summary>Not a JSON-RPC request: <c>input.jsonrpc</c> is absent.</summary>
    None,
    /// <summary>One call or a batch: <see cref="JsonRpcResult.Calls"/> is <c>input.jsonrpc</c>.</summary>
    Calls,
    /// <summary>A JSON-RPC endpoint got a body that is not valid JSON-RPC 2.0: deny <c>bad_request</c>.</summary>
    Malformed,
}

/// <summary>The parse result.</summary>
/// <param name="Status">What was found.</param>
/// <param name="Calls">The calls when <see cref="JsonRpcStatus.Calls"/>.</param>
/// <param name="Problem">A fixed description when <see cref="JsonRpcStatus.Malformed"/> (never quotes the body).</param>
public readonly record struct JsonRpcResult(JsonRpcStatus Status, RegoArray? Calls, string? Problem)
{
    /// <summary>Not JSON-RPC.</summary>
    public static JsonRpcResult None => default;
}

/// <summary>
/// JSON-RPC 2.0 bodies → <c>input.jsonrpc</c>: always an <b>array</b> of calls, one element for a
/// single request and one per element for a batch, so one policy rule
/// (<c>every call in input.jsonrpc is allowed</c>) covers both. Each element is
/// <c>{"method", "params", "id"}</c> with <c>params</c> and <c>id</c> left out when the call has
/// none (a notification has no <c>id</c>); a response object a client posts back (no
/// <c>method</c>, a <c>result</c> or <c>error</c>) becomes <c>{"id", "response": true}</c>.
/// <c>params</c> are redacted by <see cref="SecretRedactor"/> as every other view of a body is:
/// values under sensitive keys become <c>[REDACTED]</c>, and JSON held in strings (an <c>extra</c>
/// given as a JSON string) is redacted inside.
/// </summary>
/// <remarks>
/// A request is JSON-RPC when its path is one of <see cref="AirflowJsonRpcOptions.Paths"/> (then a
/// POST body must be valid JSON-RPC 2.0, complete and within <see cref="AirflowJsonRpcOptions.MaxBatchSize"/>,
/// or the check is denied <c>bad_request</c>), or, with <see cref="AirflowJsonRpcOptions.DetectByContent"/>,
/// when a JSON body carries <c>"jsonrpc"</c> members (then it must be valid too). Enforcement
/// needs configured paths: a truncated body on an unconfigured path is not inspected.
/// </remarks>
public sealed class JsonRpcParser
{
    private readonly HashSet<string> _paths;
    private readonly bool _byContent;
    private readonly int _maxBatch;
    private readonly SecretRedactor _redactor;

    /// <summary>Creates the parser.</summary>
    public JsonRpcParser(AirflowJsonRpcOptions options, SensitiveKeys sensitive)
    {
        _paths = new HashSet<string>(options.Paths, StringComparer.Ordinal);
        _byContent = options.DetectByContent;
        _maxBatch = options.MaxBatchSize;
        _redactor = new SecretRedactor(sensitive);
    }

    /// <summary>Whether the request's path (normalised: any spelling of it) is a configured JSON-RPC endpoint.</summary>
    public bool IsEndpoint(AuthzRequest request) => _paths.Contains(request.NormalizedPath);

    /// <summary>Reads the request's body.</summary>
    public JsonRpcResult Parse(AuthzRequest request)
    {
        var endpoint = IsEndpoint(request);
        if (!endpoint && !_byContent)
        {
            return JsonRpcResult.None;
        }
        if (request.Body.Length == 0)
        {
            return endpoint && request.Method == "POST" ? Malformed("a POST to a JSON-RPC endpoint has no body") : JsonRpcResult.None;
        }
        if (request.TruncatedBody)
        {
            return endpoint ? Malformed("the body is truncated (raise Envoy's with_request_body.max_request_bytes)") : JsonRpcResult.None;
        }
        var first = FirstNonSpace(request.Body.Span);
        if (first is not ((byte)'{' or (byte)'['))
        {
            return endpoint ? Malformed("the body is not a JSON object or array") : JsonRpcResult.None;
        }
        RegoValue doc;
        try
        {
            doc = RegoJson.Parse(request.Body.Span);
        }
        catch (System.Text.Json.JsonException)
        {
            return endpoint ? Malformed("the body is not valid JSON") : JsonRpcResult.None;
        }
        if (!endpoint && !LooksLikeJsonRpc(doc))
        {
            return JsonRpcResult.None;
        }
        return Parse(doc);
    }

    /// <summary>Validates a parsed document as JSON-RPC 2.0.</summary>
    public JsonRpcResult Parse(RegoValue doc)
    {
        switch (doc)
        {
            case RegoObject o:
                {
                    var call = Call(o, out var problem);
                    return call is null ? Malformed(problem!) : new JsonRpcResult(JsonRpcStatus.Calls, RegoArray.From(call), null);
                }
            case RegoArray { Count: 0 }:
                return Malformed("the batch is empty");
            case RegoArray a when a.Count > _maxBatch:
                return Malformed($"the batch has more than {_maxBatch} calls");
            case RegoArray a:
                {
                    var calls = new RegoValue[a.Count];
                    for (var i = 0; i < a.Count; i++)
                    {
                        if (a[i] is not RegoObject o)
                        {
                            return Malformed("a batch element is not an object");
                        }
                        var call = Call(o, out var problem);
                        if (call is null)
                        {
                            return Malformed(problem!);
                        }
                        calls[i] = call;
                    }
                    return new JsonRpcResult(JsonRpcStatus.Calls, RegoArray.From(calls), null);
                }
            default:
                return Malformed("the body is not a JSON object or array");
        }
    }

    private RegoObject? Call(RegoObject o, out string? problem)
    {
        problem = null;
        if (o["jsonrpc"] is not RegoString { Value: "2.0" })
        {
            problem = "a call lacks \"jsonrpc\": \"2.0\"";
            return null;
        }
        var id = o["id"];
        if (id is not (null or RegoString or RegoNumber or RegoNull))
        {
            problem = "a call's id is not a string, number or null";
            return null;
        }
        var b = new RegoObject.Builder(3);
        var method = o["method"];
        if (method is null && (o["result"] is not null || o["error"] is not null) && id is not null)
        {
            return b.Add("id", id).Add("response", RegoValue.True).Build();
        }
        if (method is not RegoString { Value.Length: > 0 } m)
        {
            problem = "a call's method is missing or not a non-empty string";
            return null;
        }
        b.Add("method", m);
        var p = o["params"];
        if (p is not (null or RegoObject or RegoArray))
        {
            problem = "a call's params are not an object or array";
            return null;
        }
        if (p is not null)
        {
            b.Add("params", _redactor.Body(p));
        }
        if (id is not null)
        {
            b.Add("id", id);
        }
        return b.Build();
    }

    private static bool LooksLikeJsonRpc(RegoValue doc) => doc switch
    {
        RegoObject o => o["jsonrpc"] is not null,
        RegoArray { Count: > 0 } a => a.Elements.Any(e => e is RegoObject o && o["jsonrpc"] is not null),
        _ => false,
    };

    private static byte FirstNonSpace(ReadOnlySpan<byte> body)
    {
        foreach (var c in body)
        {
            if (c is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                return c;
            }
        }
        return 0;
    }

    private static JsonRpcResult Malformed(string problem) => new(JsonRpcStatus.Malformed, null, problem);
}
