namespace EnvoyAuthz.Airflow;

/// <summary>
/// One place Airflow connections come from. A source keeps its last good copy when a reload or
/// refresh fails; it says whether that copy may still be trusted.
/// </summary>
public interface IConnectionSource
{
    /// <summary>Fixed name (<c>file</c>, <c>env</c>, <c>api</c>): metric label and log field.</summary>
    string Name { get; }

    /// <summary>The last good copy, or null before the first successful load.</summary>
    ConnectionSnapshot? Current { get; }

    /// <summary>Whether <see cref="Current"/> may be used at <paramref name="now"/> (loaded, and not older than a max age).</summary>
    bool IsTrusted(DateTimeOffset now);
}
