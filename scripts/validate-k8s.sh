#!/usr/bin/env bash
# Validates deploy/kubernetes offline (no cluster): renders the kustomize
# base (kubectl kustomize; without kubectl, the plain concatenation of the
# base's resources, which the base keeps equivalent: every resource names
# its namespace and the image tag kustomization.yaml sets), adds the
# examples, and checks every object against the Kubernetes schemas with
# deploy/kubernetes/validate/validate.mjs. Then checks that the validator
# rejects testdata/broken.yaml, so a validator that accepts anything fails.
# Needs node and the pinned npm packages scripts/setup.sh installs into
# /opt/specula/k8s-validate (SPECULA_K8S_VALIDATE_DIR). CTest:
# KubernetesManifestsValidate (label unit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k8s=$root/deploy/kubernetes
validator=$k8s/validate/validate.mjs
command -v node >/dev/null 2>&1 || { echo "validate-k8s: node not installed (scripts/setup.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The `resources:` list of kustomization.yaml, in order, concatenated.
awk '/^resources:/{r=1; next} r && /^  - /{print $2; next} r && !/^ *#/{r=0}' "$k8s/kustomization.yaml" |
  while read -r f; do cat "$k8s/$f"; printf '\n---\n'; done > "$tmp/concat.yaml"
if [ "${SPECULA_K8S_NO_KUBECTL:-0}" != 1 ] && command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$k8s" > "$tmp/base.yaml"
  echo "validate-k8s: rendered with $(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'kubectl kustomize')"
  # Keep the fallback honest: the concatenation must be the same objects.
  node "$k8s/validate/same-objects.mjs" "$tmp/base.yaml" "$tmp/concat.yaml"
else
  echo "validate-k8s: kubectl not installed: validating the concatenated resources"
  cp "$tmp/concat.yaml" "$tmp/base.yaml"
fi
grep -q '^kind: DaemonSet$' "$tmp/base.yaml" || { echo "validate-k8s: the base renders no DaemonSet" >&2; exit 1; }

node "$validator" "$tmp/base.yaml" "$k8s"/examples/*.yaml

# Negative case: must fail, and name the objects and fields it breaks.
if node "$validator" "$k8s/validate/testdata/broken.yaml" > "$tmp/broken.out"; then
  echo "validate-k8s: the validator accepted testdata/broken.yaml" >&2; exit 1
fi
for want in 'Pod/-/containers-not-a-list: /spec/containers must be array' \
            'DaemonSet/-/wrong-types: /spec/template/spec/hostPID must be boolean' \
            'Service/-/missing-port: /spec/ports/0 must have required property'; do
  grep -qF "$want" "$tmp/broken.out" || { echo "validate-k8s: broken.yaml: missing error '$want'" >&2; cat "$tmp/broken.out" >&2; exit 1; }
done
echo "validate-k8s: testdata/broken.yaml rejected as expected ($(grep -c '^validate: .*doc' "$tmp/broken.out") errors)"
