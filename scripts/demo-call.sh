#!/usr/bin/env bash
# demo-call.sh: one real MCP exchange through the Kavach gateway, with curl
# (the demo's guide uses it; scripts/demo.sh sources it for --check).
#
#   scripts/demo-call.sh <token> <tool> ['<json arguments>']
#       initialize → notifications/initialized → tools/call → DELETE the
#       session: JSON-RPC over HTTP (MCP streamable HTTP transport), the
#       Mcp-Session-Id from initialize on every later request.
#   scripts/demo-call.sh <token> tools/list
#   scripts/demo-call.sh token <agent.json | client_id client_secret> [scope…]
#       an agent's access token from the issuer (OAuth client_credentials);
#       agent.json is what `kavach agent create|child` printed.
#
# Environment:
#   KAVACH_DEMO_GATEWAY   gateway base URL   (default http://127.0.0.1:8080)
#   KAVACH_DEMO_ISSUER    issuer base URL    (default http://127.0.0.1:8081)
#   KAVACH_DEMO_RESOURCE  MCP resource URL   (default $KAVACH_DEMO_GATEWAY/mcp)
#   KAVACH_DEMO_RAW=1     print the raw JSON-RPC answer (default: the tool's
#                         text when jq is installed, else the raw answer)
#   KAVACH_DEMO_QUIET=1   no "→ method: status" trace on stderr
#
# Exit status: 0 when every HTTP answer was 2xx and the tool did not fail,
# 1 otherwise (the HTTP status and WWW-Authenticate are printed on stderr).

: "${KAVACH_DEMO_GATEWAY:=http://127.0.0.1:8080}"
: "${KAVACH_DEMO_ISSUER:=http://127.0.0.1:8081}"
: "${KAVACH_DEMO_RESOURCE:=$KAVACH_DEMO_GATEWAY/mcp}"

KD_PROTOCOL_VERSION=2025-11-25

# kd_json_str <name>: the first "name": "value" string in stdin.
kd_json_str() {
	grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n 1 | sed 's/^[^:]*:[[:space:]]*"//; s/"$//'
}

# kd_header <name>: that header's value in $KD_HEADERS.
kd_header() {
	printf '%s\n' "$KD_HEADERS" | tr -d '\r' | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*:[[:space:]]*//'
}

