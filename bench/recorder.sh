#!/bin/bash
# Recorder cost (issue 4): CPU-seconds the agent's always-on recorder spends
# per 10-second run of trafgen at its maximum rate, 1-in-100 sampling done in
# the kernel, against tcpdump with a filter that matches nothing (what the
# kernel's packet tap and a filter cost on their own). The same trafgen
# traffic (64-byte UDP frames, as fast as it goes) for each run; runs
# alternate between the two.
#
# The receiving end of the veth pair is in the root namespace (no address, no
# IPv6, so the host sends nothing on it), where the agent reaches a controller
# on 127.0.0.1; trafgen sends from a namespace of the run's own.
#
#   bench/recorder.sh [BUILD_DIR]        env: RUNS=3 SECONDS_PER_RUN=10 RATE=100
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
RATE=${RATE:-100}
pcapd=$build/pcapd
. "$root/bench/lib.sh"

ns=pcapd-bench-rec-$$
if_tx=prtx$$
if_rx=prrx$$
work=$(mktemp -d /tmp/pcapd-bench-rec.XXXXXX)
ctl_pid=
cleanup() {
	[ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
	ip link del "$if_rx" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip link add "$if_rx" type veth peer name "$if_tx" netns "$ns"
sysctl -qw "net.ipv6.conf.$if_rx.disable_ipv6=1"
ip link set "$if_rx" up
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n "$ns" link set "$if_tx" up
bench_frame_cfg 64 >"$work/frame.cfg"

# A controller for the agent to register with (the recorder does not need it
# to record, but the agent is the product being measured, as deployed).
etok=$("$pcapd" token create --data "$work/ctl" --scope enroll)
"$pcapd" controller --data "$work/ctl" --http 127.0.0.1:0 2>"$work/ctl.err" &
ctl_pid=$!
for _ in $(seq 50); do
	port=$(grep -o '127.0.0.1:[0-9]*' "$work/ctl.err" 2>/dev/null | head -n 1 | cut -d: -f2)
	[ -n "$port" ] && break
	sleep 0.1
done

# CPU-seconds the whole machine has been busy (every CPU: user, system, irq,
# softirq), so the kernel's share of a tap (the filter runs in softirq) counts.
machine_busy() {
	awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}

# Runs trafgen for SECS seconds; prints the frames the receiver saw and the
# machine's busy CPU-seconds meanwhile (trafgen's own included, the same in
# every run).
generate() {
	local before after m0 m1
	before=$(cat "/sys/class/net/$if_rx/statistics/rx_packets")
	m0=$(machine_busy)
	ip netns exec "$ns" timeout "$SECS" trafgen --dev "$if_tx" --conf "$work/frame.cfg" --cpu 1 -q \
		>/dev/null 2>&1 || true
	m1=$(machine_busy)
	after=$(cat "/sys/class/net/$if_rx/statistics/rx_packets")
	echo "$((after - before)) $(echo "$m0 $m1" | awk '{ printf "%.2f", $2 - $1 }')"
}

run_agent() {
	local run=$1 pid cpu0 cpu1 frames recorded
	rm -rf "$work/agent"
	# a new data directory each run: a new name to enrol
	PCAPD_ENROLL_TOKEN=$etok "$pcapd" agent --controller "http://127.0.0.1:$port" --name "bench$run" --colo b \
		-i "$if_rx" --data "$work/agent" --sample-rate "$RATE" 2>"$work/agent.err" &
	pid=$!
	for _ in $(seq 100); do
		grep -q 'registered with' "$work/agent.err" 2>/dev/null && break
		sleep 0.1
	done
	sleep 1 # the recorder's sockets are bound
	cpu0=$(bench_cpu_seconds "$pid")
	read -r frames busy < <(generate)
	sleep 1.5 # the last partial block is written
	cpu1=$(bench_cpu_seconds "$pid")
	kill "$pid" # seals the open segment, so the read-only stats see it
	wait "$pid" 2>/dev/null || true
	recorded=$("$pcapd" history stats --dir "$work/agent/history" --json 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("packets", 0))' || echo "?")
	printf '%-22s %-4s %10s %10s %8s %8s\n' "pcapd agent 1/$RATE" "$run" "$frames" "$recorded" \
		"$(echo "$cpu0 $cpu1" | awk '{ printf "%.2f", $2 - $1 }')" "$busy" | tee -a "$work/rows"
}

run_tcpdump() {
	local run=$1 pid cpu0 cpu1 frames
	# No frame here carries EtherType 0x88b5 (local experimental): a filter
	# that matches nothing, so tcpdump costs only the tap and the filter.
	tcpdump -n -i "$if_rx" -w /dev/null 'ether proto 0x88b5' 2>"$work/tcpdump.err" &
	pid=$!
	for _ in $(seq 50); do
		grep -q 'listening on' "$work/tcpdump.err" 2>/dev/null && break
		sleep 0.1
	done
	cpu0=$(bench_cpu_seconds "$pid")
	read -r frames busy < <(generate)
	sleep 1.5
	cpu1=$(bench_cpu_seconds "$pid")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	printf '%-22s %-4s %10s %10s %8s %8s\n' "tcpdump, no match" "$run" "$frames" 0 \
		"$(echo "$cpu0 $cpu1" | awk '{ printf "%.2f", $2 - $1 }')" "$busy" | tee -a "$work/rows"
}

printf '%-22s %-4s %10s %10s %8s %8s\n' tool run frames recorded cpu_s machine
for run in $(seq "$RUNS"); do
	run_agent "$run"
	run_tcpdump "$run"
done

a=$(grep '^pcapd' "$work/rows" | awk '{ print $(NF-1) }' | bench_median)
t=$(grep '^tcpdump' "$work/rows" | awk '{ print $(NF-1) }' | bench_median)
am=$(grep '^pcapd' "$work/rows" | awk '{ print $NF }' | bench_median)
tm=$(grep '^tcpdump' "$work/rows" | awk '{ print $NF }' | bench_median)
f=$(awk '{ print $(NF-3) }' "$work/rows" | bench_median)
echo
echo "median over $RUNS runs of ${SECS} s at $(echo "$f $SECS" | awk '{ printf "%d", $1 / $2 }') frames/s:"
echo "  recorder (1 in $RATE, kernel sampling): $a CPU-s of its process, machine busy $am CPU-s"
echo "  tcpdump with a filter matching nothing: $t CPU-s of its process, machine busy $tm CPU-s"
echo "$am $tm" | awk '{ printf "  machine-wide, recorder - tcpdump: %+.2f CPU-s per run (%.2fx)\n", $1 - $2, ($2 > 0) ? $1 / $2 : 0 }'
