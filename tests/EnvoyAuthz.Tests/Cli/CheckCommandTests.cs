using System.Text.Json;
using EnvoyAuthz.Cli;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Cli;

public class CheckCommandTests
{
    private static async Task<(int Code, JsonDocument? Json, string Err)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await CheckCommand.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString().Length > 0 ? JsonDocument.Parse(stdout.ToString()) : null, stderr.ToString());
    }

    [Fact]
    public async Task Check_SampleRequestWithoutToken_DeniedWithInputShown()
    {
        var (code, json, _) = await Run("--config", RepoPaths.Of("envoy", "envoy-authz.dev.yaml"), "--request", RepoPaths.Of("envoy", "requests", "trigger-dag-run.json"));
        Assert.Equal(1, code);
        var root = json!.RootElement;
        Assert.False(root.GetProperty("decision").GetProperty("allowed").GetBoolean());
        Assert.Equal("missing_token", root.GetProperty("decision").GetProperty("reason").GetString());
        Assert.Equal(401, root.GetProperty("decision").GetProperty("http_status").GetInt32());
        Assert.Equal("etl_daily", root.GetProperty("input").GetProperty("parsed_path")[3].GetString());
        Assert.Equal("2026-11-23", root.GetProperty("input").GetProperty("parsed_body").GetProperty("conf").GetProperty("date").GetString());
        Assert.StartsWith("Bearer", root.GetProperty("headers").GetProperty("www-authenticate").GetString());
    }

    [Fact]
    public async Task Check_ValidTokenFromAWriterGroup_AllowedWithHeaders()
    {
        const string secret = "a-test-only-hmac-secret-of-32-bytes!!";
        var dir = Directory.CreateTempSubdirectory("envoy-authz-check-").FullName;
        try
        {
            var config = Path.Combine(dir, "config.yaml");
            File.WriteAllText(config, $$"""
                EnvoyAuthz:
                  Identity:
                    Issuers:
                      - Name: test
                        Issuer: https://issuer.test
                        Audiences: [ "api://airflow" ]
                        Algorithms: [ "HS256" ]
                        HmacSecret: "{{secret}}"
                  Policy:
                    Path: {{RepoPaths.Of("envoy", "policy")}}
                """);
            var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler().CreateToken(new Microsoft.IdentityModel.Tokens.SecurityTokenDescriptor
            {
                Issuer = "https://issuer.test",
                Audience = "api://airflow",
                Expires = DateTime.UtcNow.AddMinutes(5),
                Claims = new Dictionary<string, object> { ["sub"] = "ed", ["groups"] = new[] { "data-eng" } },
                SigningCredentials = new(new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(secret)), "HS256"),
            });
            var request = Path.Combine(dir, "request.json");
            File.WriteAllText(request, File.ReadAllText(RepoPaths.Of("envoy", "requests", "trigger-dag-run.json"))
                .Replace("\"content-type\": \"application/json\",", $"\"content-type\": \"application/json\", \"authorization\": \"Bearer {token}\","));

            var (code, json, err) = await Run("--config", config, "--request", request);

            Assert.True(code == 0, err);
            var root = json!.RootElement;
            Assert.Equal("allowed", root.GetProperty("decision").GetProperty("reason").GetString());
            Assert.Equal("ed", root.GetProperty("headers").GetProperty("x-authz-subject").GetString()); // the spoofed value is overwritten
            Assert.Equal("write", root.GetProperty("headers").GetProperty("x-authz-policy").GetString());
            Assert.Equal("ed", root.GetProperty("input").GetProperty("identity").GetProperty("subject").GetString());
            Assert.Equal("[REDACTED]", root.GetProperty("input").GetProperty("attributes").GetProperty("request").GetProperty("http").GetProperty("headers").GetProperty("authorization").GetString());
            Assert.DoesNotContain(token, root.GetRawText());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Check_NotACheckRequest_ExitCode2()
    {
        var bad = Path.Combine(Path.GetTempPath(), $"envoy-authz-bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(bad, """{"attributes": {"request": {"htttp": {}}}}""");
        try
        {
            var (code, _, err) = await Run("--request", bad);
            Assert.Equal(2, code);
            Assert.Contains("not a CheckRequest", err);
        }
        finally
        {
            File.Delete(bad);
        }
    }
}
