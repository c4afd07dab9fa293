#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: every resource deploy/kubernetes/kustomization.yaml
# lists, strictly (an unknown or misplaced field fails), against the schemas that
# kubernetes-validate (PyPI, installed into target/) ships for the Kubernetes version below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.34.0}

venv=target/kubernetes-validate-venv
python_tool "$venv" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

base=deploy/kubernetes
mapfile -t resources < <("$venv/bin/python" -c '
import sys, yaml
for resource in yaml.safe_load(open(sys.argv[1]))["resources"]:
    print(resource)
' "$base/kustomization.yaml")
[ ${#resources[@]} -gt 0 ] || die "$base/kustomization.yaml lists no resources"
# Every manifest in the folder is listed, so none is forgotten by `kubectl apply -k`.
for file in "$base"/*.yaml; do
  name=$(basename "$file")
  [ "$name" = kustomization.yaml ] && continue
  printf '%s\n' "${resources[@]}" | grep -qx "$name" ||
    die "$file is not listed in $base/kustomization.yaml"
done

(cd "$base" && "$root/$venv/bin/kubernetes-validate" --strict \
  --kubernetes-version "$KUBERNETES_VERSION" "${resources[@]}")
