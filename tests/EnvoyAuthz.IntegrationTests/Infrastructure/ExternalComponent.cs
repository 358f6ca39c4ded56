using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// What a test does when a real component it needs (nginx, redis-server) is not installed: it
/// skips, saying why and how to install it — except in CI (<c>CI=true</c>, which GitHub Actions,
/// GitLab CI and <c>.ci/run</c> set), where a missing component fails the run: a CI machine that
/// lost a package must not turn its tests green by skipping them.
/// </summary>
public static class ExternalComponent
{
    /// <summary>The environment variable CI runners set.</summary>
    public const string CiVariable = "CI";

    /// <summary>True for a CI run: <c>CI</c> is <c>true</c> (any case) or <c>1</c>.</summary>
    public static bool IsCi(string? value) =>
        value is not null && (value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase) || value.Trim() == "1");

    /// <summary>
    /// Skips the test (outside CI) or fails it (in CI) because <paramref name="component"/> is not
    /// installed. <paramref name="ci"/> stands for the <c>CI</c> variable (tests pass it; null reads the environment).
    /// </summary>
    [DoesNotReturn]
    public static void Missing(string component, string install, string? ci = null)
    {
        var message = $"{component} is not installed ({install})";
        if (IsCi(ci ?? Environment.GetEnvironmentVariable(CiVariable)))
        {
            Assert.Fail($"{message}; {CiVariable}=true, so a missing component fails the run instead of skipping");
        }
        Assert.Skip(message);
        throw new UnreachableException();
    }
}
