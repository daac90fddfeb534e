-- wrk script for the MCP configurations of `make bench`: every request is
-- one JSON-RPC POST of MCP's streamable HTTP transport, stateless (no
-- initialize, no Mcp-Session-Id: each request stands alone).
-- Usage: wrk -s bench/mcp.lua -H "Authorization: Bearer …" URL -- call|list
--   call: tools/call of read_diff (the token's scopes must allow it)
--   list: tools/list (the gateway filters the answer to the token's tools)
-- The request is the same every time, so wrk formats it once, after init.

local bodies = {
   call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_diff","arguments":{}}}',
   list = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
}

function init(args)
   local body = bodies[args[1] or ""]
   if body == nil then
      error("mcp.lua: give call or list after --")
   end
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json, text/event-stream"
end
