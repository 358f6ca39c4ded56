using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Resilience;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace EnvoyAuthz.Tests.Policy;

/// <summary>Remote OPA's answer is read at most to <c>RemoteOpa:MaxResponseBytes</c>, declared or chunked.</summary>
public sealed class RemoteOpaLimitTests : IAsyncDisposable
{
    private readonly RawHttpServer _opa = new();

    public async ValueTask DisposeAsync() => await _opa.DisposeAsync();

    private RemoteOpaPolicyEngine Engine()
    {
        var options = new AuthzOptions();
        options.Policy.Engine = PolicyEngines.RemoteOpa;
        options.Policy.RemoteOpa.Url = _opa.Url;
        options.Policy.RemoteOpa.Timeout = TimeSpan.FromSeconds(20); // generous: the limit, not the timeout, must end the read
        var metrics = new AuthzMetrics(Prometheus.Metrics.NewCustomRegistry());
        var clients = new ServiceCollection().AddHttpClient().BuildServiceProvider().GetRequiredService<IHttpClientFactory>();
        var guards = new DependencyGuards(options, TimeProvider.System, metrics, NullLogger<DependencyGuards>.Instance);
        return new RemoteOpaPolicyEngine(options, clients, guards, NullLogger<RemoteOpaPolicyEngine>.Instance);
    }

    private static Task<PolicyResult> Decide(RemoteOpaPolicyEngine engine) =>
        engine.EvaluateAsync(new PolicyContext { Request = Requests.Parsed(Requests.Http()), Input = (RegoObject)RegoJson.Parse("{}") },
            TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnswerLargerThanTheLimit_IsAPolicyError_NeverItsResult(bool chunked)
    {
        // A well-formed allow, padded to 5 MiB (the default limit is 4 MiB).
        _opa.Chunked = chunked;
        _opa.Respond("{\"result\": true, \"padding\": \"" + new string('x', 5 << 20) + "\"}");
        var result = await Decide(Engine());
        Assert.Null(result.Decision);
        Assert.Equal(ReasonCode.PolicyError, result.ErrorReason);
        Assert.Equal("the policy service's answer is too large", result.ErrorDetail);
    }

    [Fact]
    public async Task AnswerWithoutEnd_ReadStopsAtTheLimit()
    {
        _opa.Mode = RawHttpMode.Endless;
        var result = await Decide(Engine());
        Assert.Equal(ReasonCode.PolicyError, result.ErrorReason);
        Assert.True(_opa.BytesSent < 64L << 20, $"OPA sent {_opa.BytesSent} bytes");
    }

    [Fact]
    public async Task AnswerWithinTheLimit_Decides()
    {
        _opa.Respond("""{"result": true}""");
        Assert.Equal(RegoValue.True, (await Decide(Engine())).Decision);
    }
}
