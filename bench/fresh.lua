-- wrk script for configuration C of `make bench`: a fresh token on every
-- request. Usage: wrk -t T -s bench/fresh.lua URL -- TOKENFILE [T]
-- TOKENFILE holds one token per line, none used by any earlier run (the
-- gateway caches verified tokens, so a repeat would be a cache hit). With
-- T wrk threads (pass the same T after the file: wrk calls init before it
-- has set up the next thread, so the script cannot count them), thread k
-- takes lines k, k+T, k+2T, … so no token is sent twice. The walk wraps
-- only when the file runs out; done() prints "tokens used=N of=M wrapped=W"
-- so run.sh can tell.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local tokens, n, i = {}, 0, 0
used, wrapped, loaded = 0, 0, 0

function init(args)
   local path = args[1]
   if path == nil then
      error("fresh.lua: give the token file after --")
   end
   local k, line_no = id or 0, 0
   local stride = tonumber(args[2] or "1")
   for line in io.lines(path) do
      if line_no % stride == k and line ~= "" then
         n = n + 1
         tokens[n] = "Bearer " .. line
      end
      line_no = line_no + 1
   end
   if n == 0 then
      error("fresh.lua: no tokens for thread " .. k .. " in " .. path)
   end
   loaded = n
end

function request()
   i = i + 1
   if i > n then
      i = 1
      wrapped = wrapped + 1
   end
   used = used + 1
   return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end

function done(summary, latency, requests)
   local u, w, m = 0, 0, 0
   for _, t in ipairs(threads) do
      u = u + t:get("used")
      w = w + t:get("wrapped")
      m = m + t:get("loaded")
   end
   io.write(string.format("tokens used=%d of=%d wrapped=%d\n", u, m, w))
end
