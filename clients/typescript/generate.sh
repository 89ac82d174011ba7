#!/usr/bin/env bash
# Regenerates the TypeScript code of proto/inferd/v1 (and of the vendored google.rpc and
# grpc.health.v1 protos in clients/typescript/proto) into OUT (default: src/gen), with the buf
# and protoc-gen-es that setup.sh installed (pinned in package-lock.json). Same bytes every run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/src/gen}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
buf="$here/node_modules/.bin/buf"
[ -x "$buf" ] && [ -x "$here/node_modules/.bin/protoc-gen-es" ] || { echo "generate.sh: run setup.sh first" >&2; exit 1; }

# One tree of every input, outside any buf.yaml, so buf reads it as a plain directory.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in/inferd" "$work/gen"
cp -r "$root/proto/inferd/v1" "$work/in/inferd/v1"
cp -r "$here/proto/google" "$here/proto/grpc" "$work/in/"
sed "s#local: node_modules/.bin/protoc-gen-es#local: $here/node_modules/.bin/protoc-gen-es#" "$here/buf.gen.yaml" > "$work/buf.gen.yaml"
(cd "$work" && BUF_CACHE_DIR="$work/cache" "$buf" generate in --template buf.gen.yaml)

rm -rf "$out/inferd" "$out/google" "$out/grpc"
cp -r "$work/gen/." "$out/"
