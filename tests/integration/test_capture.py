# SPDX-License-Identifier: MIT
"""`pcapd capture` against real traffic in network namespaces.

Every filter form runs pcapd and tcpdump (with the equivalent pcap-filter
expression) on the same interface at the same time while the known frames of
traffic.py go by; tshark reads what pcapd wrote. pcapd must capture exactly
the frames our model accepts, byte for byte (VLAN tag included), and tcpdump
the frames the pcap-filter reading of the same flags accepts. The two readings
differ by design in one place: pcapd walks IPv6 extension headers to reach the
transport header, tcpdump's `port` and `ip6 proto` do not (libpcap's `ip6
proto` does look behind one fragment header); the model states both, so each
difference is asserted, not tolerated.
"""

import os
import signal
import shutil
import subprocess
import tempfile
import time

import pytest
from scapy.all import PcapReader

import traffic
from harness import READY, by_marker, final_stats, tshark_read
from netns import Proc, run, ns_cmd
from waits import WAIT, pcap_records, until, wait_records

TCP_, UDP_ = traffic.TCP_, traffic.UDP_


class Case:
    def __init__(self, cid, args, expr, flags=None, bpf=None, note=""):
        self.id, self.args, self.expr = cid, args, expr
        self.flags = flags or {}
        self.bpf = bpf or (lambda fr: True)  # the pcap-filter part, libpcap semantics
        self.note = note

    def want_pcapd(self, fr):
        return traffic.flags_match(fr, **self.flags) and self.bpf(fr)

    def want_tcpdump(self, fr):
        return traffic.flags_match(fr, walk=False, **self.flags) and self.bpf(fr)


CASES = [
    Case("none", [], "", note="no filter: every frame, byte for byte"),
    Case("src-single", ["--src", "192.0.2.1"], "src host 192.0.2.1", {"src": "192.0.2.1"}),
    Case("dst-cidr", ["--dst", "192.0.2.0/24"], "dst net 192.0.2.0/24", {"dst": "192.0.2.0/24"}),
    Case("src-range", ["--src", "192.0.2.2-192.0.2.10"],
         "ip and ip[12:4] >= 0xc0000202 and ip[12:4] <= 0xc000020a", {"src": "192.0.2.2-192.0.2.10"}),
    Case("dst-list", ["--dst", "192.0.2.20;198.51.100.2;"], "dst host 192.0.2.20 or dst host 198.51.100.2",
         {"dst": "192.0.2.20;198.51.100.2;"}, note="includes VLAN frames, matched by inner headers"),
    Case("src-v6-single", ["--src", "2001:db8::1"], "src host 2001:db8::1", {"src": "2001:db8::1"}),
    Case("src-v6-cidr", ["--src", "2001:db8::/64"], "src net 2001:db8::/64", {"src": "2001:db8::/64"}),
    Case("dst-v6-cidr32", ["--dst", "2001:db8::/32"], "dst net 2001:db8::/32", {"dst": "2001:db8::/32"}),
    Case("src-v6-range", ["--src", "2001:db8::1-2001:db8:1::ffff"],
         "src host 2001:db8::1 or src host 2001:db8:1::5", {"src": "2001:db8::1-2001:db8:1::ffff"},
         note="tcpdump expression equivalent on this traffic only"),
    Case("src-mixed-list", ["--src", "192.0.2.3;2001:db8:1::5"], "src host 192.0.2.3 or src host 2001:db8:1::5",
         {"src": "192.0.2.3;2001:db8:1::5"}),
    Case("dport-single", ["--dport", "80"], "dst port 80", {"dport": "80"},
         note="TCP/UDP/SCTP; v4 first fragment yes, non-first no; v6 ext headers walked by pcapd only"),
    Case("dport-range", ["--dport", "80-120"], "dst portrange 80-120", {"dport": "80-120"}),
    Case("dport-list", ["--dport", "53;443;"], "dst port 53 or dst port 443", {"dport": "53;443;"}),
    Case("sport-single", ["--sport", "80"], "src port 80", {"sport": "80"}),
    Case("sport-list-range", ["--sport", "53;100-2000"], "src port 53 or src portrange 100-2000",
         {"sport": "53;100-2000"}),
    Case("proto-tcp", ["--proto", "tcp"], "tcp", {"proto": TCP_}),
    Case("proto-17", ["--proto", "17"], "ip proto 17 or ip6 proto 17", {"proto": UDP_}),
    Case("proto-icmp", ["--proto", "icmp"], "icmp", {"proto": 1}),
    Case("proto-icmp6", ["--proto", "icmp6"], "icmp6", {"proto": 58}),
    Case("proto-47", ["--proto", "47"], "ip proto 47 or ip6 proto 47", {"proto": 47}),
    Case("proto-sctp", ["--proto", "sctp"], "sctp", {"proto": 132}),
    Case("combo-v4", ["--src", "192.0.2.0/24", "--dst", "192.0.2.2", "--proto", "udp", "--dport", "53"],
         "src net 192.0.2.0/24 and dst host 192.0.2.2 and udp and dst port 53",
         {"src": "192.0.2.0/24", "dst": "192.0.2.2", "proto": UDP_, "dport": "53"}),
    Case("combo-proto-port", ["--proto", "udp", "--dport", "80"], "udp dst port 80",
         {"proto": UDP_, "dport": "80"}, note="TCP and SCTP to port 80 excluded; first fragment kept"),
    Case("combo-v6", ["--src", "2001:db8::/64", "--dport", "53"], "src net 2001:db8::/64 and dst port 53",
         {"src": "2001:db8::/64", "dport": "53"}),
    Case("bpf-only", ["--bpf", "udp and dst port 53"], "udp and dst port 53",
         bpf=lambda fr: fr.nh == UDP_ and fr.ports is not None and fr.ports[1] == 53),
    Case("bpf-and-flags", ["--src", "192.0.2.1", "--bpf", "tcp"], "src host 192.0.2.1 and tcp",
         {"src": "192.0.2.1"}, bpf=lambda fr: traffic.tcpdump_proto(fr, TCP_)),
    Case("bpf-ip6-and-dport", ["--dport", "80", "--bpf", "ip6"], "dst port 80 and ip6",
         {"dport": "80"}, bpf=lambda fr: fr.fam == 6),
    Case("vlan-inner-dst", ["--dst", "198.51.100.0/24"], "dst net 198.51.100.0/24", {"dst": "198.51.100.0/24"},
         note="VLAN 100 frames, inline and kernel-inserted tags"),
]


