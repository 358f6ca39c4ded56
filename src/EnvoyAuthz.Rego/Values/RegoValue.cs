using System.Numerics;
using System.Text;
using System.Text.Json;

namespace EnvoyAuthz.Rego;

/// <summary>The kind of a <see cref="RegoValue"/>, in OPA's canonical type order.</summary>
public enum RegoValueKind
{
    /// <summary>null</summary>
    Null = 0,
    /// <summary>true / false</summary>
    Boolean = 1,
    /// <summary>number</summary>
    Number = 2,
    /// <summary>string</summary>
    String = 3,
    /// <summary>array</summary>
    Array = 4,
    /// <summary>object</summary>
    Object = 5,
    /// <summary>set</summary>
    Set = 6,
}

/// <summary>
/// An immutable Rego value (null, boolean, number, string, array, object or set).
/// Values are immutable and safe to share across threads. Equality, hashing and ordering follow OPA:
/// null &lt; boolean &lt; number &lt; string &lt; array &lt; object &lt; set, then by content;
/// numbers compare numerically (<c>1 == 1.0</c>).
/// </summary>
public abstract class RegoValue : IEquatable<RegoValue>, IComparable<RegoValue>
{
    private protected RegoValue() { }

    /// <summary>The value's kind.</summary>
    public abstract RegoValueKind Kind { get; }

    /// <summary>The null value.</summary>
    public static RegoNull Null => RegoNull.Instance;
    /// <summary>The value true.</summary>
    public static RegoBoolean True => RegoBoolean.TrueValue;
    /// <summary>The value false.</summary>
    public static RegoBoolean False => RegoBoolean.FalseValue;

    /// <summary>A boolean value (cached instances).</summary>
    public static RegoBoolean From(bool value) => value ? RegoBoolean.TrueValue : RegoBoolean.FalseValue;
    /// <summary>A string value.</summary>
    public static RegoString From(string value) => new(value);
    /// <summary>An integer number.</summary>
    public static RegoNumber From(long value) => RegoNumber.FromInt64(value);
    /// <summary>A number from a double (must be finite).</summary>
    public static RegoNumber From(double value) => RegoNumber.FromDouble(value);
    /// <summary>An exact decimal number.</summary>
    public static RegoNumber From(decimal value) => RegoNumber.FromDecimal(value);

    /// <summary>Structural equality as OPA defines it.</summary>
    public abstract bool Equals(RegoValue? other);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RegoValue v && Equals(v);

    /// <inheritdoc />
    public abstract override int GetHashCode();

    /// <summary>OPA canonical ordering.</summary>
    public int CompareTo(RegoValue? other)
    {
        if (other is null) return 1;
        if (ReferenceEquals(this, other)) return 0;
        int k = Kind.CompareTo(other.Kind);
        return k != 0 ? k : CompareSameKind(other);
    }

    private protected abstract int CompareSameKind(RegoValue other);

    /// <summary>Equality operator.</summary>
    public static bool operator ==(RegoValue? a, RegoValue? b) => a is null ? b is null : a.Equals(b);
    /// <summary>Inequality operator.</summary>
    public static bool operator !=(RegoValue? a, RegoValue? b) => !(a == b);
    /// <summary>Ordering operator.</summary>
    public static bool operator <(RegoValue a, RegoValue b) => a.CompareTo(b) < 0;
    /// <summary>Ordering operator.</summary>
    public static bool operator >(RegoValue a, RegoValue b) => a.CompareTo(b) > 0;
    /// <summary>Ordering operator.</summary>
    public static bool operator <=(RegoValue a, RegoValue b) => a.CompareTo(b) <= 0;
    /// <summary>Ordering operator.</summary>
    public static bool operator >=(RegoValue a, RegoValue b) => a.CompareTo(b) >= 0;

    /// <summary>Writes the value as JSON. Sets become arrays in canonical order; non-string object keys are written as their JSON text.</summary>
    public void WriteJson(Utf8JsonWriter writer) => RegoJson.Write(writer, this);

