using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Airflow;

/// <summary>Stage 3: which Airflow connection, DAG and task a request concerns (secrets stripped).</summary>
public interface IAirflowStage
{
    /// <summary>Resolves the Airflow context; <see cref="AirflowContext.None"/> when nothing is known.</summary>
    ValueTask<AirflowContext> ResolveAsync(AuthzRequest request, CallerIdentity? identity, CancellationToken cancellationToken);
}

/// <summary>What the Airflow stage knows: <c>input.airflow</c> and the connection id for the response header.</summary>
/// <param name="Input"><c>input.airflow</c>, or null to leave it out.</param>
/// <param name="ConnectionId">The resolved connection's id, for the <c>x-airflow-conn-id</c> response header.</param>
public sealed record AirflowContext(RegoObject? Input, string? ConnectionId)
{
    /// <summary>Nothing known.</summary>
    public static AirflowContext None { get; } = new(null, null);

    /// <summary>
    /// When set, the check must be denied with this reason before policy runs:
    /// <see cref="ReasonCode.DependencyUnavailable"/> when the connections a request needs are
    /// older than their max age (or never loaded), <see cref="ReasonCode.BadRequest"/> for a
    /// malformed JSON-RPC body on a JSON-RPC endpoint.
    /// </summary>
    public ReasonCode? DenyReason { get; init; }

    /// <summary>A fixed-vocabulary detail for <see cref="DenyReason"/> (never request data).</summary>
    public string? DenyDetail { get; init; }

    /// <summary><c>input.jsonrpc</c>: an array of <c>{method, params, id}</c>, or null when the request is not JSON-RPC.</summary>
    public RegoArray? JsonRpc { get; init; }

    /// <summary>Set when the body is known to carry Airflow secrets (Airflow's API, JSON-RPC). The policy input redacts every body with the same rules (<see cref="Redaction.SecretRedactor"/>) whether or not this is set.</summary>
    public IngressBodyRedactor? BodyRedactor { get; init; }

    /// <summary>A deny decided by the Airflow stage.</summary>
    public static AirflowContext Deny(ReasonCode reason, string detail) => new(null, null) { DenyReason = reason, DenyDetail = detail };
}

/// <summary>The stage until Airflow sources are configured: knows nothing, so <c>input.airflow</c> is absent.</summary>
public sealed class NoAirflowStage : IAirflowStage
{
    /// <inheritdoc />
    public ValueTask<AirflowContext> ResolveAsync(AuthzRequest request, CallerIdentity? identity, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AirflowContext.None);
}