def _tcpdump_read(path):
    with PcapReader(path) as r:
        return [{"raw": bytes(p), "len": p.wirelen, "caplen": len(bytes(p))} for p in r]


@pytest.fixture(scope="module")
def filter_run(net, pcapd, tmp_path_factory):
    """All filter cases captured at once on the same burst of traffic."""
    from harness import Captures
    d = tmp_path_factory.mktemp("filters")
    caps = Captures(pcapd)
    res = {}
    try:
        frames = traffic.catalog(net)
        for c in CASES:
            out, ref = str(d / (c.id + ".pcap")), str(d / (c.id + ".tcpdump.pcap"))
            res[c.id] = {"out": out, "ref": ref,
                         "p": caps.start_pcapd(net.ns_b, net.if_b, out, c.args, ready=False),
                         "t": caps.start_tcpdump(net.ns_b, net.if_b, ref, c.expr)}
        for c in CASES:
            res[c.id]["ready"] = res[c.id]["p"].wait_line(READY, WAIT)
        traffic.send(net, frames)
        # Stop each capture once its file holds what it should; a capture
        # that never gets there is stopped at the bound and its test says why.
        for c in CASES:
            n = len([fr for fr in frames if c.want_pcapd(fr)])
            n_ref = len([fr for fr in frames if c.want_tcpdump(fr)])
            try:
                until(lambda: pcap_records(res[c.id]["out"]) >= n and pcap_records(res[c.id]["ref"]) >= n_ref,
                      "case %s" % c.id)
            except AssertionError:
                pass
        for c in CASES:
            r = res[c.id]
            r["rc"] = r["p"].stop(signal.SIGINT)
            r["trc"] = r["t"].stop(signal.SIGINT)
        yield frames, res
    finally:
        caps.cleanup()


