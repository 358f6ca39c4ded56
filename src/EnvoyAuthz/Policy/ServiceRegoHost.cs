using System.Net;
using System.Text;
using EnvoyAuthz.Configuration;
using EnvoyAuthz.Rego;

namespace EnvoyAuthz.Policy;

/// <summary>
/// What the service lets policies reach, when configured (off by default): <c>http.send</c> to URLs
/// under <see cref="PolicyHttpSendOptions.AllowedUrlPrefixes"/> only, compared as parsed URIs
/// (<see cref="HttpSendAllowList"/>; no redirects, no <c>Host</c> override, a timeout, a
/// response-size limit), DNS lookups when <see cref="PolicyOptions.AllowDnsLookups"/> is on, and an
/// <c>opa.runtime()</c> that names the service but never exposes environment variables.
/// </summary>
public sealed class ServiceRegoHost : RegoHost
{
    private readonly PolicyOptions _options;
    private readonly HttpClient _http;
    private readonly HttpSendAllowList _allowed;

    /// <summary>Creates the host; <paramref name="http"/> must not follow redirects.</summary>
    public ServiceRegoHost(PolicyOptions options, HttpClient http)
    {
        _options = options;
        _http = http;
        _allowed = new HttpSendAllowList(options.HttpSend.AllowedUrlPrefixes);
    }

    /// <summary>Whether any outside access is configured.</summary>
    public static bool IsEnabled(PolicyOptions options) => options.HttpSend.AllowedUrlPrefixes.Count > 0 || options.AllowDnsLookups;

    /// <inheritdoc />
    public override RegoObject HttpSend(RegoObject request, CancellationToken cancellationToken)
    {
        var url = request["url"] is RegoString u ? u.Value : throw new RegoHostException("url must be a string");
        if (!_allowed.IsAllowed(url, out var uri, out var refused))
        {
            throw new RegoHostException(refused!);
        }
        var method = request["method"] is RegoString m ? m.Value.ToUpperInvariant() : "GET";
        using var message = new HttpRequestMessage(new HttpMethod(method), uri);
        if (request["raw_body"] is RegoString raw)
        {
            message.Content = new StringContent(raw.Value, Encoding.UTF8);
        }
        else if (request["body"] is { } body and not RegoNull)
        {
            message.Content = new StringContent(body.ToJson(), Encoding.UTF8, "application/json");
        }
        if (request["headers"] is RegoObject headers)
        {
            foreach (var (k, v) in headers.Pairs)
            {
                if (k is RegoString { Value: var hn } && hn.Trim().Equals("host", StringComparison.OrdinalIgnoreCase))
                {
                    // The Host header would steer the call to another virtual host than the allowed one.
                    throw new RegoHostException("the host header cannot be set");
                }
                if (k is RegoString name && v is RegoString value && !message.Headers.TryAddWithoutValidation(name.Value, value.Value))
                {
                    message.Content?.Headers.TryAddWithoutValidation(name.Value, value.Value);
                }
            }
        }
        var timeout = _options.HttpSend.Timeout;
        if (request["timeout"] is RegoString t && TimeSpan.TryParse(t.Value, System.Globalization.CultureInfo.InvariantCulture, out var requested) && requested < timeout)
        {
            timeout = requested;
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        HttpResponseMessage response;
        try
        {
            response = _http.Send(message, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            throw new RegoHostException(ex is OperationCanceledException ? $"request timed out after {timeout.TotalMilliseconds} ms" : "request failed: " + ex.Message);
        }
        using (response)
        {
            using var stream = response.Content.ReadAsStream(cts.Token);
            var buffer = new MemoryStream();
            var chunk = new byte[8192];
            int n;
            while ((n = stream.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (buffer.Length + n > _options.HttpSend.MaxResponseBytes)
                {
                    throw new RegoHostException($"response larger than {_options.HttpSend.MaxResponseBytes} bytes");
                }
                buffer.Write(chunk, 0, n);
            }
            var rawBody = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
            RegoValue parsed = RegoValue.Null;
            if (response.Content.Headers.ContentType?.MediaType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true &&
                RegoJson.TryParse(rawBody, out var json))
            {
                parsed = json;
            }
            var h = new RegoObject.Builder();
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                h.Add(name.ToLowerInvariant(), RegoArray.From(values.Select(v => (RegoValue)RegoValue.From(v))));
            }
            var code = (int)response.StatusCode;
            return new RegoObject.Builder(5)
                .Add("status", RegoValue.From($"{code} {response.ReasonPhrase}"))
                .Add("status_code", RegoValue.From((long)code))
                .Add("body", parsed)
                .Add("raw_body", RegoValue.From(rawBody))
                .Add("headers", h.Build())
                .Build();
        }
    }

    /// <inheritdoc />
    public override IReadOnlyList<string> LookupIpAddresses(string name, CancellationToken cancellationToken)
    {
        if (!_options.AllowDnsLookups)
        {
            return base.LookupIpAddresses(name, cancellationToken);
        }
        try
        {
            return [.. Dns.GetHostAddressesAsync(name, cancellationToken).GetAwaiter().GetResult().Select(a => a.ToString())];
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ArgumentException)
        {
            throw new RegoHostException($"lookup {name}: {ex.Message}");
        }
    }

    /// <inheritdoc />
    public override RegoObject Runtime() => new RegoObject.Builder(2)
        .Add("version", RegoValue.From("envoy-authz " + (typeof(ServiceRegoHost).Assembly.GetName().Version?.ToString() ?? "0")))
        .Add("env", new RegoObject.Builder().Build())
        .Build();
}
