# SPDX-License-Identifier: MIT
"""Agent identity (issue 8, critical part), attacked through the real API.

A controller with one operator agent rt01 (colo RT, enrolled by the
harness's operator enrolment token, a real `pcapd agent` capturing on a veth)
and two accounts: A, which captures, and B, which enrols its own agent
evil02 and tries, with evil02's key, everything issue 8 reproduced: reports,
hellos, polls and sample answers under rt01's name; being dispatched A's
captures; re-enrolling rt01. Each attack is refused and A's captures, rt01's
registration and A's view of the fleet are unchanged. Then the enrolment
token's limits (name pattern, colo, expiry), revocation (API and CLI) and the
agent's side (its key file, a refused enrolment, a restart with its key).
"""

import json
import os
import sqlite3
import stat
import struct
import subprocess
import threading

import pytest

from stack import Stack, binary, random_id
from waits import WAIT, until

AGENT_API = "/agent/v1"


@pytest.fixture(scope="module")
def stk(request):
    if os.geteuid() != 0:
        pytest.fail("the identity tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False)
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent("rt01", "RT")
    return s


def agent_call(stk, method, path, key, body=None, raw=None, headers=None):
    return stk.request(method, AGENT_API + path, token=key, body=body, raw=raw, headers=headers)


def error_of(r, status):
    assert r.status == status, (r.status, r.body[:400])
    return r.json["errors"][0]["message"]


def capture(acct, pcap_id):
    r = acct.call("GET", "/" + pcap_id, token=acct.read)
    assert r.status == 200, r.body
    return r.json["result"]


def agents_seen(stk, acct):
    r = acct.call("GET", "/agents", token=acct.read)
    assert r.status == 200, r.body
    return {a["name"]: a for a in r.json["result"]}


def enroll_token(stk, account=None, *extra):
    return stk.token(account, "enroll", extra=list(extra))


def hello(stk, key, name, colo="RT"):
    return agent_call(stk, "POST", "/report", key,
                      body={"name": name, "colo": colo, "hello": True, "version": "x", "interfaces": ["lo"],
                            "jobs": []})


def test_another_agents_name_is_refused(stk):
    a = stk.account(bucket=True)
    b = stk.account()
    evil = stk.enroll("evil02", "RT", token=enroll_token(stk, b.id))

    r = a.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": "RT",
                            "destination_conf": a.bucket})
    assert r.status == 200, r.body
    cap = r.json["result"]["id"]
    until(lambda: any(p["status"] == "running" for p in capture(a, cap).get("agents") or []),
          "A's capture running on rt01")
    before = capture(a, cap)
    fleet = agents_seen(stk, a)
    assert fleet["rt01"]["colo"] == "RT"

    # B's agent reports counts for A's capture as rt01: 403, nothing stored.
    r = agent_call(stk, "POST", "/report", evil,
                   body={"name": "rt01", "colo": "RT",
                         "jobs": [{"id": cap, "state": "running", "packets": 9223372036854775807}]})
    assert "cannot act as 'rt01'" in error_of(r, 403)
    # A hello as rt01 from another colo: 403; the capture keeps running.
    r = hello(stk, evil, "rt01", colo="EVIL")
    assert error_of(r, 403)
    # Polling rt01's orders, answering a sample as rt01: 403 (the sample's
    # body is refused on its headers).
    r = agent_call(stk, "GET", "/poll?name=rt01&timeout_ms=0", evil)
    assert error_of(r, 403)
    r = agent_call(stk, "POST", "/sample?name=rt01&id=" + random_id(), evil, raw=b"\xd4\xc3\xb2\xa1",
                   headers={"Content-Type": "application/vnd.tcpdump.pcap"})
    assert error_of(r, 403)

    after = capture(a, cap)
    assert after["status"] == "running", after
    assert after.get("packets_captured", 0) < 1 << 40, after
    assert [(p["name"], p["status"]) for p in after["agents"]] == [(p["name"], p["status"])
                                                                    for p in before["agents"]]
    assert agents_seen(stk, a)["rt01"]["colo"] == "RT"

    # evil02 may speak as itself: it serves B only. A never sees it, nor is
    # it given A's captures; B sees it and the operator's rt01.
    r = hello(stk, evil, "evil02")
    assert r.status == 200, r.body
    assert "evil02" not in agents_seen(stk, a)
    assert set(agents_seen(stk, b)) >= {"rt01", "evil02"}
    r = a.call("PUT", "/%s/stop" % cap)
    assert r.status == 200, r.body
    stk.wait_status(a, cap)
    r = a.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 1, "colo_name": "RT",
                            "destination_conf": a.bucket})
    assert r.status == 200, r.body
    cap2 = r.json["result"]["id"]
    assert [p["name"] for p in capture(a, cap2)["agents"]] == ["rt01"]
    r = a.call("POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 1, "packet_limit": 10})
    assert r.status == 200, r.body
    assert "evil02" not in [p["name"] for p in capture(a, r.json["result"]["id"]).get("agents") or []]
    r = agent_call(stk, "GET", "/poll?name=evil02&timeout_ms=0", evil)
    assert r.status == 200 and r.json["start"] == [], r.body
    stk.wait_status(a, cap2)


def test_enrolled_names_and_token_limits(stk):
    b = stk.account()
    # rt01 is enrolled: neither an account's nor the operator's token
    # enrols that name again.
    for tok in (enroll_token(stk, b.id), stk.enroll_token):
        r = agent_call(stk, "POST", "/enroll", tok, body={"name": "rt01", "colo": "RT"})
        assert "enrolled already" in error_of(r, 409)
    # The token's limits: name pattern, colo, expiry.
    tok = enroll_token(stk, b.id, "--name-pattern", "lab-*", "--colo", "LAB")
    assert "does not match" in error_of(agent_call(stk, "POST", "/enroll", tok, body={"name": "x1", "colo": "LAB"}),
                                        403)
    assert "colo" in error_of(agent_call(stk, "POST", "/enroll", tok, body={"name": "lab-1", "colo": "RT"}), 403)
    key = stk.enroll("lab-1", "LAB", token=tok)
    # bound to its colo: reporting another is refused
    assert "colo" in error_of(hello(stk, key, "lab-1", colo="RT"), 403)
    assert hello(stk, key, "lab-1", colo="LAB").status == 200
    old = enroll_token(stk, b.id, "--expires", "2020-01-01T00:00:00Z")
    assert "expired" in error_of(agent_call(stk, "POST", "/enroll", old, body={"name": "late", "colo": "X"}), 403)
    # Credentials of the wrong kind: a user token on the agent protocol, an
    # enrolment token as a key, a key as an enrolment token, an agent key on
    # the public API.
    assert error_of(hello(stk, b.write, "lab-1"), 403)
    assert "enrolment token" in error_of(hello(stk, tok, "lab-1", colo="LAB"), 403)
    assert error_of(agent_call(stk, "POST", "/enroll", key, body={"name": "y", "colo": "LAB"}), 403)
    assert "agent protocol" in error_of(b.call("GET", "", token=key), 403)
    # "--scope agent" (a token bound to no name) is no more.
    r = subprocess.run([binary("pcapd"), "token", "create", "--data", stk.ctl_data, "--account", b.id,
                        "--scope", "agent"], capture_output=True, timeout=30)
    assert r.returncode == 2 and b"--scope enroll" in r.stderr, r


def test_revoke(stk):
    a = stk.account()
    b = stk.account()
    key = stk.enroll("rv-1", "RV", token=enroll_token(stk, b.id))
    assert hello(stk, key, "rv-1", colo="RV").status == 200
    # A cannot revoke B's agent, nor anyone the operator's.
    assert error_of(a.call("DELETE", "/agents/rv-1"), 404)
    assert error_of(b.call("DELETE", "/agents/rt01"), 403)
    assert error_of(b.call("DELETE", "/agents/rv-1", token=b.read), 403)
    r = b.call("DELETE", "/agents/rv-1")
    assert r.status == 200 and r.json["result"] == {"name": "rv-1", "revoked": True}, r.body
    assert error_of(hello(stk, key, "rv-1", colo="RV"), 401)
    assert "rv-1" not in agents_seen(stk, b)
    # The name may be enrolled again; the operator revokes with the CLI.
    key2 = stk.enroll("rv-1", "RV")
    assert hello(stk, key2, "rv-1", colo="RV").status == 200
    r = subprocess.run([binary("pcapd"), "agents", "revoke", "--db", stk.db_url, "rv-1"], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r
    assert error_of(hello(stk, key2, "rv-1", colo="RV"), 401)
    r = subprocess.run([binary("pcapd"), "agents", "revoke", "--data", stk.ctl_data, "rv-1"], capture_output=True,
                       timeout=30)
    assert r.returncode == 1 and b"no agent 'rv-1'" in r.stderr, r


@pytest.mark.parametrize("cmd", [["token", "create", "--scope", "enroll"], ["agents", "revoke", "rv-1"],
                                 ["controller", "--http", "127.0.0.1:0"]])
def test_bad_db_url_names_the_flag(tmp_path, cmd):
    """Every subcommand that touches state refuses an unknown --db scheme by
    the flag's name, and never takes it for a file name."""
    r = subprocess.run([binary("pcapd")] + cmd + ["--data", str(tmp_path), "--db", "mysql://h/pcapd"],
                       capture_output=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 1, r
    assert b'--db: db: unknown database URL scheme "mysql"' in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "pcapd.db") and not os.path.exists(tmp_path / "mysql:"), os.listdir(tmp_path)


def test_agent_keeps_its_key(stk):
    rt01 = stk.agents[0]
    path = os.path.join(rt01.data, "agent.key")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(path) as f:
        k = json.load(f)
    assert k["name"] == "rt01" and k["secret"].startswith("pcapd_")
    # the key is rt01's own credential on the agent protocol
    assert agent_call(stk, "GET", "/poll?name=rt01&timeout_ms=0", k["secret"]).status == 200
    # A restart uses the key (the enrolment token is not exchanged again:
    # that would be refused, the name being enrolled).
    rt01.stop()
    rt01.start()
    assert "rt01" in agents_seen(stk, stk.account())
    # An agent whose name is taken is told so and exits 1.
    data = os.path.join(stk.dir, "agent-impostor")
    r = subprocess.run([binary("pcapd"), "agent", "--controller", stk.http_url, "--name", "rt01", "--colo", "RT",
                        "-i", rt01.link.root_if, "--data", data, "--enroll-token", stk.enroll_token],
                       capture_output=True, timeout=WAIT)
    assert r.returncode == 1 and b"enrolled already" in r.stderr, r
    assert not os.path.exists(os.path.join(data, "agent.key"))
    # Without a key or an enrolment token: a clear error.
    r = subprocess.run([binary("pcapd"), "agent", "--controller", stk.http_url, "--name", "nokey", "--colo", "RT",
                        "-i", rt01.link.root_if, "--data", data], capture_output=True, timeout=WAIT)
    assert r.returncode == 1 and b"--enroll-token" in r.stderr, r


# --- bounds: counters, sample answers -------------------------------------------

def pcap(n, linktype=1, caplen=60, origlen=60):
    """A classic pcap of n records of caplen bytes claiming origlen."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i in range(n):
        out += struct.pack("<IIII", 1700000000 + i, 0, caplen, origlen) + bytes([i & 0xFF]) * caplen
    return out


def answer(stk, key, name, sid, body):
    return agent_call(stk, "POST", "/sample?name=%s&id=%s" % (name, sid), key, raw=body,
                      headers={"Content-Type": "application/vnd.tcpdump.pcap"})


@pytest.fixture(scope="module")
def fake(stk):
    """An operator's agent the test speaks for itself (it answers nothing
    unless told to): (name, key)."""
    key = stk.enroll("fake01", "FAKE")
    assert hello(stk, key, "fake01", colo="FAKE").status == 200
    return "fake01", key


def test_counters_stay_within_the_limits(stk, fake):
    name, key = fake
    a = stk.account(bucket=True)
    r = a.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": "FAKE",
                            "packet_limit": 10, "byte_limit": 1000, "destination_conf": a.bucket})
    assert r.status == 200, r.body
    cap = r.json["result"]["id"]
    r = agent_call(stk, "POST", "/report", key,
                   body={"name": name, "colo": "FAKE",
                         "jobs": [{"id": cap, "state": "running", "packets": 9223372036854775807,
                                   "bytes": 9223372036854775807}]})
    assert r.status == 200, r.body
    got = capture(a, cap)
    assert got["packets_captured"] <= 10, got
    assert got["agents"][0]["packets"] <= 10 and got["agents"][0]["bytes"] <= 1000, got
    assert a.call("PUT", "/%s/stop" % cap).status == 200


def test_sample_answers(stk, fake):
    """Only an agent the sample was asked of answers it, once, with a pcap
    pcapd can read; two answers at once: exactly one is kept, file and
    record."""
    name, key = fake
    b = stk.account()
    evil = stk.enroll("evil-smp", "RT", token=enroll_token(stk, b.id))
    assert hello(stk, evil, "evil-smp").status == 200
    assert hello(stk, key, name, colo="FAKE").status == 200
    a = stk.account()
    r = a.call("POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 60, "packet_limit": 5})
    assert r.status == 200, r.body
    sid = r.json["result"]["id"]
    asked = [p["name"] for p in capture(a, sid)["agents"]]
    assert name in asked and "evil-smp" not in asked, asked
    # B's agent was not asked: refused, and B's key answers as nobody else.
    assert "not asked of agent evil-smp" in error_of(answer(stk, evil, "evil-smp", sid, pcap(3)), 404)
    assert error_of(answer(stk, evil, name, sid, pcap(3)), 403)
    # What pcapd cannot read, or more than the limit.
    assert "unknown link type 147" in error_of(answer(stk, key, name, sid, pcap(1, linktype=147)), 400)
    assert "60 bytes captured of a 40-byte packet" in error_of(answer(stk, key, name, sid, pcap(1, origlen=40)), 400)
    assert "packet_limit 5" in error_of(answer(stk, key, name, sid, pcap(6)), 400)
    # Two answers at once: one 200, one 409.
    bodies = [pcap(2), pcap(4)]
    results = [None, None]

    def send(i):
        results[i] = answer(stk, key, name, sid, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 409], [(r.status, r.body) for r in results]
    kept = bodies[[r.status for r in results].index(200)]
    part = {p["name"]: p for p in capture(a, sid)["agents"]}[name]
    assert part["status"] == "done" and part["packets"] == (2 if kept == bodies[0] else 4), part
    # The answer kept is in the database, beside the part it made done.
    db = sqlite3.connect(os.path.join(stk.ctl_data, "pcapd.db"))
    try:
        rows = db.execute("SELECT pcap FROM samples WHERE job_id = ? AND agent = ?", (sid, name)).fetchall()
    finally:
        db.close()
    assert [bytes(r[0]) for r in rows] == [kept]
    assert "final" in error_of(answer(stk, key, name, sid, pcap(1)), 409)
