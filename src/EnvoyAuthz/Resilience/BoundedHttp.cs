using System.Buffers;

namespace EnvoyAuthz.Resilience;

/// <summary>A dependency sent a body larger than the limit configured for it; the read stopped at the limit.</summary>
public sealed class ResponseTooLargeException(string what, long limit)
    : IOException($"{what} is larger than {limit} bytes")
{
    /// <summary>The limit, in bytes.</summary>
    public long Limit { get; } = limit;
}

/// <summary>
/// The one way bodies are read from dependencies (issuer discovery and JWKS, policy bundles, the
/// Airflow API, remote OPA): at most a given number of bytes, whether the length is declared or
/// the body is chunked, every read under the caller's token — which carries the call's total
/// deadline, so a server that drips one byte at a time cannot stretch a call beyond it.
/// </summary>
public static class BoundedHttp
{
    private const int ChunkSize = 16 * 1024;

    /// <summary>
    /// Reads the body of <paramref name="response"/> (sent with
    /// <see cref="HttpCompletionOption.ResponseHeadersRead"/>, so nothing is buffered before this).
    /// Throws <see cref="ResponseTooLargeException"/> as soon as the body exceeds <paramref name="maxBytes"/>
    /// (at once when a larger <c>Content-Length</c> is declared).
    /// </summary>
    public static async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, long maxBytes, string what, CancellationToken cancellationToken)
    {
        var declared = response.Content.Headers.ContentLength;
        if (declared > maxBytes)
        {
            throw new ResponseTooLargeException(what, maxBytes);
        }
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var body = new MemoryStream((int)Math.Min(declared ?? ChunkSize, maxBytes));
            var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
            try
            {
                int n;
                while ((n = await stream.ReadAsync(chunk.AsMemory(0, ChunkSize), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (body.Length + n > maxBytes)
                    {
                        throw new ResponseTooLargeException(what, maxBytes);
                    }
                    body.Write(chunk, 0, n);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
            return body.ToArray();
        }
    }
}
