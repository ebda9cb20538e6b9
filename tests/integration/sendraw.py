# SPDX-License-Identifier: MIT
"""Sends frames, byte for byte, out of one interface: run inside the sender
namespace (ip netns exec NS python3 sendraw.py FILE).

FILE holds one "IFACE HEX" line per frame, sent in order. A plain AF_PACKET
socket is used rather than scapy's sendp so that exactly these bytes leave
(scapy builds the frames in the test process) and so that start-up stays short.
An optional --gap-us N sleeps between frames. With --loop-s S the frames are
sent again and again until S seconds have passed or SIGTERM comes (steady
traffic for tests that must not depend on when a frame is sent).
"""

import signal
import socket
import sys
import time


def main():
    path = sys.argv[1]
    gap, loop_s = 0.0, None
    args = sys.argv[2:]
    while args:
        if args[0] == "--gap-us" and len(args) > 1:
            gap = int(args[1]) / 1e6
        elif args[0] == "--loop-s" and len(args) > 1:
            loop_s = float(args[1])
        else:
            sys.exit("sendraw.py: bad argument %r" % args[0])
        args = args[2:]
    with open(path) as f:
        frames = [(l.split()[0], bytes.fromhex(l.split()[1])) for l in f if l.strip()]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    end = time.monotonic() + (loop_s or 0)
    socks = {}
    try:
        while True:
            for iface, frame in frames:
                s = socks.get(iface)
                if s is None:
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                    s.bind((iface, 0))
                    socks[iface] = s
                s.send(frame)
                if gap:
                    time.sleep(gap)
            if loop_s is None or time.monotonic() >= end:
                break
    finally:
        for s in socks.values():
            s.close()


if __name__ == "__main__":
    main()
