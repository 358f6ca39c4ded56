using System.Diagnostics;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Response;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// The orchestrator of one Check, stage by stage: 1 request → 2 identity → 3 airflow → 4 policy →
/// 5 response. Every path that is not a clear allow is a deny with a reason; stages return results
/// rather than throw; an unexpected fault is an <c>internal_error</c> deny (503).
/// </summary>
public sealed class CheckPipeline(
    IIdentityStage identityStage,
    IAirflowStage airflowStage,
    IPolicyEngine policyEngine,
    PolicyInputBuilder inputBuilder,
    CheckResponseFactory responses,
    AuthzMetrics metrics,
    ILogger<CheckPipeline> logger)
{
    /// <summary>True when keys and policy have loaded (readiness).</summary>
    public bool Ready => identityStage.KeysLoaded && policyEngine.Ready;

    /// <summary>Answers one Check. Never throws except for cancellation by the caller.</summary>
    public async Task<CheckResponse> CheckAsync(CheckRequest check, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var decisionId = Guid.CreateVersion7().ToString("N");
        metrics.Inflight.Inc();
        AuthzRequest? request = null;
        CallerIdentity? identity = null;
        DecisionOutcome decision;
        string? connectionId = null;
        try
        {
            (decision, request, identity, connectionId) = await DecideAsync(check, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            decision = DecisionOutcome.Deny(ReasonCode.Overloaded, "the call's deadline passed");
            metrics.Inflight.Dec();
            metrics.RecordCheck(false, decision.Reason, Stopwatch.GetElapsedTime(started).TotalSeconds);
            throw;
        }
        catch (Exception ex)
        {
            DecisionLog.CheckFailed(logger, ex, decisionId, "503 internal_error");
            decision = DecisionOutcome.Deny(ReasonCode.InternalError);
        }

        CheckResponse response;
        var t = Stopwatch.GetTimestamp();
        try
        {
            response = responses.Build(decision, decisionId, identity, connectionId);
        }
        catch (Exception ex)
        {
            DecisionLog.CheckFailed(logger, ex, decisionId, "503 internal_error");
            decision = DecisionOutcome.Deny(ReasonCode.InternalError);
            response = responses.Build(decision, decisionId, null, null);
        }
        metrics.StageDuration.WithLabels(AuthzMetrics.Stages.Response).Observe(Stopwatch.GetElapsedTime(t).TotalSeconds);

        var elapsed = Stopwatch.GetElapsedTime(started);
        metrics.Inflight.Dec();
        metrics.RecordCheck(decision.Allowed, decision.Reason, elapsed.TotalSeconds);
        DecisionLog.Decision(logger, decisionId, decision.Allowed ? "allow" : "deny", decision.Reason.ToWire(),
            decision.Allowed ? 200 : decision.HttpStatus ?? decision.Reason.DefaultHttpStatus(),
            identity?.Subject, identity?.Issuer, request?.Method ?? "-", request?.Host ?? "-",
            request?.PathOnly ?? "-", elapsed.TotalMilliseconds);
        return response;
    }

    private async Task<(DecisionOutcome, AuthzRequest?, CallerIdentity?, string?)> DecideAsync(CheckRequest check, CancellationToken ct)
    {
        // 1 request
        var t = Stopwatch.GetTimestamp();
        var request = CheckRequestParser.Parse(check, out var problem);
        Observe(AuthzMetrics.Stages.Request, t);
        if (request is null)
        {
            return (DecisionOutcome.Deny(ReasonCode.BadRequest, problem), null, null, null);
        }

        // 2 identity
        t = Stopwatch.GetTimestamp();
        var id = await identityStage.AuthenticateAsync(request, ct).ConfigureAwait(false);
        Observe(AuthzMetrics.Stages.Identity, t);
        if (id.Status is IdentityStatus.Invalid or IdentityStatus.Unavailable)
        {
            return (DecisionOutcome.Deny(id.Reason, id.Detail), request, null, null);
        }
        var identity = id.Identity;

        // 3 airflow
        t = Stopwatch.GetTimestamp();
        var airflow = await airflowStage.ResolveAsync(request, identity, ct).ConfigureAwait(false);
        Observe(AuthzMetrics.Stages.Airflow, t);

        // 4 policy
        t = Stopwatch.GetTimestamp();
        RegoObject? input = null;
        if (policyEngine.NeedsInput && !inputBuilder.TryBuild(request, identity, airflow.Input, out input, out problem))
        {
            Observe(AuthzMetrics.Stages.Policy, t);
            return (DecisionOutcome.Deny(ReasonCode.BadRequest, problem), request, identity, null);
        }
        var result = await policyEngine.EvaluateAsync(new PolicyContext { Request = request, Identity = identity, Input = input }, ct).ConfigureAwait(false);
        DecisionOutcome decision;
        if (result.ErrorReason is { } error)
        {
            decision = DecisionOutcome.Deny(error, result.ErrorDetail);
        }
        else
        {
            decision = DecisionInterpreter.Interpret(result.Decision, out var malformed);
            if (malformed is not null)
            {
                PolicyLog.MalformedDecision(logger, malformed);
            }
            if (!decision.Allowed && identity is null && decision.Reason == ReasonCode.PolicyDenied && decision.HttpStatus is null)
            {
                // Denied without any credentials: tell the caller to authenticate (401 + WWW-Authenticate).
                decision = DecisionOutcome.Deny(ReasonCode.MissingToken);
            }
        }
        Observe(AuthzMetrics.Stages.Policy, t);
        return (decision, request, identity, decision.Allowed ? airflow.ConnectionId : null);
    }

    private void Observe(string stage, long started) =>
        metrics.StageDuration.WithLabels(stage).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
}
