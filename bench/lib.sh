# Shared pieces of the benchmarks: a veth pair between two namespaces made for
# the run (removed on exit), trafgen as the generator, CPU accounting by PID.
# Sourced, not run.

BENCH_NS_TX=pcapd-bench-tx-$$
BENCH_NS_RX=pcapd-bench-rx-$$
BENCH_IF_TX=pbtx$$
BENCH_IF_RX=pbrx$$

bench_netns_up() {
	ip netns add "$BENCH_NS_TX"
	ip netns add "$BENCH_NS_RX"
	ip link add "$BENCH_IF_TX" netns "$BENCH_NS_TX" type veth peer name "$BENCH_IF_RX" netns "$BENCH_NS_RX"
	ip -n "$BENCH_NS_TX" link set "$BENCH_IF_TX" up
	ip -n "$BENCH_NS_RX" link set "$BENCH_IF_RX" up
	# no IPv6 chatter: the receiver sees only what trafgen sends
	ip netns exec "$BENCH_NS_TX" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$BENCH_NS_RX" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}

bench_netns_down() {
	ip netns del "$BENCH_NS_TX" 2>/dev/null || true
	ip netns del "$BENCH_NS_RX" 2>/dev/null || true
}

# trafgen config for one UDP frame of $1 bytes (60..1514, FCS excluded),
# 192.0.2.1:5000 -> 192.0.2.2:5001.
bench_frame_cfg() {
	local len=$1 iplen=$(($1 - 14)) udplen=$(($1 - 34))
	printf '{\n 0x02,0,0,0,0,0x02, 0x02,0,0,0,0,0x01, 0x08,0x00,\n'
	printf ' 0x45,0, c16(%d), 0,0, 0x40,0, 64, 17, csumip(14, 33),\n' "$iplen"
	printf ' 192,0,2,1, 192,0,2,2, c16(5000), c16(5001), c16(%d), 0,0,\n' "$udplen"
	printf ' fill(0x41, %d)\n}\n' "$((udplen - 8))"
}

# Sends $2 frames from config $1 as fast as trafgen can (or at $BENCH_RATE,
# trafgen's --rate syntax, e.g. 600MB), then returns.
bench_send() {
	ip netns exec "$BENCH_NS_TX" trafgen --dev "$BENCH_IF_TX" --conf "$1" -n "$2" --cpu 1 -q \
		${BENCH_RATE:+--rate "$BENCH_RATE"} >/dev/null 2>&1
}

# CPU seconds (user + system, all threads) used so far by PID $1.
bench_cpu_seconds() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

bench_rx_packets() {
	ip netns exec "$BENCH_NS_RX" cat "/sys/class/net/$BENCH_IF_RX/statistics/rx_packets"
}

# median of the numbers on stdin
bench_median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
