# SPDX-License-Identifier: MIT
"""The known traffic: a catalog of frames built with scapy, each carrying a
unique marker in its payload, with the facts a filter looks at written down
beside it, and a model of what pcapd's filter flags (and tcpdump's pcap-filter
language) must accept.

Frames go to a MAC address no one owns, so the receiving kernel drops them
after the capture taps saw them and answers nothing (no RST, no ICMP error, no
ARP) — the link carries only what the test sent.
"""

import ipaddress
import os
import random
import subprocess
import tempfile

from scapy.all import (GRE, ICMP, IP, SCTP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest,
                       IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       Raw, raw)

from netns import run, ns_cmd

HERE = os.path.dirname(os.path.abspath(__file__))
NOBODY_MAC = "02:00:00:00:00:99"
RUN_TAG = b"%06x" % random.getrandbits(24)

TCP_, UDP_, SCTP_, ICMP_, ICMP6_, GRE_ = 6, 17, 132, 1, 58, 47


class Frame:
    """One frame and the header facts filters look at.

    l4      transport protocol after IPv6 extension headers (pcapd's view)
    nh      the IPv4 protocol field / the IPv6 fixed header's next header
            (what pcap-filter's `port` looks at; tcpdump does not walk)
    ports   (sport, dport) when the transport header is in this frame
    v6ext   an IPv6 extension header precedes the transport header
    """

    def __init__(self, idx, pkt, fam, src, dst, l4, nh=None, ports=None, v6ext=False,
                 vlan=False, kernel_tag=False, note=""):
        self.idx = idx
        self.marker = b"PDTM" + RUN_TAG + b"%04d" % idx
        self.fam, self.l4, self.v6ext, self.vlan = fam, l4, v6ext, vlan
        self.src, self.dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        self.nh = l4 if nh is None else nh
        self.ports = ports
        self.note = note
        # kernel_tag: sent untagged out of the VLAN device; the kernel adds
        # the tag, so the wire (and the capture) has it inline like the others.
        self.kernel_tag = kernel_tag
        self.pkt = pkt / Raw(self.marker)
        self.wire = raw(self.pkt)
        if kernel_tag:
            self.send = raw(_untag(self.pkt))
        else:
            self.send = self.wire

    def __repr__(self):
        return "frame %d (%s)" % (self.idx, self.note)


def _untag(pkt):
    eth = pkt.copy()
    inner = eth[Dot1Q].payload
    return Ether(src=eth.src, dst=eth.dst, type=eth[Dot1Q].type) / inner