    /// <summary>The value as compact JSON text.</summary>
    public string ToJson() => RegoJson.Serialize(this);

    /// <summary>The value in Rego term syntax (sets as <c>{...}</c>, <c>set()</c> when empty).</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        AppendRego(sb);
        return sb.ToString();
    }

    internal abstract void AppendRego(StringBuilder sb);

    /// <summary>Rego type name as reported by <c>type_name</c>.</summary>
    public string TypeName => Kind switch
    {
        RegoValueKind.Null => "null",
        RegoValueKind.Boolean => "boolean",
        RegoValueKind.Number => "number",
        RegoValueKind.String => "string",
        RegoValueKind.Array => "array",
        RegoValueKind.Object => "object",
        _ => "set",
    };
}

/// <summary>The Rego null value.</summary>
public sealed class RegoNull : RegoValue
{
    internal static readonly RegoNull Instance = new();
    private RegoNull() { }
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Null;
    /// <inheritdoc />
    public override bool Equals(RegoValue? other) => other is RegoNull;
    /// <inheritdoc />
    public override int GetHashCode() => 0x1234;
    private protected override int CompareSameKind(RegoValue other) => 0;
    internal override void AppendRego(StringBuilder sb) => sb.Append("null");
}

/// <summary>A Rego boolean.</summary>
public sealed class RegoBoolean : RegoValue
{
    internal static readonly RegoBoolean TrueValue = new(true);
    internal static readonly RegoBoolean FalseValue = new(false);
    private RegoBoolean(bool value) => Value = value;
    /// <summary>The boolean.</summary>
    public bool Value { get; }
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Boolean;
    /// <inheritdoc />
    public override bool Equals(RegoValue? other) => other is RegoBoolean b && b.Value == Value;
    /// <inheritdoc />
    public override int GetHashCode() => Value ? 0x5151 : 0x2727;
    private protected override int CompareSameKind(RegoValue other) => Value.CompareTo(((RegoBoolean)other).Value);
    internal override void AppendRego(StringBuilder sb) => sb.Append(Value ? "true" : "false");
}

/// <summary>A Rego string.</summary>
public sealed class RegoString : RegoValue
{
    internal static readonly RegoString Empty = new(string.Empty);
    private int _hash;

    /// <summary>Creates a string value.</summary>
    public RegoString(string value) => Value = value ?? throw new ArgumentNullException(nameof(value));
    /// <summary>The string.</summary>
    public string Value { get; }
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.String;
    /// <inheritdoc />
    public override bool Equals(RegoValue? other) => other is RegoString s && (ReferenceEquals(s, this) || string.Equals(s.Value, Value, StringComparison.Ordinal));
    /// <inheritdoc />
    public override int GetHashCode()
    {
        int h = _hash;
        if (h == 0)
        {
            h = StringComparer.Ordinal.GetHashCode(Value) | 1;
            _hash = h;
        }
        return h;
    }
    private protected override int CompareSameKind(RegoValue other) => CompareUtf8Order(Value, ((RegoString)other).Value);

    /// <summary>Compares strings in UTF-8 byte order (Go's string order).</summary>
    internal static int CompareUtf8Order(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            char x = a[i], y = b[i];
            if (x == y) continue;
            bool xs = char.IsSurrogate(x), ys = char.IsSurrogate(y);
            if (xs == ys) return x < y ? -1 : 1;
            // surrogates (>= U+10000) sort after all BMP characters in UTF-8 order
            return xs ? 1 : -1;
        }
        return a.Length.CompareTo(b.Length);
    }

    internal override void AppendRego(StringBuilder sb) => RegoJson.AppendQuoted(sb, Value);
}

/// <summary>An immutable Rego array.</summary>
public sealed class RegoArray : RegoValue
{
    internal static readonly RegoArray Empty = new([]);
    internal readonly RegoValue[] Items;
    private int _hash;

