#!/bin/bash
# History benchmark: a history of PACKETS sampled packets over SPAN seconds
# (default 20 M over 24 h), built with `pcapd history import` from
# bench/genhistory.py's traffic; then QUERIES 300-second windows (random end
# times, fixed seed) queried with a 1 %-selective filter and --packets 10000,
# for two filters: one whose matches cluster in flows (--dst
# 198.51.100.0/24) and one whose matches are spread uniformly, packet by
# packet (--proto udp --dport 53: the worst case for the block summaries).
#
# For each window, in the same run and the same page-cache state, pcapd's
# query and `tcpdump -r` with the equivalent expression over the same segment
# files (those whose time range meets the window: tcpdump cannot seek, so it
# reads them whole; it does no window or newest-N selection either).
# Printed: p50/p99 of pcapd's wall time (process start to exit), of the time
# pcapd reports inside the store (open to last byte), of tcpdump's wall time,
# and the ratios. The first three windows are checked: pcapd's answer must
# hold exactly the packets tcpdump selects within the window.
#
#   bench/history.sh [BUILD_DIR]   env: PACKETS=20000000 SPAN=86400 QUERIES=50
#                                        OUTDIR=/var/tmp/pcapd-bench KEEP=0
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
PACKETS=${PACKETS:-20000000}
SPAN=${SPAN:-86400}
QUERIES=${QUERIES:-50}
OUTDIR=${OUTDIR:-/var/tmp/pcapd-bench}
KEEP=${KEEP:-0}
dir=$OUTDIR/history

mkdir -p "$OUTDIR"
[ "$KEEP" = 1 ] || trap 'rm -rf "$dir" "$OUTDIR"/history-q*' EXIT
rm -rf "$dir"
echo "building a history of $PACKETS packets over $SPAN s in $dir"
t0=$(date +%s.%N)
/usr/bin/python3 "$root/bench/genhistory.py" "$PACKETS" "$SPAN" 1 | "$build/pcapd" history import --dir "$dir" -
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$PACKETS" 'BEGIN { printf "import (generator included): %.1f s, %.0f packets/s\n", b - a, n / (b - a) }'
"$build/pcapd" history stats --dir "$dir"

/usr/bin/python3 - "$build/pcapd" "$dir" "$QUERIES" "$SPAN" "$OUTDIR" "$PACKETS" <<'EOF'
import datetime
import json
import os
import random
import struct
import subprocess
import sys
import time

pcapd, hdir, nq, span, outdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
in_window = int(sys.argv[6]) / span * 300  # packets in a 300-second window
T0 = 1_700_000_000 * 10**9
WINDOW = 300

segs = []
for name in os.listdir(hdir):
    if name.startswith("seg-") and name.endswith(".pcap"):
        _, seq, first, last = name[:-5].split("-")
        segs.append((int(first), int(last), os.path.join(hdir, name)))
segs.sort()

FILTERS = [
    ("dst 198.51.100.0/24 (flows)", ["--dst", "198.51.100.0/24"], "dst net 198.51.100.0/24"),
    ("udp dport 53 (uniform)", ["--proto", "udp", "--dport", "53"], "udp and dst port 53"),
]


def rfc3339(ns):
    s = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return "%s.%09dZ" % (s, ns % 10**9)


def files_for(lo, hi):
    return [p for f, l, p in segs if l >= lo and f <= hi]


def run_pcapd(args, before, out="/dev/null"):
    cmd = [pcapd, "history", "query", "--dir", hdir, "--before", rfc3339(before), "--seconds", str(WINDOW),
           "--packets", "10000", "-w", out] + args
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    assert p.returncode == 0, p.stderr.decode()
    return wall, json.loads(p.stderr.decode().strip().splitlines()[-1])


def run_tcpdump(expr, before, out="/dev/null"):
    files = files_for(before - WINDOW * 10**9, before)
    lst = os.path.join(outdir, "history-q-files")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    t = time.perf_counter()
    p = subprocess.run(["tcpdump", "-n", "-V", lst, "-w", out, expr], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    assert p.returncode == 0, p.stderr.decode()
    return wall, len(files)


def read_ts(path):
    with open(path, "rb") as f:
        buf = f.read()
    magic = struct.unpack_from("<I", buf, 0)[0]
    mult = 1 if magic == 0xA1B23C4D else 1000
    off, out = 24, []
    while off + 16 <= len(buf):
        sec, frac, cap, _ = struct.unpack_from("<IIII", buf, off)
        out.append(sec * 10**9 + frac * mult)
        off += 16 + cap
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


rnd = random.Random(7)
befores = [T0 + int((WINDOW + rnd.random() * (span - WINDOW)) * 10**9) for _ in range(nq)]
for name, args, expr in FILTERS:
    # correctness on three windows, and a warm page cache
    for b in befores[:3]:
        qa, qb = os.path.join(outdir, "history-qa.pcap"), os.path.join(outdir, "history-qb.pcap")
        _, st = run_pcapd(args, b, qa)
        run_tcpdump(expr, b, qb)
        # tcpdump may write microseconds: compare at that resolution
        want = [t // 1000 for t in read_ts(qb) if b - WINDOW * 10**9 <= t <= b]
        got = [t // 1000 for t in read_ts(qa)]
        assert got == sorted(want), "%s: pcapd %d packets, tcpdump %d" % (name, len(got), len(want))
    walls, inside, tcpd, pk, blk, rd, nfiles = [], [], [], [], [], [], []
    for b in befores:
        w, st = run_pcapd(args, b)
        t, nf = run_tcpdump(expr, b)
        walls.append(w * 1e3)
        inside.append(st["ms"])
        tcpd.append(t * 1e3)
        pk.append(st["packets"])
        blk.append(st["blocks"])
        rd.append(st["blocks_read"])
        nfiles.append(nf)
    print("\n%s: %d windows of %d s, --packets 10000" % (name, nq, WINDOW))
    print("  answer: %.0f packets on average (%.2f %% of the window); %.0f of %.0f blocks read; %.1f segment files"
          % (sum(pk) / nq, 100 * sum(pk) / nq / in_window, sum(rd) / nq, sum(blk) / nq, sum(nfiles) / nq))
    print("  pcapd query, wall (process):  p50 %7.2f ms  p99 %7.2f ms" % (pct(walls, 50), pct(walls, 99)))
    print("  pcapd query, inside the store: p50 %7.2f ms  p99 %7.2f ms" % (pct(inside, 50), pct(inside, 99)))
    print("  tcpdump -r, same files:        p50 %7.2f ms  p99 %7.2f ms" % (pct(tcpd, 50), pct(tcpd, 99)))
    print("  ratio tcpdump / pcapd (wall):  p50 %.1fx  p99 %.1fx" % (pct(tcpd, 50) / pct(walls, 50),
                                                                    pct(tcpd, 99) / pct(walls, 99)))
EOF
