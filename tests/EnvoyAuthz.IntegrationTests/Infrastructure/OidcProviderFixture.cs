using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// Runs a real OpenID provider (npm <c>oidc-provider</c>, <c>OidcProvider/server.mjs</c>) under Node
/// on 127.0.0.1 for the lifetime of the fixture. It issues JWT access tokens by the
/// client_credentials grant, signed RS256 or ES256 per request, and offers test-only controls for
/// key rotation, JWKS/discovery outages and restarts.
/// </summary>
/// <remarks>
/// Usable as a class, collection or assembly fixture (single parameterless constructor), or created
/// ad hoc with <see cref="StartAsync"/> by tests that stop, restart or rotate and so must not share
/// one. The node process also exits by itself when this process dies (its stdin closes).
/// </remarks>
public class OidcProviderFixture : IAsyncLifetime
{
    /// <summary>Audience (resource indicator) of tokens when none is requested.</summary>
    public const string DefaultAudience = "https://authz.test";

    /// <summary>Client used when none is named.</summary>
    public const string DefaultClientId = "svc-client";

    /// <summary>Environment variable that may point at the node executable.</summary>
    public const string NodeEnvironmentVariable = "ENVOYAUTHZ_NODE";

    private const int MaxStderrChars = 256 * 1024;

    private readonly OidcProviderOptions _options;
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly StringBuilder _stderr = new();
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private readonly string _stateFile = NewStateFile();
    private Process? _process;
    private string? _issuer;

    /// <summary>Creates a fixture with the default clients and audience.</summary>
    public OidcProviderFixture() : this(new OidcProviderOptions()) { }

    /// <summary>Creates a fixture with the given options (for subclasses and <see cref="StartAsync"/>).</summary>
    protected OidcProviderFixture(OidcProviderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        Port = options.Port;
    }

