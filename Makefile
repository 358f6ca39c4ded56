# EnvoyAuthz — the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
DOTNET ?= dotnet
CONFIG ?= Debug
RESULTS := $(CURDIR)/TestResults
SERVICE := src/EnvoyAuthz/EnvoyAuthz.csproj
ARGS ?=
IMAGE ?= envoy-authz:dev

.PHONY: help build run token call test policy-test conformance bench image k8s clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build everything (fetches the pinned Envoy protos on first build)
	$(DOTNET) build EnvoyAuthz.sln -c $(CONFIG) -warnaserror

run: ## Run the service in dev mode: gRPC :9191, HTTP :9192, trusts a local dev key (ARGS=... for more)
	$(DOTNET) run --project $(SERVICE) -c $(CONFIG) -- serve --dev --config $(CURDIR)/envoy/envoy-authz.dev.yaml $(ARGS)

token: ## Mint a dev token for `make run` (ARGS="--sub alice --groups admins,viewers")
	@$(DOTNET) run --project $(SERVICE) -c $(CONFIG) -- token $(ARGS)

call: ## Send one Check to the running service (ARGS="--token T --path /api/v1/dags")
	@$(DOTNET) run --project $(SERVICE) -c $(CONFIG) -- call $(ARGS)

test: build ## Run every test suite; ends with "N passed, N failed"
	@rm -rf $(RESULTS)
	@status=0; \
	for p in tests/EnvoyAuthz.Rego.Tests tests/EnvoyAuthz.Tests tests/EnvoyAuthz.IntegrationTests; do \
	  echo "== $$p"; \
	  $(DOTNET) test --project $$p -c $(CONFIG) --no-build -- --report-trx --results-directory $(RESULTS)/$$(basename $$p) || status=1; \
	done; \
	python3 .ci/test-summary.py $(RESULTS); \
	exit $$status

policy-test: ## Run the Rego unit tests of every policy folder under envoy/ and k8s/ (envoy-authz policy test)
	@for d in $$(find envoy k8s -name '*_test.rego' -printf '%h\n' | sort -u); do \
	  $(DOTNET) run --project $(SERVICE) -c $(CONFIG) -- policy test $(CURDIR)/$$d || exit 1; \
	done

conformance: ## Run OPA's Rego conformance suite (../shared/rego-conformance or REGO_CONFORMANCE_DIR)
	$(DOTNET) run --project tests/EnvoyAuthz.Rego.Conformance -c Release

bench: ## Run the BenchmarkDotNet benchmarks in process (ARGS="--filter *Check* --job short")
	$(DOTNET) run --project tests/EnvoyAuthz.Benchmarks -c Release -- --inProcess $(ARGS)

image: ## Build the container image k8s/ runs (k8s/Dockerfile; IMAGE=envoy-authz:dev)
	docker build -f k8s/Dockerfile -t $(IMAGE) .

k8s: ## Render the Kubernetes manifests (kubectl kustomize): base, Envoy and Istio overlays, Airflow egress
	@for d in base overlays/envoy overlays/istio airflow-egress; do echo "# ---- k8s/$$d"; kubectl kustomize k8s/$$d || exit 1; done

clean: ## Remove build outputs and test results
	$(DOTNET) clean EnvoyAuthz.sln >/dev/null
	rm -rf $(RESULTS) src/Envoy.Api.Protos/obj/envoy-protos
