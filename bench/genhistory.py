#!/usr/bin/env python3
"""Writes, to stdout, a nanosecond pcap of synthetic sampled traffic for the
history benchmark: N packets spread evenly over SPAN seconds (20 M over 24 h
is 231 packets a second), captured with a 160-byte snaplen (caplen <= 160,
origlen the frame's full length).

Traffic model (SEED makes it reproducible):
  - flows: 8 active at any moment, packets of the active flows interleaved;
    each flow has 1..63 packets (mean 32), TCP 80 %, UDP 18 %, ICMP 2 %,
    172.16.0.0/12 hosts to 10.0.0.0/8 hosts (5000 of each);
    1 % of flows go to 198.51.100.0/24 instead: "--dst 198.51.100.0/24"
    selects about 1 % of packets, clustered in flows as real traffic is;
  - DNS: each packet is, independently, with probability 1 %, a lone UDP
    query to 192.0.2.53:53 instead: "--proto udp --dport 53" selects about
    1 % of packets spread uniformly, the worst case for block skipping;
  - frame lengths: 40 % 66 bytes (ACKs), 35 % 1514, 25 % uniform 60..1514.

    genhistory.py N SPAN_SECONDS SEED > out.pcap
"""
import random
import struct
import sys

T0 = 1_700_000_000


def ip4(a):
    return struct.pack("!I", a)


def main():
    n, span, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    out = sys.stdout.buffer
    out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 160, 1))
    srcs = [0xAC100000 + rnd.randrange(1 << 20) for _ in range(5000)]
    dsts = [0x0A000000 + rnd.randrange(1 << 24) for _ in range(5000)]
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    filler = bytes(range(256)) * 6

    def new_flow():
        rare = rnd.random() < 0.01
        dst = 0xC6336400 + rnd.randrange(1, 255) if rare else rnd.choice(dsts)
        src = rnd.choice(srcs)
        r = rnd.random()
        proto = 6 if r < 0.80 else 17 if r < 0.98 else 1
        sport, dport = rnd.randrange(1024, 65536), rnd.choice((80, 443, 443, 8080, 22, 3306, 5432))
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 0, 0, 0, 64, proto, 0) + ip4(src) + ip4(dst)
        if proto == 6:
            l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x10, 65535, 0, 0)
        elif proto == 17:
            l4 = struct.pack("!HHHH", sport, dport, 0, 0)
        else:
            l4 = b"\x08\x00\x00\x00\x00\x01\x00\x01"
        return [eth + ip + l4, rnd.randint(1, 63)]

    flows = [new_flow() for _ in range(8)]
    step = int(span * 1e9) // n
    base = T0 * 10**9
    chunk = []
    pack = struct.pack
    for i in range(n):
        ts = base + i * step + rnd.randrange(step // 2 + 1)
        r = rnd.random()
        wire = 66 if r < 0.40 else 1514 if r < 0.75 else rnd.randint(60, 1514)
        if rnd.random() < 0.01:
            src = rnd.choice(srcs)
            hdr = eth + pack("!BBHHHBBH", 0x45, 0, 0, 0, 0, 64, 17, 0) + ip4(src) + ip4(0xC0000235) + \
                pack("!HHHH", rnd.randrange(1024, 65536), 53, 0, 0)
            wire = rnd.randint(70, 120)
        else:
            k = rnd.randrange(8)
            f = flows[k]
            hdr = f[0]
            f[1] -= 1
            if f[1] == 0:
                flows[k] = new_flow()
        if wire < len(hdr):
            wire = len(hdr)
        cap = wire if wire < 160 else 160
        iplen = pack("!H", wire - 14)  # IPv4 total length
        chunk.append(pack("<IIII", ts // 10**9, ts % 10**9, cap, wire) + hdr[:16] + iplen + hdr[18:] +
                     filler[:cap - len(hdr)])
        if len(chunk) >= 8192:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))


if __name__ == "__main__":
    main()
