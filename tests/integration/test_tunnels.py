# SPDX-License-Identifier: MIT
"""Tunnel-aware filters (`--inner`) against hand-built VXLAN, GENEVE and GRE
frames sent through a veth pair.

Each frame is written down twice: its outer headers and (for a tunnel) the
packet inside. A case with --inner must keep exactly the frames whose outer
headers match the flags, or whose inner packet does; without --inner only the
outer headers count. What pcapd capture wrote is read by tshark and compared,
frame by frame, with that model; the same capture imported into a history and
queried with `pcapd history query --inner` must give the same frames.
"""

import ipaddress
import os
import signal
import struct
import subprocess

import pytest
from scapy.all import GRE, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw
from scapy.layers.vxlan import VXLAN

import traffic
from harness import READY, by_marker, final_stats, tshark_read
from waits import WAIT, pcap_records, until

TCP_, UDP_, GRE_ = traffic.TCP_, traffic.UDP_, traffic.GRE_

O4 = ("192.0.2.100", "192.0.2.200")
O6 = ("2001:db8:ff::1", "2001:db8:ff::2")


class Facts:
    """What a filter looks at in one IP packet (see traffic.flags_match)."""

    def __init__(self, src, dst, l4, ports=None):
        self.src, self.dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        self.fam = self.src.version
        self.l4 = self.nh = l4
        self.ports = ports
        self.v6ext = False


def _geneve(ptype, opt_words):
    return Raw(struct.pack("!BBH", opt_words, 0, ptype) + b"\x00\x12\x34\x00" + b"opt!" * opt_words)


def _ip(src, dst):
    return IP(src=src, dst=dst) if ipaddress.ip_address(src).version == 4 else IPv6(src=src, dst=dst)


def catalog(net):
    """(frame, inner facts or None) pairs; Frame holds the outer facts."""
    e = Ether(src=net.mac_a, dst=traffic.NOBODY_MAC)
    out = []

    def add(pkt, outer, inner=None, note=""):
        fr = traffic.Frame(len(out), pkt, outer.fam, str(outer.src), str(outer.dst), outer.l4,
                           ports=outer.ports, note=note)
        fr.inner = inner
        out.append(fr)

    for osrc, odst in (O4, O6):
        def udp_tun(dport):
            return e / _ip(osrc, odst) / UDP(sport=40000, dport=dport)

        def gre(**kw):
            return e / _ip(osrc, odst) / GRE(**kw)

        vx = Facts(osrc, odst, UDP_, (40000, 4789))
        gn = Facts(osrc, odst, UDP_, (40000, 6081))
        gr = Facts(osrc, odst, GRE_)
        add(udp_tun(4789) / VXLAN(vni=7) / Ether() / IP(src="198.51.100.1", dst="198.51.100.2") /
            UDP(sport=1000, dport=53), vx, Facts("198.51.100.1", "198.51.100.2", UDP_, (1000, 53)), "vxlan v4 dns")
        add(udp_tun(4789) / VXLAN(vni=7) / Ether() / Dot1Q(vlan=5) / IPv6(src="2001:db8:1::1", dst="2001:db8:1::2") /
            TCP(sport=2000, dport=443), vx, Facts("2001:db8:1::1", "2001:db8:1::2", TCP_, (2000, 443)),
            "vxlan tagged v6 https")
        add(udp_tun(6081) / _geneve(0x6558, 3) / Ether() / IP(src="198.51.100.3", dst="192.0.2.9") /
            UDP(sport=1001, dport=53), gn, Facts("198.51.100.3", "192.0.2.9", UDP_, (1001, 53)),
            "geneve options ether v4 dns")
        add(udp_tun(6081) / _geneve(0x86dd, 1) / IPv6(src="2001:db8:1::3", dst="2001:db8:1::4") /
            TCP(sport=2001, dport=443), gn, Facts("2001:db8:1::3", "2001:db8:1::4", TCP_, (2001, 443)),
            "geneve v6 inside")
        add(gre(proto=0x0800) / IP(src="198.51.100.5", dst="198.51.100.6") / TCP(sport=3000, dport=80), gr,
            Facts("198.51.100.5", "198.51.100.6", TCP_, (3000, 80)), "gre v4")
        add(gre(proto=0x86dd, key_present=1, key=9, seqnum_present=1, sequence_number=3) /
            IPv6(src="2001:db8:1::5", dst="2001:db8:1::6") / UDP(sport=3001, dport=53), gr,
            Facts("2001:db8:1::5", "2001:db8:1::6", UDP_, (3001, 53)), "gre key seq v6 dns")
        add(gre(proto=0x6558, chksum_present=1) / Ether() / IP(src="198.51.100.7", dst="198.51.100.8") /
            UDP(sport=3002, dport=5353), gr, Facts("198.51.100.7", "198.51.100.8", UDP_, (3002, 5353)),
            "gre checksum ether v4")
        # not opened: VXLAN on another port, GRE version 1 (PPTP)
        add(udp_tun(4790) / VXLAN(vni=7) / Ether() / IP(src="198.51.100.1", dst="198.51.100.2") /
            UDP(sport=1000, dport=53), Facts(osrc, odst, UDP_, (40000, 4790)), None, "vxlan-gpe port: not opened")
        add(gre(proto=0x0800, version=1) / IP(src="198.51.100.5", dst="198.51.100.6") / TCP(sport=3000, dport=80),
            gr, None, "gre version 1: not opened")
    add(e / IP(src="192.0.2.1", dst="198.51.100.9") / UDP(sport=5, dport=53), Facts("192.0.2.1", "198.51.100.9",
                                                                                    UDP_, (5, 53)), None, "plain v4")
    add(e / IPv6(src="2001:db8::1", dst="2001:db8:1::9") / TCP(sport=5, dport=443),
        Facts("2001:db8::1", "2001:db8:1::9", TCP_, (5, 443)), None, "plain v6")
    return out


