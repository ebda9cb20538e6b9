# SPDX-License-Identifier: MIT
"""Sample captures (type "simple") end to end: real agents record every packet
(--sample-rate 1, so counts are exact) of known traffic sent into their veth
links from namespaces; the API fans a query out to every online agent, merges
the answers and serves one pcap.

The reference for every check is the unfiltered sample of the same traffic
(all agents, the whole window): each filtered or limited answer must equal what
tcpdump selects from it with the equivalent expression, record for record
(compared by the frames' unique markers). Window edges are checked on the
recorded timestamps themselves: a packet exactly on either end is in.
"""

import os
import subprocess
import time

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, rdpcap

import traffic
from stack import Stack, send
from waits import WAIT, until

REC1, REC2, OFF = "smp-a1", "smp-a2", "smp-off"
WINDOW = 120  # seconds before the end of the traffic: every default window covers it
_sent_end = []  # when the traffic ended (time.time()), set by the `sent` fixture


@pytest.fixture(scope="module")
def stk(request):
    """Two recording agents in different colos (a sample asks every agent) and
    one with its recorder off, which must be listed as not answering."""
    if os.geteuid() != 0:
        pytest.fail("the sample tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False, controller_args=["--grace", "3", "--agent-timeout", "10", "--sample-interval", "0"])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(REC1, "s1", extra_args=["--sample-rate", "1"])
    s.add_agent(REC2, "s2", extra_args=["--sample-rate", "1"])
    s.add_agent(OFF, "s3", extra_args=["--sample-rate", "0"])
    return s


def frames_for(link, base):
    """A mix of families, protocols, addresses and ports, each frame marked."""
    e = Ether(src=link.mac_a, dst=traffic.NOBODY_MAC)
    a4, b4 = "192.0.2.1", "192.0.2.2"
    a6, b6 = "2001:db8::1", "2001:db8::2"
    spec = [
        (e / IP(src=a4, dst=b4) / TCP(sport=40000, dport=80, flags="S"), 4, a4, b4, 6, (40000, 80)),
        (e / IP(src=a4, dst=b4) / TCP(sport=40001, dport=443, flags="S"), 4, a4, b4, 6, (40001, 443)),
        (e / IP(src=a4, dst=b4) / UDP(sport=5353, dport=53), 4, a4, b4, 17, (5353, 53)),
        (e / IP(src="192.0.2.3", dst=b4) / UDP(sport=53, dport=5000), 4, "192.0.2.3", b4, 17, (53, 5000)),
        (e / IP(src=a4, dst=b4) / ICMP(type=8, id=7, seq=1), 4, a4, b4, 1, None),
        (e / IP(src="198.51.100.7", dst=b4) / TCP(sport=1234, dport=100), 4, "198.51.100.7", b4, 6, (1234, 100)),
        (e / IP(src=a4, dst=b4) / UDP(sport=100, dport=120), 4, a4, b4, 17, (100, 120)),
        (e / IPv6(src=a6, dst=b6) / TCP(sport=40000, dport=80, flags="S"), 6, a6, b6, 6, (40000, 80)),
        (e / IPv6(src=a6, dst=b6) / UDP(sport=5353, dport=53), 6, a6, b6, 17, (5353, 53)),
        (e / IPv6(src="2001:db8:1::5", dst=b6) / TCP(sport=2222, dport=443), 6, "2001:db8:1::5", b6, 6, (2222, 443)),
    ]
    return [traffic.Frame(base + i, p, fam, src, dst, l4, ports=ports) for i, (p, fam, src, dst, l4, ports) in
            enumerate(spec)]


@pytest.fixture(scope="module")
def sent(stk):
    """The traffic: the mix twice into each recording agent's link (a few ms
    apart, so the window tests have distinct timestamps), and once into the
    link of the agent that does not record. Returns once the histories hold
    all of it: an unfiltered sample shows every frame (the recorder makes a
    partial block visible about a second after its first packet)."""
    out = []
    for i, a in enumerate(stk.agents):
        fr = frames_for(a.link, 9000 + 100 * i) + frames_for(a.link, 9000 + 100 * i + 50)
        send(a.link, fr, gap_us=2000)
        if a.name != OFF:
            out += fr
    _sent_end.append(time.time())
    acct = stk.account()
    want = sorted(f.marker for f in out)
    last = []

    def complete():
        done, path = sample(stk, acct, {})
        last[:] = [done, path and len(markers(path))]
        return path and sorted(markers(path)) == want

    until(complete, lambda: "the histories never held all %d frames; last sample %r" % (len(want), last),
          interval=0.5)
    return out


@pytest.fixture
def acct(stk):
    return stk.account()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + ".%06dZ" % int((t % 1) * 1e6)


def default_window():
    """type, system, time_limit and, once the traffic was sent, an
    offset_time a second after it (or none, meaning now, if that is sooner)."""
    w = {"type": "simple", "system": "magic-transit", "time_limit": WINDOW}
    if _sent_end and time.time() > _sent_end[0] + 2:
        w["offset_time"] = rfc3339(_sent_end[0] + 1)
    return w


def sample(stk, acct, body, timeout=WAIT):
    """POST a sample, wait for its end, download it; returns (object, path).
    Without an offset_time in body the window ends a second after the
    traffic (or now, if that is sooner): however long the tests before took,
    every default window covers the traffic."""
    req = dict(default_window(), packet_limit=10000)
    req.update(body)
    r = acct.call("POST", "", req)
    assert r.status == 200, r.body
    job = r.json["result"]
    assert job["type"] == "simple" and job["status"] in ("pending", "running", "success"), job
    done = stk.wait_status(acct, job["id"], timeout=timeout)
    path = None
    if done["status"] == "success":
        d = acct.call("GET", "/%s/download" % job["id"], token=acct.read)
        assert d.status == 200, d.body
        assert d.header("content-type") == "application/vnd.tcpdump.pcap"
        path = os.path.join(stk.dir, "sample-%s.pcap" % job["id"])
        with open(path, "wb") as f:
            f.write(d.body)
    return done, path


def markers(path):
    """The markers of our frames in a pcap, in file order (others ignored)."""
    out = []
    for p in rdpcap(path):
        b = bytes(p)
        i = b.find(b"PDTM" + traffic.RUN_TAG)
        if i >= 0:
            out.append(b[i:i + 4 + len(traffic.RUN_TAG) + 4])
    return out


def timestamps(path):
    r = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.time_epoch"],
                       capture_output=True, check=True, timeout=30)
    return [l for l in r.stdout.decode().split() if l]


