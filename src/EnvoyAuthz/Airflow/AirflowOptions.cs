namespace EnvoyAuthz.Airflow;

/// <summary>Airflow awareness: connection sources, task context, API awareness. Section <c>EnvoyAuthz:Airflow</c>.</summary>
public sealed class AirflowOptions
{
    /// <summary>Turn the Airflow stage on. Default false (then <c>input.airflow</c> is absent).</summary>
    public bool Enabled { get; set; }
}

/// <summary>Validation of <see cref="AirflowOptions"/>, called by the service's options validator.</summary>
public static class AirflowOptionsValidator
{
    /// <summary>Adds every problem of <paramref name="options"/> to <paramref name="errors"/>, keys prefixed with <paramref name="prefix"/>.</summary>
    public static void Collect(AirflowOptions options, string prefix, List<string> errors)
    {
    }
}