CASES = [
    ("inner-dst-v4", ["--inner", "--dst", "198.51.100.0/24"], {"dst": "198.51.100.0/24"}, True, None),
    ("inner-udp-53", ["--inner", "--proto", "udp", "--dport", "53"], {"proto": UDP_, "dport": "53"}, True, None),
    ("inner-v6-443", ["--inner", "--src", "2001:db8:1::/48", "--dport", "443"],
     {"src": "2001:db8:1::/48", "dport": "443"}, True, None),
    ("outer-only-dst", ["--dst", "198.51.100.0/24"], {"dst": "198.51.100.0/24"}, False, None),
    ("inner-and-bpf", ["--inner", "--dst", "192.0.2.9;198.51.100.6", "--bpf", "udp"],
     {"dst": "192.0.2.9;198.51.100.6"}, True, lambda fr: fr.l4 == UDP_),
]


def want(fr, flags, inner, bpf):
    ok = traffic.flags_match(fr, **flags) or (inner and fr.inner is not None and
                                               traffic.flags_match(fr.inner, **flags))
    return ok and (bpf is None or bpf(fr))


@pytest.fixture(scope="module")
def tunnel_run(net, pcapd, tmp_path_factory):
    from harness import Captures
    d = tmp_path_factory.mktemp("tunnels")
    caps = Captures(pcapd)
    res = {}
    try:
        frames = catalog(net)
        allout = str(d / "all.pcap")
        everything = caps.start_pcapd(net.ns_b, net.if_b, allout, [], ready=False)
        for cid, args, _, _, _ in CASES:
            out = str(d / (cid + ".pcap"))
            res[cid] = {"out": out, "p": caps.start_pcapd(net.ns_b, net.if_b, out, args, ready=False)}
        assert everything.wait_line(READY, WAIT), everything.stderr()
        for cid in res:
            assert res[cid]["p"].wait_line(READY, WAIT), res[cid]["p"].stderr()
        traffic.send(net, frames)
        # Each capture stops once its file holds what it should; one that
        # never gets there is stopped at the bound and its test says why.
        until(lambda: pcap_records(allout) >= len(frames), "every frame in %s" % allout)
        for cid, _, flags, inner, bpf in CASES:
            n = len([fr for fr in frames if want(fr, flags, inner, bpf)])
            try:
                until(lambda: pcap_records(res[cid]["out"]) >= n, "case %s" % cid)
            except AssertionError:
                pass
        assert everything.stop(signal.SIGINT) == 0
        for cid in res:
            res[cid]["rc"] = res[cid]["p"].stop(signal.SIGINT)
        yield frames, res, allout, d
    finally:
        caps.cleanup()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_capture_inner(tunnel_run, case):
    frames, res, _, _ = tunnel_run
    cid, args, flags, inner, bpf = case
    r = res[cid]
    assert r["rc"] == 0, r["p"].stderr()
    assert final_stats(r["p"])["stop_reason"] == "signal"
    mine, _ = by_marker(tshark_read(r["out"]), frames)
    expect = {fr.idx for fr in frames if want(fr, flags, inner, bpf)}
    assert expect and expect != {fr.idx for fr in frames}, "the case must select some frames, not all"
    got = set(mine)
    assert got == expect, "pcapd %s: missing %s, extra %s" % (
        " ".join(args), [frames[i] for i in sorted(expect - got)], [frames[i] for i in sorted(got - expect)])
    for i in got:  # byte for byte
        assert [p["raw"] for p in mine[i]] == [frames[i].wire]


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_history_query_inner(tunnel_run, pcapd, case):
    """The same frames through the history: imported, then queried with the
    same flags; the summaries (outer headers) must not hide a tunnel."""
    frames, _, allout, d = tunnel_run
    cid, args, flags, inner, bpf = case
    hist = str(d / "hist")
    if not os.path.isdir(hist):
        subprocess.run([pcapd, "history", "import", "--dir", hist, "--sample-rate", "1", "--snaplen", "65535", allout], check=True,
                       timeout=60, capture_output=True)
    out = str(d / (cid + ".query.pcap"))
    r = subprocess.run([pcapd, "history", "query", "--dir", hist, "--seconds", "3600", "-w", out] + args,
                       timeout=60, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mine, _ = by_marker(tshark_read(out), frames)
    expect = {fr.idx for fr in frames if want(fr, flags, inner, bpf)}
    assert set(mine) == expect
