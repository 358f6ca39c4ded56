using System.Globalization;
using System.Text.RegularExpressions;
using EnvoyAuthz.Identity;
using EnvoyAuthz.Pipeline;
using EnvoyAuthz.Rego;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Airflow;

/// <summary>
/// The task a request comes from: <c>dag_id</c>, <c>task_id</c>, <c>run_id</c>,
/// <c>try_number</c>, <c>map_index</c>, each from the first source in
/// <see cref="AirflowTaskContextOptions.Sources"/> that carries it, and for each field found the
/// source it came from in <c>task_source</c> (e.g. <c>{"dag_id": "context_extensions"}</c>), so
/// a policy can insist on trusted provenance. By default the validated token's claims, then the
/// route's context extensions (set by the operator in Envoy, e.g. <c>airflow_dag_id</c>), then
/// Envoy's <c>metadata_context.filter_metadata[namespace]</c> (e.g. the KubernetesExecutor pod
/// labels a mesh passes on). Request headers are the caller's own words: read only when
/// <c>headers</c> is listed, and marked <c>headers</c>. A value that is present but invalid
/// makes the field absent — it does not fall through to a later source. Valid: ids match
/// Airflow's <c>^[A-Za-z0-9_.-]+$</c> (at most 250 characters), <c>run_id</c> is 1–250 printable
/// characters, <c>try_number</c> an integer ≥ 0 and <c>map_index</c> an integer ≥ -1.
/// </summary>
/// <remarks>
/// Claim names may be dotted paths (<c>airflow.dag_id</c>) when no top-level claim has the
/// name. KubernetesExecutor pod label values are sanitised by Airflow (long ids truncated and
/// hashed), so label-derived ids of more than 63 characters do not equal the real ids.
/// Metadata is as trusted as what fills it: an operator who copies request headers into the
/// namespace (header_to_metadata) makes it the caller's words again.
/// </remarks>
public sealed partial class TaskContextResolver(AirflowTaskContextOptions options, ILogger logger)
{
    private readonly IReadOnlyList<string> _sources = options.EffectiveSources;

    /// <summary>The five fields, in output order: (input name, kind).</summary>
    private static readonly (string Key, Kind Kind)[] Fields =
        [("dag_id", Kind.Id), ("task_id", Kind.Id), ("run_id", Kind.RunId), ("try_number", Kind.TryNumber), ("map_index", Kind.MapIndex)];

    private enum Kind { Id, RunId, TryNumber, MapIndex }

    /// <summary>Adds the known fields to <paramref name="into"/>, and <c>task_source</c> (field → source) when any is known.</summary>
    public void Resolve(AuthzRequest request, CallerIdentity? identity, RegoObject.Builder into)
    {
        Struct? metadata = null;
        if (request.Check.Attributes?.MetadataContext?.FilterMetadata is { } fm && options.MetadataNamespace.Length > 0)
        {
            fm.TryGetValue(options.MetadataNamespace, out metadata);
        }
        RegoObject.Builder? provenance = null;
        for (var f = 0; f < Fields.Length; f++)
        {
            var (key, kind) = Fields[f];
            foreach (var source in _sources)
            {
                var raw = source switch
                {
                    "claims" => identity is null ? null : Claim(identity.Claims, Name(options.Claims, f)),
                    "context_extensions" => Name(options.ContextExtensions, f) is { Length: > 0 } e && request.ContextExtensions.TryGetValue(e, out var ev) ? RegoValue.From(ev) : null,
                    "metadata" => metadata is null ? null : Metadata(metadata, Name(options.Metadata, f)),
                    "headers" => Name(options.Headers, f) is { Length: > 0 } h ? request.Header(h) is { } hv ? RegoValue.From(hv) : null : null,
                    _ => null,
                };
                if (raw is null)
                {
                    continue;
                }
                if (Validate(raw, kind) is { } value)
                {
                    into.Add(key, value);
                    (provenance ??= new RegoObject.Builder(Fields.Length)).Add(key, RegoValue.From(source));
                }
                else
                {
                    AirflowLog.TaskFieldIgnored(logger, key, source);
                }
                break;
            }
        }
        if (provenance is not null)
        {
            into.Add("task_source", provenance.Build());
        }
    }

    private static string Name(AirflowTaskFieldNames n, int field) => field switch
    {
        0 => n.DagId,
        1 => n.TaskId,
        2 => n.RunId,
        3 => n.TryNumber,
        _ => n.MapIndex,
    };

    private static RegoValue? Claim(RegoObject claims, string name)
    {
        if (name.Length == 0)
        {
            return null;
        }
        if (claims.TryGetValue(name, out var v))
        {
            return v;
        }
        RegoValue current = claims;
        foreach (var part in name.Split('.'))
        {
            if (current is not RegoObject o || !o.TryGetValue(part, out current!))
            {
                return null;
            }
        }
        return current;
    }

    private static RegoValue? Metadata(Struct s, string name)
    {
        if (name.Length == 0 || !s.Fields.TryGetValue(name, out var v))
        {
            return null;
        }
        return v.KindCase switch
        {
            Value.KindOneofCase.StringValue => RegoValue.From(v.StringValue),
            Value.KindOneofCase.NumberValue => RegoValue.From(v.NumberValue),
            _ => RegoValue.Null, // present but not usable: invalid
        };
    }

    private static RegoValue? Validate(RegoValue raw, Kind kind)
    {
        switch (kind)
        {
            case Kind.Id:
                return raw is RegoString { Value: var id } && id.Length <= 250 && IdPattern().IsMatch(id) ? raw : null;
            case Kind.RunId:
                return raw is RegoString { Value: var run } && run.Length is > 0 and <= 250 && !run.Any(char.IsControl) ? raw : null;
            default:
                long n;
                if (raw is RegoNumber num && num.TryGetInt64(out var l))
                {
                    n = l;
                }
                else if (raw is RegoString { Value: var s } && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var p))
                {
                    n = p;
                }
                else
                {
                    return null;
                }
                var min = kind == Kind.TryNumber ? 0 : -1;
                return n >= min && n <= int.MaxValue ? RegoValue.From(n) : null;
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]+$", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();
}
