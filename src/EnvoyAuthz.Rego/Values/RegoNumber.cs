using System.Globalization;
using System.Numerics;
using System.Text;

namespace EnvoyAuthz.Rego;

/// <summary>
/// A Rego number: an exact decimal <c>Mantissa × 10^Exponent</c> (arbitrary precision), normalised so
/// that equal numbers have one representation (<c>1 == 1.0</c>, same hash). Results of operations
/// that are not exact in decimal (e.g. <c>1/3</c>) are rounded through float64 as OPA does.
/// </summary>
public sealed class RegoNumber : RegoValue
{
    private static readonly RegoNumber[] SmallCache = CreateCache();
    internal static RegoNumber Zero => SmallCache[128];
    internal static RegoNumber One => SmallCache[129];

    internal readonly BigInteger Mantissa;
    internal readonly int Exponent;
    private readonly long _small;
    private readonly bool _isSmallInt;
    private int _hash;

    private RegoNumber(BigInteger mantissa, int exponent)
    {
        // normalise
        if (mantissa.IsZero) exponent = 0;
        else
        {
            while (true)
            {
                var q = BigInteger.DivRem(mantissa, 10, out var r);
                if (!r.IsZero) break;
                mantissa = q;
                exponent++;
            }
        }
        Mantissa = mantissa;
        Exponent = exponent;
        if (exponent >= 0 && exponent < 19)
        {
            var full = exponent == 0 ? mantissa : mantissa * BigInteger.Pow(10, exponent);
            if (full >= long.MinValue && full <= long.MaxValue)
            {
                _small = (long)full;
                _isSmallInt = true;
            }
        }
    }

    private RegoNumber(long value)
    {
        _small = value;
        _isSmallInt = true;
        long m = value;
        int e = 0;
        if (m != 0)
            while (m % 10 == 0) { m /= 10; e++; }
        Mantissa = m;
        Exponent = e;
    }

    private static RegoNumber[] CreateCache()
    {
        var arr = new RegoNumber[1152];
        for (int i = 0; i < arr.Length; i++) arr[i] = new RegoNumber(i - 128L);
        return arr;
    }

    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Number;

    /// <summary>An integer number.</summary>
    public static RegoNumber FromInt64(long value) =>
        value >= -128 && value < 1024 ? SmallCache[value + 128] : new RegoNumber(value);

    /// <summary>An integer number.</summary>
    public static RegoNumber FromBigInteger(BigInteger value) =>
        value >= long.MinValue && value <= long.MaxValue ? FromInt64((long)value) : new RegoNumber(value, 0);

    internal static RegoNumber FromParts(BigInteger mantissa, int exponent) =>
        exponent == 0 ? FromBigInteger(mantissa) : new RegoNumber(mantissa, exponent);

    /// <summary>An exact decimal number.</summary>
    public static RegoNumber FromDecimal(decimal value)
    {
        if (decimal.IsInteger(value) && value >= long.MinValue && value <= long.MaxValue) return FromInt64((long)value);
        int scale = value.Scale;
        var bits = decimal.GetBits(value);
        var m = new BigInteger((uint)bits[0]) | (new BigInteger((uint)bits[1]) << 32) | (new BigInteger((uint)bits[2]) << 64);
        if (value < 0) m = -m;
        return new RegoNumber(m, -scale);
    }

    /// <summary>A number from a finite double (shortest round-trip decimal).</summary>
    public static RegoNumber FromDouble(double value)
    {
        if (double.IsNaN(value) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException(nameof(value), "number must be finite");
        if (value == Math.Floor(value) && Math.Abs(value) < 9e15) return FromInt64((long)value);
        return TryParse(value.ToString("R", CultureInfo.InvariantCulture), out var n) ? n : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>Parses JSON/Rego number text exactly.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out RegoNumber number)
    {
        number = null!;
        int i = 0;
        bool neg = false;
        if (i < text.Length && (text[i] == '-' || text[i] == '+')) { neg = text[i] == '-'; i++; }
        int intStart = i;
        while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
        var intPart = text[intStart..i];
        ReadOnlySpan<char> frac = default;
        if (i < text.Length && text[i] == '.')
        {
            i++;
            int fs = i;
            while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
            frac = text[fs..i];
        }
        if (intPart.Length == 0 && frac.Length == 0) return false;
        long exp = 0;
        if (i < text.Length && (text[i] == 'e' || text[i] == 'E'))
        {
            i++;
            bool eneg = false;
            if (i < text.Length && (text[i] == '-' || text[i] == '+')) { eneg = text[i] == '-'; i++; }
            int es = i;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                if (exp < 100_000_000) exp = exp * 10 + (text[i] - '0');
                i++;
            }
            if (es == i) return false;
            if (eneg) exp = -exp;
        }
        if (i != text.Length) return false;
        if (intPart.Length + frac.Length <= 18 && frac.Length == 0 && exp == 0)
        {
            long v = intPart.Length == 0 ? 0 : long.Parse(intPart, NumberStyles.None, CultureInfo.InvariantCulture);
            number = FromInt64(neg ? -v : v);
            return true;
        }
        var digits = string.Concat(intPart, frac);
        var m = digits.Length == 0 ? BigInteger.Zero : BigInteger.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        if (neg) m = -m;
        long e = exp - frac.Length;
        if (m.IsZero) { number = Zero; return true; }
        if (e > 1_000_000 || e < -1_000_000) return false;
        number = FromParts(m, (int)e);
        return true;
    }

