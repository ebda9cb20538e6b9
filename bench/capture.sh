#!/bin/bash
# Capture benchmark: the same traffic (trafgen, N fixed-size UDP frames at its
# maximum rate over a veth pair) captured to a file by pcapd, by
# `tcpdump -B 65536` and by netsniff-ng, one after the other, RUNS times each,
# in one invocation. Anchors measured in the same invocation, on the same file
# system: the disk's own sustained write rate with large direct writes
# (dd bs=4M oflag=direct; refused on some file systems) and through the page
# cache (dd bs=4M conv=fdatasync), before and after the captures; and, since
# dd copies from one 4 MiB buffer that stays in the CPU's cache while a
# capture copies each frame once out of a large ring, bench/ringcopy.c: the
# same bytes written as a capture writes them, from a 128 MiB buffer. Prints
# the machine's load, per-run rows, medians with the spread (min..max), each
# tool's write rate as a fraction of the anchors, and CPU ratios against
# tcpdump. Each tool is started and stopped once right before each measured
# run, so that on a VM its ring is not set up in memory the host took back
# (warm_tool). Needs root; makes and removes its own namespaces.
#
#   bench/capture.sh [BUILD_DIR]      env: RUNS=3 PACKETS=7000000 SIZES="64 1514"
#        OUTDIR=/var/tmp/pcapd-bench (try /dev/shm for tmpfs) TOOLS="pcapd tcpdump netsniff-ng"
#        DD_MIB= (size of each dd anchor; 0 = none; default: what the largest
#        capture writes, since on a VM the first touch of memory or blocks the
#        host has not lent recently costs more: a 4 GiB dd into tmpfs measured
#        4.2 GB/s where 10 GiB took 0.6-1.6 GB/s, same machine, same hour)
#        RATE= (trafgen --rate, e.g. 700MB: the frames at that rate instead of
#        trafgen's maximum, to capture below a disk that the generator outruns)
#        PCAPD_OPTS= (more options for `pcapd capture`, e.g. "--ring-blocks 128")
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
pcapd=$build/pcapd
RUNS=${RUNS:-3}
PACKETS=${PACKETS:-7000000}
SIZES=${SIZES:-64 1514}
OUTDIR=${OUTDIR:-/var/tmp/pcapd-bench}
TOOLS=${TOOLS:-pcapd tcpdump netsniff-ng}
# a lossless capture of the largest frames: PACKETS * (size + 16) + 24, in 4 MiB steps
max_size=$(printf '%s\n' $SIZES | sort -g | tail -n 1)
DD_MIB=${DD_MIB:-$(((PACKETS * (max_size + 16) / 1048576 + 4) / 4 * 4))}
BENCH_RATE=${RATE:-}
PCAPD_OPTS=${PCAPD_OPTS:-}
. "$root/bench/lib.sh"

work=$(mktemp -d)
mkdir -p "$OUTDIR"
cleanup() {
	bench_netns_down
	rm -rf "$work" "$OUTDIR"/cap-* "$OUTDIR"/dd-anchor ${warm_dir:+"$warm_dir"/pcapd-bench-warm}
}
trap cleanup EXIT
bench_netns_up

# dd anchor: MB/s of DD_MIB MiB written with flags $1 ("direct" or "cached"),
# or "refused".
dd_rate() {
	local f=$OUTDIR/dd-anchor out
	rm -f "$f"
	sync
	warm_memory
	if [ "$1" = direct ]; then
		out=$(dd if=/dev/zero of="$f" bs=4M count=$((DD_MIB / 4)) oflag=direct 2>&1) || { echo refused; rm -f "$f"; return; }
	else
		out=$(dd if=/dev/zero of="$f" bs=4M count=$((DD_MIB / 4)) conv=fdatasync 2>&1) || { echo refused; rm -f "$f"; return; }
	fi
	rm -f "$f"
	sync
	# "N bytes (...) copied, S s, R MB/s": bytes / seconds, in MB/s
	awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1); printf "%.0f", $1 / s / 1e6 }' <<<"$out"
}

# ringcopy anchor, on memory-backed file systems only (elsewhere the capture
# writes with O_DIRECT, where dd's own rate is the ceiling): MB/s of DD_MIB
# MiB of SIZE-byte records ($1) copied from a ring-sized buffer, or "n/a".
ringcopy=
memory_fs=false
case $(stat -f -c %T "$OUTDIR") in
tmpfs | ramfs)
	memory_fs=true
	ringcopy=$work/ringcopy && cc -O2 -o "$ringcopy" "$root/bench/ringcopy.c" 2>/dev/null || ringcopy=
	;;
esac

