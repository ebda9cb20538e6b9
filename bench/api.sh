#!/bin/bash
# API benchmark: wrk against a real controller, sharing the machine with it.
# GET …/pcaps/{id} (one full capture, with its agent's share) and GET …/pcaps
# (the account's list: CAPTURES full and CAPTURES sample captures), each for
# DURATION with CONNS connections on one wrk thread, authenticated with a read
# token like any client. Prints requests/s and the 99th percentile latency.
# Targets (issue 3): >= 20,000 req/s and p99 <= 10 ms.
#
# The captures are real: an agent on lo takes them (ping makes the packets), so
# the objects served are the ones users see.
#
#   bench/api.sh [BUILD_DIR]      env: DURATION=10s CONNS=100 CAPTURES=10
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-100}
CAPTURES=${CAPTURES:-10}

work=$(mktemp -d /tmp/pcapd-bench-api.XXXXXX)
ctl_pid=
agent_pid=
cleanup() {
	for p in $agent_pid $ctl_pid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# wait_line FILE PREFIX: until a line of FILE starts with PREFIX (15 s).
wait_line() {
	for _ in $(seq 150); do
		grep -q "^$2" "$1" && return 0
		sleep 0.1
	done
	echo "api.sh: no '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

json_field() { # FIELD: from the JSON envelope on stdin, result.FIELD
	/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["result"][sys.argv[1]])' "$1"
}

account=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
token() { "$build/pcapd" token create --data "$work/ctl" --account "$account" --scope "$1"; }
mkdir -p "$work/ctl" "$work/buckets"
wtok=$(token write)
rtok=$(token read)
etok=$("$build/pcapd" token create --data "$work/ctl" --scope enroll)

"$build/pcapd" controller --data "$work/ctl" --http 127.0.0.1:0 --bucket-root "$work/buckets" \
	--sample-interval 0 --max-active-full 0 2>"$work/ctl.err" &
ctl_pid=$!
wait_line "$work/ctl.err" "pcapd: controller listening on"
url=$(sed -n 's/^pcapd: controller listening on \(http:[^ ]*\).*/\1/p' "$work/ctl.err")
api="$url/client/v4/accounts/$account/pcaps"

"$build/pcapd" agent --controller "$url" --name bench1 --colo bench -i lo --enroll-token "$etok" \
	--data "$work/agent" --bucket-root "$work/buckets" 2>"$work/agent.err" &
agent_pid=$!
wait_line "$work/agent.err" "pcapd: agent bench1 registered"

post() { # PATH BODY
	curl -sS -H "Authorization: Bearer $wtok" -H 'Content-Type: application/json' -d "$2" "$api$1"
}
bucket="file://$work/buckets/b1"
fname=$(post /ownership "{\"destination_conf\":\"$bucket\"}" | json_field filename)
post /ownership/validate "{\"destination_conf\":\"$bucket\",\"ownership_challenge\":\"$(cat "$work/buckets/b1/$fname")\"}" |
	json_field status >/dev/null

ping -q -i 0.01 -c 300 127.0.0.1 >/dev/null 2>&1 &
ping_pid=$!
ids=()
for _ in $(seq "$CAPTURES"); do
	ids+=("$(post "" '{"type":"full","system":"magic-transit","time_limit":1,"packet_limit":100,"colo_name":"bench","destination_conf":"'"$bucket"'","filter_v1":{"protocol":1}}' | json_field id)")
	post "" '{"type":"simple","system":"magic-transit","time_limit":1,"packet_limit":100}' >/dev/null
done
wait "$ping_pid" || true
id=${ids[0]}
for _ in $(seq 100); do
	st=$(curl -sS -H "Authorization: Bearer $rtok" "$api/$id" | json_field status)
	[ "$st" = success ] || [ "$st" = failed ] && break
	sleep 0.1
done
echo "captures: $((2 * CAPTURES)) in the list; GET target $id ($st)"

# wrk URL -> "req/s p99_ms"
bench() {
	local out rps p99
	out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $rtok" "$1")
	echo "$out" >"$work/wrk.out"
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "api.sh: non-2xx answers from $1:" >&2
		echo "$out" >&2
		return 1
	fi
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' <<<"$out")
	echo "$rps $p99"
}

printf '%-28s %12s %10s\n' endpoint "req/s" "p99 ms"
read -r rps p99 <<<"$(bench "$api/$id")"
printf '%-28s %12.0f %10.2f\n' "GET /pcaps/{id}" "$rps" "$p99"
read -r rps2 p992 <<<"$(bench "$api")"
printf '%-28s %12.0f %10.2f\n' "GET /pcaps ($((2 * CAPTURES)) items)" "$rps2" "$p992"
awk -v a="$rps" -v b="$p99" -v c="$rps2" -v d="$p992" 'BEGIN {
	ok = (a >= 20000 && b <= 10 && c >= 20000 && d <= 10)
	printf "targets (>= 20000 req/s, p99 <= 10 ms): %s\n", ok ? "met" : "NOT met"
}'