def tcpdump_markers(path, expr, stk):
    out = os.path.join(stk.dir, "tcpdump-%d.pcap" % time.monotonic_ns())
    subprocess.run(["tcpdump", "-n", "-r", path, "-w", out, expr], capture_output=True, check=True, timeout=30)
    return markers(out)


@pytest.fixture(scope="module")
def everything(stk, sent):
    """The unfiltered sample: the reference for the other tests."""
    acct = stk.account()
    done, path = sample(stk, acct, {})
    return done, path


def test_sample_answers_from_every_recording_agent(stk, sent, everything):
    done, path = everything
    assert done["status"] == "success", done
    got = markers(path)
    assert sorted(got) == sorted(f.marker for f in sent), (len(got), len(sent))
    assert len(got) == len(set(got)), "a packet twice"
    ts = timestamps(path)
    assert ts == sorted(ts, key=float), "not in time order"
    agents = {a["name"]: a for a in done["agents"]}
    assert set(agents) == {REC1, REC2, OFF}
    assert agents[REC1]["status"] == "done" and agents[REC2]["status"] == "done"
    # The agent without a history is listed, with its reason, not hidden.
    assert agents[OFF]["status"] in ("failed", "lost"), agents[OFF]
    assert agents[OFF]["error"], agents[OFF]


@pytest.mark.parametrize("filter_v1,expr", [
    ({"source_address": "192.0.2.3"}, "src host 192.0.2.3"),
    ({"source_address": "192.0.2.0/24"}, "src net 192.0.2.0/24"),
    ({"destination_address": "192.0.2.2", "protocol": 6}, "dst host 192.0.2.2 and tcp"),
    ({"destination_port": 53}, "dst port 53"),
    ({"destination_port": "80;443"}, "dst port 80 or dst port 443"),
    ({"source_port": "100-2000"}, "src portrange 100-2000"),
    ({"protocol": 1}, "icmp"),
    ({"protocol": "udp"}, "udp"),
    ({"source_address": "2001:db8::/32", "protocol": 6}, "src net 2001:db8::/32 and tcp"),
    ({"bpf": "tcp[13] & 2 != 0 and not ip6"}, "tcp[13] & 2 != 0 and not ip6"),
    ({"source_address": "198.51.100.7", "destination_port": 100, "protocol": 6},
     "src host 198.51.100.7 and dst port 100 and tcp"),
])
def test_filter_forms_equal_tcpdump(stk, sent, everything, acct, filter_v1, expr):
    done, path = sample(stk, acct, {"filter_v1": filter_v1})
    assert done["status"] == "success", done
    want = tcpdump_markers(everything[1], expr, stk)
    assert want, "the reference selects nothing for %r" % expr
    assert sorted(markers(path)) == sorted(want)


def test_no_matching_packet_fails(stk, sent, acct):
    """The zero-packet rule (README): a window with no matching packet is a
    failure asking to check the filter, as a full capture that saw nothing
    is; there is nothing to download."""
    r = acct.call("POST", "", dict(default_window(), packet_limit=10000, filter_v1={"destination_port": 9}))
    assert r.status == 200, r.body
    done = stk.wait_status(acct, r.json["result"]["id"])
    assert done["status"] == "failed", done
    assert done["error_message"].startswith("No packets matched the filter in the time window queried."), done
    assert done["stop_reason"] == "none", done
    agents = {a["name"]: a for a in done["agents"]}
    assert agents[REC1]["status"] == "done" and agents[REC1]["packets"] == 0, agents
    # The agent that did not answer is named in the message, not hidden.
    assert OFF in done["error_message"], done
    d = acct.call("GET", "/%s/download" % done["id"], token=acct.read)
    assert d.status == 409 and d.json["errors"][0]["code"] == 1008, d.body


