using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Envoy.Config.Bootstrap.V3;
using Envoy.Extensions.Filters.Http.ExtAuthz.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using EnvoyAuthz.Cli;
using EnvoyAuthz.Hosting;
using EnvoyAuthz.Tests.Infrastructure;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace EnvoyAuthz.IntegrationTests.K8s;

/// <summary>
/// The Kubernetes manifests under <c>k8s/</c>: every kustomization renders with real kustomize
/// (<c>kubectl kustomize</c>) and every document validates against the Kubernetes,
/// Prometheus-operator and Istio schemas (npm <c>kubernetes-models</c> and friends; unknown fields
/// and wrong types fail). Then the pieces agree with each other and with the service: the
/// Dockerfile's user, ports and entry point, the config the Deployment mounts (loaded by the
/// service's own configuration loader), the policy (its Rego tests), the Envoy configs (Envoy v3
/// protos), the Istio provider and the NetworkPolicy's clients.
/// </summary>
[Collection(K8sTools.Collection)]
public sealed class KubernetesManifestTests
{
    private const string Namespace = "envoy-authz";
    private const string ServiceName = "envoy-authz";
    private static readonly string ServiceHost = $"{ServiceName}.{Namespace}.svc.cluster.local";

    private static readonly TypeRegistry EnvoyTypes = TypeRegistry.FromFiles(
        Bootstrap.Descriptor.File,
        ExtAuthz.Descriptor.File,
        HttpConnectionManager.Descriptor.File,
        global::Envoy.Extensions.Filters.Http.Router.V3.Router.Descriptor.File,
        global::Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions.Descriptor.File,
        global::Envoy.Extensions.TransportSockets.Tls.V3.UpstreamTlsContext.Descriptor.File,
        global::Envoy.Extensions.Filters.Http.HeaderToMetadata.V3.Config.Descriptor.File);

