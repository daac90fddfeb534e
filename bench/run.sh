#!/usr/bin/env bash
# make bench: budgets of DESIGN.md §9, measured as ratios in one run.
# On two shared cores one run is noise, so configurations are interleaved
# (A B A B …, ROUNDS times) and medians are reported.
#
# 1. token: full Verify vs raw ed25519.Verify (Go benchmarks).
# 2. gateway over HTTP, bin/kavach on loopback driven by wrk:
#      A  bare reverse_proxy
#      B  kavach + reverse_proxy, one cached token
#      C  kavach + reverse_proxy, a fresh token on every request
#      D  as B, in a second bin/kavach whose revocation set is a real
#         redis-server (cluster mode): the request path must not notice
#      E  as B, in a third bin/kavach with the audit trail on (the default
#         file sink in Caddy's data directory; A-D run with `audit off`)
#      M0 bare reverse_proxy to an MCP server, tools/call (JSON-RPC POSTs)
#      M  kavach MCP route (`tool` rules) + reverse_proxy, tools/call, cached token
#      L0, L  the same with tools/list: the gateway filters the answer (4 tools
#         to the token's 2)
#      R  as B with a rate limit (`rate 1000000/s per agent`) the requests
#         stay under, buckets in memory: budget <= 1 us of gateway CPU added
#      RD as D (cluster mode) with the same limit, buckets in Redis: one
#         round trip per request (counted with Redis' INFO commandstats)
#    interleaved A B C D E M0 M L0 L R RD (under load) then A B C L0 L (one
#    connection), ROUNDS times.
# 3. gateway: BenchmarkDecideCached (the cache-hit decision alone), and
#    bench/caddy_test.go: the kavach handler in Caddy's handler chain without
#    the network, a CPU cost that moves less with the machine's load.
#    audit: records/s through the Writer into the file sink, group commit
#    and fsync (audit.BenchmarkWriterFile), and `bin/kavach audit verify` on
#    a trail of TRAIL_RECORDS gateway-shaped records (bench/trail).
# 4. one table: every budget, its target, the median measured, and whether
#    B really hit the verify cache, C really verified every request and E
#    really wrote a trail that verifies.
# Exits non-zero only when something fails to run; a missed budget is
# reported as MISSED, not as a failure.
#
# Knobs (environment): ROUNDS (5), DURATION (5 s per run under load),
# LAT_DURATION (3 s per one-connection run), WARMUP (1 s before every run;
# 0: none),
# CONNS (16 connections under load), SKIP_BUILD=1 (use bin/kavach as is),
# FILL_CACHE (1: fill the verify cache before round 1; 0: start empty),
# TRAIL_RECORDS (200000: records of the trail `audit verify` reads),
# MCP_UPSTREAM (canned: bench/upstream answers tools/call and tools/list
# with the demo server's bytes; sdk: demo/server itself, official MCP Go
# SDK, stateless: realistic, but its CPU cost bounds both M and M0),
# BENCH_NICE (0; e.g. -10, as root, gives the measured processes priority
# over the rest of a shared machine: less noise, at the others' expense),
# BENCH_ONLY (empty: everything; R: only configuration R and what it is
# compared with, A B D R RD, plus the limiter's micro-benchmark: a quick
# look at the rate limit's cost).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
LAT_DURATION=${LAT_DURATION:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-16}
NICE=${BENCH_NICE:-0}
TRAIL_RECORDS=${TRAIL_RECORDS:-200000}
MCP_UPSTREAM=${MCP_UPSTREAM:-canned}
case $MCP_UPSTREAM in canned | sdk) ;; *) echo "bench: MCP_UPSTREAM is canned or sdk" >&2; exit 1 ;; esac
[[ $TRAIL_RECORDS =~ ^[1-9][0-9]*$ ]] || { echo "bench: TRAIL_RECORDS must be a positive integer" >&2; exit 1; }
ONLY=${BENCH_ONLY:-}
case $ONLY in "" | R) ;; *) echo "bench: BENCH_ONLY is empty or R" >&2; exit 1 ;; esac
out=$(mktemp -d)
pids=() # every process this script starts, killed by pid on any exit
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$out"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) exit 1; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

if [ "$ONLY" != R ]; then
echo "== token: full Verify vs raw ed25519.Verify (uncached decision budget: <= 1.35x)"
go test -c -o "$out/token.test" ./token/ >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  for b in BenchmarkVerify BenchmarkEd25519Verify; do
    "$out/token.test" -test.run '^$' -test.bench "^${b}\$" -test.benchmem -test.benchtime 1s \
      | awk -v b="$b" '$1 ~ "^"b"(-[0-9]+)?$" {print $3, $5, $7}' >>"$out/$b"
  done
done
v=$(cut -d' ' -f1 "$out/BenchmarkVerify" | median)
r=$(cut -d' ' -f1 "$out/BenchmarkEd25519Verify" | median)
va=$(cut -d' ' -f3 "$out/BenchmarkVerify" | median)
printf '%-28s %12s %10s\n' "benchmark (median of $ROUNDS)" "ns/op" "allocs/op"
printf '%-28s %12.0f %10s\n' "Verify (full)" "$v" "$va"
printf '%-28s %12.0f %10s\n' "ed25519.Verify (raw)" "$r" "0"
awk -v v="$v" -v r="$r" 'BEGIN {printf "ratio Verify/raw            %12.2fx  (budget <= 1.35x)\n", v/r}'
fi

# ---------------------------------------------------------------------------
# 2. The gateway over HTTP.
#
# Placement on the two cores: the gateway (bin/kavach, GOMAXPROCS=1) has
# core 0 to itself; wrk (one thread) and the upstream (a tiny Go server,
# GOMAXPROCS=1) share core 1. The upstream is a separate process on core 1,
# not a site in the gateway, because the budget is about what kavach adds
# to the gateway: upstream work on core 0 would take a fixed share of the
# gateway's core and dilute every ratio towards 1. Each run reports the
# gateway's share of core 0 (near 100%: the gateway, not wrk, is the limit)
# and the CPU other processes of the machine took on each core (the noise).
echo
echo "== gateway: bin/kavach on loopback, wrk; A bare reverse_proxy, B kavach cached token, C kavach fresh token,"
echo "   D as B with Redis, E as B with the audit trail on, M/L MCP tools/call and tools/list (M0/L0 bare)"
for tool in taskset curl python3 getconf; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
[[ $NICE =~ ^-?[0-9]+$ ]] || { echo "bench: BENCH_NICE must be an integer" >&2; exit 1; }
[ "$NICE" -ge 0 ] || [ "$(id -u)" = 0 ] || { echo "bench: BENCH_NICE below 0 needs root" >&2; exit 1; }
command -v redis-server >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; } \
  || { echo "bench: redis-server missing and could not be installed" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  echo "installing wrk…"
  { apt-get update && apt-get install -y wrk; } >"$out/apt.log" 2>&1 || { tail -5 "$out/apt.log" >&2; echo "bench: could not install wrk" >&2; exit 1; }
fi
if [ "${SKIP_BUILD:-}" != 1 ]; then
  make --no-print-directory build >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; echo "bench: make build failed" >&2; exit 1; }
fi
[ -x bin/kavach ] || { echo "bench: no bin/kavach" >&2; exit 1; }
go build -o "$out/mint" ./bench/mint || { echo "bench: ./bench/mint does not build" >&2; exit 1; }
go build -o "$out/upstream" ./bench/upstream || { echo "bench: ./bench/upstream does not build" >&2; exit 1; }
go build -o "$out/trail" ./bench/trail || { echo "bench: ./bench/trail does not build" >&2; exit 1; }
if [ "$MCP_UPSTREAM" = sdk ]; then
  go build -o "$out/mcpserver" ./demo/server || { echo "bench: ./demo/server does not build" >&2; exit 1; }
