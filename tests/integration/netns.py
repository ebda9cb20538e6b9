# SPDX-License-Identifier: MIT
"""Network namespaces, a veth pair between them, and processes run inside.

NetPair builds two namespaces ("a" sends, "b" receives) joined by a veth pair,
each end with 192.0.2.x/24 and 2001:db8::x/64, and a VLAN 100 subinterface
with 198.51.100.x/24. Names carry the pid and a counter so that concurrent runs
do not collide. Before any address exists, the namespaces are told to keep
quiet: no IPv6 link-local address (so no router solicitation and no DAD), and
MLD reports sent at once rather than trickled over seconds, so that after a
short settle the link carries only what a test sends.

Proc runs a command (optionally in a namespace), collects stderr lines in a
thread so a test can wait for a readiness line with a timeout, and is always
killed by its owner's finalizer if a test fails half-way.
"""

import json
import os
import signal
import subprocess
import threading
import time

from waits import WAIT

_counter = 0


def run(cmd, check=True, timeout=WAIT, **kw):
    """Runs cmd (a list) to completion; raises with its stderr when check fails."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                r.stderr.decode(errors="replace").strip()))
    return r


def ns_cmd(ns, cmd):
    """cmd prefixed to run inside namespace ns (None: the current one)."""
    return (["ip", "netns", "exec", ns] if ns else []) + list(cmd)


# Sysctls set in each namespace before the interfaces exist, so that they
# apply to them through "default".
_QUIET_SYSCTLS = [
    "net.ipv6.conf.default.addr_gen_mode=1",        # no link-local address
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.default.router_solicitations=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv6.conf.default.mldv1_unsolicited_report_interval=1",  # ms
    "net.ipv6.conf.default.mldv2_unsolicited_report_interval=1",
    "net.ipv6.conf.all.addr_gen_mode=1",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.all.router_solicitations=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv4.conf.all.arp_ignore=8",              # never answer ARP
    "net.ipv4.conf.default.arp_ignore=8",
]

PREFIX = "pdit"


def _cleanup_stale():
    """Deletes namespaces left by an earlier run that was killed (its pid is gone)."""
    r = run(["ip", "netns", "list"], check=False)
    for line in r.stdout.decode().splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit():
            if not os.path.exists("/proc/%s" % parts[1]):
                run(["ip", "netns", "del", name], check=False)


class NetPair:
    VLAN = 100

    def __init__(self):
        global _counter
        _counter += 1
        tag = "%d-%d" % (os.getpid(), _counter)
        short = "%d%d" % (os.getpid() % 100000, _counter)
        self.ns_a = "%s-%s-a" % (PREFIX, tag)
        self.ns_b = "%s-%s-b" % (PREFIX, tag)
        self.if_a = "pa%s" % short          # <= 15 bytes with ".100"
        self.if_b = "pb%s" % short
        self.vlan_a = "%s.%d" % (self.if_a, self.VLAN)
        self.vlan_b = "%s.%d" % (self.if_b, self.VLAN)
        self.ip4_a, self.ip4_b = "192.0.2.1", "192.0.2.2"
        self.ip6_a, self.ip6_b = "2001:db8::1", "2001:db8::2"
        self.vip4_a, self.vip4_b = "198.51.100.1", "198.51.100.2"
        self.mac_a = self.mac_b = None
        self.has_vlan_dev = True
        self._made = []

    def create(self):
        _cleanup_stale()
        for ns in (self.ns_a, self.ns_b):
            run(["ip", "netns", "add", ns])
            self._made.append(ns)
            run(ns_cmd(ns, ["sysctl", "-q", "-w"] + _QUIET_SYSCTLS))
            run(ns_cmd(ns, ["ip", "link", "set", "lo", "up"]))
        run(["ip", "link", "add", "name", self.if_a, "netns", self.ns_a, "type", "veth",
             "peer", "name", self.if_b, "netns", self.ns_b])
        for ns, dev, v4, v6, vdev, vv4 in (
                (self.ns_a, self.if_a, self.ip4_a, self.ip6_a, self.vlan_a, self.vip4_a),
                (self.ns_b, self.if_b, self.ip4_b, self.ip6_b, self.vlan_b, self.vip4_b)):
            ip = ["ip", "-n", ns]
            run(ip + ["addr", "add", v4 + "/24", "dev", dev])
            run(ip + ["addr", "add", v6 + "/64", "dev", dev, "nodad"])
            run(ip + ["link", "set", dev, "up"])
            # Kernels built without CONFIG_VLAN_8021Q cannot make the VLAN
            # device; tagged frames are then only sent with inline tags (the
            # receiving side still moves the tag to metadata: that is core
            # code, not the 8021q module).
            r = run(ip + ["link", "add", "link", dev, "name", vdev, "type", "vlan",
                          "id", str(self.VLAN)], check=False)
            if r.returncode != 0:
                self.has_vlan_dev = False
                continue
            run(ip + ["addr", "add", vv4 + "/24", "dev", vdev])
            run(ip + ["link", "set", vdev, "up"])
        self.mac_a = self.link_info(self.ns_a, self.if_a)["address"]
        self.mac_b = self.link_info(self.ns_b, self.if_b)["address"]
        # Let the immediate MLD reports for the new addresses pass before any
        # capture starts.
        time.sleep(0.3)
        return self

    @staticmethod
    def link_info(ns, dev):
        r = run(["ip", "-j", "-n", ns, "link", "show", "dev", dev])
        return json.loads(r.stdout)[0]

    def destroy(self):
        # Deleting a namespace destroys the veth pair and VLANs in it.
        for ns in self._made:
            run(["ip", "netns", "del", ns], check=False)
        self._made = []


class Proc:
    """A background process with its stderr collected line by line."""

    def __init__(self, cmd, ns=None, stdout=None, env=None):
        self.cmd = ns_cmd(ns, cmd)
        self.lines = []
        self._cv = threading.Condition()
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                  stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for raw in self.p.stderr:
            with self._cv:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_line(self, prefix, timeout=WAIT):
        """True once a stderr line starts with prefix; False on exit or timeout."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                if any(l.startswith(prefix) for l in self.lines):
                    return True
                left = end - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._t.is_alive()):
                    return False
                self._cv.wait(min(left, 0.05))

    def send_signal(self, sig=signal.SIGINT):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout=WAIT):
        """Exit status; kills the process (and reports -9) past timeout."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = -9
        self._t.join(2)
        return rc

    def stop(self, sig=signal.SIGINT, timeout=WAIT):
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(WAIT)

    def stderr(self):
        with self._cv:
            return "\n".join(self.lines)
