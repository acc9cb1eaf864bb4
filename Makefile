# pult — make demo runs the product on its built-in defaults; make test runs
# every test. Both install what they need on a fresh Debian machine.

SHELL   := /bin/bash
GO      ?= go
BIN     := bin
DIST    := dist
export LANG := en_US.UTF-8

VERSION := $(shell sed -n 's/^Version *= *"\(.*\)"/\1/p' FyneApp.toml)
APP_ID  := $(shell sed -n 's/^ID *= *"\(.*\)"/\1/p' FyneApp.toml)

# System packages. The desktop app compiles against GLFW (cgo); the tests run
# it for real on Xvfb with a session bus, a notification daemon, a
# StatusNotifier host and a real Secret Service (gnome-keyring); the relay's
# wallboard is tested in a real headless Chromium.
APT_BUILD := gcc libc6-dev pkg-config libgl-dev libx11-dev libxcursor-dev libxrandr-dev \
	libxinerama-dev libxi-dev libxxf86vm-dev
APT_TEST  := dbus-daemon gnome-keyring procps xvfb xauth imagemagick dunst \
	haskell-status-notifier-item-utils x11-utils xdotool xclip desktop-file-utils chromium locales
APT_ALL   := $(APT_BUILD) $(APT_TEST)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-go test-desktop vet lint links demo cluster-demo package screenshots clean bench fuzz \
	deps-windows build-windows package-windows test-windows

all: build

