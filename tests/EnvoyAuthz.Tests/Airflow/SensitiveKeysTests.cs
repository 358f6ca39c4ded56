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

    /// <summary>Issue 9.10: the spellings HTTP connections use for Airflow's fragments, and the HTTP/database fragments Airflow lacks.</summary>
    [Theory]
    [InlineData("X-Api-Key", true)]
    [InlineData("x_api_key", true)]
    [InlineData("Api-Key", true)]
    [InlineData("apiKey", true)]
    [InlineData("Authorization", true)]
    [InlineData("Proxy-Authorization", true)]
    [InlineData("privateKey", true)]
    [InlineData("Private-Key", true)]
    [InlineData("ssh.private.key", true)]
    [InlineData("accessToken", true)]
    [InlineData("X-Auth-Token", true)]
    [InlineData("clientSecret", true)]
    [InlineData("keyfileDict", true)]
    [InlineData("service-account-json", true)]
    [InlineData("PassPhrase", true)]
    [InlineData("Cookie", true)]
    [InlineData("Set-Cookie", true)]
    [InlineData("bearer", true)]
    [InlineData("jwt_assertion", true)]
    [InlineData("gcp_credentials", true)]
    [InlineData("PWD", true)]
    [InlineData("db_pwd", true)]
    [InlineData("dsn", true)]
    [InlineData("sentry-dsn", true)]
    [InlineData("ConnectionString", true)]
    [InlineData("sqlalchemy_conn_str", true)]
    [InlineData("AccountKey", true)]
    [InlineData("shared-access-key", true)]
    [InlineData("auth_type", false)]
    [InlineData("endpoint_url", false)]
    [InlineData("Content-Type", false)]
    [InlineData("verify_ssl", false)]
    [InlineData("headers", false)]
    [InlineData("account_name", false)]
    [InlineData("key_file_path", false)]
    public void IsSensitive_NormalisesSeparatorsAndCase_AndKnowsHttpKeys(string key, bool expected) =>
        Assert.Equal(expected, SensitiveKeys.Default.IsSensitive(key));

    [Fact]
    public void ConfiguredAdditions_AreNormalisedFragmentsToo()
    {
        var keys = new SensitiveKeys([" Session-ID ", "x_signature"]);
        Assert.True(keys.IsSensitive("app_session_id"));
        Assert.True(keys.IsSensitive("X-Signature"));
        Assert.False(SensitiveKeys.Default.IsSensitive("app_session_id"));
        Assert.False(SensitiveKeys.Default.IsSensitive("X-Signature"));
    }

    /// <summary>Issue 9.10: values that are DSNs or connection strings with a password are secrets whatever their key.</summary>
    [Theory]
    [InlineData("postgres://u:p@h/db", true)]
    [InlineData("postgresql+psycopg2://etl:Planted@db.internal:5432/dwh?sslmode=require", true)]
    [InlineData("jdbc:mysql://u:p@h:3306/db", true)]
    [InlineData("mongodb+srv://u:p%40ss@cluster0.example.net/x", true)]
    [InlineData("redis://:secret@redis:6379/0", true)]
    [InlineData("amqp://user:pass/with/slash@rabbit/vhost", true)]
    [InlineData("https://ghp_token@github.com/org/repo.git", true)]
    [InlineData("use postgres://u:p@h for reports", true)]
    [InlineData("Server=tcp:db.example.net,1433;Database=d;User Id=u;Password=p;", true)]
    [InlineData("Driver={ODBC Driver 18};Server=h;UID=u;PWD=p", true)]
    [InlineData("host=db user=u password=p dbname=d", true)]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc==;EndpointSuffix=core.windows.net", true)]
    [InlineData("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=k=", true)]
    [InlineData("https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=r&sig=abc%3D", true)]
    [InlineData("https://api.example.com/v1/items?api_key=abc", true)]
    [InlineData("https://hooks.example.com/x?token=abc", true)]
    [InlineData("""{"password": "p"}""", true)]
    [InlineData("""{"nested": {"dsn": "x"}}""", true)]
    [InlineData("""["postgres://u:p@h"]""", true)]
    [InlineData("https://api.example.com/v1", false)]
    [InlineData("postgres://db.internal:5432/dwh", false)]
    [InlineData("https://h/path/user@x", false)]
    [InlineData("mailto:someone@example.com", false)]
    [InlineData("someone@example.com", false)]
    [InlineData("region=eu-west-1", false)]
    [InlineData("https://h/search?q=token", false)]
    [InlineData("""{"timeout": 10}""", false)]
    [InlineData("s3v4", false)]
    [InlineData("", false)]
    public void IsSensitiveValue_DsnsAndConnectionStringsWithSecrets(string value, bool expected) =>
        Assert.Equal(expected, SensitiveKeys.Default.IsSensitiveValue(value));

    [Fact]
    public void Redact_HttpExtras_ByKeyAndByValue()
    {
        var extra = RegoJson.Parse("""
            {"X-Api-Key": "k", "privateKey": "pk", "Authorization": "Bearer t", "endpoint": "postgres://u:p@h/db", "timeout": 10,
             "headers": {"Cookie": "c", "Accept": "application/json"}, "urls": ["https://a.example", "https://u:p@b.example"],
             "conn": "Server=s;Password=p;", "region": "eu"}
            """);
        Assert.Equal("""{"headers":{"Accept":"application/json"},"region":"eu","timeout":10,"urls":["https://a.example"]}""",
            RegoJson.Serialize(SensitiveKeys.Default.Redact(extra, mask: false)));
        Assert.Equal("""{"Authorization":"[REDACTED]","X-Api-Key":"[REDACTED]","conn":"[REDACTED]","endpoint":"[REDACTED]","headers":{"Accept":"application/json","Cookie":"[REDACTED]"},"privateKey":"[REDACTED]","region":"eu","timeout":10,"urls":["https://a.example","[REDACTED]"]}""",
            RegoJson.Serialize(SensitiveKeys.Default.Redact(extra, mask: true)));
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
