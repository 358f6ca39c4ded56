using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Reads a policy's decision in either OPA-Envoy form: a boolean, or an object with <c>allowed</c>
/// (required) and optional <c>headers</c>, <c>response_headers_to_add</c>,
/// <c>request_headers_to_remove</c>, <c>query_parameters_to_set</c>,
/// <c>query_parameters_to_remove</c>, <c>dynamic_metadata</c>, <c>http_status</c>, <c>body</c>, and
/// our <c>reason</c> (one of the fixed reason codes). Undefined denies; a malformed decision is a
/// <c>policy_error</c> deny.
/// </summary>
public static class DecisionInterpreter
{
    /// <summary>Interprets <paramref name="decision"/> (null = undefined).</summary>
    public static DecisionOutcome Interpret(RegoValue? decision, out string? problem)
    {
        problem = null;
        switch (decision)
        {
            case null:
                return DecisionOutcome.Deny(ReasonCode.PolicyDenied, "the policy decision is undefined");
            case RegoBoolean b:
                return b.Value ? DecisionOutcome.Allow() : DecisionOutcome.Deny(ReasonCode.PolicyDenied);
            case RegoObject o:
                return InterpretObject(o, out problem);
            default:
                problem = $"the decision is a {decision.TypeName}, not a boolean or an object";
                return DecisionOutcome.Deny(ReasonCode.PolicyError);
        }
    }

    private static DecisionOutcome InterpretObject(RegoObject o, out string? problem)
    {
        problem = null;
        if (!o.TryGetValue("allowed", out var allowedValue) || allowedValue is not RegoBoolean allowed)
        {
            problem = "the decision object has no boolean 'allowed'";
            return DecisionOutcome.Deny(ReasonCode.PolicyError);
        }
        try
        {
            var reason = allowed.Value ? ReasonCode.Allowed : ReasonCode.PolicyDenied;
            if (!allowed.Value && o.TryGetValue("reason", out var r) && r is RegoString rs &&
                ReasonCodes.TryParse(rs.Value, out var parsed) && parsed != ReasonCode.Allowed)
            {
                reason = parsed;
            }
            int? status = null;
            if (o.TryGetValue("http_status", out var hs))
            {
                if (hs is not RegoNumber n || !n.TryGetInt32(out var code) || code < 100 || code > 599)
                {
                    throw new FormatException("'http_status' must be an integer HTTP status");
                }
                status = code;
            }
            string? body = null;
            if (o.TryGetValue("body", out var bodyValue))
            {
                body = bodyValue is RegoString s ? s.Value : bodyValue.ToJson();
            }
            string? rateLimit = null;
            if (o.TryGetValue("rate_limit", out var rl))
            {
                rateLimit = rl is RegoString rls ? rls.Value : throw new FormatException("'rate_limit' must name a configured rule");
            }
            RegoObject? metadata = null;
            if (o.TryGetValue("dynamic_metadata", out var md))
            {
                metadata = md as RegoObject ?? throw new FormatException("'dynamic_metadata' must be an object");
            }
            return new DecisionOutcome
            {
                Allowed = allowed.Value,
                Reason = reason,
                HttpStatus = status,
                Headers = HeaderPairs(o, "headers"),
                ResponseHeadersToAdd = HeaderPairs(o, "response_headers_to_add"),
                RequestHeadersToRemove = StringList(o, "request_headers_to_remove"),
                QueryParametersToSet = HeaderPairs(o, "query_parameters_to_set"),
                QueryParametersToRemove = StringList(o, "query_parameters_to_remove"),
                DynamicMetadata = metadata,
                Body = body,
                RateLimitRule = rateLimit,
            };
        }
        catch (FormatException ex)
        {
            problem = ex.Message;
            return DecisionOutcome.Deny(ReasonCode.PolicyError);
        }
    }

    /// <summary>An object of name → string (or array of strings), or an array of such objects / {key, value} pairs.</summary>
    private static List<KeyValuePair<string, string>> HeaderPairs(RegoObject o, string field)
    {
        var result = new List<KeyValuePair<string, string>>();
        if (!o.TryGetValue(field, out var v))
        {
            return result;
        }
        switch (v)
        {
            case RegoObject obj:
                AddObject(obj, result, field);
                break;
            case RegoArray arr:
                foreach (var item in arr.Elements)
                {
                    if (item is not RegoObject io)
                    {
                        throw new FormatException($"'{field}' items must be objects");
                    }
                    if (io.Count == 2 && io.TryGetValue("key", out var k) && k is RegoString ks && io.TryGetValue("value", out var kv) && kv is RegoString kvs)
                    {
                        result.Add(new(ks.Value, kvs.Value));
                    }
                    else
                    {
                        AddObject(io, result, field);
                    }
                }
                break;
            default:
                throw new FormatException($"'{field}' must be an object or an array");
        }
        return result;
    }

    private static void AddObject(RegoObject obj, List<KeyValuePair<string, string>> result, string field)
    {
        foreach (var (key, value) in obj.Pairs)
        {
            if (key is not RegoString name)
            {
                throw new FormatException($"'{field}' keys must be strings");
            }
            switch (value)
            {
                case RegoString s:
                    result.Add(new(name.Value, s.Value));
                    break;
                case RegoArray a:
                    foreach (var item in a.Elements)
                    {
                        result.Add(new(name.Value, item is RegoString si ? si.Value : throw new FormatException($"'{field}.{name.Value}' values must be strings")));
                    }
                    break;
                case RegoNumber or RegoBoolean:
                    result.Add(new(name.Value, value.ToJson()));
                    break;
                default:
                    throw new FormatException($"'{field}.{name.Value}' must be a string or an array of strings");
            }
        }
    }

    private static List<string> StringList(RegoObject o, string field)
    {
        if (!o.TryGetValue(field, out var v))
        {
            return [];
        }
        IReadOnlyList<RegoValue> items = v switch
        {
            RegoArray a => a.Elements,
            RegoSet s => s.Elements,
            _ => throw new FormatException($"'{field}' must be an array of strings"),
        };
        return items.Select(i => i is RegoString s ? s.Value : throw new FormatException($"'{field}' must be an array of strings")).ToList();
    }
}