deps: ## install system packages and Go modules
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is required (https://go.dev/dl/)"; exit 1; }
	@missing=""; for p in $(APT_ALL); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# The desktop test runs once in Russian, with a real ru_RU.UTF-8 locale.
	@locale -a 2>/dev/null | grep -qix 'ru_RU.utf8' || $(SUDO) localedef -i ru_RU -f UTF-8 ru_RU.UTF-8
	$(GO) mod download

build: ## build the relay and the desktop app into bin/ (the first build of the app takes ~3 min: GLFW's C code)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/pult-relay ./cmd/pult-relay
	$(GO) build -o $(BIN)/pult ./cmd/pult

# vet with fyne's headless `ci` driver (what the unit tests run), for Linux
# and Windows, and the real GLFW build of the desktop app.
vet:
	$(GO) vet -tags ci ./...
	GOOS=windows $(GO) vet -tags ci ./...
	$(GO) vet ./ui ./cmd/pult
	$(GO) vet -tags desktop ./cmd/pult
	$(GO) vet -tags wine ./cmd/pult
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet links ## vet, gofmt, staticcheck and the documents' links
	$(GO) run $(STATICCHECK) -tags ci ./...
	$(GO) run -exec "env GOOS=windows" $(STATICCHECK) -tags ci ./...

# Every relative link in README.md, BENCHMARKS.md and docs/ names a file
# that exists (anchors and web addresses are not checked).
links:
	@fail=0; for f in README.md BENCHMARKS.md docs/*.md; do \
		for l in $$(grep -o '](\([^)#]*\)' $$f | sed 's/^](//' | grep -v '^[a-z][a-z]*:' | grep -v '^$$'); do \
			[ -e "$$(dirname $$f)/$$l" ] || { echo "$$f: broken link: $$l"; fail=1; }; \
		done; \
	done; exit $$fail

# The unit tests run on fyne's headless driver (-tags ci) inside a private
# D-Bus session with a new, unlocked gnome-keyring in a temporary folder, so
# the credential tests use a real Secret Service and never touch the user's
# own keyrings. Then the real desktop test, then the package.
test: deps lint ## run every test: lint, unit (race detector), real desktop, fuzz, package
	CGO_ENABLED=0 $(GO) build -tags ci -o /dev/null ./cmd/pult
	keyrings=$$(mktemp -d) && trap 'rm -rf $$keyrings' EXIT && \
	XDG_DATA_HOME=$$keyrings PULT_TEST_KEYRING=1 dbus-run-session -- bash -c \
		'echo -n pult-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && $(GO) test -race -tags ci -count=1 -timeout 20m ./...'
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-desktop
	$(MAKE) --no-print-directory package
	$(MAKE) --no-print-directory test-windows

# A short fuzz run of each partner parser (their seed corpora are in the
# packages' testdata/fuzz). FUZZTIME is a count of executions, not a
# duration: Go 1.26's fuzz coordinator can fail a duration-bounded run with
# a bare "context deadline exceeded" when it ends while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27), as it did here once on a loaded
# machine. 50 000 executions took 2–5 s per target here (2 cores).
FUZZTIME ?= 50000x
fuzz: ## fuzz the partner parsers briefly
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./relay/uis
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./relay/smartsupp
	$(GO) test -run '^$$' -fuzz '^FuzzParseText$$' -fuzztime $(FUZZTIME) ./relay/transcript
	$(GO) test -run '^$$' -fuzz '^FuzzParseCallEvent$$' -fuzztime $(FUZZTIME) ./relay/retailcrm
	$(GO) test -run '^$$' -fuzz '^FuzzReadFormMultipart$$' -fuzztime $(FUZZTIME) ./relay/retailcrm
	$(GO) test -run '^$$' -fuzz '^FuzzReadFormURLEncoded$$' -fuzztime $(FUZZTIME) ./relay/retailcrm

test-go: ## the Go unit tests only, without the keyring session
	$(GO) test -race -tags ci -count=1 ./...

# The desktop app built for real, on Xvfb with dbus-run-session, dunst,
# status-notifier-watcher and gnome-keyring, against the demo relay
# (cmd/pult/desktop_test.go).
test-desktop: ## the real-desktop test (SCREENSHOTS=dir keeps pictures, FIGURES=file the measurements)
	keyrings=$$(mktemp -d) && trap 'rm -rf $$keyrings' EXIT && \
	XDG_DATA_HOME=$$keyrings XDG_RUNTIME_DIR=$$keyrings PULT_SCREENSHOTS=$(SCREENSHOTS) PULT_FIGURES=$(FIGURES) \
	xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" dbus-run-session -- bash -c \
		'echo -n pult-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && $(GO) test -tags desktop -run TestDesktop -count=1 -v -timeout 10m ./cmd/pult'

screenshots: deps ## the README's pictures of the real app, into assets/screenshots/
	$(MAKE) --no-print-directory test-desktop SCREENSHOTS=$(CURDIR)/assets/screenshots

demo: deps build ## the relay with a simulated PBX and CRM, and the desktop app signed in as operator 100
	$(BIN)/pult-relay demo --data-dir demo-data --app $(BIN)/pult

# Three relays, each a process, their embedded NATS servers in one JetStream
# cluster on loopback (relays on 127.0.0.1:8711-8713, routes on 6711-6713:
# beside `make demo`), the simulated PBX ringing through all of them. It
# prints each relay's pid: kill -9 one and watch the agents move.
cluster-demo: deps build ## three relays in one embedded cluster, a simulated PBX ringing through them all
	$(BIN)/pult-relay demo --cluster 3 --data-dir cluster-demo-data --app $(BIN)/pult

# A Debian package: the app, the relay, the icon and a .desktop file that
# registers pult for tel: and callto: links.
package: deps ## build dist/pult_<version>_<arch>.deb
	@rm -rf $(DIST)/root && mkdir -p $(DIST)/root/DEBIAN $(DIST)/root/usr/bin \
		$(DIST)/root/usr/share/applications $(DIST)/root/usr/share/icons/hicolor/256x256/apps
	$(GO) build -ldflags="-s -w" -o $(DIST)/root/usr/bin/pult ./cmd/pult
	$(GO) build -ldflags="-s -w" -o $(DIST)/root/usr/bin/pult-relay ./cmd/pult-relay
	install -m 644 assets/$(APP_ID).desktop $(DIST)/root/usr/share/applications/
	install -m 644 assets/icon.png $(DIST)/root/usr/share/icons/hicolor/256x256/apps/$(APP_ID).png
	desktop-file-validate $(DIST)/root/usr/share/applications/$(APP_ID).desktop
	arch=$$(dpkg --print-architecture) && \
	printf '%s\n' "Package: pult" "Version: $(VERSION)" "Architecture: $$arch" \
		"Maintainer: pult developers <pult@example.com>" \
		"Depends: libc6, libgl1, libx11-6, libxcursor1, libxrandr2, libxinerama1, libxi6, libxxf86vm1" \
		"Recommends: gnome-keyring | kwalletmanager" \
		"Section: comm" "Priority: optional" \
		"Description: call-center operator's tray agent and its relay" \
		" Call cards with the client's responsible manager, status, click-to-call" \
		" and chat transcripts, between a PBX, retailCRM and Qolio." > $(DIST)/root/DEBIAN/control && \
	dpkg-deb --root-owner-group --build $(DIST)/root $(DIST)/pult_$(VERSION)_$$arch.deb && \
	dpkg-deb --contents $(DIST)/pult_$(VERSION)_$$arch.deb | grep 'usr/share/applications/$(APP_ID).desktop' >/dev/null && \
	rm -rf $(DIST)/root && ls -l $(DIST)/*.deb

# Short versions of the load scenarios (BENCHMARKS.md has the full ones):
# (a) operators with calls ringing 1-3 of them, against the gorilla baseline
# and Centrifugo v6.9.1; (b) idle operators plus calls, idle CPU and RSS per
# connection, against Centrifugo; (c) the relay restarted under connected
# operators; (d) three relays as one cluster, one killed. Then the Go micro-benchmarks. Centrifugo is built with go install
# into the user cache folder the first time (a few minutes).
bench: build
	$(BIN)/pult-relay bench --target all --operators 1000 --rate 200 --duration 10s --ring 1 --ring-max 3 --drain 2s
	$(BIN)/pult-relay bench --target both --operators 2000 --rate 100 --duration 5s --idle 10s --drain 2s
	$(BIN)/pult-relay bench --operators 2000 --rate 100 --duration 9s --restart --drain 3s
	$(BIN)/pult-relay bench --operators 1000 --rate 100 --duration 20s --cluster 3 --kill --drain 3s
	$(GO) test -tags ci -run '^$$' -bench . -benchtime 2s ./relay/... ./ui

# Windows (docs/windows.md): the desktop app cross-built with mingw-w64 (cgo,
# GLFW; the first build takes ~7 min), an MSI made by wixl (msitools) and a
# zip of the same files, tested under Wine 10 in a Debian 13 root made once
# by .ci/wine-root and kept in WINE_ROOT.
APT_WINDOWS := gcc-mingw-w64-x86-64 wixl zip debootstrap
WINE_ROOT   ?= $(HOME)/.cache/pult/wine-root
WIN_DIST    := $(DIST)/windows
WIN_NAME    := pult-$(VERSION)-windows-amd64
WIN_GO      := GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc $(GO)

deps-windows: ## install the Windows cross-build's system packages
	@missing=""; for p in $(APT_WINDOWS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# pult.exe is a GUI program (no console window: the tray app and the tel:
# handler); pult-cli.exe is the same program as a console one, for the
# command line (cmd.exe waits for it, shows its output and exit status).
# Both carry a version resource, the icon and a manifest (go-winres makes
# them into a .syso that go build links in, then it is removed).
WINRES := github.com/tc-hib/go-winres@v0.3.3
build-windows: deps-windows ## dist/windows/pult.exe and pult-cli.exe
	@mkdir -p $(WIN_DIST)
	cd cmd/pult && $(GO) run $(WINRES) simply --arch amd64 --out rsrc --manifest gui \
		--icon ../../assets/icon.ico --product-name pult --product-version $(VERSION) \
		--file-version $(VERSION) --file-description "pult, the call-center operator's agent"
	trap 'rm -f cmd/pult/rsrc_windows_amd64.syso' EXIT && \
	$(WIN_GO) build -ldflags="-s -w -H windowsgui" -o $(WIN_DIST)/pult.exe ./cmd/pult && \
	$(WIN_GO) build -ldflags="-s -w" -o $(WIN_DIST)/pult-cli.exe ./cmd/pult

package-windows: build-windows ## dist/pult-<version>-windows-amd64.msi and .zip
	cp assets/icon.ico $(WIN_DIST)/pult.ico
	wixl --arch x64 -D Version=$(VERSION) -D Bin=$(WIN_DIST) -D Icon=$(WIN_DIST)/pult.ico \
		-o $(DIST)/$(WIN_NAME).msi assets/pult.wxs
	rm -rf $(DIST)/$(WIN_NAME) $(DIST)/$(WIN_NAME).zip && mkdir -p $(DIST)/$(WIN_NAME) && \
	cp $(WIN_DIST)/pult.exe $(WIN_DIST)/pult-cli.exe $(WIN_DIST)/pult.ico $(DIST)/$(WIN_NAME)/ && \
	(cd $(DIST) && zip -qr $(WIN_NAME).zip $(WIN_NAME)) && rm -rf $(DIST)/$(WIN_NAME)
	ls -l $(DIST)/$(WIN_NAME).msi $(DIST)/$(WIN_NAME).zip

# The MSI and the app under Wine 10 and Xvfb, against the demo relay
# (cmd/pult/wine_test.go). WINE_OUT keeps the screenshots and figures.
WINE_OUT ?= $(CURDIR)/$(DIST)/wine-test
test-windows: package-windows ## install and run the Windows app under Wine (the root is made once, ~5 min)
	$(SUDO) .ci/wine-root $(WINE_ROOT)
	$(SUDO) env PULT_WINE_ROOT=$(WINE_ROOT) PULT_WINE_MSI=$(CURDIR)/$(DIST)/$(WIN_NAME).msi PULT_WINE_OUT=$(WINE_OUT) \
		$(GO) test -tags wine -run TestWine -count=1 -v -timeout 15m ./cmd/pult

clean:
	rm -rf $(BIN) $(DIST)
