#!/usr/bin/env bash
# The Kratix tutorial's create-bucket script (seeds/000_927aa4df241a8928.txt, "store and
# retrieve the state"), kept line for line except that terraform is replaced by the benchmark's
# trivial command. bench/run.py times it against `runner run`; it is not part of the product.
#
# What differs from the tutorial, and why:
#   * `terraform init` is dropped and `terraform apply` becomes a bash that appends a line to
#     state.tfstate: the same argv the runner's bench step runs (a process, as terraform is).
#   * /kratix/input and /terraform can be moved with KRATIX_INPUT_DIR and TERRAFORM_DIR.
#   * `yq -r`: the tutorial's Go yq prints raw strings by default; Debian's yq (a Python jq
#     wrapper) needs -r for that. Go yq v4 accepts -r too (--unwrapScalar).
#   * SEED_REPLACE_FLAGS is added to `kubectl replace` (bench/run.py passes --validate=false
#     only when the API server serves no OpenAPI document, as the loopback one doesn't).
#   * With SEED_TIMES=FILE, phase boundaries are appended to FILE (bash's $EPOCHREALTIME: a
#     builtin, no process started) so the benchmark can take the yq and kubectl parts apart.
# kubectl reads KUBECONFIG and KUBECACHEDIR from the environment, as in a pod.

set -euxo pipefail

mark() { if [[ -n "${SEED_TIMES:-}" ]]; then echo "$1 $EPOCHREALTIME" >> "$SEED_TIMES"; fi; }

mark start
name=$(yq -r '.metadata.name' "${KRATIX_INPUT_DIR:-/kratix/input}/object.yaml")
namespace=$(yq -r '.metadata.namespace' "${KRATIX_INPUT_DIR:-/kratix/input}/object.yaml")
mark inputs

cd "${TERRAFORM_DIR:-/terraform}"
# terraform init  (replaced: nothing to initialise)

# Check if the state exists and retrieve it if so
if kubectl get configmap ${name}-state; then
  kubectl get configmap ${name}-state \
    --output=jsonpath='{.data.tfstate}' \
    > state.tfstate
fi
mark restored

# terraform apply -auto-approve --var="bucket_name=${name}.${namespace}"  (replaced:)
bash -c 'echo "applied $$" >> state.tfstate'
mark applied

# Store the state in a ConfigMap
kubectl create configmap ${name}-state \
  --from-file=tfstate=state.tfstate \
  --dry-run=client \
  --output=yaml > configmap.yaml
kubectl replace --filename configmap.yaml --force ${SEED_REPLACE_FLAGS:-}
mark saved
