using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// Everything the security suite shares, one instance for the whole <c>Security</c> collection:
/// a trusted loopback issuer and an attacker's, in-process pipelines built by the real
/// <see cref="AuthzHost.Build"/> under each shipped policy, one log sink for all of them, and the
/// registry of secrets the tests planted. On dispose it checks, over every log line written by
/// every security and fuzz test, that no planted secret was ever logged.
/// </summary>
public sealed class SecurityFixture : IAsyncLifetime
{
    public const string Audience = "api://authz";
    public const string CookieName = "access_token";

    private readonly List<WebApplication> _apps = [];
    private readonly string _echoPolicyDir = Path.Combine(Path.GetTempPath(), "envoy-authz-security-" + Guid.NewGuid().ToString("N"));

    internal JwksServer Idp { get; private set; } = null!;
    internal JwksServer Attacker { get; private set; } = null!;
    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);
    public PlantedSecrets Secrets { get; } = new();
    public SecurityLogSink Logs { get; }

    public SecurityFixture() => Logs = new SecurityLogSink(Secrets);

    /// <summary>The default: embedded Rego with the built-in <c>authenticated</c> policy (no Policy:Path).</summary>
    public CheckPipeline Builtin { get; private set; } = null!;
    /// <summary>The example policy shipped in <c>envoy/policy</c> (public /healthz, readers, writers, admins).</summary>
    public CheckPipeline Example { get; private set; } = null!;
    /// <summary>The <c>authenticated</c> policy engine (no Rego, no input document).</summary>
    public CheckPipeline AuthenticatedEngine { get; private set; } = null!;
    /// <summary>A test policy that allows any identity and echoes claims into headers (to see how they were parsed).</summary>
    public CheckPipeline Echo { get; private set; } = null!;
    /// <summary>The example policy with <c>Server:FailureMode=error</c>: internal faults become gRPC errors, which Envoy's <c>failure_mode_allow</c> may turn into allows.</summary>
    public CheckPipeline ErrorMode { get; private set; } = null!;
    /// <summary>The example policy with <c>Server:AmbiguousPaths=normalize</c>: ambiguous paths are decided on their normal form.</summary>
    public CheckPipeline ExampleNormalize { get; private set; } = null!;

    public RSA TrustedRsa => ((RsaSecurityKey)Idp.Current.Key).Rsa;
    public string TrustedKid => Idp.Current.Key.KeyId;
    public RSA AttackerRsa => ((RsaSecurityKey)Attacker.Current.Key).Rsa;
    public string AttackerKid => Attacker.Current.Key.KeyId;
    public long Now => Time.GetUtcNow().ToUnixTimeSeconds();

    public async ValueTask InitializeAsync()
    {
        Idp = await JwksServer.StartAsync();
        Attacker = await JwksServer.StartAsync();
        Directory.CreateDirectory(_echoPolicyDir);
        await File.WriteAllTextAsync(Path.Combine(_echoPolicyDir, "echo.rego"), """
            package envoy.authz

            import rego.v1

            default allow := false

            allow := {"allowed": true, "headers": {
            	"x-echo-claims-sub": json.marshal(input.identity.claims.sub),
            	"x-echo-subject": input.identity.subject,
            	"x-echo-parsed-path": json.marshal(input.parsed_path),
            	"x-echo-raw-path": json.marshal(object.get(input.attributes, ["request", "http", "path"], "")),
            	"x-echo-method": object.get(input.attributes, ["request", "http", "method"], ""),
            	"x-echo-host": object.get(input.attributes, ["request", "http", "host"], ""),
            	"x-echo-source": object.get(input.attributes, ["source", "address", "socketAddress", "address"], ""),
            	"x-echo-header-names": concat(",", sort(object.keys(object.get(input.attributes, ["request", "http", "headers"], {})))),
            }} if input.identity.subject
            """, TestContext.Current.CancellationToken);

        Builtin = Build([]);
        Example = Build([new("EnvoyAuthz:Policy:Path", RepoPaths.Of("envoy", "policy"))]);
        AuthenticatedEngine = Build([new("EnvoyAuthz:Policy:Engine", "authenticated")]);
        Echo = Build([new("EnvoyAuthz:Policy:Path", _echoPolicyDir)]);
        ErrorMode = Build([new("EnvoyAuthz:Policy:Path", RepoPaths.Of("envoy", "policy")), new("EnvoyAuthz:Server:FailureMode", "error")]);
        ExampleNormalize = Build([new("EnvoyAuthz:Policy:Path", RepoPaths.Of("envoy", "policy")), new("EnvoyAuthz:Server:AmbiguousPaths", "normalize")]);
    }

    private CheckPipeline Build(List<KeyValuePair<string, string?>> extra)
    {
        List<KeyValuePair<string, string?>> settings =
        [
            new("EnvoyAuthz:Identity:Issuers:0:Name", "corp"),
            new("EnvoyAuthz:Identity:Issuers:0:Issuer", Idp.Issuer),
            new("EnvoyAuthz:Identity:Issuers:0:Audiences:0", Audience),
            new("EnvoyAuthz:Identity:Issuers:0:RequireHttpsMetadata", "false"),
            new("EnvoyAuthz:Identity:TokenCookie", CookieName),
            new("EnvoyAuthz:Response:RemoteUserHeader", "x-remote-user"),
            // Outcomes, not speed, are under test: on 2 shared cores a Check must not be shed as overloaded.
            new("EnvoyAuthz:Server:CheckTimeout", "00:00:30"),
            new("EnvoyAuthz:Server:QueueTimeout", "00:00:01"),
            new("EnvoyAuthz:Server:MaxQueuedChecks", "10000"),
            new("EnvoyAuthz:Policy:EvaluationTimeout", "00:00:05"),
            .. extra,
        ];
        var (options, configuration) = AuthzHost.LoadConfiguration(null, dev: false, settings);
        var app = AuthzHost.Build(options, configuration, s => s.AddSingleton<TimeProvider>(Time), logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(Logs);
            logging.SetMinimumLevel(LogLevel.Trace);
        });
        _apps.Add(app);
        return app.Services.GetRequiredService<CheckPipeline>();
    }

    /// <summary>A token the trusted issuer really signed (RS256), for <paramref name="subject"/>.</summary>
    public string Genuine(string subject = "alice", string[]? groups = null, TimeSpan? lifetime = null)
    {
        var token = Idp.Mint(Time.GetUtcNow(), c =>
        {
            c["sub"] = subject;
            if (groups is not null)
            {
                c["groups"] = groups;
            }
        }, audience: Audience, lifetime: lifetime ?? TimeSpan.FromHours(1));
        Secrets.PlantToken(token);
        return token;
    }

    /// <summary>The standard payload of a forged token: trusted issuer, our audience, valid times.</summary>
    public string Payload(string sub = "mallory", string? extra = null) =>
        $$"""{"iss":"{{Idp.Issuer}}","aud":"{{Audience}}","sub":"{{sub}}","iat":{{Now}},"nbf":{{Now}},"exp":{{Now + 3600}}{{extra}}}""";

    public string RsHeader(string kid, string? extra = null) => $$"""{"alg":"RS256","typ":"JWT","kid":"{{kid}}"{{extra}}}""";

    /// <summary>
    /// Sends one Check through <paramref name="pipeline"/>: the request's secrets are planted first,
    /// and no line logged meanwhile may contain a planted secret.
    /// </summary>
    public async Task<CheckResponse> CheckAsync(CheckPipeline pipeline, CheckRequest request)
    {
        Secrets.PlantFrom(request);
        var from = Logs.Count;
        var response = await pipeline.CheckAsync(request, TestContext.Current.CancellationToken);
        Assert.Empty(Logs.LeaksSince(from));
        return response;
    }

    /// <summary>A GET with <c>Authorization: <paramref name="authorization"/></c> (when not null).</summary>
    public static CheckRequest WithAuthorization(string? authorization, string path = "/api/v1/dags", string method = "GET",
        IReadOnlyDictionary<string, string>? extra = null)
    {
        var headers = new Dictionary<string, string>(extra ?? new Dictionary<string, string>());
        if (authorization is not null)
        {
            headers["authorization"] = authorization;
        }
        return Requests.Http(method: method, path: path, headers: headers);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }
        await Idp.DisposeAsync();
        await Attacker.DisposeAsync();
        try
        {
            Directory.Delete(_echoPolicyDir, recursive: true);
        }
        catch (IOException)
        {
        }
        // Every line was checked as it was written, and each test asserts that it caused no leak
        // (see LeaksSince); a throw here would fail every test of the collection at once, so the
        // end-of-run total is printed instead.
        Console.WriteLine($"security suite log capture: {Logs.Count} lines, {Secrets.Count} secret needles, {Logs.Leaks.Count} leaks");
    }
}

