using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using EnvoyAuthz.Rego;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// Connections from Airflow's REST API: Airflow 2 <c>GET /api/v1/connections</c> with basic auth,
/// or Airflow 3 <c>GET /api/v2/connections</c> with a JWT from <c>POST /auth/token</c>
/// (<c>{"username","password"}</c> → <c>{"access_token"}</c>), renewed shortly before its
/// <c>exp</c> and once on a 401. Pages with <c>limit</c>/<c>offset</c> until
/// <c>total_entries</c>. Refreshed every <see cref="AirflowApiOptions.RefreshInterval"/> (every
/// <see cref="AirflowApiOptions.RetryInterval"/> after a failure) on the injected
/// <see cref="TimeProvider"/>; a failed refresh keeps the last good copy, which is trusted for
/// <see cref="AirflowApiOptions.MaxAge"/> after it was loaded.
/// </summary>
/// <remarks>
/// Airflow 2's list omits <c>extra</c> (only single-object reads carry it), so v1 connections have
/// an empty <c>extra</c>. Passwords are never read from the answers; secret extras are removed.
/// </remarks>
public sealed class ApiConnectionSource : IConnectionSource
{
    private static readonly TimeSpan TokenRenewMargin = TimeSpan.FromSeconds(30);

    private readonly AirflowApiOptions _options;
    private readonly Func<HttpClient> _http;
    private readonly SensitiveKeys _sensitive;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _base;
    private readonly Resilience.DependencyGuard? _guard;
    private readonly Resilience.ReloadingSource<ConnectionSnapshot> _source;
    private string? _token;
    private DateTimeOffset _tokenRenewAt;
    private bool _staleLogged;
    private int _pages;

    /// <summary>Creates the source over one <see cref="HttpClient"/>; nothing is fetched until <see cref="RefreshAsync"/> or <see cref="RunAsync"/>.</summary>
    public ApiConnectionSource(AirflowApiOptions options, HttpClient http, SensitiveKeys sensitive, TimeProvider time, AirflowMetrics? metrics, ILogger logger)
        : this(options, () => http, sensitive, time, metrics, logger)
    {
    }

    /// <summary>Creates the source; <paramref name="http"/> is asked for a client per request (<see cref="IHttpClientFactory"/>, so handlers rotate).</summary>
    public ApiConnectionSource(AirflowApiOptions options, Func<HttpClient> http, SensitiveKeys sensitive, TimeProvider time, AirflowMetrics? metrics, ILogger logger,
        Resilience.DependencyGuard? guard = null)
    {
        _guard = guard;
        _options = options;
        _http = http;
        _sensitive = sensitive;
        _time = time;
        _logger = logger;
        _base = (options.BaseUrl ?? throw new ArgumentException("BaseUrl is required", nameof(options))).TrimEnd('/');
        _source = new Resilience.ReloadingSource<ConnectionSnapshot>(Name, LoadAsync, new Resilience.ReloadHooks<ConnectionSnapshot>
        {
            Describe = Describe,
            Count = ok => metrics?.Refreshed(Name, ok),
            Loaded = (snapshot, recovered) =>
            {
                if (recovered || _staleLogged)
                {
                    AirflowLog.ApiRecovered(_logger, snapshot.Count);
                }
                _staleLogged = false;
                AirflowLog.ApiRefreshed(_logger, snapshot.Count, _pages);
            },
            Failed = (failure, last) =>
            {
                var now = _time.GetUtcNow();
                AirflowLog.ApiRefreshFailed(_logger, failure.Level, failure.Problem, last?.Count ?? 0,
                    last is null ? "never loaded" : FileConnectionSource.Describe(now - last.LoadedAt));
                if (!IsTrusted(now) && !_staleLogged)
                {
                    _staleLogged = true;
                    AirflowLog.ApiStale(_logger, _options.MaxAge);
                }
            },
        }, time);
        metrics?.Track(this);
    }

    /// <inheritdoc />
    public string Name => "api";

    /// <inheritdoc />
    public ConnectionSnapshot? Current => _source.Current;

    /// <summary>Token requests made so far (for tests and diagnostics).</summary>
    public int TokenRequests { get; private set; }

