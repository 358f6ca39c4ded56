namespace EnvoyAuthz.Pipeline;

/// <summary>
/// Why the bytes of a Check could not be read as a <c>CheckRequest</c>. Each is answered 400
/// <c>bad_request</c> without running any stage. Fixed vocabulary: the <see cref="MalformedRequests.ToWire"/>
/// names appear in logs, never request data.
/// </summary>
public enum MalformedRequest
{
    /// <summary>A proto3 <c>string</c> field holds bytes that are not UTF-8 (Envoy forwards such header values unless <c>encode_raw_headers</c> is set).</summary>
    InvalidUtf8,
    /// <summary>Messages nest deeper than the parser's limit (100 messages; metadata <c>Struct</c>s beyond 32 levels).</summary>
    NestingTooDeep,
    /// <summary>Not protobuf at all: truncated, a bad tag or wire type, a length beyond the payload.</summary>
    MalformedProtobuf,
}

/// <summary>Names of <see cref="MalformedRequest"/>.</summary>
public static class MalformedRequests
{
    /// <summary>The snake_case name used in logs.</summary>
    public static string ToWire(this MalformedRequest cause) => cause switch
    {
        MalformedRequest.InvalidUtf8 => "invalid_utf8",
        MalformedRequest.NestingTooDeep => "nesting_too_deep",
        _ => "malformed_protobuf",
    };

    /// <summary>A fixed sentence for deny details.</summary>
    public static string Describe(this MalformedRequest cause) => cause switch
    {
        MalformedRequest.InvalidUtf8 => "a string field of the CheckRequest is not valid UTF-8",
        MalformedRequest.NestingTooDeep => "the CheckRequest nests too deeply",
        _ => "the CheckRequest is not valid protobuf",
    };
}
