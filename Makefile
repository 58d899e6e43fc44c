# firstrun: see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
OUT ?= bin/firstrun
# How long each fuzz target runs in `make test` (go test -fuzztime).
FUZZTIME ?= 10s
LDFLAGS := -s -w -X main.version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build test unit fuzz lint demo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## Build the static binary $(OUT) (CGO_ENABLED=0, -trimpath, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT) ./cmd/firstrun

test: lint unit fuzz ## Run every test: lint, unit and end-to-end tests on temp roots, bounded fuzzing

unit: ## Run the Go tests (the build test runs `make build` itself)
	$(GO) test -count=1 ./...

fuzz: ## Run each fuzz target for FUZZTIME
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./internal/inputs
	$(GO) test -run='^$$' -fuzz='^FuzzMerge$$' -fuzztime=$(FUZZTIME) ./internal/ecsconfig

lint: ## gofmt check, go vet, shellcheck of every shell script
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	@scripts/shellcheck.sh

demo: build ## Show the main job on a temporary root with the chapter's inputs
	examples/demo.sh $(OUT)

clean: ## Remove build output
	rm -rf bin
