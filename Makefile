# firstrun: see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
OUT ?= bin/firstrun
# How long each fuzz target runs in `make test` (go test -fuzztime).
FUZZTIME ?= 10s
LDFLAGS := -s -w -X main.version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build test unit e2e fuzz lint demo demo-root clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build the static binary $(OUT) (CGO_ENABLED=0, -trimpath, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT) ./cmd/firstrun

test: lint unit fuzz ## Run every test: lint, unit and end-to-end tests (sandbox instance), bounded fuzzing

unit: ## Run all the Go tests, the end-to-end ones in the sandbox instance included (root)
	$(GO) test -count=1 -timeout 20m ./...

e2e: ## Run only the end-to-end tests in the sandbox instance (root)
	$(GO) test -count=1 -timeout 20m -v ./test/e2e/...

fuzz: ## Run each fuzz target for FUZZTIME
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./internal/inputs
	$(GO) test -run='^$$' -fuzz='^FuzzMerge$$' -fuzztime=$(FUZZTIME) ./internal/ecsconfig

lint: ## gofmt check, go vet, shellcheck of every shell script
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	@scripts/shellcheck.sh

demo: ## Show the main job on a booted sandbox instance (root; minutes the first time, seconds after)
	$(GO) run ./test/e2e/demo

demo-root: build ## Show the file work on a temporary root, without root or a sandbox
	examples/demo.sh $(OUT)

clean: ## Remove build output
	rm -rf bin
