#!/usr/bin/env bash
# Installs what the Java client, its code generation and its tests need, all pinned: protoc
# and protoc-gen-grpc-java into clients/java/.tools, and every dependency and plugin of
# pom.xml into ~/.m2, so that generate.sh and conformance.sh run offline afterwards.
# Idempotent: a second run checks its stamp and returns at once.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
. ./versions.sh
STAMP=".tools/.installed"
KEY="$(cat pom.xml versions.sh setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && [ -d "$HOME/.m2/repository" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "setup.sh: Maven (mvn) is needed" >&2; exit 1; }
command -v java >/dev/null || { echo "setup.sh: a JDK 17 is needed" >&2; exit 1; }
mkdir -p .tools
DEP=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
for artifact in "com.google.protobuf:protoc:$PROTOC_VERSION:exe:linux-x86_64" \
                "io.grpc:protoc-gen-grpc-java:$GRPC_JAVA_PLUGIN_VERSION:exe:linux-x86_64"; do
  mvn -q -B "$DEP:copy" -Dartifact="$artifact" -DoutputDirectory=.tools
done
chmod +x .tools/*.exe
# The well-known protos that inference.proto imports (struct.proto), from protobuf-java's jar:
# protoc's Maven executable comes without its include folder.
rm -rf .tools/include
mvn -q -B "$DEP:unpack" -Dartifact="com.google.protobuf:protobuf-java:$PROTOC_VERSION" \
  -DoutputDirectory=.tools/include -Dmdep.unpack.includes='google/protobuf/*.proto'
# Every dependency and plugin, then one offline-able build: surefire resolves its JUnit
# provider only when tests run, so run them (the conformance runner skips without a server).
mvn -q -B dependency:go-offline
mvn -q -B test
echo "$KEY" > "$STAMP"
