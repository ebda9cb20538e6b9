# SPDX-License-Identifier: MIT
"""Two controllers over one PostgreSQL database, as stateless replicas: agents
in namespaces are given both URLs (A first, so they poll A while it lives);
a capture created through B reaches them through A; stop, status, samples and
downloads work from either; SIGKILL of the controller the agents use during
a full capture and during a sample loses nothing and counts nothing twice;
the housekeeping lease is held by one controller at a time and taken over
when its holder dies.

PostgreSQL only (pytest --db postgres; SQLite is one controller per
database): skipped otherwise. Every wait is for a condition, never a time.
"""

import os
import subprocess
import time

import pytest

from pgserver import PSQL
from stack import Controller, Stack, send, udp_frames
from waits import WAIT, until

COLO = "rep"
LEASE_KEY = 7243502  # src/controller/fleet.c


@pytest.fixture(scope="module")
def stk(request):
    if request.config.getoption("--db") != "postgres":
        pytest.skip("several controllers need PostgreSQL (pytest --db postgres)")
    if os.geteuid() != 0:
        pytest.fail("the replica tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False, controller_args=["--grace", "3", "--agent-timeout", "10", "--sample-interval", "0"])
    s.ctl_b = Controller(s, data=os.path.join(s.dir, "ctl-b"))
    request.addfinalizer(lambda: (s.ctl_b.stop(), s.close(), s.assert_clean()))
    s.start()
    s.ctl_b.start()
    b_url = "http://127.0.0.1:%d" % s.ctl_b.http_port
    for name in ("rep1", "rep2"):
        s.add_agent(name, COLO, extra_args=["--controller", b_url, "--sample-rate", "1"])
    return s


@pytest.fixture(scope="module")
def acct(stk):
    return stk.account(bucket=True)


def on(stk, ctl, acct, method, suffix="", body=None, token=None):
    return stk.request(method, acct.path(suffix), token=token or acct.write, body=body, controller=ctl)


def ok(r):
    assert r.status == 200, r
    return r.json["result"]


def status(stk, ctl, acct, pcap_id):
    return ok(on(stk, ctl, acct, "GET", "/" + pcap_id, token=acct.read))


def parts_in(stk, ctl, acct, pcap_id, state, n):
    def check():
        obj = status(stk, ctl, acct, pcap_id)
        parts = obj.get("agents") or []
        return obj if sum(1 for p in parts if p.get("status") == state) >= n else None
    return until(check, "capture %s: %d shares %s" % (pcap_id, n, state))


def captured(stk, ctl, acct, pcap_id, n):
    return until(lambda: (lambda o: o if o.get("packets_captured", 0) >= n else None)(
        status(stk, ctl, acct, pcap_id)), "capture %s: %d packets captured" % (pcap_id, n))


def finished(stk, ctl, acct, pcap_id):
    return until(lambda: (lambda o: o if o["status"] in ("success", "failed") else None)(
        status(stk, ctl, acct, pcap_id)), "capture %s finished" % pcap_id)


def full(acct, **kw):
    b = {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": COLO,
         "destination_conf": acct.bucket}
    b.update(kw)
    return b


def psql(stk, sql):
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", stk.db_url, "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout
    return r.stdout.decode().strip()


def lease_holders(stk):
    return int(psql(stk, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                         "AND objid = %d" % LEASE_KEY))


def both_online(stk, ctl, acct):
    agents = {a["name"]: a for a in ok(on(stk, ctl, acct, "GET", "/agents", token=acct.read))}
    return all(agents.get(n, {}).get("online") for n in ("rep1", "rep2"))


def test_created_on_b_runs_on_agents_polling_a(stk, acct):
    a, b = stk.controller, stk.ctl_b
    # Both controllers know both agents (they report to A only).
    until(lambda: both_online(stk, b, acct) and both_online(stk, a, acct), "both agents online on A and B")
    c = ok(on(stk, b, acct, "POST", "", full(acct)))
    parts_in(stk, a, acct, c["id"], "running", 2)
    frames = [udp_frames(l, 3, dport=7101) for l in stk.links[:2]]
    for l, f in zip(stk.links, frames):
        send(l, f)
    captured(stk, b, acct, c["id"], 6)
    # Stop through A, the status from B, the download from both.
    assert on(stk, a, acct, "PUT", "/%s/stop" % c["id"]).status == 200
    done = finished(stk, b, acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 6, done
    bodies = [on(stk, ctl, acct, "GET", "/%s/download" % c["id"], token=acct.read) for ctl in (a, b)]
    for r in bodies:
        assert r.status == 200, r
        for f in frames[0] + frames[1]:
            assert f.marker in r.body, f
    assert bodies[0].body == bodies[1].body


def test_sample_from_either(stk, acct):
    """A sample created through B is answered by agents polling A; its
    answers are in the database, so both serve the same download. The
    recorder shows a packet about a second after it saw it: sampled again
    until every frame is there."""
    a, b = stk.controller, stk.ctl_b
    frames = []
    for l in stk.links[:2]:
        fr = udp_frames(l, 2, dport=7102, size=120)  # whole within the recorder's 160 bytes
        send(l, fr)
        frames += fr
    last = []

    def complete():
        s = ok(on(stk, b, acct, "POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 300,
                                              "packet_limit": 50}))
        done = finished(stk, a, acct, s["id"])
        got = [on(stk, ctl, acct, "GET", "/%s/download" % s["id"], token=acct.read) for ctl in (a, b)]
        last[:] = [done, got]
        return done["status"] == "success" and all(r.status == 200 for r in got) and \
            got[0].body == got[1].body and all(f.marker in got[0].body for f in frames)

    until(complete, lambda: "a sample through B with every frame, served alike by A and B; last %r" % last,
          interval=0.5)
    assert sorted(p["status"] for p in last[0]["agents"]) == ["done", "done"], last[0]


def test_one_lease_holder(stk, acct):
    until(lambda: lease_holders(stk) == 1, "one controller holds the housekeeping lease")


def test_sigkill_during_full_capture(stk, acct):
    """The agents poll A; A dies mid-capture: they move to B, the capture
    ends success with both shares, every packet counted once; B takes the
    lease."""
    a, b = stk.controller, stk.ctl_b
    c = ok(on(stk, a, acct, "POST", "", full(acct)))
    parts_in(stk, b, acct, c["id"], "running", 2)
    before = [udp_frames(l, 4, dport=7103) for l in stk.links[:2]]
    for l, f in zip(stk.links, before):
        send(l, f)
    captured(stk, b, acct, c["id"], 8)
    a.kill()
    after = [udp_frames(l, 3, dport=7103) for l in stk.links[:2]]
    for l, f in zip(stk.links, after):
        send(l, f)
    captured(stk, b, acct, c["id"], 14)
    assert on(stk, b, acct, "PUT", "/%s/stop" % c["id"]).status == 200
    done = finished(stk, b, acct, c["id"])
    assert done["status"] == "success", done
    assert done["packets_captured"] == 14, done
    assert sorted((p["name"], p["status"], p["packets"]) for p in done["agents"]) == \
        [("rep1", "done", 7), ("rep2", "done", 7)], done
    r = on(stk, b, acct, "GET", "/%s/download" % c["id"], token=acct.read)
    assert r.status == 200, r
    for f in before[0] + before[1] + after[0] + after[1]:
        assert f.marker in r.body, f
    until(lambda: lease_holders(stk) == 1, "B holds the lease")
    a.start()  # on the same port, for the tests after this one


def test_sigkill_during_sample(stk, acct):
    """The agents now poll B (A died before); B dies right after a sample
    is created through A: every agent's answer still arrives, through A."""
    a, b = stk.controller, stk.ctl_b
    until(lambda: both_online(stk, a, acct), "A knows both agents again")
    s = ok(on(stk, a, acct, "POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 300,
                                          "packet_limit": 50}))
    b.kill()
    done = finished(stk, a, acct, s["id"])
    assert done["status"] == "success", done
    assert sorted(p["status"] for p in done["agents"]) == ["done", "done"], done
    assert on(stk, a, acct, "GET", "/%s/download" % s["id"], token=acct.read).status == 200
    b.start()


