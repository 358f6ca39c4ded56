using EnvoyAuthz.Airflow;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EnvoyAuthz.Tests.Airflow;

/// <summary>Matching a request authority to a connection: IPv6 hosts, and ids shadowed by a source Airflow asks first.</summary>
public sealed class ConnectionMatchingTests
{
    private readonly FakeTimeProvider _time = new();

    private static AirflowConnection Uri(string id, string uri) =>
        ConnectionParser.ParseUri(id, uri, SensitiveKeys.Default, out _) ?? throw new InvalidOperationException(uri);

    private ConnectionCatalog Catalog(params (string Name, ConnectionSnapshot Snapshot)[] sources) =>
        new([.. sources.Select(s => new FixedSource(s.Name, s.Snapshot))], _time, new FakeLogger<ConnectionCatalog>());

    private ConnectionSnapshot Snap(params AirflowConnection[] connections) => new(connections, _time.GetUtcNow());

    /// <summary>IPv6 hosts in every form a connection carries them.</summary>
    private ConnectionCatalog Ipv6Catalog() => Catalog(("file", Snap(
        // a URI: Airflow's parser leaves the address without brackets, the port apart
        Uri("loopback", "http://[::1]:8080/"),
        // a double-scheme URI: host "https://2001:db8::1", no port (the scheme's default)
        Uri("doc_api", "http://https://[2001:db8::1]/api"),
        // fields: bracketed, port apart, not in canonical form
        new AirflowConnection { ConnId = "fields", Host = "[2001:DB8:0:0::2]", Port = 9000 },
        // fields: a URL with a bracketed host and port
        new AirflowConnection { ConnId = "url", Host = "https://[2001:db8::3]:8443/x" },
        // fields: an address without brackets (as the URI form stores it)
        new AirflowConnection { ConnId = "bare", Host = "2001:db8::4", Port = 5432 })));

    [Theory]
    [InlineData("[::1]:8080", "http", "loopback")]
    [InlineData("[0:0:0:0:0:0:0:1]:8080", "http", "loopback")]
    [InlineData("[2001:db8::1]", "https", "doc_api")]
    [InlineData("[2001:db8::1]:443", "https", "doc_api")]
    [InlineData("[2001:db8::2]:9000", "http", "fields")]
    [InlineData("[2001:0DB8::0:2]:9000", "https", "fields")]
    [InlineData("[2001:db8::3]:8443", "https", "url")]
    [InlineData("[2001:db8::4]:5432", "http", "bare")]
    public void Ipv6Authority_MatchesTheConnection(string authority, string scheme, string connId) =>
        Assert.Equal(connId, Ipv6Catalog().FindByAuthority(authority, scheme).Connection?.ConnId);

    [Theory]
    [InlineData("[::1]:8081", "http")]        // another port
    [InlineData("[::1]", "http")]             // the default port is not the connection's
    [InlineData("::1", "http")]               // no brackets: not an authority
    [InlineData("[2001:db8::1]", "http")]     // the connection's scheme is https
    [InlineData("[2001:db8::3]", "https")]    // port 443, the connection says 8443
    [InlineData("[::]:8080", "http")]
    [InlineData("[::ffff:127.0.0.1]:8080", "http")]
    [InlineData("[::1%25eth0]:8080", "http")]
    [InlineData("0.0.0.1:8080", "http")]
    public void Ipv6Authority_OtherwiseMatchesNothing(string authority, string scheme) =>
        Assert.Null(Ipv6Catalog().FindByAuthority(authority, scheme).Connection);

    [Fact]
    public void ShadowedId_ItsHostMatchesNothing_ButItsOwnIdStillResolvesToTheFirstCopy()
    {
        var catalog = Catalog(
            ("file", Snap(new AirflowConnection { ConnId = "partner", Host = "old-partner.example" })),
            ("api", Snap(
                new AirflowConnection { ConnId = "partner", Host = "new-partner.example" },
                new AirflowConnection { ConnId = "other", Host = "other.example" })));

        // Airflow resolves `partner` from the file: the API's copy (and its host) is never used
        Assert.Null(catalog.FindByAuthority("new-partner.example", "https").Connection);
        Assert.Equal("partner", catalog.FindByAuthority("old-partner.example", "https").Connection?.ConnId);
        Assert.Equal("old-partner.example", catalog.FindById("partner").Connection!.Host);
        Assert.Equal("other", catalog.FindByAuthority("other.example", "https").Connection?.ConnId);
    }

    [Fact]
    public void ShadowedId_ByAnEnvironmentVariable_IgnoresCase_AsAirflowsLookupDoes()
    {
        // AIRFLOW_CONN_MY_DB answers a lookup of `MY_DB` as well as of `my_db`
        var env = new ConnectionSnapshot([new AirflowConnection { ConnId = "my_db", Host = "env-db.example" }], _time.GetUtcNow(), caseInsensitiveIds: true);
        var catalog = Catalog(
            ("env", env),
            ("api", Snap(
                new AirflowConnection { ConnId = "MY_DB", Host = "api-db.example" },
                new AirflowConnection { ConnId = "reports", Host = "reports.example" })));

        Assert.Null(catalog.FindByAuthority("api-db.example", "https").Connection);
        Assert.Equal("my_db", catalog.FindByAuthority("env-db.example", "https").Connection?.ConnId);
        Assert.Equal("reports", catalog.FindByAuthority("reports.example", "https").Connection?.ConnId);
    }

    [Fact]
    public void ShadowedCopy_DoesNotMakeAVisibleMatchAmbiguous()
    {
        var catalog = Catalog(
            ("file", Snap(new AirflowConnection { ConnId = "a", Host = "elsewhere.example" })),
            ("api", Snap(
                new AirflowConnection { ConnId = "a", Host = "shared.example" },
                new AirflowConnection { ConnId = "b", Host = "shared.example" })));

        Assert.Equal("b", catalog.FindByAuthority("shared.example", "https").Connection?.ConnId);
    }
}
