GO ?= go
PKGS ?= ./...

.PHONY: help test test-race lint bench bench-go bench-quota demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

test: lint ## vet + race-enabled tests of every package (the CI command)
	$(GO) test -race -count=1 $(PKGS)

test-race: ## race-enabled tests only, without lint
	$(GO) test -race -count=1 $(PKGS)

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench: bench-go bench-quota bench-pipeline bench-scale ## every benchmark: prints the tables of BENCHMARKS.md (~25 min)

bench-go: ## Go micro-benchmarks of every package (go test -bench)
	$(GO) test -run '^$$' -bench . $(PKGS)

demo: ## the offline demo: simulator + worker on an embedded Redis + enqueue submit --watch
	bash scripts/demo.sh

bench-quota: ## quota proof benchmark: fleet vs simulator, Markdown table (DURATION=60s, SCENARIOS=all)
	$(GO) run ./cmd/bench quota -duration $(or $(DURATION),60s) $(if $(SCENARIOS),-scenarios $(SCENARIOS))

.PHONY: chaos
chaos: ## end-to-end fault suite: real worker processes, redis-server, shsim (minutes)
	$(GO) test -tags chaos -count=1 -timeout 60m -v ./chaos/

.PHONY: bench-smoke
bench-smoke: ## tiny rows of the pipeline benchmarks (build and run worker/shsim processes; not part of make test)
	$(GO) test -tags benchprocs -count=1 -run 'FleetRowTiny|AnalysisTiny|MemoryRowTiny' ./cmd/bench/

.PHONY: bench-pipeline
bench-pipeline: ## pipeline benchmarks (real worker processes, redis-server, shsim): fleet rate, 100k-tile analysis, worker memory (~6 min)
	$(GO) run ./cmd/bench fleet
	$(GO) run ./cmd/bench analysis
	$(GO) run ./cmd/bench memory

.PHONY: bench-scale
bench-scale: ## job state at scale: 100k/1M/10M synthetic items through jobs.Store, Redis bytes, commands and CPU per item (ITEMS=100000,1000000,10000000)
	$(GO) run ./cmd/bench scale -items $(or $(ITEMS),100000,1000000,10000000)
