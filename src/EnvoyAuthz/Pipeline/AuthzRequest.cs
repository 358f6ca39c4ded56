using Envoy.Service.Auth.V3;

namespace EnvoyAuthz.Pipeline;

/// <summary>
/// Stage 1's product: the parts of a <see cref="CheckRequest"/> the later stages read, parsed once.
/// Header names are lowercase. The original request stays available for the policy input.
/// </summary>
public sealed class AuthzRequest
{
    /// <summary>The request as Envoy sent it.</summary>
    public required CheckRequest Check { get; init; }
    /// <summary>HTTP method, e.g. <c>GET</c>.</summary>
    public required string Method { get; init; }
    private string? _normalizedPath;

    /// <summary>The path with its query, as sent.</summary>
    public required string RawPath { get; init; }
    /// <summary>The path without query, as sent: still percent-encoded, not normalised.</summary>
    public required string PathOnly { get; init; }
    /// <summary>The query without <c>?</c>, or empty.</summary>
    public required string Query { get; init; }
    /// <summary>Host (authority), lowercase.</summary>
    public required string Host { get; init; }
    /// <summary>Scheme, e.g. <c>https</c>.</summary>
    public required string Scheme { get; init; }
    /// <summary>Request headers by lowercase name.</summary>
    public required IReadOnlyDictionary<string, string> Headers { get; init; }
    /// <summary>Context extensions set per route in the Envoy config.</summary>
    public required IReadOnlyDictionary<string, string> ContextExtensions { get; init; }
    /// <summary>
    /// Path segments, normalised by <see cref="PathNormalizer"/>: each escape decoded once, slashes
    /// merged, no dot segments, no leading <c>/</c> (OPA-Envoy's <c>parsed_path</c> shape). Match
    /// paths on this, never on <see cref="RawPath"/> or <see cref="PathOnly"/>.
    /// </summary>
    public required IReadOnlyList<string> ParsedPath { get; init; }
    /// <summary>The normalised path, <c>/</c> + <see cref="ParsedPath"/> joined by <c>/</c> (decoded; for prefix matches and display).</summary>
    public string NormalizedPath => _normalizedPath ??= "/" + string.Join('/', ParsedPath);
    /// <summary>Query parameters, name → values (as OPA-Envoy's <c>parsed_query</c>).</summary>
    public required IReadOnlyList<KeyValuePair<string, List<string>>> ParsedQuery { get; init; }
    /// <summary>The body as UTF-8 bytes when Envoy sent one, else empty.</summary>
    public ReadOnlyMemory<byte> Body { get; init; }
    /// <summary>Whether Envoy sent only part of the body.</summary>
    public bool TruncatedBody { get; init; }

    /// <summary>A header value, or null.</summary>
    public string? Header(string lowercaseName) => Headers.TryGetValue(lowercaseName, out var v) ? v : null;
}