    /// <inheritdoc />
    public bool IsTrusted(DateTimeOffset now) => _source.Current is { } c && now - c.LoadedAt <= _options.MaxAge;

    /// <summary>Refreshes until <paramref name="cancellationToken"/> fires (at once, then every <see cref="AirflowApiOptions.RefreshInterval"/>, or <see cref="AirflowApiOptions.RetryInterval"/> after a failure); never faults.</summary>
    public Task RunAsync(CancellationToken cancellationToken) =>
        _source.RunAsync(last => last == Resilience.ReloadOutcome.Failed ? _options.RetryInterval : _options.RefreshInterval, TimeSpan.Zero, cancellationToken);

    /// <summary>One refresh: all pages, or nothing (the last good copy stays). Never throws but for cancellation by the caller.</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken) =>
        await _source.ReloadAsync(cancellationToken).ConfigureAwait(false) != Resilience.ReloadOutcome.Failed;

    private async ValueTask<ConnectionSnapshot?> LoadAsync(ConnectionSnapshot? current, CancellationToken cancellationToken)
    {
        // Under the airflow-api circuit breaker: while it is open, refreshes fail fast and the last good copy serves.
        var (list, pages) = _guard is null
            ? await FetchAllAsync(cancellationToken).ConfigureAwait(false)
            : await _guard.ExecuteAsync(ct => new ValueTask<(List<AirflowConnection>, int)>(FetchAllAsync(ct)), cancellationToken).ConfigureAwait(false);
        _pages = pages;
        return new ConnectionSnapshot(list, _time.GetUtcNow());
    }

    /// <summary>A failure in a few fixed words (status codes, limits); never a message that could quote data.</summary>
    private string Describe(Exception ex) => ex switch
    {
        Resilience.DependencyUnavailableException { Kind: "circuit_open" } => "the circuit is open (recent refreshes failed)",
        Resilience.DependencyUnavailableException { Kind: "timeout" } => "the refresh timed out",
        Resilience.DependencyUnavailableException { InnerException: { } inner } => Describe(inner),
        OperationCanceledException => $"no answer within {FileConnectionSource.Describe(_options.RequestTimeout)}",
        ApiProblemException p => p.Message,
        Resilience.ResponseTooLargeException t => t.Message,
        HttpRequestException { StatusCode: { } s } => $"HTTP {(int)s}",
        HttpRequestException h => $"the request failed ({h.HttpRequestError})",
        JsonException => "the answer is not valid JSON",
        _ => $"unexpected {ex.GetType().Name}",
    };