def test_packet_limit_keeps_the_newest(stk, sent, everything, acct):
    done, path = sample(stk, acct, {"packet_limit": 7})
    assert done["status"] == "success", done
    assert markers(path) == markers(everything[1])[-7:]
    # It holds packet_limit packets: the limit ended it, and nothing remains.
    assert done["stop_reason"] == "packets", done
    assert done["packets_captured"] == 7, done


def test_under_the_packet_limit_stops_for_no_reason(stk, sent, everything, acct):
    done, path = sample(stk, acct, {})
    assert done["status"] == "success", done
    assert done["stop_reason"] == "none", done
    assert done["packets_captured"] == len(timestamps(path)) < 10000, done


def rfc3339_ns(ts):
    """'1795470790.123456789' (tshark) -> '2026-…T…:10.123456789Z'."""
    sec, frac = ts.split(".")
    frac = (frac + "000000000")[:9]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(sec))) + "." + frac + "Z"


def add_seconds(ts, s):
    sec, frac = ts.split(".")
    return "%d.%s" % (int(sec) + s, frac)


def test_window_edges(stk, sent, everything, acct):
    ref = everything[1]
    ts, mk = timestamps(ref), markers(ref)
    assert len(set(ts)) >= 10, "timestamps too coarse for the test"
    k = len(ts) // 2
    # Upper edge: offset_time exactly on packet k's timestamp takes k, not k+1.
    done, path = sample(stk, acct, {"offset_time": rfc3339_ns(ts[k]), "time_limit": 1})
    assert done["status"] == "success", done
    want = [m for t, m in zip(ts, mk) if float(ts[k]) - 1 <= float(t) and t <= ts[k]]
    assert mk[k] in markers(path)
    assert sorted(markers(path)) == sorted(want)
    # Lower edge: the window [t_k, t_k + 1 s] starts exactly on packet k.
    done, path = sample(stk, acct, {"offset_time": rfc3339_ns(add_seconds(ts[k], 1)), "time_limit": 1})
    assert done["status"] == "success", done
    got = markers(path)
    assert mk[k] in got
    assert all(m not in got for t, m in zip(ts, mk) if t < ts[k] and float(t) < float(ts[k]))


def test_offset_time_in_the_past_finds_nothing_newer(stk, sent, acct):
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    done, path = sample(stk, acct, {"offset_time": past, "time_limit": 300})
    assert done["status"] == "failed" and path is None, done
    assert done["error_message"].startswith("No packets matched the filter in the time window queried."), done


@pytest.mark.parametrize("when", [-25 * 3600, 3600])
def test_offset_time_outside_the_last_24h_is_refused(stk, acct, when):
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + when))
    r = acct.call("POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 10,
                               "packet_limit": 10, "offset_time": t})
    assert r.status == 400, r.body
    assert r.json["errors"][0]["code"] == 1002
    assert r.json["errors"][0]["message"].startswith("offset_time")
    assert acct.call("GET", "").json["result"] == []


def test_agents_report_their_history(stk, sent, acct):
    r = acct.call("GET", "/agents", token=acct.read)
    assert r.status == 200, r.body
    agents = {a["name"]: a for a in r.json["result"]}
    for name in (REC1, REC2):
        h = agents[name]["history"]
        assert h["recording"] is True, h
        assert h["sample_rate"] == 1
        assert h["packets"] >= 20, h
    off = agents[OFF]["history"]
    assert off["recording"] is False and off["sample_rate"] == 0, off


def test_a_report_cannot_answer_a_sample_or_name_its_file(stk, sent, acct):
    """Only an uploaded answer makes an agent's share of a sample done: a
    report saying "done" (with an object name pointing elsewhere) changes
    nothing, and the download holds only the real answers."""
    key = stk.enroll("smp-evil", "s9")

    def report(body):
        r = stk.request("POST", "/agent/v1/report", token=key, body=body)
        assert r.status == 200, r.body
        return r.json

    report({"name": "smp-evil", "colo": "s9", "hello": True})
    r = acct.call("POST", "", dict(default_window(), packet_limit=10000))
    assert r.status == 200, r.body
    sid = r.json["result"]["id"]
    report({"name": "smp-evil", "jobs": [{"id": sid, "state": "done", "packets": 5,
                                          "object": "../../../../etc/passwd"}]})
    part = {a["name"]: a for a in acct.call("GET", "/" + sid).json["result"]["agents"]}["smp-evil"]
    assert part["status"] == "assigned", part
    done = stk.wait_status(acct, sid)
    assert done["status"] == "success", done
    evil = {a["name"]: a for a in done["agents"]}["smp-evil"]
    assert evil["status"] == "lost" and "did not answer" in evil["error"], evil
    assert evil["object"] == "smp-evil.pcap", evil
    d = acct.call("GET", "/%s/download" % sid, token=acct.read)
    assert d.status == 200, d.body
    path = os.path.join(stk.dir, "evil-%s.pcap" % sid)
    with open(path, "wb") as f:
        f.write(d.body)
    assert sorted(markers(path)) == sorted(f.marker for f in sent)
