#!/usr/bin/env bash
# demo.sh: what `make demo` runs after `make build` (DESIGN.md §10).
#
# Starts, on loopback, the demo upstream (bin/kavach-demo-upstream: an MCP
# code-review server written with the official MCP Go SDK, and a small REST
# API) and bin/kavach running Caddyfile.example (the Kavach issuer, the
# gateway protecting /mcp and /api/, the admin listener); seeds alice, her
# orchestrator agent and its code-reviewer child with the `kavach` CLI;
# prints a step-by-step guide; waits. Ctrl-C (or SIGTERM) stops everything
# it started.
#
#   scripts/demo.sh            interactive: state in ./demo-data (wiped at start)
#   scripts/demo.sh --check    runs the whole story, asserts every step's
#                              HTTP status, stops, exits 0 or 1 (also
#                              KAVACH_DEMO_CHECK=1); state in a temp dir
#   IDP=1 scripts/demo.sh      also starts a local OpenID provider
#                              (bin/kavach-demo-idp, demo/idp) and signs
#                              people in through it: `make demo IDP=1`,
#                              `make demo-check IDP=1` (also KAVACH_DEMO_IDP=1)
#
# Environment:
#   KAVACH_DEMO_GATEWAY_PORT   8080     KAVACH_DEMO_ISSUER_PORT    8081
#   KAVACH_DEMO_ADMIN_PORT     2021     KAVACH_DEMO_UPSTREAM_PORT  8082
#   KAVACH_DEMO_IDP_PORT       8083     (IDP=1 only)
#     (other ports → the Caddyfile is generated from Caddyfile.example
#      into demo-data/Caddyfile)
#   KAVACH_DEMO_WORKDIR   directory bin/kavach runs in; state goes to its
#                         demo-data/ (default: the repository, or a temp
#                         dir with --check)
#   KAVACH_DEMO_STRICT=1  --check: require per-tool rules even when the
#                         Caddyfile has no `tool` lines
#   GO, BUILDFLAGS        how to build bin/kavach-demo-upstream (and
#                         bin/kavach-demo-idp) (default:
#                         go, -trimpath: the Makefile passes its own)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAVACH=$REPO/bin/kavach
UPSTREAM_BIN=$REPO/bin/kavach-demo-upstream
# shellcheck source=scripts/demo-call.sh
source "$REPO/scripts/demo-call.sh"

usage() {
	sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
	exit "${1:-0}"
}
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

CHECK=${KAVACH_DEMO_CHECK:-0}
IDP=${KAVACH_DEMO_IDP:-${IDP:-0}}
[[ $IDP == 1 || $IDP == true ]] && IDP=1 || IDP=0
[[ $CHECK == 1 || $CHECK == true ]] && CHECK=1 || CHECK=0
for arg in "$@"; do
	case $arg in
	--check) CHECK=1 ;;
	-h | --help) usage 0 ;;
	*) printf 'demo: unknown argument %q\n\n' "$arg" >&2 && usage 2 >&2 ;;
	esac
done

# ---------------------------------------------------------------- ports

GATEWAY_PORT=${KAVACH_DEMO_GATEWAY_PORT:-8080}
ISSUER_PORT=${KAVACH_DEMO_ISSUER_PORT:-8081}
ADMIN_PORT=${KAVACH_DEMO_ADMIN_PORT:-2021}
UPSTREAM_PORT=${KAVACH_DEMO_UPSTREAM_PORT:-8082}
PORT_NAMES=(gateway issuer admin upstream)
PORT_VARS=(KAVACH_DEMO_GATEWAY_PORT KAVACH_DEMO_ISSUER_PORT KAVACH_DEMO_ADMIN_PORT KAVACH_DEMO_UPSTREAM_PORT)
PORTS=("$GATEWAY_PORT" "$ISSUER_PORT" "$ADMIN_PORT" "$UPSTREAM_PORT")
if ((IDP == 1)); then
	IDP_PORT=${KAVACH_DEMO_IDP_PORT:-8083}
	PORT_NAMES+=(idp)
	PORT_VARS+=(KAVACH_DEMO_IDP_PORT)
	PORTS+=("$IDP_PORT")
fi
for i in "${!PORTS[@]}"; do
	p=${PORTS[$i]}
	[[ $p =~ ^[0-9]+$ ]] && ((p >= 1 && p <= 65535)) || die "${PORT_VARS[$i]}=$p is not a port number"
	for j in "${!PORTS[@]}"; do
		((j > i)) && [[ ${PORTS[$j]} == "$p" ]] && die "${PORT_VARS[$i]} and ${PORT_VARS[$j]} are both $p"
	done
done

GATEWAY=http://127.0.0.1:$GATEWAY_PORT
ISSUER=http://127.0.0.1:$ISSUER_PORT
ADMIN=127.0.0.1:$ADMIN_PORT
UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT
RESOURCE=$GATEWAY/mcp
API_RESOURCE=$GATEWAY/api
export KAVACH_DEMO_GATEWAY=$GATEWAY KAVACH_DEMO_ISSUER=$ISSUER KAVACH_DEMO_RESOURCE=$RESOURCE
if ((IDP == 1)); then
	IDP_URL=http://127.0.0.1:$IDP_PORT
	IDP_BIN=$REPO/bin/kavach-demo-idp
	# What the Caddyfile's `entitle group` line gives the IdP's group.
	IDP_GROUP=platform-eng
	IDP_SCOPES="mcp:review pullrequest:read repository:read"
fi

# port_user <port>: what listens on it, if ss can tell.
port_user() {
	local line who
	line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1)
	who=$(printf '%s' "$line" | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/"\1" (pid \2)/p')
	if [[ -n $who ]]; then
		printf '%s, listening on %s' "$who" "$(awk '{print $4}' <<<"$line")"
	else
		printf 'a process ss cannot name without more privileges (try: sudo ss -ltnp "sport = :%s")' "$1"
	fi
}

