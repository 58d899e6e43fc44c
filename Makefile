# firstrun: see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
OUT ?= bin/firstrun
# How much each fuzz target runs in `make test` (go test -fuzztime): a count of
# executions, not a duration. Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" when a duration ends while a worker is mid-call
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race. 30000 is about
# 10 s of FuzzValidate here and 3 s of FuzzMerge.
FUZZTIME ?= 30000x
# Flags for `make bench` (go run ./test/bench -h), e.g. BENCH_FLAGS='-runs 40 -boots 20'
# (-boots 0 leaves out the boot table and its 20 minutes).
BENCH_FLAGS ?=
LDFLAGS := -s -w -X main.version=$(VERSION)
# Packer and its amazon plugin, built from source into .tools/ (scripts/packer-tools.sh),
# with nothing in $HOME. PACKER=packer uses yours instead (1.11.2 or later).
TOOLS := $(CURDIR)/.tools
PACKER ?= $(TOOLS)/bin/packer
PACKER_ENV := PACKER_PLUGIN_PATH=$(TOOLS)/packer-plugins PACKER_CONFIG_DIR=$(TOOLS)/packer-config CHECKPOINT_DISABLE=1
# make ami: the region (AWS_REGION, else AWS_DEFAULT_REGION), the architecture (x86_64 or
# arm64), and any other -var flags for packer build (packer/variables.pkr.hcl).
AMI_REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))
ARCH ?= x86_64
PACKER_VARS ?=
AMI_GOARCH := $(if $(filter arm64,$(ARCH)),arm64,amd64)
AMI_BIN := bin/firstrun-linux-$(AMI_GOARCH)

.DEFAULT_GOAL := help
.PHONY: help build deps deps-demo test unit e2e fuzz lint demo demo-root bench storm clean packer-tools packer-check ami

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the static binary $(OUT) (CGO_ENABLED=0, -trimpath, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT) ./cmd/firstrun

deps: ## Install what make test needs and is missing (apt-get as root on Debian or Ubuntu; else say what)
	@scripts/deps.sh test

deps-demo: ## Install what make demo needs and is missing
	@scripts/deps.sh demo

test: deps lint unit fuzz packer-check ## Install what is missing, then every test: lint, unit and end-to-end tests (sandbox instance), fuzzing, the image template

unit: ## Run all the Go tests, the end-to-end ones in the sandbox instance included (root)
	$(GO) test -count=1 -timeout 20m ./...

e2e: ## Run only the end-to-end tests in the sandbox instance (root)
	$(GO) test -count=1 -timeout 20m -v ./test/e2e/...

fuzz: ## Run each fuzz target for FUZZTIME
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./internal/inputs
	$(GO) test -run='^$$' -fuzz='^FuzzMerge$$' -fuzztime=$(FUZZTIME) ./internal/ecsconfig
	$(GO) test -run='^$$' -fuzz='^FuzzMerge$$' -fuzztime=$(FUZZTIME) ./internal/commonconfig
	$(GO) test -run='^$$' -fuzz='^FuzzEnvFileValue$$' -fuzztime=$(FUZZTIME) ./internal/proxy

lint: ## gofmt check, go vet, shellcheck of every shell script
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	@scripts/shellcheck.sh

demo: deps-demo ## Show the main job on a booted sandbox instance (root; installs what is missing; minutes the first time, seconds after)
	$(GO) run ./test/e2e/demo

demo-root: build ## Show the file work on a temporary root, without root or a sandbox
	examples/demo.sh $(OUT)

bench: ## Boot → registered beside the stock AMI, firstrun beside the seed script; writes bin/bench/results.md (root; about 25 minutes)
	$(GO) run ./test/bench -out bin/bench $(BENCH_FLAGS)

storm: ## Boot storm: 1000 in-process signal senders against a throttled CloudFormation stand-in on loopback (about 2 minutes; STORM_FLAGS='-n 2000 -rate 5')
	$(GO) run ./test/storm $(STORM_FLAGS)

clean: ## Remove build output
	rm -rf bin

packer-tools: ## Build Packer 1.11.2 and its amazon plugin 1.3.6 into .tools (once: about 5 minutes)
	@scripts/packer-tools.sh

packer-check: packer-tools build ## Packer init, fmt and validate (offline), shellcheck of its scripts, systemd-analyze verify of the units
	$(PACKER_ENV) $(PACKER) init packer/
	$(PACKER_ENV) $(PACKER) fmt -check -diff -recursive packer/
	@# Dummy but valid values: validation never calls AWS (no credentials, no network).
	$(PACKER_ENV) $(PACKER) validate -var region=us-east-1 -var firstrun_binary=$(OUT) packer/
	$(PACKER_ENV) $(PACKER) validate -var region=eu-west-1 -var architecture=arm64 \
	  -var source_ami=ami-0123456789abcdef0 -var assume_role_arn=arn:aws:iam::123456789012:role/packer \
	  -var firstrun_binary=$(OUT) packer/
	@scripts/shellcheck.sh
	scripts/packer-verify-units.sh $(OUT)

ami: $(if $(filter $(TOOLS)/bin/packer,$(PACKER)),packer-tools) ## Build the AMI in AWS: AWS_REGION, ARCH=x86_64|arm64, PACKER_VARS='-var k=v'; credentials as the AWS CLI finds them
	@if [ -z "$(AMI_REGION)" ]; then echo "make ami: set AWS_REGION (or AMI_REGION)" >&2; exit 2; fi
	GOOS=linux GOARCH=$(AMI_GOARCH) $(MAKE) --no-print-directory build OUT=$(AMI_BIN)
	$(PACKER_ENV) $(PACKER) init packer/
	$(PACKER_ENV) $(PACKER) build -var region=$(AMI_REGION) -var architecture=$(ARCH) \
	  -var firstrun_version=$(VERSION) -var firstrun_binary=$(AMI_BIN) $(PACKER_VARS) packer/
