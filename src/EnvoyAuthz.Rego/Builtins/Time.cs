using System.Globalization;
using System.Numerics;
using System.Text;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>time.* builtins with Go layout semantics.</summary>
internal static class Time
{
    private const long NsPerSecond = 1_000_000_000;
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly Dictionary<string, string> Named = new(StringComparer.Ordinal)
    {
        ["ANSIC"] = "Mon Jan _2 15:04:05 2006",
        ["UnixDate"] = "Mon Jan _2 15:04:05 MST 2006",
        ["RubyDate"] = "Mon Jan 02 15:04:05 -0700 2006",
        ["RFC822"] = "02 Jan 06 15:04 MST",
        ["RFC822Z"] = "02 Jan 06 15:04 -0700",
        ["RFC850"] = "Monday, 02-Jan-06 15:04:05 MST",
        ["RFC1123"] = "Mon, 02 Jan 2006 15:04:05 MST",
        ["RFC1123Z"] = "Mon, 02 Jan 2006 15:04:05 -0700",
        ["RFC3339"] = "2006-01-02T15:04:05Z07:00",
        ["RFC3339Nano"] = "2006-01-02T15:04:05.999999999Z07:00",
        ["Kitchen"] = "3:04PM",
        ["Stamp"] = "Jan _2 15:04:05",
        ["StampMilli"] = "Jan _2 15:04:05.000",
        ["StampMicro"] = "Jan _2 15:04:05.000000",
        ["StampNano"] = "Jan _2 15:04:05.000000000",
        ["DateTime"] = "2006-01-02 15:04:05",
        ["DateOnly"] = "2006-01-02",
        ["TimeOnly"] = "15:04:05",
    };

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "time.parse_rfc3339_ns", 1, (_, a) => Parse("time.parse_rfc3339_ns", Named["RFC3339"], Arg.Str("time.parse_rfc3339_ns", a, 0)));
        BuiltinRegistry.Add(r, "time.parse_ns", 2, (_, a) =>
        {
            var layout = Arg.Str("time.parse_ns", a, 0);
            return Parse("time.parse_ns", Named.GetValueOrDefault(layout, layout), Arg.Str("time.parse_ns", a, 1));
        });
        BuiltinRegistry.Add(r, "time.parse_duration_ns", 1, (_, a) => RegoNumber.FromBigInteger(ParseDuration("time.parse_duration_ns", Arg.Str("time.parse_duration_ns", a, 0))));
        BuiltinRegistry.Add(r, "time.date", 1, (_, a) =>
        {
            var (dt, _, _) = Local("time.date", a[0]);
            return new RegoArray([Arg.N(dt.Year), Arg.N(dt.Month), Arg.N(dt.Day)]);
        });
        BuiltinRegistry.Add(r, "time.clock", 1, (_, a) =>
        {
            var (dt, _, _) = Local("time.clock", a[0]);
            return new RegoArray([Arg.N(dt.Hour), Arg.N(dt.Minute), Arg.N(dt.Second)]);
        });
        BuiltinRegistry.Add(r, "time.weekday", 1, (_, a) =>
        {
            var (dt, _, _) = Local("time.weekday", a[0]);
            return Arg.S(Days[(int)dt.DayOfWeek]);
        });
        BuiltinRegistry.Add(r, "time.add_date", 4, (_, a) =>
        {
            const string fn = "time.add_date";
            var ns = Ns(fn, Arg.Num(fn, a, 0));
            int y = Arg.Int(fn, a, 1), m = Arg.Int(fn, a, 2), d = Arg.Int(fn, a, 3);
            var (dt, nanos) = FromNs(ns);
            long totalMonths = (long)dt.Month - 1 + m;
            long year = dt.Year + y + FloorDiv(totalMonths, 12);
            int month = (int)(totalMonths - FloorDiv(totalMonths, 12) * 12) + 1;
            if (year < 1 || year > 9999) throw BuiltinException.Error(fn, "time outside of valid range");
            var baseDate = new DateTime((int)year, month, 1, 0, 0, 0, DateTimeKind.Utc);
            double days = (double)dt.Day - 1 + d;
            if (Math.Abs(days) > 4_000_000) throw BuiltinException.Error(fn, "time outside of valid range");
            DateTime res;
            try { res = baseDate.AddDays(days).Add(dt.TimeOfDay); }
            catch (ArgumentOutOfRangeException) { throw BuiltinException.Error(fn, "time outside of valid range"); }
            return ToNs(fn, res, nanos);
        });
        BuiltinRegistry.Add(r, "time.diff", 2, (_, a) =>
        {
            var (t1, _, tz1) = Local("time.diff", a[0]);
            var (t2raw, _, _) = Local("time.diff", a[1]);
            // both in the first time's zone
            var utc2 = TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(t2raw, DateTimeKind.Unspecified), LocalZone(a[1]));
            var t2 = TimeZoneInfo.ConvertTimeFromUtc(utc2, tz1);
            if (t1 > t2) (t1, t2) = (t2, t1);
            int year = t2.Year - t1.Year, month = t2.Month - t1.Month, day = t2.Day - t1.Day;
            int hour = t2.Hour - t1.Hour, min = t2.Minute - t1.Minute, sec = t2.Second - t1.Second;
            if (sec < 0) { sec += 60; min--; }
            if (min < 0) { min += 60; hour--; }
            if (hour < 0) { hour += 24; day--; }
            if (day < 0)
            {
                var t = new DateTime(t1.Year, t1.Month, 1).AddDays(31);
                day += 32 - t.Day;
                month--;
            }
            if (month < 0) { month += 12; year--; }
            return new RegoArray([Arg.N(year), Arg.N(month), Arg.N(day), Arg.N(hour), Arg.N(min), Arg.N(sec)]);
        });
        BuiltinRegistry.Add(r, "time.format", 1, (_, a) =>
        {
            const string fn = "time.format";
            string layout = Named["RFC3339Nano"];
            if (a[0] is RegoArray arr && arr.Count == 3)
            {
                var l = arr[2] as RegoString ?? throw BuiltinException.TypeMsg(fn, "layout must be a string");
                layout = Named.GetValueOrDefault(l.Value, l.Value);
            }
            var (dt, nanos, tz) = Local(fn, a[0]);
            var offset = tz.GetUtcOffset(TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(dt, DateTimeKind.Unspecified), tz));
            return Arg.S(Format(layout, dt, nanos, offset, tz));
        });
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static long Ns(string fn, RegoNumber n)
    {
        if (!n.IsInteger)
        {
            var t = RegoNumber.Truncate(n);
            if (t.TryGetInt64(out var tv)) return tv;
            throw BuiltinException.Error(fn, "timestamp too big");
        }
        return n.TryGetInt64(out var v) ? v : throw BuiltinException.Error(fn, "timestamp too big");
    }

    private static (DateTime Utc, long Nanos) FromNs(long ns)
    {
        long sec = ns / NsPerSecond;
        long nanos = ns % NsPerSecond;
        if (nanos < 0) { nanos += NsPerSecond; sec--; }
        var dt = DateTime.UnixEpoch.AddSeconds(sec).AddTicks(nanos / 100);
        return (dt, nanos);
    }

    private static RegoValue ToNs(string fn, DateTime utcWallClock, long nanos)
    {
        var seconds = (BigInteger)FloorDiv(utcWallClock.Ticks - DateTime.UnixEpoch.Ticks, TimeSpan.TicksPerSecond);
        var total = seconds * NsPerSecond + nanos;
        if (total < long.MinValue || total > long.MaxValue) throw BuiltinException.Error(fn, "time outside of valid range");
        return RegoNumber.FromBigInteger(total);
    }

    private static TimeZoneInfo LocalZone(RegoValue x)
    {
        if (x is RegoArray { Count: >= 2 } arr && arr[1] is RegoString tz)
        {
            if (tz.Value is "" or "UTC") return TimeZoneInfo.Utc;
            if (tz.Value == "Local") return TimeZoneInfo.Local;
            try { return TimeZoneInfo.FindSystemTimeZoneById(tz.Value); }
            catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException) { throw BuiltinException.Error("time", $"unknown time zone {tz.Value}"); }
        }
        return TimeZoneInfo.Utc;
    }

    /// <summary>Local wall-clock time for ns or [ns, tz] or [ns, tz, layout].</summary>
    private static (DateTime Local, long Nanos, TimeZoneInfo Tz) Local(string fn, RegoValue x)
    {
        RegoNumber n = x switch
        {
            RegoNumber num => num,
            RegoArray { Count: >= 1 } arr when arr[0] is RegoNumber an => an,
            _ => throw BuiltinException.Type(fn, 1, "one of {number, array}", x),
        };
        var ns = Ns(fn, n);
        var tz = LocalZone(x);
        var (utc, nanos) = FromNs(ns);
        var local = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(utc, DateTimeKind.Utc), tz);
        return (local, nanos, tz);
    }

    // ------------------------------------------------------------------ Go layouts

    private enum Std { None, Year, Year2, Month, LongMonth, NumMonth, ZeroMonth, Day, ZeroDay, UnderDay, YearDay, ZeroYearDay, WeekDay, LongWeekDay, Hour, Hour12, ZeroHour12, Minute, ZeroMinute, Second, ZeroSecond, PM, Lpm, TZ, NumTZ, NumColonTZ, NumShortTZ, NumSecondsTz, NumColonSecondsTZ, ISO8601TZ, ISO8601ColonTZ, ISO8601ShortTZ, ISO8601SecondsTZ, ISO8601ColonSecondsTZ, FracSecond0, FracSecond9 }

    private static (string Prefix, Std Std, int FracDigits, string Suffix) NextChunk(string layout)
    {
        for (int i = 0; i < layout.Length; i++)
        {
            string rest = layout[i..];
            Std std = Std.None;
            int len = 0, frac = 0;
            bool P(string s, Std v) { if (rest.StartsWith(s, StringComparison.Ordinal)) { std = v; len = s.Length; return true; } return false; }
            switch (layout[i])
            {
                case 'J': _ = P("January", Std.LongMonth) || P("Jan", Std.Month); break;
                case 'M': _ = P("Monday", Std.LongWeekDay) || P("Mon", Std.WeekDay) || P("MST", Std.TZ); break;
                case '0': _ = P("01", Std.ZeroMonth) || P("02", Std.ZeroDay) || P("03", Std.ZeroHour12) || P("04", Std.ZeroMinute) || P("05", Std.ZeroSecond) || P("06", Std.Year2) || P("002", Std.ZeroYearDay); break;
                case '1': _ = P("15", Std.Hour) || P("1", Std.NumMonth); break;
                case '2': _ = P("2006", Std.Year) || P("2", Std.Day); break;
                case '_': _ = P("_2006", Std.None) ? false : (P("__2", Std.YearDay) || P("_2", Std.UnderDay)); if (std == Std.None) len = 0; break;
                case '3': P("3", Std.Hour12); break;
                case '4': P("4", Std.Minute); break;
                case '5': P("5", Std.Second); break;
                case 'P': P("PM", Std.PM); break;
                case 'p': P("pm", Std.Lpm); break;
                case '-': _ = P("-07:00:00", Std.NumColonSecondsTZ) || P("-070000", Std.NumSecondsTz) || P("-07:00", Std.NumColonTZ) || P("-0700", Std.NumTZ) || P("-07", Std.NumShortTZ); break;
                case 'Z': _ = P("Z07:00:00", Std.ISO8601ColonSecondsTZ) || P("Z070000", Std.ISO8601SecondsTZ) || P("Z07:00", Std.ISO8601ColonTZ) || P("Z0700", Std.ISO8601TZ) || P("Z07", Std.ISO8601ShortTZ); break;
                case '.':
                case ',':
                    if (i + 1 < layout.Length && (layout[i + 1] == '0' || layout[i + 1] == '9'))
                    {
                        char ch = layout[i + 1];
                        int j = i + 1;
                        while (j < layout.Length && layout[j] == ch) j++;
                        if (j >= layout.Length || !char.IsAsciiDigit(layout[j]))
                        {
                            std = ch == '0' ? Std.FracSecond0 : Std.FracSecond9;
                            frac = j - (i + 1);
                            len = j - i;
                        }
                    }
                    break;
            }
            if (std != Std.None && len > 0) return (layout[..i], std, frac, layout[(i + len)..]);
        }
        return (layout, Std.None, 0, "");
    }

    private static string Format(string layout, DateTime t, long nanos, TimeSpan offset, TimeZoneInfo tz)
    {
        var sb = new StringBuilder();
        while (layout.Length > 0)
        {
            var (prefix, std, frac, suffix) = NextChunk(layout);
            sb.Append(prefix);
            if (std == Std.None) break;
            layout = suffix;
            int hr12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
            switch (std)
            {
                case Std.Year: sb.Append(t.Year.ToString("D4", CultureInfo.InvariantCulture)); break;
                case Std.Year2: sb.Append((t.Year % 100).ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.Month: sb.Append(Months[t.Month - 1][..3]); break;
                case Std.LongMonth: sb.Append(Months[t.Month - 1]); break;
                case Std.NumMonth: sb.Append(t.Month); break;
                case Std.ZeroMonth: sb.Append(t.Month.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.WeekDay: sb.Append(Days[(int)t.DayOfWeek][..3]); break;
                case Std.LongWeekDay: sb.Append(Days[(int)t.DayOfWeek]); break;
                case Std.Day: sb.Append(t.Day); break;
                case Std.UnderDay: sb.Append(t.Day < 10 ? " " : "").Append(t.Day); break;
                case Std.ZeroDay: sb.Append(t.Day.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.YearDay: sb.Append(t.DayOfYear.ToString(CultureInfo.InvariantCulture).PadLeft(3)); break;
                case Std.ZeroYearDay: sb.Append(t.DayOfYear.ToString("D3", CultureInfo.InvariantCulture)); break;
                case Std.Hour: sb.Append(t.Hour.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.Hour12: sb.Append(hr12); break;
                case Std.ZeroHour12: sb.Append(hr12.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.Minute: sb.Append(t.Minute); break;
                case Std.ZeroMinute: sb.Append(t.Minute.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.Second: sb.Append(t.Second); break;
                case Std.ZeroSecond: sb.Append(t.Second.ToString("D2", CultureInfo.InvariantCulture)); break;
                case Std.PM: sb.Append(t.Hour >= 12 ? "PM" : "AM"); break;
                case Std.Lpm: sb.Append(t.Hour >= 12 ? "pm" : "am"); break;
                case Std.TZ:
                    if (offset == TimeSpan.Zero && tz == TimeZoneInfo.Utc) sb.Append("UTC");
                    else AppendOffset(sb, offset, colon: false, seconds: false, shortForm: false);
                    break;
                case Std.ISO8601TZ or Std.ISO8601ColonTZ or Std.ISO8601ShortTZ or Std.ISO8601SecondsTZ or Std.ISO8601ColonSecondsTZ when offset == TimeSpan.Zero:
                    sb.Append('Z');
                    break;
                case Std.NumTZ or Std.ISO8601TZ: AppendOffset(sb, offset, false, false, false); break;
                case Std.NumColonTZ or Std.ISO8601ColonTZ: AppendOffset(sb, offset, true, false, false); break;
                case Std.NumShortTZ or Std.ISO8601ShortTZ: AppendOffset(sb, offset, false, false, true); break;
                case Std.NumSecondsTz or Std.ISO8601SecondsTZ: AppendOffset(sb, offset, false, true, false); break;
                case Std.NumColonSecondsTZ or Std.ISO8601ColonSecondsTZ: AppendOffset(sb, offset, true, true, false); break;
                case Std.FracSecond0:
                    sb.Append('.').Append(nanos.ToString("D9", CultureInfo.InvariantCulture)[..frac]);
                    break;
                case Std.FracSecond9:
                    {
                        var s = nanos.ToString("D9", CultureInfo.InvariantCulture)[..frac].TrimEnd('0');
                        if (s.Length > 0) sb.Append('.').Append(s);
                        break;
                    }
            }
        }
        return sb.ToString();
    }

    private static void AppendOffset(StringBuilder sb, TimeSpan off, bool colon, bool seconds, bool shortForm)
    {
        sb.Append(off < TimeSpan.Zero ? '-' : '+');
        var a = off.Duration();
        sb.Append(a.Hours.ToString("D2", CultureInfo.InvariantCulture));
        if (shortForm) return;
        if (colon) sb.Append(':');
        sb.Append(a.Minutes.ToString("D2", CultureInfo.InvariantCulture));
        if (seconds)
        {
            if (colon) sb.Append(':');
            sb.Append(a.Seconds.ToString("D2", CultureInfo.InvariantCulture));
        }
    }

    private static RegoValue Parse(string fn, string layout, string value)
    {
        int year = 1, month = 1, day = 1, hour = 0, minute = 0, second = 0, yday = -1;
        long nanos = 0;
        bool pm = false, pmSet = false;
        TimeSpan? offset = null;
        string v = value;
        BuiltinException Bad() => BuiltinException.Error(fn, $"parsing time {Strings.Quote(value)} as {Strings.Quote(layout)}: cannot parse");
        int Num(int minDigits, int maxDigits)
        {
            int i = 0;
            while (i < v.Length && i < maxDigits && char.IsAsciiDigit(v[i])) i++;
            if (i < minDigits) throw Bad();
            var n = int.Parse(v.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture);
            v = v[i..];
            return n;
        }
        int Lookup(string[] names, bool shortForm)
        {
            for (int i = 0; i < names.Length; i++)
            {
                var nm = shortForm ? names[i][..3] : names[i];
                if (v.StartsWith(nm, StringComparison.OrdinalIgnoreCase)) { v = v[nm.Length..]; return i; }
            }
            throw Bad();
        }
        while (true)
        {
            var (prefix, std, frac, suffix) = NextChunk(layout);
            var pfx = prefix.Trim() == prefix ? prefix : prefix;
            if (!v.StartsWith(pfx, StringComparison.Ordinal)) throw Bad();
            v = v[pfx.Length..];
            if (std == Std.None)
            {
                if (v.Length > 0) throw BuiltinException.Error(fn, $"parsing time {Strings.Quote(value)}: extra text: {Strings.Quote(v)}");
                break;
            }
            layout = suffix;
            switch (std)
            {
                case Std.Year: year = Num(4, 4); break;
                case Std.Year2: { var y = Num(2, 2); year = y >= 69 ? 1900 + y : 2000 + y; break; }
                case Std.Month: month = Lookup(Months, true) + 1; break;
                case Std.LongMonth: month = Lookup(Months, false) + 1; break;
                case Std.NumMonth: month = Num(1, 2); break;
                case Std.ZeroMonth: month = Num(2, 2); break;
                case Std.WeekDay: Lookup(Days, true); break;
                case Std.LongWeekDay: Lookup(Days, false); break;
                case Std.Day: day = Num(1, 2); break;
                case Std.UnderDay: if (v.StartsWith(' ')) v = v[1..]; day = Num(1, 2); break;
                case Std.ZeroDay: day = Num(2, 2); break;
                case Std.YearDay: v = v.TrimStart(' '); yday = Num(1, 3); break;
                case Std.ZeroYearDay: yday = Num(3, 3); break;
                case Std.Hour: hour = Num(2, 2); break;
                case Std.Hour12: hour = Num(1, 2); break;
                case Std.ZeroHour12: hour = Num(2, 2); break;
                case Std.Minute: minute = Num(1, 2); break;
                case Std.ZeroMinute: minute = Num(2, 2); break;
                case Std.Second:
                case Std.ZeroSecond:
                    second = Num(std == Std.Second ? 1 : 2, 2);
                    // Go accepts a fractional second after seconds even if the layout has none
                    if (v.Length > 1 && (v[0] == '.' || v[0] == ',') && char.IsAsciiDigit(v[1]) && !(NextChunk(layout).Std is Std.FracSecond0 or Std.FracSecond9 && NextChunk(layout).Prefix.Length == 0))
                    {
                        v = v[1..];
                        nanos = ParseFrac();
                    }
                    break;
                case Std.PM: case Std.Lpm:
                    if (v.StartsWith("PM", StringComparison.OrdinalIgnoreCase)) pm = true;
                    else if (!v.StartsWith("AM", StringComparison.OrdinalIgnoreCase)) throw Bad();
                    pmSet = true;
                    v = v[2..];
                    break;
                case Std.TZ:
                    {
                        int i = 0;
                        while (i < v.Length && char.IsAsciiLetterUpper(v[i])) i++;
                        if (i < 3) throw Bad();
                        var abbr = v[..i];
                        v = v[i..];
                        if (abbr is "UTC" or "GMT") offset = TimeSpan.Zero;
                        break;
                    }
                case Std.FracSecond0:
                case Std.FracSecond9:
                    if (v.Length == 0 || (v[0] != '.' && v[0] != ','))
                    {
                        if (std == Std.FracSecond9) break;
                        throw Bad();
                    }
                    v = v[1..];
                    nanos = ParseFrac();
                    break;
                default:
                    {
                        if (std is Std.ISO8601TZ or Std.ISO8601ColonTZ or Std.ISO8601ShortTZ or Std.ISO8601SecondsTZ or Std.ISO8601ColonSecondsTZ && v.StartsWith('Z'))
                        {
                            v = v[1..];
                            offset = TimeSpan.Zero;
                            break;
                        }
                        if (v.Length == 0 || (v[0] != '+' && v[0] != '-')) throw Bad();
                        int sign = v[0] == '-' ? -1 : 1;
                        v = v[1..];
                        int hh = Num(2, 2), mm = 0, ss = 0;
                        bool colon = std is Std.NumColonTZ or Std.ISO8601ColonTZ or Std.NumColonSecondsTZ or Std.ISO8601ColonSecondsTZ;
                        bool shortForm = std is Std.NumShortTZ or Std.ISO8601ShortTZ;
                        bool secs = std is Std.NumSecondsTz or Std.ISO8601SecondsTZ or Std.NumColonSecondsTZ or Std.ISO8601ColonSecondsTZ;
                        if (!shortForm)
                        {
                            if (colon) { if (!v.StartsWith(':')) throw Bad(); v = v[1..]; }
                            mm = Num(2, 2);
                            if (secs)
                            {
                                if (colon) { if (!v.StartsWith(':')) throw Bad(); v = v[1..]; }
                                ss = Num(2, 2);
                            }
                        }
                        offset = TimeSpan.FromSeconds(sign * (hh * 3600 + mm * 60 + ss));
                        break;
                    }
            }
        }
        long ParseFrac()
        {
            int i = 0;
            while (i < v.Length && char.IsAsciiDigit(v[i])) i++;
            var digits = v[..i];
            v = v[i..];
            if (digits.Length > 9) digits = digits[..9];
            return long.Parse(digits.PadRight(9, '0'), CultureInfo.InvariantCulture);
        }
        if (pmSet)
        {
            if (hour > 12) throw Bad();
            if (pm && hour < 12) hour += 12;
            else if (!pm && hour == 12) hour = 0;
        }
        DateTime wall;
        try
        {
            wall = yday > 0 ? new DateTime(year, 1, 1).AddDays(yday - 1).Add(new TimeSpan(hour, minute, second))
                : new DateTime(year, month, day, hour, minute, second, DateTimeKind.Unspecified);
        }
        catch (ArgumentOutOfRangeException) { throw BuiltinException.Error(fn, $"parsing time {Strings.Quote(value)}: day out of range"); }
        var utc = wall - (offset ?? TimeSpan.Zero);
        return ToNs(fn, utc, nanos);
    }

    private static BigInteger ParseDuration(string fn, string s)
    {
        var orig = s;
        BuiltinException Bad() => BuiltinException.Error(fn, $"time: invalid duration {Strings.Quote(orig)}");
        bool neg = false;
        if (s.StartsWith('-') || s.StartsWith('+')) { neg = s[0] == '-'; s = s[1..]; }
        if (s == "0") return BigInteger.Zero;
        if (s.Length == 0) throw Bad();
        decimal total = 0;
        while (s.Length > 0)
        {
            int i = 0;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            if (i == 0) throw Bad();
            if (!decimal.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) throw Bad();
            s = s[i..];
            int j = 0;
            while (j < s.Length && !char.IsAsciiDigit(s[j]) && s[j] != '.') j++;
            var unit = s[..j];
            s = s[j..];
            decimal mult = unit switch
            {
                "ns" => 1m,
                "us" or "µs" or "μs" => 1_000m,
                "ms" => 1_000_000m,
                "s" => 1_000_000_000m,
                "m" => 60_000_000_000m,
                "h" => 3_600_000_000_000m,
                "" => throw BuiltinException.Error(fn, $"time: missing unit in duration {Strings.Quote(orig)}"),
                _ => throw BuiltinException.Error(fn, $"time: unknown unit {Strings.Quote(unit)} in duration {Strings.Quote(orig)}"),
            };
            try { total += n * mult; }
            catch (OverflowException) { throw Bad(); }
        }
        var r = new BigInteger(decimal.Truncate(total));
        if (r > long.MaxValue) throw Bad();
        return neg ? -r : r;
    }
}
