# pult — make demo runs the product on its built-in defaults; make test runs
# every test. Both install what they need on a fresh Debian machine.

SHELL   := /bin/bash
GO      ?= go
BIN     := bin
export LANG := C.UTF-8

# System packages: the tests need a real Secret Service on a private D-Bus.
APT_TEST := dbus-daemon gnome-keyring procps

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-go vet lint demo clean bench

all: build

deps: ## install system packages and Go modules
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is required (https://go.dev/dl/)"; exit 1; }
	@missing=""; for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

build: ## build the relay and the operator's app into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/pult-relay ./cmd/pult-relay
	$(GO) build -o $(BIN)/pult ./cmd/pult

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

lint: vet

# The tests run inside a private D-Bus session with a new, unlocked
# gnome-keyring in a temporary folder, so the credential tests use a real
# Secret Service and never touch the user's own keyrings.
test: deps vet ## run every test with the race detector
	CGO_ENABLED=0 $(GO) build -tags ci -o /dev/null ./cmd/pult
	keyrings=$$(mktemp -d) && trap 'rm -rf $$keyrings' EXIT && \
	XDG_DATA_HOME=$$keyrings PULT_TEST_KEYRING=1 dbus-run-session -- bash -c \
		'echo -n pult-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && $(GO) test -race -count=1 -timeout 20m ./...'

test-go: ## the Go tests only, without the keyring session
	$(GO) test -race -count=1 ./...

demo: deps build ## run the relay with a simulated PBX and CRM
	$(BIN)/pult-relay demo

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./relay/...

clean:
	rm -rf $(BIN)
