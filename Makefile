# ai-orchestration — build, generate, test, run.

# ENVTEST_K8S_VERSION is the Kubernetes release the envtest control plane is built from; it matches
# the k8s.io/api minor in go.mod.
ENVTEST_K8S_VERSION ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
CRD_REF_DOCS_VERSION ?= v0.3.0
GOTEST_FLAGS ?= -count=1
export PATH := $(LOCALBIN):$(PATH)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and controller markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: apidoc
apidoc: crd-ref-docs ## Generate the API reference (docs/api-reference.md) from the type comments.
	$(CRD_REF_DOCS) --source-path=./api/v1alpha1 --config=hack/apidoc/config.yaml --renderer=markdown --output-path=docs/api-reference.md

.PHONY: check
check: manifests generate apidoc ## Fail when generated files differ from what is committed.
	@git diff --exit-code -- config/crd config/rbac api docs/api-reference.md || { echo "generated files are stale: run 'make manifests generate apidoc' and commit"; exit 1; }

.PHONY: test
test: manifests generate vet envtest test-go test-ts ## Run every test (envtest control plane and redis-server are built/started by hack scripts).

# Suites that assert wall-clock contracts (a budget set through the API is enforced within 2 s,
# a CR change reaches the data plane within 2 s, replicas killed and restarted) each run whole
# control planes or replica sets. They run after the rest, one package at a time, so that on a
# small machine they do not measure each other's load.
TIMED_PKGS := ./controllers/... ./internal/budgetwriter/e2e/... ./test/...

.PHONY: test-go
test-go: envtest ## Run the Go tests: unit, envtest controllers and CEL, data plane, end to end (real redis-server).
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" hack/with-redis.sh bash -c '\
		set -e; \
		timed=$$(go list $(TIMED_PKGS)); \
		go test $(GOTEST_FLAGS) $$(go list ./... | grep -vxF "$$timed"); \
		go test -p 1 $(GOTEST_FLAGS) $$timed'

.PHONY: test-ts
test-ts: ## Run the TypeScript client's tests (node's test runner) against a real data plane.
	cd clients/typescript && npm test

FUZZTIME ?= 10s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s): parsers, stream decoders, compiler, request decoding.
	hack/fuzz.sh $(FUZZTIME)

.PHONY: dev
dev: ## Run the gateway standalone on the embedded store with the no-key sample folder.
	go run ./cmd/dataplane --manifests config/samples/dev

##@ Build

# DATAPLANE_BUILD_FLAGS: nomsgpack leaves gin's MessagePack binding and renderer (the ugorji codec,
# which the data plane never uses) out of the binary: 9 MB smaller, 2-3 MiB less resident at
# start. hack/bench builds the data plane it measures with the same flags (hack/bench/procs.go).
DATAPLANE_BUILD_FLAGS ?= -tags=nomsgpack

.PHONY: build
build: manifests generate ## Build the manager and data-plane binaries.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build $(DATAPLANE_BUILD_FLAGS) -o $(LOCALBIN)/dataplane ./cmd/dataplane

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./cmd/manager

##@ Deployment

.PHONY: install
install: manifests ## Install CRDs into the current cluster.
	kubectl apply -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove CRDs from the current cluster.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the manager and the data plane.
	kubectl apply -k config/default

.PHONY: undeploy
undeploy: ## Remove the manager and the data plane.
	kubectl delete --ignore-not-found -k config/default

.PHONY: build-installer
build-installer: manifests ## Write one install.yaml with CRDs and deployments to dist/.
	mkdir -p dist && kubectl kustomize config/default > dist/install.yaml

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into ./bin.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Install crd-ref-docs into ./bin.
$(CRD_REF_DOCS):
	GOBIN=$(LOCALBIN) go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest from the Go module proxy (cached after the first run).
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest.sh >/dev/null
