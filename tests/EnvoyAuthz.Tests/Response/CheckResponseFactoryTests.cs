#pragma warning disable CS0612 // HeaderValueOption.append is deprecated upstream; older Envoys still read it
using System.Text.Json;
using Envoy.Config.Core.V3;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using EnvoyAuthz.Response;
using EnvoyAuthz.Tests.Infrastructure;

namespace EnvoyAuthz.Tests.Response;

public class CheckResponseFactoryTests
{
    private static CallerIdentity Alice() => new()
    {
        IssuerName = "corp",
        Issuer = "https://idp.example.com",
        Subject = "alice",
        Audience = ["api"],
        ClientId = "cli",
        Scopes = ["read", "write"],
        Groups = ["admins", "viewers"],
        Roles = [],
        ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        Claims = (RegoObject)RegoJson.Parse("""{"sub":"alice"}"""),
    };

    [Fact]
    public void Allow_SetsIdentityHeadersWithOverwriteAction()
    {
        var options = new AuthzOptions();
        options.Response.RemoteUserHeader = "x-remote-user";
        var r = new CheckResponseFactory(options).Build(DecisionOutcome.Allow(), "d1", Alice(), "http_default");
        Assert.Equal(0, r.Status.Code);
        var set = r.OkResponse.Headers.ToDictionary(h => h.Header.Key, h => h);
        Assert.Equal("alice", set["x-authz-subject"].Header.Value);
        Assert.Equal("https://idp.example.com", set["x-authz-issuer"].Header.Value);
        Assert.Equal("admins,viewers", set["x-authz-groups"].Header.Value);
        Assert.Equal("read write", set["x-authz-scopes"].Header.Value);
        Assert.Equal("d1", set["x-authz-decision-id"].Header.Value);
        Assert.Equal("http_default", set["x-airflow-conn-id"].Header.Value);
        Assert.Equal("alice", set["x-remote-user"].Header.Value);
        Assert.All(r.OkResponse.Headers, h =>
        {
            Assert.Equal(HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd, h.AppendAction);
            Assert.Null(h.Append);
        });
        Assert.Equal("d1", r.DynamicMetadata.Fields["decision_id"].StringValue);
    }

    [Fact]
    public void Allow_ClientSentIdentityHeaders_NeverReachUpstream()
    {
        // No groups, no connection: those identity headers are not set, so they must be removed.
        var identity = Alice();
        identity = new CallerIdentity
        {
            IssuerName = identity.IssuerName, Issuer = identity.Issuer, Subject = "bob", Audience = identity.Audience,
            Scopes = [], Groups = [], Roles = [], ExpiresAt = identity.ExpiresAt, Claims = identity.Claims,
        };
        var r = new CheckResponseFactory(new AuthzOptions()).Build(DecisionOutcome.Allow(), "d2", identity, null);
        var upstream = EnvoyHeaderMutation.ApplyOk(new Dictionary<string, string>
        {
            ["x-authz-subject"] = "admin",
            ["x-authz-groups"] = "admins",
            ["x-authz-scopes"] = "everything",
            ["x-airflow-conn-id"] = "prod_db",
            ["x-authz-issuer"] = "evil",
            ["x-authz-decision-id"] = "forged",
            ["x-other"] = "kept",
        }, r);
        Assert.Equal(["bob"], upstream["x-authz-subject"]);
        Assert.Equal(["https://idp.example.com"], upstream["x-authz-issuer"]);
        Assert.Equal(["d2"], upstream["x-authz-decision-id"]);
        Assert.False(upstream.ContainsKey("x-authz-groups"));
        Assert.False(upstream.ContainsKey("x-authz-scopes"));
        Assert.False(upstream.ContainsKey("x-airflow-conn-id"));
        Assert.Equal(["kept"], upstream["x-other"]);
    }

    [Fact]
    public void Allow_NoIdentity_RemovesEveryIdentityHeaderButDecisionId()
    {
        var r = new CheckResponseFactory(new AuthzOptions()).Build(DecisionOutcome.Allow(), "d3", null, null);
        Assert.Equal(["x-authz-subject", "x-authz-issuer", "x-authz-groups", "x-authz-scopes", "x-airflow-conn-id"], r.OkResponse.HeadersToRemove);
    }

