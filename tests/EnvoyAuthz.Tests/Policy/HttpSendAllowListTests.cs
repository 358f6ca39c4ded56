using EnvoyAuthz.Configuration;
using EnvoyAuthz.Policy;

namespace EnvoyAuthz.Tests.Policy;

/// <summary><c>http.send</c> destinations are compared as parsed URIs: hostile spellings of allowed ones are refused.</summary>
public sealed class HttpSendAllowListTests
{
    private static readonly HttpSendAllowList Allowed = new(["https://api.example.com", "https://hr.internal/v1", "http://[::1]:8080/x/", "https://bücher.example/"]);

    [Theory]
    [InlineData("https://api.example.com")]
    [InlineData("https://api.example.com/")]
    [InlineData("https://api.example.com/anything?q=1")]
    [InlineData("https://API.Example.COM/x")]
    [InlineData("HTTPS://api.example.com/x")]
    [InlineData("https://api.example.com:443/x")]
    [InlineData("https://hr.internal/v1")]
    [InlineData("https://hr.internal/v1/")]
    [InlineData("https://hr.internal/v1/employees/alice?fields=a#frag")]
    [InlineData("http://[::1]:8080/x/y")]
    [InlineData("http://[0:0:0:0:0:0:0:1]:8080/x/y")]
    [InlineData("https://xn--bcher-kva.example/books")]
    [InlineData("https://BÜCHER.example/books")]
    public void Allowed_Destinations(string url)
    {
        Assert.True(Allowed.IsAllowed(url, out var uri, out var problem), problem);
        Assert.NotNull(uri);
    }

    [Theory]
    [InlineData("https://api.example.com.evil.net/x")]
    [InlineData("https://api.example.com@evil.net/x")]
    [InlineData("https://api.example.com:443@evil.net/x")]
    [InlineData("https://user:PlantedPw@api.example.com/x")]
    [InlineData("https://@api.example.com/x")]
    [InlineData("https://api.example.com:8443/x")]
    [InlineData("https://api.example.com:4430/x")]
    [InlineData("http://api.example.com/x")]
    [InlineData("https://api.example.com./x")]
    [InlineData("https://evil.net/https://api.example.com/")]
    [InlineData("https://evil.net/?https://api.example.com")]
    [InlineData("https://evilapi.example.com/")]
    [InlineData("https://xapi.example.com/")]
    [InlineData("https://hr.internal/v10")]
    [InlineData("https://hr.internal/v1x/y")]
    [InlineData("https://hr.internal/V1/x")]
    [InlineData("https://hr.internal/")]
    [InlineData("https://hr.internal/v1/../admin")]
    [InlineData("https://hr.internal/v1/./employees")]
    [InlineData("https://hr.internal/v1/x/../../admin")]
    [InlineData("https://hr.internal/v1/%2e%2e/admin")]
    [InlineData("https://hr.internal/v1/%2E%2E/admin")]
    [InlineData("https://hr.internal/v1/.%2e/admin")]
    [InlineData("https://hr.internal/v1/..%2fadmin")]
    [InlineData("https://hr.internal/v1%2f..%2fadmin")]
    [InlineData("https://hr.internal/v1/..%5cadmin")]
    [InlineData("https://hr.internal/v1\\..\\admin")]
    [InlineData("https://hr.internal\\v1/x")]
    [InlineData("https://hr.internal/v1/%00/x")]
    [InlineData("http://[::1]:8081/x/y")]
    [InlineData("http://[::2]:8080/x/y")]
    [InlineData("http://[::1]:8080/xy")]
    [InlineData("http://[::1]:8080/x")]
    [InlineData("http://127.0.0.1:8080/x/y")]
    [InlineData("https://аpi.example.com/")] // Cyrillic 'а'
    [InlineData("https://api.example.com%2eevil.net/")]
    [InlineData(" https://api.example.com/")]
    [InlineData("https://api.example.com/\tx")]
    [InlineData("https://api.example.com/x\r\nHost: evil.net")]
    [InlineData("ftp://api.example.com/")]
    [InlineData("file:///etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("api.example.com/x")]
    [InlineData("")]
    public void Refused_Destinations(string url)
    {
        Assert.False(Allowed.IsAllowed(url, out _, out var problem));
        Assert.NotNull(problem);
        Assert.DoesNotContain("PlantedPw", problem);
    }

    [Theory]
    [InlineData("https://api.example.com", "/")]
    [InlineData("https://api.example.com/v1", "/v1")]
    [InlineData("https://api.example.com/v1/", "/v1/")]
    [InlineData("HTTPS://API.EXAMPLE.COM:443/v1", "/v1")]
    public void Prefix_OriginWithOptionalPath_Parses(string text, string path)
    {
        Assert.True(HttpSendAllowList.TryParsePrefix(text, out var prefix, out var problem), problem);
        Assert.Equal(("https", "api.example.com", 443, path), (prefix!.Scheme, prefix.Host, prefix.Port, prefix.Path));
    }

    [Theory]
    [InlineData("https://user:PlantedPrefixPw@api.example.com", "user information")]
    [InlineData("https://@api.example.com", "user information")]
    [InlineData("https://api.example.com?x=1", "query")]
    [InlineData("https://api.example.com/v1?", "query")]
    [InlineData("https://api.example.com/#f", "fragment")]
    [InlineData("api.example.com/x", "absolute http(s)")]
    [InlineData("ftp://api.example.com/", "absolute http(s)")]
    [InlineData("https://api.example.com/v1\\x", "backslashes")]
    [InlineData("https://api.example.com/%2e%2e/x", "dot segments")]
    [InlineData("https://api.example.com/ x", "whitespace")]
    public void Prefix_NotAnOrigin_IsRejectedAtStart(string text, string why)
    {
        Assert.False(HttpSendAllowList.TryParsePrefix(text, out _, out var problem));
        Assert.Contains(why, problem);

        var options = new AuthzOptions();
        options.Policy.HttpSend.AllowedUrlPrefixes = ["https://ok.example.com/api/", text];
        var error = Assert.Single(AuthzOptionsValidator.Collect(options));
        Assert.Contains("Policy:HttpSend:AllowedUrlPrefixes:1", error);
        Assert.DoesNotContain("PlantedPrefixPw", error);
    }
}