    public static TheoryData<string> Kustomizations() => new(K8sTools.Kustomizations);

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public async Task Kustomization_Renders_AndEveryDocumentValidatesAgainstItsSchema(string kustomization)
    {
        var yaml = await K8sTools.RenderAsync(kustomization);
        var file = K8sTools.TempFile(yaml);
        try
        {
            var (exit, output) = await K8sTools.ValidateAsync(file);
            Assert.True(exit == 0, output);
            var docs = K8sTools.Documents(yaml);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(docs.Count, lines.Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));
            var kinds = docs.Select(d => (string)d["kind"]!).ToHashSet();
            string[] expected = kustomization switch
            {
                "airflow-egress" => ["ConfigMap"],
                "overlays/istio" => [.. BaseKinds, "AuthorizationPolicy"],
                _ => BaseKinds,
            };
            Assert.Subset(kinds, expected.ToHashSet());
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static readonly string[] BaseKinds =
        ["Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
         "NetworkPolicy", "ServiceMonitor", "PrometheusRule"];

    [Fact]
    public async Task StandaloneManifests_ValidateAgainstTheirSchemas()
    {
        // Not in a kustomize output: istiod's mesh config, and the pod template Airflow reads by path.
        var (exit, output) = await K8sTools.ValidateAsync(
            RepoPaths.Of("k8s", "overlays", "istio", "mesh-config.yaml"),
            RepoPaths.Of("k8s", "airflow-egress", "pod_template_file.yaml"));
        Assert.True(exit == 0, output);
        Assert.Contains("ok install.istio.io/v1alpha1 IstioOperator", output);
        Assert.Contains("ok v1 Pod", output);
    }

    [Fact]
    public async Task Validator_RejectsUnknownFieldsAndWrongTypes_InEverySchemaFamily()
    {
        var bad = K8sTools.TempFile("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: typo-top }
            spec:
              replicaz: 2
              selector: { matchLabels: { a: b } }
              template:
                metadata: { labels: { a: b } }
                spec: { containers: [ { name: c, image: i } ] }
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: typo-deep }
            spec:
              selector: { matchLabels: { a: b } }
              template:
                metadata: { labels: { a: b } }
                spec: { containers: [ { name: c, image: i, readinessProbe: { httpGet: { path: /readyz, port: 9192, shceme: HTTP } } } ] }
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: wrong-type }
            spec:
              replicas: "2"
              selector: { matchLabels: { a: b } }
              template:
                metadata: { labels: { a: b } }
                spec: { containers: [ { name: c, image: i } ] }
            ---
            apiVersion: v1
            kind: Service
            metadata: { name: typo-service }
            spec:
              ports: [ { name: grpc, port: 9191, appProtocl: grpc } ]
            ---
            apiVersion: monitoring.coreos.com/v1
            kind: PrometheusRule
            metadata: { name: typo-rule }
            spec:
              groups: [ { name: g, rules: [ { alert: A, expr: up == 0, fro: 5m } ] } ]
            ---
            apiVersion: monitoring.coreos.com/v1
            kind: ServiceMonitor
            metadata: { name: typo-monitor }
            spec:
              selector: {}
              endpoints: [ { port: http, intervl: 15s } ]
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: { name: typo-istio }
            spec:
              actoin: CUSTOM
            ---
            apiVersion: install.istio.io/v1alpha1
            kind: IstioOperator
            metadata: { name: typo-mesh }
            spec:
              meshConfig:
                extensionProviders:
                  - name: x
                    envoyExtAuthzGrpc: { service: s, port: 9191, failopen: false }
            ---
            apiVersion: example.com/v1
            kind: Widget
            metadata: { name: no-schema }
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: { name: fine, labels: { anything: goes } }
            data: { any-key: value }
            """);
        try
        {
            var (exit, output) = await K8sTools.ValidateAsync(bad);
            Assert.Equal(1, exit);
            string[] expected =
            [
                "Deployment /typo-top: /spec/replicaz: unknown field",
                "Deployment /typo-deep: /spec/template/spec/containers/0/readinessProbe/httpGet/shceme: unknown field",
                "Deployment /wrong-type: data/spec/replicas must be integer",
                "Service /typo-service: /spec/ports/0/appProtocl: unknown field",
                "PrometheusRule /typo-rule: /spec/groups/0/rules/0/fro: unknown field",
                "ServiceMonitor /typo-monitor: /spec/endpoints/0/intervl: unknown field",
                "AuthorizationPolicy /typo-istio: /spec/actoin: unknown field",
                "IstioOperator /typo-mesh: /spec/meshConfig/extensionProviders/0/envoyExtAuthzGrpc/failopen: unknown field",
                "Widget /no-schema: no schema",
            ];
            foreach (var e in expected)
            {
                Assert.Contains(e, output);
            }
            Assert.Contains("ok v1 ConfigMap /fine", output);
        }
        finally
        {
            File.Delete(bad);
        }
    }

    [Fact]
    public async Task Validator_RejectsATypoInTheRenderedBase()
    {
        var yaml = await K8sTools.RenderAsync("base");
        Assert.Contains("readOnlyRootFilesystem: true", yaml);
        var file = K8sTools.TempFile(yaml.Replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", StringComparison.Ordinal));
        try
        {
            var (exit, output) = await K8sTools.ValidateAsync(file);
            Assert.Equal(1, exit);
            Assert.Contains("Deployment envoy-authz/envoy-authz: /spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem: unknown field", output);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Deployment_IsHardened_Probed_Sized_AndSpread()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var deployment = K8sTools.Single(docs, "Deployment", ServiceName);
        var pod = deployment["spec"]!["template"]!["spec"]!;
        var c = Container(deployment);
        Assert.Equal("/healthz", (string?)c["livenessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/readyz", (string?)c["readinessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("http", (string?)c["readinessProbe"]!["httpGet"]!["port"]);
        Assert.Equal("/healthz", (string?)c["startupProbe"]!["httpGet"]!["path"]);
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.NotEqual(0, (long)pod["securityContext"]!["runAsUser"]!);
        Assert.True((bool)c["securityContext"]!["readOnlyRootFilesystem"]!);
        Assert.False((bool)c["securityContext"]!["allowPrivilegeEscalation"]!);
        Assert.Equal("ALL", (string?)c["securityContext"]!["capabilities"]!["drop"]![0]);
        Assert.False((bool)pod["automountServiceAccountToken"]!);
        Assert.False((bool)K8sTools.Single(docs, "ServiceAccount", ServiceName)["automountServiceAccountToken"]!);
        Assert.Equal(ServiceName, (string?)pod["serviceAccountName"]);
        // The writable /tmp a read-only root needs (.NET's diagnostics socket).
        Assert.Contains(c["volumeMounts"]!.AsArray(), m => (string?)m!["mountPath"] == "/tmp");
        // Sized from the measured footprint (README: RSS 110-116 MiB at 1,000 Checks/s); no CPU limit.
        Assert.Equal("250m", (string?)c["resources"]!["requests"]!["cpu"]);
        Assert.Equal("160Mi", (string?)c["resources"]!["requests"]!["memory"]);
        Assert.Equal("256Mi", (string?)c["resources"]!["limits"]!["memory"]);
        Assert.Null(c["resources"]!["limits"]!["cpu"]);
        var spread = pod["topologySpreadConstraints"]!.AsArray();
        Assert.Contains(spread, t => (string?)t!["topologyKey"] == "topology.kubernetes.io/zone");
        Assert.Contains(spread, t => (string?)t!["topologyKey"] == "kubernetes.io/hostname");
        foreach (var t in spread)
        {
            Assert.Equal(ServiceName, (string?)t!["labelSelector"]!["matchLabels"]!["app.kubernetes.io/name"]);
        }
        // HPA and PDB target this Deployment's pods.
        Assert.Equal(ServiceName, (string?)K8sTools.Single(docs, "HorizontalPodAutoscaler", ServiceName)["spec"]!["scaleTargetRef"]!["name"]);
        Assert.True((long)K8sTools.Single(docs, "HorizontalPodAutoscaler", ServiceName)["spec"]!["minReplicas"]! >= 2);
        Assert.Equal(ServiceName, (string?)K8sTools.Single(docs, "PodDisruptionBudget", ServiceName)["spec"]!["selector"]!["matchLabels"]!["app.kubernetes.io/name"]);
    }

    [Fact]
    public async Task Service_ExposesGrpcWithAppProtocol_AndHttp_OnTheContainersPorts()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var ports = K8sTools.Single(docs, "Service", ServiceName)["spec"]!["ports"]!.AsArray();
        var grpc = ports.Single(p => (string?)p!["name"] == "grpc")!;
        Assert.Equal(9191, (long)grpc["port"]!);
        Assert.Equal("grpc", (string?)grpc["appProtocol"]);
        var http = ports.Single(p => (string?)p!["name"] == "http")!;
        Assert.Equal(9192, (long)http["port"]!);
        var containerPorts = Container(K8sTools.Single(docs, "Deployment", ServiceName))["ports"]!.AsArray()
            .ToDictionary(p => (string)p!["name"]!, p => (long)p!["containerPort"]!);
        Assert.Equal(9191, containerPorts[(string)grpc["targetPort"]!]);
        Assert.Equal(9192, containerPorts[(string)http["targetPort"]!]);
        // The ServiceMonitor scrapes the Service's http port at /metrics, selecting the Service's labels.
        var monitor = K8sTools.Single(docs, "ServiceMonitor", ServiceName);
        Assert.Equal("http", (string?)monitor["spec"]!["endpoints"]![0]!["port"]);
        Assert.Equal("/metrics", (string?)monitor["spec"]!["endpoints"]![0]!["path"]);
        var serviceLabels = K8sTools.Single(docs, "Service", ServiceName)["metadata"]!["labels"]!.AsObject();
        foreach (var (k, v) in monitor["spec"]!["selector"]!["matchLabels"]!.AsObject())
        {
            Assert.Equal((string?)v, (string?)serviceLabels[k]);
        }
    }

    [Fact]
    public async Task Dockerfile_AgreesWithTheDeployment_TheServiceAndTheMakefile()
    {
        var dockerfile = await File.ReadAllLinesAsync(RepoPaths.Of("k8s", "Dockerfile"), TestContext.Current.CancellationToken);
        var instructions = dockerfile.Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        // Multi-stage: the SDK builds, the ASP.NET runtime runs.
        var froms = instructions.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, froms.Count);
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", froms[0], StringComparison.Ordinal);
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:10.0", froms[1], StringComparison.Ordinal);
        var publish = instructions.Single(l => l.Contains("dotnet publish", StringComparison.Ordinal));
        var project = Regex.Match(publish, @"dotnet publish (\S+\.csproj)").Groups[1].Value;
        Assert.True(File.Exists(RepoPaths.Of(project)), project);
        var csproj = System.Xml.Linq.XDocument.Load(RepoPaths.Of(project));
        var assembly = csproj.Descendants("AssemblyName").Single().Value;
        // Everything COPYed from the context exists.
        foreach (var copy in instructions.Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from", StringComparison.Ordinal)))
        {
            var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var source in parts[1..^1])
            {
                Assert.True(File.Exists(RepoPaths.Of(source)) || Directory.Exists(RepoPaths.Of(source)), $"COPY source {source} missing");
            }
        }
        var runtime = instructions.SkipWhile(l => l != froms[1]).ToList();
        var user = long.Parse(runtime.Single(l => l.StartsWith("USER ", StringComparison.Ordinal))[5..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var exposed = runtime.Single(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal))[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToHashSet();
        var entrypoint = System.Text.Json.JsonSerializer.Deserialize<string[]>(runtime.Single(l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal))[11..])!;
        var cmd = System.Text.Json.JsonSerializer.Deserialize<string[]>(runtime.Single(l => l.StartsWith("CMD ", StringComparison.Ordinal))[4..])!;
        Assert.Equal(["dotnet", assembly + ".dll"], entrypoint);

        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var deployment = K8sTools.Single(docs, "Deployment", ServiceName);
        var c = Container(deployment);
        Assert.Equal(user, (long)deployment["spec"]!["template"]!["spec"]!["securityContext"]!["runAsUser"]!);
        Assert.Equal(exposed, c["ports"]!.AsArray().Select(p => (long)p!["containerPort"]!).ToHashSet());
        var args = c["args"]!.AsArray().Select(a => (string)a!).ToArray();
        Assert.Equal(cmd, args);
        // The image `make image` builds is the one the Deployment runs.
        var makefile = await File.ReadAllTextAsync(RepoPaths.Of("Makefile"), TestContext.Current.CancellationToken);
        var image = Regex.Match(makefile, @"^IMAGE \?= (\S+)$", RegexOptions.Multiline).Groups[1].Value;
        Assert.Equal(image, (string?)c["image"]);
        Assert.Contains("docker build -f k8s/Dockerfile -t $(IMAGE) .", makefile);
        // The verb and flags are the ones the service's CLI accepts, and the config file is what the config volume holds.
        Assert.Equal("serve", args[0]);
        var configPath = args[Array.IndexOf(args, "--config") + 1];
        var mount = c["volumeMounts"]!.AsArray().Single(m => configPath.StartsWith((string)m!["mountPath"]! + "/", StringComparison.Ordinal))!;
        var volume = deployment["spec"]!["template"]!["spec"]!["volumes"]!.AsArray().Single(v => (string?)v!["name"] == (string?)mount["name"])!;
        var configMap = K8sTools.Single(docs, "ConfigMap", (string)volume["configMap"]!["name"]!);
        Assert.NotNull(configMap["data"]![Path.GetFileName(configPath)]);
    }

    [Fact]
    public async Task ConfigMapConfig_LoadsThroughTheServicesOwnValidation_AndNamesTheMountedPolicy()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
        var deployment = K8sTools.Single(docs, "Deployment", ServiceName);
        var c = Container(deployment);
        var args = c["args"]!.AsArray().Select(a => (string)a!).ToArray();
        var configPath = args[Array.IndexOf(args, "--config") + 1];
        var configYaml = (string)K8sTools.ConfigMap(docs, "envoy-authz-config")["data"]![Path.GetFileName(configPath)]!;
        var policy = K8sTools.ConfigMap(docs, "envoy-authz-policy")["data"]!.AsObject();

        // The config names the folder the policy ConfigMap is mounted at, and the ports the container exposes.
        var config = K8sTools.Documents(configYaml).Single()["EnvoyAuthz"]!;
        var policyPath = (string)config["Policy"]!["Path"]!;
        var policyMount = c["volumeMounts"]!.AsArray().Single(m => (string?)m!["mountPath"] == policyPath)!;
        var policyVolume = deployment["spec"]!["template"]!["spec"]!["volumes"]!.AsArray().Single(v => (string?)v!["name"] == (string?)policyMount["name"])!;
        Assert.StartsWith("envoy-authz-policy", (string)policyVolume["configMap"]!["name"]!, StringComparison.Ordinal);
        var ports = c["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (long)p!["containerPort"]!);
        Assert.Equal(ports["grpc"], (long)config["Server"]!["GrpcPort"]!);
        Assert.Equal(ports["http"], (long)config["Server"]!["HttpPort"]!);

        // The service's own loader accepts the file (unknown keys and bad values are errors there),
        // with the policy folder laid out where this machine can read it.
        var dir = Directory.CreateTempSubdirectory("envoyauthz-k8s-config-").FullName;
        try
        {
            var file = Path.Combine(dir, Path.GetFileName(configPath));
            await File.WriteAllTextAsync(file, configYaml, TestContext.Current.CancellationToken);
            var policyDir = Directory.CreateDirectory(Path.Combine(dir, "policy")).FullName;
            foreach (var (name, content) in policy)
            {
                await File.WriteAllTextAsync(Path.Combine(policyDir, name), (string)content!, TestContext.Current.CancellationToken);
            }
            var (options, _) = AuthzHost.LoadConfiguration(file, dev: false, [new("EnvoyAuthz:Policy:Path", policyDir)]);
            Assert.Equal("rego", options.Policy.Engine);
            Assert.NotEmpty(options.Identity.Issuers);

            // The container's command line through the real entry point: `serve --config FILE` is
            // accepted and the file read; the only complaint on this machine is the container's policy path.
            var original = Console.Error;
            using var errors = new StringWriter();
            int exit;
            Console.SetError(errors);
            try
            {
                exit = await Program.Main([.. args.Select(a => a == configPath ? file : a)]);
            }
            finally
            {
                Console.SetError(original);
            }
            Assert.Equal(2, exit);
            Assert.Contains("invalid configuration (1 problem)", errors.ToString());
            Assert.Contains($"Policy:Path '{policyPath}'", errors.ToString());

            // The shipped policy passes its own Rego unit tests.
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            Assert.True(PolicyCommand.Run(["test", policyDir], stdout, stderr) == 0, stdout + "\n" + stderr);
            Assert.Matches(@"PASS: [1-9]\d*/[1-9]\d*", stdout.ToString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task EnvoyGateway_IsAValidV3Bootstrap_CallingTheServiceFailClosed()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("overlays/envoy"));
        var gateway = K8sTools.Single(docs, "Deployment", "airflow-envoy-gateway");
        var volume = gateway["spec"]!["template"]!["spec"]!["volumes"]!.AsArray().Single(v => v!["configMap"] is not null)!;
        var configMap = K8sTools.Single(docs, "ConfigMap", (string)volume["configMap"]!["name"]!);
        var bootstrap = ParseEnvoy((string)configMap["data"]!["envoy.yaml"]!);
        AssertCallsTheServiceFailClosed(bootstrap, docs);
        // The same configuration as envoy/ingress/envoy.yaml but for the in-cluster addresses: no drift.
        var ingress = ParseEnvoy(await File.ReadAllTextAsync(RepoPaths.Of("envoy", "ingress", "envoy.yaml"), TestContext.Current.CancellationToken));
        foreach (var cluster in ingress.StaticResources.Clusters)
        {
            cluster.LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address.SocketAddress.Address =
                bootstrap.StaticResources.Clusters.Single(c => c.Name == cluster.Name).LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address.SocketAddress.Address;
        }
        Assert.Equal(ingress, bootstrap);
        // The gateway's pods carry the label the NetworkPolicy admits.
        AssertAdmittedByNetworkPolicy(docs, gateway["spec"]!["template"]!["metadata"]!["labels"]!.AsObject());
    }

    [Fact]
    public async Task EgressPodTemplate_RendersTheTasksContextFromPodLabels_IntoAValidEnvoyConfig()
    {
        var egress = K8sTools.Documents(await K8sTools.RenderAsync("airflow-egress"));
        var template = (string)K8sTools.Single(egress, "ConfigMap", "airflow-envoy-egress")["data"]!["envoy.yaml.tmpl"]!;
        var podYaml = (string)K8sTools.Single(egress, "ConfigMap", "airflow-pod-template")["data"]!["pod_template_file.yaml"]!;
        Assert.Equal(await File.ReadAllTextAsync(RepoPaths.Of("k8s", "airflow-egress", "pod_template_file.yaml"), TestContext.Current.CancellationToken), podYaml);
        var pod = K8sTools.Documents(podYaml).Single();
        var spec = pod["spec"]!;
        // Airflow's KubernetesExecutor fills in the container named `base`.
        Assert.Single(spec["containers"]!.AsArray(), c => (string?)c!["name"] == "base");
        var inits = spec["initContainers"]!.AsArray();
        var render = inits.Single(c => (string?)c!["name"] == "envoy-egress-config")!;
        var sidecar = inits.Single(c => (string?)c!["name"] == "envoy-egress")!;
        Assert.Equal("Always", (string?)sidecar["restartPolicy"]); // a native sidecar: the pod completes with the task
        Assert.True(inits.IndexOf(render) < inits.IndexOf(sidecar));
        var templateVolume = spec["volumes"]!.AsArray().Single(v => (string?)v!["name"] == "envoy-template")!;
        Assert.Equal("airflow-envoy-egress", (string?)templateVolume["configMap"]!["name"]);
        // The task context comes from the pod's labels (downward API), which the task cannot change.
        var env = render["env"]!.AsArray().ToDictionary(e => (string)e!["name"]!, e => (string)e!["valueFrom"]!["fieldRef"]!["fieldPath"]!);
        Assert.Equal("metadata.labels['dag_id']", env["AIRFLOW_DAG_ID"]);
        Assert.Equal("metadata.labels['task_id']", env["AIRFLOW_TASK_ID"]);

        // Run the init container's own command (sh + sed) on this machine, with its paths moved to a temp folder.
        var dir = Directory.CreateTempSubdirectory("envoyauthz-egress-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "template"));
            Directory.CreateDirectory(Path.Combine(dir, "out"));
            await File.WriteAllTextAsync(Path.Combine(dir, "template", "envoy.yaml.tmpl"), template, TestContext.Current.CancellationToken);
            var command = render["command"]!.AsArray().Select(a => (string)a!).ToArray();
            Assert.Equal(["sh", "-c"], command[..2]);
            var script = command[2].Replace("/etc/envoy-template/", Path.Combine(dir, "template") + "/", StringComparison.Ordinal)
                .Replace("/etc/envoy/", Path.Combine(dir, "out") + "/", StringComparison.Ordinal);
            var (exit, _, err) = await K8sTools.RunAsync("/bin/sh", ["-c", script], dir, new Dictionary<string, string>
            {
                ["AIRFLOW_DAG_ID"] = "etl_daily",
                ["AIRFLOW_TASK_ID"] = "extract.partner-api",
                ["AIRFLOW_RUN_ID"] = "scheduled__2026-12-01T0000000000-4f1c2a9b1",
                ["AIRFLOW_TRY_NUMBER"] = "2",
            });
            Assert.True(exit == 0, err);
            var rendered = await File.ReadAllTextAsync(Path.Combine(dir, "out", "envoy.yaml"), TestContext.Current.CancellationToken);
            Assert.DoesNotContain("__AIRFLOW_", rendered);
            var bootstrap = ParseEnvoy(rendered);
            var hcm = bootstrap.StaticResources.Listeners[0].FilterChains[0].Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
            var routes = hcm.RouteConfig.VirtualHosts.Where(v => v.TypedPerFilterConfig.ContainsKey("envoy.filters.http.ext_authz")).ToList();
            Assert.NotEmpty(routes);
            foreach (var vhost in routes)
            {
                var ctx = vhost.TypedPerFilterConfig["envoy.filters.http.ext_authz"].Unpack<ExtAuthzPerRoute>().CheckSettings.ContextExtensions;
                Assert.False(string.IsNullOrEmpty(ctx["airflow_conn_id"]));
                Assert.Equal("etl_daily", ctx["airflow_dag_id"]);
                Assert.Equal("extract.partner-api", ctx["airflow_task_id"]);
                Assert.Equal("scheduled__2026-12-01T0000000000-4f1c2a9b1", ctx["airflow_run_id"]);
                Assert.Equal("2", ctx["airflow_try_number"]);
            }
            // The sidecar calls the envoy-authz Service fail closed, and the task pods are admitted clients.
            var baseDocs = K8sTools.Documents(await K8sTools.RenderAsync("base"));
            AssertCallsTheServiceFailClosed(bootstrap, baseDocs);
            AssertAdmittedByNetworkPolicy(baseDocs, pod["metadata"]!["labels"]!.AsObject());
            // The task's proxy is the sidecar's listener.
            var listener = bootstrap.StaticResources.Listeners[0].Address.SocketAddress;
            var baseEnv = spec["containers"]![0]!["env"]!.AsArray().ToDictionary(e => (string)e!["name"]!, e => (string?)e!["value"]);
            Assert.Equal($"http://{listener.Address}:{listener.PortValue}", baseEnv["HTTP_PROXY"]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task IstioProvider_NamesTheService_AndTheAuthorizationPolicyUsesIt()
    {
        var docs = K8sTools.Documents(await K8sTools.RenderAsync("overlays/istio"));
        var mesh = K8sTools.Documents(await File.ReadAllTextAsync(RepoPaths.Of("k8s", "overlays", "istio", "mesh-config.yaml"), TestContext.Current.CancellationToken)).Single();
        var provider = mesh["spec"]!["meshConfig"]!["extensionProviders"]![0]!;
        var grpc = provider["envoyExtAuthzGrpc"]!;
        Assert.Equal(ServiceHost, (string?)grpc["service"]);
        var servicePort = K8sTools.Single(docs, "Service", ServiceName)["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["appProtocol"] == "grpc")!;
        Assert.Equal((long)servicePort["port"]!, (long)grpc["port"]!);
        Assert.False((bool)grpc["failOpen"]!);
        Assert.True(TimeSpan.FromSeconds(double.Parse(((string)grpc["timeout"]!).TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture)) <= TimeSpan.FromMilliseconds(250));
        var policy = docs.Single(d => (string?)d["kind"] == "AuthorizationPolicy");
        Assert.Equal("CUSTOM", (string?)policy["spec"]!["action"]);
        Assert.Equal((string?)provider["name"], (string?)policy["spec"]!["provider"]!["name"]);
        // The service runs in the mesh; 9192 (probes, metrics) bypasses the sidecar; gRPC is admitted from the mesh.
        var template = K8sTools.Single(docs, "Deployment", ServiceName)["spec"]!["template"]!["metadata"]!;
        Assert.Equal("true", (string?)template["labels"]!["sidecar.istio.io/inject"]);
        Assert.Equal("9192", (string?)template["annotations"]!["traffic.sidecar.istio.io/excludeInboundPorts"]);
        var ingress = K8sTools.Single(docs, "NetworkPolicy", ServiceName)["spec"]!["ingress"]!.AsArray();
        Assert.Contains(ingress, r => r!["from"]!.AsArray().Any(f => (string?)f!["namespaceSelector"]?["matchLabels"]?["istio-injection"] == "enabled")
            && r["ports"]!.AsArray().Any(p => (string?)p!["port"] == "grpc"));
    }

    [Fact]
    public async Task NetworkPolicy_PortsAreTheContainersNamedPorts()
    {
        foreach (var k in new[] { "base", "overlays/istio" })
        {
            var docs = K8sTools.Documents(await K8sTools.RenderAsync(k));
            var names = Container(K8sTools.Single(docs, "Deployment", ServiceName))["ports"]!.AsArray().Select(p => (string)p!["name"]!).ToHashSet();
            var np = K8sTools.Single(docs, "NetworkPolicy", ServiceName)["spec"]!;
            Assert.Equal(ServiceName, (string?)np["podSelector"]!["matchLabels"]!["app.kubernetes.io/name"]);
            foreach (var rule in np["ingress"]!.AsArray())
            {
                foreach (var port in rule!["ports"]!.AsArray())
                {
                    Assert.Contains((string)port!["port"]!, names);
                }
            }
            // Prometheus (namespace monitoring) may scrape the http port.
            Assert.Contains(np["ingress"]!.AsArray(), r => r!["from"]!.AsArray().Any(f => (string?)f!["namespaceSelector"]?["matchLabels"]?["kubernetes.io/metadata.name"] == "monitoring"));
        }
    }

    private static JsonNode Container(JsonObject deployment) =>
        deployment["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Single(c => (string?)c!["name"] == ServiceName)!;

    private static Bootstrap ParseEnvoy(string yaml)
    {
        var json = K8sTools.Documents(yaml).Single().ToJsonString();
        return new JsonParser(JsonParser.Settings.Default.WithTypeRegistry(EnvoyTypes)).Parse<Bootstrap>(json);
    }

    private static void AssertCallsTheServiceFailClosed(Bootstrap bootstrap, List<JsonObject> serviceDocs)
    {
        var grpcPort = (long)K8sTools.Single(serviceDocs, "Service", ServiceName)["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["name"] == "grpc")!["port"]!;
        var managers = bootstrap.StaticResources.Listeners.SelectMany(l => l.FilterChains).SelectMany(c => c.Filters)
            .Where(f => f.Name == "envoy.filters.network.http_connection_manager")
            .Select(f => f.TypedConfig.Unpack<HttpConnectionManager>()).ToList();
        Assert.NotEmpty(managers);
        foreach (var hcm in managers)
        {
            var filter = hcm.HttpFilters.Single(f => f.Name == "envoy.filters.http.ext_authz").TypedConfig.Unpack<ExtAuthz>();
            Assert.False(filter.FailureModeAllow);
            Assert.Equal(global::Envoy.Config.Core.V3.ApiVersion.V3, filter.TransportApiVersion);
            var cluster = bootstrap.StaticResources.Clusters.Single(c => c.Name == filter.GrpcService.EnvoyGrpc.ClusterName);
            Assert.NotNull(cluster.TypedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]); // h2c
            var address = cluster.LoadAssignment.Endpoints.Single().LbEndpoints.Single().Endpoint.Address.SocketAddress;
            Assert.Equal(ServiceHost, address.Address);
            Assert.Equal(grpcPort, address.PortValue);
        }
    }

    private static void AssertAdmittedByNetworkPolicy(List<JsonObject> docs, JsonObject podLabels)
    {
        var np = K8sTools.Single(docs, "NetworkPolicy", ServiceName)["spec"]!;
        Assert.Contains(np["ingress"]!.AsArray(), rule =>
            rule!["ports"]!.AsArray().Any(p => (string?)p!["port"] == "grpc") &&
            rule["from"]!.AsArray().Any(f => f!["podSelector"]?["matchLabels"] is JsonObject match &&
                match.All(kv => (string?)podLabels[kv.Key] == (string?)kv.Value)));
    }
}
