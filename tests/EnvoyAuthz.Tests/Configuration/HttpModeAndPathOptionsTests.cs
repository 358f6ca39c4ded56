using EnvoyAuthz.Configuration;
using EnvoyAuthz.Hosting;

namespace EnvoyAuthz.Tests.Configuration;

public class HttpModeAndPathOptionsTests
{
    [Fact]
    public void Defaults_RejectAmbiguousPaths_NoTrustedProxies()
    {
        var o = new AuthzOptions();
        Assert.Equal("reject", o.Server.AmbiguousPaths);
        Assert.Empty(o.Http.TrustedProxies);
    }

    [Fact]
    public void Validate_BadPathModeAndProxyEntries_EachReported()
    {
        var o = new AuthzOptions();
        o.Server.AmbiguousPaths = "Normalize";
        o.Http.TrustedProxies = ["10.0.0.0/8", "10.0.0.0/33", "proxy.internal", "", "fd00::/8", "192.0.2.1"];
        var errors = AuthzOptionsValidator.Collect(o);
        Assert.Contains(errors, e => e.Contains("Server:AmbiguousPaths 'Normalize' must be 'reject' or 'normalize'"));
        Assert.Contains(errors, e => e.Contains("Http:TrustedProxies:1 '10.0.0.0/33'"));
        Assert.Contains(errors, e => e.Contains("Http:TrustedProxies:2 'proxy.internal'"));
        Assert.Contains(errors, e => e.Contains("Http:TrustedProxies:3 ''"));
        Assert.Equal(4, errors.Count);
    }

    [Fact]
    public void LoadConfiguration_PathModeAndTrustedProxies_Bound()
    {
        var (options, _) = AuthzHost.LoadConfiguration(null, dev: false,
        [
            new("EnvoyAuthz:Server:AmbiguousPaths", "normalize"),
            new("EnvoyAuthz:Http:TrustedProxies:0", "10.0.0.0/8"),
            new("EnvoyAuthz:Http:TrustedProxies:1", "127.0.0.1"),
        ]);
        Assert.Equal("normalize", options.Server.AmbiguousPaths);
        Assert.Equal(["10.0.0.0/8", "127.0.0.1"], options.Http.TrustedProxies);
    }
}
