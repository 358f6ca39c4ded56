namespace EnvoyAuthz.Rego;

/// <summary>
/// What a policy may reach outside the engine: <c>http.send</c>, <c>net.lookup_ip_addr</c> and
/// <c>opa.runtime</c>. The engine itself never touches the network; without a host (the default)
/// <c>http.send</c> and DNS lookups are builtin errors and <c>opa.runtime</c> is <c>{}</c>. A host
/// passed in <see cref="RegoEvalOptions.Host"/> decides what is allowed (e.g. an allow-list of
/// URLs) and must honour the cancellation token. Implementations are called from evaluation
/// threads concurrently.
/// </summary>
public abstract class RegoHost
{
    /// <summary>
    /// Performs <c>http.send</c>: <paramref name="request"/> is the validated request object
    /// (<c>method</c>, <c>url</c>, and optional <c>headers</c>, <c>body</c>, <c>raw_body</c>,
    /// <c>timeout</c>, …); returns the response object (<c>status</c>, <c>status_code</c>,
    /// <c>body</c>, <c>raw_body</c>, <c>headers</c>). Throw <see cref="RegoHostException"/> to
    /// fail the call (a builtin error, or with <c>raise_error: false</c> an error response).
    /// </summary>
    public virtual RegoObject HttpSend(RegoObject request, CancellationToken cancellationToken) =>
        throw new RegoHostException("network access is disabled");

    /// <summary>Resolves a host name to its addresses (<c>net.lookup_ip_addr</c>).</summary>
    public virtual IReadOnlyList<string> LookupIpAddresses(string name, CancellationToken cancellationToken) =>
        throw new RegoHostException($"lookup {name}: name resolution is disabled");

    /// <summary>The <c>opa.runtime()</c> object.</summary>
    public virtual RegoObject Runtime() => new RegoObject.Builder().Build();
}

/// <summary>A <see cref="RegoHost"/> refused or failed a call; the message becomes the builtin error.</summary>
public sealed class RegoHostException(string message) : Exception(message);
