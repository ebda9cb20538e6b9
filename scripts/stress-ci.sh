#!/bin/bash
# The suite under load: .ci/run (both legs) N times in a row (default 5) while
# the machine is kept busy, stopping at the first red run. Proves that no test
# depends on the machine's speed (README, "Tests").
#
#   scripts/stress-ci.sh [N]                  as root, from a clean checkout
#   LOAD=stress-ng scripts/stress-ci.sh [N]
#
# LOAD=suite (the default): two clones of HEAD run .ci/run side by side, each
# the other's load (their own ports and namespaces); every run that ends while
# the other stream is still running counts, until N are green. The stream left
# running when the series is over is interrupted (SIGINT, so the harness
# deletes its namespaces and stops its processes).
# LOAD=stress-ng: one stream, with stress-ng --cpu <cores> beside it.
#
# Prints each run's closing line, duration and load average, then
# "stress: K of N runs green". A red run keeps its log and prints its failing
# tests. Everything started here is stopped by its pid.
set -u
n=${1:-5}
load=${LOAD:-suite}
cd "$(dirname "$0")/.."
top=$(pwd)
work=$(mktemp -d /tmp/stress-ci.XXXXXX)
results=$work/results
: >"$results"
pids=()

stop_all() {
	local p
	for p in "${pids[@]}"; do
		kill -INT -- "-$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 120); do
			kill -0 "$p" 2>/dev/null || break
			sleep 1
		done
		kill -KILL -- "-$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	pids=()
	# An interrupted stack may leave its namespaces (pdit-PID-…): those of
	# test processes that are gone are deleted, as the harness does at start.
	ip netns list 2>/dev/null | while read -r ns _; do
		case $ns in
		pdit-[0-9]*-*)
			pid=${ns#pdit-}
			pid=${pid%%-*}
			[ -d "/proc/$pid" ] || ip netns del "$ns"
			;;
		esac
	done
}
trap stop_all EXIT

# One stream: runs .ci/run in DIR again and again, one line per run in $results.
stream() {
	local name=$1 dir=$2 i=0 t0 rc line
	trap 'exit 130' INT
	while :; do
		i=$((i + 1))
		t0=$(date +%s)
		(cd "$dir" && .ci/run) >"$work/$name-$i.log" 2>&1
		rc=$?
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/$name-$i.log" | tail -n 1)
		echo "$name $i $rc $(($(date +%s) - t0)) ${line:-no result line} | load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
	done
}

case $load in
suite)
	for s in a b; do
		git clone -q "$top" "$work/$s" || exit 1
		setsid env --default-signal=INT bash -c "$(declare -f stream); work=$work results=$results stream $s $work/$s" &
		pids+=($!)
	done
	echo "stress: two suite streams side by side on $(git rev-parse --short HEAD), in $work"
	;;
stress-ng)
	command -v stress-ng >/dev/null || scripts/install-deps.sh || exit 1
	setsid stress-ng --cpu "$(nproc)" --quiet &
	pids+=($!)
	git clone -q "$top" "$work/a" || exit 1
	setsid env --default-signal=INT bash -c "$(declare -f stream); work=$work results=$results stream a $work/a" &
	pids+=($!)
	echo "stress: stress-ng --cpu $(nproc) beside one suite stream on $(git rev-parse --short HEAD), in $work"
	;;
*)
	echo "stress: LOAD must be suite or stress-ng" >&2
	exit 2
	;;
esac

green=0
seen=0
while [ "$green" -lt "$n" ]; do
	sleep 10
	total=$(wc -l <"$results")
	while [ "$seen" -lt "$total" ]; do
		seen=$((seen + 1))
		read -r name i rc secs rest < <(sed -n "${seen}p" "$results")
		echo "stress: run $name$i: $rest (exit $rc, $secs s)"
		if [ "$rc" -ne 0 ]; then
			echo "stress: run $name$i failed; its log is $work/$name-$i.log:"
			grep -E '^(not ok|FAILED|ERROR)|(FAIL|ERROR) +[0-9.]+s' "$work/$name-$i.log" | head -n 20
			break 2
		fi
		green=$((green + 1))
		rm -f "$work/$name-$i.log"
		[ "$green" -lt "$n" ] || break
	done
done
stop_all
echo "stress: $green of $n runs green"
[ "$green" -eq "$n" ] && rm -rf "$work"
[ "$green" -eq "$n" ]
