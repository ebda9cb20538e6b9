#!/bin/bash
# `make run` until the controller exists: a short, real capture on loopback.
# pcapd captures ICMP on lo for 3 seconds while ping sends to 127.0.0.1; what
# it prints is what it captured (its own JSON summary, then tcpdump's reading
# of the file it wrote).
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p var
out=var/demo.pcap

echo "pcapd demo: capturing ICMP on lo for 3 s into $out while pinging 127.0.0.1"
"$build/pcapd" capture -i lo --proto icmp --seconds 3 -w "$out" &
pid=$!
sleep 0.5
ping -q -c 10 -i 0.2 127.0.0.1 >/dev/null || true
wait "$pid"
echo
echo "pcapd demo: the first packets of $out, as tcpdump reads them:"
tcpdump -nn -r "$out" -c 6 2>/dev/null
echo "pcapd demo: $(tcpdump -nn -r "$out" 2>/dev/null | wc -l) packets in $out (open it with: wireshark $out)"
