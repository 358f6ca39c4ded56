using EnvoyAuthz.Configuration;
using EnvoyAuthz.Hosting;

namespace EnvoyAuthz.Tests.Configuration;

public class AuthzOptionsTests
{
    [Fact]
    public void Validate_Defaults_AreValid() => Assert.Empty(AuthzOptionsValidator.Collect(new AuthzOptions()));

    [Fact]
    public void Validate_ManyProblems_AllReportedAtOnce()
    {
        var o = new AuthzOptions();
        o.Server.GrpcPort = 70000;
        o.Server.HttpPort = 9191;
        o.Identity.MaxTokenBytes = 10;
        o.Identity.Issuers.Add(new IssuerOptions { Name = "bad name!", Issuer = "", Algorithms = ["none", "HS256"] });
        o.Identity.Issuers.Add(new IssuerOptions { Name = "plain", Issuer = "http://idp.example.com", Audiences = ["a"] });
        o.Policy.Engine = "remote-opa";
        o.Policy.RemoteOpa.Url = null;
        var errors = AuthzOptionsValidator.Collect(o);
        Assert.Contains(errors, e => e.Contains("Server:GrpcPort is 70000"));
        Assert.Contains(errors, e => e.Contains("Identity:MaxTokenBytes is 10"));
        Assert.Contains(errors, e => e.Contains("Issuers:0:Name is required"));
        Assert.Contains(errors, e => e.Contains("Issuers:0:Issuer is required"));
        Assert.Contains(errors, e => e.Contains("Issuers:0:Audiences"));
        Assert.Contains(errors, e => e.Contains("must not contain 'none'"));
        Assert.Contains(errors, e => e.Contains("'HS256' needs HmacSecret"));
        Assert.Contains(errors, e => e.Contains("Issuers:1:DiscoveryUrl") && e.Contains("must use https"));
        Assert.Contains(errors, e => e.Contains("RemoteOpa:Url is required"));
        Assert.True(errors.Count >= 9);
    }

    [Theory]
    [InlineData("HS256", 32, true)]
    [InlineData("HS384", 47, false)]
    [InlineData("HS384", 48, true)]
    [InlineData("HS512", 32, false)]
    [InlineData("HS512", 48, false)]
    [InlineData("HS512", 63, false)]
    [InlineData("HS512", 64, true)]
    public void Validate_HmacSecretShorterThanTheHash_IsRejectedNamingTheKey(string alg, int bytes, bool valid)
    {
        // RFC 7518 §3.2: an HMAC key is at least as long as the hash; the token library denies every token otherwise.
        var secret = string.Concat(Enumerable.Range(0, bytes).Select(i => (char)('A' + i % 26)));
        var o = new AuthzOptions();
        o.Identity.Issuers.Add(new IssuerOptions
        {
            Name = "shared", Issuer = "https://idp.example.com", Audiences = ["a"], JwksUrl = "https://idp.example.com/jwks",
            Algorithms = ["RS256", alg], HmacSecret = secret,
        });
        var errors = AuthzOptionsValidator.Collect(o);
        if (valid)
        {
            Assert.Empty(errors);
            return;
        }
        var error = Assert.Single(errors);
        Assert.Contains("Identity:Issuers:0:HmacSecret", error);
        Assert.Contains(alg, error);
        Assert.DoesNotContain(secret, error);
    }

    [Fact]
    public void Validate_HmacSecretInUtf8Bytes_MultiByteCharactersCount()
    {
        var o = new AuthzOptions();
        o.Identity.Issuers.Add(new IssuerOptions
        {
            Name = "shared", Issuer = "https://idp.example.com", Audiences = ["a"], Algorithms = ["HS512"],
            HmacSecret = new string('é', 32), // 32 characters, 64 UTF-8 bytes
        });
        Assert.Empty(AuthzOptionsValidator.Collect(o));
        o.Identity.Issuers[0].HmacSecret = new string('é', 31) + "e"; // 63 bytes
        Assert.Contains(AuthzOptionsValidator.Collect(o), e => e.Contains("Issuers:0:HmacSecret is 63 bytes") && e.Contains("HS512"));
    }

    [Fact]
    public void LoadConfiguration_YamlFile_BindsNestedListsAndEnvironmentOverrides()
    {
        var file = Path.Combine(Path.GetTempPath(), $"envoy-authz-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, """
            EnvoyAuthz:
              Server:
                GrpcPort: 19191
                HttpPort: 19192
              Identity:
                ClockSkew: "00:00:10"
                Issuers:
                  - Name: corp
                    Issuer: https://idp.example.com
                    Audiences: [ "api://authz" ]
                    GroupClaims: [ "groups", "realm_access.roles" ]
              Policy:
                Engine: remote-opa
                RemoteOpa:
                  Url: http://127.0.0.1:8181
            """);
        try
        {
            var (o, _) = AuthzHost.LoadConfiguration(file, dev: false,
                [new("EnvoyAuthz:Policy:DecisionPath", "data.airflow.authz.decision")]);
            Assert.Equal(19191, o.Server.GrpcPort);
            Assert.Equal(TimeSpan.FromSeconds(10), o.Identity.ClockSkew);
            var issuer = Assert.Single(o.Identity.Issuers);
            Assert.Equal(["api://authz"], issuer.Audiences);
            Assert.Equal(["groups", "realm_access.roles"], issuer.GroupClaims);
            Assert.Equal("remote-opa", o.Policy.Engine);
            Assert.Equal("data.airflow.authz.decision", o.Policy.DecisionPath);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void LoadConfiguration_JsonFileWithErrors_ThrowsWithEveryError()
    {
        var file = Path.Combine(Path.GetTempPath(), $"envoy-authz-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{"EnvoyAuthz":{"Server":{"GrpcPort":-1},"Policy":{"Engine":"magic"}}}""");
        try
        {
            var ex = Assert.Throws<ConfigurationErrorsException>(() => AuthzHost.LoadConfiguration(file, dev: false));
            Assert.Contains(ex.Errors, e => e.Contains("GrpcPort"));
            Assert.Contains(ex.Errors, e => e.Contains("Engine 'magic'"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void LoadConfiguration_UnknownKey_IsReported()
    {
        var ex = Assert.Throws<ConfigurationErrorsException>(() =>
            AuthzHost.LoadConfiguration(null, dev: false, [new("EnvoyAuthz:Identity:TokenHeadr", "x-token")]));
        Assert.Contains(ex.Errors, e => e.Contains("TokenHeadr"));
    }

    [Fact]
    public void LoadConfiguration_MissingFile_IsReported()
    {
        var ex = Assert.Throws<ConfigurationErrorsException>(() => AuthzHost.LoadConfiguration("/nonexistent/authz.yaml", dev: false));
        Assert.Contains("does not exist", Assert.Single(ex.Errors));
    }

    [Fact]
    public void LoadConfiguration_DevMode_BindsLoopbackByDefault()
    {
        var (o, _) = AuthzHost.LoadConfiguration(null, dev: true);
        Assert.True(o.Dev.Enabled);
        Assert.Equal("127.0.0.1", o.Server.BindAddress);
    }
}

public class AuthzOptionsEnvironmentTests
{
    [Fact]
    public void LoadConfiguration_EnvironmentVariable_OverridesDefault()
    {
        Environment.SetEnvironmentVariable("EnvoyAuthz__Response__Realm", "from-env");
        try
        {
            var (o, _) = AuthzHost.LoadConfiguration(null, dev: false);
            Assert.Equal("from-env", o.Response.Realm);
        }
        finally
        {
            Environment.SetEnvironmentVariable("EnvoyAuthz__Response__Realm", null);
        }
    }
}
