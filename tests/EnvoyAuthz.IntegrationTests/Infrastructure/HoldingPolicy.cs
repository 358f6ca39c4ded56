using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// A policy engine that allows every request; one carrying the header <c>x-hold</c> is held until
/// <see cref="Release"/> (honouring cancellation), so a test decides when slots free up. Others
/// (the service's warm-up included) are allowed at once.
/// </summary>
public sealed class HoldingPolicy : IPolicyEngine
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _holding;

    /// <summary>The header that makes a request wait.</summary>
    public const string HoldHeader = "x-hold";

    /// <summary>Requests being held right now.</summary>
    public int Holding => Volatile.Read(ref _holding);

    /// <inheritdoc />
    public string Name => "holding";

    /// <inheritdoc />
    public bool Ready => true;

    /// <inheritdoc />
    public bool NeedsInput => false;

    /// <summary>Lets every held request (and every later one) through.</summary>
    public void Release() => _gate.TrySetResult();

    /// <inheritdoc />
    public async ValueTask<PolicyResult> EvaluateAsync(PolicyContext context, CancellationToken cancellationToken)
    {
        if (context.Request.Headers.ContainsKey(HoldHeader))
        {
            Interlocked.Increment(ref _holding);
            try
            {
                await _gate.Task.WaitAsync(cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _holding);
            }
        }
        return PolicyResult.Of(RegoValue.From(true));
    }
}
