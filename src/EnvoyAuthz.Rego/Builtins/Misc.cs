namespace EnvoyAuthz.Rego.Builtins;

/// <summary>walk, time.now_ns, print placeholder and other small builtins.</summary>
internal static class Misc
{
    public static void Register(Dictionary<string, BuiltinDef> r)
    {
        BuiltinRegistry.Add(r, "print", -1, (_, _) => RegoValue.True);
        BuiltinRegistry.Add(r, "time.now_ns", 0, (c, _) => RegoNumber.FromInt64(c.NowNs), nondeterministic: true);
        // walk is relational: it yields every [path, value] pair; the evaluator iterates the returned array
        BuiltinRegistry.Add(r, "walk", 1, (_, a) =>
        {
            var list = new List<RegoValue>();
            Walk(a[0], new List<RegoValue>(), list);
            return new RegoArray(list.ToArray());
        }, relation: true);
        // harness helper used by OPA's conformance suite: sleeps (bounded) and succeeds
        BuiltinRegistry.Add(r, "test.sleep", 1, (c, a) =>
        {
            var d = Arg.Str("test.sleep", a, 0);
            var ms = d.EndsWith("ms", StringComparison.Ordinal) && int.TryParse(d[..^2], out var v) ? Math.Min(v, 100) : 10;
            c.CancellationToken.WaitHandle.WaitOne(ms);
            return RegoNull.Instance;
        }, nondeterministic: true);
        // Parses text that may come from the request: the parser is linear-time, nesting and size
        // are capped as for compiled modules, and the evaluation's deadline and cancellation apply.
        BuiltinRegistry.Add(r, "rego.parse_module", 2, (c, a) =>
        {
            var file = Arg.Str("rego.parse_module", a, 0);
            var src = Arg.Str("rego.parse_module", a, 1);
            var limits = new RegoCompileOptions();
            if (src.Length > limits.MaxModuleBytes) throw BuiltinException.Error("rego.parse_module", $"{file}:0: rego_parse_error: module too large");
            Syntax.Module m;
            try { m = Syntax.Parser.ParseModule(file, src, limits.MaxNestingDepth, new Syntax.Parser.WildcardCounter(), c.CancellationToken); }
            catch (Syntax.RegoParseException ex) { throw BuiltinException.Error("rego.parse_module", $"{file}:{ex.Line}: rego_parse_error: {ex.Message}"); }
            return ModuleAst(m);
        });
        // evaluated by the evaluator, which knows the rule being evaluated
        BuiltinRegistry.Add(r, "rego.metadata.rule", 0, (_, _) => RegoObject.Empty);
        BuiltinRegistry.Add(r, "rego.metadata.chain", 0, (_, _) => RegoArray.Empty);
        BuiltinRegistry.Add(r, "opa.runtime", 0, (ctx, _) => ctx.Host?.Runtime() ?? RegoObject.Empty);
        BuiltinRegistry.Add(r, "trace", 1, (_, _) => RegoValue.True);
        // network access is not available to policies of this engine; the name exists so that `with http.send as ...` mocks work
        BuiltinRegistry.Add(r, "http.send", 1, (ctx, a) =>
        {
            var req = Arg.Obj("http.send", a, 0);
            var invalid = req.KeyList.Select(k => (k as RegoString)?.Value ?? k.ToString()).Where(k => !HttpSendKeys.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            if (invalid.Count > 0) throw BuiltinException.TypeMsg("http.send", $"invalid request parameters(s): {{{string.Join(", ", invalid.Select(Strings.Quote))}}}");
            var missing = new[] { "method", "url" }.Where(k => !req.TryGetValue(k, out var _)).ToList();
            if (missing.Count > 0) throw BuiltinException.TypeMsg("http.send", $"missing required request parameters(s): {{{string.Join(", ", missing.Select(Strings.Quote))}}}");
            if (ctx.Host is not { } host)
            {
                throw BuiltinException.Error("http.send", "network access is disabled");
            }
            try
            {
                return host.HttpSend(req, ctx.CancellationToken);
            }
            catch (RegoHostException ex)
            {
                // raise_error: false turns a failed request into a response object, as OPA does.
                if (req.TryGetValue("raise_error", out var raise) && raise is RegoBoolean { Value: false })
                {
                    return new RegoObject.Builder(2).Add("status_code", RegoValue.From(0L))
                        .Add("error", new RegoObject.Builder(2).Add("code", RegoValue.From("eval_http_send_network_error")).Add("message", RegoValue.From(ex.Message)).Build())
                        .Build();
                }
                throw BuiltinException.Error("http.send", ex.Message);
            }
        }, nondeterministic: true);
        BuiltinRegistry.Add(r, "net.lookup_ip_addr", 1, (ctx, a) =>
        {
            var name = Arg.Str("net.lookup_ip_addr", a, 0);
            if (System.Net.IPAddress.TryParse(name, out var ip)) return RegoSet.From(Arg.S(ip.ToString()));
            if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return RegoSet.From(Arg.S("127.0.0.1"), Arg.S("::1"));
            if (ctx.Host is not { } host)
            {
                // DNS is not available to policies unless the host grants it
                throw BuiltinException.Error("net.lookup_ip_addr", $"lookup {name}: name resolution is disabled");
            }
            try
            {
                return RegoSet.From(host.LookupIpAddresses(name, ctx.CancellationToken).Select(Arg.S));
            }
            catch (RegoHostException ex)
            {
                throw BuiltinException.Error("net.lookup_ip_addr", ex.Message);
            }
        }, nondeterministic: true);
    }

    private static readonly HashSet<string> HttpSendKeys = new(StringComparer.Ordinal)
    {
        "method", "url", "body", "enable_redirect", "force_json_decode", "force_yaml_decode", "headers", "raw_body", "tls_use_system_certs",
        "tls_ca_cert", "tls_ca_cert_file", "tls_ca_cert_env_variable", "tls_client_cert", "tls_client_cert_file", "tls_client_cert_env_variable",
        "tls_client_key", "tls_client_key_file", "tls_client_key_env_variable", "tls_insecure_skip_verify", "tls_server_name", "timeout",
        "cache", "force_cache", "force_cache_duration_seconds", "raise_error", "caching_mode", "max_retry_attempts", "cache_ignored_headers",
    };

    /// <summary>A partial OPA-style AST of a module: package, imports and rule heads.</summary>
    private static RegoValue ModuleAst(Syntax.Module m)
    {
        static RegoValue TermAst(Syntax.Term t) => t switch
        {
            Syntax.VarTerm v => Obj("var", Arg.S(v.Name)),
            Syntax.ScalarTerm { Value: RegoString s } => Obj("string", s),
            Syntax.ScalarTerm { Value: RegoNumber n } => Obj("number", n),
            Syntax.ScalarTerm { Value: RegoBoolean b } => Obj("boolean", b),
            Syntax.ScalarTerm { Value: RegoNull } => Obj("null", RegoValue.Null),
            Syntax.RefTerm r => Obj("ref", new RegoArray([TermAst(r.Head), .. r.Path.Select(TermAst)])),
            _ => Obj("unknown", RegoValue.Null),
        };
        static RegoValue Obj(string type, RegoValue value) => new RegoObject.Builder(2).Add("type", Arg.S(type)).Add("value", value).Build();
        var pkgPath = new List<RegoValue> { Obj("var", Arg.S("data")) };
        if (m.Package.Head is Syntax.VarTerm hv) pkgPath.Add(Obj("string", Arg.S(hv.Name)));
        pkgPath.AddRange(m.Package.Path.Select(TermAst));
        var imports = m.Imports.Select(i =>
        {
            var b = new RegoObject.Builder().Add("path", TermAst(i.Path));
            if (i.Alias is not null) b.Add("alias", Arg.S(i.Alias));
            return b.Build();
        }).ToArray();
        var rules = m.Rules.Select(r =>
        {
            var head = new RegoObject.Builder().Add("name", Arg.S(((Syntax.VarTerm)r.HeadRef.Head).Name)).Add("ref", ((RegoObject)TermAst(r.HeadRef))["value"]!);
            var b = new RegoObject.Builder().Add("head", head.Build());
            if (r.IsDefault) b.Add("default", RegoValue.True);
            return (RegoValue)b.Build();
        }).ToArray();
        var mod = new RegoObject.Builder().Add("package", new RegoObject.Builder().Add("path", new RegoArray(pkgPath.ToArray())).Build());
        if (imports.Length > 0) mod.Add("imports", new RegoArray(imports.Cast<RegoValue>().ToArray()));
        if (rules.Length > 0) mod.Add("rules", new RegoArray(rules));
        return mod.Build();
    }

    private static void Walk(RegoValue v, List<RegoValue> path, List<RegoValue> acc)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        acc.Add(new RegoArray([new RegoArray(path.ToArray()), v]));
        switch (v)
        {
            case RegoArray a:
                for (int i = 0; i < a.Count; i++) { path.Add(RegoNumber.FromInt64(i)); Walk(a.Items[i], path, acc); path.RemoveAt(path.Count - 1); }
                break;
            case RegoObject o:
                foreach (var kv in o.Pairs) { path.Add(kv.Key); Walk(kv.Value, path, acc); path.RemoveAt(path.Count - 1); }
                break;
            case RegoSet s:
                foreach (var x in s.Items) { path.Add(x); Walk(x, path, acc); path.RemoveAt(path.Count - 1); }
                break;
        }
    }
}