    /// <summary>Starts a new provider and waits until it is ready; the caller disposes it.</summary>
    public static async Task<OidcProviderFixture> StartAsync(
        OidcProviderOptions? options = null, CancellationToken cancellationToken = default)
    {
        var fixture = new OidcProviderFixture(options ?? new OidcProviderOptions());
        try
        {
            await fixture.StartProcessAsync(cancellationToken).ConfigureAwait(false);
            return fixture;
        }
        catch
        {
            await fixture.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Issuer URL, <c>http://127.0.0.1:&lt;port&gt;</c> (no trailing slash).</summary>
    public string Issuer => _issuer ?? throw new InvalidOperationException("the OpenID provider has not started");

    /// <summary>Discovery document URL.</summary>
    public string DiscoveryUri => Issuer + "/.well-known/openid-configuration";

    /// <summary>JWKS URL (as advertised in discovery).</summary>
    public string JwksUri => Issuer + "/jwks";

    /// <summary>Token endpoint URL.</summary>
    public string TokenEndpoint => Issuer + "/token";

    /// <summary>Loopback port; stays the same across <see cref="RestartAsync"/>.</summary>
    public int Port { get; private set; }

    /// <summary>The registered clients.</summary>
    public IReadOnlyList<OidcTestClient> Clients => _options.Clients;

    /// <summary>Whether the node process is running.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Everything the node process(es) wrote to stderr so far (for diagnostics).</summary>
    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Folder holding <c>server.mjs</c>, <c>package.json</c> and <c>node_modules</c>.</summary>
    public static string ProviderDirectory => FindProviderDirectory();

    /// <inheritdoc />
    public virtual ValueTask InitializeAsync() => new(StartProcessAsync(CancellationToken.None));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await DisposeAsyncCore().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>Stops the process and removes the key state file.</summary>
    protected virtual async ValueTask DisposeAsyncCore()
    {
        await StopAsync().ConfigureAwait(false);
        _http.Dispose();
        TryDelete(_stateFile);
        TryDelete(_stateFile + ".tmp");
    }

    // ---- tokens --------------------------------------------------------------------------------------

    /// <summary>
    /// Gets a JWT access token by a real client_credentials request. <paramref name="alg"/> is
    /// <c>RS256</c> or <c>ES256</c>; <paramref name="scope"/> <c>null</c> = the client's configured
    /// scope (<c>""</c> = none); <paramref name="audience"/> <c>null</c> = <see cref="DefaultAudience"/>;
    /// <paramref name="clientId"/> <c>null</c> = <see cref="DefaultClientId"/>.
    /// </summary>
    /// <exception cref="OidcTokenRequestException">The token endpoint refused the request.</exception>
    public Task<string> GetAccessTokenAsync(
        string alg = "RS256",
        string? scope = null,
        string? audience = null,
        string? clientId = null,
        CancellationToken cancellationToken = default) =>
        GetAccessTokenAsync(
            new OidcTokenRequest { Alg = alg, Scope = scope, Audience = audience, ClientId = clientId },
            cancellationToken);

    /// <summary>Gets a JWT access token with all the test knobs of <see cref="OidcTokenRequest"/>.</summary>
    /// <exception cref="OidcTokenRequestException">The token endpoint refused the request.</exception>
    public async Task<string> GetAccessTokenAsync(OidcTokenRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var clientId = request.ClientId ?? DefaultClientId;
        var client = _options.Clients.FirstOrDefault(c => c.ClientId == clientId);
        var secret = request.ClientSecret ?? client?.ClientSecret
            ?? throw new ArgumentException($"unknown client '{clientId}' and no ClientSecret given", nameof(request));

        var form = new List<KeyValuePair<string, string>>
        {
            new("grant_type", "client_credentials"),
            new("resource", request.Audience ?? _options.DefaultAudience),
            new("test_alg", request.Alg),
        };
        var scope = request.Scope ?? client?.Scope;
        if (!string.IsNullOrEmpty(scope))
        {
            form.Add(new("scope", scope));
        }
        if (request.Groups is not null)
        {
            form.Add(new("test_groups", string.Join(' ', request.Groups)));
        }
        if (request.Roles is not null)
        {
            form.Add(new("test_roles", string.Join(' ', request.Roles)));
        }
        if (request.LifetimeSeconds is { } ttl)
        {
            form.Add(new("test_ttl", ttl.ToString(CultureInfo.InvariantCulture)));
        }
        if (request.ExtraClaimsJson is not null)
        {
            form.Add(new("test_claims", request.ExtraClaimsJson));
        }
        if (request.ExtraHeaderJson is not null)
        {
            form.Add(new("test_header", request.ExtraHeaderJson));
        }

        using var message = new HttpRequestMessage(HttpMethod.Post, TokenEndpoint)
        {
            Content = new FormUrlEncodedContent(form),
        };
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64
        var basic = Uri.EscapeDataString(clientId) + ":" + Uri.EscapeDataString(secret);
        message.Headers.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(basic)));

        using var response = await _http.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        string? error = null;
        string? token = null;
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("error", out var e))
            {
                error = e.GetString();
            }
            if (json.RootElement.TryGetProperty("access_token", out var t))
            {
                token = t.GetString();
            }
        }
        catch (JsonException)
        {
            // reported below with the raw body
        }
        if (!response.IsSuccessStatusCode || token is null)
        {
            throw new OidcTokenRequestException((int)response.StatusCode, error, body);
        }
        return token;
    }

    /// <summary>Fetches the JWKS as the service would see it (throws on a non-success status).</summary>
    public async Task<JsonWebKeySet> GetJwksAsync(CancellationToken cancellationToken = default)
    {
        var json = await _http.GetStringAsync(new Uri(JwksUri), cancellationToken).ConfigureAwait(false);
        return new JsonWebKeySet(json);
    }

    // ---- test controls -------------------------------------------------------------------------------

    /// <summary>
    /// Generates a new signing key (new kid) for <paramref name="alg"/> (<c>RS256</c>, <c>ES256</c>, or
    /// <c>null</c> = both), signs new tokens with it and publishes it in the JWKS (first). With
    /// <paramref name="keepOld"/> false the previous keys of that algorithm leave the JWKS.
    /// </summary>
    /// <returns>The state after rotation; <see cref="OidcProviderState.CurrentKids"/> has the new kids.</returns>
    public Task<OidcProviderState> RotateSigningKeyAsync(
        bool keepOld = true, string? alg = null, CancellationToken cancellationToken = default)
    {
        var query = "keepOld=" + (keepOld ? "true" : "false");
        if (alg is not null)
        {
            query += "&alg=" + Uri.EscapeDataString(alg);
        }
        return AdminAsync(HttpMethod.Post, "rotate?" + query, cancellationToken);
    }

    /// <summary>
    /// Makes the JWKS endpoint (and discovery, unless <paramref name="includeDiscovery"/> is false)
    /// answer <paramref name="statusCode"/> until <see cref="StartJwksAsync"/>. The token endpoint keeps working.
    /// </summary>
    public Task<OidcProviderState> StopJwksAsync(
        int statusCode = 503, bool includeDiscovery = true, CancellationToken cancellationToken = default) =>
        AdminAsync(
            HttpMethod.Post,
            string.Create(CultureInfo.InvariantCulture, $"stop-jwks?status={statusCode}&discovery={(includeDiscovery ? "true" : "false")}"),
            cancellationToken);

    /// <summary>Ends a <see cref="StopJwksAsync"/> outage.</summary>
    public Task<OidcProviderState> StartJwksAsync(CancellationToken cancellationToken = default) =>
        AdminAsync(HttpMethod.Post, "start-jwks", cancellationToken);

    /// <summary>Delays every JWKS and discovery response by <paramref name="delay"/> (zero clears).</summary>
    public Task<OidcProviderState> SetJwksDelayAsync(TimeSpan delay, CancellationToken cancellationToken = default) =>
        AdminAsync(
            HttpMethod.Post,
            string.Create(CultureInfo.InvariantCulture, $"delay?ms={(long)delay.TotalMilliseconds}"),
            cancellationToken);

    /// <summary>Current kids, faults and request counters.</summary>
    public Task<OidcProviderState> GetStateAsync(CancellationToken cancellationToken = default) =>
        AdminAsync(HttpMethod.Get, "state", cancellationToken);

    /// <summary>Zeroes the JWKS/discovery/token request counters.</summary>
    public Task<OidcProviderState> ResetCountersAsync(CancellationToken cancellationToken = default) =>
        AdminAsync(HttpMethod.Post, "reset-counters", cancellationToken);

    private async Task<OidcProviderState> AdminAsync(HttpMethod method, string pathAndQuery, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(method, $"{Issuer}/__test/{pathAndQuery}");
        using var response = await _http.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"OpenID provider admin {method} {pathAndQuery} failed: HTTP {(int)response.StatusCode} {body}");
        }
        return JsonSerializer.Deserialize<OidcProviderState>(body)
            ?? throw new InvalidOperationException($"OpenID provider admin {pathAndQuery} returned {body}");
    }

    // ---- lifecycle -----------------------------------------------------------------------------------

    /// <summary>
    /// Stops the node process (graceful, then killed after 5 s). Idempotent. Keys survive in the
    /// state file for <see cref="RestartAsync"/>; injected faults and counters do not.
    /// </summary>
    public async Task StopAsync()
    {
        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            await StopProcessCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops (if running) and starts the provider again on the same port with the same keys.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (IsRunning)
            {
                return;
            }
            await StartProcessCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private async Task StartProcessCoreAsync(CancellationToken cancellationToken)
    {
        var directory = ProviderDirectory;
        var node = FindNode();
        if (!File.Exists(Path.Combine(directory, "node_modules", "oidc-provider", "package.json")))
        {
            throw new InvalidOperationException(
                $"npm dependencies of the test OpenID provider are missing in {directory}/node_modules. "
                + $"Run: (cd {directory} && npm ci --ignore-scripts --no-audit --no-fund)");
        }

        var psi = new ProcessStartInfo(node)
        {
            WorkingDirectory = directory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add("server.mjs");
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add(Port.ToString(CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--state-file");
        psi.ArgumentList.Add(_stateFile);
        psi.Environment["OIDC_CLIENTS"] = JsonSerializer.Serialize(_options.Clients);
        psi.Environment["OIDC_DEFAULT_AUDIENCE"] = _options.DefaultAudience;
        psi.Environment["OIDC_AUDIENCES"] = _options.AllowedAudiences is { Count: > 0 } allowed
            ? string.Join(',', allowed)
            : "*";
        psi.Environment.Remove("NODE_OPTIONS");

        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            if (e.Data.StartsWith("READY ", StringComparison.Ordinal))
            {
                ready.TrySetResult(e.Data["READY ".Length..].Trim());
            }
            else
            {
                AppendStderr("[stdout] " + e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                AppendStderr(e.Data);
            }
        };
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("node exited before READY"));

        try
        {
            if (!process.Start())
            {
                throw new InvalidOperationException($"could not start {node}");
            }
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            process.Dispose();
            throw new InvalidOperationException($"could not start '{node}': {ex.Message}. {NodeHint}", ex);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        string issuer;
        try
        {
            issuer = await ready.Task.WaitAsync(_options.StartupTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            var exitCode = "still running (killed)";
            if (process.HasExited)
            {
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false); // drains stderr
                exitCode = process.ExitCode.ToString(CultureInfo.InvariantCulture);
            }
            await StopProcessCoreAsync().ConfigureAwait(false);
            var why = ex is TimeoutException ? $"did not print READY within {_options.StartupTimeout.TotalSeconds:0} s" : ex.Message;
            throw new InvalidOperationException(
                $"test OpenID provider ({node} server.mjs in {directory}) failed to start: {why}; "
                + $"exit code: {exitCode}; stderr:\n{StandardError}", ex);
        }

        _issuer = issuer;
        Port = new Uri(issuer).Port;
    }

    private async Task StopProcessCoreAsync()
    {
        var process = _process;
        if (process is null)
        {
            return;
        }
        _process = null;
        try
        {
            if (!process.HasExited)
            {
                try
                {
                    process.StandardInput.Close(); // server.mjs exits when stdin closes
                }
                catch (IOException)
                {
                    // already gone
                }
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync().ConfigureAwait(false);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }
        finally
        {
            process.Dispose();
        }
    }

    private void AppendStderr(string line)
    {
        lock (_stderr)
        {
            if (_stderr.Length < MaxStderrChars)
            {
                _stderr.AppendLine(line);
            }
        }
    }

    private const string NodeHint =
        "The integration tests need Node.js >= 20.19 on PATH (Debian: apt-get install -y nodejs npm), "
        + "or set " + NodeEnvironmentVariable + " to the node executable.";

    private static string FindNode()
    {
        var configured = Environment.GetEnvironmentVariable(NodeEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return File.Exists(configured)
                ? configured
                : throw new InvalidOperationException($"{NodeEnvironmentVariable}={configured} does not exist. {NodeHint}");
        }
        var names = OperatingSystem.IsWindows() ? new[] { "node.exe", "node.cmd" } : new[] { "node", "nodejs" };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator))
        {
            if (dir.Length == 0)
            {
                continue;
            }
            foreach (var name in names)
            {
                var candidate = Path.Combine(dir, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }
        throw new InvalidOperationException($"'node' was not found on PATH. {NodeHint}");
    }

    private static string FindProviderDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln")))
            {
                return Path.Combine(dir.FullName, "tests", "EnvoyAuthz.IntegrationTests", "OidcProvider");
            }
        }
        throw new InvalidOperationException(
            $"could not find EnvoyAuthz.sln above {AppContext.BaseDirectory}; the integration tests run from the repository's build output");
    }

    /// <summary>
    /// A private file for the generated keys, so a restart serves the same ones. Files left behind by
    /// a crashed run (older than 6 h) are removed on the way.
    /// </summary>
    private static string NewStateFile()
    {
        var dir = Path.Combine(Path.GetTempPath(), "envoyauthz-oidc");
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var stale in Directory.EnumerateFiles(dir, "*.json*"))
            {
                if (File.GetLastWriteTimeUtc(stale) < DateTime.UtcNow.AddHours(-6))
                {
                    TryDelete(stale);
                }
            }
        }
        catch (IOException)
        {
        }
        return Path.Combine(dir, $"{Guid.NewGuid():N}.json");
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
