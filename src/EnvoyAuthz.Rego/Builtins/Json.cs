namespace EnvoyAuthz.Rego.Builtins;

/// <summary>json.remove, json.filter, json.patch.</summary>
internal static class Json
{
    private sealed class PathTree
    {
        // segments keep their type (as OPA's path object does): a number 1 is no array index "1" and no key "1"
        public readonly Dictionary<RegoValue, PathTree> Children = new();
        public bool Leaf;
    }

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "json.remove", 2, (_, a) =>
        {
            var obj = Arg.Obj("json.remove", a, 0);
            var tree = Paths("json.remove", a, 1);
            return Remove(obj, tree);
        });
        BuiltinRegistry.Add(r, "json.filter", 2, (_, a) =>
        {
            var obj = Arg.Obj("json.filter", a, 0);
            var tree = Paths("json.filter", a, 1);
            return Filter(obj, tree) ?? RegoObject.Empty;
        });
        BuiltinRegistry.Add(r, "json.patch", 2, (_, a) =>
        {
            var doc = a[0];
            var patches = Arg.Arr("json.patch", a, 1);
            foreach (var p in patches.Items)
            {
                if (p is not RegoObject po) throw BuiltinException.TypeMsg("json.patch", "operand 2 must be array of objects");
                var res = ApplyPatch(doc, po);
                if (res is null) return null;
                doc = res;
            }
            return doc;
        });
    }

    private static PathTree Paths(string fn, RegoValue[] a, int i)
    {
        var items = a[i] switch
        {
            RegoArray arr => arr.Items,
            RegoSet s => s.Items,
            _ => throw BuiltinException.Type(fn, i + 1, "one of {set, array}", a[i]),
        };
        var root = new PathTree();
        foreach (var it in items)
        {
            List<RegoValue> segs = it switch
            {
                RegoString s => SplitPath(s.Value).Select(x => (RegoValue)new RegoString(x)).ToList(),
                RegoArray pa => pa.Items.ToList(),
                _ => throw BuiltinException.TypeMsg(fn, $"operand {i + 1} must be one of {{set, array}} containing string paths or array of path segments but got {it.TypeName}"),
            };
            var node = root;
            foreach (var seg in segs)
            {
                if (node.Leaf) break;
                if (!node.Children.TryGetValue(seg, out var child)) node.Children[seg] = child = new PathTree();
                node = child;
            }
            node.Leaf = true;
            node.Children.Clear();
        }
        return root;
    }

    private static List<string> SplitPath(string p)
    {
        var t = p.StartsWith('/') ? p[1..] : p;
        if (t.Length == 0) return [];
        return t.Split('/').Select(s => s.Replace("~1", "/").Replace("~0", "~")).ToList();
    }

    private static RegoValue Index(int i) => new RegoString(i.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static RegoValue Remove(RegoValue v, PathTree t)
    {
        switch (v)
        {
            case RegoObject o:
                {
                    var b = new RegoObject.Builder(o.Count);
                    foreach (var kv in o.Pairs)
                    {
                        if (t.Children.TryGetValue(kv.Key, out var c))
                        {
                            if (c.Leaf) continue;
                            b.Add(kv.Key, Remove(kv.Value, c));
                        }
                        else b.Add(kv.Key, kv.Value);
                    }
                    return b.Build();
                }
            case RegoArray arr:
                {
                    var list = new List<RegoValue>();
                    for (int i = 0; i < arr.Count; i++)
                    {
                        if (t.Children.TryGetValue(Index(i), out var c))
                        {
                            if (c.Leaf) continue;
                            list.Add(Remove(arr.Items[i], c));
                        }
                        else list.Add(arr.Items[i]);
                    }
                    return new RegoArray(list.ToArray());
                }
            case RegoSet s:
                {
                    var list = new List<RegoValue>();
                    foreach (var x in s.Items)
                    {
                        if (t.Children.TryGetValue(x, out var c))
                        {
                            if (c.Leaf) continue;
                            list.Add(Remove(x, c));
                        }
                        else list.Add(x);
                    }
                    return RegoSet.FromUnsorted(list);
                }
        }
        return v;
    }

    private static RegoValue? Filter(RegoValue v, PathTree t)
    {
        if (t.Leaf) return v;
        switch (v)
        {
            case RegoObject o:
                {
                    var b = new RegoObject.Builder();
                    foreach (var kv in o.Pairs)
                        if (t.Children.TryGetValue(kv.Key, out var c))
                        {
                            var f = Filter(kv.Value, c);
                            if (f is not null) b.Add(kv.Key, f);
                        }
                    return b.Build();
                }
            case RegoArray arr:
                {
                    var list = new List<RegoValue>();
                    for (int i = 0; i < arr.Count; i++)
                        if (t.Children.TryGetValue(Index(i), out var c))
                        {
                            var f = Filter(arr.Items[i], c);
                            if (f is not null) list.Add(f);
                        }
                    return new RegoArray(list.ToArray());
                }
            case RegoSet s:
                {
                    var list = new List<RegoValue>();
                    foreach (var x in s.Items)
                        if (t.Children.TryGetValue(x, out var c))
                        {
                            var f = Filter(x, c);
                            if (f is not null) list.Add(f);
                        }
                    return RegoSet.FromUnsorted(list);
                }
        }
        return null;
    }

    // ---------------------------------------------------------------- json.patch (RFC 6902)

    private static List<RegoValue>? PatchPath(RegoValue? p) => p switch
    {
        RegoString s => s.Value.Length == 0 ? [] : (s.Value.StartsWith('/') ? s.Value[1..] : s.Value).Split('/').Select(x => (RegoValue)new RegoString(x.Replace("~1", "/").Replace("~0", "~"))).ToList(),
        RegoArray a => a.Items.ToList(),
        _ => null,
    };

    private static RegoValue? ApplyPatch(RegoValue doc, RegoObject p)
    {
        var op = (p["op"] as RegoString)?.Value;
        var path = PatchPath(p["path"]);
        if (op is null || path is null) return null;
        switch (op)
        {
            case "add": return p["value"] is { } av ? Add(doc, path, 0, av) : null;
            case "remove": return RemoveAt(doc, path, 0);
            case "replace":
                {
                    if (p["value"] is not { } rv) return null;
                    if (path.Count == 0) return rv;
                    var removed = RemoveAt(doc, path, 0);
                    return removed is null ? null : Add(removed, path, 0, rv);
                }
            case "move":
                {
                    var from = PatchPath(p["from"]);
                    if (from is null) return null;
                    var v = Get(doc, from, 0);
                    if (v is null) return null;
                    var removed = RemoveAt(doc, from, 0);
                    return removed is null ? null : Add(removed, path, 0, v);
                }
            case "copy":
                {
                    var from = PatchPath(p["from"]);
                    if (from is null) return null;
                    var v = Get(doc, from, 0);
                    return v is null ? null : Add(doc, path, 0, v);
                }
            case "test":
                {
                    var v = Get(doc, path, 0);
                    return v is not null && p["value"] is { } tv && v.Equals(tv) ? doc : null;
                }
        }
        return null;
    }

    private static RegoValue? Get(RegoValue doc, List<RegoValue> path, int i)
    {
        if (i == path.Count) return doc;
        var seg = path[i];
        switch (doc)
        {
            case RegoObject o: return o.TryGetValue(seg, out var v) ? Get(v, path, i + 1) : null;
            case RegoArray a: return Index(seg, a.Count, false) is int ix ? Get(a.Items[ix], path, i + 1) : null;
            case RegoSet s: return s.Contains(seg) ? Get(seg, path, i + 1) : null;
        }
        return null;
    }

    private static int? Index(RegoValue seg, int count, bool forAdd)
    {
        if (forAdd && seg is RegoString { Value: "-" }) return count;
        long n;
        if (seg is RegoNumber num && num.TryGetInt64(out n)) { }
        else if (seg is RegoString s && !(s.Value.Length > 1 && s.Value[0] == '0') && long.TryParse(s.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out n)) { }
        else return null;
        if (n < 0 || n > count || (!forAdd && n == count)) return null;
        return (int)n;
    }

    private static RegoValue? Add(RegoValue doc, List<RegoValue> path, int i, RegoValue value)
    {
        if (i == path.Count) return value;
        var seg = path[i];
        bool last = i == path.Count - 1;
        switch (doc)
        {
            case RegoObject o:
                {
                    RegoValue nv;
                    if (last) nv = value;
                    else
                    {
                        if (!o.TryGetValue(seg, out var child)) return null;
                        var r = Add(child, path, i + 1, value);
                        if (r is null) return null;
                        nv = r;
                    }
                    var b = new RegoObject.Builder(o.Count + 1);
                    foreach (var kv in o.Pairs) if (!kv.Key.Equals(seg)) b.Add(kv.Key, kv.Value);
                    b.Add(seg, nv);
                    return b.Build();
                }
            case RegoArray a:
                {
                    if (Index(seg, a.Count, last) is not int ix) return null;
                    var list = a.Items.ToList();
                    if (last) list.Insert(ix, value);
                    else
                    {
                        var r = Add(list[ix], path, i + 1, value);
                        if (r is null) return null;
                        list[ix] = r;
                    }
                    return new RegoArray(list.ToArray());
                }
            case RegoSet s:
                {
                    if (last)
                    {
                        if (!seg.Equals(value)) return null;
                        return RegoSet.FromUnsorted([.. s.Items, value]);
                    }
                    if (!s.Contains(seg)) return null;
                    var r = Add(seg, path, i + 1, value);
                    if (r is null) return null;
                    return RegoSet.FromUnsorted([.. s.Items.Where(x => !x.Equals(seg)), r]);
                }
        }
        return null;
    }

    private static RegoValue? RemoveAt(RegoValue doc, List<RegoValue> path, int i)
    {
        if (path.Count == 0) return null;
        var seg = path[i];
        bool last = i == path.Count - 1;
        switch (doc)
        {
            case RegoObject o:
                {
                    if (!o.TryGetValue(seg, out var child)) return null;
                    var b = new RegoObject.Builder(o.Count);
                    foreach (var kv in o.Pairs)
                    {
                        if (!kv.Key.Equals(seg)) { b.Add(kv.Key, kv.Value); continue; }
                        if (last) continue;
                        var r = RemoveAt(child, path, i + 1);
                        if (r is null) return null;
                        b.Add(kv.Key, r);
                    }
                    return b.Build();
                }
            case RegoArray a:
                {
                    if (Index(seg, a.Count, false) is not int ix) return null;
                    var list = a.Items.ToList();
                    if (last) list.RemoveAt(ix);
                    else
                    {
                        var r = RemoveAt(list[ix], path, i + 1);
                        if (r is null) return null;
                        list[ix] = r;
                    }
                    return new RegoArray(list.ToArray());
                }
            case RegoSet s:
                {
                    if (!s.Contains(seg)) return null;
                    if (last) return RegoSet.FromUnsorted(s.Items.Where(x => !x.Equals(seg)).ToList());
                    var r = RemoveAt(seg, path, i + 1);
                    if (r is null) return null;
                    return RegoSet.FromUnsorted([.. s.Items.Where(x => !x.Equals(seg)), r]);
                }
        }
        return null;
    }
}