[CollectionDefinition("Security")]
public sealed class SecurityCollection : ICollectionFixture<SecurityFixture>;

/// <summary>
/// Captures every log line (level, category, event, message, structured values, exception) of the
/// pipelines. Each line is checked against the planted secrets as it is written (a secret is planted
/// before the request that carries it is sent, so nothing is missed), which keeps 100 000 fuzz
/// requests cheap; lines are also kept (up to a budget) for a final rescan and for diagnostics.
/// </summary>
public sealed class SecurityLogSink(PlantedSecrets secrets) : ILoggerProvider
{
    private const long KeptCharsBudget = 40_000_000;
    private readonly object _gate = new();
    private readonly List<string> _lines = [];
    private readonly List<(long Seq, string Line)> _errors = [];
    private readonly List<string> _leaks = [];
    private readonly List<(long Seq, string Report)> _leakSeq = [];
    private long _count;
    private long _keptChars;

    /// <summary>Lines kept for the final rescan (all of them unless the budget ran out).</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>Every line written so far, kept or not.</summary>
    public long Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>Lines that contained a planted secret when written.</summary>
    public IReadOnlyList<string> Leaks
    {
        get
        {
            lock (_gate)
            {
                return [.. _leaks];
            }
        }
    }

    /// <summary>Leak reports since <paramref name="from"/> (a value of <see cref="Count"/>).</summary>
    public List<string> LeaksSince(long from)
    {
        lock (_gate)
        {
            return [.. _leakSeq.Where(l => l.Seq >= from).Select(l => l.Report)];
        }
    }

