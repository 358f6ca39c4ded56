using System.Text;
using System.Text.Json;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Google.Protobuf.WellKnownTypes;
using RpcStatus = Google.Rpc.Status;

namespace EnvoyAuthz.Response;

/// <summary>
/// Stage 5: a decision → <see cref="CheckResponse"/>. Allow: <c>OkHttpResponse</c> with identity
/// headers set (<c>OVERWRITE_IF_EXISTS_OR_ADD</c>, <c>append</c> unset); every configured identity
/// header that this answer does not set is listed in <c>headers_to_remove</c>, so a client-sent one
/// never reaches upstream (Envoy applies <c>headers_to_remove</c> after setting headers, so a header
/// we set must not also be listed, or Envoy would strip our own value). Deny: a successful RPC with a
/// non-zero <c>status.code</c> and a <c>DeniedHttpResponse</c>: 401 + RFC 6750 <c>WWW-Authenticate</c>
/// for token problems, 403 for policy denies, 429/503 as the reason says; JSON body
/// <c>{"error","reason","decision_id"}</c>. The decision id is in dynamic metadata either way.
/// Header values travel as they are, non-ASCII text included (Envoy sends UTF-8; HTTP mode writes
/// UTF-8 too); a header whose value no HTTP header may carry (a control character other than tab, an
/// unpaired surrogate) or whose name is not an HTTP token is dropped — an identity header so dropped
/// is listed in <c>headers_to_remove</c> like any other identity header this answer does not set.
/// </summary>
public sealed class CheckResponseFactory
{
    private readonly ResponseOptions _options;
    private readonly string[] _identityHeaders;

    /// <summary>Creates the factory.</summary>
    public CheckResponseFactory(AuthzOptions options)
    {
        _options = options.Response;
        _identityHeaders = [.. options.Response.IdentityHeaderNames().Distinct(StringComparer.Ordinal)];
    }

    /// <summary>Builds the answer.</summary>
    public CheckResponse Build(DecisionOutcome decision, string decisionId, CallerIdentity? identity, string? connectionId)
    {
        var metadata = DynamicMetadata(decision, decisionId);
        return decision.Allowed ? Allow(decision, decisionId, identity, connectionId, metadata) : Deny(decision, decisionId, metadata);
    }

    private CheckResponse Allow(DecisionOutcome decision, string decisionId, CallerIdentity? identity, string? connectionId, Struct metadata)
    {
        var ok = new OkHttpResponse();
        var set = new HashSet<string>(StringComparer.Ordinal);
        void Set(string? name, string? value)
        {
            if (string.IsNullOrEmpty(name) || value is null || !IsValidHeaderName(name) || !IsValidHeaderValue(value))
            {
                return;
            }
            var lower = name.ToLowerInvariant();
            if (!set.Add(lower))
            {
                // Later (policy) values replace earlier ones for the same header.
                var existing = ok.Headers.First(h => h.Header.Key == lower);
                existing.Header.Value = value;
                return;
            }
            ok.Headers.Add(Header(lower, value));
        }

        if (identity is not null)
        {
            Set(_options.SubjectHeader, identity.Subject);
            Set(_options.IssuerHeader, identity.Issuer);
            Set(_options.GroupsHeader, identity.Groups.Count > 0 ? string.Join(',', identity.Groups) : null);
            Set(_options.ScopesHeader, identity.Scopes.Count > 0 ? string.Join(' ', identity.Scopes) : null);
            Set(_options.RemoteUserHeader, identity.Subject.Length > 0 ? identity.Subject : null);
        }
        Set(_options.ConnectionIdHeader, connectionId);
        Set(_options.DecisionIdHeader, decisionId);
        foreach (var (name, value) in decision.Headers)
        {
            Set(name, value);
        }

        var removed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in _identityHeaders)
        {
            if (!set.Contains(name) && removed.Add(name))
            {
                ok.HeadersToRemove.Add(name);
            }
        }
        foreach (var name in decision.RequestHeadersToRemove)
        {
            var lower = name.ToLowerInvariant();
            if (IsValidHeaderName(lower) && !set.Contains(lower) && removed.Add(lower))
            {
                ok.HeadersToRemove.Add(lower);
            }
        }
        foreach (var (name, value) in decision.ResponseHeadersToAdd)
        {
            if (IsValidHeaderName(name) && IsValidHeaderValue(value))
            {
                ok.ResponseHeadersToAdd.Add(Header(name.ToLowerInvariant(), value));
            }
        }
        foreach (var (name, value) in decision.QueryParametersToSet)
        {
            ok.QueryParametersToSet.Add(new QueryParameter { Key = name, Value = value });
        }
        ok.QueryParametersToRemove.AddRange(decision.QueryParametersToRemove);

