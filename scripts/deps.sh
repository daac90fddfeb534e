#!/usr/bin/env bash
# Installs what the tests need when it is missing, so `make test` works on a
# fresh machine. Under CI=true anything that cannot be installed fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "deps: $*"; }
fail() { echo "deps: $*" >&2; exit 1; }

command -v go >/dev/null || fail "Go is not installed (need Go 1.26; https://go.dev/dl)"

say "go modules"
go mod download
