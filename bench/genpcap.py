#!/usr/bin/env python3
"""Writes a classic pcap (µs) of synthetic Ethernet/IPv4/UDP frames for the
merge benchmark: sizes 60..1514 bytes, timestamps rising by even steps of
0..20 µs from base + seed, so files made with an odd and an even seed
interleave closely without any tie across them (tie order is the one place
where pcapd's default order and mergecap's differ, see README).

    genpcap.py OUT SIZE_MIB SEED
"""
import random
import struct
import sys


def main():
    out, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    limit = mib << 20
    payload = bytes(range(256)) * 6
    ts = 1_700_000_000 * 1_000_000 + seed
    written = 24
    with open(out, "wb", buffering=8 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        chunk = []
        while written < limit:
            n = rnd.randint(60, 1514)
            ts += 2 * rnd.randint(0, 10)
            eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, n - 14, seed & 0xFFFF, 0, 64, 17, 0,
                             bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
            udp = struct.pack("!HHHH", 5000, 5001, n - 34, 0)
            frame = eth + ip + udp + payload[: n - 42]
            chunk.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, n, n) + frame)
            written += 16 + n
            if len(chunk) >= 4096:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


if __name__ == "__main__":
    main()
