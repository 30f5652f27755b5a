# Funnel — make targets. `make demo` and `make test` work on a fresh Debian machine:
# `deps` installs the system libraries the package links against when they are missing.
SWIFT ?= swift
FUNNEL := .build/release/funnel
DEMO_DIR := demo-out

.PHONY: deps build release test demo bench bench-debiasing bench-attention bench-replay bench-vocabularies loadtest abuse fuzz clean

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

# Issue 26's and 28's measurements (docs/experiments.md), each about 25 minutes on 2 cores.
bench-debiasing: release
	@bench/debiasing.sh $(FUNNEL) $${OUT:-.bench-debiasing}

bench-attention: release
	@bench/run.sh $(FUNNEL) --help > /dev/null 2>&1 || true  # makes the PyTorch virtualenv when missing
	@bench/attention.sh $(FUNNEL) $${OUT:-.bench-attention} .venv-bench/bin/python

# Issue 27's measurements (docs/continuous-training.md, docs/model-directory.md): the replay
# (~3 minutes) and vocabulary load times at 4M and 40M ids against OLD_FUNNEL, a build from
# before vocabularies.bin (~15 minutes, 8 GB of disk).
bench-replay: release
	@bench/replay.sh $(FUNNEL) $${OUT:-.bench-replay}

bench-vocabularies: release
	@bench/vocabularies.sh $${OLD_FUNNEL:?set OLD_FUNNEL to a funnel built before vocabularies.bin} $(FUNNEL) $${OUT:-.bench-vocabularies}

loadtest: release
	@bench/serve/loadtest.sh

# Hostile traffic against a running server: deep nesting, huge row counts, slowloris, truncated
# bodies, concurrent oversized requests; asserts it stays alive and its memory bounded.
abuse: release
	@python3 bench/serve/abuse.py --funnel $(FUNNEL)

# The bounded fuzz runs (CSV/TSV reader, cache reader, model loader, safetensors, request parser)
# for FUZZ_SECONDS each (`make test` runs a fixed number of iterations of each).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUNNEL_FUZZ_SECONDS=$(FUZZ_SECONDS) $(SWIFT) test --disable-swift-testing --filter 'ParserFuzzTests|RequestFuzzTests'

clean:
	rm -rf .build $(DEMO_DIR) bench-out
