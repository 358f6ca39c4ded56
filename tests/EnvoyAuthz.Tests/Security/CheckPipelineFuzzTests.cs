using System.Collections.Concurrent;
using System.Diagnostics;
using Envoy.Service.Auth.V3;
using EnvoyAuthz.Pipeline;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Security;

/// <summary>
/// At least 100 000 generated CheckRequests (4 shards × 25 000 by default) through the whole
/// in-process pipeline under the shipped policies: the built-in <c>authenticated</c> default and
/// the example policy in <c>envoy/policy</c> (with <c>Server:AmbiguousPaths</c> <c>reject</c>, and
/// <c>normalize</c>). Fixed seed, printed; override with
/// <c>ENVOYAUTHZ_FUZZ_SEED</c> (and the per-shard count with <c>ENVOYAUTHZ_FUZZ_COUNT</c>). Oracle:
/// no exception escapes; every response is well formed (allow: status 0 + OkResponse; deny: non-zero
/// status + DeniedResponse + a JSON body with a known reason); no internal error and no Error log
/// line; no allow unless the request carried a genuine token (or, under the example policy,
/// targets its public <c>/healthz</c> / <c>/health</c>), with the identity headers of that token;
/// and, under the example policy (in both path modes), no allow for a token without an admin group
/// on a path that any server on the way could read as <c>/admin</c> (issue 9).
/// </summary>
[Collection("Security")]
public sealed class CheckPipelineFuzzTests(SecurityFixture f)
{
    public const string SeedVariable = "ENVOYAUTHZ_FUZZ_SEED";
    public const string CountVariable = "ENVOYAUTHZ_FUZZ_COUNT";
    public const long DefaultSeed = 20_261_123;
    public const int DefaultPerShard = 25_000;

    /// <summary>Requests run by the fuzz theories of this process (read by the log-capture test).</summary>
    public static int Completed => Volatile.Read(ref s_completed);

    private static int s_completed;

    public static TheoryData<string, int> Shards => new()
    {
        { "builtin", 0 },
        { "builtin", 1 },
        { "example", 2 },
        { "example-normalize", 3 },
    };