def catalog(net):
    """The frames, in sending order, from net.mac_a to nobody."""
    e = Ether(src=net.mac_a, dst=NOBODY_MAC)
    ev = Ether(src=net.mac_a, dst=NOBODY_MAC) / Dot1Q(vlan=net.VLAN)
    a4, b4, a6, b6 = net.ip4_a, net.ip4_b, net.ip6_a, net.ip6_b
    va, vb = net.vip4_a, net.vip4_b
    # Bytes that would read as ports 80->80 (v4) or 53->53 (v6) if a filter
    # wrongly took a non-first fragment's payload for a transport header.
    trap80, trap53 = b"\x00\x50\x00\x50", b"\x00\x35\x00\x35"
    F = []

    def add(*a, **kw):
        F.append(Frame(len(F), *a, **kw))

    add(e / IP(src=a4, dst=b4) / TCP(sport=40000, dport=80, flags="S"), 4, a4, b4, TCP_, ports=(40000, 80), note="v4 tcp ->80")
    add(e / IP(src=a4, dst=b4) / TCP(sport=40001, dport=443, flags="S"), 4, a4, b4, TCP_, ports=(40001, 443), note="v4 tcp ->443")
    add(e / IP(src=a4, dst=b4) / UDP(sport=5353, dport=53), 4, a4, b4, UDP_, ports=(5353, 53), note="v4 udp ->53")
    add(e / IP(src="192.0.2.3", dst=b4) / UDP(sport=53, dport=5000), 4, "192.0.2.3", b4, UDP_, ports=(53, 5000), note="v4 udp 53-> from .3")
    add(e / IP(src=a4, dst=b4) / ICMP(type=8, id=7, seq=1), 4, a4, b4, ICMP_, note="v4 icmp echo")
    add(e / IP(src="192.0.2.10", dst="192.0.2.20") / TCP(sport=1234, dport=100), 4, "192.0.2.10", "192.0.2.20", TCP_, ports=(1234, 100), note="v4 tcp .10->.20:100")
    add(e / IP(src="203.0.113.5", dst=b4) / TCP(sport=80, dport=8080, flags="SA"), 4, "203.0.113.5", b4, TCP_, ports=(80, 8080), note="v4 tcp from 80, outside /24")
    add(e / IP(src=a4, dst=b4, id=4242, flags="MF", frag=0, proto=UDP_) / UDP(sport=7000, dport=80) / Raw(b"A" * 16),
        4, a4, b4, UDP_, ports=(7000, 80), note="v4 udp first fragment ->80")
    add(e / IP(src=a4, dst=b4, id=4242, flags=0, frag=3, proto=UDP_) / Raw(trap80),
        4, a4, b4, UDP_, ports=None, note="v4 udp non-first fragment")
    add(e / IP(src=a4, dst=b4) / SCTP(sport=2000, dport=80), 4, a4, b4, SCTP_, ports=(2000, 80), note="v4 sctp ->80")
    add(e / IP(src=a4, dst=b4, proto=GRE_) / GRE(), 4, a4, b4, GRE_, note="v4 gre")
    add(e / IP(src=b4, dst=a4) / TCP(sport=80, dport=40000, flags="SA"), 4, b4, a4, TCP_, ports=(80, 40000), note="v4 tcp 80-> reverse")
    add(e / IP(src=a4, dst=b4) / UDP(sport=100, dport=120), 4, a4, b4, UDP_, ports=(100, 120), note="v4 udp 100->120")
    add(e / IPv6(src=a6, dst=b6) / TCP(sport=40000, dport=80, flags="S"), 6, a6, b6, TCP_, ports=(40000, 80), note="v6 tcp ->80")
    add(e / IPv6(src=a6, dst=b6) / UDP(sport=5353, dport=53), 6, a6, b6, UDP_, ports=(5353, 53), note="v6 udp ->53")
    add(e / IPv6(src=a6, dst=b6) / ICMPv6EchoRequest(id=7, seq=1), 6, a6, b6, ICMP6_, note="v6 icmp6 echo")
    add(e / IPv6(src="2001:db8:1::5", dst=b6) / TCP(sport=2222, dport=443), 6, "2001:db8:1::5", b6, TCP_, ports=(2222, 443), note="v6 tcp from other /64")
    add(e / IPv6(src=a6, dst=b6) / IPv6ExtHdrHopByHop() / UDP(sport=6000, dport=53), 6, a6, b6, UDP_, nh=0, ports=(6000, 53), v6ext=True, note="v6 hop-by-hop udp ->53")
    add(e / IPv6(src=a6, dst=b6) / IPv6ExtHdrDestOpt() / TCP(sport=40002, dport=80), 6, a6, b6, TCP_, nh=60, ports=(40002, 80), v6ext=True, note="v6 dest-opts tcp ->80")
    add(e / IPv6(src=a6, dst=b6) / IPv6ExtHdrFragment(nh=UDP_, offset=0, m=1, id=99) / UDP(sport=6001, dport=53) / Raw(b"B" * 16),
        6, a6, b6, UDP_, nh=44, ports=(6001, 53), v6ext=True, note="v6 udp first fragment ->53")
    add(e / IPv6(src=a6, dst=b6) / IPv6ExtHdrFragment(nh=UDP_, offset=3, m=0, id=99) / Raw(trap53),
        6, a6, b6, UDP_, nh=44, ports=None, v6ext=True, note="v6 udp non-first fragment")
    add(ev / IP(src=va, dst=vb) / UDP(sport=4000, dport=53), 4, va, vb, UDP_, ports=(4000, 53), vlan=True, note="vlan v4 udp ->53")
    add(ev / IP(src=va, dst=vb) / TCP(sport=40003, dport=80), 4, va, vb, TCP_, ports=(40003, 80), vlan=True, note="vlan v4 tcp ->80")
    add(ev / IPv6(src=a6, dst=b6) / UDP(sport=4001, dport=53), 6, a6, b6, UDP_, ports=(4001, 53), vlan=True, note="vlan v6 udp ->53")
    if net.has_vlan_dev:
        add(ev / IP(src=va, dst=vb) / ICMP(type=8, id=8, seq=1), 4, va, vb, ICMP_, vlan=True, kernel_tag=True,
            note="vlan v4 icmp, tag added by the kernel")
    else:
        add(ev / IP(src=va, dst=vb) / ICMP(type=8, id=8, seq=1), 4, va, vb, ICMP_, vlan=True,
            note="vlan v4 icmp (no 802.1Q device in this kernel: inline tag)")
    return F


