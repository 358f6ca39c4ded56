using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// No token, token signature, password, cookie value or Authorization value planted by the
/// security suite is ever written to the log. Every pipeline of the <c>Security</c> collection logs
/// (at Trace and above) into one <see cref="SecurityLogSink"/> that checks each line as it is
/// written; this test adds a corpus of its own (every secret-bearing place, allow and deny paths,
/// every pipeline) and then asserts over everything captured so far. The collection fixture asserts
/// the same once more after the last test of the collection (fuzz runs included).
/// </summary>
[Collection("Security")]
public sealed class LogRedactionTests(SecurityFixture f)
{
    [Fact]
    public void SecretScanner_PositiveControl_DetectsWholeTokensSignaturesAndPasswords()
    {
        var secrets = new PlantedSecrets();
        var sink = new SecurityLogSink(secrets);
        var logger = sink.CreateLogger("canary");
        var token = RawJwt.Rs256(f.AttackerRsa, f.RsHeader("canary"), f.Payload("canary"));
        secrets.PlantToken(token);
        secrets.Plant("canary-password-0123456789");

        logger.LogInformation("clean line {Value}", "nothing to see");
        logger.LogInformation("leaks a signature {Sig}", token.Split('.')[2]);
        logger.LogWarning("leaks a password {Pw}", "x=canary-password-0123456789;");
        logger.LogError(new InvalidOperationException("bad token " + token), "leaks in an exception");

        Assert.Equal(3, sink.Leaks.Count);
        Assert.Equal(3, secrets.FindIn(sink.Lines).Count);
    }

    [Fact]
    public async Task LogCapture_WholeSecuritySuite_NeverContainsPlantedSecrets()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        var apiKey = "key-" + Guid.NewGuid().ToString("N");
        var session = "sess-" + Guid.NewGuid().ToString("N");
        f.Secrets.Plant(password);
        var forged = RawJwt.Rs256(f.AttackerRsa, f.RsHeader(f.TrustedKid), f.Payload("admin"));
        f.Secrets.PlantToken(forged);
        var expired = RawJwt.Rs256(f.TrustedRsa, f.RsHeader(f.TrustedKid),
            $$"""{"iss":"{{f.Idp.Issuer}}","aud":"{{SecurityFixture.Audience}}","sub":"alice","exp":{{f.Now - 3600}}}""");
        f.Secrets.PlantToken(expired);
        string[] credentials =
        [
            "Bearer " + f.Genuine("alice", ["writers"]),
            "Bearer " + forged,
            "Bearer " + expired,
            "Bearer " + f.Genuine("bob") + "tampered",
            "Basic " + Convert.ToBase64String("admin:hunter2-hunter2-hunter2"u8.ToArray()),
            "Bearer\t" + f.Genuine("carol"),
            "Bearer " + new string('z', 20_000),
        ];
        var pipelines = new[] { f.Builtin, f.Example, f.AuthenticatedEngine, f.Echo };
        foreach (var pipeline in pipelines)
        {
            foreach (var credential in credentials)
            {
                foreach (var (path, body) in new[] { ("/api/v1/connections", $$"""{"password":"{{password}}"}"""), ("/%zz", "{"), ("/healthz", "") })
                {
                    var request = Requests.Http(method: "POST", path: path, headers: new Dictionary<string, string>
                    {
                        ["authorization"] = credential,
                        ["cookie"] = $"{SecurityFixture.CookieName}={f.Genuine("dave")}; session={session}",
                        ["x-api-key"] = apiKey,
                        ["x-airflow-password"] = password,
                        ["proxy-authorization"] = "Basic " + Convert.ToBase64String("proxy:proxy-secret-0123456789"u8.ToArray()),
                        ["content-type"] = "application/json",
                    }, body: body);
                    if (path == "/healthz")
                    {
                        request.Attributes.Request.Http.RawBody = ByteString.CopyFromUtf8("password=" + password);
                    }
                    var response = await f.CheckAsync(pipeline, request);
                    ResponseShape.Reason(response);
                }
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"log capture: {f.Logs.Count} lines written so far, {f.Secrets.Count} secret needles planted, {CheckPipelineFuzzTests.Completed} fuzz requests run so far");
        Assert.True(f.Logs.Count >= pipelines.Length * credentials.Length * 3, "every Check was logged (the capture works)");
        Assert.Contains(f.Logs.Lines, l => l.Contains("reason=invalid_token", StringComparison.Ordinal));
        Assert.Empty(f.Logs.Leaks);
        Assert.Empty(f.Secrets.FindIn(f.Logs.Lines));
    }
}
