#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: every resource deploy/kubernetes/kustomization.yaml
# lists, strictly (an unknown or misplaced field fails), against the schemas that
# kubernetes-validate (PyPI, installed into target/) ships for the Kubernetes version below; then
# deploy/prometheus/ against them.
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

# deploy/prometheus/ is outside the base (the PodMonitor's kind needs the Operator's CRD), so it
# is checked against the base instead: both must select the API pods by the labels they carry,
# name their port, and send a bearer token to /metrics.
"$venv/bin/python" - "$base" deploy/prometheus <<'PY'
import re, sys, yaml

base, prometheus = sys.argv[1], sys.argv[2]
kustomization = yaml.safe_load(open(f"{base}/kustomization.yaml"))
deployment = yaml.safe_load(open(f"{base}/deployment.yaml"))
pod = deployment["spec"]["template"]
labels = dict(pod["metadata"]["labels"])
for entry in kustomization.get("labels", []):
    labels.update(entry["pairs"])
ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
problems = []

monitor = yaml.safe_load(open(f"{prometheus}/pod-monitor.yaml"))
selected = monitor["spec"]["selector"]["matchLabels"]
if not selected.items() <= labels.items():
    problems.append(f"pod-monitor.yaml selects {selected}; the pods carry {labels}")
for endpoint in monitor["spec"]["podMetricsEndpoints"]:
    if endpoint.get("port") not in ports:
        problems.append(f"pod-monitor.yaml scrapes port {endpoint.get('port')!r}; the pods name {ports}")
    if endpoint.get("path") != "/metrics" or endpoint.get("authorization", {}).get("type") != "Bearer":
        problems.append("pod-monitor.yaml must scrape /metrics with a Bearer authorization")

job = yaml.safe_load(open(f"{prometheus}/scrape-config.yml"))["scrape_configs"][0]
if job.get("metrics_path") != "/metrics" or job.get("authorization", {}).get("type") != "Bearer":
    problems.append("scrape-config.yml must scrape /metrics with a Bearer authorization")
meta = lambda label: "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)
for rule in job["relabel_configs"]:
    if rule.get("action") != "keep":
        continue
    sources = rule["source_labels"]
    if sources == ["__meta_kubernetes_pod_container_port_name"]:
        values = [next(iter(ports), "")]
    else:
        by_meta = {meta(k): v for k, v in labels.items()}
        values = [by_meta.get(source, "") for source in sources]
    if not re.fullmatch(rule["regex"], ";".join(values)):
        problems.append(f"scrape-config.yml keeps {rule['regex']!r} of {sources}, which the pods give as {values}")
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo "deploy/prometheus/ selects the API pods and scrapes /metrics with a bearer token" >&2