def send(net, frames, gap_us=0):
    """Sends frames from namespace a, in order (VLAN-device frames out of it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".hex", delete=False) as f:
        for fr in frames:
            f.write("%s %s\n" % (net.vlan_a if fr.kernel_tag else net.if_a, fr.send.hex()))
        path = f.name
    try:
        cmd = ["/usr/bin/python3", os.path.join(HERE, "sendraw.py"), path]
        if gap_us:
            cmd += ["--gap-us", str(gap_us)]
        run(ns_cmd(net.ns_a, cmd))
    finally:
        os.unlink(path)


class Steady:
    """A context manager: `frames` (default: filler frames to dport) sent
    again and again, `gap_us` apart, from namespace a while the block runs
    (at most max_s seconds), by a process stopped by its pid at the end."""

    def __init__(self, net, dport=9, frames=None, gap_us=20000, max_s=300):
        self.net = net
        self.frames = frames or filler(net, 5, dport=dport)
        self.gap_us, self.max_s = gap_us, max_s
        self.proc = None
        self.path = None

    def __enter__(self):
        with tempfile.NamedTemporaryFile("w", suffix=".hex", delete=False) as f:
            for fr in self.frames:
                f.write("%s %s\n" % (self.net.vlan_a if fr.kernel_tag else self.net.if_a, fr.send.hex()))
            self.path = f.name
        cmd = ns_cmd(self.net.ns_a, ["/usr/bin/python3", os.path.join(HERE, "sendraw.py"), self.path,
                                     "--gap-us", str(self.gap_us), "--loop-s", str(self.max_s)])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.path)


def filler(net, n, size=200, dport=9, first=1000):
    """n plain IPv4 UDP frames of `size` bytes on the wire, each with a marker."""
    e = Ether(src=net.mac_a, dst=NOBODY_MAC)
    out = []
    for i in range(n):
        pkt = e / IP(src=net.ip4_a, dst=net.ip4_b) / UDP(sport=30000, dport=dport)
        pad = max(0, size - len(raw(pkt)) - len(b"PDTM") - len(RUN_TAG) - 4)
        out.append(Frame(first + i, pkt / Raw(b"z" * pad), 4, net.ip4_a, net.ip4_b, UDP_,
                         ports=(30000, dport), note="filler"))
    return out


# --- the filter model ---------------------------------------------------------

def _in(addr, ranges):
    return any(addr.version == lo.version and lo <= addr <= hi for lo, hi in ranges)


def parse_addrs(s):
    """"a", "a/n", "a-b", "a;b;" -> [(lo, hi)] (the test's own reading of ADDRS)."""
    out = []
    for part in s.split(";"):
        if not part:
            continue
        if "/" in part:
            n = ipaddress.ip_network(part, strict=False)
            out.append((n.network_address, n.broadcast_address))
        elif "-" in part:
            lo, hi = part.split("-")
            out.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi)))
        else:
            a = ipaddress.ip_address(part)
            out.append((a, a))
    return out


def parse_ports(s):
    out = []
    for part in s.split(";"):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def tcpdump_proto(fr, p):
    """pcap-filter's `ip proto P or ip6 proto P`: the fixed header's field, and
    for IPv6 also the next header of a fragment header right behind it."""
    return fr.nh == p or (fr.fam == 6 and fr.nh == 44 and fr.l4 == p)


def flags_match(fr, src=None, dst=None, sport=None, dport=None, proto=None, walk=True):
    """pcapd's documented semantics for the filter flags (walk=True); with
    walk=False the same flags as pcap-filter reads them (src/dst host|net,
    ip/ip6 proto, src/dst port): IPv6 extension headers are not walked."""
    if src is not None and not _in(fr.src, parse_addrs(src)):
        return False
    if dst is not None and not _in(fr.dst, parse_addrs(dst)):
        return False
    if proto is not None and not (fr.l4 == proto if walk else tcpdump_proto(fr, proto)):
        return False
    if sport is not None or dport is not None:
        if fr.ports is None or (not walk and fr.v6ext):
            return False
        l4 = fr.l4 if walk else fr.nh
        if l4 not in ((TCP_, UDP_, SCTP_) if proto is None else (proto,)):
            return False
        if sport is not None and not any(lo <= fr.ports[0] <= hi for lo, hi in parse_ports(sport)):
            return False
        if dport is not None and not any(lo <= fr.ports[1] <= hi for lo, hi in parse_ports(dport)):
            return False
    return True