        return new CheckResponse
        {
            Status = new RpcStatus { Code = 0 },
            OkResponse = ok,
            DynamicMetadata = metadata,
        };
    }

    private CheckResponse Deny(DecisionOutcome decision, string decisionId, Struct metadata)
    {
        var status = decision.HttpStatus ?? decision.Reason.DefaultHttpStatus();
        var denied = new DeniedHttpResponse
        {
            Status = new Envoy.Type.V3.HttpStatus { Code = (Envoy.Type.V3.StatusCode)status },
            Body = decision.Body ?? ErrorBody(status, decision.Reason, decisionId),
        };
        denied.Headers.Add(Header("content-type", decision.Body is null ? "application/json" : "text/plain; charset=utf-8"));
        if (!string.IsNullOrEmpty(_options.DecisionIdHeader))
        {
            denied.Headers.Add(Header(_options.DecisionIdHeader.ToLowerInvariant(), decisionId));
        }
        if (status == 401)
        {
            denied.Headers.Add(Header("www-authenticate", WwwAuthenticate(decision)));
        }
        foreach (var (name, value) in decision.Headers)
        {
            if (IsValidHeaderName(name) && IsValidHeaderValue(value))
            {
                denied.Headers.Add(Header(name.ToLowerInvariant(), value));
            }
        }
        return new CheckResponse
        {
            // google.rpc.Code: 16 UNAUTHENTICATED, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, 3 INVALID_ARGUMENT, 7 PERMISSION_DENIED.
            Status = new RpcStatus
            {
                Code = status switch { 401 => 16, 429 => 8, 503 => 14, 400 => 3, _ => 7 },
                Message = decision.Reason.ToWire(),
            },
            DeniedResponse = denied,
            DynamicMetadata = metadata,
        };
    }

    /// <summary>RFC 6750 §3: <c>Bearer realm="…"</c>, plus <c>error="invalid_token"</c> when a token was presented.</summary>
    private string WwwAuthenticate(DecisionOutcome decision)
    {
        var sb = new StringBuilder("Bearer realm=\"").Append(_options.Realm).Append('"');
        if (decision.Reason != ReasonCode.MissingToken)
        {
            sb.Append(", error=\"invalid_token\"");
            if (decision.Detail is { } detail)
            {
                // The detail is fixed vocabulary (never request data); keep it within RFC 6750's character set.
                var safe = new string(detail.Where(c => c is >= ' ' and <= '~' and not '"' and not '\\').ToArray());
                sb.Append(", error_description=\"").Append(safe).Append('"');
            }
        }
        return sb.ToString();
    }

    private static string ErrorBody(int status, ReasonCode reason, string decisionId)
    {
        using var stream = new MemoryStream(128);
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("error", ErrorName(status));
            w.WriteString("reason", reason.ToWire());
            w.WriteString("decision_id", decisionId);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    private static string ErrorName(int status) => status switch
    {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        429 => "too_many_requests",
        503 => "service_unavailable",
        _ => "denied",
    };

    private Struct DynamicMetadata(DecisionOutcome decision, string decisionId)
    {
        var s = new Struct();
        if (decision.DynamicMetadata is { } md)
        {
            foreach (var (k, v) in md.Pairs)
            {
                if (k is RegoString ks)
                {
                    s.Fields[ks.Value] = ToProtoValue(v);
                }
            }
        }
        s.Fields[_options.DecisionIdMetadataKey] = Value.ForString(decisionId);
        s.Fields["reason"] = Value.ForString(decision.Reason.ToWire());
        return s;
    }

    private static Value ToProtoValue(RegoValue v) => v switch
    {
        RegoNull => Value.ForNull(),
        RegoBoolean b => Value.ForBool(b.Value),
        RegoNumber n => Value.ForNumber(n.ToDouble()),
        RegoString s => Value.ForString(s.Value),
        RegoArray a => Value.ForList([.. a.Elements.Select(ToProtoValue)]),
        RegoSet set => Value.ForList([.. set.Elements.Select(ToProtoValue)]),
        RegoObject o => Value.ForStruct(ToStruct(o)),
        _ => Value.ForNull(),
    };

    private static Struct ToStruct(RegoObject o)
    {
        var s = new Struct();
        foreach (var (k, v) in o.Pairs)
        {
            s.Fields[k is RegoString ks ? ks.Value : k.ToJson()] = ToProtoValue(v);
        }
        return s;
    }

    private static HeaderValueOption Header(string name, string value) => new()
    {
        Header = new HeaderValue { Key = name, Value = value },
        AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
    };

    /// <summary>
    /// A value any HTTP header may carry (RFC 9110 field-value, obs-text as UTF-8): no control
    /// character but tab, no DEL, no unpaired surrogate (it has no UTF-8 form). Non-ASCII text is fine.
    /// </summary>
    internal static bool IsValidHeaderValue(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c < ' ' && c != '\t' || c == '\x7f')
            {
                return false;
            }
            if (char.IsSurrogate(c))
            {
                if (!char.IsHighSurrogate(c) || i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]))
                {
                    return false;
                }
                i++;
            }
        }
        return true;
    }

    /// <summary>An HTTP token (RFC 9110 §5.6.2), optionally after one <c>:</c> (an HTTP/2 pseudo-header for Envoy).</summary>
    internal static bool IsValidHeaderName(string name)
    {
        var token = name.StartsWith(':') ? name.AsSpan(1) : name.AsSpan();
        return token.Length > 0 && !token.ContainsAnyExcept(TokenChars);
    }

    private static readonly System.Buffers.SearchValues<char> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
}
