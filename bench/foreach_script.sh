#!/usr/bin/env bash
# The marketplace's loop over a list in the request, for bench/scenarios/foreach.py: one `yq`
# for the list's length, one per field of each item, and a heredoc per document: a file per
# user (users/NAME.yaml) and every user's document in one file of several (all.yaml).
#
# Changes from the marketplace's scripts: `set -o pipefail`, and Debian's yq (a Python wrapper
# around jq, which takes jq's syntax) when the Go yq of the marketplace's images is not on PATH.
set -euo pipefail

input="$KRATIX_INPUT_DIR/object.yaml"
out="$KRATIX_OUTPUT_DIR"

if yq --version 2>&1 | grep -q mikefarah; then
  get() { yq eval "$1" "$input"; }
else
  get() { yq -r "$1" "$input"; }
fi

count="$(get '.spec.users | length')"
mkdir -p "$out/users"
: >"$out/all.yaml"
for i in $(seq 0 $((count - 1))); do
  name="$(get ".spec.users[$i].name")"
  role="$(get ".spec.users[$i].role")"
  cat >"$out/users/$name.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: user-${name}
data:
  role: "${role}"
  index: "${i}"
EOF
  if [ "$i" -gt 0 ]; then echo '---' >>"$out/all.yaml"; fi
  cat >>"$out/all.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${name}
  labels:
    role: "${role}"
EOF
done
