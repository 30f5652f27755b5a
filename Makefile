# Funnel — make targets. `make demo` and `make test` work on a fresh Debian machine:
# `deps` installs the system libraries the package links against when they are missing.
SWIFT ?= swift
FUNNEL := .build/release/funnel
DEMO_DIR := demo-out

.PHONY: deps build release test demo bench loadtest clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) test --disable-swift-testing

demo: release
	@scripts/demo.sh $(FUNNEL) $(DEMO_DIR)

bench: release
	@bench/run.sh $(FUNNEL) $(BENCH_ARGS)

loadtest: release
	@bench/serve/loadtest.sh

clean:
	rm -rf .build $(DEMO_DIR) bench-out
