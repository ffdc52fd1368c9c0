# Two commands do everything on a fresh Debian machine, as root: `make demo` and `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
TSX := node --import tsx
TEST_FILES = $(shell find test src -name '*.test.ts' | sort)

.PHONY: help deps npm-deps debian-deps image-deps build image image-report typecheck lint format test unit golden demo bench fidelity fuzz crash soak failures reliability-docs crd clean

help:
	@echo "make demo      the lab demo: the article's four cases, broken then fixed (root)"
	@echo "make test      install dependencies, build, lint, run every test (root for end-to-end)"
	@echo "make build     compile to dist/ (bin/symroute runs dist/cli/main.js)"
	@echo "make bench     benchmarks -> docs/benchmarks.md (root)"
	@echo "make fidelity  10,000+ simulator-vs-kernel route lookups (root)"
	@echo "make fuzz      10,000+ generated config files through the loader"
	@echo "make crash     SIGKILLs during apply and delete of 200 networks, both firewall front ends, each recovery checked (root)"
	@echo "make soak      the agent under config changes and drift (root)"
	@echo "make failures  the failure-injection suite, results kept for docs/reliability.md (root)"
	@echo "make crd       regenerate deploy/crd.yaml from the config schema"
	@echo "make golden    rewrite the golden files of the plan and config cases (review the diff)"
	@echo "make image     the agent's OCI image -> dist/symroute-image.tar, from Debian packages, no registry (root)"
	@echo "make image-report  the image test, its figures kept in docs/results/image.json (root)"

deps: npm-deps debian-deps

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

npm-deps: node_modules/.package-lock.json

# Installs the tools symroute drives when they are missing (needs root and Debian's apt).
debian-deps:
	@missing=""; \
	for pair in ip:iproute2 nft:nftables iptables:iptables ipset:ipset conntrack:conntrack sysctl:procps curl:curl; do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root to install them)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# What `make image` and the image test use: mmdebstrap builds the image, podman and runc run it.
image-deps:
	@missing=""; \
	for pair in mmdebstrap:mmdebstrap podman:podman runc:runc; do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root to install them)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The agent's image (docs/kubernetes.md): dist/symroute-image.tar; the root filesystem and the
# production node_modules are cached in .cache/image/.
image: image-deps build
	bash scripts/image/build.sh

# The image test alone, its outcome and diagnostics (archive size, the agent's memory, the rolling
# restart's gaps against a baseline, the commit) kept in docs/results/image.json.
image-report: deps image-deps build
	RUN_TESTS_RESULTS=docs/results/image.json bash scripts/run-tests.sh test/image/image.e2e.test.ts

build: npm-deps
	rm -rf dist
	npx tsc -p tsconfig.build.json
	$(TSX) scripts/bundle-kubernetes-client.ts

typecheck: npm-deps
	npx tsc -p tsconfig.json --noEmit

lint: npm-deps
	$(TSX) scripts/lint-layers.ts
	npx prettier --check --log-level warn .

format: npm-deps
	npx prettier --write --log-level warn .

test: deps build typecheck lint
	bash scripts/run-tests.sh $(TEST_FILES)

unit: npm-deps
	bash scripts/run-tests.sh $(filter-out %.e2e.test.ts,$(TEST_FILES))

# Tests never write golden files (a missing or different one fails); this rewrites them.
GOLDEN_TESTS = test/plan/cases.test.ts test/config/cases.test.ts
golden: npm-deps
	UPDATE_GOLDEN=1 bash scripts/run-tests.sh $(GOLDEN_TESTS)
	npx prettier --write --log-level warn test/config/cases
	git status --short -- test/plan/cases test/config/cases || true

demo: deps build
	bin/symroute lab demo

bench: deps build
	bash bench/run.sh

fidelity: deps build
	SYMROUTE_FIDELITY_RUNS=10000 bash scripts/run-tests.sh test/simulate/fidelity.e2e.test.ts

fuzz: npm-deps
	SYMROUTE_FUZZ_RUNS=10000 bash scripts/run-tests.sh test/config/fuzz.test.ts test/config/fuzz-rejects.test.ts test/config/property.test.ts test/config/overlaps.test.ts test/config/incremental.test.ts

# Reliability runs (docs/reliability.md): SIGKILLs in apply and in delete of 200 networks; an agent
# soak; the failure-injection suite.
# Each writes its result file (docs/results/*.json, with the commit it ran on) and regenerates
# docs/reliability.md from the result files, whether the run passed or not.
RELIABILITY_TESTS = $(sort $(wildcard test/reliability/*.e2e.test.ts))
crash: deps build
	status=0; $(TSX) scripts/reliability/crash.ts 100 --firewall both --json docs/results/crash.json || status=$$?; \
	$(TSX) scripts/reliability/report.ts; exit $$status

soak: deps build
	status=0; $(TSX) scripts/reliability/agent-soak.ts 600 --networks 50 --json docs/results/soak.json || status=$$?; \
	$(TSX) scripts/reliability/report.ts; exit $$status

failures: deps build
	status=0; RUN_TESTS_RESULTS=docs/results/failures.json bash scripts/run-tests.sh $(RELIABILITY_TESTS) || status=$$?; \
	$(TSX) scripts/reliability/report.ts; exit $$status

reliability-docs: npm-deps
	$(TSX) scripts/reliability/report.ts

# deploy/crd.yaml is generated from the config schema (a test checks it is current).
crd: npm-deps
	$(TSX) scripts/gen-crd.ts

clean:
	rm -rf dist