# kd_http <method> <url> <token> [<session>] [<json body>]: one request.
# Sets KD_STATUS (000 when the connection failed), KD_HEADERS, KD_BODY
# (for an SSE answer, the data of its last event).
kd_http() {
	local method=$1 url=$2 token=$3 session=${4:-} body=${5:-} out
	local args=(-sS --max-time 30 -D - -w '\n%{http_code}' -X "$method" "$url"
		-H "Authorization: Bearer $token"
		-H 'Accept: application/json, text/event-stream')
	if [[ -n $session ]]; then
		args+=(-H "Mcp-Session-Id: $session" -H "MCP-Protocol-Version: $KD_PROTOCOL_VERSION")
	fi
	if [[ -n $body ]]; then
		args+=(-H 'Content-Type: application/json' --data-binary "$body")
	fi
	out=$(curl "${args[@]}" 2>&1) || true
	KD_STATUS=${out##*$'\n'}
	out=${out%$'\n'*}
	[[ $KD_STATUS =~ ^[0-9]{3}$ ]] || {
		KD_STATUS=000
		KD_HEADERS=
		KD_BODY=$out
		return
	}
	if [[ $out == *$'\r\n\r\n'* ]]; then
		KD_HEADERS=${out%%$'\r\n\r\n'*}
		KD_BODY=${out#*$'\r\n\r\n'}
	else
		KD_HEADERS=$out
		KD_BODY=
	fi
	if [[ $(kd_header Content-Type) == text/event-stream* ]]; then
		KD_BODY=$(printf '%s\n' "$KD_BODY" | tr -d '\r' | sed -n 's/^data: \{0,1\}//p' | tail -n 1)
	fi
}

kd_trace() {
	[[ ${KAVACH_DEMO_QUIET:-} == 1 ]] || printf '  → %s: %s\n' "$1" "$2" >&2
}

# kd_denied: explain a non-2xx answer on stderr.
kd_denied() {
	local www
	www=$(kd_header WWW-Authenticate)
	printf 'HTTP %s from the gateway during %s\n' "$KD_STATUS" "$KD_STEP" >&2
	[[ -n $www ]] && printf 'WWW-Authenticate: %s\n' "$www" >&2
	[[ -n $KD_BODY ]] && printf '%s\n' "$KD_BODY" >&2
	return 0
}

# kd_mcp <token> <tools/list | tool> [<json arguments>]: the whole MCP
# exchange. Sets KD_STEP (the exchange that answered last), KD_STATUS,
# KD_HEADERS, KD_BODY (the JSON-RPC answer) and KD_RESULT_HEADERS (the
# headers of the tools/* answer). Returns 0 when every answer was 2xx.
kd_mcp() {
	local token=$1 tool=$2 args=${3:-'{}'} session req
	KD_STEP=initialize
	KD_RESULT_HEADERS=
	kd_http POST "$KAVACH_DEMO_RESOURCE" "$token" "" \
		'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'$KD_PROTOCOL_VERSION'","capabilities":{},"clientInfo":{"name":"kavach-demo-curl","version":"1.0.0"}}}'
	session=$(kd_header Mcp-Session-Id)
	kd_trace initialize "$KD_STATUS${session:+ (Mcp-Session-Id $session)}"
	[[ $KD_STATUS == 2* ]] || return 1

	KD_STEP=notifications/initialized
	kd_http POST "$KAVACH_DEMO_RESOURCE" "$token" "$session" '{"jsonrpc":"2.0","method":"notifications/initialized"}'
	kd_trace "$KD_STEP" "$KD_STATUS"
	[[ $KD_STATUS == 2* ]] || return 1

	if [[ $tool == tools/list ]]; then
		KD_STEP=tools/list
		req='{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}'
	else
		KD_STEP="tools/call $tool"
		req='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"'$tool'","arguments":'$args'}}'
	fi
	kd_http POST "$KAVACH_DEMO_RESOURCE" "$token" "$session" "$req"
	kd_trace "$KD_STEP" "$KD_STATUS"
	local status=$KD_STATUS headers=$KD_HEADERS body=$KD_BODY step=$KD_STEP
	KD_RESULT_HEADERS=$headers

	# End the session, as a well-behaved client does (best effort).
	if [[ -n $session ]]; then
		kd_http DELETE "$KAVACH_DEMO_RESOURCE" "$token" "$session"
	fi
	KD_STATUS=$status KD_HEADERS=$headers KD_BODY=$body KD_STEP=$step
	[[ $KD_STATUS == 2* ]]
}

# kd_print: show the JSON-RPC answer in $KD_BODY. Returns 1 for a JSON-RPC
# error or a tool error.
kd_print() {
	if [[ ${KAVACH_DEMO_RAW:-} == 1 ]] || ! command -v jq >/dev/null; then
		printf '%s\n' "$KD_BODY"
		[[ $KD_BODY != *'"error":{'* && $KD_BODY != *'"isError":true'* ]]
		return
	fi
	jq -r '
		if .error then "JSON-RPC error \(.error.code): \(.error.message)"
		elif .result.tools then (.result.tools[] | "\(.name)\t\(.description // "")")
		elif .result.content then
			(if .result.isError then "tool error: " else "" end) + ([.result.content[] | .text // empty] | join("\n"))
		else . end' <<<"$KD_BODY" || printf '%s\n' "$KD_BODY"
	jq -e '(.error == null) and (.result.isError != true)' <<<"$KD_BODY" >/dev/null
}

# kd_token <agent.json | client_id secret> [scope…]: client_credentials.
# Sets KD_STATUS and KD_BODY; prints nothing.
kd_token() {
	local id secret
	if [[ -f ${1:-} ]]; then
		id=$(kd_json_str client_id <"$1")
		secret=$(kd_json_str client_secret <"$1")
		shift
	else
		id=${1:-} secret=${2:-}
		shift 2 || true
	fi
	if [[ -z $id || -z $secret ]]; then
		KD_STATUS=000 KD_BODY="no client_id and client_secret (give agent.json or <client_id> <secret>)"
		return 1
	fi
	local args=(-sS --max-time 30 -w '\n%{http_code}' -u "$id:$secret" "$KAVACH_DEMO_ISSUER/oauth/token"
		-d grant_type=client_credentials --data-urlencode "resource=$KAVACH_DEMO_RESOURCE")
	[[ $# -gt 0 ]] && args+=(--data-urlencode "scope=$*")
	local out
	out=$(curl "${args[@]}" 2>&1) || true
	KD_STATUS=${out##*$'\n'}
	KD_BODY=${out%$'\n'*}
	[[ $KD_STATUS =~ ^[0-9]{3}$ ]] || KD_STATUS=000
	[[ $KD_STATUS == 200 ]]
}

kd_usage() {
	sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

kd_main() {
	command -v curl >/dev/null || {
		echo "demo-call.sh needs curl" >&2
		exit 2
	}
	case ${1:-} in
	"" | -h | --help) kd_usage ;;
	token)
		shift
		[[ $# -ge 1 ]] || kd_usage
		if kd_token "$@"; then
			printf '%s\n' "$KD_BODY" | kd_json_str access_token
		else
			printf 'the issuer answered %s: %s\n' "$KD_STATUS" "$KD_BODY" >&2
			exit 1
		fi
		;;
	*)
		[[ $# -ge 2 && $# -le 3 ]] || kd_usage
		if [[ $2 != tools/list && ! $2 =~ ^[A-Za-z0-9_.-]+$ ]]; then
			echo "demo-call.sh: $2 is not a tool name" >&2
			exit 2
		fi
		if ! kd_mcp "$@"; then
			kd_denied
			exit 1
		fi
		kd_print
		;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -u
	kd_main "$@"
fi
