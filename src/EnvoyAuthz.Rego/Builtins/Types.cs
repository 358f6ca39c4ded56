namespace EnvoyAuthz.Rego.Builtins;

/// <summary>is_* and type_name.</summary>
internal static class Types
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "is_number", 1, (_, a) => Arg.B(a[0] is RegoNumber));
        BuiltinRegistry.Add(r, "is_string", 1, (_, a) => Arg.B(a[0] is RegoString));
        BuiltinRegistry.Add(r, "is_boolean", 1, (_, a) => Arg.B(a[0] is RegoBoolean));
        BuiltinRegistry.Add(r, "is_array", 1, (_, a) => Arg.B(a[0] is RegoArray));
        BuiltinRegistry.Add(r, "is_set", 1, (_, a) => Arg.B(a[0] is RegoSet));
        BuiltinRegistry.Add(r, "is_object", 1, (_, a) => Arg.B(a[0] is RegoObject));
        BuiltinRegistry.Add(r, "is_null", 1, (_, a) => Arg.B(a[0] is RegoNull));
        BuiltinRegistry.Add(r, "type_name", 1, (_, a) => Arg.S(a[0].TypeName));
    }
}