# port_taken <port>: something listens on it.
port_taken() {
	if command -v ss >/dev/null; then
		[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

check_ports() {
	local i taken=0
	for i in "${!PORTS[@]}"; do
		if port_taken "${PORTS[$i]}"; then
			taken=1
			if command -v ss >/dev/null; then
				printf 'demo: port %s (%s) is taken by %s\n' "${PORTS[$i]}" "${PORT_NAMES[$i]}" "$(port_user "${PORTS[$i]}")" >&2
			else
				printf 'demo: port %s (%s) is taken\n' "${PORTS[$i]}" "${PORT_NAMES[$i]}" >&2
			fi
			printf '      stop it, or choose another port: %s=<port> make demo\n' "${PORT_VARS[$i]}" >&2
		fi
	done
	((taken == 0)) || exit 1
}

# ------------------------------------------------------------ processes

PIDS=()
NAMES=()
LOGS=()
SLEEP_PID=
TEMP_WORKDIR=0
STOPPING=0
OUTCOME=1

# start_proc <name> <log> <command…>: runs it in $WORKDIR, in its own
# session when setsid exists, so a Ctrl-C reaches only this script, which
# stops the processes in order.
start_proc() {
	local name=$1 log=$2
	shift 2
	if command -v setsid >/dev/null; then
		(cd "$WORKDIR" && exec setsid "$@") >"$log" 2>&1 </dev/null &
	else
		(cd "$WORKDIR" && exec "$@") >"$log" 2>&1 </dev/null &
	fi
	PIDS+=("$!")
	NAMES+=("$name")
	LOGS+=("$log")
}

# stop_all: TERM each started process (last started first), wait up to
# 10 s, then KILL. Only pids this script started.
stop_all() {
	local i pid n
	[[ -n $SLEEP_PID ]] && kill "$SLEEP_PID" 2>/dev/null
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[$i]}
		kill -0 "$pid" 2>/dev/null || {
			wait "$pid" 2>/dev/null
			continue
		}
		kill -TERM "$pid" 2>/dev/null
		for ((n = 0; n < 100; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			printf 'demo: %s (pid %s) did not stop within 10 s; killing it\n' "${NAMES[$i]}" "$pid" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	PIDS=()
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if ((${#PIDS[@]} > 0)); then
		[[ $CHECK == 1 ]] || echo
		echo "demo: stopping…"
		stop_all
		echo "demo: stopped."
	fi
	if ((TEMP_WORKDIR == 1)); then
		if ((rc == 0)); then
			rm -rf "$WORKDIR"
		else
			echo "demo: logs kept in $DATA" >&2
		fi
	fi
	exit "$rc"
}

on_signal() {
	STOPPING=1
	if [[ $CHECK == 1 ]]; then
		echo "demo: interrupted" >&2
		exit 130
	fi
	exit 0 # Ctrl-C is how the interactive demo ends
}

trap on_exit EXIT
trap on_signal INT TERM

show_log() {
	printf '\n--- last lines of %s (%s) ---\n' "$1" "$2" >&2
	tail -n 25 "$2" >&2
	printf -- '---\n' >&2
}

# wait_http <what> <url> <status> [curl args…]: until the URL answers
# with that status (30 s), while every started process is alive.
wait_http() {
	local what=$1 url=$2 want=$3 got i n
	shift 3
	for ((n = 0; n < 150; n++)); do
		got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null)
		[[ $got == "$want" ]] && return 0
		for i in "${!PIDS[@]}"; do
			if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
				show_log "${NAMES[$i]}" "${LOGS[$i]}"
				die "${NAMES[$i]} exited while starting (waiting for $what)"
			fi
		done
		sleep 0.2
	done
	for i in "${!PIDS[@]}"; do show_log "${NAMES[$i]}" "${LOGS[$i]}"; done
	die "$what ($url) did not answer $want within 30 s (last: $got)"
}

# -------------------------------------------------------------- set up

[[ -x $KAVACH ]] || die "bin/kavach is missing: run 'make build' first ('make demo' does)"
command -v curl >/dev/null || die "the demo needs curl"

check_ports

if [[ -n ${KAVACH_DEMO_WORKDIR:-} ]]; then
	mkdir -p "$KAVACH_DEMO_WORKDIR" || die "cannot create $KAVACH_DEMO_WORKDIR"
	WORKDIR=$(cd "$KAVACH_DEMO_WORKDIR" && pwd)
elif [[ $CHECK == 1 ]]; then
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/kavach-demo.XXXXXX") || die "mktemp failed"
	TEMP_WORKDIR=1
else
	WORKDIR=$REPO
fi
DATA=$WORKDIR/demo-data

# demo-data holds only what the demo made (marked), and starts empty.
if [[ -e $DATA ]]; then
	if [[ -e $DATA/.kavach-demo ]]; then
		rm -rf "$DATA" || die "cannot remove the previous $DATA"
	elif [[ -n $(ls -A "$DATA" 2>/dev/null) ]]; then
		die "$DATA exists and was not made by the demo; move it away or set KAVACH_DEMO_WORKDIR"
	fi
fi
mkdir -p "$DATA" && chmod 700 "$DATA" && : >"$DATA/.kavach-demo" || die "cannot create $DATA"

# The Caddyfile: Caddyfile.example itself on the default ports, else
# generated from it.
CADDYFILE=$REPO/Caddyfile.example
if [[ "${PORTS[*]}" != "8080 8081 2021 8082" ]]; then
	CADDYFILE=$DATA/Caddyfile
	sed -e 's/127\.0\.0\.1:8080/127.0.0.1:@GW@/g; s/127\.0\.0\.1:8081/127.0.0.1:@ISS@/g' \
		-e 's/127\.0\.0\.1:2021/127.0.0.1:@ADM@/g; s/127\.0\.0\.1:8082/127.0.0.1:@UP@/g' \
		-e 's/http:\/\/:8080/http:\/\/:@GW@/g; s/http:\/\/:8081/http:\/\/:@ISS@/g' \
		-e "s/@GW@/$GATEWAY_PORT/g; s/@ISS@/$ISSUER_PORT/g; s/@ADM@/$ADMIN_PORT/g; s/@UP@/$UPSTREAM_PORT/g" \
		"$REPO/Caddyfile.example" >"$CADDYFILE" || die "cannot write $CADDYFILE"
fi

# IDP=1: the issuer also signs people in through the demo's OpenID
# provider, and maps its platform-eng group to review access on /mcp.
if ((IDP == 1)); then
	IDP_CADDYFILE=$DATA/Caddyfile.idp
	awk -v idp="$IDP_URL" -v res="$RESOURCE" -v group="$IDP_GROUP" -v scopes="$IDP_SCOPES" '
		{ print }
		/^[[:space:]]*store sqlite / && !done {
			print "\t\t# make demo IDP=1: sign-in through the demo OpenID provider (demo/idp)."
			print "\t\tlogin oidc demo-idp {"
			print "\t\t\tissuer " idp
			print "\t\t\tclient_id kavach-demo"
			print "\t\t\tclient_secret {env.KAVACH_DEMO_IDP_SECRET}"
			print "\t\t\tscopes openid email profile groups"
			print "\t\t\tdisplay_name \"Demo IdP\""
			print "\t\t\tjit_users on # a Kavach user on first sign-in (off by default)"
			print "\t\t}"
			print "\t\t# Members of the IdP group " group " may review on /mcp, at every sign-in."
			print "\t\tentitle group " group " " res " " scopes
			print "\t\t# ID-JAGs (enterprise-managed authorization) the IdP signs."
			print "\t\ttrust_idjag " idp " {"
			print "\t\t\tjwks " idp "/keys"
			print "\t\t}"
			done = 1
		}
		END { if (!done) exit 1 }' "$CADDYFILE" >"$IDP_CADDYFILE" || die "cannot add the IdP lines to $IDP_CADDYFILE"
	CADDYFILE=$IDP_CADDYFILE
fi

# Per-tool rules and the audit trail are in Caddyfile.example but commented
# out until they land (issue 8). The checks below follow the Caddyfile.
TOOL_RULES=0
grep -Eq '^[[:space:]]*tool[[:space:]]' "$CADDYFILE" && TOOL_RULES=1
[[ ${KAVACH_DEMO_STRICT:-} == 1 ]] && TOOL_RULES=1
AUDIT=0
grep -Eq '^[[:space:]]*audit[[:space:]]' "$CADDYFILE" && "$KAVACH" audit --help >/dev/null 2>&1 && AUDIT=1

if [[ $CHECK != 1 ]]; then
	cat <<'INTRO'
Kavach demo: alice lets an orchestrator agent delegate to a code-reviewer
agent, which reviews a pull request through the gateway on a small MCP
server; then alice revokes the orchestrator and every agent below it stops.
Starting; the step-by-step guide follows once everything is up.

INTRO
fi
echo "demo: building bin/kavach-demo-upstream"
read -ra BUILD_FLAGS <<<"${BUILDFLAGS:--trimpath}"
(cd "$REPO" && "${GO:-go}" build "${BUILD_FLAGS[@]}" -o "$UPSTREAM_BIN" ./demo/server) || die "building the demo upstream failed"
if ((IDP == 1)); then
	echo "demo: building bin/kavach-demo-idp"
	(cd "$REPO" && "${GO:-go}" build "${BUILD_FLAGS[@]}" -o "$IDP_BIN" ./demo/idp) || die "building the demo IdP failed"
fi

if command -v openssl >/dev/null; then
	ADMIN_TOKEN=$(openssl rand -hex 32)
	ALICE_PASSWORD=alice-$(openssl rand -hex 6)
else
	ADMIN_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
	ALICE_PASSWORD=alice-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
fi
export KAVACH_ADMIN_TOKEN=$ADMIN_TOKEN # for the kavach CLI below
if ((IDP == 1)); then
	if command -v openssl >/dev/null; then
		IDP_SECRET=$(openssl rand -hex 24)
	else
		IDP_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	fi
	# The IdP and the issuer read the relying party's secret from here.
	export KAVACH_DEMO_IDP_SECRET=$IDP_SECRET
	echo "demo: starting the demo OpenID provider (IdP) at $IDP_URL"
	start_proc idp "$DATA/idp.log" "$IDP_BIN" -addr "127.0.0.1:$IDP_PORT" \
		-redirect "$ISSUER/oauth/idp/callback" -client-id kavach-demo -audience "$ISSUER"
	wait_http idp "$IDP_URL/.well-known/openid-configuration" 200
fi

echo "demo: starting the upstream, the issuer and the gateway (logs in $DATA)"
start_proc upstream "$DATA/upstream.log" "$UPSTREAM_BIN" -addr "127.0.0.1:$UPSTREAM_PORT"
# Caddy's own data and config directories go to demo-data too, so the demo
# leaves nothing in ~/.local/share/caddy or ~/.config/caddy.
start_proc kavach "$DATA/kavach.log" env KAVACH_ADMIN_TOKEN="$ADMIN_TOKEN" \
	XDG_DATA_HOME="$DATA/caddy/data" XDG_CONFIG_HOME="$DATA/caddy/config" \
	"$KAVACH" run --config "$CADDYFILE" --adapter caddyfile

wait_http upstream "$UPSTREAM/" 200
wait_http issuer "$ISSUER/.well-known/oauth-authorization-server" 200
wait_http gateway "$RESOURCE" 401
wait_http "admin listener" "http://$ADMIN/v1/users" 200 -H "Authorization: Bearer $ADMIN_TOKEN"

# ---------------------------------------------------------------- seed

kv() {
	"$KAVACH" "$@" --admin "$ADMIN"
}

# The story of DESIGN.md §10, through the CLI.
echo "demo: seeding alice, her orchestrator and its code reviewer"
printf '%s\n' "$ALICE_PASSWORD" | kv user create --id usr_alice --name alice --password-stdin \
	--entitle "$RESOURCE=mcp:review,pullrequest:read,repository:read,repository:write,comment:write" \
	--entitle "$API_RESOURCE=pullrequest:read,repository:read,repository:write,comment:write" \
	>"$DATA/alice.json" || die "kavach user create failed"
kv agent create --name orchestrator --owner usr_alice \
	--scope "mcp:review pullrequest:read repository:read repository:write comment:write" --ttl 1h \
	>"$DATA/orchestrator.json" || die "kavach agent create failed"
ORCH_ID=$(kd_json_str id <"$DATA/orchestrator.json")
[[ $ORCH_ID == agt_* ]] || die "no agent id in $DATA/orchestrator.json"
kv agent child "$ORCH_ID" --name reviewer --scope "mcp:review pullrequest:read repository:read" \
	--ttl 180s --constraint hosts=127.0.0.1 >"$DATA/reviewer.json" || die "kavach agent child failed"
REVIEWER_ID=$(kd_json_str id <"$DATA/reviewer.json")
[[ $REVIEWER_ID == agt_* ]] || die "no agent id in $DATA/reviewer.json"
REVIEWER_EXPIRES=$(date -d "+180 seconds" +%H:%M:%S 2>/dev/null || date -v+180S +%H:%M:%S 2>/dev/null || echo "in 180 s")
chmod 600 "$DATA"/*.json

ADMIN_FLAG=
[[ $ADMIN == 127.0.0.1:2021 ]] || ADMIN_FLAG=" --admin $ADMIN"
cat >"$DATA/env.sh" <<EOF
# source demo-data/env.sh: what the guide's commands need.
export KAVACH_ADMIN_TOKEN=$ADMIN_TOKEN
export KAVACH_DEMO_GATEWAY=$GATEWAY
export KAVACH_DEMO_ISSUER=$ISSUER
export KAVACH_DEMO_RESOURCE=$RESOURCE
ORCH_ID=$ORCH_ID
REVIEWER_ID=$REVIEWER_ID
EOF
chmod 600 "$DATA/env.sh"

# ---------------------------------------------------------------- check

PASS=0 FAIL=0 WARN=0
ok() {
	PASS=$((PASS + 1))
	printf '  ok    %s\n' "$*"
}
bad() {
	FAIL=$((FAIL + 1))
	printf '  FAIL  %s\n' "$*"
}
warn() {
	WARN=$((WARN + 1))
	printf '  WARN  %s\n' "$*"
}

# expect <want> <got> <what> [detail]: status check.
expect() {
	if [[ $2 == "$1" ]]; then
		ok "$3: $2"
	else
		bad "$3: got $2, want $1${4:+ ($4)}"
	fi
}

# http_req <curl args…>: one request; sets st (its status) and HTTP_BODY
# (what curl printed: the body, or the headers with -D - -o /dev/null).
http_req() {
	local out
	out=$(curl -s --max-time 30 -w '\n%{http_code}' "$@" 2>&1)
	HTTP_BODY=${out%$'\n'*}
	st=${out##*$'\n'}
}

# token_lifetime <token>: exp - iat, from what the token claims.
token_lifetime() {
	local claims exp iat
	claims=$("$KAVACH" token inspect "$1" 2>/dev/null)
	exp=$(grep -o '"exp"[[:space:]]*:[[:space:]]*[0-9]*' <<<"$claims" | grep -o '[0-9]*$')
	iat=$(grep -o '"iat"[[:space:]]*:[[:space:]]*[0-9]*' <<<"$claims" | grep -o '[0-9]*$')
	[[ -n $exp && -n $iat ]] && echo $((exp - iat))
}

# console_check: the console as a browser without JavaScript uses it,
# with curl and a cookie jar (integration/console_test.go drives Chromium).
console_check() {
	local jar=$DATA/console.jar csrf ret
	rm -f "$jar"
	http_req -D - -o /dev/null "$ISSUER/console/"
	KD_HEADERS=$HTTP_BODY
	ret=$(kd_header Location)
	[[ $st == 302 && $ret == */oauth/login?return=* ]] &&
		ok "5. the console without a session: 302 to the login page" || bad "5. GET /console/: $st, Location ${ret:-none}"
	http_req -c "$jar" -b "$jar" "$ISSUER/oauth/login?return=%2Fconsole%2Fagents"
	csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$HTTP_BODY" | tail -1)
	http_req -c "$jar" -b "$jar" -L --data-urlencode return=/console/agents --data-urlencode csrf="$csrf" \
		--data-urlencode username=alice --data-urlencode password="$ALICE_PASSWORD" "$ISSUER/oauth/login"
	if [[ $st == 200 && $HTTP_BODY == *'Signed in as <strong>alice</strong>'* && $HTTP_BODY == *">orchestrator</a>"* && $HTTP_BODY == *">reviewer</a>"* ]]; then
		ok "5. alice signs in to $ISSUER/console/ and sees orchestrator → reviewer"
	else
		bad "5. console sign-in as alice: $st ${HTTP_BODY:0:300}"
	fi
	http_req -c "$jar" -b "$jar" "$ISSUER/console/agents/$REVIEWER_ID"
	[[ $st == 200 && $HTTP_BODY == *write_file* && $HTTP_BODY == *'missing scope repository:write'* ]] &&
		ok "5. the reviewer's console page shows its denied write_file: missing scope repository:write" ||
		bad "5. the reviewer's console page: $st, no denied write_file with its missing scope"
}

run_check() {
	local tok ctok atok st life body www
	export KAVACH_DEMO_QUIET=1
	echo
	echo "demo --check: reviewer $REVIEWER_ID, child of orchestrator $ORCH_ID, acting for usr_alice"
	((TOOL_RULES == 1)) || echo "  (the Caddyfile has no per-tool rules yet: their denials are reported as WARN, not FAIL)"

	# 0. Discovery: a request without a token is told where to go.
	http_req -D - -o /dev/null -X POST "$RESOURCE" -H 'Content-Type: application/json' -d '{}'
	expect 401 "$st" "0. POST /mcp without a token"
	KD_HEADERS=$HTTP_BODY
	[[ $(kd_header WWW-Authenticate) == *resource_metadata=* ]] &&
		ok "0. the 401 names the resource metadata" || bad "0. the 401 has no resource_metadata: $(kd_header WWW-Authenticate)"
	http_req "$GATEWAY/.well-known/oauth-protected-resource/mcp"
	expect 200 "$st" "0. RFC 9728 metadata of $RESOURCE"
	[[ $HTTP_BODY == *"$ISSUER"* ]] || bad "0. the metadata does not name the issuer $ISSUER: $HTTP_BODY"
	http_req -H "Host: localhost:$GATEWAY_PORT" "$GATEWAY/mcp"
	expect 421 "$st" "0. unknown Host on the gateway port (catch-all site)"
	http_req -H "Host: rebind.example:$ISSUER_PORT" "$ISSUER/.well-known/oauth-authorization-server"
	expect 421 "$st" "0. unknown Host on the issuer port (catch-all site)"

	# 1. The reviewer's token.
	kd_token "$DATA/reviewer.json"
	expect 200 "$KD_STATUS" "1. reviewer token (client_credentials)" "$KD_BODY"
	tok=$(kd_json_str access_token <<<"$KD_BODY")
	[[ $(kd_json_str scope <<<"$KD_BODY") == "mcp:review pullrequest:read repository:read" ]] &&
		ok "1. its scopes: mcp:review pullrequest:read repository:read" || bad "1. unexpected scopes: $KD_BODY"
	life=$(token_lifetime "$tok")
	[[ -n $life ]] && ((life <= 180)) && ok "1. it lives ${life} s (≤ 180 s, the reviewer's TTL)" || bad "1. token lifetime ${life:-?} s, want ≤ 180"
	kd_token "$DATA/reviewer.json" comment:write
	expect 400 "$KD_STATUS" "1. reviewer asks for comment:write: refused" "$KD_BODY"
	[[ $KD_BODY == *invalid_scope* ]] || bad "1. want invalid_scope: $KD_BODY"

	# 2. read_diff through the gateway: allowed, and the server sees who.
	kd_mcp "$tok" read_diff '{}'
	expect 200 "$KD_STATUS" "2. reviewer tools/call read_diff" "$KD_STEP: $KD_BODY"
	if [[ $KD_BODY == *"$REVIEWER_ID, child of $ORCH_ID, acting for usr_alice"* && $KD_BODY == *'diff --git'* ]]; then
		ok "2. the MCP server saw: $REVIEWER_ID (reviewer), child of $ORCH_ID (orchestrator), acting for usr_alice"
	else
		bad "2. the answer does not name the chain: $KD_BODY"
	fi
	kd_mcp "$tok" read_file '{"path":"ratelimit/bucket.go"}'
	expect 200 "$KD_STATUS" "2. reviewer tools/call read_file" "$KD_STEP: $KD_BODY"

	# 3. write_file: denied by the gateway's per-tool rule.
	kd_mcp "$tok" write_file '{"path":"README.md","content":"approved by the reviewer\n"}'
	www=$(KD_HEADERS=$KD_RESULT_HEADERS kd_header WWW-Authenticate)
	if [[ $KD_STATUS == 403 && $www == *insufficient_scope* && $www == *repository:write* ]]; then
		ok "3. reviewer tools/call write_file: 403 insufficient_scope, scope=\"repository:write\""
	elif ((TOOL_RULES == 0)) && [[ $KD_STATUS == 200 ]]; then
		# TOLERANT UNTIL PER-TOOL RULES: remove this branch (or set
		# KAVACH_DEMO_STRICT=1) once `tool …` lines are enabled.
		warn "3. reviewer tools/call write_file: 200: per-tool rules not enabled yet (want 403 insufficient_scope)"
	else
		bad "3. reviewer tools/call write_file: $KD_STATUS during $KD_STEP, WWW-Authenticate: ${www:-none} (want 403 insufficient_scope, scope=\"repository:write\")"
	fi
	kd_mcp "$tok" tools/list
	if [[ $KD_STATUS != 200 ]]; then
		bad "3. reviewer tools/list: $KD_STATUS during $KD_STEP"
	elif [[ $KD_BODY == *'"read_diff"'* && $KD_BODY == *'"read_file"'* && $KD_BODY != *'"write_file"'* && $KD_BODY != *'"post_comment"'* ]]; then
		ok "3. reviewer tools/list shows only read_diff and read_file"
	elif ((TOOL_RULES == 0)); then
		# TOLERANT UNTIL PER-TOOL RULES (as above).
		warn "3. reviewer tools/list shows every tool: per-tool rules not enabled yet"
	else
		bad "3. reviewer tools/list is not filtered to read_diff, read_file: $KD_BODY"
	fi

	# 4. A separate 60 s comment:write identity for one comment.
	if kv agent child "$ORCH_ID" --name commenter --scope "mcp:review comment:write" --ttl 60s \
		--constraint hosts=127.0.0.1 >"$DATA/commenter.json" 2>"$DATA/commenter.err"; then
		ok "4. orchestrator's 60 s child commenter (mcp:review comment:write) created"
	else
		bad "4. kavach agent child … commenter: $(cat "$DATA/commenter.err")"
	fi
	kd_token "$DATA/commenter.json"
	expect 200 "$KD_STATUS" "4. commenter token" "$KD_BODY"
	ctok=$(kd_json_str access_token <<<"$KD_BODY")
	life=$(token_lifetime "$ctok")
	[[ -n $life ]] && ((life <= 60)) && ok "4. it lives ${life} s (≤ 60 s)" || bad "4. commenter token lifetime ${life:-?} s, want ≤ 60"
	kd_mcp "$ctok" post_comment '{"body":"The refill now follows elapsed time. Please add a test for a slow caller.","path":"ratelimit/bucket.go","line":27}'
	expect 200 "$KD_STATUS" "4. commenter tools/call post_comment" "$KD_STEP: $KD_BODY"
	[[ $KD_BODY == *'comment #1 posted'* && $KD_BODY == *", child of $ORCH_ID, acting for usr_alice"* ]] &&
		ok "4. the comment is posted by the commenter, child of the orchestrator, acting for alice" || bad "4. unexpected answer: $KD_BODY"
	kd_mcp "$tok" post_comment '{"body":"from the reviewer"}'
	www=$(KD_HEADERS=$KD_RESULT_HEADERS kd_header WWW-Authenticate)
	if [[ $KD_STATUS == 403 && $www == *comment:write* ]]; then
		ok "4. the reviewer's own post_comment: 403 insufficient_scope, scope=\"comment:write\""
	elif ((TOOL_RULES == 0)) && [[ $KD_STATUS == 200 ]]; then
		# TOLERANT UNTIL PER-TOOL RULES (as above).
		warn "4. the reviewer's own post_comment: 200: per-tool rules not enabled yet (want 403)"
	else
		bad "4. the reviewer's own post_comment: $KD_STATUS, WWW-Authenticate: ${www:-none} (want 403 insufficient_scope)"
	fi

	# 5. The REST API: its own resource, method/path rules.
	KAVACH_DEMO_RESOURCE=$API_RESOURCE kd_token "$DATA/reviewer.json"
	expect 200 "$KD_STATUS" "5. reviewer token for $API_RESOURCE" "$KD_BODY"
	atok=$(kd_json_str access_token <<<"$KD_BODY")
	http_req -H "Authorization: Bearer $atok" "$GATEWAY/api/repos/demo/files/README.md"
	expect 200 "$st" "5. GET /api/repos/demo/files/README.md" "$HTTP_BODY"
	[[ $HTTP_BODY == *"$REVIEWER_ID, child of $ORCH_ID, acting for usr_alice"* ]] || bad "5. the API answer does not name the chain: $HTTP_BODY"
	http_req -H "Authorization: Bearer $atok" "$GATEWAY/api/repos/demo/comments"
	expect 200 "$st" "5. GET /api/repos/demo/comments"
	[[ $HTTP_BODY == *'Please add a test'* ]] && ok "5. it lists the comment posted over MCP" || bad "5. the MCP comment is missing: $HTTP_BODY"
	http_req -D - -o /dev/null -H "Authorization: Bearer $atok" -X PUT --data-binary 'x' "$GATEWAY/api/repos/demo/files/README.md"
	expect 403 "$st" "5. PUT /api/repos/demo/files/README.md (needs repository:write)"
	KD_HEADERS=$HTTP_BODY
	[[ $(kd_header WWW-Authenticate) == *insufficient_scope*repository:write* ]] || bad "5. want insufficient_scope repository:write: $(kd_header WWW-Authenticate)"
	http_req -H "Authorization: Bearer $atok" -X DELETE "$GATEWAY/api/repos/demo/comments"
	expect 403 "$st" "5. DELETE /api/repos/demo/comments (no rule: denied)"
	http_req -H "Authorization: Bearer $tok" "$GATEWAY/api/repos/demo/files/README.md"
	expect 401 "$st" "5. the /mcp token on /api (wrong audience)"

	# 5. The console: alice signs in on the issuer's login form and sees her
	# tree and the reviewer's denied write_file with the missing scope.
	console_check

	# 6. Alice revokes the orchestrator: everything below it stops.
	if kv agent revoke "$ORCH_ID" >"$DATA/revoke.json" 2>&1; then
		ok "6. kavach agent revoke $ORCH_ID"
	else
		bad "6. kavach agent revoke: $(cat "$DATA/revoke.json")"
	fi
	kd_mcp "$tok" read_diff '{}'
	www=$(kd_header WWW-Authenticate)
	expect 401 "$KD_STATUS" "6. the reviewer's next call" "$KD_STEP: $KD_BODY"
	[[ $www == *invalid_token* ]] || bad "6. want invalid_token: ${www:-no WWW-Authenticate}"
	http_req -H "Authorization: Bearer $atok" "$GATEWAY/api/repos/demo/files/README.md"
	expect 401 "$st" "6. the reviewer's REST token"
	kd_mcp "$ctok" post_comment '{"body":"late"}'
	expect 401 "$KD_STATUS" "6. the commenter's token"
	kd_token "$DATA/reviewer.json"
	[[ $KD_STATUS == 4* ]] && ok "6. the issuer refuses the reviewer a new token: $KD_STATUS $(kd_json_str error <<<"$KD_BODY")" ||
		bad "6. the reviewer still gets tokens: $KD_STATUS $KD_BODY"

	# 7. The audit trail (run where bin/kavach runs: the Caddyfile's
	# audit path is relative to it).
	if ((AUDIT == 1)); then
		# The table names agents through the admin listener (DESIGN.md §10).
		if body=$(cd "$WORKDIR" && "$KAVACH" audit query --admin "$ADMIN" --agent "$REVIEWER_ID" demo-data/audit.jsonl 2>&1) &&
			[[ $body == *"reviewer, child of orchestrator, acting for alice"* ]]; then
			ok "7. kavach audit query --agent $REVIEWER_ID: reviewer, child of orchestrator, acting for alice"
		else
			bad "7. kavach audit query --agent $REVIEWER_ID: $body"
		fi
		if body=$(cd "$WORKDIR" && "$KAVACH" audit verify demo-data/audit.jsonl 2>&1); then ok "7. kavach audit verify"; else bad "7. kavach audit verify: $body"; fi
	else
		# TOLERANT UNTIL THE AUDIT TRAIL: enable `audit file …` in Caddyfile.example.
		warn "7. audit trail not enabled yet (no audit line in the Caddyfile, or no 'kavach audit' command)"
	fi

	((IDP == 1)) && run_idp_check

	echo
	printf 'demo --check: %d ok, %d warnings, %d failed\n' "$PASS" "$WARN" "$FAIL"
	((FAIL == 0))
}

# idp_signin <user> <scopes>: a browser's sign-in through Kavach's login
# page and the demo IdP (bin/kavach-demo-idp signin); sets st (0 when a
# token came back), HTTP_BODY (the token response, or why not).
idp_signin() {
	HTTP_BODY=$("$IDP_BIN" signin -issuer "$ISSUER" -resource "$RESOURCE" -provider demo-idp -user "$1" -scope "$2" 2>&1)
	st=$?
}

# run_idp_check: IDP=1's story. Sign-in through the IdP, the group's
# entitlements, an outsider, ID-JAG exchange and replay.
run_idp_check() {
	local tok cid jag www linked
	echo
	echo "demo --check IDP=1: sign-in through the demo OpenID provider at $IDP_URL"
	http_req "$IDP_URL/.well-known/openid-configuration"
	expect 200 "$st" "8. the IdP's discovery document"
	[[ $HTTP_BODY == *"\"issuer\":\"$IDP_URL\""* ]] || bad "8. the discovery document does not name $IDP_URL: $HTTP_BODY"

	# priya (platform-eng) asks for more than her group gives.
	idp_signin priya "$IDP_SCOPES repository:write comment:write"
	if ((st == 0)); then
		ok "8. priya signs in: Kavach login → Sign in with Demo IdP → priya → consent → code → token"
	else
		bad "8. priya's sign-in through the IdP: $HTTP_BODY"
	fi
	tok=$(kd_json_str access_token <<<"$HTTP_BODY")
	cid=$(kd_json_str client_id <<<"$HTTP_BODY")
	[[ $(kd_json_str scope <<<"$HTTP_BODY") == "$IDP_SCOPES" ]] &&
		ok "8. her token has what group $IDP_GROUP is entitled to: $IDP_SCOPES" ||
		bad "8. her token's scopes: $(kd_json_str scope <<<"$HTTP_BODY"), want $IDP_SCOPES"
	kd_mcp "${tok:-none}" read_diff '{}'
	expect 200 "$KD_STATUS" "8. priya's client tools/call read_diff" "$KD_STEP: $KD_BODY"
	[[ $KD_BODY == *'diff --git'* ]] || bad "8. no diff in the answer: $KD_BODY"
	kd_mcp "${tok:-none}" write_file '{"path":"README.md","content":"x"}'
	www=$(KD_HEADERS=$KD_RESULT_HEADERS kd_header WWW-Authenticate)
	[[ $KD_STATUS == 403 && $www == *repository:write* ]] &&
		ok "8. priya's write_file: 403 insufficient_scope (her group does not give repository:write)" ||
		bad "8. priya's write_file: $KD_STATUS during $KD_STEP, WWW-Authenticate: ${www:-none} (want 403)"
	linked=$(kv user list 2>&1)
	[[ $linked == *demo-idp:priya@corp.example* ]] &&
		ok "8. kavach user list shows priya, created on her first sign-in (jit_users on)" ||
		bad "8. kavach user list has no demo-idp:priya@corp.example: $linked"

	# marco (marketing) gets as far as Kavach and no further.
	idp_signin marco "$IDP_SCOPES"
	# The IdP signs him in; Kavach's page after it refuses: no entitlement.
	if ((st != 0)) && [[ $HTTP_BODY == *'picking marco at the IdP: HTTP 4'* && $HTTP_BODY == *invalid_target* ]]; then
		ok "8. marco (marketing) is refused once back from the IdP: invalid_target (his groups give nothing on $RESOURCE)"
	else
		bad "8. marco's sign-in: want a refusal after the IdP, got: $HTTP_BODY"
	fi

	# 9. ID-JAG: the IdP vouches that priya's client may act for her.
	http_req -d user=priya --data-urlencode client_id="$cid" --data-urlencode resource="$RESOURCE" \
		--data-urlencode scope="mcp:review repository:read" "$IDP_URL/demo/id-jag"
	expect 200 "$st" "9. the IdP mints an ID-JAG (typ oauth-id-jag+jwt) for priya's client"
	jag=$HTTP_BODY
	http_req --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer --data-urlencode assertion="$jag" \
		--data-urlencode client_id="$cid" "$ISSUER/oauth/token"
	expect 200 "$st" "9. jwt-bearer exchange at the issuer" "$HTTP_BODY"
	tok=$(kd_json_str access_token <<<"$HTTP_BODY")
	kd_mcp "${tok:-none}" read_file '{"path":"ratelimit/bucket.go"}'
	expect 200 "$KD_STATUS" "9. the exchanged token: tools/call read_file" "$KD_STEP: $KD_BODY"
	http_req --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer --data-urlencode assertion="$jag" \
		--data-urlencode client_id="$cid" "$ISSUER/oauth/token"
	[[ $st == 400 && $HTTP_BODY == *invalid_grant* ]] && ok "9. the same ID-JAG again: 400 invalid_grant (replay)" ||
		bad "9. the replayed ID-JAG: $st $HTTP_BODY (want 400 invalid_grant)"
}

if [[ $CHECK == 1 ]]; then
	if run_check; then
		OUTCOME=0
	else
		for i in "${!PIDS[@]}"; do show_log "${NAMES[$i]}" "${LOGS[$i]}"; done
	fi
	exit "$OUTCOME"
fi

# ---------------------------------------------------------------- guide

if [[ -t 1 ]]; then B=$(printf '\033[1m') N=$(printf '\033[0m'); else B= N=; fi
REL_DATA=$DATA
[[ $WORKDIR == "$REPO" ]] && REL_DATA=demo-data
if ((TOOL_RULES == 1)); then
	STEP3="→ 403, WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"repository:write\""
	STEP3B="# it is shown only the tools it may call"
else
	STEP3="→ today still 200: the per-tool rules (tool … lines) are commented out in
     Caddyfile.example until they land; then this is a 403 insufficient_scope"
	STEP3B="# then: only the tools it may call"
fi

cat <<EOF

${B}Kavach demo is running.${N} Ctrl-C stops everything.

  gateway   $GATEWAY   MCP at /mcp, REST at /api/   (use 127.0.0.1, not localhost)
  issuer    $ISSUER   admin listener $ADMIN
  console   $ISSUER/console/   sign in as ${B}alice${N} / ${B}$ALICE_PASSWORD${N}
  upstream  $UPSTREAM   the demo MCP server + REST API (loopback, behind the gateway)
  logs      $REL_DATA/kavach.log, $REL_DATA/upstream.log

Seeded with the kavach CLI (DESIGN.md §10):
  usr_alice     entitled on $RESOURCE to
                mcp:review pullrequest:read repository:read repository:write comment:write
  orchestrator  $ORCH_ID   alice's agent, all of the above, 1 h
  reviewer      $REVIEWER_ID   its child: mcp:review pullrequest:read repository:read,
                hosts=127.0.0.1, expires at $REVIEWER_EXPIRES (180 s)

${B}In another terminal${N}, from $REPO:

${B}0.${N} source $REL_DATA/env.sh       # KAVACH_ADMIN_TOKEN, \$ORCH_ID, \$REVIEWER_ID, URLs

${B}1.${N} The reviewer gets a token from the issuer (OAuth client_credentials):
     REVIEWER_TOKEN=\$(scripts/demo-call.sh token $REL_DATA/reviewer.json)
     bin/kavach token inspect "\$REVIEWER_TOKEN"   # sub usr_alice, act: reviewer ← orchestrator
   (that is: curl -u "\$REVIEWER_ID:<client_secret>" $ISSUER/oauth/token \\
               -d grant_type=client_credentials --data-urlencode resource=$RESOURCE)

${B}2.${N} It reads the pull request's diff through the gateway: allowed.
     scripts/demo-call.sh "\$REVIEWER_TOKEN" read_diff
   Real JSON-RPC: initialize, then tools/call with the Mcp-Session-Id. The server's
   answer ends "called by $REVIEWER_ID, child of $ORCH_ID, acting for usr_alice".

${B}3.${N} It tries to change a file:
     scripts/demo-call.sh "\$REVIEWER_TOKEN" write_file '{"path":"README.md","content":"LGTM"}'
   $STEP3
     scripts/demo-call.sh "\$REVIEWER_TOKEN" tools/list   $STEP3B

${B}4.${N} One comment needs comment:write, which the reviewer lacks (delegation only
   narrows). The orchestrator makes a separate identity for it that lives 60 s:
     bin/kavach agent child "\$ORCH_ID"$ADMIN_FLAG --name commenter --scope "mcp:review comment:write" \\
         --ttl 60s --constraint hosts=127.0.0.1 > $REL_DATA/commenter.json
     COMMENT_TOKEN=\$(scripts/demo-call.sh token $REL_DATA/commenter.json)
     scripts/demo-call.sh "\$COMMENT_TOKEN" post_comment '{"body":"Please add a test for a slow caller.","path":"ratelimit/bucket.go","line":27}'
   Once its 60 s (and the gateway's 30 s clock leeway) are over, the same call is a 401.

${B}5.${N} The REST API is protected the same way (its own resource, rules per method and path):
     API_TOKEN=\$(KAVACH_DEMO_RESOURCE=$API_RESOURCE scripts/demo-call.sh token $REL_DATA/reviewer.json)
     curl -s  -H "Authorization: Bearer \$API_TOKEN" $GATEWAY/api/repos/demo/comments
     curl -si -H "Authorization: Bearer \$API_TOKEN" -X PUT --data 'x' $GATEWAY/api/repos/demo/files/README.md   # 403

${B}6.${N} Open the console in a browser: $ISSUER/console/ (alice / $ALICE_PASSWORD).
   Agents shows orchestrator → reviewer with scopes, expiry and last use; the
   reviewer's page and Trail show its allowed read_diff and its denied write_file
   ("missing scope repository:write"), each with the chain reviewer ← orchestrator ← alice,
   and the box on top says how far the trail's hash chain and signed checkpoints verify.

${B}7.${N} Alice revokes the orchestrator — on its console page (Revoke… shows what the
   cascade stops, Confirm revokes), or from the CLI:
     bin/kavach agent revoke "\$ORCH_ID"$ADMIN_FLAG
   Everything below it stops at once:
     scripts/demo-call.sh "\$REVIEWER_TOKEN" read_diff        # 401 invalid_token
     scripts/demo-call.sh token $REL_DATA/reviewer.json       # the issuer refuses too
   The console's Trail now shows the reviewer's call denied: token revoked.
EOF
if ((AUDIT == 1)); then
	cat <<EOF

${B}8.${N} The audit trail names the whole chain, and its hash chain verifies:
     bin/kavach audit query$ADMIN_FLAG --agent reviewer $REL_DATA/audit.jsonl
     bin/kavach audit verify $REL_DATA/audit.jsonl
EOF
fi
cat <<EOF

${B}Any MCP client${N}: Streamable HTTP at $RESOURCE
   - with a token: e.g. MCP Inspector (npx @modelcontextprotocol/inspector), transport
     "Streamable HTTP", URL above, Authentication → Bearer token: \$REVIEWER_TOKEN
   - with OAuth: the client follows the gateway's 401 to the issuer, registers itself,
     and you log in as ${B}alice${N} / ${B}$ALICE_PASSWORD${N} and consent.

The reviewer expires at $REVIEWER_EXPIRES; a fresh one (before step 7):
     bin/kavach agent child "\$ORCH_ID"$ADMIN_FLAG --name reviewer --scope "mcp:review pullrequest:read repository:read" \\
         --ttl 180s --constraint hosts=127.0.0.1 > $REL_DATA/reviewer.json
Ctrl-C stops the demo; 'make demo' starts over with fresh state.
EOF

if ((IDP == 1)); then
	cat <<EOF

${B}Sign-in through your organisation's IdP${N} (IDP=1): the demo's OpenID provider
  idp       $IDP_URL   log $REL_DATA/idp.log; its login page is a user picker:
              priya   priya@corp.example   groups platform-eng, staff
              marco   marco@corp.example   groups marketing, staff
  $REL_DATA/Caddyfile.idp is Caddyfile.example with, in kavach_issuer { … }:
      login oidc demo-idp { issuer $IDP_URL; client_id kavach-demo; client_secret {env.…}; jit_users on }
      entitle group $IDP_GROUP $RESOURCE $IDP_SCOPES
      trust_idjag $IDP_URL { jwks $IDP_URL/keys }
  So whoever the IdP puts in $IDP_GROUP may review through /mcp (read the diff and
  files, not write or comment), checked again at every sign-in; marco gets nothing.

${B}9.${N} Sign in as a browser does: the client registers, Kavach's login page →
   "Sign in with Demo IdP" → pick priya → Allow → code → token:
     bin/kavach-demo-idp signin -issuer $ISSUER -resource $RESOURCE \\
         -user priya -scope "$IDP_SCOPES repository:write" > $REL_DATA/priya.json
     PRIYA_TOKEN=\$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' $REL_DATA/priya.json)
     scripts/demo-call.sh "\$PRIYA_TOKEN" read_diff      # allowed; repository:write was not granted
     bin/kavach user list$ADMIN_FLAG   # demo-idp:priya@corp.example, made at sign-in
   The same with -user marco: refused once back from the IdP (invalid_target).
   In a real browser: connect an MCP client with OAuth to $RESOURCE (e.g. MCP
   Inspector, no token) and choose "Sign in with Demo IdP" on Kavach's login page.

${B}10.${N} Enterprise-managed authorization: the IdP vouches that priya's client may act
   for her (an ID-JAG, typ oauth-id-jag+jwt); the client trades it for a token, no consent page:
     CID=\$(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' $REL_DATA/priya.json)
     JAG=\$(curl -s -d user=priya --data-urlencode client_id="\$CID" --data-urlencode resource=$RESOURCE \\
         -d scope="mcp:review repository:read" $IDP_URL/demo/id-jag)
     curl -s $ISSUER/oauth/token -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \\
         --data-urlencode assertion="\$JAG" --data-urlencode client_id="\$CID"   # again: invalid_grant (replay)
EOF
fi

# Wait for Ctrl-C (or SIGTERM); notice a process that dies on its own.
while :; do
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			show_log "${NAMES[$i]}" "${LOGS[$i]}"
			die "${NAMES[$i]} stopped unexpectedly"
		fi
	done
	sleep 1 &
	SLEEP_PID=$!
	wait "$SLEEP_PID"
	SLEEP_PID=
done
