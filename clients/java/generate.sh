#!/usr/bin/env bash
# Regenerates the Java code of inferd.v1 (messages and the gRPC stub) from proto/ into OUT
# (default: src/generated/java, where it is committed), with the protoc and
# protoc-gen-grpc-java that setup.sh pinned. The output is the same bytes every run.
# google/protobuf/struct.proto needs no generation: protobuf-java ships it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$HERE/src/generated/java}"
# shellcheck source=versions.sh
. "$HERE/versions.sh"
PROTOC="$HERE/.tools/protoc-$PROTOC_VERSION-linux-x86_64.exe"
PLUGIN="$HERE/.tools/protoc-gen-grpc-java-$GRPC_JAVA_PLUGIN_VERSION-linux-x86_64.exe"
for tool in "$PROTOC" "$PLUGIN"; do
  [ -x "$tool" ] || { echo "generate.sh: $tool is missing: run clients/java/setup.sh" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
rm -rf "$OUT/dev/inferd/v1"
cd "$ROOT/proto"
"$PROTOC" -I. -I"$HERE/.tools/include" --plugin=protoc-gen-grpc-java="$PLUGIN" \
  --java_out="$OUT" --grpc-java_out="$OUT" \
  inferd/v1/inference.proto
