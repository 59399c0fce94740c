# berth: build, run and test. `make run` and `make test` are the two
# commands the README promises to work on a fresh machine.

export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
PKG       := github.com/berth-net/berth
VERSION   := 0.1.0
COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS   := -X $(PKG)/daemon.Version=$(VERSION) -X $(PKG)/daemon.GitCommit=$(COMMIT) -X main.clientVersion=$(VERSION)
# Flags for `make run`, e.g. BERTHD_FLAGS="--log-level debug".
BERTHD_FLAGS ?=
# Benchmarks to run and for how long.
BENCH     ?= .
BENCHTIME ?= 200x

.PHONY: all deps build run test unit cover soak fuzz bench bench-compare image clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/berthd ./cmd/berthd
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/berth ./cmd/berth

# Starts berthd in the foreground on unix:///run/berth/berth.sock.
run: build
	exec bin/berthd $(BERTHD_FLAGS)

# Everything: unit tests, and (as root) integration tests, each in its own
# network namespaces, against the berthd just built.
test: build
	$(GO) vet ./...
	BERTHD=$(CURDIR)/bin/berthd $(GO) test -race -count=1 -timeout 20m ./...

# Only what needs no root: the controller against fakes, the firewall's
# messages through a test dialer, IPAM, the resolver, the store, the CLI.
UNIT_PKGS = ./network/ ./firewall/ ./ipam/ ./resolver/ ./store/ ./cmd/berth/ ./internal/stringid/ ./bench/compare/ ./topology/
unit:
	$(GO) test -count=1 -cover $(UNIT_PKGS)

# Per-package coverage of berthd under the integration tests (as root).
cover:
	@scripts/cover.sh

# Long runs kept out of make test (as root): the chaos campaign at full
# length and the churn soak that watches memory, goroutines and files.
soak: build
	BERTHD=$(CURDIR)/bin/berthd scripts/soak.sh

# Long fuzzing of every fuzz target (make test runs their seed corpora).
fuzz:
	@scripts/fuzz.sh

bench: build
	BERTHD=$(CURDIR)/bin/berthd $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 30m ./...

# Side-by-side benchmarks against the CNI plugins, netavark/aardvark-dns and,
# with BENCH_DOCKER=1, Docker; installs them when missing. Flags for the
# harness in COMPARE_FLAGS, e.g. COMPARE_FLAGS="-quick" or "-run dns".
OVERLAY_BENCHTIME ?= 30x
PLUGINS_BENCHTIME ?= 100x
COMPARE_ENGINES = berth,cni,netavark$(if $(filter 1,$(BENCH_DOCKER)),$(comma)docker)
comma := ,
bench-compare: build image
	@bench/deps.sh
	$(GO) build -o bin/berth-compare ./bench/compare
	bin/berth-compare -engines $(COMPARE_ENGINES) -berthd bin/berthd -image build/busybox.tar -out bench/results $(COMPARE_FLAGS)
	@echo "== overlay (berth only: three hosts on an underlay; throughput against the underlay and a bridge)"
	BERTHD=$(CURDIR)/bin/berthd $(GO) test -run '^$$' -bench 'Overlay' -benchtime $(OVERLAY_BENCHTIME) -timeout 30m ./bench/
	@echo "== third-party plugins (a remote network plugin and a CNI conflist through berthd, beside berth's bridge and libcni run directly)"
	BERTHD=$(CURDIR)/bin/berthd $(GO) test -run '^$$' -bench 'PluginAttachDetach' -benchtime $(PLUGINS_BENCHTIME) -timeout 30m ./bench/
	@echo "== IPv6 published ports (through [::1], berthd's forwarder, and the host's IPv6 address, the kernel's path, against the container's address)"
	BERTHD=$(CURDIR)/bin/berthd $(GO) test -run '^$$' -bench 'PublishedPortThroughputIPv6' -benchtime 5x -timeout 30m ./bench/

# build/busybox.tar: a busybox root filesystem to import as an image
# (`berth image import build/busybox.tar busybox`). Needs Debian's static
# busybox, installed here when /bin/busybox is missing.
image:
	@if [ ! -x /bin/busybox ]; then \
		if [ "$$(id -u)" -ne 0 ]; then echo "image: /bin/busybox is missing; run as root to install busybox-static" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends busybox-static; \
	fi
	scripts/mkimage.sh build/busybox.tar

clean:
	rm -rf bin build
