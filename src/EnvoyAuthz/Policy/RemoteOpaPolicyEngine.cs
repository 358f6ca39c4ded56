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
    private readonly ILogger _logger;
    private readonly Resilience.DependencyGuard _guard;
    private readonly int _maxResponseBytes;

    /// <summary>Creates the engine.</summary>
    public RemoteOpaPolicyEngine(AuthzOptions options, IHttpClientFactory clients, Resilience.DependencyGuards guards, ILogger<RemoteOpaPolicyEngine> logger)
    {
        _guard = guards.For("remote-opa", options.Policy.RemoteOpa.Timeout);
        _http = clients.CreateClient("remote-opa");
        _endpoint = new Uri(options.Policy.RemoteOpa.Url!.TrimEnd('/') + "/v1/data/" + DecisionPaths.ToSlashPath(options.Policy.DecisionPath));
        _logger = logger;
        _maxResponseBytes = options.Policy.RemoteOpa.MaxResponseBytes;
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
        try
        {
            var (status, body) = await _guard.ExecuteAsync(async ct =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new ReadOnlyMemoryContent(buffer.WrittenMemory) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                // Headers first, then at most MaxResponseBytes, all within this call's timeout and the Check's budget.
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                var bytes = await Resilience.BoundedHttp.ReadBodyAsync(response, _maxResponseBytes, "the policy service's answer", ct).ConfigureAwait(false);
                if (response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout)
                {
                    // OPA (or what fronts it) is unavailable: a failure for the breaker.
                    throw new HttpRequestException($"OPA answered {(int)response.StatusCode}", null, response.StatusCode);
                }
                return (response.StatusCode, bytes);
            }, cancellationToken).ConfigureAwait(false);
            if ((int)status is < 200 or > 299)
            {
                PolicyLog.RemoteOpaFailed(_logger, "HttpStatus", $"OPA answered {(int)status}");
                return PolicyResult.Error(ReasonCode.PolicyError, "the policy service reported an error");
            }
            if (RegoJson.Parse(body) is not RegoObject doc)
            {
                return PolicyResult.Error(ReasonCode.PolicyError, "the policy service's answer is not an object");
            }
            return PolicyResult.Of(doc.TryGetValue("result", out var result) ? result : null);
        }
        catch (Resilience.DependencyUnavailableException ex) when (ex.InnerException is Resilience.ResponseTooLargeException tooLarge)
        {
            PolicyLog.RemoteOpaFailed(_logger, "ResponseTooLarge", tooLarge.Message);
            return PolicyResult.Error(ReasonCode.PolicyError, "the policy service's answer is too large");
        }
        catch (Resilience.DependencyUnavailableException ex)
        {
            PolicyLog.RemoteOpaFailed(_logger, ex.Kind, ex.InnerException?.Message ?? ex.Message);
            return PolicyResult.Error(ReasonCode.DependencyUnavailable, ex.Kind switch
            {
                "timeout" => "the policy service timed out",
                "circuit_open" => "the policy service is unavailable (circuit open)",
                _ => "the policy service is unreachable",
            });
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
