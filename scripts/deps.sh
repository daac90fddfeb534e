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

say "go modules"
go mod download