def test_lost_agent_marked_once(stk, acct):
    """An agent that dies is marked lost by the lease holder, once: its share
    fails with one reason, the capture ends."""
    a = stk.controller
    extra = ["--controller", "http://127.0.0.1:%d" % stk.ctl_b.http_port]
    gone = stk.add_agent("rep3", "rep-lost", extra_args=extra)
    c = ok(on(stk, a, acct, "POST", "", full(acct, colo_name="rep-lost")))
    parts_in(stk, stk.ctl_b, acct, c["id"], "running", 1)
    gone.kill()
    done = until(lambda: (lambda o: o if o["status"] == "failed" else None)(
        status(stk, stk.ctl_b, acct, c["id"])), "the capture fails: its agent is lost", timeout=WAIT * 2)
    (part,) = done["agents"]
    assert part["status"] == "lost", done
    assert lease_holders(stk) == 1


def test_revoked_on_a_refused_on_b(stk, acct):
    """Each controller over PostgreSQL keeps the agents' keys it has read
    (src/controller/keycache.h); a revocation through A reaches B's cache by
    its notice: B refuses the key within moments, not at the cache's 30-s
    bound."""
    key = stk.enroll("rv-rep", COLO, token=stk.token(acct.id, "enroll"))
    body = {"name": "rv-rep", "colo": COLO, "hello": True, "version": "x", "interfaces": ["lo"], "jobs": []}

    def hello_on_b():
        return stk.request("POST", "/agent/v1/report", token=key, body=body, controller=stk.ctl_b).status

    assert hello_on_b() == 200
    assert hello_on_b() == 200  # now from B's cache
    r = on(stk, stk.controller, acct, "DELETE", "/agents/rv-rep")
    assert r.status == 200, r
    t0 = time.monotonic()
    until(lambda: hello_on_b() == 401, "B refuses the revoked key")
    assert time.monotonic() - t0 < 20, "B refused the key only at its cache's time-out"
