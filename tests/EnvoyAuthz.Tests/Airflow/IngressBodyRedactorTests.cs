using EnvoyAuthz.Airflow;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Tests.Airflow;

public sealed class IngressBodyRedactorTests
{
    private static readonly IngressBodyRedactor Redactor = new(SensitiveKeys.Default);

    [Fact]
    public void ConnectionBody_V1_PasswordAndSecretExtrasMasked()
    {
        var body = RegoJson.Parse("""{"connection_id":"x","conn_type":"http","password":"PlantedPw","extra":"{\"api_key\": \"PlantedKey\", \"timeout\": 5}"}""");
        var json = RegoJson.Serialize(Redactor.Redact(body));
        Assert.DoesNotContain("Planted", json);
        Assert.Contains("\"password\":\"[REDACTED]\"", json);
        Assert.Contains("timeout", json);
    }

    [Fact]
    public void BulkBody_V2_Recursive_NonJsonExtraReplaced()
    {
        var body = RegoJson.Parse("""{"actions":[{"action":"create","entities":[{"connection_id":"a","password":"PlantedA","extra":"PlantedNotJson"},{"connection_id":"b","extra":{"secret":"PlantedB"}}]}]}""");
        Assert.DoesNotContain("Planted", RegoJson.Serialize(Redactor.Redact(body)));
    }

    [Fact]
    public void VariableWithSensitiveKey_ValueMasked()
    {
        Assert.DoesNotContain("PlantedVar", RegoJson.Serialize(Redactor.Redact(RegoJson.Parse("""{"key":"db_password","value":"PlantedVar"}"""))));
        Assert.Contains("visible", RegoJson.Serialize(Redactor.Redact(RegoJson.Parse("""{"key":"region","value":"visible"}"""))));
    }

    [Fact]
    public void RawBodyAndAttributes_Redacted()
    {
        Assert.Equal(SensitiveKeys.Mask, Redactor.RedactRaw("password=PlantedForm"));
        Assert.Equal("password=%5BREDACTED%5D", Redactor.RedactRaw("password=PlantedForm", "application/x-www-form-urlencoded"));
        var raw = Convert.ToBase64String("{\"password\":\"PlantedBytes\"}"u8.ToArray());
        var attrs = RegoJson.Parse($$$"""{"request":{"http":{"method":"POST","body":"{\"password\":\"PlantedRaw\"}","rawBody":"{{{raw}}}"}},"source":{}}""");
        var json = RegoJson.Serialize(Redactor.RedactAttributes((RegoObject)attrs));
        Assert.DoesNotContain("PlantedRaw", json);
        Assert.DoesNotContain(raw, json);
        Assert.Contains("\"method\":\"POST\"", json);
    }
}
