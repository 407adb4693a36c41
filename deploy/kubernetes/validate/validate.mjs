// Validates Kubernetes manifests offline against the Kubernetes OpenAPI
// schemas compiled into the `kubernetes-models` npm package (pinned in
// package-lock.json, installed by scripts/setup.sh into
// /opt/specula/k8s-validate). No cluster is needed, so CI can run it.
//
//   node validate.mjs FILE|- ...     (multi-document YAML; - is stdin)
//   env SPECULA_K8S_VALIDATE_DIR     the npm prefix (default /opt/specula/k8s-validate)
//
// Prints one line per error, "validate: SOURCE: doc N Kind/namespace/name:
// /field/path message", and exits 1 on any error, 0 when every object is
// valid. What it cannot see: unknown (misspelt) fields, since the Kubernetes
// schemas allow additional properties, and anything only an API server or
// admission controller decides (Pod Security, quotas, CRDs).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const prefix = process.env.SPECULA_K8S_VALIDATE_DIR || "/opt/specula/k8s-validate";
const require = createRequire(`${prefix}/package.json`);
let YAML;
try {
  YAML = require("yaml");
  require("kubernetes-models/v1");
} catch (e) {
  console.error(`validate: cannot load yaml/kubernetes-models from ${prefix} (run scripts/setup.sh): ${e.message}`);
  process.exit(2);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: validate.mjs FILE|- ...");
  process.exit(2);
}

let errors = 0, objects = 0;
const seen = new Map();
const fail = (where, msg) => { errors++; console.log(`validate: ${where}: ${msg}`); };

// apiVersion "v1" is the core group (kubernetes-models/v1); "apps/v1" is
// kubernetes-models/apps/v1, and so on for every built-in group.
function modelFor(apiVersion, kind) {
  let mod;
  try { mod = require(`kubernetes-models/${apiVersion}`); } catch { return null; }
  return typeof mod[kind] === "function" ? mod[kind] : null;
}

for (const file of files) {
  const text = readFileSync(file === "-" ? 0 : file, "utf8");
  const source = file === "-" ? "<stdin>" : file;
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  docs.forEach((doc, i) => {
    const at = `${source}: doc ${i + 1}`;
    for (const e of doc.errors) fail(at, `YAML: ${e.message.split("\n")[0]}`);
    if (doc.errors.length) return;
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return;  // empty document (e.g. trailing ---)
    if (typeof obj !== "object" || Array.isArray(obj)) return fail(at, "not a mapping");
    const { apiVersion, kind } = obj;
    const name = obj.metadata?.name;
    const id = `${kind}/${obj.metadata?.namespace ?? "-"}/${name}`;
    if (typeof apiVersion !== "string" || typeof kind !== "string") return fail(at, "apiVersion and kind are required strings");
    if (typeof name !== "string" || name === "") fail(`${at} ${id}`, "/metadata/name is required");
    const key = `${apiVersion} ${id}`;
    if (seen.has(key)) fail(`${at} ${id}`, `duplicate object (also ${seen.get(key)})`);
    seen.set(key, at);
    const Model = modelFor(apiVersion, kind);
    if (!Model) return fail(`${at} ${id}`, `no schema for ${apiVersion} ${kind} (not a built-in Kubernetes kind)`);
    objects++;
    try {
      new Model(obj).validate();
    } catch (e) {
      if (!Array.isArray(e.errors)) return fail(`${at} ${id}`, e.message);
      for (const err of e.errors) {
        const extra = err.params?.missingProperty ? ` (${err.params.missingProperty})`
          : err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : "";
        fail(`${at} ${id}`, `${err.instancePath || "/"} ${err.message}${extra}`);
      }
    }
  });
}
if (errors) {
  console.log(`validate: ${errors} error(s) in ${files.join(" ")}`);
  process.exit(1);
}
console.log(`validate: ${objects} object(s) valid (${files.join(" ")})`);
