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
public sealed record AirflowContext(RegoObject? Input, string? ConnectionId)
{
    /// <summary>Nothing known.</summary>
    public static AirflowContext None { get; } = new(null, null);
}

/// <summary>The stage until Airflow sources are configured: knows nothing, so <c>input.airflow</c> is absent.</summary>
public sealed class NoAirflowStage : IAirflowStage
{
    /// <inheritdoc />
    public ValueTask<AirflowContext> ResolveAsync(AuthzRequest request, CallerIdentity? identity, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AirflowContext.None);
}
