using EnvoyAuthz.Redaction;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// The Airflow stage's handle on <see cref="SecretRedactor"/> for bodies sent to Airflow's API and
/// JSON-RPC endpoints: values under sensitive keys (<c>password</c>, …, see <see cref="SensitiveKeys"/>)
/// become <c>[REDACTED]</c>, recursively, and so does an <c>extra</c> given as a JSON string
/// (redacted inside and re-serialised; a non-JSON extra string is replaced whole); a variable whose
/// <c>key</c> is sensitive has its <c>value</c> masked, as Airflow masks it. The policy input applies
/// the same redaction to every request's body, so these rules hold whether or not a request is
/// recognised as Airflow's.
/// </summary>
public sealed class IngressBodyRedactor(SensitiveKeys sensitive)
{
    private readonly SecretRedactor _redactor = new(sensitive);

    /// <summary>The parsed body (<c>input.parsed_body</c>) with secrets masked.</summary>
    public RegoValue Redact(RegoValue parsedBody) => _redactor.Body(parsedBody);

    /// <summary>
    /// A raw body string (<c>input.attributes.request.http.body</c>): the re-serialised redacted
    /// JSON, or <c>[REDACTED]</c> when it cannot be parsed and mentions a secret (a truncated body).
    /// </summary>
    public string RedactRaw(string body, string? contentType = null) => _redactor.RawBody(body, contentType);

    /// <summary><c>input.attributes</c> with <c>request.http</c>'s host, path, query, <c>body</c> and <c>rawBody</c> redacted.</summary>
    public RegoObject RedactAttributes(RegoObject attributes, string? contentType = null) => _redactor.HttpAttributes(attributes, contentType);
}