    private static long Seed => long.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out var s) ? s : DefaultSeed;

    private static int PerShard => int.TryParse(Environment.GetEnvironmentVariable(CountVariable), out var n) && n > 0 ? n : DefaultPerShard;

    [Theory]
    [MemberData(nameof(Shards))]
    public async Task Fuzz_GeneratedCheckRequests_WellFormed_NoInternalError_NoAllowWithoutValidToken(string policy, int shard)
    {
        var seed = Seed;
        var count = PerShard;
        var output = TestContext.Current.TestOutputHelper;
        var banner = $"fuzz: seed={seed} (override with {SeedVariable}), shard={shard}, policy={policy}, requests={count} (override with {CountVariable})";
        output?.WriteLine(banner);
        Console.WriteLine(banner);

        var pipeline = policy switch { "example" => f.Example, "example-normalize" => f.ExampleNormalize, _ => f.Builtin };
        var example = policy.StartsWith("example", StringComparison.Ordinal);
        var reject = policy != "example-normalize";
        var fuzzer = new CheckRequestFuzzer(f, seed, shard);
        var genuine = fuzzer.GenuineSubjects;
        var groupsOf = fuzzer.GenuineGroups;
        var failures = new ConcurrentQueue<string>();
        var internalErrors = new ConcurrentQueue<string>();
        var stats = new ConcurrentDictionary<string, int>();
        var malleable = 0;
        var logFrom = f.Logs.Count;
        var watch = Stopwatch.StartNew();
        var next = -1;

        async Task Worker()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var c = fuzzer.Generate(i);
                CheckResponse response;
                try
                {
                    f.Secrets.PlantFrom(c.Request);
                    response = await pipeline.CheckAsync(c.Request, TestContext.Current.CancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    failures.Enqueue($"#{i} ({c.Kind}): exception escaped: {ex.GetType().Name}: {ex.Message}");
                    continue;
                }
                Interlocked.Increment(ref s_completed);
                string reason;
                try
                {
                    reason = ResponseShape.Reason(response);
                }
                catch (Exception ex)
                {
                    failures.Enqueue($"#{i} ({c.Kind}): malformed response: {ex.Message.ReplaceLineEndings(" ")}");
                    continue;
                }
                stats.AddOrUpdate($"{c.Kind}:{reason}", 1, (_, n) => n + 1);
                if (reason == "internal_error")
                {
                    internalErrors.Enqueue($"#{i} ({c.Kind}): internal_error");
                    continue;
                }
                if (reason != "allowed")
                {
                    continue;
                }
                if (c.Kind == FuzzToken.Genuine && c.Token is not null && genuine.TryGetValue(c.Token, out var subject))
                {
                    // A genuine token may be allowed — but only if it was the credential used (or the path is public).
                    var headers = ResponseShape.OkHeaders(response);
                    if (headers.TryGetValue("x-authz-subject", out var got) && got != subject)
                    {
                        failures.Enqueue($"#{i}: allowed as '{got}' with a token of '{subject}'");
                    }
                    if (!headers.ContainsKey("x-authz-subject") && !(example && IsPublic(c.Request, reject)))
                    {
                        failures.Enqueue($"#{i}: allowed without identity on a non-public path");
                    }
                    if (example && !groupsOf[c.Token].Contains("airflow-admins") && HostilePathSpellings.UpstreamCouldReadAsAdmin(PathOf(c.Request)))
                    {
                        // Some server on the way (a proxy that does not normalise, a WSGI or servlet upstream) could read it as /admin.
                        failures.Enqueue($"#{i}: a token of groups [{string.Join(',', groupsOf[c.Token])}] allowed on a spelling of /admin: {Trim(PathOf(c.Request))}");
                    }
                    continue;
                }
                if (example && IsPublic(c.Request, reject) && !ResponseShape.OkHeaders(response).ContainsKey("x-authz-subject"))
                {
                    continue;
                }
                if (IsReencodedGenuine(c.Token, genuine.Keys))
                {
                    // Same header, payload and signature bytes in another base64 spelling (see SignatureEncodingMalleability).
                    Interlocked.Increment(ref malleable);
                    continue;
                }
                failures.Enqueue($"#{i} ({c.Kind}): ALLOWED without a valid token: path={Trim(c.Request.Attributes?.Request?.Http?.Path)} token={Trim(c.Token)}");
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Math.Max(2, Environment.ProcessorCount)).Select(_ => Task.Run(Worker, TestContext.Current.CancellationToken)));
        watch.Stop();

        var errors = f.Logs.ErrorsSince(logFrom);
        var summary = $"fuzz: {count} requests in {watch.Elapsed.TotalSeconds:F1} s ({count / watch.Elapsed.TotalSeconds:F0}/s), seed={seed}, shard={shard}; " +
                      $"signature-encoding-malleable allows={malleable}; outcomes: " +
                      string.Join(", ", stats.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key}={s.Value}"));
        output?.WriteLine(summary);
        Console.WriteLine(summary);

        var causes = errors
            .Select(e => e.Split('\n') is { Length: > 1 } l ? l[1] + " @ " + (l.FirstOrDefault(x => x.Contains(" in /", StringComparison.Ordinal) && x.Contains("/src/", StringComparison.Ordinal))?.Trim() ?? "?") : e)
            .GroupBy(c => c).OrderByDescending(g => g.Count()).Select(g => $"  {g.Count()}× {g.Key}");
        var causeText = "internal errors by cause:\n" + string.Join("\n", causes);
        output?.WriteLine(causeText);
        // In order of severity: a secret in the log, an allow without a valid token or a malformed answer, an internal error.
        Assert.Empty(f.Logs.LeaksSince(logFrom));
        Assert.True(failures.IsEmpty, $"{failures.Count} violations (seed {seed}, shard {shard}; replay with {SeedVariable}={seed}):\n" + string.Join("\n", failures.Take(25)));
        Assert.True(internalErrors.IsEmpty && errors.Count == 0,
            $"{internalErrors.Count} internal_error answers and {errors.Count} Error log lines (seed {seed}, shard {shard}; replay with {SeedVariable}={seed}); " +
            causeText + "\nfirst: " + string.Join(", ", internalErrors.Take(10)));
        Assert.Contains(stats.Keys, k => k.EndsWith(":allowed", StringComparison.Ordinal)); // the fuzzer reaches allows, not only denies
        Assert.Contains(stats.Keys, k => k.StartsWith("Genuine:", StringComparison.Ordinal));
    }

    /// <summary>The path the parser reads: <c>http.path</c>, else the <c>:path</c> header.</summary>
    internal static string PathOf(CheckRequest request)
    {
        var http = request.Attributes?.Request?.Http;
        if (http is null)
        {
            return "";
        }
        return http.Path.Length > 0 ? http.Path : http.Headers.TryGetValue(":path", out var p) ? p : "";
    }

    private static bool IsPublic(CheckRequest request, bool rejectAmbiguousPaths)
    {
        var parsed = CheckRequestParser.Parse(request, rejectAmbiguousPaths, out _);
        return parsed is not null && parsed.ParsedPath.Count == 1 && parsed.ParsedPath[0] is "healthz" or "health";
    }

    private static bool IsReencodedGenuine(string? token, IEnumerable<string> genuine)
    {
        var parts = token?.Split('.');
        if (parts is not { Length: 3 })
        {
            return false;
        }
        foreach (var g in genuine)
        {
            var gp = g.Split('.');
            if (gp[0] == parts[0] && gp[1] == parts[1])
            {
                try
                {
                    return Base64UrlEncoder.DecodeBytes(parts[2]).AsSpan().SequenceEqual(Base64UrlEncoder.DecodeBytes(gp[2]));
                }
                catch (FormatException)
                {
                    return false;
                }
            }
        }
        return false;
    }

    private static string Trim(string? s) => s is null ? "null" : s.Length > 120 ? s[..120] + "…" : s;
}
