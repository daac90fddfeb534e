# Kavach — build, demo, test, bench, lint. See README.md.
GO          ?= go
# Flags shared by every build of bin/kavach (the xcaddy test reuses them so
# the build cache is shared).
BUILDFLAGS  ?= -trimpath
TESTFLAGS   ?= -race -count=1 -timeout 60m
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build demo demo-check test bench lint fuzz clean

all: build

build:
	$(GO) build $(BUILDFLAGS) -o bin/kavach ./cmd/kavach

# IDP=1: also a local OpenID provider people sign in through (demo/idp).
demo: build
	GO="$(GO)" BUILDFLAGS="$(BUILDFLAGS)" IDP="$(IDP)" ./scripts/demo.sh

# The demo's story, run non-interactively with every step checked (IDP=1 too).
demo-check: build
	GO="$(GO)" BUILDFLAGS="$(BUILDFLAGS)" IDP="$(IDP)" ./scripts/demo.sh --check

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
	          policy:FuzzParseScopes policy:FuzzConstraintsJSON internal/strictjson:FuzzSkip revocation:FuzzDecodeEntry \
	          mcp:FuzzDecode mcp:FuzzToolsFilterSSE audit:FuzzParseLine audit:FuzzParseCheckpoint \
	          caddymodule:FuzzUnmarshalCaddyfile; do \
		echo "== $$t"; $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$${t%%:*}/ || exit 1; \
	done

clean:
	rm -rf bin demo-data