    /// <summary>Whether the number is an integer.</summary>
    public bool IsInteger => Exponent >= 0;

    /// <summary>Gets the value as a 64-bit integer when it is one.</summary>
    public bool TryGetInt64(out long value)
    {
        value = _small;
        return _isSmallInt;
    }

    /// <summary>Gets the value as a 32-bit integer when it is one.</summary>
    public bool TryGetInt32(out int value)
    {
        if (_isSmallInt && _small >= int.MinValue && _small <= int.MaxValue) { value = (int)_small; return true; }
        value = 0;
        return false;
    }

    /// <summary>Gets the value as an integer when it is one.</summary>
    public bool TryGetBigInteger(out BigInteger value)
    {
        if (_isSmallInt) { value = _small; return true; }
        if (Exponent >= 0 && Exponent < 100_000) { value = Mantissa * BigInteger.Pow(10, Exponent); return true; }
        value = default;
        return false;
    }

    /// <summary>The nearest double (may be infinite for huge values).</summary>
    public double ToDouble()
    {
        if (_isSmallInt) return _small;
        return double.Parse(ToScientific(), NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>Sign: -1, 0 or 1.</summary>
    public int Sign => Mantissa.Sign;

    private string ToScientific() => Mantissa.ToString(CultureInfo.InvariantCulture) + "e" + Exponent.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc />
    public override bool Equals(RegoValue? other)
    {
        if (ReferenceEquals(this, other)) return true;
        if (other is not RegoNumber n) return false;
        if (_isSmallInt && n._isSmallInt) return _small == n._small;
        return Exponent == n.Exponent && Mantissa.Equals(n.Mantissa);
    }

    /// <inheritdoc />
    public override int GetHashCode()
    {
        int h = _hash;
        if (h == 0)
        {
            h = HashCode.Combine(Mantissa.GetHashCode(), Exponent) | 1;
            _hash = h;
        }
        return h;
    }

    private protected override int CompareSameKind(RegoValue other) => Compare(this, (RegoNumber)other);

    /// <summary>Numeric comparison.</summary>
    public static int Compare(RegoNumber a, RegoNumber b)
    {
        if (a._isSmallInt && b._isSmallInt) return a._small.CompareTo(b._small);
        int sa = a.Mantissa.Sign, sb = b.Mantissa.Sign;
        if (sa != sb) return sa.CompareTo(sb);
        if (sa == 0) return 0;
        // compare magnitudes by order of magnitude first
        long da = DigitCount(a.Mantissa) + (long)a.Exponent;
        long db = DigitCount(b.Mantissa) + (long)b.Exponent;
        if (da != db) return sa > 0 ? da.CompareTo(db) : db.CompareTo(da);
        Align(a, b, out var ma, out var mb, out _);
        return ma.CompareTo(mb);
    }

    private static int DigitCount(BigInteger m)
    {
        m = BigInteger.Abs(m);
        if (m < long.MaxValue) return ((long)m).ToString(CultureInfo.InvariantCulture).Length;
        return m.ToString(CultureInfo.InvariantCulture).Length;
    }

    private static void Align(RegoNumber a, RegoNumber b, out BigInteger ma, out BigInteger mb, out int exp)
    {
        if (a.Exponent == b.Exponent) { ma = a.Mantissa; mb = b.Mantissa; exp = a.Exponent; return; }
        if (a.Exponent > b.Exponent)
        {
            ma = a.Mantissa * BigInteger.Pow(10, a.Exponent - b.Exponent);
            mb = b.Mantissa;
            exp = b.Exponent;
        }
        else
        {
            mb = b.Mantissa * BigInteger.Pow(10, b.Exponent - a.Exponent);
            ma = a.Mantissa;
            exp = a.Exponent;
        }
    }

    private static bool TooFarApart(RegoNumber a, RegoNumber b) => Math.Abs((long)a.Exponent - b.Exponent) > 4000;

    /// <summary>a + b</summary>
    public static RegoNumber Add(RegoNumber a, RegoNumber b)
    {
        if (a._isSmallInt && b._isSmallInt)
        {
            long r = a._small + b._small;
            if (((a._small ^ r) & (b._small ^ r)) >= 0) return FromInt64(r);
        }
        if (a.Mantissa.IsZero) return b;
        if (b.Mantissa.IsZero) return a;
        if (TooFarApart(a, b)) return FromDoubleChecked(a.ToDouble() + b.ToDouble());
        Align(a, b, out var ma, out var mb, out int e);
        return FromParts(ma + mb, e);
    }

    /// <summary>a - b</summary>
    public static RegoNumber Subtract(RegoNumber a, RegoNumber b) => Add(a, Negate(b));

    /// <summary>-a</summary>
    public static RegoNumber Negate(RegoNumber a)
    {
        if (a._isSmallInt && a._small != long.MinValue) return FromInt64(-a._small);
        return FromParts(-a.Mantissa, a.Exponent);
    }

    /// <summary>|a|</summary>
    public static RegoNumber Abs(RegoNumber a) => a.Sign < 0 ? Negate(a) : a;

    /// <summary>a * b</summary>
    public static RegoNumber Multiply(RegoNumber a, RegoNumber b)
    {
        if (a._isSmallInt && b._isSmallInt)
        {
            long r;
            try { r = checked(a._small * b._small); return FromInt64(r); }
            catch (OverflowException) { }
        }
        long e = (long)a.Exponent + b.Exponent;
        if (e > 1_000_000 || e < -1_000_000) return FromDoubleChecked(a.ToDouble() * b.ToDouble());
        return FromParts(a.Mantissa * b.Mantissa, (int)e);
    }

    /// <summary>a / b; null when b is zero.</summary>
    public static RegoNumber? Divide(RegoNumber a, RegoNumber b)
    {
        if (b.Mantissa.IsZero) return null;
        if (a.Mantissa.IsZero) return Zero;
        if (a._isSmallInt && b._isSmallInt && b._small != -1 && a._small % b._small == 0) return FromInt64(a._small / b._small);
        var g = BigInteger.GreatestCommonDivisor(a.Mantissa, b.Mantissa);
        var n = a.Mantissa / g;
        var d = b.Mantissa / g;
        if (d.Sign < 0) { d = -d; n = -n; }
        int p2 = 0, p5 = 0;
        while (d.IsEven) { d >>= 1; p2++; }
        while ((d % 5).IsZero) { d /= 5; p5++; }
        if (!d.IsOne || p2 > 2000 || p5 > 2000) return FromDoubleChecked(a.ToDouble() / b.ToDouble());
        int m = Math.Max(p2, p5);
        n = n * BigInteger.Pow(2, m - p2) * BigInteger.Pow(5, m - p5);
        long e = (long)a.Exponent - b.Exponent - m;
        if (e > 1_000_000 || e < -1_000_000) return FromDoubleChecked(a.ToDouble() / b.ToDouble());
        return FromParts(n, (int)e);
    }

    internal static RegoNumber FromDoubleChecked(double d)
    {
        if (double.IsNaN(d) || double.IsInfinity(d)) throw new RegoNumberOverflowException();
        return FromDouble(d);
    }

    /// <summary>Floor.</summary>
    public static RegoNumber Floor(RegoNumber a)
    {
        if (a.IsInteger) return a;
        var div = BigInteger.Pow(10, -a.Exponent);
        var q = BigInteger.DivRem(a.Mantissa, div, out var r);
        if (r.Sign < 0) q -= 1;
        return FromBigInteger(q);
    }

    /// <summary>Ceiling.</summary>
    public static RegoNumber Ceiling(RegoNumber a) => Negate(Floor(Negate(a)));

    /// <summary>Round half away from zero.</summary>
    public static RegoNumber Round(RegoNumber a)
    {
        if (a.IsInteger) return a;
        var half = FromParts(5, -1);
        return a.Sign >= 0 ? Floor(Add(a, half)) : Negate(Floor(Add(Negate(a), half)));
    }

    /// <summary>Integer part, truncated toward zero.</summary>
    public static RegoNumber Truncate(RegoNumber a) => a.Sign >= 0 ? Floor(a) : Ceiling(a);

    /// <summary>OPA's textual form: integers in full, other numbers in shortest decimal or exponent form.</summary>
    public override string ToString()
    {
        if (_isSmallInt) return _small.ToString(CultureInfo.InvariantCulture);
        var digits = BigInteger.Abs(Mantissa).ToString(CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        if (Mantissa.Sign < 0) sb.Append('-');
        if (Exponent >= 0)
        {
            // integers with many trailing zeros (e.g. 2e308) print in exponent form, as OPA prints such literals
            if (Exponent > 20) return sb.Append(digits).Append('e').Append(Exponent.ToString(CultureInfo.InvariantCulture)).ToString();
            if (Exponent + digits.Length <= 400)
            {
                sb.Append(digits).Append('0', Exponent);
                return sb.ToString();
            }
            return sb.Append(digits[0]).Append(digits.Length > 1 ? "." + digits[1..] : "").Append("e+").Append((Exponent + digits.Length - 1).ToString(CultureInfo.InvariantCulture)).ToString();
        }
        int pointPos = digits.Length + Exponent; // digits before the decimal point
        if (pointPos > 0)
        {
            sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
        }
        else if (pointPos > -20)
        {
            sb.Append("0.").Append('0', -pointPos).Append(digits);
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append("e-").Append((1 - pointPos).ToString(CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    internal override void AppendRego(StringBuilder sb) => sb.Append(ToString());
}

/// <summary>Thrown when an arithmetic result is not a finite number.</summary>
internal sealed class RegoNumberOverflowException : Exception
{
    public RegoNumberOverflowException() : base("number too large") { }
}