    [Fact]
    public void Allow_PolicyHeadersAndRemovals_Applied()
    {
        var decision = new DecisionOutcome
        {
            Allowed = true,
            Reason = ReasonCode.Allowed,
            Headers = [new("x-tenant", "blue"), new("x-bad", "a\r\nInjected: 1")],
            RequestHeadersToRemove = ["X-Internal"],
            ResponseHeadersToAdd = [new("x-served-by", "authz")],
            QueryParametersToSet = [new("t", "1")],
            QueryParametersToRemove = ["debug"],
        };
        var r = new CheckResponseFactory(new AuthzOptions()).Build(decision, "d4", Alice(), null);
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-tenant" && h.Header.Value == "blue");
        Assert.DoesNotContain(r.OkResponse.Headers, h => h.Header.Key == "x-bad");
        Assert.Contains("x-internal", r.OkResponse.HeadersToRemove);
        Assert.Contains(r.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == "x-served-by");
        Assert.Equal("t", r.OkResponse.QueryParametersToSet[0].Key);
        Assert.Equal(["debug"], r.OkResponse.QueryParametersToRemove);
    }

    [Theory]
    [InlineData(ReasonCode.MissingToken, 401, 16)]
    [InlineData(ReasonCode.ExpiredToken, 401, 16)]
    [InlineData(ReasonCode.PolicyDenied, 403, 7)]
    [InlineData(ReasonCode.RateLimited, 429, 8)]
    [InlineData(ReasonCode.DependencyUnavailable, 503, 14)]
    [InlineData(ReasonCode.BadRequest, 400, 3)]
    public void Deny_StatusCodesAndJsonBody(ReasonCode reason, int http, int grpc)
    {
        var r = new CheckResponseFactory(new AuthzOptions()).Build(DecisionOutcome.Deny(reason, "the token expired"), "d5", null, null);
        Assert.Equal(grpc, r.Status.Code);
        Assert.Equal(http, (int)r.DeniedResponse.Status.Code);
        using var body = JsonDocument.Parse(r.DeniedResponse.Body);
        Assert.Equal(reason.ToWire(), body.RootElement.GetProperty("reason").GetString());
        Assert.Equal("d5", body.RootElement.GetProperty("decision_id").GetString());
        Assert.True(body.RootElement.TryGetProperty("error", out _));
        Assert.Equal("d5", r.DynamicMetadata.Fields["decision_id"].StringValue);
        var www = r.DeniedResponse.Headers.FirstOrDefault(h => h.Header.Key == "www-authenticate");
        if (http == 401)
        {
            Assert.NotNull(www);
            Assert.StartsWith("Bearer realm=\"envoy-authz\"", www.Header.Value);
            Assert.Equal(reason != ReasonCode.MissingToken, www.Header.Value.Contains("error=\"invalid_token\""));
        }
        else
        {
            Assert.Null(www);
        }
    }

    private static CallerIdentity WithSubjectAndGroup(string subject, string group) => new()
    {
        IssuerName = "corp",
        Issuer = "https://idp.example.com",
        Subject = subject,
        Audience = ["api"],
        Scopes = ["read"],
        Groups = [group],
        Roles = [],
        ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        Claims = (RegoObject)RegoJson.Parse("""{"sub":"x"}"""),
    };

    /// <summary>Identity values as tokens may carry them: text any header can carry, kept as it is (UTF-8 on the wire).</summary>
    [Theory]
    [InlineData("jos\u00e9")]
    [InlineData("\ud83d\ude00")]          // an emoji (a surrogate pair)
    [InlineData("v\u00efewers")]
    [InlineData("\u5f20\u4f1f")]
    [InlineData("a\tb")]                   // horizontal tab is field-value
    [InlineData("\u00a0nbsp\u2028")]      // non-ASCII spaces are obs-text, not controls
    public void Allow_NonAsciiIdentityValues_KeptAsTheyAre(string value)
    {
        var options = new AuthzOptions();
        options.Response.RemoteUserHeader = "x-remote-user";
        var r = new CheckResponseFactory(options).Build(DecisionOutcome.Allow(), "d6", WithSubjectAndGroup(value, value), null);
        var set = r.OkResponse.Headers.ToDictionary(h => h.Header.Key, h => h.Header.Value);
        Assert.Equal(value, set["x-authz-subject"]);
        Assert.Equal(value, set["x-remote-user"]);
        Assert.Equal(value, set["x-authz-groups"]);
        Assert.DoesNotContain("x-authz-subject", r.OkResponse.HeadersToRemove);
    }

