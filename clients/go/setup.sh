#!/usr/bin/env bash
# Installs what the Go client, its code generation and its tests need, pinned, into this folder
# (.bin: the protoc plugins; tools/node_modules: buf) and Go's module cache. Idempotent: a second
# run only checks a stamp and returns.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

PROTOC_GEN_GO=v1.36.12      # google.golang.org/protobuf, the runtime's version in go.mod
PROTOC_GEN_GO_GRPC=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc
STAMP=".bin/.setup-$PROTOC_GEN_GO-$PROTOC_GEN_GO_GRPC-$(cat go.sum tools/package-lock.json | cksum | cut -d' ' -f1)"

command -v go >/dev/null || { echo "clients/go/setup.sh: Go (1.26) is needed" >&2; exit 1; }
command -v npm >/dev/null || { echo "clients/go/setup.sh: npm is needed (it installs buf, pinned)" >&2; exit 1; }

if [[ -e "$STAMP" && -x .bin/protoc-gen-go && -x .bin/protoc-gen-go-grpc && -x tools/node_modules/.bin/buf ]]; then
  exit 0
fi
mkdir -p .bin
rm -f .bin/.setup-*
GOBIN="$HERE/.bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
GOBIN="$HERE/.bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
(cd tools && npm ci --no-audit --no-fund --loglevel=error)
go mod download
# Build the package and its test binary once, so that later runs (conformance.sh) are offline and quick.
# (also fetches the test-only modules); skipped while the client's own code is not there yet.
if compgen -G '*.go' >/dev/null; then go test -count=1 -run '^$' ./... >/dev/null; fi
touch "$STAMP"
echo "clients/go: set up (protoc-gen-go $PROTOC_GEN_GO, protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC, buf $(tools/node_modules/.bin/buf --version))"
