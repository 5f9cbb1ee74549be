# Kameng — build, run and check.
#
#   make deps    check Go and install the system packages the tests use
#   make build   pure-Go binary without the desktop GUI (bin/kameng)
#   make run     build, fill demo data on first run, list campaigns, print the report
#   make test    layout rules, go vet, all tests, then a short fuzz run of every fuzz target
#   make soak    the sync simulation over many more seeds (SIM_SEEDS, SIM_STEPS, SIM_FLAGS)
#   make bench   benchmarks (BENCH=regexp BENCHTIME=1x|3s|...), output also in bench.out
#   make lint    gofmt, go vet and the layout rules
#   make layout  the package dependency rules (scripts/layout.sh)

GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BIN ?= bin/kameng
SYSTEM_PKGS ?=
TEST_TAGS ?=
TEST_TIMEOUT ?= 30m
FUZZTIME ?= 10s
BENCH ?= .
BENCHTIME ?= 1x
WITH_POSTGRES ?= bash scripts/with-postgres.sh

GO_FILES = find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*'

.PHONY: deps build run test fuzz soak bench lint layout clean

deps:
	bash scripts/deps.sh $(SYSTEM_PKGS)

build:
	CGO_ENABLED=0 $(GO) build -tags nogui -o $(BIN) .

run: build
	$(BIN) demo --if-empty && $(BIN) campaign list && $(BIN) report

# The tests run against a throwaway PostgreSQL cluster too (scripts/with-postgres.sh);
# WITH_POSTGRES= runs them without one (the PostgreSQL halves are then skipped).
test: layout
	$(GO) vet -tags '$(TEST_TAGS)' ./...
	$(WITH_POSTGRES) $(GO) test -tags '$(TEST_TAGS)' -count=1 -timeout $(TEST_TIMEOUT) ./...
	@$(MAKE) --no-print-directory fuzz

# One go test -fuzz per target (scripts/fuzz.sh).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) TEST_TAGS='$(TEST_TAGS)' bash scripts/fuzz.sh

# The deterministic sync simulation (syncclient/sim_test.go) over many seeds; a failing
# seed prints the command that replays it. The last line counts what the seeds ran into.
SIM_SEEDS ?= 5000
SIM_STEPS ?= 150
SIM_FIRST ?= 1
SIM_FLAGS ?=
soak:
	$(GO) test ./syncclient -run '^TestSimulation$$' -count=1 -timeout 6h -v \
		-sim.seeds=$(SIM_SEEDS) -sim.steps=$(SIM_STEPS) -sim.first=$(SIM_FIRST) $(SIM_FLAGS) \
		| grep -v -e '^=== ' -e '^        --- PASS' -e '^    --- PASS'

# Under a throwaway PostgreSQL cluster too: the sync benchmarks measure the server's
# PostgreSQL store and run pgbench beside it (WITH_POSTGRES= skips those halves).
bench:
	$(WITH_POSTGRES) $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -timeout 60m ./... | tee bench.out

lint: layout
	@unformatted=$$($(GO_FILES) -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$unformatted" | sed 's/^/    /'; \
		exit 1; \
	fi
	$(GO) vet ./...

layout:
	bash scripts/layout.sh

clean:
	rm -rf bin bench.out
