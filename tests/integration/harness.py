# SPDX-License-Identifier: MIT
"""Running pcapd capture and tcpdump side by side, and reading what they wrote
with tshark (the independent reader: a file tshark cannot read fails the test).
"""

import json
import os
import subprocess

from netns import Proc
from waits import WAIT

READY = "pcapd: capturing on"


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pcapd_binary():
    """$PCAPD_BUILD/pcapd, else the repository's own build/pcapd."""
    build = os.environ.get("PCAPD_BUILD", os.path.join(ROOT, "build"))
    return os.path.join(build, "pcapd")


class Captures:
    """Every process a test starts; the fixture kills what is left at teardown."""

    def __init__(self, pcapd):
        self.pcapd = pcapd
        self.procs = []

    def start_pcapd(self, ns, ifaces, out, args=(), ready=True, stdout=None, timeout=WAIT):
        cmd = [self.pcapd, "capture", "-i", ifaces, "-w", out] + list(args)
        p = Proc(cmd, ns=ns, stdout=stdout)
        self.procs.append(p)
        if ready:
            assert p.wait_line(READY, timeout), \
                "pcapd not ready within %.1fs: %s\nstderr:\n%s" % (timeout, " ".join(cmd), p.stderr())
        return p

    def start_tcpdump(self, ns, iface, out, expr="", snaplen=262144):
        # -Z root: keep writing where root can; --immediate-mode: no packet
        # waits in a half-filled ring block when the test stops it.
        cmd = ["tcpdump", "-n", "-Z", "root", "--immediate-mode", "-U", "-s", str(snaplen),
               "-i", iface, "-w", out]
        if expr:
            cmd.append(expr)
        p = Proc(cmd, ns=ns)
        self.procs.append(p)
        assert p.wait_line("tcpdump: listening on", WAIT), \
            "tcpdump not ready: %s\n%s" % (" ".join(cmd), p.stderr())
        return p

    def cleanup(self):
        for p in self.procs:
            p.kill()


def final_stats(p):
    """The JSON object on pcapd's last stderr line."""
    lines = [l for l in p.lines if l.strip()]
    assert lines, "pcapd printed nothing on stderr"
    try:
        obj = json.loads(lines[-1])
    except ValueError:
        raise AssertionError("last stderr line is not JSON: %r\nstderr:\n%s" % (lines[-1], p.stderr()))
    for k in ("packets", "bytes", "kernel_drops", "stop_reason"):
        assert k in obj, "final JSON lacks %r: %r" % (k, obj)
    return obj


def tshark_read(path=None, data=None, extra=()):
    """Packets of a capture file (or bytes, fed on stdin) as tshark reads them:
    [{'raw': bytes, 'len': origlen, 'caplen': n, 'ts': 'sec.nsec', 'iface': id or None}]."""
    cmd = ["tshark", "-n", "-r", path if path is not None else "-", "-T", "json", "-x", "-j", "frame"] + list(extra)
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = "\n".join(l for l in r.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l and "could be dangerous" not in l)
    assert r.returncode == 0 and not err.strip(), "tshark cannot read %s: rc %d: %s" % (path or "stdin", r.returncode, err)
    out = []
    for pkt in json.loads(r.stdout or b"[]"):
        layers = pkt["_source"]["layers"]
        fr = layers["frame"]
        out.append({
            "raw": bytes.fromhex(layers["frame_raw"][0]),
            "len": int(fr["frame.len"]),
            "caplen": int(fr["frame.cap_len"]),
            "ts": fr["frame.time_epoch"],
            "iface": fr.get("frame.interface_id"),
        })
    return out


def by_marker(pkts, frames):
    """Splits captured packets into {frame idx: [packets]} for our frames and a
    list of foreign packets (no marker of ours: traffic this test did not send)."""
    mine, foreign = {}, []
    for p in pkts:
        hit = None
        for fr in frames:
            if fr.marker in p["raw"]:
                hit = fr
                break
        if hit is None:
            foreign.append(p)
        else:
            mine.setdefault(hit.idx, []).append(p)
    return mine, foreign

