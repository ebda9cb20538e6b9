#!/bin/bash
# Merge benchmark: `pcapd merge -w` against `mergecap -w` on the same two
# generated pcap files (SIZE_MIB each), RUNS alternating runs each, warm page
# cache. Before each timed run every output is removed and dirty pages are
# synced, so both tools start from the same state: on this VM a run that
# follows another tool's fresh 1 GiB output on disk takes 2-3x longer in the
# kernel, whichever tool it is. Runs alternate; every run is printed; the
# summary is the median. Equality is checked in an untimed pass at the end. Checks that both
# outputs hold the same records (timestamps, lengths, bytes) in the same order:
# both are classic µs pcap, so everything after the 24-byte file header must be
# byte-identical.
#
#   bench/merge.sh [BUILD_DIR]      env: RUNS=3 SIZE_MIB=512 OUTDIR=/var/tmp/pcapd-bench
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-512}
OUTDIR=${OUTDIR:-/var/tmp/pcapd-bench}
. "$root/bench/lib.sh"

mkdir -p "$OUTDIR"
a=$OUTDIR/merge-a.pcap
b=$OUTDIR/merge-b.pcap
trap 'rm -f "$OUTDIR"/merge-*' EXIT
/usr/bin/python3 "$root/bench/genpcap.py" "$a" "$SIZE_MIB" 1
/usr/bin/python3 "$root/bench/genpcap.py" "$b" "$SIZE_MIB" 2
cat "$a" "$b" >/dev/null # warm the page cache

run() { # tool out -> seconds
	local t0 t1
	rm -f "$OUTDIR"/merge-out-*
	sync # start from no dirty pages: both tools write 1 GiB into a clean page cache
	t0=$(date +%s.%N)
	case $1 in
	pcapd) "$build/pcapd" merge -w "$2" "$a" "$b" ;;
	mergecap) mergecap -F pcap -w "$2" "$a" "$b" ;;
	esac
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

: >"$OUTDIR/merge-times"
for i in $(seq "$RUNS"); do
	for tool in mergecap pcapd; do
		s=$(run $tool "$OUTDIR/merge-out-$tool.pcap")
		echo "$tool $s" >>"$OUTDIR/merge-times"
		printf 'run %d %-9s %7ss  %6.0f MB/s\n' "$i" "$tool" "$s" "$(echo "$s" | awk -v m="$SIZE_MIB" '{ print 2 * m * 1.048576 / $1 }')"
	done
done
rm -f "$OUTDIR"/merge-out-*
mergecap -F pcap -w "$OUTDIR/merge-out-mergecap.pcap" "$a" "$b"
"$build/pcapd" merge -w "$OUTDIR/merge-out-pcapd.pcap" "$a" "$b"
if cmp -s -i 24 "$OUTDIR/merge-out-mergecap.pcap" "$OUTDIR/merge-out-pcapd.pcap"; then
	echo "outputs: identical records in identical order"
else
	echo "outputs: DIFFER — the figures below do not count" >&2
	exit 1
fi
m=$(awk '$1 == "mergecap" { print $2 }' "$OUTDIR/merge-times" | bench_median)
p=$(awk '$1 == "pcapd" { print $2 }' "$OUTDIR/merge-times" | bench_median)
echo "median: mergecap ${m}s, pcapd ${p}s; pcapd is $(awk -v m="$m" -v p="$p" 'BEGIN { printf "%.2f", m / p }')x faster"
