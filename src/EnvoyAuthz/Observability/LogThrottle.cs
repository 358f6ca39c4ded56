namespace EnvoyAuthz.Observability;

/// <summary>
/// Bounds log volume for events a caller can repeat at will (malformed requests, overload): per key
/// (a fixed-vocabulary cause, never request data), the first event of each interval is reported and
/// the rest are counted, the count travelling with the next report. Thread-safe.
/// </summary>
internal sealed class LogThrottle(TimeProvider time, TimeSpan interval)
{
    private readonly Dictionary<string, Window> _windows = new(StringComparer.Ordinal);

    private sealed class Window
    {
        public DateTimeOffset Until;
        public long Suppressed;
    }

    /// <summary>
    /// True when this event should be reported in full; <paramref name="repeats"/> is then the number
    /// of events of <paramref name="key"/> held back since the last report (0 otherwise).
    /// </summary>
    public bool ShouldReport(string key, out long repeats)
    {
        var now = time.GetUtcNow();
        lock (_windows)
        {
            if (!_windows.TryGetValue(key, out var w))
            {
                w = new Window { Until = DateTimeOffset.MinValue };
                _windows[key] = w;
            }
            if (now >= w.Until)
            {
                repeats = w.Suppressed;
                w.Suppressed = 0;
                w.Until = now + interval;
                return true;
            }
            w.Suppressed++;
            repeats = 0;
            return false;
        }
    }
}
