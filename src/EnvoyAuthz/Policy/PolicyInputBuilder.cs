using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Redaction;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Builds the policy <c>input</c> document as ARCHITECTURE.md specifies, directly as Rego values:
/// <c>attributes</c> (protojson of <c>CheckRequest.attributes</c>), <c>parsed_path</c>,
/// <c>parsed_query</c>, <c>parsed_body</c>, <c>truncated_body</c>, <c>version</c>, <c>identity</c>
/// and <c>airflow</c>. Every view of the request goes through one <see cref="SecretRedactor"/>:
/// secret headers (any letter case, in <c>headers</c> and <c>header_map</c>), userinfo, sensitive
/// query parameters, and secrets in the raw and parsed body are masked as <c>[REDACTED]</c>; a
/// policy sees that they were sent, never their value.
/// </summary>
public sealed class PolicyInputBuilder
{
    /// <summary>Headers whose values never reach policy input (see <see cref="SecretRedactor"/> for the rest).</summary>
    public static IReadOnlyList<string> AlwaysRedacted => SecretRedactor.AlwaysRedactedHeaders;

    private static readonly RegoObject Version = new RegoObject.Builder(2)
        .Add("ext_authz", RegoValue.From("v3"))
        .Add("encoding", RegoValue.From("protojson"))
        .Build();

    private readonly SecretRedactor _redactor;
    private readonly ProtoValueConverter _converter;
    private readonly bool _parseBody;
    private readonly int _maxBody;

    /// <summary>Creates the builder.</summary>
    public PolicyInputBuilder(AuthzOptions options)
    {
        _redactor = SecretRedactor.For(options);
        _converter = new ProtoValueConverter(_redactor.Header);
        _parseBody = options.Policy.ParseBody;
        _maxBody = options.Policy.MaxParsedBodyBytes;
    }

    /// <summary>Whether a header's value is kept out of policy input (any letter case).</summary>
    public bool IsRedacted(string lowercaseName) => _redactor.IsSecretHeader(lowercaseName);

    /// <summary>Builds <c>input</c>. Fails (returns false) only when a JSON body is malformed or metadata nests beyond <see cref="ProtoValueConverter.MaxStructDepth"/> levels.</summary>
    public bool TryBuild(AuthzRequest request, CallerIdentity? identity, Airflow.AirflowContext? airflow, out RegoObject input, out string? problem)
    {
        problem = null;
        var b = new RegoObject.Builder(9);
        RegoValue attributes;
        try
        {
            attributes = _converter.Convert(request.Check.Attributes);
        }
        catch (ProtoValueConverter.NestingTooDeepException ex)
        {
            problem = ex.Message;
            input = null!;
            return false;
        }
        b.Add("attributes", attributes is RegoObject ao ? _redactor.HttpAttributes(ao, request.Header("content-type")) : attributes);
        b.Add("parsed_path", Strings(_redactor.ParsedPath(request.ParsedPath)));
        var q = new RegoObject.Builder(request.ParsedQuery.Count);
        foreach (var (k, values) in request.ParsedQuery)
        {
            q.Add(k, Strings(values));
        }
        b.Add("parsed_query", _redactor.Body(q.Build()));
        b.Add("truncated_body", RegoValue.From(request.TruncatedBody));
        b.Add("version", Version);
        if (_parseBody && !request.TruncatedBody && request.Body.Length > 0 && request.Body.Length <= _maxBody)
        {
            if (!TryParseBody(request, out var parsed, out problem))
            {
                input = null!;
                return false;
            }
            if (parsed is not null)
            {
                b.Add("parsed_body", _redactor.Body(parsed));
            }
        }
        if (identity is not null)
        {
            b.Add("identity", identity.InputValue);
        }
        if (airflow?.Input is { } airflowInput)
        {
            b.Add("airflow", airflowInput);
        }
        if (airflow?.JsonRpc is { } jsonRpc)
        {
            b.Add("jsonrpc", jsonRpc);
        }
        input = b.Build();
        return true;
    }

    private static bool TryParseBody(AuthzRequest request, out RegoValue? parsed, out string? problem)
    {
        parsed = null;
        problem = null;
        var contentType = request.Header("content-type") ?? "";
        if (contentType.Contains("application/json", StringComparison.OrdinalIgnoreCase) || contentType.Contains("+json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                parsed = RegoJson.Parse(request.Body.Span);
                return true;
            }
            catch (System.Text.Json.JsonException)
            {
                problem = "the JSON request body is malformed";
                return false;
            }
        }
        if (contentType.Contains("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            var form = CheckRequestParser.ParseQuery(Encoding.UTF8.GetString(request.Body.Span));
            var b = new RegoObject.Builder(form.Count);
            foreach (var (k, values) in form)
            {
                b.Add(k, Strings(values));
            }
            parsed = b.Build();
        }
        return true;
    }

    private static RegoArray Strings(IReadOnlyList<string> values)
    {
        var items = new RegoValue[values.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = RegoValue.From(values[i]);
        }
        return RegoArray.From(items);
    }
}