def _describe(frames, idxs):
    return ", ".join(repr(frames[i]) for i in sorted(idxs)) or "none"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_filter(filter_run, case):
    frames, res = filter_run
    r = res[case.id]
    p = r["p"]
    assert r["ready"], "pcapd %s never became ready:\n%s" % (" ".join(case.args), p.stderr())
    assert r["rc"] == 0, "pcapd exit %s:\n%s" % (r["rc"], p.stderr())
    stats = final_stats(p)
    assert stats["stop_reason"] == "signal"

    got = tshark_read(r["out"])
    mine, foreign = by_marker(got, frames)
    ref_mine, ref_foreign = by_marker(_tcpdump_read(r["ref"]), frames)
    # Traffic we did not send: the namespaces are kept quiet (netns.py), the
    # unfiltered case proves it, and elsewhere any foreign frame pcapd kept
    # must be one tcpdump saw too (so none is made up or mangled by pcapd).
    if case.id == "none":
        assert not foreign and not ref_foreign, "link not quiet: %d/%d foreign frames" % (
            len(foreign), len(ref_foreign))
    ref_raw = {x["raw"] for x in ref_foreign}
    assert all(x["raw"] in ref_raw for x in foreign), "pcapd has foreign frames tcpdump did not see"

    want = {fr.idx for fr in frames if case.want_pcapd(fr)}
    want_ref = {fr.idx for fr in frames if case.want_tcpdump(fr)}
    assert want, "the case selects no frame: the traffic does not exercise it"
    assert want != {fr.idx for fr in frames} or case.id == "none", "the case selects every frame"

    # The reference first: tcpdump must agree with the model's pcap-filter
    # reading, or the model (not pcapd) is wrong.
    assert r["trc"] == 0, "tcpdump failed: %s" % r["t"].stderr()
    assert set(ref_mine) == want_ref, "tcpdump (%s) captured [%s]\nexpected [%s]" % (
        case.expr, _describe(frames, ref_mine), _describe(frames, want_ref))
    assert set(mine) == want, "pcapd captured [%s]\nexpected [%s]" % (
        _describe(frames, mine), _describe(frames, want))
    for idx, pkts in mine.items():
        fr = frames[idx]
        assert len(pkts) == 1, "%r captured %d times" % (fr, len(pkts))
        assert pkts[0]["raw"] == fr.wire, "%r bytes differ:\n got  %s\n sent %s" % (
            fr, pkts[0]["raw"].hex(), fr.wire.hex())
        assert pkts[0]["len"] == len(fr.wire) == pkts[0]["caplen"]
    assert stats["packets"] == len(got), "JSON packets %d, file has %d" % (stats["packets"], len(got))
    assert stats["bytes"] == sum(x["caplen"] for x in got), "JSON bytes vs the file's caplen sum"

    # Where the two readings differ it is only for IPv6 extension headers.
    for idx in want ^ want_ref:
        assert frames[idx].v6ext, "%r: pcapd and tcpdump semantics should agree" % frames[idx]


# --- limits, output forms, interfaces -----------------------------------------

def _capture(caps, net, tmp_path, args, frames, name="out.pcap", ns=None, iface=None, sig=signal.SIGINT,
             gap_us=0, wait_exit=False):
    """Runs pcapd while frames are sent; stops it with sig once its file holds
    as many records as frames were sent (or at the bound: the test then says
    what is missing), or, with wait_exit, waits for it to stop by itself.
    Returns (proc, rc, path)."""
    out = str(tmp_path / name)
    p = caps.start_pcapd(ns or net.ns_b, iface or net.if_b, out, args)
    traffic.send(net, frames, gap_us=gap_us)
    if wait_exit:
        rc = p.wait(WAIT)
    else:
        _settle_on(out, len(frames))
        rc = p.stop(sig)
    return p, rc, out


def _settle_on(path, n):
    """Waits until the capture file at path holds n records; past the bound
    it returns anyway, so that the test's own checks say what is missing."""
    try:
        wait_records(path, n)
    except AssertionError:
        pass


def _check_exact(pkts, frames):
    mine, foreign = by_marker(pkts, frames)
    assert not foreign, "%d frames this test did not send" % len(foreign)
    assert sorted(mine) == sorted(fr.idx for fr in frames), "captured %d of %d frames" % (len(mine), len(frames))
    for fr in frames:
        assert len(mine[fr.idx]) == 1, "%r captured %d times" % (fr, len(mine[fr.idx]))
        assert mine[fr.idx][0]["raw"] == fr.wire, "%r bytes differ" % fr


