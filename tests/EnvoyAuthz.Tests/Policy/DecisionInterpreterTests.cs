using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Policy;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Tests.Policy;

public class DecisionInterpreterTests
{
    [Fact]
    public void Interpret_True_Allows() => Assert.True(DecisionInterpreter.Interpret(RegoValue.True, out _).Allowed);

    [Fact]
    public void Interpret_False_DeniesPolicyDenied()
    {
        var d = DecisionInterpreter.Interpret(RegoValue.False, out _);
        Assert.False(d.Allowed);
        Assert.Equal(ReasonCode.PolicyDenied, d.Reason);
    }

    [Fact]
    public void Interpret_Undefined_Denies()
    {
        var d = DecisionInterpreter.Interpret(null, out _);
        Assert.False(d.Allowed);
        Assert.Equal(ReasonCode.PolicyDenied, d.Reason);
    }

    [Theory]
    [InlineData("\"yes\"")]
    [InlineData("1")]
    [InlineData("{\"allow\":true}")]
    [InlineData("{\"allowed\":\"true\"}")]
    [InlineData("{\"allowed\":true,\"headers\":\"x\"}")]
    [InlineData("{\"allowed\":false,\"http_status\":42}")]
    [InlineData("{\"allowed\":true,\"request_headers_to_remove\":[1]}")]
    public void Interpret_Malformed_FailsClosedAsPolicyError(string json)
    {
        var d = DecisionInterpreter.Interpret(RegoJson.Parse(json), out var problem);
        Assert.False(d.Allowed);
        Assert.Equal(ReasonCode.PolicyError, d.Reason);
        Assert.NotNull(problem);
    }

    [Fact]
    public void Interpret_ObjectForm_ReadsEveryField()
    {
        var d = DecisionInterpreter.Interpret(RegoJson.Parse("""
            {"allowed": true,
             "headers": {"x-tenant": "blue", "x-multi": ["a", "b"]},
             "response_headers_to_add": {"x-served-by": "authz"},
             "request_headers_to_remove": ["x-internal"],
             "query_parameters_to_set": {"tenant": "blue"},
             "query_parameters_to_remove": ["debug"],
             "dynamic_metadata": {"tier": "gold"}}
            """), out var problem);
        Assert.Null(problem);
        Assert.True(d.Allowed);
        Assert.Equal([new("x-tenant", "blue"), new("x-multi", "a"), new("x-multi", "b")], d.Headers.OrderBy(h => h.Key == "x-multi").ToList());
        Assert.Equal([new("x-served-by", "authz")], d.ResponseHeadersToAdd);
        Assert.Equal(["x-internal"], d.RequestHeadersToRemove);
        Assert.Equal([new("tenant", "blue")], d.QueryParametersToSet);
        Assert.Equal(["debug"], d.QueryParametersToRemove);
        Assert.NotNull(d.DynamicMetadata);
    }

    [Fact]
    public void Interpret_DenyObject_WithStatusBodyAndKnownReason()
    {
        var d = DecisionInterpreter.Interpret(RegoJson.Parse("""{"allowed":false,"http_status":451,"body":"nope","reason":"unknown_connection"}"""), out _);
        Assert.False(d.Allowed);
        Assert.Equal(451, d.HttpStatus);
        Assert.Equal("nope", d.Body);
        Assert.Equal(ReasonCode.UnknownConnection, d.Reason);
    }

    [Fact]
    public void Interpret_DenyObject_UnknownReasonIsNotALabel()
    {
        var d = DecisionInterpreter.Interpret(RegoJson.Parse("""{"allowed":false,"reason":"made-up <script>"}"""), out _);
        Assert.Equal(ReasonCode.PolicyDenied, d.Reason);
    }
}
