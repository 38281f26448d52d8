# meshd — `make demo` runs the main job, `make test` the whole suite. Both install what is missing first.
SWIFT ?= swift
APT_PACKAGES := liblua5.4-dev libyaml-dev libnghttp2-dev libre2-dev libssl-dev pkg-config curl nghttp2-client openssl python3 python3-pip prometheus chromium
# module:package — what the integration tests import, and the pip package that provides it
PIP_PACKAGES := grpc:grpcio grpc_tools:grpcio-tools pytest:pytest yaml:pyyaml opentelemetry.proto:opentelemetry-proto
PYTHON ?= python3
MESHD := .build/debug/meshd

.PHONY: deps build demo proxy-demo test unit-test integration-test bench fuzz clean

# Installs only what is missing, showing apt's and pip's own progress; prints nothing when
# everything is there. Swift itself is not installed here: it must be on PATH already.
deps:
	@command -v $(SWIFT) >/dev/null 2>&1 || { \
		echo "error: no Swift toolchain on PATH ($(SWIFT)): install Swift 6.1 or later first (https://www.swift.org/install/)" >&2; \
		exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "==> apt: installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	@missing=""; for m in $(PIP_PACKAGES); do \
		$(PYTHON) -c "import $${m%%:*}" >/dev/null 2>&1 || missing="$$missing $${m#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "==> pip: installing$$missing"; \
		if $(PYTHON) -c 'import os, sys, sysconfig; sys.exit(sys.prefix != sys.base_prefix or not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then \
			echo "    (this Python is externally managed, PEP 668: pip needs --break-system-packages)"; \
			$(PYTHON) -m pip install --break-system-packages $$missing; \
		else \
			$(PYTHON) -m pip install $$missing || $(PYTHON) -m pip install --break-system-packages $$missing; \
		fi; \
	fi

# Says so before the first build, which compiles meshd and its Swift packages from source.
FIRST_BUILD_NOTE = @[ -d .build ] || echo "==> first build: fetching and compiling meshd's Swift packages, about 5 minutes on 2 cores"

build: deps
	$(FIRST_BUILD_NOTE)
	$(SWIFT) build --product meshd

# HOLD=1 keeps the mesh running (mesh page live) until Ctrl-C.
demo: build
	$(PYTHON) examples/bookinfo/demo.py $(MESHD) $(if $(HOLD),--hold)

proxy-demo: build
	./examples/proxy-demo/run.sh $(MESHD)

# Istio's own sample files, when a checkout of them sits beside the repo (tests that need
# them say they are skipped otherwise); point MESHD_ISTIO_SAMPLES elsewhere to override.
export MESHD_ISTIO_SAMPLES ?= $(firstword $(wildcard $(CURDIR)/../shared/istio-samples))

unit-test: deps
	$(FIRST_BUILD_NOTE)
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

integration-test: build
	MESHD_BIN=$(abspath $(MESHD)) $(PYTHON) -m pytest -q tests/integration

test: unit-test integration-test

bench: deps
	./bench/run

# libFuzzer targets (Fuzz/), FUZZ_SECONDS each (default 60); not part of `test`.
# Findings land in .build/fuzz/artifacts/ and make this fail.
fuzz: deps
	SWIFT=$(SWIFT) ./Fuzz/run.sh

clean:
	rm -rf .build
