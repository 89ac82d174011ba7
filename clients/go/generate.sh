#!/usr/bin/env bash
# Regenerates the Go code of proto/inferd/v1 into OUT_go (the files of clients/go/inferdv1:
# `clients/go/generate.sh clients/go/inferdv1` rewrites the committed ones; the proto check
# generates into a temporary folder and diffs it against clients/go/inferdv1). The google
# protos it imports (struct.proto) are protobuf-go's own well-known types (structpb), so only
# inferd/v1 is generated. Tools: buf, protoc-gen-go and protoc-gen-go-grpc, pinned by setup.sh.
# Deterministic: the same bytes every run.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: clients/go/generate.sh OUT_go" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
"$HERE/setup.sh" >/dev/null
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/buf.gen.yaml" <<YAML
version: v2
plugins:
  - local: $HERE/.bin/protoc-gen-go
    out: $TMP/out
    opt: module=github.com/inferd/inferd/clients/go
  - local: $HERE/.bin/protoc-gen-go-grpc
    out: $TMP/out
    opt: module=github.com/inferd/inferd/clients/go
YAML
cd "$ROOT"
"$HERE/tools/node_modules/.bin/buf" generate --template "$TMP/buf.gen.yaml" --path proto/inferd/v1
rm -f "$OUT"/*.pb.go
cp "$TMP/out/inferdv1/"*.pb.go "$OUT/"