    /// <summary>Lines at Error or above since <paramref name="from"/> (a value of <see cref="Count"/>).</summary>
    public List<string> ErrorsSince(long from)
    {
        lock (_gate)
        {
            return [.. _errors.Where(e => e.Seq >= from).Select(e => e.Line)];
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private void Write(LogLevel level, string line)
    {
        var leak = secrets.FindIn(line);
        lock (_gate)
        {
            var seq = _count++;
            if (level >= LogLevel.Error)
            {
                _errors.Add((seq, line));
            }
            if (leak is not null)
            {
                _leaks.Add(leak);
                _leakSeq.Add((seq, leak));
            }
            if (_keptChars < KeptCharsBudget)
            {
                _keptChars += line.Length;
                _lines.Add(line);
            }
        }
    }

    private sealed class Logger(SecurityLogSink owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var sb = new StringBuilder().Append(logLevel).Append(' ').Append(category).Append('[').Append(eventId.Id).Append("] ")
                .Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> props)
            {
                // Every structured value, except the constant message template.
                sb.Append(" {").AppendJoin(", ", props.Where(p => p.Key != "{OriginalFormat}").Select(p => $"{p.Key}={p.Value}")).Append('}');
            }
            if (exception is not null)
            {
                sb.Append('\n').Append(exception);
            }
            owner.Write(logLevel, sb.ToString());
        }
    }
}

/// <summary>
/// The secrets tests put into requests (tokens, their segments, Authorization values, cookie
/// values, passwords, API keys). Stored as needles of at most 32 characters (a whole secret when
/// short, else its first and last 32 characters) so that 100 000 fuzz requests stay cheap; a
/// needle shorter than 16 characters is too likely to occur by chance and is not stored.
/// </summary>
public sealed class PlantedSecrets
{
    public const int MinNeedle = 16;
    private const int MaxNeedle = 32;
    private readonly ConcurrentDictionary<string, byte> _needles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _byPrefix = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public PlantedSecrets() => _lookup = _byPrefix.GetAlternateLookup<ReadOnlySpan<char>>();

    public int Count => _needles.Count;

    public void Plant(string? secret)
    {
        if (secret is null)
        {
            return;
        }
        secret = secret.Trim();
        if (secret.Length < MinNeedle)
        {
            return;
        }
        if (secret.Length <= MaxNeedle + 16)
        {
            AddNeedle(secret);
        }
        else
        {
            AddNeedle(secret[..MaxNeedle]);
            AddNeedle(secret[^MaxNeedle..]);
        }
    }

    private void AddNeedle(string needle)
    {
        // A low-entropy "secret" (e.g. 'aaaa…') identifies nothing and would match unrelated text.
        if (needle.AsSpan().ToArray().Distinct().Count() < 8)
        {
            return;
        }
        if (_needles.TryAdd(needle, 0))
        {
            _byPrefix.GetOrAdd(needle[..MinNeedle], _ => new ConcurrentQueue<string>()).Enqueue(needle);
        }
    }

    /// <summary>A token, each of its segments, and its signature.</summary>
    public void PlantToken(string token)
    {
        Plant(token);
        foreach (var part in token.Split('.'))
        {
            Plant(part);
        }
    }

