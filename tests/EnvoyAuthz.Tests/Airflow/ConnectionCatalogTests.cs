using EnvoyAuthz.Airflow;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Observability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class ConnectionCatalogTests
{
    private readonly FakeTimeProvider _time = new();

    [Theory]
    [InlineData("h.example", "https", "h.example", 443)]
    [InlineData("h.example", "http", "h.example", 80)]
    [InlineData("H.Example:8080", "http", "h.example", 8080)]
    [InlineData("[::1]:9000", "http", "::1", 9000)]
    [InlineData("[::1]", "https", "::1", 443)]
    [InlineData("[2001:DB8:0:0::1]:8443", "https", "2001:db8::1", 8443)]
    [InlineData("h.example", "", "h.example", -1)]
    public void SplitAuthority(string authority, string scheme, string host, int port)
    {
        Assert.True(ConnectionCatalog.TrySplitAuthority(authority, scheme, out var h, out var p));
        Assert.Equal((host, port), (h, p));
    }

    [Theory]
    [InlineData("h:notaport")]
    [InlineData("h:99999")]
    [InlineData("[::1")]
    [InlineData("[::1]x")]
    [InlineData(":80")]
    [InlineData("::1")]
    [InlineData("2001:db8::1:443")]
    [InlineData("[not-an-address]:80")]
    [InlineData("[1.2.3.4]:80")]
    public void SplitAuthority_Malformed_MatchesNothing(string authority) =>
        Assert.False(ConnectionCatalog.TrySplitAuthority(authority, "http", out _, out _));

    [Fact]
    public void FirstSourceWins_AsInAirflow()
    {
        var a = new AirflowConnection { ConnId = "x", Host = "from-file" };
        var b = new AirflowConnection { ConnId = "x", Host = "from-api" };
        var catalog = new ConnectionCatalog(
            [new FixedSource("file", new ConnectionSnapshot([a], _time.GetUtcNow())), new FixedSource("api", new ConnectionSnapshot([b], _time.GetUtcNow()))],
            _time, new FakeLogger<ConnectionCatalog>());
        Assert.Equal("from-file", catalog.FindById("x").Connection!.Host);
        Assert.True(catalog.AllLoaded);
    }

    [Fact]
    public void NeverLoadedSource_IsUnavailable()
    {
        var catalog = new ConnectionCatalog([new FixedSource("api", null)], _time, new FakeLogger<ConnectionCatalog>());
        Assert.Equal("api", catalog.FindById("x").UnavailableSource);
        Assert.Equal("api", catalog.FindByAuthority("h", "https").UnavailableSource);
        Assert.False(catalog.AllLoaded);
    }

    [Fact]
    public void AddAirflow_Disabled_KeepsNoAirflowStage_Enabled_RegistersTheStage()
    {
        static IServiceProvider Build(AuthzOptions o)
        {
            var s = new ServiceCollection();
            s.AddLogging();
            s.AddSingleton<TimeProvider>(new FakeTimeProvider());
            s.AddSingleton(new AuthzMetrics(Prometheus.Metrics.NewCustomRegistry()));
            s.AddAirflow(o);
            return s.BuildServiceProvider();
        }
        Assert.IsType<NoAirflowStage>(Build(new AuthzOptions()).GetRequiredService<IAirflowStage>());
        var enabled = new AuthzOptions();
        enabled.Airflow.Enabled = true;
        enabled.Airflow.Connections.Environment = false;
        var sp = Build(enabled);
        Assert.IsType<AirflowStage>(sp.GetRequiredService<IAirflowStage>());
        Assert.Empty(sp.GetRequiredService<ConnectionCatalog>().Sources);
    }
}
