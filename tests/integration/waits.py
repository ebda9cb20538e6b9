# SPDX-License-Identifier: MIT
"""Waiting for conditions, never for time.

A test that sleeps for a fixed time and then checks is a race against the
machine's speed: under ASan, on a busy CI machine or beside a second suite it
loses. Every wait in the integration tests is instead a condition polled
until it holds, with WAIT as the bound after which the test fails. WAIT only
decides how long a broken run takes to fail, never whether a working one
passes, so it is generous (PCAPD_TEST_WAIT overrides it).
"""

import os
import time

WAIT = float(os.environ.get("PCAPD_TEST_WAIT", "60"))


def until(pred, what, timeout=WAIT, interval=0.05):
    """Polls pred() until it returns something true, and returns that.
    Raises AssertionError naming `what` (a string, or a callable giving one,
    called then so that it can describe the last state) after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            desc = what() if callable(what) else what
            raise AssertionError("not within %.0fs: %s" % (timeout, desc))
        time.sleep(interval)


def pcap_records(path):
    """The number of whole packet records in a pcap or pcapng file that may
    still be growing (a record cut at the end is not counted); 0 if the file
    does not exist or has no complete header yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    if len(data) < 24:
        return 0
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return _pcapng_records(data)
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "little"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = "big"
    else:
        raise AssertionError("%s: not a pcap or pcapng file (magic %s)" % (path, magic.hex()))
    n, off = 0, 24
    while off + 16 <= len(data):
        caplen = int.from_bytes(data[off + 8:off + 12], order)
        if off + 16 + caplen > len(data):
            break
        n += 1
        off += 16 + caplen
    return n


def _pcapng_records(data):
    order = "little" if data[8:12] == b"\x4d\x3c\x2b\x1a" else "big"
    n, off = 0, 0
    while off + 12 <= len(data):
        btype = int.from_bytes(data[off:off + 4], order)
        blen = int.from_bytes(data[off + 4:off + 8], order)
        if blen < 12 or off + blen > len(data):
            break
        if btype in (3, 6, 2):  # simple, enhanced, obsolete packet blocks
            n += 1
        off += blen
    return n


def wait_records(path, n, timeout=WAIT):
    """Waits until the capture file at path holds at least n whole records;
    returns how many it holds."""
    return until(lambda: pcap_records(path) >= n and pcap_records(path),
                 lambda: "%s holds %d of %d records" % (path, pcap_records(path), n), timeout)
