#!/usr/bin/env bash
# The Kratix marketplace's way of rendering a request's manifests, for bench/scenarios/manifests.py:
# read the request with one `yq` per field, change a base file with one `yq eval` per field,
# piped, as redis/internal/configure-pipeline/execute-pipeline does
#     cat redis-instance.yaml | yq eval '.metadata.name = env(name)' | yq eval ... > out.yaml
# and write other documents with a heredoc, as namespace/internal/configure-pipeline does.
# MANIFESTS files in all: the first half Deployments from MANIFESTS_BASE, the rest Services.
#
# Changes from the marketplace's scripts: a loop over the files (their Promises write one or
# two), `set -o pipefail`, exports apart from the yq calls, and Debian's yq (a Python wrapper
# around jq, which takes jq's syntax) when the Go yq of the marketplace's images is not on PATH.
set -euo pipefail

input="$KRATIX_INPUT_DIR/object.yaml"
out="$KRATIX_OUTPUT_DIR"

if yq --version 2>&1 | grep -q mikefarah; then
  get() { yq eval "$1" "$input"; }
  # Go yq's env() parses the variable as YAML: replicas=3 is the number 3.
  set_from_env() { yq eval "$1 = env($2)" -; }
else
  get() { yq -r "$1" "$input"; }
  # The same typing in jq's syntax: a variable that parses (3) is that value, else a string.
  set_from_env() { yq -y "$1 = (\$ENV.$2 | . as \$v | try fromjson catch \$v)"; }
fi

# (Assigned, then exported: `export x="$(...)"` would hide a failing yq from `set -e`.)
name="$(get .metadata.name)"
namespace="$(get '.metadata.namespace // "default"')"
image="$(get .spec.image)"
size="$(get '.spec.size // "small"')"
port="$(get '.spec.port // 80')"
export name image

export replicas=1
if [ "$size" = large ]; then
  replicas=3
fi

half=$((MANIFESTS / 2))
mkdir -p "$out/deployments" "$out/services"
for i in $(seq 1 "$half"); do
  export deployment="$name-$i"
  set_from_env .metadata.name deployment <"$MANIFESTS_BASE" |
    set_from_env .spec.replicas replicas |
    set_from_env '.spec.template.spec.containers[0].image' image \
      >"$out/deployments/$i.yaml"
done

for i in $(seq $((half + 1)) "$MANIFESTS"); do
  cat >"$out/services/$i.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: ${name}-${i}
  namespace: ${namespace}
  labels:
    app: ${name}
spec:
  selector:
    app: ${name}
  ports:
  - port: ${port}
    targetPort: 8080
EOF
done
