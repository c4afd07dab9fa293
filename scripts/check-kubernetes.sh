#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: every resource deploy/kubernetes/kustomization.yaml
# lists, strictly (an unknown or misplaced field fails), against the schemas that
# kubernetes-validate (PyPI, installed into target/) ships for the Kubernetes version below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.34.0}

venv=target/kubernetes-validate-venv
if ! "$venv/bin/pip" show kubernetes-validate 2>/dev/null |
  grep -qx "Version: $KUBERNETES_VALIDATE_VERSION"; then
  echo "Installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

base=deploy/kubernetes
mapfile -t resources < <("$venv/bin/python" -c '
import sys, yaml
for resource in yaml.safe_load(open(sys.argv[1]))["resources"]:
    print(resource)
' "$base/kustomization.yaml")
[ ${#resources[@]} -gt 0 ] || { echo "error: $base/kustomization.yaml lists no resources" >&2; exit 1; }
# Every manifest in the folder is listed, so none is forgotten by `kubectl apply -k`.
for file in "$base"/*.yaml; do
  name=$(basename "$file")
  [ "$name" = kustomization.yaml ] && continue
  printf '%s\n' "${resources[@]}" | grep -qx "$name" ||
    { echo "error: $file is not listed in $base/kustomization.yaml" >&2; exit 1; }
done

(cd "$base" && "$root/$venv/bin/kubernetes-validate" --strict \
  --kubernetes-version "$KUBERNETES_VERSION" "${resources[@]}")
