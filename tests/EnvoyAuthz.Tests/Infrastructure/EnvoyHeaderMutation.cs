#pragma warning disable CS0612 // HeaderValueOption.append is deprecated upstream; older Envoys still read it
using Envoy.Service.Auth.V3;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>
/// Applies an OK CheckResponse to request headers in the order Envoy's ext_authz filter does
/// (source/extensions/filters/http/ext_authz/ext_authz.cc, onComplete): headers to set
/// (OVERWRITE_IF_EXISTS_OR_ADD, or append=false), then to add, then headers_to_remove
/// (never pseudo-headers or host). Lets tests assert what the upstream would receive.
/// </summary>
internal static class EnvoyHeaderMutation
{
    public static Dictionary<string, List<string>> ApplyOk(IReadOnlyDictionary<string, string> downstream, CheckResponse response)
    {
        if (response.HttpResponseCase != CheckResponse.HttpResponseOneofCase.OkResponse)
        {
            throw new InvalidOperationException("not an OK response");
        }
        var headers = downstream.ToDictionary(kv => kv.Key.ToLowerInvariant(), kv => new List<string> { kv.Value });
        var ok = response.OkResponse;
        foreach (var h in ok.Headers)
        {
            var name = h.Header.Key.ToLowerInvariant();
            var overwrite = h.AppendAction == Envoy.Config.Core.V3.HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd
                            || (h.AppendAction == default && h.Append is null) || h.Append == false;
            if (overwrite)
            {
                headers[name] = [h.Header.Value];
            }
            else if (headers.TryGetValue(name, out var list))
            {
                list.Add(h.Header.Value);
            }
            else
            {
                headers[name] = [h.Header.Value];
            }
        }
        foreach (var name in ok.HeadersToRemove)
        {
            var lower = name.ToLowerInvariant();
            if (lower.StartsWith(':') || lower == "host")
            {
                continue;
            }
            headers.Remove(lower);
        }
        return headers;
    }
}