    /// <summary>Plants every secret-bearing value of a request: credentials headers, cookies, API keys, passwords.</summary>
    public void PlantFrom(CheckRequest request)
    {
        var http = request.Attributes?.Request?.Http;
        if (http is null)
        {
            return;
        }
        IEnumerable<(string Name, string Value)> headers = http.Headers.Select(h => (h.Key, h.Value));
        if (http.HeaderMap is { } map)
        {
            headers = headers.Concat(map.Headers.Select(h => (h.Key, h.RawValue.Length > 0 ? h.RawValue.ToStringUtf8() : h.Value)));
        }
        foreach (var (name, value) in headers)
        {
            switch (name.ToLowerInvariant())
            {
                case "authorization" or "proxy-authorization":
                    Plant(value);
                    var trimmed = value.Trim();
                    var space = trimmed.IndexOfAny([' ', '\t']);
                    if (space > 0)
                    {
                        PlantToken(trimmed[(space + 1)..].Trim());
                    }
                    break;
                case "cookie":
                    foreach (var part in value.Split(';'))
                    {
                        var eq = part.IndexOf('=', StringComparison.Ordinal);
                        if (eq > 0)
                        {
                            PlantToken(part[(eq + 1)..].Trim().Trim('"'));
                        }
                    }
                    break;
                case "x-api-key" or "x-airflow-password":
                    Plant(value);
                    break;
            }
        }
    }

    /// <summary>The first planted needle in <paramref name="line"/>, as a short report, or null.</summary>
    public string? FindIn(string line)
    {
        var span = line.AsSpan();
        for (var i = 0; i + MinNeedle <= span.Length; i++)
        {
            if (!_lookup.TryGetValue(span.Slice(i, MinNeedle), out var candidates))
            {
                continue;
            }
            foreach (var c in candidates)
            {
                if (span[i..].StartsWith(c, StringComparison.Ordinal))
                {
                    return $"'{c}' in: {(line.Length > 300 ? line[..300] + "…" : line)}";
                }
            }
        }
        return null;
    }

    /// <summary>Every line (abbreviated) that contains a planted needle.</summary>
    public List<string> FindIn(IEnumerable<string> lines) => [.. lines.Select(FindIn).OfType<string>()];
}

/// <summary>Compact JWS built from raw JSON text, so tests control every byte of header and payload.</summary>
public static class RawJwt
{
    public static string B64(string text) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(text));

    public static string B64(byte[] bytes) => Base64UrlEncoder.Encode(bytes);

    public static string Unsigned(string header, string payload, string signature = "") => B64(header) + "." + B64(payload) + "." + signature;

    public static string Rs256(RSA rsa, string header, string payload) => SignRs256(rsa, B64(header) + "." + B64(payload));

    public static string SignRs256(RSA rsa, string signingInput) =>
        signingInput + "." + B64(rsa.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));

    public static string Hs256(byte[] key, string header, string payload)
    {
        var input = B64(header) + "." + B64(payload);
        return input + "." + B64(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(input)));
    }
}

/// <summary>Checks that one CheckResponse is well formed and extracts its outcome.</summary>
public static class ResponseShape
{
    private static readonly int[] DenyRpcCodes = [3, 7, 8, 14, 16];

    /// <summary>Asserts the response is well formed; returns <c>allowed</c> or the deny body's reason code.</summary>
    public static string Reason(CheckResponse r)
    {
        Assert.NotNull(r.Status);
        var reason = r.DynamicMetadata?.Fields.TryGetValue("reason", out var md) == true ? md.StringValue : null;
        Assert.True(r.DynamicMetadata?.Fields.ContainsKey("decision_id"), "dynamic metadata carries decision_id");
        if (r.Status.Code == 0)
        {
            Assert.Equal(CheckResponse.HttpResponseOneofCase.OkResponse, r.HttpResponseCase);
            foreach (var h in r.OkResponse.Headers)
            {
                Assert.True(h.Header.Value.AsSpan().IndexOfAny('\r', '\n', '\0') < 0, "an allowed header value has no CR, LF or NUL");
            }
            Assert.Equal("allowed", reason);
            return "allowed";
        }
        Assert.Contains(r.Status.Code, DenyRpcCodes);
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, r.HttpResponseCase);
        var denied = r.DeniedResponse;
        Assert.True((int)denied.Status.Code >= 400, "a deny carries a 4xx/5xx status");
        Assert.Contains(reason, ReasonCodes.All);
        Assert.NotEqual("allowed", reason);
        if (denied.Headers.Any(h => h.Header.Key == "content-type" && h.Header.Value == "application/json"))
        {
            using var body = JsonDocument.Parse(denied.Body);
            var bodyReason = body.RootElement.GetProperty("reason").GetString();
            Assert.Equal(reason, bodyReason);
            Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("error").GetString()));
            Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("decision_id").GetString()));
        }
        if ((int)denied.Status.Code == 401)
        {
            Assert.Contains(denied.Headers, h => h.Header.Key == "www-authenticate" && h.Header.Value.StartsWith("Bearer ", StringComparison.Ordinal));
        }
        return reason!;
    }

    public static Dictionary<string, string> OkHeaders(CheckResponse r) =>
        r.OkResponse.Headers.ToDictionary(h => h.Header.Key, h => h.Header.Value);
}