# Before each run and anchor: memory warmed, so that every tool writes into
# (and sets its ring up in) memory the guest has touched lately. On this VM
# memory left alone for a while costs a host fault on first touch: dd into
# tmpfs ran at 0.5-0.6 GB/s on such memory and 2.5-3.2 GB/s right after;
# setting pcapd's 128 MiB ring up took 0.04 s of CPU on warm memory and
# 0.31 s on cold (64-byte runs: 0.047 against 0.081 us/packet, the same
# binary). A machine without a hypervisor has no such cost. The capture's
# size (at least 1 GiB) is written to, and removed from, tmpfs: OUTDIR when
# it is one, else /dev/shm when that is one, else nothing.
warm_dir=
if $memory_fs; then
	warm_dir=$OUTDIR
elif [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	warm_dir=/dev/shm
fi
warm_mib=$((DD_MIB > 1024 ? DD_MIB : 1024))
warm_memory() {
	[ -n "$warm_dir" ] || return 0
	dd if=/dev/zero of="$warm_dir/pcapd-bench-warm" bs=4M count=$((warm_mib / 4)) 2>/dev/null || true
	rm -f "$warm_dir/pcapd-bench-warm"
}
ring_rate() {
	local f=$OUTDIR/dd-anchor r
	[ -n "$ringcopy" ] || { echo n/a; return; }
	warm_memory
	r=$("$ringcopy" "$f" $((DD_MIB * 1048576)) "$1") || r=n/a
	rm -f "$f"
	sync
	echo "$r"
}

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(uname -r)"
[ -z "$BENCH_RATE" ] || echo "generator: trafgen --rate $BENCH_RATE"
[ -z "$PCAPD_OPTS" ] || echo "pcapd capture options: $PCAPD_OPTS"
echo "output: $OUTDIR on $(df -T "$OUTDIR" | awk 'NR == 2 { print $1, "(" $2 ")" }')"
if [ "$DD_MIB" -gt 0 ]; then
	dd_direct_1=$(dd_rate direct)
	dd_cached_1=$(dd_rate cached)
	ring_1=$(ring_rate "$max_size")
	ring_txt=${ringcopy:+, ${max_size}-byte records from a 128 MiB ring (bench/ringcopy.c) ${ring_1} MB/s}
	echo "anchors before: dd bs=4M oflag=direct ${dd_direct_1} MB/s, through the page cache ${dd_cached_1} MB/s${ring_txt} ($DD_MIB MiB each)"
fi

# Starts tool $1 writing to $2 under /usr/bin/time; sets TOOL_PID, TIME_PID.
start_tool() {
	local tool=$1 out=$2
	case $tool in
	pcapd) set -- "$pcapd" capture -i "$BENCH_IF_RX" -w "$out" $PCAPD_OPTS ;;
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

# Starts tool $1 and stops it at once, so that the ring the measured run sets
# up right after gets the pages this one just freed. On this VM, memory freed
# for a few seconds has been given back to the host (free page reporting),
# and the kernel's zeroing of a ring in such memory faults every page back
# in: 0.17 s of system time for pcapd's 128 MiB ring after 5 s idle, 0.01 s
# right after another run (bench/RESULTS.md, 2026-12-04, 09:30). Every tool
# gets the same; a machine without a hypervisor has no such cost.
warm_tool() {
	local out=$OUTDIR/cap-warm.pcap
	start_tool "$1" "$out"
	kill -INT "$TOOL_PID"
	wait "$TIME_PID" || true
	rm -f "$out"
}

# Packets in a classic pcap file of fixed-size records: (size - 24) / (16 + len).
count_records() {
	local size
	size=$(stat -c %s "$1")
	echo $(((size - 24) / (16 + $2)))
}

printf '%-6s %-12s %-4s %10s %10s %8s %8s %9s %8s %8s %6s\n' size tool run sent captured drops cpu_s us/pkt offered MB/s load
for size in $SIZES; do
	bench_frame_cfg "$size" >"$work/frame.cfg"
	for run in $(seq "$RUNS"); do
		for tool in $TOOLS; do
			out=$OUTDIR/cap-$tool.pcap
			rm -f "$out"
			warm_memory
			warm_tool "$tool"
			start_tool "$tool" "$out"
			before=$(bench_rx_packets)
			t0=$(date +%s.%N)
			bench_send "$work/frame.cfg" "$PACKETS"
			t1=$(date +%s.%N)
			sleep 1
			sent=$(($(bench_rx_packets) - before))
			kill -INT "$TOOL_PID"
			wait "$TIME_PID" || true
			captured=$(count_records "$out" "$size")
			drops=$((sent - captured))
			read -r u s <"$work/cpu"
			cpu=$(echo "$u $s" | awk '{ printf "%.2f", $1 + $2 }')
			per=$(echo "$cpu $captured" | awk '{ printf "%.3f", $2 ? $1 * 1e6 / $2 : 0 }')
			# what the tool wrote while the traffic ran: file bytes over the sender's time
			mbs=$(awk -v b="$(stat -c %s "$out")" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", b / (z - a) / 1e6 }')
			# what a lossless capture would have written: every frame sent, with its record header
			offered=$(awk -v n="$sent" -v s="$size" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", n * (s + 16) / (z - a) / 1e6 }')
			load=$(cut -d' ' -f1 /proc/loadavg)
			printf '%-6s %-12s %-4s %10s %10s %8s %8s %9s %8s %8s %6s\n' "$size" "$tool" "$run" "$sent" "$captured" \
				"$drops" "$cpu" "$per" "$offered" "$mbs" "$load" | tee -a "$work/rows"
			# ext4 mounted with "discard" trims a deleted file's blocks at the
			# next journal commit (3 s for 10 GiB here): paid now, not by the next run
			rm -f "$out"
			sync
		done
	done
done

if [ "$DD_MIB" -gt 0 ]; then
	dd_direct_2=$(dd_rate direct)
	dd_cached_2=$(dd_rate cached)
	ring_2=$(ring_rate "$max_size")
	echo "anchors after: dd bs=4M oflag=direct ${dd_direct_2} MB/s, through the page cache ${dd_cached_2} MB/s${ringcopy:+, records from a ring ${ring_2} MB/s}"
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# "median (min..max)" of column $3 for size $1 and tool $2
stat_of() {
	awk -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t { print $c }' "$work/rows" | sort -g >"$work/col"
	[ -s "$work/col" ] || return 0
	printf '%s (%s..%s)' "$(bench_median <"$work/col")" "$(head -n 1 "$work/col")" "$(tail -n 1 "$work/col")"
}

echo
echo "medians over $RUNS runs, (min..max) (drops = sent - records in the file; offered = what a lossless file"
echo "would hold / sender's seconds; written = file bytes / sender's seconds):"
for size in $SIZES; do
	for tool in $TOOLS; do
		grep -q "^$size  *$tool " "$work/rows" || continue
		d=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $6 }' "$work/rows" | bench_median)
		p=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $8 }' "$work/rows" | bench_median)
		m=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $10 }' "$work/rows" | bench_median)
		echo "$size $tool $d $p $m" >>"$work/medians"
		printf '  %-5s %-12s drops %s  captured %s  us/pkt %s  offered MB/s %s  written MB/s %s\n' "$size" "$tool" \
			"$(stat_of "$size" "$tool" 6)" "$(stat_of "$size" "$tool" 5)" "$(stat_of "$size" "$tool" 8)" \
			"$(stat_of "$size" "$tool" 9)" "$(stat_of "$size" "$tool" 10)"
	done