def test_packets_limit(caps, net, tmp_path):
    frames = traffic.filler(net, 20)
    p, rc, out = _capture(caps, net, tmp_path, ["--packets", "5"], frames, gap_us=2000, wait_exit=True)
    assert rc == 0, p.stderr()
    stats = final_stats(p)
    assert stats["stop_reason"] == "packets"
    pkts = tshark_read(out)
    assert len(pkts) == 5 == stats["packets"]
    _check_exact(pkts, frames[:5])  # the first five, in order
    assert [fr.marker in x["raw"] for fr, x in zip(frames, pkts)] == [True] * 5


def test_bytes_limit(caps, net, tmp_path):
    frames = traffic.filler(net, 20, size=200)
    assert all(len(fr.wire) == 200 for fr in frames)
    p, rc, out = _capture(caps, net, tmp_path, ["--bytes", "1100"], frames, gap_us=2000, wait_exit=True)
    assert rc == 0, p.stderr()
    stats = final_stats(p)
    assert stats["stop_reason"] == "bytes"
    pkts = tshark_read(out)
    # 5 x 200 = 1000 fit; a sixth would pass 1100 and must not be written.
    assert sum(x["caplen"] for x in pkts) == 1000 == stats["bytes"]
    _check_exact(pkts, frames[:5])


def test_seconds_limit(caps, net, tmp_path):
    out = str(tmp_path / "out.pcap")
    t0 = time.monotonic()
    p = caps.start_pcapd(net.ns_b, net.if_b, out, ["--seconds", "1"])
    rc = p.wait(WAIT)
    took = time.monotonic() - t0
    assert rc == 0, p.stderr()
    assert final_stats(p)["stop_reason"] == "seconds"
    # Never early; how late depends on the machine, so only the bound above.
    assert took >= 0.95, "ran %.2fs for --seconds 1" % took
    assert tshark_read(out) == []


def test_snaplen(caps, net, tmp_path):
    frames = traffic.filler(net, 5, size=300)
    p, rc, out = _capture(caps, net, tmp_path, ["--snaplen", "64"], frames)
    assert rc == 0, p.stderr()
    pkts = tshark_read(out)
    assert len(pkts) == 5
    for fr, x in zip(frames, pkts):
        assert (x["caplen"], x["len"]) == (64, 300)
        assert x["raw"] == fr.wire[:64]
    assert final_stats(p)["bytes"] == 5 * 64


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly(caps, net, tmp_path, sig):
    frames = traffic.catalog(net)
    p, rc, out = _capture(caps, net, tmp_path, [], frames, sig=sig)
    assert rc == 0, p.stderr()
    stats = final_stats(p)
    assert stats["stop_reason"] == "signal"
    assert stats["kernel_drops"] == 0
    pkts = tshark_read(out)
    _check_exact(pkts, frames)
    assert stats["packets"] == len(pkts)


def test_sigkill_leaves_a_readable_file(caps, net, tmp_path):
    """No clean-up runs on SIGKILL: what the file held before it stays there,
    whole, header included, and readable (the output is on a disk file
    system, so this covers direct mode)."""
    frames = traffic.catalog(net)
    out = str(tmp_path / "out.pcap")
    p = caps.start_pcapd(net.ns_b, net.if_b, out, [])
    traffic.send(net, frames)
    _settle_on(out, len(frames))
    p.kill()
    pkts = tshark_read(out)  # fails on a cut or headerless file
    _check_exact(pkts, frames)


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_file_exact_and_preallocation_given_back(caps, net, tmp_path, where):
    """Enough traffic to cross several of the writer's jobs and its
    preallocation step: every frame once, byte for byte, the file exactly the
    size of its records, and no block kept past its end. On tmpfs (/dev/shm)
    the writer neither preallocates nor asks for O_DIRECT."""
    if where == "tmpfs":
        if not os.path.isdir("/dev/shm"):
            pytest.skip("no /dev/shm")
        d = tempfile.mkdtemp(dir="/dev/shm", prefix="pcapd-test-")
    else:
        d = str(tmp_path)
    try:
        frames = traffic.filler(net, 6000, size=1400)
        out = os.path.join(d, "big.pcap")
        p = caps.start_pcapd(net.ns_b, net.if_b, out, [])
        traffic.send(net, frames)
        _settle_on(out, len(frames))
        assert p.stop(signal.SIGINT) == 0, p.stderr()
        assert final_stats(p)["packets"] == len(frames)
        st = os.stat(out)
        assert st.st_size == 24 + sum(16 + len(fr.wire) for fr in frames)
        assert st.st_blocks * 512 <= st.st_size + 8192, "%d bytes allocated for %d" % (st.st_blocks * 512,
                                                                                        st.st_size)
        _check_exact(tshark_read(out), frames)
    finally:
        if where == "tmpfs":
            shutil.rmtree(d, ignore_errors=True)


