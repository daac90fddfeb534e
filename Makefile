# Kavach — build, demo, test, bench, lint. See README.md.
GO          ?= go
# Flags shared by every build of bin/kavach (the xcaddy test reuses them so
# the build cache is shared).
BUILDFLAGS  ?= -trimpath
TESTFLAGS   ?= -race -count=1 -timeout 60m
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build demo test bench lint fuzz clean

all: build

build:
	$(GO) build $(BUILDFLAGS) -o bin/kavach ./cmd/kavach

demo: build
	@echo
	@echo "bin/kavach is built. The gateway works today: README.md's 'Protecting a"
	@echo "route' walks through a Caddyfile with keys from 'bin/kavach keys generate'"
	@echo "and tokens from 'bin/kavach token mint'."
	@echo
	@echo "The end-to-end demo (issuer + gateway + a demo MCP server) arrives with the"
	@echo "issuer; until then 'make demo' only builds the binary."

test:
	./scripts/deps.sh
	$(GO) test $(TESTFLAGS) ./...

bench:
	./bench/run.sh

lint:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Runs each fuzz target for FUZZTIME (corpus seeds always run in 'make test').
FUZZTIME ?= 30s
fuzz:
	@for t in token:FuzzVerify token:FuzzDecodeClaims token:FuzzDecodeHeader policy:FuzzAttenuate \
	          policy:FuzzParseScopes policy:FuzzConstraintsJSON internal/strictjson:FuzzSkip revocation:FuzzDecodeEntry; do \
		echo "== $$t"; $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$${t%%:*}/ || exit 1; \
	done

clean:
	rm -rf bin
