using EnvoyAuthz.Configuration;
using EnvoyAuthz.RateLimiting;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.RateLimiting;

/// <summary>A rule's <c>PathPrefix</c> matches the normalised path, so another spelling of the same path cannot slip past the limit.</summary>
public class RateLimitPathPrefixTests
{
    private static readonly RateLimitRule[] Rules = [new() { Name = "dag-runs", Limit = 1, PathPrefix = "/api/v1/dags/" }];

    [Theory]
    [InlineData("/api/v1/dags/etl/dagRuns")]
    [InlineData("/api/%761/dags/etl/dagRuns")]
    [InlineData("/%61pi/v1/dags/etl/dagRuns")]
    [InlineData("//api//v1/dags/etl/dagRuns")]
    [InlineData("/api/v1/dags/etl/dagRuns?x=/other")]
    public void PathPrefix_AnySpellingOfThePath_Matches(string path)
    {
        var request = Requests.Parsed(Requests.Http(method: "POST", path: path));
        Assert.Single(RateLimitKeyResolver.Matches(Rules, request, null, null));
    }

    [Theory]
    [InlineData("/api/v1/dagsX/etl")]
    [InlineData("/api/v2/dags/etl")]
    [InlineData("/other?p=/api/v1/dags/")]
    public void PathPrefix_OtherPath_DoesNotMatch(string path)
    {
        var request = Requests.Parsed(Requests.Http(method: "POST", path: path));
        Assert.Empty(RateLimitKeyResolver.Matches(Rules, request, null, null));
    }
}
