// Package bench holds `make bench` (run.sh) and its helpers: cmd mint
// pre-mints tokens, cmd upstream is the trivial upstream (with canned MCP
// answers at /mcp), cmd trail writes an audit trail for `kavach audit
// verify`, fresh.lua walks fresh tokens in wrk, mcp.lua sends MCP
// tools/call and tools/list, and this package's benchmarks measure what
// the kavach handler adds inside Caddy's handler chain, without the
// network.
package bench
