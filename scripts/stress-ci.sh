#!/bin/bash
# The suite under load: runs .ci/run (both legs) N times in a row (default 5)
# while stress-ng keeps every core busy, and stops at the first red run.
# Proves that no test depends on the machine's speed (README, "Tests").
#
#   scripts/stress-ci.sh [N]      as root, from a clean checkout
#
# Prints each run's closing line and duration, then "stress: K of N runs
# green". stress-ng is stopped by its pid, whatever happens.
set -u
n=${1:-5}
cd "$(dirname "$0")/.."
command -v stress-ng >/dev/null || scripts/install-deps.sh || exit 1
cores=$(nproc)
stress-ng --cpu "$cores" --timeout $((n * 3600))s --quiet &
load=$!
trap 'kill "$load" 2>/dev/null; wait "$load" 2>/dev/null' EXIT
echo "stress: stress-ng --cpu $cores (pid $load) keeps $cores cores busy"
green=0
for i in $(seq 1 "$n"); do
	t0=$(date +%s)
	.ci/run >"stress-run-$i.log" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "stress-run-$i.log" | tail -n 1)
	echo "stress: run $i: ${line:-no result line} (exit $rc, $(($(date +%s) - t0)) s, load $(cut -d' ' -f1-3 /proc/loadavg))"
	if [ "$rc" -ne 0 ]; then
		echo "stress: run $i failed; its log is stress-run-$i.log:"
		grep -E '^(not ok|FAILED|ERROR)|(FAIL|ERROR) +[0-9.]+s' "stress-run-$i.log" | head -n 20
		break
	fi
	green=$((green + 1))
	rm -f "stress-run-$i.log"
done
echo "stress: $green of $n runs green"
[ "$green" -eq "$n" ]