    internal RegoArray(RegoValue[] items) => Items = items;

    /// <summary>Creates an array from a sequence.</summary>
    public static RegoArray From(IEnumerable<RegoValue> items) => new(items.ToArray());
    /// <summary>Creates an array from items.</summary>
    public static RegoArray From(params RegoValue[] items) => new((RegoValue[])items.Clone());

    /// <summary>Number of elements.</summary>
    public int Count => Items.Length;
    /// <summary>Element at index.</summary>
    public RegoValue this[int index] => Items[index];
    /// <summary>The elements.</summary>
    public IReadOnlyList<RegoValue> Elements => Items;
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Array;

    /// <inheritdoc />
    public override bool Equals(RegoValue? other)
    {
        if (ReferenceEquals(this, other)) return true;
        if (other is not RegoArray a || a.Items.Length != Items.Length) return false;
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        if (_hash != 0 && a._hash != 0 && _hash != a._hash) return false;
        for (int i = 0; i < Items.Length; i++)
            if (!Items[i].Equals(a.Items[i])) return false;
        return true;
    }

    /// <inheritdoc />
    public override int GetHashCode()
    {
        int h = _hash;
        if (h == 0)
        {
            System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
            var hc = new HashCode();
            hc.Add(7);
            foreach (var v in Items) hc.Add(v.GetHashCode());
            h = hc.ToHashCode() | 1;
            _hash = h;
        }
        return h;
    }

    private protected override int CompareSameKind(RegoValue other)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var b = ((RegoArray)other).Items;
        int n = Math.Min(Items.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            int c = Items[i].CompareTo(b[i]);
            if (c != 0) return c;
        }
        return Items.Length.CompareTo(b.Length);
    }

    internal override void AppendRego(StringBuilder sb)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        sb.Append('[');
        for (int i = 0; i < Items.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            Items[i].AppendRego(sb);
        }
        sb.Append(']');
    }
}

/// <summary>An immutable Rego set; iteration is in canonical order.</summary>
public sealed class RegoSet : RegoValue
{
    internal static readonly RegoSet Empty = new([]);
    internal readonly RegoValue[] Items; // sorted, distinct
    private HashSet<RegoValue>? _lookup;
    private int _hash;

    internal RegoSet(RegoValue[] sortedDistinct) => Items = sortedDistinct;

    /// <summary>Creates a set from a sequence (duplicates removed).</summary>
    public static RegoSet From(IEnumerable<RegoValue> items) => FromUnsorted(items.ToList());
    /// <summary>Creates a set from items (duplicates removed).</summary>
    public static RegoSet From(params RegoValue[] items) => FromUnsorted(new List<RegoValue>(items));

    internal static RegoSet FromUnsorted(List<RegoValue> items)
    {
        if (items.Count == 0) return Empty;
        items.Sort(static (a, b) => a.CompareTo(b));
        int w = 1;
        for (int i = 1; i < items.Count; i++)
            if (!items[i].Equals(items[w - 1])) items[w++] = items[i];
        var arr = new RegoValue[w];
        items.CopyTo(0, arr, 0, w);
        return new RegoSet(arr);
    }

    /// <summary>Number of elements.</summary>
    public int Count => Items.Length;
    /// <summary>Elements in canonical order.</summary>
    public IReadOnlyList<RegoValue> Elements => Items;
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Set;

    /// <summary>Whether the set contains the value.</summary>
    public bool Contains(RegoValue value)
    {
        if (Items.Length <= 8)
        {
            foreach (var v in Items) if (v.Equals(value)) return true;
            return false;
        }
        var l = Volatile.Read(ref _lookup);
        if (l is null)
        {
            // safe publication: other threads see either null or a fully built lookup
            l = new HashSet<RegoValue>(Items);
            l = Interlocked.CompareExchange(ref _lookup, l, null) ?? l;
        }
        return l.Contains(value);
    }

