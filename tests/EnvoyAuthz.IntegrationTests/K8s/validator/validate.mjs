// Validates Kubernetes manifests (multi-document YAML, e.g. `kubectl kustomize` output) offline:
//
//   node validate.mjs FILE.yaml...
//
// Every document is checked against its kind's schema from the pinned npm packages
// kubernetes-models (core, apps, autoscaling, policy, networking), @kubernetes-models/prometheus-operator
// (ServiceMonitor, PrometheusRule) and @kubernetes-models/istio (AuthorizationPolicy, IstioOperator):
// required fields, types, enums and formats, as those packages' validators check them.
//
// Unknown fields are errors too (the packages' validators accept them, as the OpenAPI schemas carry
// no additionalProperties: false). The document is validated through a Proxy that records every
// property name the validator asks for; in an object whose schema names its properties (the
// validator asked for at least one name), a key it never asked for is not in the schema. Objects
// the schema leaves free-form (the validator asks for nothing) are not judged.
//
// IstioOperator's spec is free-form in the Istio package; its meshConfig.extensionProviders (the
// part EnvoyAuthz ships) is checked against the fields of Istio's MeshConfig.ExtensionProvider
// for an ext_authz gRPC provider, strictly.
//
// Output: one line per document, "ok <apiVersion> <kind> <namespace>/<name>" or
// "error <apiVersion> <kind> <namespace>/<name>: <problems>"; exit code 1 when any document fails.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const models = {
  "v1": (kind) => `kubernetes-models/v1/${kind}`,
  "monitoring.coreos.com": (kind, version) => `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`,
  "security.istio.io": (kind, version) => `@kubernetes-models/istio/security.istio.io/${version}/${kind}`,
  "networking.istio.io": (kind, version) => `@kubernetes-models/istio/networking.istio.io/${version}/${kind}`,
  "install.istio.io": (kind, version) => `@kubernetes-models/istio/install.istio.io/${version}/${kind}`,
};

function modulePath(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) {
    return null;
  }
  if (apiVersion === "v1") {
    return models.v1(kind);
  }
  const [group, version] = apiVersion.split("/");
  if (!version) {
    return null;
  }
  const special = models[group];
  return special ? special(kind, version) : `kubernetes-models/${group}/${version}/${kind}`;
}

async function loadModel(apiVersion, kind) {
  const path = modulePath(apiVersion, kind);
  if (!path) {
    return null;
  }
  try {
    const mod = await import(path);
    return mod[kind] ?? null;
  } catch {
    return null;
  }
}

/** Wraps `root` so that every property name read on any object inside it is recorded. */
function tracked(root) {
  const asked = new WeakMap();
  const proxies = new WeakMap();
  const wrap = (value) => {
    if (value === null || typeof value !== "object") {
      return value;
    }
    let p = proxies.get(value);
    if (!p) {
      asked.set(value, new Set());
      p = new Proxy(value, {
        get(target, key, receiver) {
          if (typeof key === "string") {
            asked.get(target).add(key);
          }
          return wrap(Reflect.get(target, key, receiver));
        },
      });
      proxies.set(value, p);
    }
    return p;
  };
  return { proxy: wrap(root), asked };
}

/** Keys present in typed objects that the validator never asked for, as JSON-pointer-ish paths. */
function unknownFields(value, asked, path, out, skip = new Set()) {
  if (skip.has(path)) {
    return out;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, asked, `${path}/${i}`, out, skip));
    return out;
  }
  if (value === null || typeof value !== "object") {
    return out;
  }
  const names = asked.get(value);
  const typed = names !== undefined && names.size > 0;
  for (const key of Object.keys(value)) {
    if (typed && !names.has(key) && !skip.has(`${path}/${key}`)) {
      out.push(`${path}/${key}: unknown field`);
    }
    unknownFields(value[key], asked, `${path}/${key}`, out, skip);
  }
  return out;
}

