# SPDX-License-Identifier: MIT
"""`pcapd history import|query|stats` against tcpdump on the same files.

Two known captures (a nanosecond pcap and a pcapng, written with scapy) are
imported with --sample-rate 1, so counts are exact. Each query's answer must
equal, packet for packet (timestamp to the nanosecond, original length, the
first 160 bytes), what `tcpdump -r` selects from the original files with the
equivalent pcap-filter expression, cut to the query's window and to its newest
--packets. Every filter flag form is covered, and every window edge: packets
exactly on both boundaries, a window in the past, an empty result. The
dataset keeps to what pcap-filter and pcapd read alike (no IPv6 extension
headers, which only pcapd walks); VLAN-tagged frames, matched by their inner
headers, are compared with `E or (vlan and (E or (vlan and E)))`. Needs no root.
"""

import json
import os
from decimal import Decimal
import struct
import subprocess

import pytest
from scapy.all import ICMP, IP, SCTP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6, Raw
from scapy.layers.l2 import ARP
from scapy.utils import PcapNgWriter, PcapWriter

from harness import tshark_read

BASE = 1_700_000_000 * 10**9  # ns
STEP = 100_000_000            # 100 ms between packets: 10 per second
N_A = 3000                    # file A: seconds 0..299.9 (pcap, ns)
N_B = 1200                    # file B: seconds 300..419.9 (pcapng)
SNAP = 160

V4_SRC = ["192.0.2.%d" % i for i in range(1, 31)]
V4_DST = ["198.51.100.%d" % i for i in range(1, 11)] + ["203.0.113.7"]
V6_SRC = ["2001:db8::%x" % i for i in range(1, 9)]
V6_DST = ["2001:db8:1::%x" % i for i in range(1, 5)] + ["2001:db8:ff::1"]


