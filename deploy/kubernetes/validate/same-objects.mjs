// same-objects.mjs A.yaml B.yaml: exits 1 unless both files hold the same
// set of objects (YAML comments, key order and document order aside).
// scripts/validate-k8s.sh uses it to check that `kubectl kustomize` of the
// base equals the plain concatenation of its resources, the fallback
// used where kubectl is not installed.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const prefix = process.env.SPECULA_K8S_VALIDATE_DIR || "/opt/specula/k8s-validate";
const YAML = createRequire(`${prefix}/package.json`)("yaml");
const canon = (v) => Array.isArray(v) ? v.map(canon)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;
const load = (f) => YAML.parseAllDocuments(readFileSync(f, "utf8")).map((d) => d.toJS())
  .filter((o) => o != null).map((o) => JSON.stringify(canon(o))).sort();
const [a, b] = process.argv.slice(2).map(load);
const onlyA = a.filter((x) => !b.includes(x)), onlyB = b.filter((x) => !a.includes(x));
if (onlyA.length || onlyB.length) {
  for (const x of onlyA) console.log(`same-objects: only in ${process.argv[2]}: ${x.slice(0, 300)}`);
  for (const x of onlyB) console.log(`same-objects: only in ${process.argv[3]}: ${x.slice(0, 300)}`);
  process.exit(1);
}
console.log(`same-objects: ${a.length} object(s) identical`);
