using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class SensitiveKeysTests
{
    [Theory]
    [InlineData("password", true)]
    [InlineData("PASSWORD", true)]
    [InlineData(" db_Password ", true)]
    [InlineData("my_api_key_v2", true)]
    [InlineData("x-apikey", true)]
    [InlineData("Authorization", true)]
    [InlineData("refresh_token", true)]
    [InlineData("client_secret", true)]
    [InlineData("keyfile_dict", true)]
    [InlineData("service_account_json", true)]
    [InlineData("private_key_passphrase", true)]
    [InlineData("passwd", true)]
    [InlineData("access_token", true)]
    [InlineData("region", false)]
    [InlineData("key_path", false)]
    [InlineData("login", false)]
    public void IsSensitive_MatchesAsAirflow_SubstringCaseInsensitive(string key, bool expected) =>
        Assert.Equal(expected, SensitiveKeys.Default.IsSensitive(key));

    [Fact]
    public void ConfiguredAdditions_AreFragmentsToo()
    {
        var keys = new SensitiveKeys([" Credential "]);
        Assert.True(keys.IsSensitive("gcp_credentials"));
        Assert.False(SensitiveKeys.Default.IsSensitive("gcp_credentials"));
    }

    [Fact]
    public void Redact_RemovesRecursively_InObjectsAndArrays()
    {
        var v = RegoJson.Parse("""{"a":{"b":{"password":"p","ok":1}},"list":[{"token":"t","n":2},"plain"],"secret_nested":{"x":1}}""");
        Assert.Equal("""{"a":{"b":{"ok":1}},"list":[{"n":2},"plain"]}""", RegoJson.Serialize(SensitiveKeys.Default.Redact(v, mask: false)));
        Assert.Equal("""{"a":{"b":{"ok":1,"password":"[REDACTED]"}},"list":[{"n":2,"token":"[REDACTED]"},"plain"],"secret_nested":"[REDACTED]"}""",
            RegoJson.Serialize(SensitiveKeys.Default.Redact(v, mask: true)));
    }
}
