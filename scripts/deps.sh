#!/usr/bin/env bash
# Installs what the tests need when it is missing, so `make test` works on a
# fresh machine. Under CI=true anything that cannot be installed fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "deps: $*"; }
fail() { echo "deps: $*" >&2; exit 1; }

command -v go >/dev/null || fail "Go is not installed (need Go 1.26; https://go.dev/dl)"

# apt_need BINARY PACKAGE...: installs the Debian packages when BINARY is missing.
apt_updated=
apt_need() {
  local bin=$1; shift
  command -v "$bin" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null || fail "$bin is missing and apt-get is not available to install $*"
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    $sudo apt-get update -qq >/dev/null || fail "apt-get update failed"
    apt_updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
  command -v "$bin" >/dev/null 2>&1 || fail "$bin still missing after installing $*"
}

# Revocation tests run real Redis servers (DESIGN.md §5).
apt_need redis-server redis-server

# apt_need_file GLOB PACKAGE...: apt_need for a program that is not on PATH.
apt_need_file() {
  local glob=$1; shift
  compgen -G "$glob" >/dev/null && return 0
  command -v apt-get >/dev/null || fail "$glob is missing and apt-get is not available to install $*"
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    $sudo apt-get update -qq >/dev/null || fail "apt-get update failed"
    apt_updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
  compgen -G "$glob" >/dev/null || fail "$glob still missing after installing $*"
}

# Store and integration tests run a real PostgreSQL (DESIGN.md §7); Debian
# keeps its binaries in /usr/lib/postgresql/<version>/bin. The package may
# create and start a cluster of its own: tests never use it, they start
# their own server (internal/pgtest).
apt_need_file '/usr/lib/postgresql/*/bin/initdb' postgresql

# The browser test drives the issuer's login and consent pages in headless
# Chromium over the DevTools Protocol (integration/browser_test.go).
apt_need chromium chromium

# make demo-check (integration/demo_check_unix_test.go) drives the demo
# with curl.
apt_need curl curl

# The MCP TypeScript SDK test (integration/mcp_ts_test.go) runs the SDK's
# client on Node.js, installed from integration/tsclient's committed
# lockfile: npm ci when node_modules is missing or was installed from
# another package.json or lockfile (a checksum of both is kept in it).
apt_need node nodejs
apt_need npm npm
tsclient=integration/tsclient
ts_sum=$(cat "$tsclient/package.json" "$tsclient/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$tsclient/node_modules/.kavach-installed" 2>/dev/null)" != "$ts_sum" ]; then
  say "npm ci in $tsclient"
  (cd "$tsclient" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || fail "npm ci in $tsclient failed"
  echo "$ts_sum" >"$tsclient/node_modules/.kavach-installed"
fi

# The xcaddy test (xcaddy_test.go) builds Caddy with this checkout as a
# plugin. `go install` puts xcaddy in GOBIN, else GOPATH/bin, where the
# test looks too: neither need be on PATH.
XCADDY_VERSION=v0.4.5
gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin=$(go env GOPATH | cut -d: -f1)/bin
if ! command -v xcaddy >/dev/null && [ ! -x "$gobin/xcaddy" ]; then
  say "installing xcaddy $XCADDY_VERSION"
  go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION" || fail "go install xcaddy@$XCADDY_VERSION failed"
fi

say "go modules"
go mod download
