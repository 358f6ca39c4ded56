using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Stage 3 with Airflow awareness. Builds <c>input.airflow</c> =
/// <c>{connection, dag_id, task_id, run_id, try_number, map_index, task_source, api}</c> (each only when known):
/// <list type="number">
/// <item>ingress: a request to Airflow's REST API gets <c>api</c> (<see cref="AirflowApiClassifier"/>);</item>
/// <item>JSON-RPC: a JSON-RPC 2.0 body gives <c>input.jsonrpc</c> (<see cref="JsonRpcParser"/>); malformed on an endpoint → deny <c>bad_request</c>;</item>
/// <item>connection: by context extension <c>airflow_conn_id</c>, else header <c>x-airflow-conn-id</c>,
/// else (egress only: not for requests to Airflow's API) the request authority; unknown → no
/// <c>connection</c>, the policy decides; connections that cannot be trusted (API copy older than
/// its max age) → deny <c>dependency_unavailable</c>;</item>
/// <item>task context with the source of each field (<see cref="TaskContextResolver"/>; request headers only when configured).</item>
/// </list>
/// </summary>
public sealed class AirflowStage(
    AirflowOptions options,
    ConnectionCatalog catalog,
    AirflowApiClassifier classifier,
    JsonRpcParser jsonRpc,
    TaskContextResolver taskContext,
    IngressBodyRedactor redactor,
    ILogger<AirflowStage> logger) : IAirflowStage
{
    /// <inheritdoc />
    public ValueTask<AirflowContext> ResolveAsync(AuthzRequest request, CallerIdentity? identity, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Resolve(request, identity));

    /// <summary>The synchronous core of <see cref="ResolveAsync"/>.</summary>
    public AirflowContext Resolve(AuthzRequest request, CallerIdentity? identity)
    {
        var b = new RegoObject.Builder(8);

        var api = classifier.Classify(request);
        if (api is not null)
        {
            b.Add("api", api.ToRego());
        }

        var rpc = jsonRpc.Parse(request);
        if (rpc.Status == JsonRpcStatus.Malformed)
        {
            AirflowLog.JsonRpcRejected(logger, rpc.Problem!);
            return AirflowContext.Deny(ReasonCode.BadRequest, "the JSON-RPC body is not valid JSON-RPC 2.0");
        }

        var requested = Requested(request);
        ConnectionLookup lookup = default;
        if (requested is not null)
        {
            lookup = catalog.FindById(requested);
        }
        else if (api is null && options.Match.ByAuthority)
        {
            lookup = catalog.FindByAuthority(request.Host, request.Scheme);
        }
        if (lookup.UnavailableSource is not null)
        {
            return AirflowContext.Deny(ReasonCode.DependencyUnavailable, "Airflow connections are unavailable");
        }
        if (lookup.Connection is { } conn)
        {
            b.Add("connection", conn.InputValue);
        }

        taskContext.Resolve(request, identity, b);

        // Any body sent to Airflow's API may carry secrets (connections, variables, bulk bodies).
        var secretsInBody = rpc.Status == JsonRpcStatus.Calls || api is not null;
        return new AirflowContext(b.Build(), lookup.Connection?.ConnId)
        {
            JsonRpc = rpc.Calls,
            BodyRedactor = secretsInBody ? redactor : null,
        };
    }

    private string? Requested(AuthzRequest request)
    {
        var m = options.Match;
        if (m.ContextExtension.Length > 0 && request.ContextExtensions.TryGetValue(m.ContextExtension, out var ext) && ext.Length > 0)
        {
            return ext;
        }
        if (m.Header.Length > 0 && request.Header(m.Header) is { Length: > 0 } h)
        {
            return h;
        }
        return null;
    }
}