done
echo
echo "write rates against the file system's own (anchors, lower of before/after${ringcopy:+; the ring copy is of the largest frames}):"
ddd=$(printf '%s\n%s\n' "${dd_direct_1:-refused}" "${dd_direct_2:-refused}" | grep -v refused | sort -g | head -n 1 || true)
ddc=$(printf '%s\n%s\n' "${dd_cached_1:-refused}" "${dd_cached_2:-refused}" | grep -v refused | sort -g | head -n 1 || true)
ddr=$(printf '%s\n%s\n' "${ring_1:-n/a}" "${ring_2:-n/a}" | grep -v n/a | sort -g | head -n 1 || true)
for size in $SIZES; do
	for tool in $TOOLS; do
		m=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $5 }' "$work/medians")
		[ -n "$m" ] || continue
		awk -v m="$m" -v d="${ddd:-0}" -v c="${ddc:-0}" -v g="${ddr:-0}" -v s="$size" -v t="$tool" 'BEGIN {
			printf "  %s-byte frames, %s: %s MB/s = %s of dd direct, %s of dd through the page cache%s\n",
				s, t, m, (d > 0 ? sprintf("%.2f", m / d) : "n/a"), (c > 0 ? sprintf("%.2f", m / c) : "n/a"),
				(g > 0 ? sprintf(", %.2f of the ring copy", m / g) : "") }'
	done
done
echo
echo "ratios (tcpdump / X: above 1 means X uses less CPU per packet than tcpdump):"
for size in $SIZES; do
	ref=$(awk -v s="$size" '$1 == s && $2 == "tcpdump" { print $4 }' "$work/medians")
	for tool in $TOOLS; do
		[ "$tool" = tcpdump ] && continue
		x=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $4 }' "$work/medians")
		[ -n "$ref" ] && [ -n "$x" ] && awk -v r="$ref" -v x="$x" -v s="$size" -v t="$tool" \
			'BEGIN { printf "  %s-byte frames: CPU per packet, tcpdump/%s = %.2fx\n", s, t, (x > 0 ? r / x : 0) }'
	done
done
