using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Policy;

/// <summary>
/// Asks a remote OPA through its REST Data API: <c>POST {url}/v1/data/{path}</c> with
/// <c>{"input": …}</c>. <c>{}</c> (no <c>result</c>) is undefined, which denies. OPA unreachable or
/// slower than the timeout → <c>dependency_unavailable</c>; OPA answering an error → <c>policy_error</c>.
/// </summary>
public sealed class RemoteOpaPolicyEngine : IPolicyEngine
{
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly TimeSpan _timeout;
    private readonly ILogger _logger;

    /// <summary>Creates the engine.</summary>
    public RemoteOpaPolicyEngine(AuthzOptions options, IHttpClientFactory clients, ILogger<RemoteOpaPolicyEngine> logger)
    {
        _http = clients.CreateClient("remote-opa");
        _endpoint = new Uri(options.Policy.RemoteOpa.Url!.TrimEnd('/') + "/v1/data/" + DecisionPaths.ToSlashPath(options.Policy.DecisionPath));
        _timeout = options.Policy.RemoteOpa.Timeout;
        _logger = logger;
    }

    /// <inheritdoc />
    public string Name => PolicyEngines.RemoteOpa;

    /// <inheritdoc />
    public bool Ready => true;

    /// <inheritdoc />
    public bool NeedsInput => true;

    /// <inheritdoc />
    public async ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WritePropertyName("input");
            (context.Input ?? (RegoValue)RegoValue.Null).WriteJson(w);
            w.WriteEndObject();
        }
        using var content = new ReadOnlyMemoryContent(buffer.WrittenMemory);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            using var response = await _http.PostAsync(_endpoint, content, timeout.Token).ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                PolicyLog.RemoteOpaFailed(_logger, "HttpStatus", $"OPA answered {(int)response.StatusCode}");
                return response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout
                    ? PolicyResult.Error(ReasonCode.DependencyUnavailable, "the policy service is unavailable")
                    : PolicyResult.Error(ReasonCode.PolicyError, "the policy service reported an error");
            }
            if (RegoJson.Parse(body) is not RegoObject doc)
            {
                return PolicyResult.Error(ReasonCode.PolicyError, "the policy service's answer is not an object");
            }
            return PolicyResult.Of(doc.TryGetValue("result", out var result) ? result : null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            PolicyLog.RemoteOpaFailed(_logger, "Timeout", $"no answer within {_timeout.TotalMilliseconds} ms");
            return PolicyResult.Error(ReasonCode.DependencyUnavailable, "the policy service timed out");
        }
        catch (HttpRequestException ex)
        {
            PolicyLog.RemoteOpaFailed(_logger, ex.GetType().Name, ex.Message);
            return PolicyResult.Error(ReasonCode.DependencyUnavailable, "the policy service is unreachable");
        }
        catch (JsonException)
        {
            PolicyLog.RemoteOpaFailed(_logger, "JsonException", "OPA's answer is not JSON");
            return PolicyResult.Error(ReasonCode.PolicyError, "the policy service's answer is malformed");
        }
    }
}

/// <summary>Decision path spellings.</summary>
public static class DecisionPaths
{
    /// <summary><c>data.envoy.authz.allow</c> or <c>envoy/authz/allow</c> → <c>envoy/authz/allow</c>.</summary>
    public static string ToSlashPath(string path)
    {
        var p = path.Trim();
        if (p.StartsWith("data.", StringComparison.Ordinal) || p.StartsWith("data/", StringComparison.Ordinal))
        {
            p = p[5..];
        }
        return p.Replace('.', '/').Trim('/');
    }

    /// <summary>Any spelling → <c>data.envoy.authz.allow</c>.</summary>
    public static string ToRef(string path) => "data." + ToSlashPath(path).Replace('/', '.');
}
