#!/bin/bash
# Capture benchmark: the same traffic (trafgen, N fixed-size UDP frames at its
# maximum rate over a veth pair) captured to an ext4 file by pcapd, by
# `tcpdump -B 65536` and by netsniff-ng, one after the other, RUNS times each,
# in one invocation. Prints per-run rows and the medians, then the ratios
# against tcpdump. Needs root; makes and removes its own namespaces.
#
#   bench/capture.sh [BUILD_DIR]      env: RUNS=3 PACKETS=7000000 SIZES="64 1514"
#                                          OUTDIR=/var/tmp/pcapd-bench TOOLS="pcapd tcpdump netsniff-ng"
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
pcapd=$build/pcapd
RUNS=${RUNS:-3}
PACKETS=${PACKETS:-7000000}
SIZES=${SIZES:-64 1514}
OUTDIR=${OUTDIR:-/var/tmp/pcapd-bench}
TOOLS=${TOOLS:-pcapd tcpdump netsniff-ng}
. "$root/bench/lib.sh"

work=$(mktemp -d)
mkdir -p "$OUTDIR"
cleanup() {
	bench_netns_down
	rm -rf "$work" "$OUTDIR"/cap-*
}
trap cleanup EXIT
bench_netns_up

# Starts tool $1 writing to $2 under /usr/bin/time; sets TOOL_PID, TIME_PID.
start_tool() {
	local tool=$1 out=$2
	case $tool in
	pcapd) set -- "$pcapd" capture -i "$BENCH_IF_RX" -w "$out" ;;
	tcpdump) set -- tcpdump -B 65536 -n -i "$BENCH_IF_RX" -w "$out" ;;
	netsniff-ng) set -- netsniff-ng --in "$BENCH_IF_RX" --out "$out" --silent ;;
	esac
	ip netns exec "$BENCH_NS_RX" /usr/bin/time -f '%U %S' -o "$work/cpu" "$@" 2>"$work/stderr" &
	TIME_PID=$!
	for _ in $(seq 50); do
		TOOL_PID=$(pgrep -P "$TIME_PID" || true)
		[ -n "$TOOL_PID" ] && grep -qE 'capturing on|listening on|Running' "$work/stderr" 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.5 # netsniff-ng prints nothing when ready
}

# Packets in a classic pcap file of fixed-size records: (size - 24) / (16 + len).
count_records() {
	local size
	size=$(stat -c %s "$1")
	echo $(((size - 24) / (16 + $2)))
}

printf '%-6s %-12s %-4s %10s %10s %8s %8s %9s\n' size tool run sent captured drops cpu_s us/pkt
for size in $SIZES; do
	bench_frame_cfg "$size" >"$work/frame.cfg"
	for run in $(seq "$RUNS"); do
		for tool in $TOOLS; do
			out=$OUTDIR/cap-$tool.pcap
			rm -f "$out"
			start_tool "$tool" "$out"
			before=$(bench_rx_packets)
			bench_send "$work/frame.cfg" "$PACKETS"
			sleep 1
			sent=$(($(bench_rx_packets) - before))
			kill -INT "$TOOL_PID"
			wait "$TIME_PID" || true
			captured=$(count_records "$out" "$size")
			drops=$((sent - captured))
			read -r u s <"$work/cpu"
			cpu=$(echo "$u $s" | awk '{ printf "%.2f", $1 + $2 }')
			per=$(echo "$cpu $captured" | awk '{ printf "%.3f", $2 ? $1 * 1e6 / $2 : 0 }')
			printf '%-6s %-12s %-4s %10s %10s %8s %8s %9s\n' "$size" "$tool" "$run" "$sent" "$captured" "$drops" "$cpu" "$per" | tee -a "$work/rows"
			rm -f "$out"
		done
	done
done

echo
echo "medians over $RUNS runs (drops = sent - records in the file):"
for size in $SIZES; do
	for tool in $TOOLS; do
		rows=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t' "$work/rows")
		[ -n "$rows" ] || continue
		d=$(awk '{ print $6 }' <<<"$rows" | bench_median)
		c=$(awk '{ print $7 }' <<<"$rows" | bench_median)
		p=$(awk '{ print $8 }' <<<"$rows" | bench_median)
		echo "$size $tool $d $c $p" >>"$work/medians"
		printf '  %-5s %-12s drops %-9s cpu_s %-7s us/pkt %s\n' "$size" "$tool" "$d" "$c" "$p"
	done
done
echo
echo "ratios (tcpdump / X: above 1 means X uses less CPU per packet than tcpdump):"
for size in $SIZES; do
	ref=$(awk -v s="$size" '$1 == s && $2 == "tcpdump" { print $5 }' "$work/medians")
	for tool in $TOOLS; do
		[ "$tool" = tcpdump ] && continue
		x=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $5 }' "$work/medians")
		[ -n "$ref" ] && [ -n "$x" ] && awk -v r="$ref" -v x="$x" -v s="$size" -v t="$tool" \
			'BEGIN { printf "  %s-byte frames: CPU per packet, tcpdump/%s = %.2fx\n", s, t, (x > 0 ? r / x : 0) }'
	done
done
