using System.Diagnostics;
using System.Threading.RateLimiting;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Airflow;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.RateLimiting;
using EnvoyAuthz.Resilience;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Response;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// The orchestrator of one Check, stage by stage: 1 request → 2 identity → 3 airflow →
/// rate limits → 4 policy → 5 response. Every path that is not a clear allow is a deny with a
/// reason; stages return results rather than throw. Around the stages: a concurrency limit with a
/// short queue (overload is a fast 503 <c>overloaded</c>), a time budget that ends before Envoy's
/// timeout or the call's deadline (then a 503 <c>overloaded</c> deny; a call whose deadline has
/// already passed is answered so without any work), and the configured failure mode for an
/// unexpected fault (503 <c>internal_error</c> deny, or a gRPC error). A call the caller cancels is
/// not answered: it is counted in <c>envoy_authz_checks_cancelled_total</c> and logged at Debug.
/// </summary>
public sealed class CheckPipeline(
    IIdentityStage identityStage,
    IAirflowStage airflowStage,
    IRateLimiter rateLimiter,
    IPolicyEngine policyEngine,
    PolicyInputBuilder inputBuilder,
    CheckResponseFactory responses,
    AuthzOptions options,
    AuthzMetrics metrics,
    ILogger<CheckPipeline> logger,
    TimeProvider? timeProvider = null) : IDisposable
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;
    private readonly LogThrottle _throttle = new(timeProvider ?? TimeProvider.System, TimeSpan.FromMinutes(1));

    private readonly ConcurrencyLimiter _slots = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.Server.MaxConcurrentChecks,
        QueueLimit = options.Server.MaxQueuedChecks,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    private volatile bool _warm;

    /// <summary>True when keys and policy have loaded and the hot path has run once (readiness).</summary>
    public bool Ready => _warm && identityStage.KeysLoaded && policyEngine.Ready;

    /// <summary>
    /// Runs a few synthetic Checks (no token) through every stage, without metrics or decision
    /// logs, so the first real Checks do not pay for JIT compilation inside Envoy's timeout.
    /// </summary>
    public async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = "GET", Path = "/__envoy_authz_warmup?x=1", Host = "warmup.local", Scheme = "http" };
        http.Headers[":path"] = http.Path;
        var check = new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };
        for (var i = 0; i < 3; i++)
        {
            try
            {
                var (decision, _, _, _) = await DecideAsync(check, cancellationToken).ConfigureAwait(false);
                responses.Build(decision, "warmup", null, null);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                break; // a failing warm-up is not fatal: real Checks report their own faults
            }
        }
        _warm = true;
    }

    /// <summary>
    /// Answers one Check. <paramref name="callCancelled"/> is the caller going away (nothing is
    /// answered then); <paramref name="timeLeft"/> is what was left of the call's gRPC deadline when
    /// it arrived, if it has one (zero or less: already passed). Throws only for a cancelled call, or
    /// an internal fault when the failure mode is <c>error</c>.
    /// </summary>
    public Task<CheckResponse> CheckAsync(CheckRequest check, CancellationToken callCancelled, TimeSpan? timeLeft = null) =>
        AnswerAsync(check, null, callCancelled, timeLeft);

    /// <summary>
    /// Answers a Check whose message could not be read (<paramref name="cause"/>): a counted 400
    /// <c>bad_request</c> deny with a decision id and a decision log line, without running any stage.
    /// The cause is logged once a minute at Information, repeats at Debug.
    /// </summary>
    public Task<CheckResponse> RejectMalformedAsync(MalformedRequest cause, CancellationToken callCancelled) =>
        AnswerAsync(null, cause, callCancelled, null);

    private async Task<CheckResponse> AnswerAsync(CheckRequest? check, MalformedRequest? malformed, CancellationToken callCancelled, TimeSpan? timeLeft)
    {
        var started = Stopwatch.GetTimestamp();
        var arrived = _time.GetTimestamp();
        var decisionId = Guid.CreateVersion7().ToString("N");
        metrics.Inflight.Inc();
        AuthzRequest? request = null;
        CallerIdentity? identity = null;
        DecisionOutcome decision;
        string? connectionId = null;
        var budget = options.Server.CheckTimeout;
        if (timeLeft is { } remaining)
        {
            // Leave a margin for the answer to travel back: a tenth of what is left, 10–50 ms.
            var margin = TimeSpan.FromTicks(Math.Clamp(remaining.Ticks / 10, TimeSpan.FromMilliseconds(10).Ticks, TimeSpan.FromMilliseconds(50).Ticks));
            var left = remaining - margin;
            budget = left < budget ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : budget;
        }
        using var budgetTimer = new CancellationTokenSource(budget, _time);
        using var budgetCts = CancellationTokenSource.CreateLinkedTokenSource(callCancelled, budgetTimer.Token);
        var ct = budgetCts.Token;
        RateLimitLease? slot = null;
        var stage = "queued";
        try
        {
            if (malformed is { } cause)
            {
                decision = DecisionOutcome.Deny(ReasonCode.BadRequest, cause.Describe());
                var first = _throttle.ShouldReport(cause.ToWire(), out var repeats);
                DecisionLog.MalformedRequest(logger, first ? LogLevel.Information : LogLevel.Debug, decisionId, cause.ToWire(), repeats);
            }
            else if (budget <= TimeSpan.Zero)
            {
                // No time left (the call's deadline has passed, or is within the answer's margin): answer without any work.
                metrics.Shed.WithLabels("deadline").Inc();
                decision = DecisionOutcome.Deny(ReasonCode.Overloaded, "the call's deadline has passed");
            }
            else
            {
                slot = await AcquireSlotAsync(ct).ConfigureAwait(false);
                if (slot is null)
                {
                    decision = DecisionOutcome.Deny(ReasonCode.Overloaded, "too many checks in flight");
                }
                else
                {
                    stage = "deciding";
                    ct.ThrowIfCancellationRequested(); // the budget ran out in the queue, or the caller left: start no work
                    (decision, request, identity, connectionId) = await DecideAsync(check!, ct).ConfigureAwait(false);
                    callCancelled.ThrowIfCancellationRequested(); // decided, but nobody is waiting for the answer
                }
            }
        }
        catch (OperationCanceledException) when (callCancelled.IsCancellationRequested && !DeadlinePassed(timeLeft, arrived))
        {
            // The caller reset the call: no answer, no decision; counted apart from the decisions.
            var elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            metrics.Inflight.Dec();
            metrics.Cancelled.Inc();
            DecisionLog.CheckCancelled(logger, decisionId, elapsedMs, stage);
            throw;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Our budget (or the call's deadline) ran out: answer now rather than let Envoy time out.
            metrics.Shed.WithLabels("deadline").Inc();
            decision = DecisionOutcome.Deny(ReasonCode.Overloaded, "the check's time budget ran out");
        }
        catch (Exception ex)
        {
            var error = options.Server.FailureMode == FailureModes.Error;
            DecisionLog.CheckFailed(logger, ex, decisionId, error ? "gRPC UNAVAILABLE (failure mode error)" : "503 internal_error");
            if (error)
            {
                metrics.Inflight.Dec();
                metrics.RecordCheck(false, ReasonCode.InternalError, Stopwatch.GetElapsedTime(started).TotalSeconds);
                throw new global::Grpc.Core.RpcException(new global::Grpc.Core.Status(global::Grpc.Core.StatusCode.Unavailable,
                    $"envoy-authz internal error (decision {decisionId})"));
            }
            decision = DecisionOutcome.Deny(ReasonCode.InternalError);
        }
        finally
        {
            slot?.Dispose();
            slot = null;
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
            LogSafe(identity?.Subject), identity?.Issuer,
            // A request refused at stage 1 (bad_request) is still named, from the raw attributes, through the same filters.
            LogSafe(Redaction.SecretRedactor.MethodForLog(request?.Method ?? check?.Attributes?.Request?.Http?.Method)) ?? "-",
            LogSafe(Redaction.SecretRedactor.HostForLog(request?.Host ?? check?.Attributes?.Request?.Http?.Host)) ?? "-",
            LogSafe(Redaction.SecretRedactor.PathForLog(request?.PathOnly ?? check?.Attributes?.Request?.Http?.Path)) ?? "-",
            elapsed.TotalMilliseconds);
        return response;
    }

    /// <summary>A slot to run in, or null when shed (queue full, or no slot within the queue timeout).</summary>
    private async ValueTask<RateLimitLease?> AcquireSlotAsync(CancellationToken ct)
    {
        var lease = _slots.AttemptAcquire();
        if (lease.IsAcquired)
        {
            return lease;
        }
        lease.Dispose();
        using var queueTimer = new CancellationTokenSource(options.Server.QueueTimeout, _time);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, queueTimer.Token);
        try
        {
            lease = await _slots.AcquireAsync(1, wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            Shed("queue_timeout");
            return null;
        }
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            Shed("queue_full");
            return null;
        }
        return lease;
    }

    /// <summary>Counts a shed Check; the Warning is throttled (overload repeats at will), repeats go to Debug.</summary>
    private void Shed(string cause)
    {
        metrics.Shed.WithLabels(cause).Inc();
        var first = _throttle.ShouldReport("shed:" + cause, out var repeats);
        ResilienceLog.Shed(logger, first ? LogLevel.Warning : LogLevel.Debug, cause, options.Server.MaxConcurrentChecks, repeats);
    }

    /// <summary>True when the call's deadline has passed (then grpc-dotnet cancels the call itself, and the deny is a shed).</summary>
    private bool DeadlinePassed(TimeSpan? timeLeft, long arrived) =>
        timeLeft is { } left && _time.GetElapsedTime(arrived) >= left;

    /// <inheritdoc />
    public void Dispose() => _slots.Dispose();

    private async Task<(DecisionOutcome, AuthzRequest?, CallerIdentity?, string?)> DecideAsync(CheckRequest check, CancellationToken ct)
    {
        // 1 request
        var t = Stopwatch.GetTimestamp();
        var request = CheckRequestParser.Parse(check, options.Server.AmbiguousPaths != AmbiguousPathModes.Normalize, out var problem);
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
        if (airflow.DenyReason is { } airflowDeny)
        {
            return (DecisionOutcome.Deny(airflowDeny, airflow.DenyDetail), request, identity, null);
        }

        // rate limits (per identity, per connection)
        var limit = await rateLimiter.AcquireAsync(request, identity, airflow.ConnectionId, ct).ConfigureAwait(false);
        if (!limit.Allowed)
        {
            return (new DecisionOutcome
            {
                Allowed = false,
                Reason = ReasonCode.RateLimited,
                Headers = [.. limit.Headers()],
            }, request, identity, null);
        }

        // 4 policy
        t = Stopwatch.GetTimestamp();
        RegoObject? input = null;
        if (policyEngine.NeedsInput && !inputBuilder.TryBuild(request, identity, airflow, out input, out problem))
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
        if (decision.Allowed && decision.RateLimitRule is { } policyRule)
        {
            // The policy chose a limit for this request.
            var named = await rateLimiter.AcquireNamedAsync(policyRule, request, identity, airflow.ConnectionId, ct).ConfigureAwait(false);
            if (named is null)
            {
                PolicyLog.MalformedDecision(logger, "the decision names a rate-limit rule that is not configured");
                return (DecisionOutcome.Deny(ReasonCode.PolicyError), request, identity, null);
            }
            if (!named.Value.Allowed)
            {
                return (new DecisionOutcome { Allowed = false, Reason = ReasonCode.RateLimited, Headers = [.. named.Value.Headers()] }, request, identity, null);
            }
            if (named.Value.Rule is not null && (limit.Rule is null || named.Value.Remaining < limit.Remaining))
            {
                limit = named.Value;
            }
        }
        if (decision.Allowed && limit.Rule is not null)
        {
            decision = new DecisionOutcome
            {
                Allowed = true,
                Reason = ReasonCode.Allowed,
                Headers = decision.Headers,
                ResponseHeadersToAdd = [.. decision.ResponseHeadersToAdd, .. limit.Headers()],
                RequestHeadersToRemove = decision.RequestHeadersToRemove,
                QueryParametersToSet = decision.QueryParametersToSet,
                QueryParametersToRemove = decision.QueryParametersToRemove,
                DynamicMetadata = decision.DynamicMetadata,
            };
        }
        return (decision, request, identity, decision.Allowed ? airflow.ConnectionId : null);
    }

    /// <summary>Request-derived text in a log line: control characters escaped (no forged lines), length bounded.</summary>
    internal static string? LogSafe(string? value)
    {
        if (value is null)
        {
            return null;
        }
        if (value.Length > 512)
        {
            value = value[..512] + "…";
        }
        if (!value.AsSpan().ContainsAnyInRange('\0', '\x1f') && !value.Contains('\x7f'))
        {
            return value;
        }
        var sb = new System.Text.StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            sb.Append(c < 0x20 || c == 0x7f ? $"\\x{(int)c:x2}" : c.ToString());
        }
        return sb.ToString();
    }

    private void Observe(string stage, long started) =>
        metrics.StageDuration.WithLabels(stage).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
}
