# SPDX-License-Identifier: MIT
"""Sends frames, byte for byte, out of one interface: run inside the sender
namespace (ip netns exec NS python3 sendraw.py FILE).

FILE holds one "IFACE HEX" line per frame, sent in order. A plain AF_PACKET
socket is used rather than scapy's sendp so that exactly these bytes leave
(scapy builds the frames in the test process) and so that start-up stays short.
An optional --gap-us N sleeps between frames.
"""

import socket
import sys
import time


def main():
    path = sys.argv[1]
    gap = 0.0
    if len(sys.argv) > 3 and sys.argv[2] == "--gap-us":
        gap = int(sys.argv[3]) / 1e6
    socks = {}
    try:
        with open(path) as f:
            for line in f:
                iface, hexbytes = line.split()
                s = socks.get(iface)
                if s is None:
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                    s.bind((iface, 0))
                    socks[iface] = s
                s.send(bytes.fromhex(hexbytes))
                if gap:
                    time.sleep(gap)
    finally:
        for s in socks.values():
            s.close()


if __name__ == "__main__":
    main()
