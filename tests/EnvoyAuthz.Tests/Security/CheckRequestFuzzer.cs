using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.IdentityModel.Tokens;

namespace EnvoyAuthz.Tests.Security;

/// <summary>What kind of credential a generated request carries.</summary>
public enum FuzzToken
{
    None,
    Genuine,
    RandomString,
    RandomTriplet,
    BitFlip,
    SwappedSegments,
    ElevatedPayload,
    AlgNone,
    HmacConfusion,
    AttackerSigned,
    Truncated,
    Concatenated,
}

/// <summary>One generated request and what the oracle needs to know about it.</summary>
public sealed record FuzzCase(int Index, CheckRequest Request, FuzzToken Kind, string? Token);

/// <summary>
/// Generates hostile CheckRequests, deterministically from (seed, shard, index): random methods,
/// paths (dot segments, escapes, overlong UTF-8, NUL, unicode, huge), hosts, headers (spoofed
/// identity headers, CR/LF, raw invalid UTF-8 in <c>header_map</c>), bodies (JSON, malformed, deep,
/// form, binary <c>raw_body</c>), metadata_context (NaN, ∞, nesting), context_extensions, and
/// tokens: none, genuine, random, and genuine tokens mutated (bit flips per segment, swapped
/// segments, re-encoded payload with elevated claims, alg none, HS256 with the public key,
/// attacker-signed, truncated, concatenated), placed in the Authorization header or the cookie.
/// </summary>
public sealed class CheckRequestFuzzer
{
    private static readonly string[] Methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "get", "", "G\u0000ET", "PØST", "GET /admin HTTP/1.1"];
    private static readonly string[] Segments =
    [
        "", "healthz", "health", "admin", "api", "v1", "v2", "dags", "dagRuns", "connections", "..", ".", "%2e%2e", "%2E", "%2F", "%2f",
        "%00", "%c0%af", "%e0%80%af", "%zz", "%", "%2", ";", ";x=1", "admin;", "日本", "café", "%F0%9F%94%92", "\u0000", "a b", "+", "%20",
        "%252F", "~", "*", "?", "#", "%3F", "%23", "\r\n", "\ud800", "..;", "%5C", "\\",
        // spellings of the admin area (issue 9)
        "ADMIN", "Admin", "%61dmin", "%2561dmin", "admin%00", "admin;x", ".%2e", "%2e.", "users", "x", "admin%2F", "admin\\users",
    ];
    private static readonly string[] HeaderNames =
    [
        "content-type", "content-length", "user-agent", "x-forwarded-for", "x-request-id", "accept", "x-authz-subject", "x-authz-groups",
        "x-authz-issuer", "x-authz-scopes", "x-authz-decision-id", "x-airflow-conn-id", "x-remote-user", "x-envoy-auth-partial-body",
        "x-api-key", "x-airflow-password", "proxy-authorization", "x-forwarded-host", ":authority", ":path", ":method", "host", "X-Mixed-Case",
        "x-ünï", "",
    ];
    private static readonly string[] ContentTypes =
    [
        "application/json", "application/json; charset=utf-8", "application/vnd.api+json", "application/x-www-form-urlencoded", "text/plain",
        "application/octet-stream", "multipart/form-data; boundary=x", "APPLICATION/JSON", "",
    ];
    private const string Base64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    private readonly SecurityFixture _f;
    private readonly long _seed;
    private readonly int _shard;
    private readonly (string Token, string Subject, string[] Groups)[] _genuine;
    private readonly string[] _attackerSigned;
    private readonly byte[] _publicKeyDer;

    public CheckRequestFuzzer(SecurityFixture f, long seed, int shard)
    {
        _f = f;
        _seed = seed;
        _shard = shard;
        string[][] groupSets = [[], ["viewers"], ["writers"], ["airflow-admins"], ["data-eng", "viewers"]];
        _genuine = [.. Enumerable.Range(0, 20).Select(i =>
        {
            var subject = $"fuzz-user-{shard}-{i}";
            var groups = groupSets[i % groupSets.Length];
            return (f.Genuine(subject, groups), subject, groups);
        })];
        _attackerSigned = [.. Enumerable.Range(0, 16).Select(i => RawJwt.Rs256(f.AttackerRsa,
            i % 2 == 0 ? f.RsHeader(f.TrustedKid) : f.RsHeader(f.AttackerKid),
            f.Payload("admin", ",\"groups\":[\"airflow-admins\"]")))];
        _publicKeyDer = f.TrustedRsa.ExportSubjectPublicKeyInfo();
    }

    /// <summary>The genuine tokens this fuzzer hands out (the only ones that may be allowed).</summary>
    public IReadOnlyDictionary<string, string> GenuineSubjects => _genuine.ToDictionary(g => g.Token, g => g.Subject);

    public IEnumerable<string> GenuineTokens => _genuine.Select(g => g.Token);

    /// <summary>The groups of each genuine token.</summary>
    public IReadOnlyDictionary<string, string[]> GenuineGroups => _genuine.ToDictionary(g => g.Token, g => g.Groups);

    public FuzzCase Generate(int index)
    {
        var r = new Random(Mix(_seed, _shard, index));
        var (kind, token) = MakeToken(r);
        var http = new AttributeContext.Types.HttpRequest
        {
            Id = r.Next().ToString("x", System.Globalization.CultureInfo.InvariantCulture),
            Method = Pick(r, Methods),
            Path = MakePath(r),
            Host = r.Next(10) == 0 ? RandomString(r, 40) : Pick(r, ["airflow.example.com", "API.EXAMPLE.COM", "127.0.0.1:8080", "", "[::1]", "evil.example.com\r\nx: y"]),
            Scheme = Pick(r, ["https", "http", "", "HTTPS", "javascript"]),
            Protocol = Pick(r, ["HTTP/1.1", "HTTP/2", "HTTP/3", ""]),
        };
        var headers = new List<(string Name, string Value)>();
        var headerCount = r.Next(0, 12);
        for (var i = 0; i < headerCount; i++)
        {
            var name = r.Next(6) == 0 ? RandomString(r, 20).ToLowerInvariant() : Pick(r, HeaderNames);
            var value = name switch
            {
                "content-type" => Pick(r, ContentTypes),
                "content-length" => Pick(r, ["0", "10", "100000", "-1", "abc", "99999999999999999999"]),
                "x-envoy-auth-partial-body" => Pick(r, ["true", "false", "TRUE"]),
                "x-api-key" or "x-airflow-password" => "fz-" + RandomString(r, 24, Base64Url, minLength: 20),
                _ => RandomString(r, r.Next(50) == 0 ? 70_000 : 60),
            };
            headers.Add((name, value));
        }
        if (r.Next(3) == 0)
        {
            headers.Add(("content-type", Pick(r, ContentTypes)));
        }
        PlaceToken(r, token, headers);

        AddBody(r, http, headers);

        var useHeaderMap = r.Next(8) == 0;
        if (useHeaderMap)
        {
            http.HeaderMap = new HeaderMap();
            foreach (var (name, value) in headers)
            {
                var raw = r.Next(4) == 0 ? ByteString.CopyFrom([.. Encoding.UTF8.GetBytes(value), .. RandomBytes(r, 6)]) : ByteString.CopyFromUtf8(value);
                http.HeaderMap.Headers.Add(r.Next(5) == 0 ? new HeaderValue { Key = name, Value = value } : new HeaderValue { Key = name, RawValue = raw });
            }
        }
        else
        {
            foreach (var (name, value) in headers)
            {
                http.Headers[name] = value;
            }
        }

        var attributes = new AttributeContext
        {
            Request = new AttributeContext.Types.Request { Http = http, Time = r.Next(4) == 0 ? Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddSeconds(r.Next())) : null },
            Source = new AttributeContext.Types.Peer
            {
                Address = new Address { SocketAddress = new SocketAddress { Address = Pick(r, ["10.0.0.7", "::1", "", RandomString(r, 20)]), PortValue = (uint)r.Next() } },
                Principal = r.Next(3) == 0 ? RandomString(r, 40) : "spiffe://cluster.local/ns/airflow/sa/worker",
                Certificate = r.Next(10) == 0 ? RandomString(r, 200) : "",
            },
            Destination = r.Next(2) == 0 ? null : new AttributeContext.Types.Peer { Principal = RandomString(r, 30) },
        };
        for (var i = r.Next(0, 4); i > 0; i--)
        {
            attributes.ContextExtensions[Pick(r, ["conn_id", "dag_id", "task_id", "route", RandomString(r, 12)])] = RandomString(r, 30);
        }
        if (r.Next(3) == 0)
        {
            attributes.MetadataContext = new Metadata();
            for (var i = r.Next(1, 3); i > 0; i--)
            {
                attributes.MetadataContext.FilterMetadata[Pick(r, ["envoy.filters.http.jwt_authn", "istio_authn", RandomString(r, 10)])] = RandomStruct(r, 3);
            }
        }
        if (r.Next(500) == 0)
        {
            attributes.Request = r.Next(2) == 0 ? null : new AttributeContext.Types.Request();
        }
        return new FuzzCase(index, new CheckRequest { Attributes = attributes }, kind, token);
    }

    private static int Mix(long seed, int shard, int index)
    {
        // splitmix64 of (seed, shard, index): deterministic across processes (unlike HashCode).
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)shard * 0xBF58476D1CE4E5B9UL + (ulong)index * 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)(z ^ (z >> 31));
    }

    private (FuzzToken, string?) MakeToken(Random r)
    {
        var genuine = _genuine[r.Next(_genuine.Length)].Token;
        var parts = genuine.Split('.');
        var roll = r.Next(100);
        return roll switch
        {
            < 15 => (FuzzToken.None, null),
            < 27 => (FuzzToken.Genuine, genuine),
            < 35 => (FuzzToken.RandomString, RandomString(r, r.Next(20) == 0 ? 20_000 : 300)),
            < 40 => (FuzzToken.RandomTriplet, string.Join('.', RandomString(r, 80, Base64Url, 1), RandomString(r, 200, Base64Url, 1), RandomString(r, 342, Base64Url, 1))),
            < 60 => (FuzzToken.BitFlip, BitFlip(r, genuine)),
            < 64 => (FuzzToken.SwappedSegments, Shuffle(r, parts)),
            < 74 => (FuzzToken.ElevatedPayload, parts[0] + "." + Elevate(r, parts[1]) + "." + parts[2]),
            < 79 => (FuzzToken.AlgNone, RawJwt.B64(Pick(r, ["{\"alg\":\"none\"}", "{\"alg\":\"NONE\",\"typ\":\"JWT\"}", "{\"alg\":\"nOnE\"}"])) + "." + Elevate(r, parts[1]) + "." + (r.Next(2) == 0 ? "" : parts[2])),
            < 84 => (FuzzToken.HmacConfusion, RawJwt.Hs256(_publicKeyDer, _f.RsHeader(_f.TrustedKid).Replace("RS256", "HS256", StringComparison.Ordinal), DecodePayload(parts[1]).Replace("fuzz-user", "fuzz-admin", StringComparison.Ordinal))),
            < 90 => (FuzzToken.AttackerSigned, _attackerSigned[r.Next(_attackerSigned.Length)]),
            < 95 => (FuzzToken.Truncated, genuine[..r.Next(1, genuine.Length)]),
            _ => (FuzzToken.Concatenated, genuine + Pick(r, [".", "..", " ", ",", "A", "==", ""]) + (r.Next(2) == 0 ? genuine : parts[2])),
        };
    }

    private static string BitFlip(Random r, string token)
    {
        var chars = token.ToCharArray();
        var dots = Enumerable.Range(0, chars.Length).Where(i => chars[i] == '.').ToArray();
        var segment = r.Next(3);
        var start = segment == 0 ? 0 : dots[segment - 1] + 1;
        var end = segment == 2 ? chars.Length : dots[segment];
        for (var flips = r.Next(1, 4); flips > 0; flips--)
        {
            var at = r.Next(start, end);
            chars[at] = (char)(chars[at] ^ (1 << r.Next(0, r.Next(8) == 0 ? 16 : 7)));
        }
        return new string(chars);
    }

    private static string Shuffle(Random r, string[] parts)
    {
        string[][] orders = [[parts[1], parts[0], parts[2]], [parts[0], parts[2], parts[1]], [parts[2], parts[1], parts[0]], [parts[0], parts[1]], [parts[0], parts[1], parts[2], parts[2]], [parts[1], parts[1], parts[2]]];
        return string.Join('.', orders[r.Next(orders.Length)]);
    }

    private static string DecodePayload(string segment) => Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(segment));

    private static string Elevate(Random r, string payloadSegment)
    {
        var json = DecodePayload(payloadSegment);
        json = r.Next(3) switch
        {
            0 => json.Replace("\"sub\":\"", "\"sub\":\"admin-", StringComparison.Ordinal),
            1 => json.TrimEnd('}') + ",\"groups\":[\"airflow-admins\"],\"sub\":\"admin\"}",
            _ => json.Replace("\"exp\":", "\"exp\":9", StringComparison.Ordinal),
        };
        return RawJwt.B64(json);
    }

    private void PlaceToken(Random r, string? token, List<(string, string)> headers)
    {
        if (token is null)
        {
            return;
        }
        switch (r.Next(20))
        {
            case < 14:
                headers.Add(("authorization", Pick(r, ["Bearer ", "Bearer ", "Bearer ", "bearer ", "Bearer  ", "Basic ", "Bearer\t", "", "Token "]) + token));
                break;
            case < 17:
                headers.Add(("cookie", $"theme=dark; {SecurityFixture.CookieName}={token}; session=fz-{RandomString(r, 24, Base64Url, 20)}"));
                break;
            case < 19:
                headers.Add(("authorization", "Bearer " + RandomString(r, 40, Base64Url, 20)));
                headers.Add(("cookie", $"{SecurityFixture.CookieName}={token}"));
                break;
            default:
                headers.Add(("x-token", token));
                break;
        }
    }

    private void AddBody(Random r, AttributeContext.Types.HttpRequest http, List<(string Name, string Value)> headers)
    {
        switch (r.Next(10))
        {
            case 0:
                var password = "fz-" + RandomString(r, 24, Base64Url, 20);
                _f.Secrets.Plant(password);
                http.Body = "{\"conf\":{\"password\":\"" + password + "\"},\"note\":" + System.Text.Json.JsonSerializer.Serialize(RandomString(r, 30)) + "}";
                break;
            case 1:
                http.Body = Pick(r, ["{", "{\"a\":}", "[1,", "nul", "{'a':1}", "{\"a\":1}x", "\"\\ud800\"", "{\"a\":1e99999}"]);
                break;
            case 2:
                http.RawBody = ByteString.CopyFrom(RandomBytes(r, r.Next(50) == 0 ? 200_000 : 300));
                break;
            case 3:
                var formPassword = "fz-" + RandomString(r, 24, Base64Url, 20);
                _f.Secrets.Plant(formPassword);
                http.Body = "a=1&b=%zz&c=" + Uri.EscapeDataString(RandomString(r, 20)) + "&password=" + formPassword;
                break;
            case 4 when r.Next(10) == 0:
                var depth = r.Next(100, 3000);
                http.RawBody = ByteString.CopyFromUtf8(new string('[', depth) + new string(']', depth));
                break;
            case 5:
                http.RawBody = ByteString.CopyFrom([.. "{\"a\":\""u8.ToArray(), .. RandomBytes(r, 8), .. "\"}"u8.ToArray()]);
                break;
            case 6:
                http.Body = RandomString(r, 200);
                break;
        }
        if (http.Body.Length > 0 || http.RawBody.Length > 0)
        {
            http.Size = http.Body.Length + http.RawBody.Length;
            if (r.Next(2) == 0)
            {
                headers.Add(("content-type", Pick(r, ContentTypes)));
            }
        }
    }

    private static string MakePath(Random r)
    {
        if (r.Next(200) == 0)
        {
            return "/" + new string('a', r.Next(10_000, 300_000));
        }
        var sb = new StringBuilder();
        var count = r.Next(0, 7);
        for (var i = 0; i < count; i++)
        {
            sb.Append(r.Next(8) == 0 ? "//" : "/");
            sb.Append(r.Next(6) == 0 ? RandomString(r, 12) : Pick(r, Segments));
        }
        if (r.Next(4) == 0)
        {
            sb.Append('?').Append(Pick(r, ["a=1", "a=%zz&b", "x=/admin", "&&", "a=1;b=2", "q=" + RandomString(r, 10)]));
        }
        if (r.Next(20) == 0)
        {
            sb.Append('#').Append(RandomString(r, 8));
        }
        var path = sb.ToString();
        return r.Next(10) == 0 ? path.TrimStart('/') : path.Length == 0 ? "/" : path;
    }

    private static Struct RandomStruct(Random r, int depth)
    {
        var s = new Struct();
        for (var i = r.Next(0, 5); i > 0; i--)
        {
            s.Fields[RandomString(r, 10)] = RandomValue(r, depth - 1);
        }
        return s;
    }

    private static Value RandomValue(Random r, int depth) => (depth <= 0 ? r.Next(4) : r.Next(6)) switch
    {
        0 => Value.ForNull(),
        1 => Value.ForBool(r.Next(2) == 0),
        2 => Value.ForNumber(Pick(r, [0, -0.0, 1e308, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.Epsilon, r.NextDouble() * 1e20, 9007199254740993])),
        3 => Value.ForString(RandomString(r, 40)),
        4 => Value.ForList([.. Enumerable.Range(0, r.Next(0, 4)).Select(_ => RandomValue(r, depth - 1))]),
        _ => Value.ForStruct(RandomStruct(r, depth - 1)),
    };

    private static T Pick<T>(Random r, T[] items) => items[r.Next(items.Length)];

    private static byte[] RandomBytes(Random r, int length)
    {
        var bytes = new byte[length];
        r.NextBytes(bytes);
        return bytes;
    }

    private static string RandomString(Random r, int maxLength, string? alphabet = null, int minLength = 0)
    {
        var length = r.Next(minLength, Math.Max(minLength, maxLength) + 1);
        var sb = new StringBuilder(length);
        var mode = alphabet is null ? r.Next(5) : -1;
        for (var i = 0; i < length; i++)
        {
            sb.Append(mode switch
            {
                -1 => alphabet![r.Next(alphabet.Length)],
                0 => (char)r.Next(0x20, 0x7f),
                1 => Base64Url[r.Next(Base64Url.Length)],
                2 => (char)r.Next(0, 0x20),
                3 => (char)r.Next(0x80, 0x3000),
                _ => (char)r.Next(0, 0x10000), // includes lone surrogates
            });
        }
        return sb.ToString();
    }
}