    /// <inheritdoc />
    public override bool Equals(RegoValue? other)
    {
        if (ReferenceEquals(this, other)) return true;
        if (other is not RegoSet s || s.Items.Length != Items.Length) return false;
        if (GetHashCode() != s.GetHashCode()) return false;
        for (int i = 0; i < Items.Length; i++)
            if (!Items[i].Equals(s.Items[i])) return false;
        return true;
    }

    /// <inheritdoc />
    public override int GetHashCode()
    {
        int h = _hash;
        if (h == 0)
        {
            System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
            var hc = new HashCode();
            hc.Add(11);
            foreach (var v in Items) hc.Add(v.GetHashCode());
            h = hc.ToHashCode() | 1;
            _hash = h;
        }
        return h;
    }

    private protected override int CompareSameKind(RegoValue other)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var b = ((RegoSet)other).Items;
        int n = Math.Min(Items.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            int c = Items[i].CompareTo(b[i]);
            if (c != 0) return c;
        }
        return Items.Length.CompareTo(b.Length);
    }

    internal override void AppendRego(StringBuilder sb)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        if (Items.Length == 0) { sb.Append("set()"); return; }
        sb.Append('{');
        for (int i = 0; i < Items.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            Items[i].AppendRego(sb);
        }
        sb.Append('}');
    }
}

/// <summary>An immutable Rego object; keys may be any value; iteration is in canonical key order.</summary>
public sealed class RegoObject : RegoValue
{
    internal static readonly RegoObject Empty = new([], []);
    internal readonly RegoValue[] Keys;   // sorted, distinct
    internal readonly RegoValue[] Values;
    private Dictionary<RegoValue, int>? _lookup;
    private int _hash;

    internal RegoObject(RegoValue[] sortedKeys, RegoValue[] values)
    {
        Keys = sortedKeys;
        Values = values;
    }

    /// <summary>Number of entries.</summary>
    public int Count => Keys.Length;
    /// <inheritdoc />
    public override RegoValueKind Kind => RegoValueKind.Object;

    /// <summary>Entries in canonical key order.</summary>
    public IEnumerable<KeyValuePair<RegoValue, RegoValue>> Pairs
    {
        get
        {
            for (int i = 0; i < Keys.Length; i++) yield return new(Keys[i], Values[i]);
        }
    }

    /// <summary>Keys in canonical order.</summary>
    public IReadOnlyList<RegoValue> KeyList => Keys;
    /// <summary>Values in canonical key order.</summary>
    public IReadOnlyList<RegoValue> ValueList => Values;

    /// <summary>Looks up a string key.</summary>
    public bool TryGetValue(string key, out RegoValue value)
    {
        if (Keys.Length <= 8)
        {
            for (int i = 0; i < Keys.Length; i++)
                if (Keys[i] is RegoString s && string.Equals(s.Value, key, StringComparison.Ordinal)) { value = Values[i]; return true; }
            value = null!;
            return false;
        }
        return TryGetValue(new RegoString(key), out value);
    }

    /// <summary>Looks up any key.</summary>
    public bool TryGetValue(RegoValue key, out RegoValue value)
    {
        if (Keys.Length <= 8)
        {
            for (int i = 0; i < Keys.Length; i++)
                if (Keys[i].Equals(key)) { value = Values[i]; return true; }
            value = null!;
            return false;
        }
        var l = Volatile.Read(ref _lookup);
        if (l is null)
        {
            l = new Dictionary<RegoValue, int>(Keys.Length);
            for (int i = 0; i < Keys.Length; i++) l[Keys[i]] = i;
            l = Interlocked.CompareExchange(ref _lookup, l, null) ?? l;
        }
        if (l.TryGetValue(key, out int idx)) { value = Values[idx]; return true; }
        value = null!;
        return false;
    }

    /// <summary>Value for a key or null.</summary>
    public RegoValue? this[string key] => TryGetValue(key, out var v) ? v : null;