    private async Task<(List<AirflowConnection>, int)> FetchAllAsync(CancellationToken ct)
    {
        var list = new List<AirflowConnection>();
        var offset = 0;
        var pages = 0;
        while (true)
        {
            var url = $"{_base}/api/{_options.Version}/connections?limit={_options.PageSize.ToString(CultureInfo.InvariantCulture)}&offset={offset.ToString(CultureInfo.InvariantCulture)}";
            using var doc = await GetJsonAsync(url, ct).ConfigureAwait(false);
            pages++;
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("connections", out var items) || items.ValueKind != JsonValueKind.Array)
            {
                throw new ApiProblemException("the answer has no 'connections' array");
            }
            long total = -1;
            if (root.TryGetProperty("total_entries", out var t) && t.ValueKind == JsonValueKind.Number && t.TryGetInt64(out var tv))
            {
                total = tv;
            }
            var count = 0;
            foreach (var item in items.EnumerateArray())
            {
                count++;
                if (RegoJson.FromElement(item) is not RegoObject fields ||
                    (fields["connection_id"] ?? fields["conn_id"]) is not RegoString { Value.Length: > 0 } id)
                {
                    throw new ApiProblemException("a connection has no 'connection_id'");
                }
                var conn = ConnectionParser.FromFields(id.Value, fields, _sensitive, out var why);
                if (conn is null)
                {
                    AirflowLog.ConnectionSkipped(_logger, id.Value, Name, why ?? "unreadable");
                    continue;
                }
                if (why is not null)
                {
                    AirflowLog.ConnectionExtraIgnored(_logger, id.Value, Name, why);
                }
                list.Add(conn);
                if (list.Count > _options.MaxConnections)
                {
                    throw new ApiProblemException($"more than {_options.MaxConnections} connections");
                }
            }
            offset += count;
            // total_entries is required by both specs; without it, stop at a short page.
            if (count == 0 || (total >= 0 ? offset >= total : count < _options.PageSize))
            {
                return (list, pages);
            }
            if (pages > _options.MaxConnections)
            {
                throw new ApiProblemException("too many pages");
            }
        }
    }

    private async Task<JsonDocument> GetJsonAsync(string url, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            await AuthenticateAsync(request, ct).ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            using var response = await _http().SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.Unauthorized && _options.Version == "v2" && attempt == 0)
            {
                AirflowLog.ApiUnauthorized(_logger);
                _token = null;
                continue;
            }
            if (!response.IsSuccessStatusCode)
            {
                throw new ApiProblemException($"HTTP {(int)response.StatusCode} from the connections list");
            }
            var bytes = await Resilience.BoundedHttp.ReadBodyAsync(response, _options.MaxResponseBytes, "the answer", linked.Token).ConfigureAwait(false);
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 256 });
        }
    }

    private async Task AuthenticateAsync(HttpRequestMessage request, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(_options.Username))
        {
            return;
        }
        var password = await ReadPasswordAsync(ct).ConfigureAwait(false);
        if (_options.Version == "v1")
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_options.Username}:{password}")));
            return;
        }
        if (_token is null || _time.GetUtcNow() >= _tokenRenewAt)
        {
            await RequestTokenAsync(password, ct).ConfigureAwait(false);
        }
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
    }

    private async Task RequestTokenAsync(string password, CancellationToken ct)
    {
        TokenRequests++;
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{_base}/auth/token")
        {
            Content = JsonContent(new Dictionary<string, string> { ["username"] = _options.Username!, ["password"] = password }),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        using var response = await _http().SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiProblemException($"HTTP {(int)response.StatusCode} from POST /auth/token");
        }
        var bytes = await Resilience.BoundedHttp.ReadBodyAsync(response, _options.MaxResponseBytes, "the answer", linked.Token).ConfigureAwait(false);
        using var doc = JsonDocument.Parse(bytes);
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("access_token", out var tok) ||
            tok.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(tok.GetString()))
        {
            throw new ApiProblemException("POST /auth/token answered without 'access_token'");
        }
        _token = tok.GetString();
        var now = _time.GetUtcNow();
        var exp = JwtExpiry(_token!);
        _tokenRenewAt = exp is { } e ? e - TokenRenewMargin : DateTimeOffset.MaxValue;
        if (_tokenRenewAt < now)
        {
            _tokenRenewAt = now; // short-lived token: use it once, renew next time
        }
        AirflowLog.ApiTokenObtained(_logger, exp ?? DateTimeOffset.MaxValue);
    }

    private async Task<string> ReadPasswordAsync(CancellationToken ct)
    {
        if (_options.PasswordFile is { } file)
        {
            try
            {
                return (await File.ReadAllTextAsync(file, ct).ConfigureAwait(false)).TrimEnd('\r', '\n');
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ApiProblemException($"the password file cannot be read ({ex.GetType().Name})");
            }
        }
        return _options.Password ?? "";
    }

    private static ByteArrayContent JsonContent(Dictionary<string, string> body)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>The <c>exp</c> of a JWT, read without validation (the token is only sent back to its issuer).</summary>
    internal static DateTimeOffset? JwtExpiry(string jwt)
    {
        var parts = jwt.Split('.');
        if (parts.Length < 2)
        {
            return null;
        }
        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + (4 - payload.Length % 4) % 4, '=');
            using var doc = JsonDocument.Parse(Convert.FromBase64String(payload));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("exp", out var exp) &&
                exp.ValueKind == JsonValueKind.Number && exp.TryGetInt64(out var s)
                ? DateTimeOffset.FromUnixTimeSeconds(s)
                : null;
        }
        catch (Exception ex) when (ex is FormatException or JsonException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private sealed class ApiProblemException(string message) : Exception(message);
}