// Istio MeshConfig.ExtensionProvider (istio.mesh.v1alpha1), the ext_authz gRPC provider's fields.
const grpcProviderFields = {
  service: (v) => typeof v === "string" && v.length > 0,
  port: (v) => Number.isInteger(v) && v > 0 && v < 65536,
  timeout: (v) => typeof v === "string" && /^\d+(\.\d+)?(s|ms)$/.test(v),
  failOpen: (v) => typeof v === "boolean",
  clearRouteCache: (v) => typeof v === "boolean",
  statusOnError: (v) => typeof v === "string" && /^[1-5]\d\d$/.test(v),
  includeRequestBodyInCheck: (v, errs, path) => strictObject(v, {
    maxRequestBytes: (n) => Number.isInteger(n) && n >= 0,
    allowPartialMessage: (b) => typeof b === "boolean",
    packAsBytes: (b) => typeof b === "boolean",
  }, errs, path),
};

function strictObject(value, fields, errs, path, required = []) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    errs.push(`${path}: must be an object`);
    return true; // reported
  }
  for (const key of required) {
    if (!(key in value)) {
      errs.push(`${path}/${key}: required`);
    }
  }
  for (const [key, v] of Object.entries(value)) {
    const check = fields[key];
    if (!check) {
      errs.push(`${path}/${key}: unknown field`);
    } else if (check(v, errs, `${path}/${key}`) === false) {
      errs.push(`${path}/${key}: invalid value ${JSON.stringify(v)}`);
    }
  }
  return true;
}

function checkIstioOperator(doc, errs) {
  const spec = doc.spec ?? {};
  strictObject(spec, { meshConfig: () => true }, errs, "/spec");
  const mesh = spec.meshConfig;
  if (mesh === undefined) {
    return;
  }
  strictObject(mesh, { extensionProviders: () => true }, errs, "/spec/meshConfig");
  const providers = mesh.extensionProviders;
  if (!Array.isArray(providers)) {
    errs.push("/spec/meshConfig/extensionProviders: must be a list");
    return;
  }
  providers.forEach((p, i) => {
    const path = `/spec/meshConfig/extensionProviders/${i}`;
    strictObject(p, {
      name: (v) => typeof v === "string" && v.length > 0,
      envoyExtAuthzGrpc: (v, e, at) => strictObject(v, grpcProviderFields, e, at, ["service", "port"]),
    }, errs, path, ["name", "envoyExtAuthzGrpc"]);
  });
}

async function validateDocument(doc) {
  const errs = [];
  const Model = await loadModel(doc.apiVersion, doc.kind);
  if (!Model) {
    return [`no schema for apiVersion ${JSON.stringify(doc.apiVersion)} kind ${JSON.stringify(doc.kind)}`];
  }
  const { proxy, asked } = tracked(doc);
  try {
    Model.prototype.validate.call(proxy);
  } catch (e) {
    errs.push(e.message);
  }
  // IstioOperator: the package leaves spec free-form; checkIstioOperator judges it instead.
  unknownFields(doc, asked, "", errs, new Set(doc.kind === "IstioOperator" ? ["/spec"] : []));
  if (doc.kind === "IstioOperator") {
    checkIstioOperator(doc, errs);
  }
  return errs;
}

let failed = false;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" });
  for (const d of docs) {
    if (d.errors.length > 0) {
      console.log(`error ${file}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      failed = true;
      continue;
    }
    const doc = d.toJS();
    if (doc === null || doc === undefined) {
      continue;
    }
    const id = `${doc.apiVersion} ${doc.kind} ${doc.metadata?.namespace ?? ""}/${doc.metadata?.name ?? ""}`;
    const errs = await validateDocument(doc);
    if (errs.length > 0) {
      failed = true;
      console.log(`error ${id}: ${errs.join("; ")}`);
    } else {
      console.log(`ok ${id}`);
    }
  }
}
process.exit(failed ? 1 : 0);