    /// <summary>Values no HTTP header may carry: the header is dropped and, being an identity header, removed upstream.</summary>
    [Theory]
    [InlineData("a\u0001b")]
    [InlineData("\u0000")]
    [InlineData("a\rb")]
    [InlineData("a\nb")]
    [InlineData("x\u001fy")]
    [InlineData("del\u007f")]
    [InlineData("lone high surrogate")]     // an unpaired surrogate has no UTF-8 form (built below: test data cannot carry one)
    [InlineData("lone low surrogate")]
    public void Allow_IdentityValuesNoHeaderCanCarry_DroppedAndRemovedUpstream(string value)
    {
        value = value switch
        {
            "lone high surrogate" => "lone" + (char)0xD800,
            "lone low surrogate" => (char)0xDC00 + "lone",
            _ => value,
        };
        var options = new AuthzOptions();
        options.Response.RemoteUserHeader = "x-remote-user";
        var r = new CheckResponseFactory(options).Build(DecisionOutcome.Allow(), "d7", WithSubjectAndGroup(value, value), null);
        Assert.DoesNotContain(r.OkResponse.Headers, h => h.Header.Key is "x-authz-subject" or "x-remote-user" or "x-authz-groups");
        Assert.Contains("x-authz-subject", r.OkResponse.HeadersToRemove);
        Assert.Contains("x-remote-user", r.OkResponse.HeadersToRemove);
        Assert.Contains("x-authz-groups", r.OkResponse.HeadersToRemove);
        var upstream = EnvoyHeaderMutation.ApplyOk(new Dictionary<string, string> { ["x-authz-subject"] = "spoofed" }, r);
        Assert.False(upstream.ContainsKey("x-authz-subject"));
        // The rest of the answer stands: still an allow, with the values that can travel.
        Assert.Equal(0, r.Status.Code);
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-authz-issuer");
    }

    [Theory]
    [InlineData("x bad")]
    [InlineData("x:y")]
    [InlineData("x\u00e9")]
    [InlineData("x\r\ny")]
    [InlineData("")]
    [InlineData(":")]
    public void PolicyHeaderNamesThatAreNotTokens_Dropped_OnAllowAndDeny(string name)
    {
        var allow = new DecisionOutcome
        {
            Allowed = true,
            Reason = ReasonCode.Allowed,
            Headers = [new(name, "v"), new("x-good", "v")],
            RequestHeadersToRemove = [name, "x-gone"],
            ResponseHeadersToAdd = [new(name, "v"), new("x-added", "v")],
        };
        var r = new CheckResponseFactory(new AuthzOptions()).Build(allow, "d8", Alice(), null);
        Assert.DoesNotContain(r.OkResponse.Headers, h => h.Header.Key == name.ToLowerInvariant());
        Assert.DoesNotContain(name.ToLowerInvariant(), r.OkResponse.HeadersToRemove);
        Assert.DoesNotContain(r.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == name.ToLowerInvariant());
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == "x-good");
        Assert.Contains("x-gone", r.OkResponse.HeadersToRemove);
        Assert.Contains(r.OkResponse.ResponseHeadersToAdd, h => h.Header.Key == "x-added");

        var deny = new DecisionOutcome { Allowed = false, Reason = ReasonCode.PolicyDenied, Headers = [new(name, "v"), new("x-why", "v")] };
        var d = new CheckResponseFactory(new AuthzOptions()).Build(deny, "d9", null, null);
        Assert.DoesNotContain(d.DeniedResponse.Headers, h => h.Header.Key == name.ToLowerInvariant());
        Assert.Contains(d.DeniedResponse.Headers, h => h.Header.Key == "x-why");
    }

    [Fact]
    public void PseudoHeaderNames_KeptForEnvoy()
    {
        var allow = new DecisionOutcome { Allowed = true, Reason = ReasonCode.Allowed, Headers = [new(":authority", "internal.example.com")] };
        var r = new CheckResponseFactory(new AuthzOptions()).Build(allow, "d10", null, null);
        Assert.Contains(r.OkResponse.Headers, h => h.Header.Key == ":authority");
    }
}
