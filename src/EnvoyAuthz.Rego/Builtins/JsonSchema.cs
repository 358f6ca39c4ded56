using System.Text.RegularExpressions;

namespace EnvoyAuthz.Rego.Builtins;

/// <summary>json.verify_schema and json.match_schema: a JSON Schema (draft 4–7) validator for the common keywords, with gojsonschema-style errors.</summary>
internal static class JsonSchema
{
    private static readonly HashSet<string> Types = ["array", "boolean", "integer", "number", "null", "object", "string"];

    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "json.verify_schema", 1, (_, a) =>
        {
            var schema = Load("json.verify_schema", a[0], 1);
            var err = CheckSchema(schema);
            return err is null ? new RegoArray([RegoValue.True, RegoValue.Null]) : new RegoArray([RegoValue.False, Arg.S("jsonschema: " + err)]);
        });
        BuiltinRegistry.Add(r, "json.match_schema", 2, (_, a) =>
        {
            var doc = a[0] is RegoString ds ? (RegoJson.TryParse(ds.Value, out var dv) ? dv : throw BuiltinException.Error("json.match_schema", "operand 1: invalid JSON")) : a[0];
            var schema = Load("json.match_schema", a[1], 2);
            var err = CheckSchema(schema);
            if (err is not null) throw BuiltinException.Error("json.match_schema", err);
            var errors = new List<RegoValue>();
            Validate(Plain(doc), schema, schema, "(root)", errors, 0);
            return new RegoArray([Arg.B(errors.Count == 0), new RegoArray(errors.ToArray())]);
        });
    }

    private static RegoValue Load(string fn, RegoValue v, int operand) => v switch
    {
        RegoString s => RegoJson.TryParse(s.Value, out var parsed) ? parsed : throw BuiltinException.Error(fn, $"operand {operand}: invalid JSON schema"),
        RegoObject or RegoBoolean => v,
        _ => throw BuiltinException.Type(fn, operand, "one of {string, object, boolean}", v),
    };

    /// <summary>Sets become arrays, as in JSON.</summary>
    private static RegoValue Plain(RegoValue v) => v switch
    {
        RegoSet s => new RegoArray(s.Items.Select(Plain).ToArray()),
        RegoArray a => new RegoArray(a.Items.Select(Plain).ToArray()),
        RegoObject o => RegoObject.From(o.Pairs.Select(kv => new KeyValuePair<RegoValue, RegoValue>(kv.Key, Plain(kv.Value)))),
        _ => v,
    };

    private static string? CheckSchema(RegoValue s)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (s)
        {
            case RegoObject o:
                if (o["type"] is { } t)
                {
                    var names = t is RegoArray ta ? ta.Items : [t];
                    foreach (var n in names)
                        if (n is not RegoString ns || !Types.Contains(ns.Value))
                            return $"has a primitive type that is NOT VALID -- given: /{(n as RegoString)?.Value ?? n.ToString()}/ Expected valid values are:[array boolean integer number null object string]";
                }
                foreach (var kv in o.Pairs)
                {
                    string? err = kv.Value switch
                    {
                        RegoObject sub when kv.Key is RegoString { Value: "properties" or "definitions" or "patternProperties" or "$defs" } =>
                            sub.ValueList.Select(CheckSchema).FirstOrDefault(e => e is not null),
                        RegoObject or RegoBoolean when kv.Key is RegoString { Value: "items" or "additionalProperties" or "not" or "additionalItems" } => CheckSchema(kv.Value),
                        RegoArray arr when kv.Key is RegoString { Value: "allOf" or "anyOf" or "oneOf" or "items" } => arr.Items.Select(CheckSchema).FirstOrDefault(e => e is not null),
                        _ => null,
                    };
                    if (err is not null) return err;
                }
                return null;
            case RegoBoolean:
                return null;
            default:
                return "schema must be an object or a boolean";
        }
    }

    private static void Error(List<RegoValue> errors, string field, string type, string desc) =>
        errors.Add(new RegoObject.Builder().Add("desc", Arg.S(desc)).Add("error", Arg.S(field + ": " + desc)).Add("field", Arg.S(field)).Add("type", Arg.S(type)).Build());

    private static string Child(string field, string key) => field == "(root)" ? key : field + "." + key;

    private static string TypeOf(RegoValue v) => v switch
    {
        RegoNumber n => n.IsInteger ? "integer" : "number",
        RegoString => "string",
        RegoBoolean => "boolean",
        RegoNull => "null",
        RegoArray => "array",
        _ => "object",
    };

    private static bool IsType(RegoValue v, string t) => t switch
    {
        "integer" => v is RegoNumber n && n.IsInteger,
        "number" => v is RegoNumber,
        _ => TypeOf(v) == t,
    };

    private static void Validate(RegoValue v, RegoValue schema, RegoValue root, string field, List<RegoValue> errors, int depth)
    {
        if (depth > 200) throw BuiltinException.Error("json.match_schema", "schema nesting too deep");
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        if (schema is RegoBoolean b)
        {
            if (!b.Value) Error(errors, field, "false", "False always fails validation");
            return;
        }
        if (schema is not RegoObject s) return;
        if (s["$ref"] is RegoString rf && rf.Value.StartsWith("#", StringComparison.Ordinal))
        {
            RegoValue target = root;
            foreach (var seg in rf.Value.TrimStart('#').Split('/', StringSplitOptions.RemoveEmptyEntries))
                target = (target as RegoObject)?[seg.Replace("~1", "/").Replace("~0", "~")] ?? RegoValue.Null;
            Validate(v, target, root, field, errors, depth + 1);
            return;
        }
        if (s["type"] is { } t)
        {
            var names = (t is RegoArray ta ? ta.Items : [t]).OfType<RegoString>().Select(x => x.Value).ToList();
            if (!names.Any(n => IsType(v, n)))
            {
                Error(errors, field, "invalid_type", $"Invalid type. Expected: {string.Join(", ", names)}, given: {TypeOf(v)}");
                return;
            }
        }
        if (s["enum"] is RegoArray en && !en.Items.Any(e => e.Equals(v)))
            Error(errors, field, "enum", $"{field} must be one of the following: {string.Join(", ", en.Items.Select(e => e.ToJson()))}");
        if (s["const"] is { } cv && !cv.Equals(v)) Error(errors, field, "const", $"{field} does not match: {cv.ToJson()}");
        if (v is RegoNumber num)
        {
            if (s["minimum"] is RegoNumber min && RegoNumber.Compare(num, min) < 0) Error(errors, field, "number_gte", $"Must be greater than or equal to {min}");
            if (s["maximum"] is RegoNumber max && RegoNumber.Compare(num, max) > 0) Error(errors, field, "number_lte", $"Must be less than or equal to {max}");
            if (s["exclusiveMinimum"] is RegoNumber emin && RegoNumber.Compare(num, emin) <= 0) Error(errors, field, "number_gt", $"Must be greater than {emin}");
            if (s["exclusiveMaximum"] is RegoNumber emax && RegoNumber.Compare(num, emax) >= 0) Error(errors, field, "number_lt", $"Must be less than {emax}");
        }
        if (v is RegoString str)
        {
            int len = Strings.RuneCount(str.Value);
            if (s["minLength"] is RegoNumber mnl && mnl.TryGetInt64(out var mn) && len < mn) Error(errors, field, "string_gte", $"String length must be greater than or equal to {mn}");
            if (s["maxLength"] is RegoNumber mxl && mxl.TryGetInt64(out var mx) && len > mx) Error(errors, field, "string_lte", $"String length must be less than or equal to {mx}");
            if (s["pattern"] is RegoString pat && RegexBuiltins.TryCompile(pat.Value) is { } re && !re.IsMatch(str.Value))
                Error(errors, field, "pattern", $"Does not match pattern '{pat.Value}'");
        }
        if (v is RegoArray arr)
        {
            if (s["minItems"] is RegoNumber mi && mi.TryGetInt64(out var miv) && arr.Count < miv) Error(errors, field, "array_min_items", $"Array must have at least {miv} items");
            if (s["maxItems"] is RegoNumber ma && ma.TryGetInt64(out var mav) && arr.Count > mav) Error(errors, field, "array_max_items", $"Array must have at most {mav} items");
            if (s["uniqueItems"] is RegoBoolean { Value: true } && arr.Items.Distinct().Count() != arr.Count) Error(errors, field, "unique", "array items must be unique");
            if (s["items"] is RegoObject or RegoBoolean)
                for (int i = 0; i < arr.Count; i++) Validate(arr[i], s["items"]!, root, Child(field, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), errors, depth + 1);
            else if (s["items"] is RegoArray tuple)
                for (int i = 0; i < Math.Min(arr.Count, tuple.Count); i++) Validate(arr[i], tuple[i], root, Child(field, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), errors, depth + 1);
        }
        if (v is RegoObject obj)
        {
            if (s["required"] is RegoArray req)
                foreach (var k in req.Items.OfType<RegoString>())
                    if (!obj.TryGetValue(k.Value, out RegoValue _)) Error(errors, field, "required", $"{k.Value} is required");
            var props = s["properties"] as RegoObject;
            if (props is not null)
                foreach (var kv in props.Pairs)
                    if (kv.Key is RegoString pk && obj.TryGetValue(pk.Value, out var pv)) Validate(pv, kv.Value, root, Child(field, pk.Value), errors, depth + 1);
            if (s["additionalProperties"] is { } ap && ap is not RegoBoolean { Value: true })
                foreach (var kv in obj.Pairs)
                {
                    var key = (kv.Key as RegoString)?.Value ?? kv.Key.ToString();
                    if (props is not null && props.TryGetValue(key, out RegoValue _)) continue;
                    if (ap is RegoBoolean { Value: false }) Error(errors, field, "additional_property_not_allowed", $"Additional property {key} is not allowed");
                    else Validate(kv.Value, ap, root, Child(field, key), errors, depth + 1);
                }
            if (s["minProperties"] is RegoNumber mp && mp.TryGetInt64(out var mpv) && obj.Count < mpv) Error(errors, field, "array_min_properties", $"Must have at least {mpv} properties");
            if (s["maxProperties"] is RegoNumber xp && xp.TryGetInt64(out var xpv) && obj.Count > xpv) Error(errors, field, "array_max_properties", $"Must have at most {xpv} properties");
        }
        if (s["allOf"] is RegoArray all) foreach (var sub in all.Items) Validate(v, sub, root, field, errors, depth + 1);
        if (s["anyOf"] is RegoArray any && !any.Items.Any(sub => Passes(v, sub, root, depth)))
            Error(errors, field, "number_any_of", "Must validate at least one schema (anyOf)");
        if (s["oneOf"] is RegoArray one && one.Items.Count(sub => Passes(v, sub, root, depth)) != 1)
            Error(errors, field, "number_one_of", "Must validate one and only one schema (oneOf)");
        if (s["not"] is { } not && Passes(v, not, root, depth)) Error(errors, field, "number_not", "Must not validate the schema (not)");
    }

    private static bool Passes(RegoValue v, RegoValue schema, RegoValue root, int depth)
    {
        var errs = new List<RegoValue>();
        Validate(v, schema, root, "(root)", errs, depth + 1);
        return errs.Count == 0;
    }
}