def frame(i):
    """Packet i of the dataset: a deterministic mix of families, protocols,
    ports, VLAN tags (single and double), fragments, ARP and sizes."""
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    kind = (i * 7) % 20
    pad = Raw(b"P%07d" % i + bytes((i * 13 + k) % 256 for k in range((i * 37) % 400)))
    sport = 1000 + (i % 40)
    dport = (53, 80, 443, 8080, 5000 + (i % 30), 123)[i % 6]
    if kind < 9:
        ip = IP(src=V4_SRC[i % len(V4_SRC)], dst=V4_DST[(i // 3) % len(V4_DST)])
        l4 = (TCP(sport=sport, dport=dport), UDP(sport=sport, dport=dport), SCTP(sport=sport, dport=dport))[i % 3]
        pkt = e / ip / l4 / pad
    elif kind < 14:
        ip = IPv6(src=V6_SRC[i % len(V6_SRC)], dst=V6_DST[(i // 5) % len(V6_DST)])
        l4 = (UDP(sport=sport, dport=dport), TCP(sport=sport, dport=dport))[i % 2]
        pkt = e / ip / l4 / pad
    elif kind < 16:
        tags = Dot1Q(vlan=100) if i % 2 else Dot1Q(vlan=100) / Dot1Q(vlan=200)
        pkt = e / tags / IP(src=V4_SRC[i % 5], dst="198.51.100.2") / UDP(sport=sport, dport=dport) / pad
    elif kind == 16:
        pkt = e / IP(src=V4_SRC[i % 5], dst="198.51.100.3") / ICMP() / pad
    elif kind == 17:
        pkt = e / IPv6(src=V6_SRC[i % 3], dst="2001:db8:1::1") / ICMPv6EchoRequest() / pad
    elif kind == 18:
        # IPv4 fragments: a first one (ports present) or a later one whose
        # payload would read as port 53 if taken for a transport header.
        if i % 2:
            pkt = e / IP(src=V4_SRC[i % 5], dst="198.51.100.4", flags="MF") / UDP(sport=sport, dport=53) / pad
        else:
            pkt = e / IP(src=V4_SRC[i % 5], dst="198.51.100.4", frag=100, proto=17) / Raw(
                b"\x00\x35\x00\x35" + bytes(40))
    else:
        pkt = e / ARP(psrc="192.0.2.1", pdst="198.51.100.1")
    return bytes(pkt)


def ts_of(i):
    return BASE + i * STEP


def write_inputs(d):
    a, b = os.path.join(d, "a.pcap"), os.path.join(d, "b.pcapng")
    w = PcapWriter(a, nano=True, linktype=1, sync=False)
    w.write_header(None)
    for i in range(N_A):
        w.write_packet(frame(i), sec=ts_of(i) // 10**9, usec=ts_of(i) % 10**9)
    w.close()
    w = PcapNgWriter(b)
    for i in range(N_A, N_A + N_B):
        p = Ether(frame(i))
        p.time = Decimal(ts_of(i)) / Decimal(10**9)  # exact: a float would round
        w.write(p)
    w.close()
    return a, b


def read_pcap(path):
    """[(ts_ns, origlen, data)] of a classic pcap (µs or ns) or pcapng file."""
    out = []
    with open(path, "rb") as f:
        buf = f.read()
    magic = struct.unpack_from("<I", buf, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        mult = 1 if magic == 0xA1B23C4D else 1000
        off = 24
        while off + 16 <= len(buf):
            sec, frac, cap, orig = struct.unpack_from("<IIII", buf, off)
            out.append((sec * 10**9 + frac * mult, orig, buf[off + 16:off + 16 + cap]))
            off += 16 + cap
        return out
    # pcapng, little-endian, as pcapd and scapy write it
    off, resol = 0, {}
    while off + 12 <= len(buf):
        btype, blen = struct.unpack_from("<II", buf, off)
        if btype == 1:
            resol[len(resol)] = 10**6
            opt = off + 16
            while opt + 4 <= off + blen - 4:
                code, olen = struct.unpack_from("<HH", buf, opt)
                if code == 0:
                    break
                if code == 9:
                    v = buf[opt + 4]
                    resol[len(resol) - 1] = 10**v if v < 128 else 2**(v & 127)
                opt += 4 + ((olen + 3) & ~3)
        elif btype == 6:
            ifid, hi, lo, cap, orig = struct.unpack_from("<IIIII", buf, off + 8)
            t, r = (hi << 32) | lo, resol.get(ifid, 10**6)
            out.append(((t // r) * 10**9 + (t % r) * 10**9 // r, orig, buf[off + 28:off + 28 + cap]))
        off += blen
    return out


@pytest.fixture(scope="module")
def hist(pcapd, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("history"))
    a, b = write_inputs(d)
    h = os.path.join(d, "h")
    p = subprocess.run([pcapd, "history", "import", "--dir", h, "--segment-size", "64K", a, b],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    summary = json.loads(p.stdout)
    assert summary["packets_read"] == N_A + N_B
    assert summary["packets_recorded"] == N_A + N_B
    assert summary["segments"] >= 5  # small segments: windows cross them
    every = read_pcap(a) + read_pcap(b)
    assert [x[0] for x in every] == [ts_of(i) for i in range(N_A + N_B)]
    return {"dir": h, "inputs": [a, b], "tmp": d, "all": every}


def vlan_wrap(expr):
    return "(%s) or (vlan and ((%s) or (vlan and (%s))))" % (expr, expr, expr)


def tcpdump_select(hist, expr):
    """Packets tcpdump -r selects from the inputs with expr, in time order."""
    out = []
    for i, path in enumerate(hist["inputs"]):
        dest = os.path.join(hist["tmp"], "ref%d.pcap" % i)
        cmd = ["tcpdump", "-n", "-r", path, "-w", dest]
        if expr:
            cmd.append(vlan_wrap(expr))
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        out += read_pcap(dest)
    return sorted(out, key=lambda x: x[0])


def query(pcapd, hist, args, out_name="q.pcap"):
    out = os.path.join(hist["tmp"], out_name)
    if os.path.exists(out):
        os.unlink(out)
    p = subprocess.run([pcapd, "history", "query", "--dir", hist["dir"], "-w", out] + list(args),
                       capture_output=True, timeout=60)
    return p, out


def rfc3339(ns):
    import datetime
    s = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return "%s.%09dZ" % (s, ns % 10**9)


def check(pcapd, hist, args, expr, before, seconds, packets=10000):
    want = [x for x in tcpdump_select(hist, expr) if before - seconds * 10**9 <= x[0] <= before]
    want = want[-packets:] if packets else want
    p, out = query(pcapd, hist, args + ["--before", rfc3339(before), "--seconds", str(seconds),
                                        "--packets", str(packets)])
    assert p.returncode == 0, p.stderr.decode()
    stats = json.loads(p.stderr.decode().strip().splitlines()[-1])
    got = read_pcap(out)
    assert stats["packets"] == len(got)
    assert len(got) == len(want), "%s: %d packets, tcpdump %d" % (args, len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g[0] == w[0] and g[1] == w[1] and g[2] == w[2][:SNAP], \
            "%s: packet %d differs: %r vs %r" % (args, k, g[:2], w[:2])
    return got, stats


# Every filter flag form, with its pcap-filter equivalent on this dataset.
FILTERS = [
    ("none", [], ""),
    ("src-single", ["--src", "192.0.2.7"], "ip src host 192.0.2.7"),
    ("src-cidr", ["--src", "192.0.2.0/28"], "ip src net 192.0.2.0/28"),
    ("src-range", ["--src", "192.0.2.3-192.0.2.9"], "ip and ip[12:4] >= 0xc0000203 and ip[12:4] <= 0xc0000209"),
    ("dst-list", ["--dst", "198.51.100.2;203.0.113.7;"], "ip dst host 198.51.100.2 or ip dst host 203.0.113.7"),
    ("dst-v6-single", ["--dst", "2001:db8:ff::1"], "ip6 dst host 2001:db8:ff::1"),
    ("src-v6-cidr", ["--src", "2001:db8::/125"], "ip6 src net 2001:db8::/125"),
    ("dst-v6-cidr48", ["--dst", "2001:db8:1::/48"], "ip6 dst net 2001:db8:1::/48"),
    ("mixed-list", ["--src", "192.0.2.1;2001:db8::3"], "ip src host 192.0.2.1 or ip6 src host 2001:db8::3"),
    ("sport", ["--sport", "1007"], "src port 1007"),
    ("dport", ["--dport", "53"], "dst port 53"),
    ("dport-range", ["--dport", "5000-5009"], "dst portrange 5000-5009"),
    ("dport-list", ["--dport", "80;443;123"], "dst port 80 or dst port 443 or dst port 123"),
    ("proto-tcp", ["--proto", "tcp"], "ip proto 6 or ip6 proto 6"),
    ("proto-udp", ["--proto", "udp"], "ip proto 17 or ip6 proto 17"),
    ("proto-sctp", ["--proto", "132"], "ip proto 132 or ip6 proto 132"),
    ("proto-icmp", ["--proto", "icmp"], "ip proto 1"),
    ("proto-icmp6", ["--proto", "icmp6"], "ip6 proto 58"),
    ("udp-dport", ["--proto", "udp", "--dport", "53"], "udp dst port 53"),
    ("combined", ["--src", "192.0.2.0/24", "--dst", "198.51.100.0/24", "--dport", "8000-8100", "--proto", "tcp"],
     "ip src net 192.0.2.0/24 and ip dst net 198.51.100.0/24 and tcp dst portrange 8000-8100"),
    ("bpf", ["--bpf", "udp and dst port 123"], "udp and dst port 123"),
    ("bpf-and-flags", ["--src", "2001:db8::/64", "--bpf", "tcp"], "ip6 src net 2001:db8::/64 and tcp"),
    ("nothing", ["--dst", "203.0.113.99"], "ip dst host 203.0.113.99"),
]


@pytest.mark.parametrize("name,args,expr", FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_forms(pcapd, hist, name, args, expr):
    # A 200-second window across both input files and many segments.
    before, seconds = ts_of(3900), 200
    got, stats = check(pcapd, hist, args, expr, before, seconds)
    if name == "nothing":
        assert got == [] and stats["blocks_read"] == 0  # the summaries rule every block out
    elif name != "none":
        assert got, "the dataset should hold matches for %s" % name


def test_window_edges(pcapd, hist):
    # Packets lie exactly on both ends: both are included.
    got, _ = check(pcapd, hist, [], "", ts_of(1000), 10)
    assert got[0][0] == ts_of(900) and got[-1][0] == ts_of(1000) and len(got) == 101
    # One nanosecond inside each end leaves them out.
    got, _ = check(pcapd, hist, [], "", ts_of(1000) - 1, 10)
    assert got[-1][0] == ts_of(999)
    # Across the boundary between the two input files.
    check(pcapd, hist, ["--proto", "udp"], "ip proto 17 or ip6 proto 17", ts_of(N_A + 50), 30)
    # A window in the past, before every packet: an empty, valid file.
    got, stats = check(pcapd, hist, [], "", BASE - 10**9, 60)
    assert got == [] and stats["segments"] == 0
    _, out = query(pcapd, hist, ["--before", rfc3339(BASE - 10**9)])
    assert tshark_read(out) == []
    # After the end.
    got, _ = check(pcapd, hist, [], "", ts_of(N_A + N_B) + 10**12, 300)
    assert got == []


def test_newest_first(pcapd, hist):
    # More match than --packets: the newest ones, in time order.
    got, stats = check(pcapd, hist, ["--dport", "53"], "dst port 53", ts_of(2500), 300, packets=25)
    assert len(got) == 25 and stats["limited"] is True
    got, _ = check(pcapd, hist, [], "", ts_of(2500), 300, packets=1)
    assert got[0][0] == ts_of(2500)


def test_output_readable(pcapd, hist):
    _, out = query(pcapd, hist, ["--before", rfc3339(ts_of(4000)), "--seconds", "20", "--dst", "198.51.100.2"])
    pkts = tshark_read(out)
    assert pkts and all(p["caplen"] <= SNAP for p in pkts)
    p, out = query(pcapd, hist, ["--before", rfc3339(ts_of(4000)), "--seconds", "20", "--format", "pcapng"],
                   "q.pcapng")
    assert p.returncode == 0
    assert len(tshark_read(out)) == len(read_pcap(out)) == 201
    # Standard output.
    p = subprocess.run([pcapd, "history", "query", "--dir", hist["dir"], "--before", rfc3339(ts_of(100)),
                        "--seconds", "5", "-w", "-"], capture_output=True, timeout=60)
    assert p.returncode == 0
    assert len(tshark_read(data=p.stdout)) == 51


def test_stats(pcapd, hist):
    p = subprocess.run([pcapd, "history", "stats", "--dir", hist["dir"], "--json"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    st = json.loads(p.stdout)
    assert st["packets"] == N_A + N_B
    assert st["first_ns"] == ts_of(0) and st["last_ns"] == ts_of(N_A + N_B - 1)
    assert st["bytes"] == sum(min(len(d), SNAP) for _, _, d in hist["all"])
    assert st["wire_bytes"] == sum(o for _, o, _ in hist["all"])
    assert st["segments"] == len([n for n in os.listdir(hist["dir"]) if n.endswith(".pcap")])
    assert st["first"].startswith("2023-11-14T22:13:20")
    p = subprocess.run([pcapd, "history", "stats", "--dir", hist["dir"]], capture_output=True, timeout=60)
    assert p.returncode == 0 and b"packets     %d" % (N_A + N_B) in p.stdout
    # Every segment is a pcap file tcpdump reads.
    seg = sorted(n for n in os.listdir(hist["dir"]) if n.endswith(".pcap"))[3]
    r = subprocess.run(["tcpdump", "-n", "-r", os.path.join(hist["dir"], seg)], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.count(b"\n") > 100


def test_sample_rate(pcapd, hist, tmp_path):
    h = str(tmp_path / "sampled")
    p = subprocess.run([pcapd, "history", "import", "--dir", h, "--sample-rate", "7", "--snaplen", "64"]
                       + hist["inputs"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["packets_recorded"] == (N_A + N_B + 6) // 7
    out = str(tmp_path / "s.pcap")
    p = subprocess.run([pcapd, "history", "query", "--dir", h, "--before", rfc3339(ts_of(N_A + N_B)), "--seconds",
                        "1000", "-w", out], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    got = read_pcap(out)
    want = hist["all"][::7]
    assert [(g[0], g[1], g[2]) for g in got] == [(w[0], w[1], w[2][:64]) for w in want]


def test_errors(pcapd, hist, tmp_path):
    out = str(tmp_path / "never.pcap")
    for args, status in ((["--before", "yesterday"], 2), (["--bpf", "no such thing"], 2),
                         (["--seconds", "0"], 2), (["--packets", "2000000"], 2), (["--dport", "70000"], 2)):
        p = subprocess.run([pcapd, "history", "query", "--dir", hist["dir"], "-w", out] + args,
                           capture_output=True, timeout=60)
        assert p.returncode == status, (args, p.stderr)
        assert p.stderr.strip().count(b"\n") == 0 and b"pcapd:" in p.stderr, p.stderr
        assert not os.path.exists(out)
    p = subprocess.run([pcapd, "history", "query", "--dir", str(tmp_path / "none"), "-w", out],
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"no such history directory" in p.stderr
    assert not os.path.exists(out)
    p = subprocess.run([pcapd, "history", "import", "--dir", str(tmp_path / "x"), str(tmp_path / "missing.pcap")],
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"missing.pcap" in p.stderr