def test_outgoing_frames_captured(caps, net, tmp_path):
    """The sender's own interface: outgoing frames, tags written inline."""
    frames = traffic.catalog(net)
    p, rc, out = _capture(caps, net, tmp_path, [], frames, ns=net.ns_a, iface=net.if_a)
    assert rc == 0, p.stderr()
    _check_exact(tshark_read(out), frames)


def test_stdout_piped_to_tshark(caps, net, tmp_path):
    frames = traffic.catalog(net)
    ts = subprocess.Popen(["tshark", "-n", "-r", "-", "-T", "fields", "-e", "frame.len"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # Ends by itself after the last frame: nothing to wait for but its exit.
        p = caps.start_pcapd(net.ns_b, net.if_b, "-", ["--packets", str(len(frames))], stdout=ts.stdin)
        ts.stdin.close()  # pcapd holds the only write end now
        ts.stdin = None
        traffic.send(net, frames)
        assert p.wait(WAIT) == 0, p.stderr()
        lens, _ = ts.communicate(timeout=WAIT)
    finally:
        if ts.poll() is None:
            ts.kill()
    assert ts.returncode == 0
    assert sorted(int(x) for x in lens.split()) == sorted(len(fr.wire) for fr in frames)
    assert final_stats(p)["packets"] == len(frames)


def test_stdout_to_file(caps, net, tmp_path):
    frames = traffic.catalog(net)
    path = tmp_path / "stdout.pcap"
    with open(path, "wb") as f:
        p = caps.start_pcapd(net.ns_b, net.if_b, "-", [], stdout=f)
        traffic.send(net, frames)
        _settle_on(str(path), len(frames))
        assert p.stop() == 0, p.stderr()
    _check_exact(tshark_read(str(path)), frames)
    # stdout carries the pcap only: the readiness line and the JSON go to stderr.
    assert not any(l.startswith("{") for l in p.lines[:-1])


def test_pcapng(caps, net, tmp_path):
    frames = traffic.catalog(net)
    p, rc, out = _capture(caps, net, tmp_path, ["--format", "pcapng"], frames, name="out.pcapng")
    assert rc == 0, p.stderr()
    with open(out, "rb") as f:
        assert f.read(4) == b"\x0a\x0d\x0d\x0a", "not a pcapng section header"
    _check_exact(tshark_read(out), frames)


def test_nanosecond_timestamps(caps, net, tmp_path):
    frames = traffic.filler(net, 20)
    t0 = time.time()
    p, rc, out = _capture(caps, net, tmp_path, ["--time-stamp-precision", "nano"], frames, gap_us=500)
    t1 = time.time()
    assert rc == 0, p.stderr()
    with open(out, "rb") as f:
        magic = f.read(4)
    assert magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"), "not a nanosecond pcap: %s" % magic.hex()
    pkts = tshark_read(out)
    _check_exact(pkts, frames)
    ns = [int(x["ts"].replace(".", "")) for x in pkts]
    assert all(t0 * 1e9 - 1e9 <= v <= t1 * 1e9 + 1e9 for v in ns), "timestamps outside the run"
    assert ns == sorted(ns)
    # Microsecond stamps padded to ns would end in 000 every time.
    assert any(v % 1000 for v in ns), "no sub-microsecond digit in 20 timestamps"


def test_two_interfaces(caps, net, tmp_path):
    """The receiver's veth and loopback in one capture; pcapng tells them apart."""
    frames = traffic.filler(net, 6)
    out = str(tmp_path / "two.pcapng")
    p = caps.start_pcapd(net.ns_b, net.if_b + ",lo", out, ["--format", "pcapng"])
    traffic.send(net, frames)
    run(ns_cmd(net.ns_b, ["ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", "127.0.0.1"]))
    _settle_on(out, len(frames) + 4)
    assert p.stop() == 0, p.stderr()
    pkts = tshark_read(out)
    mine, foreign = by_marker(pkts, frames)
    assert sorted(mine) == [fr.idx for fr in frames]
    ifs_veth = {x["iface"] for v in mine.values() for x in v}
    ifs_lo = {x["iface"] for x in foreign}
    assert len(foreign) == 4, "expected 2 echo requests + 2 replies on lo, got %d" % len(foreign)
    assert len(ifs_veth) == 1 and len(ifs_lo) == 1 and ifs_veth != ifs_lo, (ifs_veth, ifs_lo)


def test_loopback_each_packet_once(caps, net, tmp_path):
    out, ref = str(tmp_path / "lo.pcap"), str(tmp_path / "lo.tcpdump.pcap")
    p = caps.start_pcapd(net.ns_b, "lo", out, ["--proto", "icmp"])
    t = caps.start_tcpdump(net.ns_b, "lo", ref, "icmp")
    run(ns_cmd(net.ns_b, ["ping", "-q", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1"]))
    _settle_on(out, 6)
    _settle_on(ref, 6)
    assert p.stop() == 0, p.stderr()
    assert t.stop() == 0
    got, want = tshark_read(out), _tcpdump_read(ref)
    assert len(want) == 6, "tcpdump saw %d ICMP packets on lo" % len(want)
    assert [x["raw"] for x in got] == [x["raw"] for x in want]


def test_workers_each_packet_once(caps, net, tmp_path):
    frames = []
    for port in range(20):  # 20 flows, so fanout spreads them over both workers
        frames += traffic.filler(net, 10, dport=1000 + port, first=2000 + 10 * port)
    p, rc, out = _capture(caps, net, tmp_path, ["--workers", "2"], frames, gap_us=100)
    assert rc == 0, p.stderr()
    pkts = tshark_read(out)
    _check_exact(pkts, frames)
    assert final_stats(p)["packets"] == len(frames)


# --- bad input ----------------------------------------------------------------

BAD = [
    ("unknown-iface", {"iface": "nosuch0"}, [], ["nosuch0"]),
    ("dport-70000", {}, ["--dport", "70000"], ["dport", "70000", "65535"]),
    ("bad-address", {}, ["--src", "192.0.2.300"], ["src", "192.0.2.300"]),
    ("bad-bpf", {}, ["--bpf", "tcp and and"], ["bpf"]),
    ("unwritable", {"out": "/nonexistent-dir/x.pcap"}, [], ["/nonexistent-dir/x.pcap"]),
]


@pytest.mark.parametrize("name,where,args,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(caps, net, tmp_path, name, where, args, words):
    out = where.get("out", str(tmp_path / "x.pcap"))
    p = caps.start_pcapd(net.ns_b, where.get("iface", net.if_b), out, args, ready=False)
    rc = p.wait(WAIT)
    lines = [l for l in p.lines if l.strip()]
    assert rc != 0, "exit 0 for bad input; stderr:\n%s" % p.stderr()
    assert len(lines) == 1, "want one error line, got:\n%s" % p.stderr()
    for w in words:
        assert w.lower() in lines[0].lower(), "error line %r does not name %r" % (lines[0], w)
    assert not os.path.exists(out), "output file left behind"
    assert os.listdir(tmp_path) == [], "stray files: %s" % os.listdir(tmp_path)


def test_without_cap_net_raw(pcapd, net, request):
    # A directory nobody may write to, so the failure must come from the socket.
    d = tempfile.mkdtemp(prefix="pcapd-it-")
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    os.chmod(d, 0o777)
    out = os.path.join(d, "x.pcap")
    p = Proc(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              pcapd, "capture", "-i", net.if_b, "-w", out], ns=net.ns_b)
    try:
        rc = p.wait(WAIT)
    finally:
        p.kill()
    lines = [l for l in p.lines if l.strip()]
    assert rc != 0
    assert len(lines) == 1, p.stderr()
    assert any(w in lines[0].lower() for w in ("cap_net_raw", "permission", "not permitted")), lines[0]
    assert not os.path.exists(out)
