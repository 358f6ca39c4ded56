namespace EnvoyAuthz.Rego.Builtins;

/// <summary>regex.globs_match: whether two glob-like regular expressions (literals, '.', classes, '*', '+', '?') match a common string.</summary>
internal static class GlobIntersection
{
    private const string Fn = "regex.globs_match";

    private sealed record Matcher(bool Any, bool Negated, List<(char Lo, char Hi)> Ranges)
    {
        public bool Contains(char c) => Any || (Ranges.Any(r => r.Lo <= c && c <= r.Hi) != Negated);
    }

    private sealed record Item(Matcher M, bool Optional, bool Repeat);

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, Fn, 2, (c, a) =>
        {
            var x = Parse(Arg.Str(Fn, a, 0));
            var y = Parse(Arg.Str(Fn, a, 1));
            return Arg.B(Intersects(x, y, c));
        });
    }

    private static BuiltinException Invalid(string input, int pos, string what) =>
        BuiltinException.Error(Fn, $"input:{input}, pos:{pos}, {what}: the input provided is invalid");

    private static List<Item> Parse(string s)
    {
        var items = new List<Item>();
        int i = 0;
        while (i < s.Length)
        {
            Matcher m;
            char c = s[i];
            if (c == '.') { m = new Matcher(true, false, []); i++; }
            else if (c == '[')
            {
                int j = i + 1;
                bool neg = j < s.Length && s[j] == '^';
                if (neg) j++;
                var ranges = new List<(char, char)>();
                while (j < s.Length && s[j] != ']')
                {
                    char lo = s[j];
                    if (lo == '\\' && j + 1 < s.Length) lo = s[++j];
                    j++;
                    char hi = lo;
                    if (j + 1 < s.Length && s[j] == '-' && s[j + 1] != ']')
                    {
                        hi = s[j + 1];
                        if (hi == '\\' && j + 2 < s.Length) { hi = s[j + 2]; j++; }
                        j += 2;
                    }
                    ranges.Add((lo, hi));
                }
                if (j >= s.Length) throw Invalid(s, i + 1, "set-open '[' with no closing ']'");
                m = new Matcher(false, neg, ranges);
                i = j + 1;
            }
            else if (c == ']') throw Invalid(s, i + 1, "set-close ']' with no preceding '['");
            else if (c is '*' or '+' or '?') throw Invalid(s, i + 1, $"quantifier '{c}' with nothing to repeat");
            else
            {
                if (c == '\\')
                {
                    if (i + 1 >= s.Length) throw Invalid(s, i + 1, "escape at end of input");
                    c = s[++i];
                }
                m = new Matcher(false, false, [(c, c)]);
                i++;
            }
            char q = i < s.Length ? s[i] : '\0';
            switch (q)
            {
                case '*': items.Add(new Item(m, true, true)); i++; break;
                case '+': items.Add(new Item(m, false, false)); items.Add(new Item(m, true, true)); i++; break;
                case '?': items.Add(new Item(m, true, false)); i++; break;
                default: items.Add(new Item(m, false, false)); break;
            }
        }
        return items;
    }

    private static bool Overlap(Matcher a, Matcher b)
    {
        if (a.Any || b.Any) return a.Any ? (b.Any || b.Negated || b.Ranges.Count > 0) : (a.Negated || a.Ranges.Count > 0);
        // membership is constant between range endpoints: test every endpoint, its neighbours and one char outside all ranges
        var candidates = new HashSet<char>();
        foreach (var (lo, hi) in a.Ranges.Concat(b.Ranges))
        {
            candidates.Add(lo);
            candidates.Add(hi);
            if (lo > char.MinValue) candidates.Add((char)(lo - 1));
            if (hi < char.MaxValue) candidates.Add((char)(hi + 1));
        }
        candidates.Add('\u0001');
        return candidates.Any(ch => a.Contains(ch) && b.Contains(ch));
    }

    private static bool Intersects(List<Item> x, List<Item> y, BuiltinContext ctx)
    {
        var seen = new HashSet<(int, int)>();
        var queue = new Queue<(int, int)>();
        void Push(int i, int j)
        {
            if (!seen.Add((i, j))) return;
            queue.Enqueue((i, j));
            // epsilon moves over optional items
            if (i < x.Count && x[i].Optional) Push(i + 1, j);
            if (j < y.Count && y[j].Optional) Push(i, j + 1);
        }
        Push(0, 0);
        while (queue.Count > 0)
        {
            ctx.CancellationToken.ThrowIfCancellationRequested();
            var (i, j) = queue.Dequeue();
            if (i == x.Count && j == y.Count) return true;
            if (i == x.Count || j == y.Count) continue;
            if (!Overlap(x[i].M, y[j].M)) continue;
            Push(x[i].Repeat ? i : i + 1, y[j].Repeat ? j : j + 1);
            if (x[i].Repeat) Push(i + 1, y[j].Repeat ? j : j + 1);
            if (y[j].Repeat) Push(x[i].Repeat ? i : i + 1, j + 1);
        }
        return false;
    }
}
