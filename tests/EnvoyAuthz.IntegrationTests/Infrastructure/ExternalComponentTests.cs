using Xunit.Sdk;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>A missing nginx or redis-server skips a test on a laptop and fails it in CI.</summary>
public sealed class ExternalComponentTests
{
    [Theory]
    [InlineData("true")]
    [InlineData("TRUE")]
    [InlineData("True")]
    [InlineData("1")]
    public void Missing_UnderCi_FailsTheTest(string ci)
    {
        Assert.True(ExternalComponent.IsCi(ci));
        var ex = Assert.ThrowsAny<Exception>(() => ExternalComponent.Missing("nginx", "apt-get install nginx", ci));
        Assert.IsType<FailException>(ex);
        Assert.Contains("nginx is not installed", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("false")]
    [InlineData("0")]
    public void OutsideCi_Skips(string? ci) =>
        // Missing then calls Assert.Skip, which xunit reports as a skip even when caught, so the rule is asserted here.
        Assert.False(ExternalComponent.IsCi(ci));

    [Fact]
    public void CiRunner_SetsCi()
    {
        var run = File.ReadAllText(Tests.Infrastructure.RepoPaths.Of(".ci", "run"));
        Assert.Contains("export CI=", run, StringComparison.Ordinal);
    }
}