fi
KAVACH=$PWD/bin/kavach
CLK_TCK=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
wait_port() { # wait_port PORT PID: until PORT accepts, failing if PID died or after 20 s
  local i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

cd "$out"
ISS=https://issuer.bench.test
"$KAVACH" keys generate --out key.jwk >/dev/null
"$KAVACH" keys jwks --in key.jwk >jwks.json
export XDG_DATA_HOME=$out/xdg XDG_CONFIG_HOME=$out/xdg # Caddy's storage stays in the temp dir

GOMAXPROCS=1 nice -n "$NICE" taskset -c 1 ./upstream >upstream.addr 2>upstream.log &
pids+=($!); up_pid=$!
for _ in $(seq 1 100); do [ -s upstream.addr ] && break; kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
UP=$(head -1 upstream.addr)
[ -n "$UP" ] || { cat upstream.log >&2; echo "bench: upstream did not start" >&2; exit 1; }
# The MCP server of M, M0, L and L0 (the process whose CPU on core 1 is
# not noise during those runs): by default the upstream above, answering
# with canned bytes; with MCP_UPSTREAM=sdk the demo's own server, stateless
# with JSON answers (no initialize or session per request). It logs every
# call: to /dev/null, or the log would be the bench's biggest file.
if [ "$MCP_UPSTREAM" = sdk ]; then
  MCPUP=127.0.0.1:$(free_port)
  GOMAXPROCS=1 nice -n "$NICE" taskset -c 1 ./mcpserver -addr "$MCPUP" -stateless >/dev/null 2>&1 &
  pids+=($!); mcp_pid=$!
  wait_port "${MCPUP##*:}" "$mcp_pid" || { echo "bench: demo/server did not start (try: go run ./demo/server -addr $MCPUP -stateless)" >&2; exit 1; }
else
  MCPUP=$UP; mcp_pid=$up_pid
fi

PA=$(free_port); PB=$(free_port); PM=$(free_port); PD=$(free_port); PM2=$(free_port); PR=$(free_port)
PE=$(free_port); PM3=$(free_port); PMA=$(free_port); PMB=$(free_port); PRM=$(free_port); PRR=$(free_port)
RES=http://127.0.0.1:$PB/api
RESD=http://127.0.0.1:$PD/api
RESE=http://127.0.0.1:$PE/api
RESM=http://127.0.0.1:$PMB/mcp
RESR=http://127.0.0.1:$PRM/api
RESRD=http://127.0.0.1:$PRR/api
cat >Caddyfile <<CF
{
	admin 127.0.0.1:$PM
	persist_config off
	auto_https off
	kavach {
		trusted_keys $ISS ./jwks.json
		# The gateway budgets of issue 4 are without the audit trail (on by
		# default); its cost is measured on its own (E, a third gateway).
		audit off
	}
}
# A: bare reverse proxy
http://127.0.0.1:$PA {
	reverse_proxy $UP
}
# B and C: kavach + reverse proxy
http://127.0.0.1:$PB {
	kavach /api/* {
		resource $RES
		scope GET /api/* bench:read
	}
	reverse_proxy $UP
}
# M0 and L0: bare reverse proxy to the MCP server
http://127.0.0.1:$PMA {
	reverse_proxy $MCPUP
}
# M and L: a kavach MCP route, as in Caddyfile.example, + reverse proxy
http://127.0.0.1:$PMB {
	kavach /mcp* {
		mcp
		resource $RESM
		scope mcp:bench
		tool read_diff    pullrequest:read
		tool read_file    repository:read
		tool write_file   repository:write
		tool post_comment comment:write
	}
	reverse_proxy /mcp* $MCPUP
}
# R: B's route with a rate limit the requests stay under (memory buckets)
http://127.0.0.1:$PRM {
	kavach /api/* {
		resource $RESR
		scope GET /api/* bench:read
		rate 1000000/s per agent
	}
	reverse_proxy $UP
}
CF
GOMAXPROCS=1 nice -n "$NICE" taskset -c 0 "$KAVACH" run --config Caddyfile --adapter caddyfile >gateway.log 2>&1 &
pids+=($!); gw_pid=$!
if ! wait_port "$PA" "$gw_pid" || ! wait_port "$PB" "$gw_pid" || ! wait_port "$PMB" "$gw_pid" || ! wait_port "$PRM" "$gw_pid"; then
  tail -20 gateway.log >&2; echo "bench: bin/kavach did not start" >&2; exit 1
fi

# D: a second gateway, in cluster mode, on the same core (idle while the
# first is measured, and the other way round). Redis shares core 1 with wrk
# and the upstream; the gateway only pings it once a second.
nice -n "$NICE" taskset -c 1 redis-server --port "$PR" --bind 127.0.0.1 --save '' --appendonly no >redis.log 2>&1 &
pids+=($!); redis_pid=$!
wait_port "$PR" "$redis_pid" || { tail -20 redis.log >&2; echo "bench: redis-server did not start" >&2; exit 1; }
cat >Caddyfile.redis <<CF
{
	admin 127.0.0.1:$PM2
	persist_config off
	auto_https off
	kavach {
		trusted_keys $ISS ./jwks.json
		redis redis://127.0.0.1:$PR/0
		audit off
	}
}
# D: kavach (revocation through Redis) + reverse proxy
http://127.0.0.1:$PD {
	kavach /api/* {
		resource $RESD
		scope GET /api/* bench:read
	}
	reverse_proxy $UP
}
# RD: D's route with R's rate limit, its buckets in Redis
http://127.0.0.1:$PRR {
	kavach /api/* {
		resource $RESRD
		scope GET /api/* bench:read
		rate 1000000/s per agent
	}
	reverse_proxy $UP
}
CF
XDG_DATA_HOME=$out/xdg2 XDG_CONFIG_HOME=$out/xdg2 GOMAXPROCS=1 nice -n "$NICE" taskset -c 0 "$KAVACH" run --config Caddyfile.redis --adapter caddyfile >gateway2.log 2>&1 &
pids+=($!); gw2_pid=$!
{ wait_port "$PD" "$gw2_pid" && wait_port "$PRR" "$gw2_pid"; } || { tail -20 gateway2.log >&2; echo "bench: the Redis-mode bin/kavach did not start" >&2; exit 1; }

# E: a third gateway, the same as B's but with the audit trail on: no
# `audit` option, so the default, a file sink in Caddy's data directory
# (here $out/xdg3/caddy/kavach/audit/), fsync batching and all. Each
# request is two records (decision and outcome).
cat >Caddyfile.audit <<CF
{
	admin 127.0.0.1:$PM3
	persist_config off
	auto_https off
	kavach {
		trusted_keys $ISS ./jwks.json
	}
}
# E: kavach (audit trail on) + reverse proxy
http://127.0.0.1:$PE {
	kavach /api/* {
		resource $RESE
		scope GET /api/* bench:read
	}
	reverse_proxy $UP
}
CF
XDG_DATA_HOME=$out/xdg3 XDG_CONFIG_HOME=$out/xdg3 GOMAXPROCS=1 nice -n "$NICE" taskset -c 0 "$KAVACH" run --config Caddyfile.audit --adapter caddyfile >gateway3.log 2>&1 &
pids+=($!); gw3_pid=$!
wait_port "$PE" "$gw3_pid" || { tail -20 gateway3.log >&2; echo "bench: the audit-on bin/kavach did not start" >&2; exit 1; }

mint() { ./mint -key key.jwk -iss "$ISS" -aud "$RES" -scope bench:read "$@"; }
TOKEN=$(mint -n 1)
TOKEN_D=$(./mint -key key.jwk -iss "$ISS" -aud "$RESD" -scope bench:read -n 1)
TOKEN_E=$(./mint -key key.jwk -iss "$ISS" -aud "$RESE" -scope bench:read -n 1)
TOKEN_R=$(./mint -key key.jwk -iss "$ISS" -aud "$RESR" -scope bench:read -n 1)
TOKEN_RD=$(./mint -key key.jwk -iss "$ISS" -aud "$RESRD" -scope bench:read -n 1)
# MCP: the route's scope and two of the four tools (read_diff, read_file).
TOKEN_M=$(./mint -key key.jwk -iss "$ISS" -aud "$RESM" -scope "mcp:bench pullrequest:read repository:read" -n 1)
UA=http://127.0.0.1:$PA/api/x
UB=http://127.0.0.1:$PB/api/x
UD=http://127.0.0.1:$PD/api/x
UE=http://127.0.0.1:$PE/api/x
UR=http://127.0.0.1:$PRM/api/x
URD=http://127.0.0.1:$PRR/api/x
UMA=http://127.0.0.1:$PMA/mcp
UMB=$RESM
# The setup answers as it should before anything is measured.
expect() { # expect CODE curl-args…
  local want=$1 got; shift
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@") || true
  [ "$got" = "$want" ] || { tail -20 gateway.log >&2; echo "bench: setup check failed: got $got, want $want for $*" >&2; exit 1; }
}
expect 200 "$UA"
expect 401 "$UB"
expect 200 -H "Authorization: Bearer $TOKEN" "$UB"
last=${TOKEN: -1}; [ "$last" = A ] && flip=B || flip=A
expect 401 -H "Authorization: Bearer ${TOKEN%?}$flip" "$UB"
expect 401 "$UD"
expect 200 -H "Authorization: Bearer $TOKEN_D" "$UD"
curl -sf --max-time 5 "http://127.0.0.1:$PM2/metrics" | grep -q '^kavach_revocation_fresh 1' \
  || { tail -20 gateway2.log >&2; echo "bench: the Redis-mode gateway does not report a fresh revocation set" >&2; exit 1; }
expect 401 "$UE"
expect 200 -H "Authorization: Bearer $TOKEN_E" "$UE"
expect 401 "$UR"
expect 200 -H "Authorization: Bearer $TOKEN_R" "$UR"
# RD: every request under the limit is one Redis round trip (the limiter's
# EVALSHA; the first request of a process may add one EVAL that loads the
# script), counted by Redis itself.
evalcalls() { # evalcalls: EVAL + EVALSHA calls Redis has served
  python3 - "$PR" <<'PY'
import socket, sys, re
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
buf = b""
while True:
    buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n")
    if head.startswith(b"$") and len(rest) >= int(head[1:]):
        break
print(sum(int(n) for n in re.findall(rb"cmdstat_eval(?:sha)?:calls=(\d+)", rest)))
PY
}
expect 200 -H "Authorization: Bearer $TOKEN_RD" "$URD"
ev0=$(evalcalls) || { echo "bench: could not read Redis INFO commandstats" >&2; exit 1; }
for _ in $(seq 1 50); do expect 200 -H "Authorization: Bearer $TOKEN_RD" "$URD"; done
ev1=$(evalcalls)
rd_trips=$(awk -v a="$ev0" -v b="$ev1" 'BEGIN {printf "%.2f", (b - a) / 50}')
echo "RD: $rd_trips Redis round trips (EVAL/EVALSHA) per request under the limit (50 requests)"
# MCP: the requests bench/mcp.lua sends (JSON-RPC POSTs, stateless).
rpc() { # rpc METHOD [TOOL]: curl arguments of a JSON-RPC POST
  local body='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  [ "$1" = tools/call ] && body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"'$2'","arguments":{}}}'
  printf '%s\n' -X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d "$body"
}
mapfile -t call_diff < <(rpc tools/call read_diff)
mapfile -t call_write < <(rpc tools/call write_file)
mapfile -t list < <(rpc tools/list)
expect 401 "${call_diff[@]}" "$UMB"
expect 200 -H "Authorization: Bearer $TOKEN_M" "${call_diff[@]}" "$UMA"
expect 200 -H "Authorization: Bearer $TOKEN_M" "${call_diff[@]}" "$UMB"
expect 403 -H "Authorization: Bearer $TOKEN_M" "${call_write[@]}" "$UMB"
ntools() { # ntools URL: how many tools tools/list answers with TOKEN_M
  curl -sf --max-time 5 -H "Authorization: Bearer $TOKEN_M" "${list[@]}" "$1" \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["result"]["tools"]))'
}
nbare=$(ntools "$UMA") || nbare=error; nkav=$(ntools "$UMB") || nkav=error
[ "$nbare" = 4 ] && [ "$nkav" = 2 ] \
  || { tail -20 gateway.log >&2; echo "bench: tools/list answers $nbare tools bare and $nkav through kavach, want 4 and 2" >&2; exit 1; }

# The gateway a run measures: its pid and admin port (D: the second one,
# E: the third), and the upstream (M, M0, L, L0: the MCP server).
cur_gw=$gw_pid; cur_pm=$PM; cur_up=$up_pid
metric() { # metric NAME{labels}: the counter's value from the measured gateway's admin /metrics
  curl -sf --max-time 5 "http://127.0.0.1:$cur_pm/metrics" | awk -v m="$1" '$1 == m {v = $2} END {printf "%.0f\n", v + 0}'
}
ticks() { # ticks PID: a process's CPU time (user + system), in clock ticks
  [ -r "/proc/$1/stat" ] || { tail -20 gateway.log >&2; echo "bench: process $1 is gone (crashed, or interrupted)" >&2; exit 1; }
  awk '{print $14 + $15}' "/proc/$1/stat"
}
# per core: busy (user, nice, system: what processes are charged) and all jiffies;
# irq and softirq time (our own loopback traffic, mostly) is in neither process's
cpu_snap() { awk '/^cpu[01] / {b = $2 + $3 + $4; printf "%s %s ", b, b + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# wrk_run NAME CONNS SECONDS URL [wrk args…]: one bounded wrk run on core 1,
# its output in NAME.wrk and one line of facts in NAME.facts:
#   1 req/s  2 p50 ms  3 p99 ms  4 requests  5 non-2xx  6 socket errors
#   7 gateway CPU us/request  8 gateway's share of core 0
#   9 core 0 busy  10 core 1 busy  11 cache hits  12 cache misses
#   13 token walks wrapped  14 other processes on core 0  15 on core 1
#   16 p90 ms
# (shares are fractions of the run's wall time; "other processes" is a core's
# busy time minus what the gateway, resp. wrk and the upstream, used: the
# machine's other work, i.e. the noise).
wrk_run() {
  local name=$1 conns=$2 secs=$3 url=$4; shift 4
  local t0 c0 h0 m0 u0 t1 c1 h1 m1 u1 s0 s1 bad TIMEFORMAT='%U %S'
  h0=$(metric 'kavach_verify_cache_total{result="hit"}')
  m0=$(metric 'kavach_verify_cache_total{result="miss"}')
  t0=$(ticks "$cur_gw"); u0=$(ticks "$cur_up"); c0=$(cpu_snap); s0=$(date +%s%N)
  { time timeout --foreground -k 5 $((secs + 30)) nice -n "$NICE" taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "$url" "$@" >"$name.wrk" 2>&1; } 2>"$name.time" \
    || { cat "$name.wrk" >&2; echo "bench: wrk failed ($name)" >&2; exit 1; }
  s1=$(date +%s%N); c1=$(cpu_snap); t1=$(ticks "$cur_gw"); u1=$(ticks "$cur_up")
  h1=$(metric 'kavach_verify_cache_total{result="hit"}')
  m1=$(metric 'kavach_verify_cache_total{result="miss"}')
  awk -v tk=$((t1 - t0)) -v utk=$((u1 - u0)) -v wcpu="$(awk '{print $1 + $2}' "$name.time")" -v hz="$CLK_TCK" \
      -v ns=$((s1 - s0)) -v c0="$c0" -v c1="$c1" -v hits=$((h1 - h0)) -v miss=$((m1 - m0)) '
    function ms(v,   n, u) { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000; if (u == "ms") return n; if (u == "s") return n * 1000
      if (u == "m") return n * 60000; return n }
    function pos(x) { return x < 0 ? 0 : x }
    /^ +50%/ { p50 = ms($2) } /^ +90%/ { p90 = ms($2) } /^ +99%/ { p99 = ms($2) }
    / requests in / { req = $1 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(/,/, ""); serr = $4 + $6 + $8 + $10 }
    /^Requests\/sec:/ { rps = $2 }
    /^tokens used=/ { split($4, w, "="); wrapped = w[2] }
    END {
      if (rps == "" || p99 == "") { print "unparsed" > "/dev/stderr"; exit 1 }
      split(c0, a, " "); split(c1, b, " ")
      cpu = tk / hz; wall = ns / 1e9
      t0 = (b[2] - a[2]) / hz; t1 = (b[4] - a[4]) / hz # jiffies of each core in the window
      printf "%.1f %.4f %.4f %d %d %d %.2f %.3f %.3f %.3f %d %d %d %.3f %.3f %.4f\n", rps, p50, p99, req, bad + 0, serr + 0,
        (req > 0 ? cpu * 1e6 / req : 0), cpu / wall,
        (b[1] - a[1]) / (b[2] - a[2]), (b[3] - a[3]) / (b[4] - a[4]), hits, miss, wrapped + 0,
        pos((b[1] - a[1]) / hz - cpu) / t0, pos((b[3] - a[3]) / hz - utk / hz - wcpu) / t1, p90
    }' "$name.wrk" >"$name.facts" || { cat "$name.wrk" >&2; echo "bench: could not read wrk output ($name)" >&2; exit 1; }
  bad=$(awk '{print $5}' "$name.facts")
  if [ "$bad" != 0 ]; then
    cat "$name.wrk" >&2; tail -5 gateway.log >&2
    echo "bench: $name: $bad responses were not 2xx: the setup is broken, the numbers would be meaningless" >&2
    exit 1
  fi
}

# Configuration C needs a token no earlier request used (a repeat would be
# a cache hit). C does everything B does and a verification besides, so B
# bounds C's rate: before every C run, mint (the highest B rate seen so far
# at that connection count) × seconds × 2 (+2000) tokens into a file of its
# own (warm-ups included). The Lua script reports any wrap, and the
# verify-cache counters show any hit.
fresh_tokens() { # fresh_tokens FILE RATE SECONDS
  mint -out - -n "$(awk -v r="$2" -v d="$3" 'BEGIN {printf "%d\n", r * d * 2 + 2000}')" >"$1"
}
declare -A URL=([A]=$UA [B]=$UB [C]=$UB [D]=$UD [E]=$UE [M0]=$UMA [M]=$UMB [L0]=$UMA [L]=$UMB [R]=$UR [RD]=$URD)
args() { # args CONFIG TOKENFILE: wrk arguments of a configuration
  case $1 in
    # A carries the same token: clients send it either way, so the ratio
    # measures what kavach adds, not what a 700-byte header costs Go's HTTP
    # parser (about 6% here; bare reverse_proxy forwards it upstream).
    A | B) printf '%s\n' -H "Authorization: Bearer $TOKEN" ;;
    D) printf '%s\n' -H "Authorization: Bearer $TOKEN_D" ;;
    E) printf '%s\n' -H "Authorization: Bearer $TOKEN_E" ;;
    R) printf '%s\n' -H "Authorization: Bearer $TOKEN_R" ;;
    RD) printf '%s\n' -H "Authorization: Bearer $TOKEN_RD" ;;
    C) printf '%s\n' -s "$ROOT/bench/fresh.lua" -- "$2" 1 ;;
    # The bare MCP runs carry the token too, as A does.
    M0 | M) printf '%s\n' -H "Authorization: Bearer $TOKEN_M" -s "$ROOT/bench/mcp.lua" -- call ;;
    L0 | L) printf '%s\n' -H "Authorization: Bearer $TOKEN_M" -s "$ROOT/bench/mcp.lua" -- list ;;
  esac
}
show() { # show LABEL FACTSFILE
  awk -v l="$1" '{printf "  %-8s %6.0f req/s  p50 %6.3f  p99 %6.3f ms  gw %5.1f us/req, %3.0f%% of core 0  others %2.0f%%/%2.0f%%  hits %d misses %d%s%s\n",
    l, $1, $2, $3, $7, $8 * 100, $14 * 100, $15 * 100, $11, $12, ($13 > 0 ? "  WRAPPED " $13 "x" : ""), ($6 > 0 ? "  socket errors " $6 : "")}' "$2"
}
best_rate() { # best_rate CONNS FACTSFILE: keep the highest B rate at CONNS in cCONNS.B.rate
  { cat "$2"; [ ! -f "c$1.B.rate" ] || cat "c$1.B.rate"; } | sort -g -r | head -1 >"c$1.B.rate.new"
  mv "c$1.B.rate.new" "c$1.B.rate"
}
# one CONFIG CONNS SECONDS NAME: a warm-up, then the measured run
one() {
  local cfg=$1 conns=$2 secs=$3 name=$4 a
  case $cfg in
    D | RD) cur_gw=$gw2_pid cur_pm=$PM2 ;;
    E) cur_gw=$gw3_pid cur_pm=$PM3 ;;
    *) cur_gw=$gw_pid cur_pm=$PM ;;
  esac
  case $cfg in M0 | M | L0 | L) cur_up=$mcp_pid ;; *) cur_up=$up_pid ;; esac
  if [ "$cfg" = C ]; then
    local rate
    rate=$(awk '{print $1}' "c$conns.B.rate")
    fresh_tokens warm.tok "$rate" "$WARMUP"
    fresh_tokens run.tok "$rate" "$secs"
  fi
  if [ "$WARMUP" != 0 ]; then
    mapfile -t a < <(args "$cfg" warm.tok)
    wrk_run warm "$conns" "$WARMUP" "${URL[$cfg]}" "${a[@]}"
  fi
  mapfile -t a < <(args "$cfg" run.tok)
  wrk_run "$name.$cfg" "$conns" "$secs" "${URL[$cfg]}" "${a[@]}"
  [ "$cfg" != B ] || best_rate "$conns" "$name.B.facts"
}
echo "warming up…"
wrk_run warm "$CONNS" 2 "$UA"
wrk_run warm "$CONNS" 2 "$UB" -H "Authorization: Bearer $TOKEN"
best_rate "$CONNS" warm.facts
cur_gw=$gw2_pid cur_pm=$PM2
wrk_run warm "$CONNS" 2 "$UD" -H "Authorization: Bearer $TOKEN_D"
cur_gw=$gw3_pid cur_pm=$PM3
wrk_run warm "$CONNS" 2 "$UE" -H "Authorization: Bearer $TOKEN_E"
cur_gw=$gw_pid cur_pm=$PM cur_up=$mcp_pid
wrk_run warm "$CONNS" 2 "$UMB" -H "Authorization: Bearer $TOKEN_M" -s "$ROOT/bench/mcp.lua" -- call
wrk_run warm "$CONNS" 2 "$UMB" -H "Authorization: Bearer $TOKEN_M" -s "$ROOT/bench/mcp.lua" -- list
cur_up=$up_pid
wrk_run warm 1 1 "$UB" -H "Authorization: Bearer $TOKEN"
best_rate 1 warm.facts
fresh_tokens warm.tok "$(awk '{print $1}' "c$CONNS.B.rate")" 2
wrk_run warm "$CONNS" 2 "$UB" -s "$ROOT/bench/fresh.lua" -- warm.tok 1
# A busy gateway's verify cache is full (65,536 tokens by default, about
# 85 MB of live heap): that heap makes every garbage collection longer for
# every route of the process. Fill it before round 1, so that every round
# measures the same steady state instead of a heap that grows over the run.
if [ "${FILL_CACHE:-1}" = 1 ] && [ "$ONLY" != R ]; then
  mint -out - -n 70000 >fill.tok
  secs=$(awk -v r="$(awk '{print $1}' warm.facts)" 'BEGIN {s = int(70000 / r * 1.15) + 1; print (s > 40 ? 40 : s)}')
  echo "filling the verify cache (70,000 fresh tokens, ${secs} s)…"
  wrk_run fill "$CONNS" "$secs" "$UB" -s "$ROOT/bench/fresh.lua" -- fill.tok 1
  echo "  verify cache: $(metric 'kavach_verify_cache_total{result="miss"}') tokens verified so far (it keeps at most 65,536)"
  # D's gateway gets the same heap, so D and A compare equal steady states.
  ./mint -key key.jwk -iss "$ISS" -aud "$RESD" -scope bench:read -out - -n 70000 >fill.tok
  echo "filling the Redis-mode gateway's verify cache too…"
  cur_gw=$gw2_pid cur_pm=$PM2
  wrk_run fill "$CONNS" "$secs" "$UD" -s "$ROOT/bench/fresh.lua" -- fill.tok 1
  echo "  verify cache: $(metric 'kavach_verify_cache_total{result="miss"}') tokens verified so far"
  # And E's (its trail gets the 140,000 records of these requests).
  ./mint -key key.jwk -iss "$ISS" -aud "$RESE" -scope bench:read -out - -n 70000 >fill.tok
  echo "filling the audit-on gateway's verify cache too…"
  cur_gw=$gw3_pid cur_pm=$PM3
  wrk_run fill "$CONNS" "$secs" "$UE" -s "$ROOT/bench/fresh.lua" -- fill.tok 1
  echo "  verify cache: $(metric 'kavach_verify_cache_total{result="miss"}') tokens verified so far"
  cur_gw=$gw_pid cur_pm=$PM
fi
for i in $(seq 1 "$ROUNDS"); do
  echo "round $i/$ROUNDS"
  cfgs="A B C D E M0 M L0 L R RD"; [ "$ONLY" != R ] || cfgs="A B D R RD"
  for cfg in $cfgs; do
    one "$cfg" "$CONNS" "$DURATION" "r$i"
    show "$cfg c$CONNS" "r$i.$cfg.facts"
  done
  [ "$ONLY" != R ] || continue
  for cfg in A B C L0 L; do
    one "$cfg" 1 "$LAT_DURATION" "l$i"
    mv "l$i.$cfg.facts" "r$i.${cfg}1.facts"
    show "$cfg c1" "r$i.${cfg}1.facts"
  done
done
# The memory limiter's Take alone (package ratelimit): one bucket under its
# limit, the cost R adds besides the route's own work.
rate_micro() {
  (cd "$ROOT" && go test -c -o "$out/ratelimit.test" ./ratelimit/) >/dev/null || { echo "bench: ./ratelimit does not build" >&2; exit 1; }
  nice -n "$NICE" taskset -c 0 "$out/ratelimit.test" -test.run '^$' -test.bench '^BenchmarkMemoryTake$' -test.benchmem -test.cpu 1 -test.count "$ROUNDS" \
    >"$out/ratelimit.txt" 2>&1 || { cat "$out/ratelimit.txt" >&2; echo "bench: BenchmarkMemoryTake failed" >&2; exit 1; }
  rtn=$(awk '$1 ~ /^BenchmarkMemoryTake(-[0-9]+)?$/ {print $3}' "$out/ratelimit.txt" | median) \
    || { cat "$out/ratelimit.txt" >&2; echo "bench: BenchmarkMemoryTake did not run" >&2; exit 1; }
  rta=$(awk '$1 ~ /^BenchmarkMemoryTake(-[0-9]+)?$/ {print $7}' "$out/ratelimit.txt" | median)
  # The admission of a cached-token request with and without a limit.
  (cd "$ROOT" && go test -c -o "$out/gwrate.test" ./gateway/) >/dev/null || { echo "bench: ./gateway does not build" >&2; exit 1; }
  nice -n "$NICE" taskset -c 0 "$out/gwrate.test" -test.run '^$' -test.bench '^BenchmarkAdmitRateLimit$' -test.benchmem -test.cpu 1 -test.count "$ROUNDS" \
    >"$out/gwrate.txt" 2>&1 || { cat "$out/gwrate.txt" >&2; echo "bench: BenchmarkAdmitRateLimit failed" >&2; exit 1; }
  ran=$(awk '$1 ~ /^BenchmarkAdmitRateLimit\/none(-[0-9]+)?$/ {print $3}' "$out/gwrate.txt" | median)
  ram=$(awk '$1 ~ /^BenchmarkAdmitRateLimit\/memory(-[0-9]+)?$/ {print $3}' "$out/gwrate.txt" | median)
  raa=$(awk '$1 ~ /^BenchmarkAdmitRateLimit\/memory(-[0-9]+)?$/ {print $7}' "$out/gwrate.txt" | median)
  radd=$(awk -v m="$ram" -v n="$ran" 'BEGIN {print m - n}')
}
rate_lines() { # the table lines of R and RD (line, pair, span, rverdict, verdict: defined by the caller)
  line "R rate limit, memory: req/s vs B (c$CONNS)" "$(printf '%.3fx' "$(pair R B 1 /)")" "$(span R B 1 / %.2f)" "(info)" ""
  line "R rate limit, memory: gateway CPU added vs B" "$(printf '%+.2f us/req' "$(pair R B 7 -)")" "$(span R B 7 - %+.1f)" "<= 1 us" "$(rverdict R B 7 - '<=' 1)"
  line "R limiter Take (BenchmarkMemoryTake)" "$(printf '%.0f ns, %s allocs' "$rtn" "$rta")" "" "<= 1000 ns" "$(verdict "$rtn" '<=' 1000)"
  line "R admission with a limit - without (Admit)" "$(printf '%+.0f ns, %s allocs' "$radd" "$raa")" "" "<= 1000 ns" "$(verdict "$radd" '<=' 1000)"
  line "RD rate limit, Redis: req/s vs D (c$CONNS)" "$(printf '%.3fx' "$(pair RD D 1 /)")" "$(span RD D 1 / %.2f)" "(info)" ""
  line "RD rate limit, Redis: gateway CPU added vs D" "$(printf '%+.1f us/req' "$(pair RD D 7 -)")" "$(span RD D 7 - %+.1f)" "(info)" ""
  line "RD Redis round trips per request" "$rd_trips" "" "<= 1" "$(verdict "$rd_trips" '<=' 1)"
}
if [ "$ONLY" = R ]; then
  rate_micro
  col() { local i; for i in $(seq 1 "$ROUNDS"); do awk -v f="$2" '{print $f}' "r$i.$1.facts"; done; }
  perround() { local i; for i in $(seq 1 "$ROUNDS"); do paste -d' ' "r$i.$1.facts" "r$i.$2.facts" | awk -v f="$3" -v op="$4" -v n="$(awk '{print NF}' "r$i.$1.facts")" '{x = $f; a = $(n + f); print (op == "/" ? x / a : x - a)}'; done; }
  pair() { perround "$@" | median; }
  span() { perround "$1" "$2" "$3" "$4" | sort -g | awk -v fmt="$5" 'NR == 1 {lo = $1} {hi = $1} END {printf fmt ".." fmt "\n", lo, hi}'; }
  verdict() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {ok = (op == ">=" ? x >= t : x <= t); print (ok ? "ok" : "MISSED")}'; }
  rverdict() { verdict "$(pair "$1" "$2" "$3" "$4")" "$5" "$6"; }
  line() { printf '%-46s %18s %15s %11s  %s\n' "$@"; }
  echo
  echo "== make bench BENCH_ONLY=R: configuration R, medians of $ROUNDS interleaved rounds"
  line "measure" "median" "rounds" "target" "verdict"
  rate_lines
  exit 0
fi
decisions=$(metric 'kavach_decisions_total{outcome="allowed"}')

fresh_d=$(curl -sf --max-time 5 "http://127.0.0.1:$PM2/metrics" | awk '$1 == "kavach_revocation_fresh" {print $2}')
cur_gw=$gw3_pid cur_pm=$PM3
decisions_e=$(metric 'kavach_decisions_total{outcome="allowed"}')
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
pids=()

# E's trail: every allowed request a decision and an outcome record, all
# durable once the gateway stopped (it closes the trail with a checkpoint),
# and the trail verifies.
e_records=0 e_ok=yes
shopt -s nullglob
e_trails=("$out"/xdg3/caddy/kavach/audit/*.jsonl)
shopt -u nullglob
[ "${#e_trails[@]}" -gt 0 ] || e_ok="NO: no trail in $out/xdg3/caddy/kavach/audit"
for trail in "${e_trails[@]}"; do
  if vout=$("$KAVACH" audit verify "$trail" 2>&1); then
    e_records=$((e_records + $(awk '/^ok: / {print $2}' <<<"$vout")))
  else
    e_ok="NO: $(head -1 <<<"$vout")"
  fi
done
cd "$ROOT"

# ---------------------------------------------------------------------------
# 3. The cache-hit decision alone, and the kavach handler inside Caddy's
# handler chain without the network (bench/caddy_test.go): CPU costs that
# do not move with the machine's load as much as requests/s do.
echo
echo "== gateway: BenchmarkDecideCached (cache-hit decision; budget <= 5 us, <= 8 allocs)"
go test -c -o "$out/gateway.test" ./gateway/ >/dev/null || { echo "bench: ./gateway does not build" >&2; exit 1; }
nice -n "$NICE" taskset -c 0 "$out/gateway.test" -test.run '^$' -test.bench '^BenchmarkDecideCached$' -test.benchmem -test.cpu 1 -test.count "$ROUNDS" \
  >"$out/decide.txt" 2>&1 || { cat "$out/decide.txt" >&2; echo "bench: BenchmarkDecideCached failed" >&2; exit 1; }
grep '^Benchmark' "$out/decide.txt"
dn=$(awk '$1 ~ /^BenchmarkDecideCached(-[0-9]+)?$/ {print $3}' "$out/decide.txt" | median) \
  || { cat "$out/decide.txt" >&2; echo "bench: BenchmarkDecideCached did not run" >&2; exit 1; }
da=$(awk '$1 ~ /^BenchmarkDecideCached(-[0-9]+)?$/ {print $7}' "$out/decide.txt" | median)
echo
echo "== ratelimit: BenchmarkMemoryTake (one bucket under its limit; R's budget <= 1 us, 0 allocs)"
rate_micro
grep '^Benchmark' "$out/ratelimit.txt"

echo
echo "== kavach in Caddy's handler chain, no network (respond instead of reverse_proxy; GOMAXPROCS=1, core 0)"
go test -c -o "$out/bench.test" ./bench/ >/dev/null || { echo "bench: ./bench does not build" >&2; exit 1; }
for i in $(seq 1 "$ROUNDS"); do
  for b in 'BenchmarkCaddyBare 1s' 'BenchmarkCaddyKavachCached 1s' 'BenchmarkCaddyKavachFresh 10000x'; do
    set -- $b
    nice -n "$NICE" taskset -c 0 "$out/bench.test" -test.run '^$' -test.bench "^$1\$" -test.benchmem -test.cpu 1 -test.benchtime "$2" \
      >"$out/caddy.run" 2>&1 || { cat "$out/caddy.run" >&2; echo "bench: $1 failed" >&2; exit 1; }
    awk -v b="$1" '$1 ~ "^"b"(-[0-9]+)?$" {print $3, $5, $7}' "$out/caddy.run" >>"$out/$1"
    [ -s "$out/$1" ] || { cat "$out/caddy.run" >&2; echo "bench: $1 did not run" >&2; exit 1; }
  done
done
printf '%-30s %10s %8s %10s\n' "benchmark (median of $ROUNDS)" "ns/op" "B/op" "allocs/op"
for b in BenchmarkCaddyBare BenchmarkCaddyKavachCached BenchmarkCaddyKavachFresh; do
  printf '%-30s %10.0f %8.0f %10.0f\n' "$b" "$(cut -d' ' -f1 "$out/$b" | median)" "$(cut -d' ' -f2 "$out/$b" | median)" "$(cut -d' ' -f3 "$out/$b" | median)"
done
ib=$(cut -d' ' -f1 "$out/BenchmarkCaddyBare" | median)
icached=$(awk -v x="$(cut -d' ' -f1 "$out/BenchmarkCaddyKavachCached" | median)" -v b="$ib" 'BEGIN {print x - b}')
ifresh=$(awk -v x="$(cut -d' ' -f1 "$out/BenchmarkCaddyKavachFresh" | median)" -v b="$ib" 'BEGIN {print x - b}')
iallocs=$(awk -v x="$(cut -d' ' -f3 "$out/BenchmarkCaddyKavachCached" | median)" -v b="$(cut -d' ' -f3 "$out/BenchmarkCaddyBare" | median)" 'BEGIN {print x - b}')
ibytes=$(awk -v x="$(cut -d' ' -f2 "$out/BenchmarkCaddyKavachCached" | median)" -v b="$(cut -d' ' -f2 "$out/BenchmarkCaddyBare" | median)" 'BEGIN {print x - b}')
printf 'kavach adds per request: cached %+.1f us, %+d allocs, %+d B; fresh token %+.1f us (verify cache not full)\n' \
  "$(awk -v x="$icached" 'BEGIN {print x / 1000}')" "$iallocs" "$ibytes" "$(awk -v x="$ifresh" 'BEGIN {print x / 1000}')"

# The audit trail (DESIGN.md §9: >= 50k records/s to the file sink with
# fsync batching; verify >= 500k records/s). Writes: audit's own benchmark,
# records through the Writer into a FileSink on this machine's disk, each
# batch written and fsynced before its records count; "async" is how the
# gateway records (Write, batches gathered for up to 10 ms), "durable" how
# a route with `audit: required` does (256 callers waiting in WriteDurable).
echo
echo "== audit: records/s through the Writer into the file sink, one fsync per batch (GOMAXPROCS=1, core 0)"
go test -c -o "$out/audit.test" ./audit/ >/dev/null || { echo "bench: ./audit does not build" >&2; exit 1; }
for i in $(seq 1 "$ROUNDS"); do
  for b in async durable; do
    nice -n "$NICE" taskset -c 0 "$out/audit.test" -test.run '^$' -test.bench "^BenchmarkWriterFile/$b\$" -test.benchmem -test.cpu 1 -test.benchtime 1s \
      >"$out/audit.run" 2>&1 || { cat "$out/audit.run" >&2; echo "bench: BenchmarkWriterFile/$b failed" >&2; exit 1; }
    awk -v b="BenchmarkWriterFile/$b" '$1 ~ "^"b"(-[0-9]+)?$" {
        for (i = 2; i <= NF; i++) { if ($i == "records/s") r = $(i-1); if ($i == "records/fsync") f = $(i-1) }
        if (r != "") print r, f }' "$out/audit.run" >>"$out/audit.$b"
    [ -s "$out/audit.$b" ] || { cat "$out/audit.run" >&2; echo "bench: BenchmarkWriterFile/$b did not run" >&2; exit 1; }
  done
done
for b in async durable; do
  printf '  %-8s %8.0f records/s (median of %s; %s..%s), %6.0f records per fsync\n' "$b" "$(cut -d' ' -f1 "$out/audit.$b" | median)" "$ROUNDS" \
    "$(cut -d' ' -f1 "$out/audit.$b" | sort -g | head -1)" "$(cut -d' ' -f1 "$out/audit.$b" | sort -g | tail -1)" "$(cut -d' ' -f2 "$out/audit.$b" | median)"
done

# Verify: the built binary on a real trail file, as an operator runs it
# (bench/trail writes TRAIL_RECORDS gateway-shaped records through the
# Writer and file sink, key beside it). records/s is over the process's
# CPU time (user + system, startup included): one goroutine does the work,
# so on a quiet core that is its wall-clock rate, and unlike the wall
# clock it does not count the time other processes held the core.
echo
echo "== audit verify: bin/kavach audit verify on a trail of $TRAIL_RECORDS records (core 0)"
mkdir "$out/trail.d"
"$out/trail" -n "$TRAIL_RECORDS" -out "$out/trail.d/audit.jsonl" >/dev/null || { echo "bench: bench/trail failed" >&2; exit 1; }
"$KAVACH" audit verify "$out/trail.d/audit.jsonl" >"$out/verify.out" 2>&1 \
  || { cat "$out/verify.out" >&2; echo "bench: the generated trail does not verify" >&2; exit 1; }
n_trail=$(awk '/^ok: / {print $2}' "$out/verify.out")
[[ $n_trail =~ ^[1-9][0-9]*$ ]] || { cat "$out/verify.out" >&2; echo "bench: no record count in audit verify's output" >&2; exit 1; }
echo "  $(head -1 "$out/verify.out"), $(du -m "$out/trail.d/audit.jsonl" | cut -f1) MB"
# The same on a 2-record trail: what starting the process and loading the
# key cost, to show the rate without it too.
"$out/trail" -n 2 -out "$out/trail.d/tiny.jsonl" >/dev/null || { echo "bench: bench/trail failed" >&2; exit 1; }
TIMEFORMAT='%R %U %S'
for i in $(seq 1 "$ROUNDS"); do
  for t in audit tiny; do
    { time nice -n "$NICE" taskset -c 0 "$KAVACH" audit verify "$out/trail.d/$t.jsonl" >"$out/verify.out" 2>&1; } 2>"$out/verify.time" \
      || { cat "$out/verify.out" >&2; echo "bench: audit verify failed" >&2; exit 1; }
    awk '{print $2 + $3, $1}' "$out/verify.time" >>"$out/verify.$t" # CPU s, wall s
  done
done
unset TIMEFORMAT
awk -v n="$n_trail" '{printf "%.0f %.0f\n", n / $1, n / $2}' "$out/verify.audit" >"$out/verify.rates"
vstart=$(cut -d' ' -f1 "$out/verify.tiny" | median)
awk -v n="$n_trail" -v s="$vstart" '{printf "  run %d: %.3f s CPU, %.3f s wall: %.0f records/s per CPU second (%.0f without the %.3f s of startup), %.0f per wall-clock second\n",
  NR, $1, $2, n / $1, ($1 > s ? n / ($1 - s) : 0), s, n / $2}' "$out/verify.audit"
vcpu=$(cut -d' ' -f1 "$out/verify.rates" | median); vwall=$(cut -d' ' -f2 "$out/verify.rates" | median)
vnet=$(awk -v n="$n_trail" -v c="$(cut -d' ' -f1 "$out/verify.audit" | median)" -v s="$vstart" 'BEGIN {print (c > s ? n / (c - s) : 0)}')

# ---------------------------------------------------------------------------
# 4. The table.
cd "$out"
col() { # col CONFIG FIELD: the values of FIELD over the rounds
  local i
  for i in $(seq 1 "$ROUNDS"); do awk -v f="$2" '{print $f}' "r$i.$1.facts"; done
}
med() { col "$1" "$2" | median; }
perround() { # perround X A FIELD OP: (X op A) in each round, X and A run back to back
  local i
  for i in $(seq 1 "$ROUNDS"); do
    paste -d' ' "r$i.$1.facts" "r$i.$2.facts" | awk -v f="$3" -v op="$4" -v n=16 \
      '{x = $f; a = $(n + f); print (op == "/" ? x / a : x - a)}'
  done
}
pair() { perround "$@" | median; } # pair X A FIELD OP: the median over rounds
span() { # span X A FIELD OP FORMAT: "min..max" over rounds
  perround "$1" "$2" "$3" "$4" | sort -g | awk -v f="$5" 'NR == 1 {lo = $1} {hi = $1} END {printf f ".." f "\n", lo, hi}'
}
sumf() { local i s=0; for i in $(seq 1 "$ROUNDS"); do s=$((s + $(awk -v f="$2" '{print $f}' "r$i.$1.facts"))); done; echo "$s"; }
verdict() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {ok = (op == ">=" ? x >= t : x <= t); print (ok ? "ok" : "MISSED")}'; }
# rverdict X A FIELD OP CMP TARGET: the median's verdict, and whether the rounds agree
rverdict() {
  local v n
  v=$(verdict "$(pair "$1" "$2" "$3" "$4")" "$5" "$6")
  n=$(perround "$1" "$2" "$3" "$4" | while read -r x; do verdict "$x" "$5" "$6"; done | sort -u | wc -l)
  [ "$n" = 1 ] && echo "$v" || echo "$v (rounds disagree)"
}

echo
echo "== gateway detail: medians of $ROUNDS rounds (ratios: median of the per-round ratios, each round's runs adjacent)"
printf '%-27s %8s %7s %8s %8s %9s %8s %6s %13s\n' config "req/s" "x base" "p50 ms" "p99 ms" "gw us/req" "base cpu" "gw c0" "others c0/c1"
pct() { awk -v v="$1" 'BEGIN {printf "%.0f%%", v * 100}'; }
for cfg in A B C D E M0 M L0 L A1 B1 C1 L01 L1; do
  case $cfg in
    A) label="A bare, c$CONNS" base=A ;; B) label="B cached token, c$CONNS" base=A ;; C) label="C fresh token, c$CONNS" base=A ;;
    D) label="D cached, Redis, c$CONNS" base=A ;; E) label="E cached, audit on, c$CONNS" base=A ;;
    M0) label="M0 MCP call bare, c$CONNS" base=M0 ;; M) label="M MCP call, c$CONNS" base=M0 ;;
    L0) label="L0 MCP list bare, c$CONNS" base=L0 ;; L) label="L MCP list, c$CONNS" base=L0 ;;
    A1) label="A bare, c1" base=A1 ;; B1) label="B cached token, c1" base=A1 ;; C1) label="C fresh token, c1" base=A1 ;;
    L01) label="L0 MCP list bare, c1" base=L01 ;; L1) label="L MCP list, c1" base=L01 ;;
  esac
  printf '%-27s %8.0f %6.3fx %8.3f %8.3f %9.1f %7.3fx %6s %13s\n' "$label" "$(med $cfg 1)" "$(pair $cfg $base 1 /)" \
    "$(med $cfg 2)" "$(med $cfg 3)" "$(med $cfg 7)" "$(pair $base $cfg 7 /)" \
    "$(pct "$(med $cfg 8)")" "$(pct "$(med $cfg 14)")/$(pct "$(med $cfg 15)")"
done
echo "  x base: req/s over the base's (A for B-E, A c1 for B c1 and C c1, M0 for M, L0 for L, each c1 for c1)"
echo "  gw us/req: the gateway's CPU time per request (/proc utime+stime over wrk's request count);"
echo "  base cpu: the base's CPU per request over this one's (what x base would be if the gateway had core 0"
echo "  to itself; not load-independent: an unsaturated gateway spends more CPU per request idling and waking);"
echo "  gw c0: the gateway's share of core 0; others: CPU the rest of the machine took on core 0 / core 1"
echo "  during the run (wrk and the upstream excluded): the noise."
reqB=$(sumf B 4); hitB=$(sumf B 11); missB=$(sumf B 12)
reqD=$(sumf D 4); hitD=$(sumf D 11); missD=$(sumf D 12)
reqE=$(sumf E 4); hitE=$(sumf E 11); missE=$(sumf E 12)
reqM=$(( $(sumf M 4) + $(sumf L 4) + $(sumf L1 4) )); hitM=$(( $(sumf M 11) + $(sumf L 11) + $(sumf L1 11) ))
missM=$(( $(sumf M 12) + $(sumf L 12) + $(sumf L1 12) ))
reqC=$(sumf C 4); hitC=$(sumf C 11); missC=$(sumf C 12); wrapC=$(( $(sumf C 13) + $(sumf C1 13) ))
reqC1=$(sumf C1 4); missC1=$(sumf C1 12); hitC1=$(sumf C1 11)
echo "  B under load: $reqB requests, $hitB cache hits, $missB cache misses (want: no misses)"
echo "  D under load: $reqD requests, $hitD cache hits, $missD cache misses (want: no misses); revocation set fresh at the end: ${fresh_d:-unknown} (want 1)"
echo "  C: $((reqC + reqC1)) requests, $((missC + missC1)) cache misses (full verifications), $((hitC + hitC1)) hits (want: none); token walks wrapped: $wrapC"
echo "  E under load: $reqE requests, $hitE cache hits, $missE cache misses (want: no misses)"
echo "  M and L: $reqM requests, $hitM cache hits, $missM cache misses (want: no misses)"
echo "  allowed decisions in the whole run: $decisions"

rA=$(med A 1); rB=$(pair B A 1 /); rC=$(pair C A 1 /); rD=$(pair D A 1 /)
d50=$(pair B1 A1 2 -); d90=$(pair B1 A1 16 -); d99=$(pair B1 A1 3 -)
c50=$(pair C1 A1 2 -); c99=$(pair C1 A1 3 -)
dl99=$(pair B A 3 -)
vr=$(awk -v v="$v" -v r="$r" 'BEGIN {print v / r}')
cpuA=$(med A 7)
est() { awk -v a="$cpuA" -v d="$1" 'BEGIN {print a / (a + d / 1000)}'; } # est ADDED_NS: A's us/req over (A's + added)

noise0=$(for c in A B C D E M0 M L0 L; do col $c 14; done | median); noise1=$(for c in A B C D E M0 M L0 L; do col $c 15; done | median)
[ "$missB" -le 1 ] && cachedok="yes: $hitB hits, $missB misses" || cachedok="NO: $missB cache misses"
[ "$missE" -le 1 ] && cachedokE="yes: $hitE hits, $missE misses" || cachedokE="NO: $missE cache misses"
[ "$missM" -le 1 ] && cachedokM="yes: $hitM hits, $missM misses" || cachedokM="NO: $missM cache misses"
[ "$missD" -le 1 ] && [ "${fresh_d:-0}" = 1 ] && cachedokD="yes: $hitD hits, $missD misses, set fresh" || cachedokD="NO: $missD cache misses, fresh=${fresh_d:-unknown}"
if [ $((hitC + hitC1)) = 0 ] && [ "$wrapC" = 0 ] && [ $((missC + missC1)) -ge $((reqC + reqC1)) ]; then
  freshok="yes: $((missC + missC1)) verifications for $((reqC + reqC1)) requests"
else
  freshok="NO: $((hitC + hitC1)) cache hits, $wrapC wraps, $((missC + missC1)) verifications for $((reqC + reqC1)) requests"
fi

echo
echo "== make bench: budgets (DESIGN.md §9), medians of $ROUNDS interleaved rounds"
line() { printf '%-46s %18s %15s %11s  %s\n' "$@"; }
line "measure" "median" "rounds" "target" "verdict"
line "A bare reverse_proxy, c$CONNS" "$(printf '%.0f req/s' "$rA")" "" "" ""
line "B cached token: req/s vs A (wrk, c$CONNS)" "$(printf '%.3fx' "$rB")" "$(span B A 1 / %.2f)" ">= 0.95x" "$(rverdict B A 1 / '>=' 0.95)"
line "B cached token: added p99, 1 connection" "$(printf '%+.3f ms' "$d99")" "$(span B1 A1 3 - %+.2f)" "<= 0.1 ms" "$(rverdict B1 A1 3 - '<=' 0.1)"
line "B cached token: added p50 / p90, 1 conn." "$(printf '%+.3f/%+.3f ms' "$d50" "$d90")" "$(span B1 A1 2 - %+.2f)" "(info)" ""
line "B cached token: added p99, c$CONNS" "$(printf '%+.3f ms' "$dl99")" "$(span B A 3 - %+.1f)" "(info)" ""
line "B cached token: CPU-cost estimate*" "$(printf '%.3fx' "$(est "$icached")")" "" "(info)" ""
line "D cached token, Redis: req/s vs A (c$CONNS)" "$(printf '%.3fx' "$rD")" "$(span D A 1 / %.2f)" ">= 0.95x" "$(rverdict D A 1 / '>=' 0.95)"
line "C fresh token: req/s vs A (wrk, c$CONNS)" "$(printf '%.3fx' "$rC")" "$(span C A 1 / %.2f)" ">= 0.5x" "$(rverdict C A 1 / '>=' 0.5)"
line "C fresh token: added p50 / p99, 1 conn." "$(printf '%+.3f/%+.3f ms' "$c50" "$c99")" "" "(info)" ""
line "C fresh token: CPU-cost estimate*" "$(printf '%.3fx' "$(est "$ifresh")")" "" "(info)" ""
line "cache-hit decision (BenchmarkDecideCached)" "$(printf '%.0f ns' "$dn")" "" "<= 5000 ns" "$(verdict "$dn" '<=' 5000)"
line "cache-hit decision allocations" "$(printf '%s allocs' "$da")" "" "<= 8" "$(verdict "$da" '<=' 8)"
line "full Verify vs raw ed25519.Verify" "$(printf '%.2fx' "$vr")" "" "<= 1.35x" "$(verdict "$vr" '<=' 1.35)"
line "E audit trail on (file): req/s vs A (c$CONNS)" "$(printf '%.3fx' "$(pair E A 1 /)")" "$(span E A 1 / %.2f)" ">= 0.95x" "$(rverdict E A 1 / '>=' 0.95)"
line "E audit trail on: req/s vs B (its own cost)" "$(printf '%.3fx' "$(pair E B 1 /)")" "$(span E B 1 / %.2f)" "(info)" ""
line "E audit trail on: gateway CPU added vs B" "$(printf '%+.1f us/req' "$(pair E B 7 -)")" "$(span E B 7 - %+.1f)" "(info)" ""
line "M MCP tools/call: req/s vs bare M0 (c$CONNS)" "$(printf '%.3fx' "$(pair M M0 1 /)")" "$(span M M0 1 / %.2f)" ">= 0.9x" "$(rverdict M M0 1 / '>=' 0.9)"
line "M MCP tools/call: gateway CPU added" "$(printf '%+.1f us/call' "$(pair M M0 7 -)")" "$(span M M0 7 - %+.1f)" "(info)" ""
line "L MCP tools/list (4 tools -> 2): vs bare L0" "$(printf '%.3fx' "$(pair L L0 1 /)")" "$(span L L0 1 / %.2f)" "(info)" ""
line "L MCP tools/list: added p50 / p99, 1 conn." "$(printf '%+.3f/%+.3f ms' "$(pair L1 L01 2 -)" "$(pair L1 L01 3 -)")" "$(span L1 L01 2 - %+.2f)" "(info)" ""
line "L MCP tools/list: gateway CPU added" "$(printf '%+.1f us/list' "$(pair L L0 7 -)")" "$(span L L0 7 - %+.1f)" "(info)" ""
rate_lines
line "L tools/list filter alone (L-L0 - (M-M0))" "$(printf '%+.1f us/list' "$(awk -v l="$(pair L L0 7 -)" -v m="$(pair M M0 7 -)" 'BEGIN {print l - m}')")" "" "(info)" ""
arange() { sort -g "$@" | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0fk..%.0fk\n", lo / 1000, hi / 1000}'; }
for b in async durable; do
  case $b in async) label="audit file sink, Write (gateway): records/s" ;; durable) label="audit file sink, WriteDurable x256: records/s" ;; esac
  x=$(cut -d' ' -f1 "$out/audit.$b" | median)
  line "$label" "$(printf '%.0f/s' "$x")" "$(cut -d' ' -f1 "$out/audit.$b" | arange)" ">= 50000/s" "$(verdict "$x" '>=' 50000)"
done
line "audit verify, bin/kavach, $((n_trail / 1000))k-record file**" "$(printf '%.0f/s' "$vcpu")" "$(cut -d' ' -f1 "$out/verify.rates" | arange)" ">= 500000/s" "$(verdict "$vcpu" '>=' 500000)"
line "audit verify, without process startup" "$(printf '%.0f/s' "$vnet")" "" "(info)" ""
line "audit verify, the same runs, wall clock" "$(printf '%.0f/s' "$vwall")" "$(cut -d' ' -f2 "$out/verify.rates" | arange)" "(info)" ""
echo "B really served from the verify cache: $cachedok"
echo "D really served from the verify cache, with Redis answering: $cachedokD"
echo "C really verified every request: $freshok"
echo "E really served from the verify cache: $cachedokE; its trail: $e_records records for $decisions_e allowed requests (want >= 2 per request), verifies: $e_ok"
echo "M and L really served from the verify cache: $cachedokM; tools/list answered 4 tools bare, 2 through kavach (checked at setup)"
case $MCP_UPSTREAM in
  canned) echo "MCP server of M and L: canned answers (bench/upstream, the demo SDK server's bytes), so the gateway is the limit" ;;
  sdk) echo "MCP server of M and L: demo/server (official Go SDK, stateless): the ratios are bounded by its CPU on core 1" ;;
esac
echo "noise: other processes took $(pct "$noise0") of core 0 and $(pct "$noise1") of core 1 (median over runs under load)$(awk -v a="$noise0" -v b="$noise1" 'BEGIN {if (a > 0.05 || b > 0.1) print ": busy machine, the wrk figures are unreliable"}')"
echo "* (info, not a verdict) A's gateway CPU per request under load ($(printf '%.1f' "$cpuA") us) plus what kavach adds in Caddy's"
echo "  handler chain without the network (cached $(printf '%+.1f' "$(awk -v x="$icached" 'BEGIN {print x / 1000}')") us, fresh $(printf '%+.1f' "$(awk -v x="$ifresh" 'BEGIN {print x / 1000}')") us, measured with a small heap):"
echo "  the ratio on a quiet core, less what the bigger requests (the token) and a full verify cache add."
echo "** audit verify: records per second of the process's CPU time (user + system, startup included), over"
echo "  $ROUNDS runs of bin/kavach audit verify on a trail bench/trail wrote; without startup: less the CPU time"
echo "  of verifying a 2-record trail; the wall-clock rate counts the time other processes held the core too."
echo "Ratios are medians of per-round ratios (each round runs A, B, C, D, E, M0, M, L0 and L back to back);"
echo "\"rounds\" is their range; a missed target is reported, not an error."

# Revocation propagation (DESIGN.md §9: p99 <= 50 ms): from Revoke returning
# on one gateway's set to another's rejecting, over a real redis-server on
# loopback, 3 x 300 revocations.
cd "$ROOT"
echo
echo "== revocation propagation through a real redis-server (3 x 300 revocations)"
prop=$(go test -run '^$' -bench '^BenchmarkRedisPropagation$' -benchtime 300x -count 3 ./revocation/ 2>&1) \
  || { echo "$prop" >&2; echo "bench: propagation benchmark failed" >&2; exit 1; }
echo "$prop" | awk '/^BenchmarkRedisPropagation/ {for (i = 1; i <= NF; i++) {if ($i == "p50-µs") p50[++n] = $(i-1); if ($i == "p99-µs") p99[n] = $(i-1)}}
  END {if (n == 0) {print "no propagation results"; exit 1}
       for (i = 1; i <= n; i++) printf "  run %d: p50 %.2f ms  p99 %.2f ms\n", i, p50[i] / 1000, p99[i] / 1000
       m = 0; for (i = 1; i <= n; i++) if (p99[i] > m) m = p99[i]
       printf "revocation propagation p99 (worst run)  %.2f ms   target <= 50 ms  %s\n", m / 1000, (m <= 50000 ? "ok" : "MISSED")}'

# Issuer throughput (issue budget: >= 2,000 tokens/s on SQLite): tokens
# minted over loopback HTTP by 8 concurrent clients, ROUNDS runs each.
echo
echo "== issuer: tokens/s on SQLite over loopback HTTP (8 concurrent clients; target >= 2000 tokens/s)"
go test -c -o "$out/ibench.test" ./bench/ >/dev/null || { echo "bench: ./bench does not build" >&2; exit 1; }
for b in BenchmarkIssuerClientCredentials BenchmarkIssuerTokenExchange; do
  "$out/ibench.test" -test.run '^$' -test.bench "^${b}\$" -test.benchtime 4000x -test.count "$ROUNDS" >"$out/ibench.txt" 2>&1 \
    || { cat "$out/ibench.txt" >&2; echo "bench: $b failed" >&2; exit 1; }
  field() { awk -v b="$b" -v u="$1" '$1 ~ "^"b"(-[0-9]+)?$" {for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' "$out/ibench.txt"; }
  tps=$(field tokens/s | median) || { cat "$out/ibench.txt" >&2; echo "bench: no results for $b" >&2; exit 1; }
  printf '%-34s %8.0f tokens/s (median of %s; %s..%s)  p50 %s ms  p99 %s ms  %s\n' "$b" "$tps" "$ROUNDS" \
    "$(field tokens/s | sort -g | head -1)" "$(field tokens/s | sort -g | tail -1)" "$(field p50-ms | median)" "$(field p99-ms | median)" \
    "$(verdict "$tps" '>=' 2000)"
done
