# meshd — `make demo` runs the main job, `make test` the whole suite. Both install what is missing first.
SWIFT ?= swift
APT_PACKAGES := liblua5.4-dev libnghttp2-dev libre2-dev libssl-dev pkg-config curl nghttp2-client openssl python3 python3-pip
PYTHON ?= python3
MESHD := .build/debug/meshd

.PHONY: deps build demo proxy-demo test unit-test integration-test bench clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(PYTHON) -c "import grpc, grpc_tools, pytest, yaml" 2>/dev/null || \
		$(PYTHON) -m pip install -q grpcio grpcio-tools pytest pyyaml 2>/dev/null || \
		$(PYTHON) -m pip install -q --break-system-packages grpcio grpcio-tools pytest pyyaml

build: deps
	$(SWIFT) build --product meshd

demo: build
	$(PYTHON) examples/bookinfo/demo.py $(MESHD)

proxy-demo: build
	./examples/proxy-demo/run.sh $(MESHD)

unit-test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

integration-test: build
	MESHD_BIN=$(abspath $(MESHD)) $(PYTHON) -m pytest -q tests/integration

test: unit-test integration-test

bench: deps
	./bench/run

clean:
	rm -rf .build
