using System.Text;
using EnvoyAuthz.Resilience;
using Microsoft.IdentityModel.Protocols;

namespace EnvoyAuthz.Identity;

/// <summary>
/// Fetches discovery documents and JWKS for IdentityModel's retrievers: every request and every
/// read honours the caller's token (which carries the fetch's total deadline), the body is read at
/// most to <c>Identity:MaxMetadataBytes</c>, and only https is fetched unless the issuer allows
/// http. (IdentityModel's own <c>HttpDocumentRetriever</c> reads the body without the token, so a
/// silent or dripping server held a fetch until the client's 100 s timeout.)
/// </summary>
internal sealed class MetadataRetriever(HttpClient http, bool requireHttps, int maxBytes) : IDocumentRetriever
{
    /// <inheritdoc />
    public async Task<string> GetDocumentAsync(string address, CancellationToken cancel)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            throw new ArgumentException($"'{address}' is not an absolute http(s) URL", nameof(address));
        }
        if (requireHttps && uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"'{address}' is not https (RequireHttpsMetadata)", nameof(address));
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Accept.ParseAdd("application/json");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{uri.GetLeftPart(UriPartial.Path)} answered HTTP {(int)response.StatusCode}", null, response.StatusCode);
        }
        var body = await BoundedHttp.ReadBodyAsync(response, maxBytes, $"the document at {uri.GetLeftPart(UriPartial.Path)}", cancel).ConfigureAwait(false);
        return Encoding.UTF8.GetString(body);
    }
}
