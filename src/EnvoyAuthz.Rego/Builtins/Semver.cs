using System.Numerics;
using System.Text.RegularExpressions;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>semver.is_valid and semver.compare (SemVer 2.0.0 precedence).</summary>
internal static partial class Semver
{
    [GeneratedRegex(@"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "semver.is_valid", 1, (_, a) => Arg.B(a[0] is RegoString s && Pattern().IsMatch(s.Value)));
        BuiltinRegistry.Add(r, "semver.compare", 2, (_, a) =>
        {
            var x = Parse(Arg.Str("semver.compare", a, 0), 1);
            var y = Parse(Arg.Str("semver.compare", a, 1), 2);
            return Arg.N(Compare(x, y));
        });
    }

    private static Match Parse(string s, int operand)
    {
        var m = Pattern().Match(s);
        if (!m.Success) throw BuiltinException.Error("semver.compare", $"operand {operand}: string {Strings.Quote(s)} is not a valid SemVer");
        return m;
    }

    private static int Compare(Match a, Match b)
    {
        for (int i = 1; i <= 3; i++)
        {
            int c = BigInteger.Parse(a.Groups[i].Value).CompareTo(BigInteger.Parse(b.Groups[i].Value));
            if (c != 0) return Math.Sign(c);
        }
        bool ap = a.Groups[4].Success, bp = b.Groups[4].Success;
        if (!ap && !bp) return 0;
        if (!ap) return 1;
        if (!bp) return -1;
        var xs = a.Groups[4].Value.Split('.');
        var ys = b.Groups[4].Value.Split('.');
        for (int i = 0; i < Math.Min(xs.Length, ys.Length); i++)
        {
            bool xn = BigInteger.TryParse(xs[i], out var xv), yn = BigInteger.TryParse(ys[i], out var yv);
            int c = xn && yn ? xv.CompareTo(yv) : xn ? -1 : yn ? 1 : string.CompareOrdinal(xs[i], ys[i]);
            if (c != 0) return Math.Sign(c);
        }
        return xs.Length.CompareTo(ys.Length);
    }
}
