# SPDX-License-Identifier: MIT
"""Live streams (GET …/pcaps/{id}/stream, `pcapctl stream`): a controller and
two agents in namespaces, real traffic. tshark reads the stream while the
capture runs: the packets of both agents arrive before the capture ends, in
time order, each on its agent's interface; the stream ends cleanly with the
capture and equals the downloaded file. A reader that leaves, busy or idle,
changes nothing for the capture; errors are the API's, and the streams'
memory is bounded."""
import os
import subprocess
import threading

import pytest
from stack import Stack, binary, send, udp_frames
from waits import WAIT, until

from test_api import assert_error, assert_ok, create, full_body, link_of, tshark, wait_parts

AGENT1, AGENT2, COLO = "agt1", "agt2", "lab"


@pytest.fixture(scope="module")
def stk(request):
    if os.geteuid() != 0:
        pytest.fail("the stream tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False)
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(AGENT1, COLO)
    s.add_agent(AGENT2, COLO)
    return s


@pytest.fixture
def acct(stk):
    return stk.account(bucket=True)


def logs(stk):
    """The stream lines of the controller's and agents' logs (for failures)."""
    out = []
    for name, proc in [("controller", stk.controller.proc)] + [(a.name, a.proc) for a in stk.agents]:
        out += ["%s: %s" % (name, l) for l in (proc.lines if proc else []) if "stream" in l]
    return "\n".join(out[-40:])


class Reader:
    """`curl URL | tshark -l -r -` (or pcapctl instead of curl), its lines
    gathered by a thread as they come."""

    def __init__(self, stk, acct, pcap_id, tool="curl", fmt=None):
        self.stk = stk
        self.dump = os.path.join(stk.dir, "stream-%s.headers" % pcap_id)
        self.raw = os.path.join(stk.dir, "stream-%s.pcapng" % pcap_id)
        if tool == "curl":
            cmd = ["curl", "-sS", "-N", "--max-time", "600", "-D", self.dump,
                   "-H", "Authorization: Bearer " + acct.read,
                   stk.http_url + acct.path("/%s/stream%s" % (pcap_id, "?format=" + fmt if fmt else ""))]
            env = None
        else:
            cmd = [binary("pcapctl"), "stream", pcap_id] + (["--format", fmt] if fmt else [])
            env = dict(os.environ, PCAPD_URL=stk.http_url + "/client/v4", PCAPD_TOKEN=acct.read,
                       PCAPD_ACCOUNT=acct.id)
        self.src = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        # tee: the raw bytes to a file as well, for the comparison with the download
        self.tee = subprocess.Popen(["tee", self.raw], stdin=self.src.stdout, stdout=subprocess.PIPE)
        self.src.stdout.close()
        self.tshark = subprocess.Popen(
            ["tshark", "-l", "-n", "-r", "-", "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.interface_name"],
            stdin=self.tee.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.tee.stdout.close()
        self.lines = []
        self.t = threading.Thread(target=self._read)
        self.t.start()

    def _read(self):
        for line in self.tshark.stdout:
            line = line.decode().strip()
            if line:
                self.lines.append(line.split("\t"))

    def wait_packets(self, n):
        until(lambda: len(self.lines) >= n, lambda: "stream: %d of %d packets read; logs:\n%s" % (
            len(self.lines), n, logs(self.stk)))

    def wait_end(self):
        src_rc = self.src.wait(timeout=WAIT)
        self.tee.wait(timeout=WAIT)
        ts_rc = self.tshark.wait(timeout=WAIT)
        self.t.join(timeout=WAIT)
        return src_rc, self.src.stderr.read().decode(), ts_rc, self.tshark.stderr.read().decode()

    def feed(self, acct, pcap_id, sends, total):
        """sends: [(link, frames)] sent in turn; then, once all `total`
        packets were read, the capture is stopped and the stream's end
        awaited: every process must exit 0."""
        try:
            for link, frames in sends:
                send(link, frames)
            self.wait_packets(total)
            assert 200 <= acct.call("PUT", "/%s/stop" % pcap_id).status < 300
            src_rc, src_err, ts_rc, ts_err = self.wait_end()
        finally:
            self.kill()
        assert src_rc == 0, src_err
        assert ts_rc == 0, ts_err
        assert len(self.lines) == total, self.lines

    def kill(self):
        for p in (self.src, self.tee, self.tshark):
            if p.poll() is None:
                p.kill()
            p.wait()
        self.t.join(timeout=WAIT)


def start_capture(stk, acct, dport, n1, n2):
    """A full capture of UDP to dport on both agents, running: the links, n1
    and n2 frames to send from each, and the capture."""
    l1, l2 = link_of(stk, AGENT1), link_of(stk, AGENT2)
    f1, f2 = udp_frames(l1, n1, dport=dport), udp_frames(l2, n2, dport=dport)
    c = create(acct, full_body(acct, where=COLO, time_limit=300, filter_v1={"destination_port": dport}))
    wait_parts(stk, acct, c["id"], n=2)
    return l1, l2, f1, f2, c


@pytest.mark.parametrize("tool,fmt,dport", [("curl", None, 5201), ("pcapctl", None, 5202), ("curl", "pcap", 5204)])
def test_live_stream_two_agents(stk, acct, tool, fmt, dport):
    """pcapng by default; ?format=pcap: classic pcap (ns), one link type,
    the same packets."""
    l1, l2, f1, f2, c = start_capture(stk, acct, dport, 10, 12)
    rd = Reader(stk, acct, c["id"], tool, fmt)
    try:
        # Interleaved in time: the stream must merge the two agents.
        send(l1, f1[:5])
        send(l2, f2[:6])
        rd.wait_packets(11)
        # Read live: the capture is still running.
        assert assert_ok(acct.call("GET", "/" + c["id"], token=acct.read))["status"] == "running"
    except BaseException:
        rd.kill()
        raise
    rd.feed(acct, c["id"], [(l1, f1[5:]), (l2, f2[6:])], 22)
    ts = [float(line[0]) for line in rd.lines]
    assert ts == sorted(ts), "stream not in time order"
    if fmt == "pcap":
        with open(rd.raw, "rb") as f:
            assert f.read(4) == bytes.fromhex("4d3cb2a1"), "not a nanosecond pcap"
    else:
        names = [line[1] for line in rd.lines]
        assert names.count(AGENT1) == 10 and names.count(AGENT2) == 12, names
        # Each agent's interface is described as the download's are: colo, filter.
        desc = subprocess.run(["tshark", "-n", "-r", rd.raw, "-T", "fields", "-e", "frame.interface_description"],
                              capture_output=True, timeout=WAIT, check=True).stdout.decode().splitlines()
        assert len(desc) == 22 and all("colo %s" % COLO in d and str(dport) in d for d in desc), desc[:2]
    if tool == "curl":
        with open(rd.dump) as f:
            headers = f.read().lower()
        ctype = "application/vnd.tcpdump.pcap" if fmt == "pcap" else "application/x-pcapng"
        assert "content-type: " + ctype in headers, headers
        assert "pcapd-stream-end: complete" in headers, headers
    # The stream's packets are the downloaded file's.
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    r = acct.call("GET", "/%s/download" % c["id"], token=acct.read)
    assert r.status == 200, r
    out = os.path.join(stk.dir, "download-%s.pcap" % c["id"])
    with open(out, "wb") as f:
        f.write(r.body)
    assert [(round(t, 6), cl, ln) for t, cl, ln in tshark(out)] == \
        [(round(t, 6), cl, ln) for t, cl, ln in tshark(rd.raw)]


def test_reader_leaves(stk, acct):
    """A reader that goes away mid-capture: the capture goes on, the bucket
    objects are complete, and the next reader gets a stream again."""
    l1, l2, f1, f2, c = start_capture(stk, acct, 5203, 20, 20)
    rd = Reader(stk, acct, c["id"])
    try:
        send(l1, f1[:5])
        send(l2, f2[:5])
        rd.wait_packets(10)
    finally:
        rd.kill()
    # The controller notices (a keep-alive fails) and tells both agents.
    for a in stk.agents:
        until(lambda: any(c["id"] in l and "the reader left" in l for l in a.proc.lines),
              lambda: "agent %s not told; logs:\n%s" % (a.name, logs(stk)))
    send(l1, f1[5:15])
    send(l2, f2[5:15])
    rd2 = Reader(stk, acct, c["id"])
    # A new reader starts from the first packet.
    rd2.feed(acct, c["id"], [(l1, f1[15:]), (l2, f2[15:])], 40)
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 40, done


def test_stream_errors(stk, acct):
    c = create(acct, full_body(acct, where=AGENT1, time_limit=1))
    done = stk.wait_status(acct, c["id"])
    assert done["status"] in ("success", "failed"), done
    msg = assert_error(acct.call("GET", "/%s/stream" % c["id"], token=acct.read), 409, 1008, "pcap_id")
    assert "download" in msg, msg
    assert_error(acct.call("GET", "/%s/stream" % ("0" * 32), token=acct.read), 404, 1003, "pcap_id")
    assert_error(acct.call("GET", "/%s/stream?format=pcapnx" % c["id"], token=acct.read), 400, 1002, "format")
    other = stk.account()
    assert_error(stk.request("GET", acct.path("/%s/stream" % c["id"]), token=other.read), 403, 10000)
    assert_error(stk.request("GET", acct.path("/%s/stream" % c["id"])), 401, 10000)
    r = acct.call("POST", "/%s/stream" % c["id"])
    assert_error(r, 405, 7001)
    assert r.header("allow") == "GET"
    p = subprocess.run([binary("pcapctl"), "stream", c["id"]], capture_output=True, timeout=WAIT,
                       env=dict(os.environ, PCAPD_URL=stk.http_url + "/client/v4", PCAPD_TOKEN=acct.read,
                                PCAPD_ACCOUNT=acct.id))
    assert p.returncode == 1 and b"download" in p.stderr, p


def test_download_pcapng_annotated(stk, acct):
    """?format=pcapng (and pcapctl download --format pcapng): the merge with
    one interface per agent, described, and the agents' counters."""
    l1, l2, f1, f2, c = start_capture(stk, acct, 5204, 7, 9)
    send(l1, f1)
    send(l2, f2)
    stk.wait_captured(acct, c["id"], 16)
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    assert stk.wait_status(acct, c["id"])["status"] == "success"
    assert_error(acct.call("GET", "/%s/download?format=pcapnx" % c["id"], token=acct.read), 400, 1002, "format")
    r = acct.call("GET", "/%s/download?format=pcapng" % c["id"], token=acct.read)
    assert r.status == 200 and r.header("content-type") == "application/x-pcapng", r
    out = os.path.join(stk.dir, "annotated-%s.pcapng" % c["id"])
    with open(out, "wb") as f:
        f.write(r.body)
    rows = subprocess.run(["tshark", "-n", "-r", out, "-T", "fields", "-e", "frame.time_epoch",
                           "-e", "frame.interface_name", "-e", "frame.interface_description"],
                          capture_output=True, timeout=WAIT, check=True).stdout.decode().splitlines()
    rows = [l.split("\t") for l in rows if l.strip()]
    assert len(rows) == 16
    assert sorted(set(n for _, n, _ in rows)) == [AGENT1, AGENT2]
    assert [n for _, n, _ in rows].count(AGENT1) == 7
    assert all("colo %s" % COLO in d and "5204" in d for _, _, d in rows), rows[0]
    ts = [float(t) for t, _, _ in rows]
    assert ts == sorted(ts)
    info = subprocess.run(["capinfos", out], capture_output=True, timeout=WAIT, check=True).stdout.decode()
    assert "Number of interfaces in file: 2" in info, info
    # The same bytes through pcapctl.
    mine = os.path.join(stk.dir, "annotated-pcapctl-%s.pcapng" % c["id"])
    p = subprocess.run([binary("pcapctl"), "download", c["id"], "-o", mine, "--format", "pcapng"],
                       capture_output=True, timeout=WAIT,
                       env=dict(os.environ, PCAPD_URL=stk.http_url + "/client/v4", PCAPD_TOKEN=acct.read,
                                PCAPD_ACCOUNT=acct.id))
    assert p.returncode == 0, p.stderr
    with open(mine, "rb") as f:
        assert f.read() == r.body


def live_streams(stk, acct, name="pcapd_live_streams"):
    """pcapd_live_streams (or another gauge) of the account's /metrics."""
    import urllib.request
    q = urllib.request.Request(stk.http_url + "/metrics", headers={"Authorization": "Bearer " + acct.read})
    with urllib.request.urlopen(q, timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise AssertionError("no %s in /metrics" % name)


def test_slow_reader_is_cut(stk, acct):
    """A reader that reads nothing while one agent captures tens of MB: once
    the agent's queue stayed full for 10 s the controller cuts it (the agents
    are told to stop streaming; the merge ends though the reader still holds
    it) and the capture goes on; the reader then gets what was merged and the
    reason."""
    import socket
    from traffic import Steady
    l1 = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, where=COLO, time_limit=300, filter_v1={"destination_port": 5205}))
    wait_parts(stk, acct, c["id"], n=2)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", stk.controller.http_port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % (acct.path("/%s/stream" % c["id"]), acct.read)).encode())
    agent = [a for a in stk.agents if a.name == AGENT1][0]
    frames = udp_frames(l1, 50, dport=5205, size=1400)
    try:
        with Steady(l1, frames=frames, gap_us=0):
            until(lambda: any("too slow" in l for l in agent.proc.lines),
                  lambda: "no cut; logs:\n%s" % logs(stk), timeout=WAIT * 2)
            # The cut ends the merge at once, though the reader still reads nothing.
            until(lambda: live_streams(stk, acct) == 0, lambda: "the stream still merges after the cut",
                  timeout=WAIT)
            # The capture goes on after the cut.
            n = assert_ok(acct.call("GET", "/" + c["id"], token=acct.read))["packets_captured"]
            stk.wait_captured(acct, c["id"], n + 1000)
        assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
        s.settimeout(WAIT)
        data = b""
        while b"\r\n0\r\n" not in data[-4096:] or not data.endswith(b"\r\n\r\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, _ = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"Pcapd-Stream-End: cut: the reader is too slow" in data[-2048:], data[-2048:]
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done


def test_idle_reader_leaves(stk, acct):
    """A reader of a classic pcap stream (no keep-alive records) that leaves
    while no packet flows: its connection is parked, so only the controller's
    check of the socket each second sees it go. The stream ends, its slot and
    memory are freed, and the agents are told, long before the capture ends."""
    import socket
    c = create(acct, full_body(acct, where=COLO, time_limit=300, filter_v1={"destination_port": 5207}))
    wait_parts(stk, acct, c["id"], n=2)
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", stk.controller.http_port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (acct.path("/%s/stream?format=pcap" % c["id"]), acct.read)).encode())
        s.settimeout(WAIT)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data
        assert live_streams(stk, acct) == 1
        # Two agents, no packet: the 1 MiB each reserves, nothing more.
        assert live_streams(stk, acct, "pcapd_live_stream_bytes") == 2 << 20
    finally:
        s.close()
    until(lambda: live_streams(stk, acct) == 0, lambda: "the stream of a reader gone is still open; logs:\n%s"
          % logs(stk))
    assert live_streams(stk, acct, "pcapd_live_stream_bytes") == 0
    for a in stk.agents:
        until(lambda: any(c["id"] in l and "the reader left" in l for l in a.proc.lines),
              lambda: "agent %s not told; logs:\n%s" % (a.name, logs(stk)))
    # The capture goes on.
    l1 = link_of(stk, AGENT1)
    send(l1, udp_frames(l1, 3, dport=5207))
    stk.wait_captured(acct, c["id"], 3)
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done


def test_agent_lost_mid_stream():
    """An agent killed while it streams: its part is lost, its input ends (10 s
    after its last chunk) and the stream ends cleanly with the other agent's
    packets and a note saying so."""
    if os.geteuid() != 0:
        pytest.fail("the stream tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False, controller_args=["--agent-timeout", "2", "--grace", "1", "--stream-memory", "2"])
    try:
        s.start()
        s.add_agent(AGENT1, COLO)
        s.add_agent(AGENT2, COLO)
        acct = s.account(bucket=True)
        l1, l2, f1, f2, c = start_capture(s, acct, 5206, 6, 4)
        rd = Reader(s, acct, c["id"])
        try:
            send(l1, f1[:3])
            send(l2, f2)
            rd.wait_packets(7)
            # --stream-memory 2: a stream reserves 1 MiB per agent, so this one holds it all.
            msg = assert_error(acct.call("GET", "/%s/stream" % c["id"], token=acct.read), 429, 1004)
            assert "live streams hold 2 MiB of the 2 MiB" in msg, msg
            [a for a in s.agents if a.name == AGENT2][0].kill()
            send(l1, f1[3:])
            rd.wait_packets(10)
            wait_parts(s, acct, c["id"], state="lost", n=1)
            assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
            src_rc, src_err, ts_rc, ts_err = rd.wait_end()
        finally:
            rd.kill()
        assert src_rc == 0 and ts_rc == 0, (src_err, ts_err)
        assert len(rd.lines) == 10
        with open(rd.dump) as f:
            headers = f.read()
        assert "Pcapd-Stream-End: complete; agent %s sent no end (its part is lost)" % AGENT2 in headers, headers
        # The ended stream gave its memory back: a new one opens.
        l1 = link_of(s, AGENT1)
        c = create(acct, full_body(acct, where=AGENT1, time_limit=300, filter_v1={"destination_port": 5208}))
        wait_parts(s, acct, c["id"], n=1)
        rd = Reader(s, acct, c["id"])
        rd.feed(acct, c["id"], [(l1, udp_frames(l1, 3, dport=5208))], 3)
    finally:
        s.agents = [a for a in s.agents if a.alive()]
        s.close()
