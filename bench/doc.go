// Package bench holds `make bench` (run.sh) and its helpers: cmd mint
// pre-mints tokens, cmd upstream is the trivial upstream, fresh.lua walks
// fresh tokens in wrk, and this package's benchmarks measure what the
// kavach handler adds inside Caddy's handler chain, without the network.
package bench
