# Flotilla. `make run` starts the whole platform on this machine;
# `make test` brings up the test bed (ZooKeeper, Docker engine, Vault) and
# runs every test, unit and integration, with -race.
SHELL := /bin/bash
GO ?= go
BIN := bin
STATICCHECK_VERSION := v0.8.2
# Tests that need a real service fail instead of skipping once the test bed is up.
TESTENV = set -a; eval "$$(scripts/testbed.sh env)"; set +a; export CI=true;

.PHONY: build run test test-loaded testbed bench chaos lint clean lab-up lab-check fuzz fuzz-api

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The Docker engine and the example image, when this machine can have them;
# without them flotilla dev runs tasks as plain processes.
run: build
	@scripts/testbed.sh docker >/dev/null && scripts/testbed.sh images >/dev/null \
		|| echo "run: no Docker engine here; tasks will run as processes (the examples need Docker)"
	./$(BIN)/flotilla dev

testbed:
	scripts/testbed.sh up >/dev/null

# Test binaries are built in parallel, then run one package at a time:
# tasks of several packages' end-to-end tests listen on this machine's
# ports, and packages running side by side would hand out the same ones.
# The gateway's suite runs a second time on its event loops
# (--gateway-event-loop), which must pass all of it too.
test: testbed
	$(GO) test -race -count=1 -run '^$$' ./... >/dev/null
	$(TESTENV) $(GO) test -race -count=1 -p 1 -timeout 40m ./...
	$(TESTENV) export FLOTILLA_GATEWAY_EVENT_LOOP=1; $(GO) test -race -count=1 -timeout 10m ./gateway/

# The suite with a CPU burner on every core beside it: tests must hold on a
# busy machine (they wait on conditions with generous deadlines, never on
# a sleep). The burners are killed however the suite ends. LOADED_PKGS
# narrows it (default: everything). TestChaosShort asserts its regression
# guard here (FLOTILLA_CHAOS_STRICT=0: ≤ 5% failed requests, ≤ 1% bad DNS
# answers), not issue 16's goal of 0, which is a figure of a machine whose
# health checks (1 s timeout) still answer in time: make chaos measures it.
LOADED_PKGS ?= ./...
test-loaded: testbed
	$(GO) test -race -count=1 -run '^$$' $(LOADED_PKGS) >/dev/null
	@pids=""; for i in $$(seq $$(nproc)); do sh -c 'while :; do :; done' & pids="$$pids $$!"; done; \
	trap 'kill $$pids' EXIT INT TERM; \
	echo "test-loaded: $$(nproc) CPU burners ($$pids)"; \
	$(TESTENV) export FLOTILLA_CHAOS_STRICT=0; $(GO) test -race -count=1 -p 1 -timeout 60m $(LOADED_PKGS) && \
	FLOTILLA_GATEWAY_EVENT_LOOP=1 $(GO) test -race -count=1 -timeout 10m ./gateway/

# Go's native fuzzing, one target after another (`make test` runs only
# their seed corpora, testdata/fuzz/<Target>). FUZZTIME per target.
FUZZTIME ?= 10m
FUZZ_TARGETS := appspec:FuzzDecode api:FuzzQuery framework/mesosconn:FuzzMasterStream framework/mesosconn:FuzzReadAccepted gateway:FuzzGatewayRequest mesosdns:FuzzServeDNS
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $${t##*:} (./$${t%%:*}) for $(FUZZTIME)"; \
		nice -n 19 $(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*}/ || exit 1; \
	done

# The process-level fuzzer (bench/fuzzapi): mutated app definitions against
# a running `flotilla dev --executor simulated` under an RSS ceiling.
FUZZAPI_TIME ?= 10m
FUZZAPI_FLAGS ?=
fuzz-api: build
	$(GO) build -o $(BIN)/fuzzapi ./bench/fuzzapi
	nice -n 19 ./$(BIN)/fuzzapi -flotilla $(BIN)/flotilla -duration $(FUZZAPI_TIME) $(FUZZAPI_FLAGS)

# Every benchmark the issues name: the Go benchmarks once each (that they
# run), then the scripts that give the issues' figures with their goals:
# the API's large answers over three rounds, the framework against a bare
# mesos-go framework (alternating, three rounds), memory with 10,000 apps,
# those that measure against a peer in the same run (each installs its
# peer when missing: Knot, NSD and CoreDNS; nginx and h2load, quiet and
# beside two busy loops; HAProxy) and the idle leader. Figures go to
# bench/RESULTS.md by hand, with the command.
bench: testbed build
	$(TESTENV) $(GO) test -run '^$$' -bench . -benchtime 1x ./...
	$(TESTENV) bench/api/run.sh
	$(TESTENV) bench/framework/run.sh
	$(TESTENV) bench/memory/run.sh 10000 10 90
	$(TESTENV) bench/dns/run.sh
	$(TESTENV) bench/gateway/run.sh
	$(TESTENV) BURN=2 bench/gateway/run.sh
	$(TESTENV) bench/gateway/run-h2.sh
	$(TESTENV) bench/gateway-tcp/run.sh
	$(TESTENV) bench/forward/run.sh
	$(TESTENV) bench/idle/run.sh 1000 20

# Real replicas (flotilla serve) and a real localmesos in a ZooKeeper of
# the harness's own; the leader SIGKILLed during deployments and
# SIGSTOPped past its session, then ZooKeeper cut and restarted, an agent
# removed and Vault cut; real backends (cmd/testapp) and an edge node, DNS
# and gateways asked on every replica and the edge throughout
# (bench/chaos; figures in bench/RESULTS.md; TestChaosShort is the short
# variant inside make test). Then the idle leader with 1,000 apps (issue
# 16 asks make chaos for that figure too: < 1% of a core).
CHAOS_FLAGS ?=
chaos: build testbed
	$(TESTENV) $(GO) run ./bench/chaos -bin $(BIN) -own-zk -executor process -testapp $(BIN)/testapp -gateway -edge \
		-rounds 20 -sigstops 3 -freshness 20 -faults zkcut,zk,master,agent,vault -vault-addr "$$VAULT_ADDR" -vault-token "$$VAULT_TOKEN" $(CHAOS_FLAGS)
	$(TESTENV) bench/idle/run.sh 1000 20

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...; \
	else echo "lint: staticcheck $(STATICCHECK_VERSION) did not install from the module proxy; skipped"; fi

clean:
	rm -rf $(BIN)

# The Vagrant lab on real Mesos (see docs/lab.md); lab-check is what CI can
# verify without booting it.
lab-up:
	vagrant/build-artifacts.sh
	cd vagrant && vagrant up --no-parallel

lab-check:
	cd vagrant && VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
	shellcheck vagrant/*.sh vagrant/drills/*.sh scripts/*.sh .ci/run
