#!/usr/bin/env bash
# Installs what the Java client, its code generation and its tests need, all pinned: protoc
# and protoc-gen-grpc-java into clients/java/.tools, and every dependency and plugin of
# pom.xml into ~/.m2, so that generate.sh and conformance.sh run offline afterwards.
# Idempotent: a second run checks its stamp and returns at once. With another local Maven
# repository, pass it as MAVEN_REPO_LOCAL (it is given to every mvn here).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
. ./versions.sh
STAMP=".tools/.installed"
KEY="$(cat pom.xml versions.sh setup.sh | sha256sum | cut -d' ' -f1)"
# The stamp (a hash of what decides the versions) and one jar of the build in the local repo.
M2="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && [ -x ".tools/protoc-$PROTOC_VERSION-linux-x86_64.exe" ] \
   && [ -d "$M2/io/grpc/grpc-netty-shaded" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "setup.sh: Maven (mvn) is needed" >&2; exit 1; }
command -v java >/dev/null || { echo "setup.sh: a JDK 17 is needed" >&2; exit 1; }
mkdir -p .tools
DEP=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
for artifact in "com.google.protobuf:protoc:$PROTOC_VERSION:exe:linux-x86_64" \
                "io.grpc:protoc-gen-grpc-java:$GRPC_JAVA_PLUGIN_VERSION:exe:linux-x86_64"; do
  mvn -q -B ${MAVEN_REPO_LOCAL:+-Dmaven.repo.local=$MAVEN_REPO_LOCAL} "$DEP:copy" -Dartifact="$artifact" -DoutputDirectory=.tools
done
chmod +x .tools/*.exe
# The well-known protos that inference.proto imports (struct.proto), from protobuf-java's jar:
# protoc's Maven executable comes without its include folder.
rm -rf .tools/include
mvn -q -B ${MAVEN_REPO_LOCAL:+-Dmaven.repo.local=$MAVEN_REPO_LOCAL} "$DEP:unpack" -Dartifact="com.google.protobuf:protobuf-java:$PROTOC_VERSION" \
  -DoutputDirectory=.tools/include -Dmdep.unpack.includes='google/protobuf/*.proto'
# Every dependency and plugin, then one offline-able build: surefire resolves its JUnit
# provider only when tests run, so run them (the conformance runner skips without a server).
mvn -q -B ${MAVEN_REPO_LOCAL:+-Dmaven.repo.local=$MAVEN_REPO_LOCAL} dependency:go-offline
mvn -q -B ${MAVEN_REPO_LOCAL:+-Dmaven.repo.local=$MAVEN_REPO_LOCAL} test
echo "$KEY" > "$STAMP"
