using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>How <see cref="RawHttpServer"/> treats the next connections.</summary>
internal enum RawHttpMode
{
    /// <summary>Answers with <see cref="RawHttpServer.Body"/> (Content-Length, or chunked when <see cref="RawHttpServer.Chunked"/>).</summary>
    Respond,
    /// <summary>Accepts the connection, reads the request, and never answers (held open until the server is disposed).</summary>
    Blackhole,
    /// <summary>Sends the status line and headers of a chunked answer, then one byte per <see cref="RawHttpServer.DripInterval"/>, forever.</summary>
    Drip,
    /// <summary>Sends a chunked body of spaces without end, as fast as the client reads.</summary>
    Endless,
}

/// <summary>
/// A dependency misbehaving at the TCP level, on 127.0.0.1 and a free port: a real socket server
/// (no HTTP stack) that can answer normally, accept and never answer, drip one byte at a time, or
/// stream without end. It counts connections and the bytes it managed to send, so a test can show
/// where a client stopped reading.
/// </summary>
internal sealed class RawHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private readonly Task _accept;
    private long _bytesSent;
    private int _connectionCount;

    public RawHttpServer()
    {
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accept = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Base URL, no trailing slash.</summary>
    public string Url { get; }

    private volatile RawHttpMode _mode = RawHttpMode.Respond;
    private volatile byte[] _body = [];
    private volatile int _status = 200;
    private volatile bool _chunked;

    /// <summary>What the next connections get.</summary>
    public RawHttpMode Mode { get => _mode; set => _mode = value; }

    /// <summary>The body of <see cref="RawHttpMode.Respond"/> answers.</summary>
    public byte[] Body { get => _body; set => _body = value; }

    /// <summary>Status code of <see cref="RawHttpMode.Respond"/> answers.</summary>
    public int Status { get => _status; set => _status = value; }

    /// <summary>Send <see cref="Body"/> chunked (no Content-Length).</summary>
    public bool Chunked { get => _chunked; set => _chunked = value; }

    /// <summary>Content type of every answer.</summary>
    public string ContentType { get; set; } = "application/json";

    /// <summary>Time between two bytes of <see cref="RawHttpMode.Drip"/>.</summary>
    public TimeSpan DripInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connectionCount);

    /// <summary>Body bytes written to clients so far.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Sets a text body.</summary>
    public void Respond(string body, int status = 200)
    {
        Body = Encoding.UTF8.GetBytes(body);
        Status = status;
        Mode = RawHttpMode.Respond;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }
        await Task.WhenAll(open.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            Interlocked.Increment(ref _connectionCount);
            var task = Task.Run(() => ServeAsync(socket));
            lock (_connections)
            {
                _connections.Add(task);
            }
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        var ct = _stop.Token;
        try
        {
            await ReadRequestHeadAsync(socket, ct);
            switch (Mode)
            {
                case RawHttpMode.Blackhole:
                    await Task.Delay(Timeout.Infinite, ct);
                    break;
                case RawHttpMode.Drip:
                    await SendAsync(socket, Head(200, chunked: true, length: 0), ct, counts: false);
                    while (true)
                    {
                        await SendAsync(socket, Encoding.ASCII.GetBytes("1\r\n \r\n"), ct, counts: false);
                        Interlocked.Increment(ref _bytesSent);
                        await Task.Delay(DripInterval, ct);
                    }
                case RawHttpMode.Endless:
                    await SendAsync(socket, Head(200, chunked: true, length: 0), ct, counts: false);
                    var chunk = Encoding.ASCII.GetBytes("4000\r\n" + new string(' ', 0x4000) + "\r\n");
                    while (true)
                    {
                        await SendAsync(socket, chunk, ct, counts: false);
                        Interlocked.Add(ref _bytesSent, 0x4000);
                    }
                default:
                    var body = Body;
                    if (Chunked)
                    {
                        await SendAsync(socket, Head(Status, chunked: true, length: 0), ct, counts: false);
                        for (var offset = 0; offset < body.Length; offset += 0x4000)
                        {
                            var n = Math.Min(0x4000, body.Length - offset);
                            await SendAsync(socket, Encoding.ASCII.GetBytes($"{n:x}\r\n"), ct, counts: false);
                            await SendAsync(socket, body.AsMemory(offset, n), ct, counts: true);
                            await SendAsync(socket, "\r\n"u8.ToArray(), ct, counts: false);
                        }
                        await SendAsync(socket, "0\r\n\r\n"u8.ToArray(), ct, counts: false);
                    }
                    else
                    {
                        await SendAsync(socket, Head(Status, chunked: false, length: body.Length), ct, counts: false);
                        await SendAsync(socket, body, ct, counts: true);
                    }
                    socket.Shutdown(SocketShutdown.Send);
                    break;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
            // the client went away, or the server stops
        }
    }

    private byte[] Head(int status, bool chunked, long length) => Encoding.ASCII.GetBytes(
        $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Status")}\r\nContent-Type: {ContentType}\r\nConnection: close\r\n" +
        (chunked ? "Transfer-Encoding: chunked\r\n" : $"Content-Length: {length}\r\n") + "\r\n");

    private async Task SendAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken ct, bool counts)
    {
        while (!bytes.IsEmpty)
        {
            var n = await socket.SendAsync(bytes, SocketFlags.None, ct);
            if (counts)
            {
                Interlocked.Add(ref _bytesSent, n);
            }
            bytes = bytes[n..];
        }
    }

    private static async Task ReadRequestHeadAsync(Socket socket, CancellationToken ct)
    {
        var buffer = new byte[8192];
        var seen = new StringBuilder();
        while (seen.Length < 64 * 1024)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (n == 0)
            {
                return;
            }
            seen.Append(Encoding.ASCII.GetString(buffer, 0, n));
            var text = seen.ToString();
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                // A POST body (remote OPA) is read as far as its Content-Length says.
                var length = 0;
                foreach (var line in text[..end].Split("\r\n"))
                {
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    {
                        length = int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    }
                }
                var have = Encoding.ASCII.GetByteCount(text) - (end + 4);
                while (have < length)
                {
                    var m = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                    if (m == 0)
                    {
                        return;
                    }
                    have += m;
                }
                return;
            }
        }
    }
}