    /// <inheritdoc />
    public override bool Equals(RegoValue? other)
    {
        if (ReferenceEquals(this, other)) return true;
        if (other is not RegoObject o || o.Keys.Length != Keys.Length) return false;
        if (GetHashCode() != o.GetHashCode()) return false;
        for (int i = 0; i < Keys.Length; i++)
            if (!Keys[i].Equals(o.Keys[i]) || !Values[i].Equals(o.Values[i])) return false;
        return true;
    }

    /// <inheritdoc />
    public override int GetHashCode()
    {
        int h = _hash;
        if (h == 0)
        {
            System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
            var hc = new HashCode();
            hc.Add(13);
            for (int i = 0; i < Keys.Length; i++) { hc.Add(Keys[i].GetHashCode()); hc.Add(Values[i].GetHashCode()); }
            h = hc.ToHashCode() | 1;
            _hash = h;
        }
        return h;
    }

    private protected override int CompareSameKind(RegoValue other)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var o = (RegoObject)other;
        int n = Math.Min(Keys.Length, o.Keys.Length);
        for (int i = 0; i < n; i++)
        {
            int c = Keys[i].CompareTo(o.Keys[i]);
            if (c != 0) return c;
            c = Values[i].CompareTo(o.Values[i]);
            if (c != 0) return c;
        }
        return Keys.Length.CompareTo(o.Keys.Length);
    }

    internal override void AppendRego(StringBuilder sb)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        sb.Append('{');
        for (int i = 0; i < Keys.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            Keys[i].AppendRego(sb);
            sb.Append(": ");
            Values[i].AppendRego(sb);
        }
        sb.Append('}');
    }

    /// <summary>Builds an object; later values for a duplicate key replace earlier ones.</summary>
    public sealed class Builder
    {
        private readonly List<KeyValuePair<RegoValue, RegoValue>> _items;

        /// <summary>Creates a builder.</summary>
        public Builder() => _items = new();
        /// <summary>Creates a builder with an initial capacity.</summary>
        public Builder(int capacity) => _items = new(capacity);

        /// <summary>Number of entries added so far.</summary>
        public int Count => _items.Count;

        /// <summary>Adds a string-keyed entry.</summary>
        public Builder Add(string key, RegoValue value) => Add(new RegoString(key), value);

        /// <summary>Adds an entry.</summary>
        public Builder Add(RegoValue key, RegoValue value)
        {
            ArgumentNullException.ThrowIfNull(key);
            ArgumentNullException.ThrowIfNull(value);
            _items.Add(new(key, value));
            return this;
        }

        /// <summary>Builds the immutable object.</summary>
        public RegoObject Build()
        {
            if (_items.Count == 0) return Empty;
            var items = _items.ToArray();
            Array.Sort(items, static (a, b) => a.Key.CompareTo(b.Key));
            // stable last-wins: Array.Sort is unstable, so resolve duplicates by original order
            int n = 0;
            var keys = new RegoValue[items.Length];
            var values = new RegoValue[items.Length];
            for (int i = 0; i < items.Length; i++)
            {
                if (n > 0 && keys[n - 1].Equals(items[i].Key)) { values[n - 1] = LastValue(items[i].Key); continue; }
                keys[n] = items[i].Key;
                values[n] = items[i].Value;
                n++;
            }
            if (n != keys.Length)
            {
                Array.Resize(ref keys, n);
                Array.Resize(ref values, n);
            }
            return new RegoObject(keys, values);
        }

        private RegoValue LastValue(RegoValue key)
        {
            for (int i = _items.Count - 1; i >= 0; i--)
                if (_items[i].Key.Equals(key)) return _items[i].Value;
            throw new InvalidOperationException();
        }
    }

    /// <summary>Creates an object from pairs (last wins on duplicate keys).</summary>
    public static RegoObject From(IEnumerable<KeyValuePair<RegoValue, RegoValue>> pairs)
    {
        var b = new Builder();
        foreach (var p in pairs) b.Add(p.Key, p.Value);
        return b.Build();
    }
}
