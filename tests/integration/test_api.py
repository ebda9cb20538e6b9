# SPDX-License-Identifier: MIT
"""The Cloudflare PCAPs API of a real controller, over plain HTTP(S), with real
agents capturing real traffic (stack.py).

Every validation and auth rule has a negative test that checks the status,
the error code, that the message names the field first, and that nothing was
created (the account's captures and buckets, the files under the bucket root).
Full captures run end to end: traffic sent from a namespace during the
capture, the object in the bucket read with tshark, the merged download of two
agents, stop, the three limits, a lost agent, and a controller killed with
SIGKILL mid-capture and restarted on the same data.
"""

import os
import re
import json
import subprocess
import time

import pytest

from stack import API_PREFIX, Stack, random_id, send, tcp_frames, udp_frames
from traffic import Steady
from waits import WAIT, until

AGENT1, AGENT2, COLO = "agt1", "agt2", "lab"
SUBMITTED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="module")
def stk(request):
    """A controller (HTTP + HTTPS) and two agents in colo "lab": agt1 over
    HTTP enrolled with --enroll-token, agt2 over HTTPS with PCAPD_ENROLL_TOKEN
    and --cacert."""
    if os.geteuid() != 0:
        pytest.fail("the API tests need root (network namespaces, packet sockets)")
    s = Stack(tls=True)
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(AGENT1, COLO)
    s.add_agent(AGENT2, COLO, https=True, token_in_env=True)
    return s


@pytest.fixture
def acct(stk):
    """A fresh account with a validated bucket (so per-account limits never
    leak from one test into the next)."""
    return stk.account(bucket=True)


def link_of(stk, name):
    return [a for a in stk.agents if a.name == name][0].link


@pytest.fixture(scope="module")
def bare(request):
    """A controller without real agents, for agents played by the test over
    the agent protocol, so that each of an agent's states can be held as long
    as the test looks at it. (--agent-timeout 600: such an agent reports only
    when the test says so; --max-active-full 0: captures that never end;
    --log-level debug: what the API ignored is logged.)"""
    if os.geteuid() != 0:
        pytest.fail("the API tests need root")
    s = Stack(tls=False, controller_args=["--grace", "1", "--agent-timeout", "600", "--max-active-full", "0",
                                          "--log-level", "debug"])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    return s


class ScriptedAgent:
    """An agent played by the test: it enrols (for its own key), registers,
    takes its starts from a poll and reports what the test tells it to, when
    the test tells it to."""

    def __init__(self, stk, name, colo):
        self.stk, self.name, self.colo = stk, name, colo
        self.key = stk.enroll(name, colo)
        self.report(hello=True)

    def report(self, jobs=(), hello=False):
        body = {"name": self.name, "colo": self.colo, "version": "test", "interfaces": ["lo"], "jobs": list(jobs)}
        if hello:
            body["hello"] = True
        r = self.stk.request("POST", "/agent/v1/report", token=self.key, body=body)
        assert r.status == 200, r
        return r.json

    def poll(self):
        r = self.stk.request("GET", "/agent/v1/poll?name=%s&timeout_ms=0" % self.name, token=self.key)
        assert r.status == 200, r
        return r.json

    def job(self, pcap_id, state, packets=0, stop_reason="none"):
        return {"id": pcap_id, "state": state, "packets": packets, "bytes": 100 * packets, "drops": 0,
                "stop_reason": stop_reason}


# --- helpers -------------------------------------------------------------------

def assert_error(r, status, code, field=None, pointer=None):
    """An error envelope: status, code, message naming `field` first, the
    item's documentation_url (the README's error table) and, if given, its
    source.pointer ("" = none), JSON content type, x-should-retry: false."""
    assert r.status == status, "expected %d, got %r" % (status, r)
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    j = r.json
    assert j["success"] is False and j["result"] is None, j
    assert isinstance(j["messages"], list), j
    assert j["errors"] and isinstance(j["errors"][0]["code"], int), j
    e = j["errors"][0]
    assert e["code"] == code, "expected code %d: %r" % (code, j)
    assert isinstance(e["message"], str) and e["message"], j
    if field is not None:
        assert e["message"].startswith(field), "message does not name %r first: %r" % (field, e["message"])
    assert e.get("documentation_url", "").endswith("#api-errors"), e
    if pointer == "":
        assert "source" not in e, e
    elif pointer is not None:
        assert e.get("source") == {"pointer": pointer}, e
    assert r.header("x-should-retry") == "false", r.headers
    return e["message"]


def assert_ok(r, status=200):
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    j = r.json
    assert j["success"] is True and j["errors"] == [] and isinstance(j["messages"], list), j
    return j["result"]


def bucket_files(stk):
    out = set()
    for d, _, files in os.walk(stk.bucket_root):
        for f in files:
            out.add(os.path.join(d, f))
    return out


def snapshot(stk, acct):
    caps = assert_ok(acct.call("GET", ""))
    buckets = assert_ok(acct.call("GET", "/ownership")) or []
    return (sorted(c["id"] for c in caps), sorted((b["id"], b["status"]) for b in buckets), bucket_files(stk))


def assert_unchanged(stk, acct, before):
    after = snapshot(stk, acct)
    assert after[0] == before[0], "captures changed: %r -> %r" % (before[0], after[0])
    assert after[1] == before[1], "buckets changed: %r -> %r" % (before[1], after[1])
    assert after[2] == before[2], "files appeared: %r" % (after[2] - before[2])


def full_body(acct, where=AGENT1, **kw):
    """A valid full request; keyword arguments change fields (None deletes)."""
    b = {"type": "full", "system": "magic-transit", "time_limit": 5, "colo_name": where,
         "destination_conf": acct.bucket}
    return _apply(b, kw)


def simple_body(**kw):
    b = {"type": "simple", "system": "magic-transit", "time_limit": 5, "packet_limit": 100}
    return _apply(b, kw)


def create(acct, body, token=None):
    r = acct.call("POST", "", body, token=token)
    return assert_ok(r)


def wait_parts(stk, acct, pcap_id, state="running", n=1, timeout=WAIT):
    """Until n agents' shares of the capture are in `state` (the "agents"
    extension of GET): then their sockets are open and traffic counts."""
    end = time.monotonic() + timeout
    obj = None
    while time.monotonic() < end:
        obj = assert_ok(acct.call("GET", "/" + pcap_id, token=acct.read))
        parts = obj.get("agents") or []
        if sum(1 for p in parts if p.get("status") == state) >= n:
            return obj
        if obj["status"] in ("success", "failed"):
            break
        time.sleep(0.03)
    raise AssertionError("capture %s: not %d agents %s within %.0fs: %r" % (pcap_id, n, state, timeout, obj))


def tshark(path, extra=()):
    r = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.cap_len",
                        "-e", "frame.len"] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = "\n".join(l for l in r.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l and "could be dangerous" not in l)
    assert r.returncode == 0 and not err.strip(), "tshark cannot read %s: %s" % (path, err)
    rows = [l.split("\t") for l in r.stdout.decode().splitlines() if l.strip()]
    return [(float(t), int(c), int(n)) for t, c, n in rows]


def raw_frames(path):
    """The frames of a pcap as bytes (tshark's hex dump)."""
    r = subprocess.run(["tshark", "-n", "-r", path, "-x", "-T", "json", "-j", "frame"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    return [bytes.fromhex(p["_source"]["layers"]["frame_raw"][0]) for p in json.loads(r.stdout or b"[]")]


def count_markers(path, frames):
    data = raw_frames(path)
    return sum(1 for fr in frames if any(fr.marker in d for d in data))


def capinfos_count(path):
    r = subprocess.run(["capinfos", "-M", "-c", "-T", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    last = r.stdout.decode().strip().splitlines()[-1].split("\t")
    return int(last[-1])


# --- envelope, routing ------------------------------------------------------------

def test_list_both_prefixes_same_envelope(stk, acct):
    c = create(acct, full_body(acct, time_limit=1))
    a = assert_ok(acct.call("GET", ""))
    b = assert_ok(stk.request("GET", acct.path(prefix=""), token=acct.write))
    assert [x["id"] for x in a] == [x["id"] for x in b]
    assert c["id"] in [x["id"] for x in a]
    g1 = assert_ok(acct.call("GET", "/" + c["id"]))
    g2 = assert_ok(stk.request("GET", acct.path("/" + c["id"], prefix=""), token=acct.write))
    assert g1["id"] == g2["id"] == c["id"]
    stk.wait_status(acct, c["id"])


def test_https_listener_serves_the_api(stk, acct):
    r = stk.request("GET", acct.path(), token=acct.read, https=True)
    assert assert_ok(r) == []
    r = stk.request("GET", acct.path("/ownership", prefix=""), token=acct.write, https=True)
    assert [b["destination_conf"] for b in assert_ok(r)] == [acct.bucket]


@pytest.mark.parametrize("path", [
    "/client/v4/accounts/{a}/nothing",
    "/client/v4/accounts/{a}/pcaps/{id}/download/more",
    "/client/v4/accounts/{a}/pcaps/{id}/start",
    "/client/v4/accounts/{a}/pcaps/",
    "/client/v4/zones",
    "/nothing",
    "/client/v4/",  # "/" is the dashboard (test_dashboard.py)
])
def test_unknown_route_404(stk, acct, path):
    r = stk.request("GET", path.format(a=acct.id, id=random_id()), token=acct.write)
    assert_error(r, 404, 7003)


@pytest.mark.parametrize("method,suffix", [
    ("DELETE", ""), ("PUT", ""), ("POST", "/{id}"), ("DELETE", "/{id}"), ("POST", "/{id}/download"),
    ("GET", "/{id}/stop"), ("POST", "/{id}/stop"), ("PUT", "/ownership"), ("GET", "/ownership/validate"),
    ("GET", "/ownership/{id}"),
])
def test_wrong_method_405(stk, acct, method, suffix):
    before = snapshot(stk, acct)
    r = acct.call(method, suffix.format(id=random_id()), body={} if method in ("POST", "PUT") else None)
    assert_error(r, 405, 7001)
    assert r.header("allow"), r.headers
    assert method not in r.header("allow")
    assert_unchanged(stk, acct, before)


def test_head_is_get_without_body(stk, acct):
    get = acct.call("GET", "")
    head = acct.call("HEAD", "")
    assert head.status == 200, head.status
    assert head.header("content-type") == get.header("content-type")
    assert head.header("content-length") == get.header("content-length")


def test_body_over_64k_413(stk, acct):
    before = snapshot(stk, acct)
    body = '{"type":"full","system":"magic-transit","time_limit":5,"pad":"' + "x" * (70 * 1024) + '"}'
    r = acct.call("POST", "", raw=body)
    assert_error(r, 413, 1005)
    r = acct.call("POST", "/ownership", raw='{"destination_conf":"' + "y" * (65 * 1024) + '"}')
    assert_error(r, 413, 1005)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("raw", ["", "{", "not json", '{"type":"full",}', "\xff\xfe"])
def test_body_not_json_400(stk, acct, raw):
    before = snapshot(stk, acct)
    assert_error(acct.call("POST", "", raw=raw), 400, 1001)
    assert_error(acct.call("POST", "/ownership", raw=raw), 400, 1001)
    assert_unchanged(stk, acct, before)


# --- auth -----------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", ""), ("POST", ""), ("GET", "/{id}"), ("GET", "/{id}/download"), ("PUT", "/{id}/stop"),
    ("GET", "/ownership"), ("POST", "/ownership"), ("POST", "/ownership/validate"), ("DELETE", "/ownership/{id}"),
]


def _body(method, suffix, acct):
    if method != "POST":
        return None
    if suffix == "":
        return full_body(acct)
    if suffix == "/ownership":
        return {"destination_conf": acct.bucket}
    return {"destination_conf": acct.bucket, "ownership_challenge": "x"}


@pytest.mark.parametrize("method,suffix", ENDPOINTS)
def test_no_credentials_401(stk, acct, method, suffix):
    before = snapshot(stk, acct)
    r = stk.request(method, acct.path(suffix.format(id=random_id())), body=_body(method, suffix, acct))
    assert_error(r, 401, 10000)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer pcapd_notatoken"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "bearer"},
    {"X-Auth-Email": "nobody@example.com", "X-Auth-Key": "pcapd_nope"},
], ids=["unknown", "empty", "basic", "no-token", "bad-legacy"])
def test_bad_credentials_401(stk, acct, headers):
    before = snapshot(stk, acct)
    for method, suffix in (("GET", ""), ("POST", "")):
        r = stk.request(method, acct.path(suffix), headers=headers, body=_body(method, suffix, acct))
        assert_error(r, 401, 10000)
    assert_unchanged(stk, acct, before)


def test_legacy_email_key(stk, acct):
    h = {"X-Auth-Email": acct.email, "X-Auth-Key": acct.key}
    assert assert_ok(stk.request("GET", acct.path(), headers=h)) == []
    c = assert_ok(stk.request("POST", acct.path(), headers=h, body=full_body(acct, time_limit=1)))
    assert c["status"] in ("pending", "running")
    stk.wait_status(acct, c["id"])
    # The key with another email, or either header alone, is no credential.
    for bad in ({"X-Auth-Email": "other@example.com", "X-Auth-Key": acct.key}, {"X-Auth-Key": acct.key},
                {"X-Auth-Email": acct.email}, {"X-Auth-Email": acct.email, "X-Auth-Key": acct.write}):
        assert_error(stk.request("GET", acct.path(), headers=bad), 401, 10000)


@pytest.mark.parametrize("method,suffix", ENDPOINTS)
def test_other_account_403(stk, acct, method, suffix):
    other = stk.account()
    before = snapshot(stk, acct)
    r = stk.request(method, acct.path(suffix.format(id=random_id())), token=other.write,
                    body=_body(method, suffix, acct))
    assert_error(r, 403, 10000)
    # The legacy key of another account too.
    r = stk.request(method, acct.path(suffix.format(id=random_id())),
                    headers={"X-Auth-Email": other.email, "X-Auth-Key": other.key}, body=_body(method, suffix, acct))
    assert_error(r, 403, 10000)
    assert_unchanged(stk, acct, before)


def test_account_id_not_hex_403(stk, acct):
    for bad in ("xyz", acct.id + "0", acct.id[:-1]):
        r = stk.request("GET", "%s/accounts/%s/pcaps" % (API_PREFIX, bad), token=acct.write)
        assert_error(r, 403, 10000)


def test_account_id_case_insensitive(stk, acct):
    r = stk.request("GET", "%s/accounts/%s/pcaps" % (API_PREFIX, acct.id.upper()), token=acct.write)
    assert assert_ok(r) == []


@pytest.mark.parametrize("method,suffix", [m for m in ENDPOINTS if m[0] != "GET"])
def test_read_scope_on_write_ops_403(stk, acct, method, suffix):
    target = acct.bucket_id if "ownership/{id}" in suffix else random_id()
    if suffix.startswith("/{id}"):
        target = create(acct, full_body(acct, time_limit=60))["id"]
    before = snapshot(stk, acct)
    r = stk.request(method, acct.path(suffix.format(id=target)), token=acct.read, body=_body(method, suffix, acct))
    msg = assert_error(r, 403, 10000)
    assert "read" in msg and "write" in msg, msg
    assert_unchanged(stk, acct, before)
    if suffix.startswith("/{id}"):
        assert acct.call("PUT", "/%s/stop" % target).status == 200
        stk.wait_status(acct, target)


def test_read_scope_reads(stk, acct):
    c = create(acct, full_body(acct, time_limit=1))
    assert [x["id"] for x in assert_ok(acct.call("GET", "", token=acct.read))] == [c["id"]]
    assert assert_ok(acct.call("GET", "/" + c["id"], token=acct.read))["id"] == c["id"]
    stk.wait_status(acct, c["id"])
    r = acct.call("GET", "/%s/download" % c["id"], token=acct.read)
    assert r.status in (200, 409), r    # no packet matched: failed; the scope was enough either way


@pytest.mark.parametrize("method,suffix", ENDPOINTS)
def test_agent_token_on_public_api_403(stk, acct, method, suffix):
    before = snapshot(stk, acct)
    r = stk.request(method, acct.path(suffix.format(id=random_id())), token=stk.agent_token,
                    body=_body(method, suffix, acct))
    assert_error(r, 403, 10000)
    assert_unchanged(stk, acct, before)


def test_api_token_on_agent_protocol_403(stk, acct):
    r = stk.request("POST", "/agent/v1/report", token=acct.write,
                    body={"name": "intruder", "colo": COLO, "version": "0", "interfaces": ["lo"], "hello": True,
                          "jobs": []})
    assert r.status in (401, 403), r
    r = stk.request("GET", "/agent/v1/poll?name=intruder&timeout_ms=0", token=acct.write)
    assert r.status in (401, 403), r


def test_auth_before_validation(stk, acct):
    """A bad body with no credentials is 401, with a read token 403: nothing
    about the request is revealed before the credential is checked."""
    bad = {"type": "nope"}
    assert_error(stk.request("POST", acct.path(), body=bad), 401, 10000)
    assert_error(acct.call("POST", "", bad, token=acct.read), 403, 10000)
    assert_error(stk.request("GET", acct.path("/" + random_id())), 401, 10000)
    assert_error(stk.request("GET", acct.path("/zz")), 401, 10000)


# --- ids ----------------------------------------------------------------------------

@pytest.mark.parametrize("method,suffix,field", [
    ("GET", "/{id}", "pcap_id"), ("GET", "/{id}/download", "pcap_id"), ("PUT", "/{id}/stop", "pcap_id"),
    ("DELETE", "/ownership/{id}", "ownership_id"),
])
@pytest.mark.parametrize("kind", ["unknown", "malformed", "short", "other-account"])
def test_unknown_ids_404(stk, acct, method, suffix, field, kind):
    if kind == "unknown":
        pid = random_id()
    elif kind == "malformed":
        pid = "z" * 32
    elif kind == "short":
        pid = "abc"
    else:
        other = stk.account(bucket=True)
        if "ownership" in suffix:
            pid = other.bucket_id
        else:
            pid = create(other, full_body(other, time_limit=1))["id"]
            stk.wait_status(other, pid)
    before = snapshot(stk, acct)
    assert_error(acct.call(method, suffix.format(id=pid)), 404, 1003, field)
    assert_unchanged(stk, acct, before)


# --- validation of create -------------------------------------------------------------

FULL_CASES = [
    # (id, changes to a valid full body (None = delete the key), field named first)
    ("type-missing", {"type": None}, "type"),
    ("type-bad", {"type": "partial"}, "type"),
    ("type-number", {"type": 1}, "type"),
    ("system-missing", {"system": None}, "system"),
    ("system-bad", {"system": "magic-wan"}, "system"),
    ("time-missing", {"time_limit": None}, "time_limit"),
    ("time-0", {"time_limit": 0}, "time_limit"),
    ("time-301", {"time_limit": 301}, "time_limit: 301 is outside 1..300"),
    ("time-neg", {"time_limit": -5}, "time_limit"),
    ("time-frac", {"time_limit": 1.5}, "time_limit"),
    ("time-string", {"time_limit": "10"}, "time_limit"),
    ("time-huge", {"time_limit": 1e300}, "time_limit"),
    ("packets-0", {"packet_limit": 0}, "packet_limit"),
    ("packets-10001", {"packet_limit": 10001}, "packet_limit"),
    ("packets-bool", {"packet_limit": True}, "packet_limit"),
    ("bytes-0", {"byte_limit": 0}, "byte_limit"),
    ("bytes-too-many", {"byte_limit": 1000000001}, "byte_limit"),
    ("bytes-string", {"byte_limit": "1M"}, "byte_limit"),
    ("colo-missing", {"colo_name": None}, "colo_name"),
    ("colo-empty", {"colo_name": ""}, "colo_name"),
    ("colo-space", {"colo_name": "a b"}, "colo_name"),
    ("colo-number", {"colo_name": 7}, "colo_name"),
    ("colo-too-long", {"colo_name": "a" * 64}, "colo_name"),
    ("colo-alias-bad", {"colo_name": None, "colo": "a/b"}, "colo"),
    ("colo-disagree", {"colo": "elsewhere"}, "colo"),
    ("dest-missing", {"destination_conf": None}, "destination_conf"),
    ("dest-number", {"destination_conf": 5}, "destination_conf"),
    ("dest-not-uri", {"destination_conf": "just-a-name"}, "destination_conf"),
    ("dest-scheme", {"destination_conf": "ftp://host/dir"}, "destination_conf"),
    ("offset-on-full", {"offset_time": "2024-05-01T12:00:00Z"}, "offset_time"),
    ("filter-not-object", {"filter_v1": "tcp"}, "filter_v1"),
    ("filter-unknown", {"filter_v1": {"source_ip": "192.0.2.1"}}, "filter_v1.source_ip"),
    ("filter-port-big", {"filter_v1": {"destination_port": 70000}}, "filter_v1.destination_port"),
    ("filter-port-neg", {"filter_v1": {"source_port": -1}}, "filter_v1.source_port"),
    ("filter-port-bad", {"filter_v1": {"source_port": "http"}}, "filter_v1.source_port"),
    ("filter-addr-bad", {"filter_v1": {"source_address": "999.1.1.1"}}, "filter_v1.source_address"),
    ("filter-addr-number", {"filter_v1": {"destination_address": 3}}, "filter_v1.destination_address"),
    ("filter-proto-big", {"filter_v1": {"protocol": 256}}, "filter_v1.protocol"),
    ("filter-proto-name", {"filter_v1": {"protocol": "nosuchproto"}}, "filter_v1.protocol"),
    ("filter-bpf-bad", {"filter_v1": {"bpf": "tcp port"}}, "filter_v1.bpf"),
    ("filter-bpf-type", {"filter_v1": {"bpf": 5}}, "filter_v1.bpf"),
]

SIMPLE_CASES = [
    ("packets-missing", {"packet_limit": None}, "packet_limit"),
    ("packets-10001", {"packet_limit": 10001}, "packet_limit"),
    ("time-301", {"time_limit": 301}, "time_limit: 301 is outside 1..300"),
    ("byte-limit-on-simple", {"byte_limit": 100}, "byte_limit"),
    ("colo-on-simple", {"colo_name": "lab"}, "colo_name"),
    ("dest-on-simple", {"destination_conf": "file:///tmp/x"}, "destination_conf"),
    ("offset-bad", {"offset_time": "yesterday"}, "offset_time"),
    ("offset-no-zone", {"offset_time": "2024-05-01 12:00:00"}, "offset_time"),
    ("offset-number", {"offset_time": 1714564800}, "offset_time"),
    ("offset-old", {"offset_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 25 * 3600))},
     "offset_time"),
    ("offset-future", {"offset_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))},
     "offset_time"),
    ("filter-port-big", {"filter_v1": {"destination_port": 65536}}, "filter_v1.destination_port"),
]


def _apply(body, changes):
    body = dict(body)
    for k, v in changes.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


@pytest.mark.parametrize("changes,field", [c[1:] for c in FULL_CASES], ids=[c[0] for c in FULL_CASES])
def test_create_full_validation(stk, acct, changes, field):
    before = snapshot(stk, acct)
    r = acct.call("POST", "", _apply(full_body(acct), changes))
    assert_error(r, 400, 1002, field)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("changes,field", [c[1:] for c in SIMPLE_CASES], ids=[c[0] for c in SIMPLE_CASES])
def test_create_simple_validation(stk, acct, changes, field):
    before = snapshot(stk, acct)
    r = acct.call("POST", "", _apply(simple_body(), changes))
    assert_error(r, 400, 1002, field)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("raw", ["[]", '"full"', "3", "null"])
def test_create_body_not_object(stk, acct, raw):
    before = snapshot(stk, acct)
    r = acct.call("POST", "", raw=raw)
    assert r.status == 400 and r.json["errors"][0]["code"] in (1001, 1002), r
    assert_unchanged(stk, acct, before)


def test_unknown_fields_ignored_and_logged(bare):
    """Members the schema does not name are accepted and ignored (logged at
    debug level), so a body copied from a response creates the same capture
    again; a known field with a bad value is still refused."""
    acct = bare.account(bucket=True)
    ScriptedAgent(bare, "unk1", "unk")
    c = create(acct, full_body(acct, where="unk", time_limit=30, packet_limit=9,
                               filter_v1={"destination_port": "80;443", "protocol": "tcp"}))
    copied = assert_ok(acct.call("GET", "/" + c["id"]))
    assert "agents" in copied and "status" in copied and "submitted" in copied
    copied["packets_remaining"] = 9     # the issue's example (the docs' objects carry it)
    again = create(acct, copied)
    assert again["id"] != c["id"] and again["status"] == "pending", again
    for k in ("type", "time_limit", "packet_limit", "colo_name", "destination_conf", "filter_v1"):
        assert again[k] == c[k], k
    until(lambda: any("cloudflare: POST /client/v4/accounts/%s/pcaps: ignored" % acct.id in l and
                      "packets_remaining" in l and "agents" in l for l in bare.controller.proc.lines),
          lambda: "no debug line about the ignored fields:\n" + bare.controller.proc.stderr()[-2000:])
    # The ownership requests too.
    uri, d = bare.new_bucket_dir()
    own = assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri, "region": "eu"}))
    assert own["status"] == "pending"
    with open(os.path.join(d, own["filename"])) as f:
        challenge = f.read().strip()
    r = acct.call("POST", "/ownership/validate", {"destination_conf": uri, "ownership_challenge": challenge,
                                                   "id": own["id"], "validated": ""})
    assert assert_ok(r)["status"] == "success"
    # Known fields are still checked, whatever else comes with them.
    before = snapshot(bare, acct)
    r = acct.call("POST", "", dict(copied, time_limit=301))
    assert_error(r, 400, 1002, "time_limit: 301 is outside 1..300")
    r = acct.call("POST", "", dict(copied, colo=5))
    assert_error(r, 400, 1002, "colo")
    assert_unchanged(bare, acct, before)


def test_empty_filter_values_mean_no_condition(stk, acct):
    """A form sends "" for a field left blank: no condition, as an absent
    field. The sample with every filter field empty holds what the one
    without a filter holds (here: the full capture's frames)."""
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, packet_limit=4, filter_v1={
        "source_address": "", "destination_address": "", "source_port": "", "protocol": "", "bpf": "",
        "destination_port": 5012}))
    assert c["filter_v1"] == {"destination_port": 5012}, c
    wait_parts(stk, acct, c["id"])
    send(link, udp_frames(link, 4, dport=5012))
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 4, done
    s = create(acct, simple_body(time_limit=300, packet_limit=10000,
                                 filter_v1={"source_address": "", "destination_port": ""}))
    assert s["filter_v1"] == {}, s
    # A blank is not empty: still a bad value, named.
    assert_error(acct.call("POST", "", full_body(acct, filter_v1={"source_address": " "})), 400, 1002,
                 "filter_v1.source_address")
    stk.wait_status(acct, s["id"])


def test_error_items_documentation_url_and_source_pointer(stk, acct):
    """Cloudflare's error items: documentation_url, the README's error table
    (its anchor is there), and for a field error source.pointer (RFC 6901)
    to the body's member, in the words the request used."""
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "README.md")) as f:
        assert '<a id="api-errors"></a>' in f.read()
    cases = [
        (full_body(acct, filter_v1={"source_port": 70000}), 1002, "filter_v1.source_port", "/filter_v1/source_port"),
        (full_body(acct, time_limit=0), 1002, "time_limit", "/time_limit"),
        (full_body(acct, colo_name=None, colo="a b"), 1002, "colo", "/colo"),
        (full_body(acct, colo_name=None, colo="atlantis"), 1007, "colo: no online agent", "/colo"),
        (full_body(acct, where="atlantis"), 1007, "colo_name: no online agent", "/colo_name"),
        (full_body(acct, destination_conf=stk.new_bucket_dir()[0]), 1006, "destination_conf", "/destination_conf"),
    ]
    for body, code, field, pointer in cases:
        assert_error(acct.call("POST", "", body), 400, code, field, pointer)
    assert_error(acct.call("POST", "/ownership/validate", {"destination_conf": acct.bucket,
                                                           "ownership_challenge": "nope"}),
                 400, 1009, "ownership_challenge", "/ownership_challenge")
    # Not about a member of the body: no source.
    assert_error(acct.call("POST", "", raw="{"), 400, 1001, "body", "")
    assert_error(acct.call("GET", "/" + random_id()), 404, 1003, "pcap_id", "")
    assert_error(acct.call("GET", "?per_page=0"), 400, 1002, "per_page", "")
    assert_error(stk.request("GET", acct.path()), 401, 10000, None, "")
    assert_error(stk.request("GET", "/nothing"), 404, 7003, None, "")


def test_create_full_unregistered_bucket_1006(stk, acct):
    before = snapshot(stk, acct)
    uri, d = stk.new_bucket_dir()
    assert_error(acct.call("POST", "", full_body(acct, destination_conf=uri)), 400, 1006, "destination_conf")
    assert not os.path.exists(d) or os.listdir(d) == []
    assert_unchanged(stk, acct, before)


def test_create_full_pending_bucket_1006(stk, acct):
    uri, d = stk.new_bucket_dir()
    assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    before = snapshot(stk, acct)
    assert_error(acct.call("POST", "", full_body(acct, destination_conf=uri)), 400, 1006, "destination_conf")
    assert_unchanged(stk, acct, before)


def test_create_full_bucket_of_other_account_1006(stk, acct):
    other = stk.account(bucket=True)
    before = snapshot(stk, acct)
    assert_error(acct.call("POST", "", full_body(acct, destination_conf=other.bucket)), 400, 1006,
                 "destination_conf")
    assert_unchanged(stk, acct, before)


def test_create_full_no_online_agent_1007(stk, acct):
    before = snapshot(stk, acct)
    msg = assert_error(acct.call("POST", "", full_body(acct, where="nowhere")), 400, 1007, "colo_name")
    assert "nowhere" in msg
    assert_error(acct.call("POST", "", full_body(acct, colo_name=None, colo="atlantis")), 400, 1007)
    assert_unchanged(stk, acct, before)


def test_create_full_accepts_colo_alias_and_case(stk, acct):
    c = create(acct, full_body(acct, colo_name=None, colo=AGENT1.upper(), time_limit=1))
    assert c["colo_name"].lower() == AGENT1
    # The key the request used is the key of the answer (colo_name, the
    # schema's, is always there): on create, get and list alike.
    assert c["colo"] == AGENT1.upper(), c
    assert assert_ok(acct.call("GET", "/" + c["id"]))["colo"] == AGENT1.upper()
    assert [x.get("colo") for x in assert_ok(acct.call("GET", "")) if x["id"] == c["id"]] == [AGENT1.upper()]
    stk.wait_status(acct, c["id"])
    c = create(acct, full_body(acct, colo=AGENT1, time_limit=1))     # both, equal
    assert c["colo"] == c["colo_name"] == AGENT1, c
    stk.wait_status(acct, c["id"])
    c = create(acct, full_body(acct, time_limit=1))                  # colo_name only
    assert "colo" not in c and "colo" not in assert_ok(acct.call("GET", "/" + c["id"])), c
    stk.wait_status(acct, c["id"])
    c = create(acct, full_body(acct, where="LAB", time_limit=1))
    obj = assert_ok(acct.call("GET", "/" + c["id"]))
    assert sorted(p["name"] for p in obj.get("agents", [])) == [AGENT1, AGENT2]
    stk.wait_status(acct, c["id"])


def test_create_objects_shape(stk, acct):
    c = create(acct, full_body(acct, time_limit=2, packet_limit=50, byte_limit=100000,
                               filter_v1={"destination_port": 9, "protocol": 17}))
    assert re.fullmatch(r"[0-9a-f]{32}", c["id"]), c
    assert c["type"] == "full" and c["system"] == "magic-transit"
    assert c["status"] in ("pending", "running")
    assert SUBMITTED_RE.match(c["submitted"]), c["submitted"]
    assert c["time_limit"] == 2 and c["byte_limit"] == 100000
    assert c["colo_name"] == AGENT1 and c["destination_conf"] == acct.bucket
    assert c["filter_v1"] == {"destination_port": 9, "protocol": 17}
    assert c.get("packets_captured", 0) == 0
    listed = assert_ok(acct.call("GET", ""))
    assert [x["id"] for x in listed] == [c["id"]]
    got = assert_ok(acct.call("GET", "/" + c["id"]))
    for k in ("id", "type", "system", "submitted", "time_limit", "byte_limit", "colo_name", "destination_conf",
              "filter_v1"):
        assert got[k] == c[k], k
    stk.wait_status(acct, c["id"])
    s = assert_ok(acct.call("POST", "", simple_body(filter_v1={"source_address": "192.0.2.1"})))
    assert s["type"] == "simple" and SUBMITTED_RE.match(s["submitted"]) and "offset_time" in s
    assert "destination_conf" not in s and "colo_name" not in s
    s = stk.wait_status(acct, s["id"])
    if s["status"] == "failed":
        assert s.get("error_message"), s


# --- ownership --------------------------------------------------------------------------

OWNERSHIP_CASES = [
    ("missing", {}, "destination_conf"),
    ("number", {"destination_conf": 5}, "destination_conf"),
    ("not-uri", {"destination_conf": "bucket"}, "destination_conf"),
    ("scheme", {"destination_conf": "ftp://x/y"}, "destination_conf"),
    ("unknown-field-bad-known", {"destination_conf": 5, "region": "eu"}, "destination_conf"),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in OWNERSHIP_CASES], ids=[c[0] for c in OWNERSHIP_CASES])
def test_ownership_create_validation(stk, acct, body, field):
    before = snapshot(stk, acct)
    assert_error(acct.call("POST", "/ownership", body), 400, 1002, field)
    assert_unchanged(stk, acct, before)


def test_ownership_outside_bucket_root_refused(stk, acct):
    before = snapshot(stk, acct)
    outside = os.path.join(stk.dir, "outside-root")
    for uri in ("file://" + outside, "file://%s/../outside-root2" % stk.bucket_root, "file://relative/dir"):
        r = acct.call("POST", "/ownership", {"destination_conf": uri})
        assert r.status == 400, r
        assert r.json["errors"][0]["message"].startswith("destination_conf"), r
    assert not os.path.exists(outside) and not os.path.exists(os.path.join(stk.dir, "outside-root2"))
    assert_unchanged(stk, acct, before)


VALIDATE_CASES = [
    ("missing-all", {}, "destination_conf"),
    ("missing-challenge", {"ownership_challenge": None}, "ownership_challenge"),
    ("challenge-number", {"ownership_challenge": 7}, "ownership_challenge"),
    ("dest-number", {"destination_conf": 7}, "destination_conf"),
    ("unknown-field-bad-known", {"token": "x", "ownership_challenge": 7}, "ownership_challenge"),
]


@pytest.mark.parametrize("changes,field", [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES])
def test_ownership_validate_validation(stk, acct, changes, field):
    uri, d = stk.new_bucket_dir()
    own = assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    before = snapshot(stk, acct)
    body = {} if not changes else _apply({"destination_conf": uri, "ownership_challenge": "x"}, changes)
    assert_error(acct.call("POST", "/ownership/validate", body), 400, 1002, field)
    assert_unchanged(stk, acct, before)
    assert own["status"] == "pending"


def test_ownership_flow(stk, acct):
    uri, d = stk.new_bucket_dir()
    own = assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    assert re.fullmatch(r"[0-9a-f]{32}", own["id"])
    assert own["status"] == "pending" and own["destination_conf"] == uri
    assert own["filename"] == "ownership-challenge-%s.txt" % own["id"], own
    assert SUBMITTED_RE.match(own["submitted"]) and not own.get("validated")
    path = os.path.join(d, own["filename"])
    with open(path) as f:
        token = f.read().strip()
    assert len(token) >= 16, token
    listed = assert_ok(acct.call("GET", "/ownership"))
    assert {b["id"]: b["status"] for b in listed}[own["id"]] == "pending"
    # A wrong challenge: 400 1009; the bucket stays unusable.
    before = snapshot(stk, acct)
    assert_error(acct.call("POST", "/ownership/validate", {"destination_conf": uri, "ownership_challenge": token[::-1]}),
                 400, 1009, "ownership_challenge")
    assert_unchanged(stk, acct, before)
    assert_error(acct.call("POST", "", full_body(acct, destination_conf=uri)), 400, 1006, "destination_conf")
    # An unknown bucket: 404.
    other_uri, _ = stk.new_bucket_dir()
    r = acct.call("POST", "/ownership/validate", {"destination_conf": other_uri, "ownership_challenge": token})
    assert_error(r, 404, 1003, "destination_conf")
    # The token (blanks around it do not matter).
    v = assert_ok(acct.call("POST", "/ownership/validate",
                            {"destination_conf": uri, "ownership_challenge": "  %s\n" % token}))
    assert v["status"] == "success" and SUBMITTED_RE.match(v["validated"]), v
    assert v["id"] == own["id"]
    c = create(acct, full_body(acct, destination_conf=uri, time_limit=1))
    stk.wait_status(acct, c["id"])
    # Delete: 204, gone from the list, and full captures refuse it again.
    r = acct.call("DELETE", "/ownership/" + own["id"])
    assert r.status == 204 and r.body == b"", r
    assert own["id"] not in [b["id"] for b in assert_ok(acct.call("GET", "/ownership"))]
    assert_error(acct.call("DELETE", "/ownership/" + own["id"]), 404, 1003, "ownership_id")
    assert_error(acct.call("POST", "", full_body(acct, destination_conf=uri)), 400, 1006, "destination_conf")


def test_ownership_validate_with_filename_refused(stk, acct):
    """The challenge file's name is in create's answer: it proves nothing
    (issue 8). Only the token read from the bucket validates."""
    uri, d = stk.new_bucket_dir()
    own = assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    assert_error(acct.call("POST", "/ownership/validate",
                           {"destination_conf": uri, "ownership_challenge": own["filename"]}),
                 400, 1009, "ownership_challenge")
    listed = {o["id"]: o for o in assert_ok(acct.call("GET", "/ownership"))}
    assert listed[own["id"]]["status"] == "pending", listed


def test_ownership_of_another_accounts_bucket_refused(stk, acct):
    """B registers A's validated bucket, and validates it with the token it
    can read there: refused, A's bucket is A's alone."""
    b = stk.account()
    r = b.call("POST", "/ownership", {"destination_conf": acct.bucket})
    assert_error(r, 403, 10000, "destination_conf")
    assert assert_ok(b.call("GET", "/ownership")) in ([], None)
    assert_error(b.call("POST", "", full_body(b, destination_conf=acct.bucket)), 400, 1006, "destination_conf")
    # Both pending, A validates first: B's validation is refused after.
    uri, d = stk.new_bucket_dir()
    own_a = assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    own_b = assert_ok(b.call("POST", "/ownership", {"destination_conf": uri}))
    tokens = {}
    for own in (own_a, own_b):
        with open(os.path.join(d, own["filename"])) as f:
            tokens[own["id"]] = f.read().strip()
    v = assert_ok(acct.call("POST", "/ownership/validate",
                            {"destination_conf": uri, "ownership_challenge": tokens[own_a["id"]]}))
    assert v["status"] == "success"
    assert_error(b.call("POST", "/ownership/validate",
                        {"destination_conf": uri, "ownership_challenge": tokens[own_b["id"]]}),
                 403, 10000, "destination_conf")
    assert [o["status"] for o in assert_ok(b.call("GET", "/ownership"))] == ["pending"]


def test_ownership_shared_by_its_owner(stk, acct):
    """A's bucket is refused to B until A shares it with B; then B registers
    and validates it (with its own challenge) and captures into it. A third
    account is still refused."""
    b = stk.account()
    c = stk.account()
    share = {"destination_conf": acct.bucket, "account_id": b.id}
    assert_error(b.call("POST", "/ownership/share", dict(share, account_id=acct.id)), 404, 1003,
                 "destination_conf")
    assert_error(acct.call("POST", "/ownership/share", dict(share, account_id=acct.id)), 400, 1002, "account_id")
    assert_error(acct.call("POST", "/ownership/share", dict(share, account_id="x")), 400, 1002, "account_id")
    assert_error(acct.call("POST", "/ownership/share", dict(share, account_id=random_id())), 400, 1002,
                 "account_id")
    assert_error(acct.call("POST", "/ownership/share", share, token=acct.read), 403, 10000)
    assert_error(b.call("POST", "/ownership", {"destination_conf": acct.bucket}), 403, 10000, "destination_conf")
    assert assert_ok(acct.call("POST", "/ownership/share", share))["status"] == "success"
    own = assert_ok(b.call("POST", "/ownership", {"destination_conf": acct.bucket}))
    with open(os.path.join(acct.bucket_dir, own["filename"])) as f:
        token = f.read().strip()
    v = assert_ok(b.call("POST", "/ownership/validate", {"destination_conf": acct.bucket,
                                                         "ownership_challenge": token}))
    assert v["status"] == "success"
    assert_error(c.call("POST", "/ownership", {"destination_conf": acct.bucket}), 403, 10000, "destination_conf")
    # an unvalidated bucket cannot be shared
    uri, d = stk.new_bucket_dir()
    assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))
    assert_error(acct.call("POST", "/ownership/share", {"destination_conf": uri, "account_id": b.id}), 409, 1008,
                 "destination_conf")


def test_ownership_per_account(stk, acct):
    other = stk.account()
    assert assert_ok(other.call("GET", "/ownership")) in ([], None)
    r = other.call("POST", "/ownership/validate", {"destination_conf": acct.bucket, "ownership_challenge": "x"})
    assert r.status in (400, 404), r


# --- limits ------------------------------------------------------------------------------

def assert_busy(r, since, limit_s, words):
    """A 429 whose retry-after is the real wait: what is left of limit_s
    seconds counted from no earlier than `since` (a monotonic time taken
    before the request that set the limit), as a whole number of seconds
    rounded up; and the message says the same number after `words`."""
    msg = assert_error(r, 429, 1004)
    n = int(r.header("retry-after"))
    elapsed = time.monotonic() - since
    assert max(1, limit_s - elapsed - 1) <= n <= limit_s, (n, elapsed)
    assert msg.endswith("%s %d s" % (words, n)), (msg, n)
    return n


def test_limit_one_sample_per_minute_429(stk, acct):
    t0 = time.monotonic()
    assert_ok(acct.call("POST", "", simple_body()))
    before = snapshot(stk, acct)
    r = acct.call("POST", "", simple_body())
    assert_busy(r, t0, 60, "one sample capture per 60 seconds per account; next allowed in")
    assert r.header("x-should-retry") == "false"
    assert_unchanged(stk, acct, before)


def test_limit_one_active_full_429(stk, acct):
    t0 = time.monotonic()
    c = create(acct, full_body(acct, time_limit=60))
    before = snapshot(stk, acct)
    r = acct.call("POST", "", full_body(acct, time_limit=5))
    assert_busy(r, t0, 60, "only 1 pending or running full capture(s) per account; "
                           "the soonest reaches its time limit in")
    assert_unchanged(stk, acct, before)
    # Another account is not limited by this one.
    other = stk.account(bucket=True)
    o = create(other, full_body(other, time_limit=1))
    r = acct.call("PUT", "/%s/stop" % c["id"])
    assert 200 <= r.status < 300, r
    stk.wait_status(acct, c["id"])
    c2 = create(acct, full_body(acct, time_limit=1))
    stk.wait_status(acct, c2["id"])
    stk.wait_status(other, o["id"])


@pytest.mark.parametrize("kind", ["full", "simple"])
def test_limits_hold_under_concurrent_creates(stk, acct, kind):
    """12 creates at once on one account: exactly one gets through. (The
    full one runs until stopped: were it to end while the others are still
    being answered, a second create would rightly pass.)"""
    import threading
    body = full_body(acct, time_limit=300) if kind == "full" else simple_body(time_limit=1)
    barrier = threading.Barrier(12)
    got = []

    def one():
        barrier.wait()
        got.append(acct.call("POST", "", body).status)

    ts = [threading.Thread(target=one) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(got) == [200] + [429] * 11, got
    caps = assert_ok(acct.call("GET", ""))
    assert len(caps) == 1
    if kind == "full":
        assert 200 <= acct.call("PUT", "/%s/stop" % caps[0]["id"]).status < 300
    stk.wait_status(acct, caps[0]["id"])


# --- full captures end to end --------------------------------------------------------------

def test_full_capture_end_to_end(stk, acct):
    link = link_of(stk, AGENT1)
    want = udp_frames(link, 20, dport=5000)
    noise = udp_frames(link, 15, dport=6000) + tcp_frames(link, 5, dport=5000)
    seen = []
    # Ends by its packet limit once the 20 wanted frames are in, however long
    # sending takes on a busy machine (a time limit would race the sender).
    c = create(acct, full_body(acct, where=AGENT1.upper(), time_limit=300, packet_limit=20,
                               filter_v1={"protocol": 17, "destination_port": 5000, "source_address": "192.0.2.1"}))
    # Its status from when its share runs (polling only after the traffic
    # could start when the capture had already moved on).
    seen.append(wait_parts(stk, acct, c["id"])["status"])
    send(link, want[:10] + noise + want[10:])
    done = stk.wait_status(acct, c["id"], seen=seen)
    assert done["status"] == "success", done
    assert seen[0] == "running", seen
    # Statuses only move forward; which later ones a poll sees depends on the
    # machine's speed (a fast share passes conversion between looks).
    order = ["pending", "running", "conversion_pending", "conversion_running", "success"]
    assert all(x in order for x in seen) and seen == sorted(seen, key=order.index), seen
    obj = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT1))
    assert os.path.exists(obj), os.listdir(acct.bucket_dir)
    pk = tshark(obj)
    assert len(pk) == 20 == done["packets_captured"], (len(pk), done)
    assert count_markers(obj, want) == 20
    assert count_markers(obj, noise) == 0
    assert not os.path.exists(os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT2)))
    # The download is that file's packets.
    r = acct.call("GET", "/%s/download" % c["id"], token=acct.read, headers={"Accept": "application/vnd.tcpdump.pcap"})
    assert r.status == 200, r
    assert r.header("content-type") == "application/vnd.tcpdump.pcap"
    assert r.body[:4] in PCAP_MAGICS
    out = os.path.join(stk.dir, "dl-%s.pcap" % c["id"])
    with open(out, "wb") as f:
        f.write(r.body)
    assert len(tshark(out)) == 20
    assert done.get("stop_reason") == "packets", done
    assert not done.get("error_message")


def test_download_merges_two_agents(stk, acct):
    l1, l2 = link_of(stk, AGENT1), link_of(stk, AGENT2)
    f1 = udp_frames(l1, 10, dport=5001)
    f2 = udp_frames(l2, 12, dport=5001)
    c = create(acct, full_body(acct, where=COLO, time_limit=300, filter_v1={"destination_port": 5001}))
    wait_parts(stk, acct, c["id"], n=2)
    # Interleave in time so that a merge by timestamp is needed.
    send(l1, f1[:5])
    send(l2, f2[:6])
    send(l1, f1[5:])
    send(l2, f2[6:])
    stk.wait_captured(acct, c["id"], 22)
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert done["packets_captured"] == 22
    parts = {p["name"]: p for p in done.get("agents", [])}
    assert parts[AGENT1]["packets"] == 10 and parts[AGENT2]["packets"] == 12, parts
    o1 = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT1))
    o2 = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT2))
    assert len(tshark(o1)) == 10 and len(tshark(o2)) == 12
    for https in (False, True):
        r = stk.request("GET", acct.path("/%s/download" % c["id"]), token=acct.read, https=https)
        assert r.status == 200 and r.header("content-type") == "application/vnd.tcpdump.pcap", r
        out = os.path.join(stk.dir, "merged-%s-%d.pcap" % (c["id"], https))
        with open(out, "wb") as f:
            f.write(r.body)
        pk = tshark(out)
        assert len(pk) == 22 == capinfos_count(out)
        ts = [p[0] for p in pk]
        assert ts == sorted(ts), "merged file not in time order"
        assert count_markers(out, f1 + f2) == 22


def test_download_large_merged(stk, acct):
    """A few MB from two agents: the download is streamed whole, in time
    order, and its size is announced."""
    import threading
    l1, l2 = link_of(stk, AGENT1), link_of(stk, AGENT2)
    f1 = udp_frames(l1, 1500, dport=5008, size=1400)
    f2 = udp_frames(l2, 1500, dport=5008, size=1400)
    c = create(acct, full_body(acct, where=COLO, time_limit=300, filter_v1={"destination_port": 5008}))
    wait_parts(stk, acct, c["id"], n=2)
    ts = [threading.Thread(target=send, args=(l, f)) for l, f in ((l1, f1), (l2, f2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stk.wait_captured(acct, c["id"], 3000)
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 3000, done
    r = acct.call("GET", "/%s/download" % c["id"], timeout=60)
    assert r.status == 200, r
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == len(r.body)
    out = os.path.join(stk.dir, "large-%s.pcap" % c["id"])
    with open(out, "wb") as f:
        f.write(r.body)
    pk = tshark(out)
    assert len(pk) == 3000 == capinfos_count(out)
    assert all(p[1] == len(f1[0].wire) for p in pk)
    ts = [p[0] for p in pk]
    assert ts == sorted(ts)


def test_download_and_stop_conflicts(stk, acct):
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, filter_v1={"destination_port": 5003}))
    before = snapshot(stk, acct)
    assert_error(acct.call("GET", "/%s/download" % c["id"]), 409, 1008, "pcap_id")
    wait_parts(stk, acct, c["id"])
    assert_error(acct.call("GET", "/%s/download" % c["id"]), 409, 1008, "pcap_id")
    assert_unchanged(stk, acct, before)
    send(link, udp_frames(link, 5, dport=5003))
    stk.wait_captured(acct, c["id"], 5)
    r = acct.call("PUT", "/%s/stop" % c["id"])
    assert 200 <= r.status < 300, r
    got = assert_ok(acct.call("GET", "/" + c["id"]))
    assert SUBMITTED_RE.match(got.get("stop_requested", "")), got
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 5, done
    assert done["stop_requested"] == got["stop_requested"]
    assert done.get("stop_reason") == "user", done
    # Stop again: finished.
    assert_error(acct.call("PUT", "/%s/stop" % c["id"]), 409, 1008, "pcap_id")
    # Stop a sample capture.
    s = assert_ok(acct.call("POST", "", simple_body()))
    assert_error(acct.call("PUT", "/%s/stop" % s["id"]), 409, 1008, "pcap_id")
    s = stk.wait_status(acct, s["id"])
    if s["status"] == "failed":
        assert_error(acct.call("GET", "/%s/download" % s["id"]), 409, 1008, "pcap_id")


def test_failed_capture_no_packets(stk, acct):
    """The zero-packet rule (README): a full capture whose time ran out with
    no packet fails with Cloudflare's message."""
    c = create(acct, full_body(acct, time_limit=1, filter_v1={"destination_port": 5999}))
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "failed", done
    assert done["error_message"] == ("No packets matched the filter in the time limit given. "
                                     "Please modify the filter or try again."), done
    assert done["packets_captured"] == 0 and done["stop_reason"] == "time", done
    assert_error(acct.call("GET", "/%s/download" % c["id"]), 409, 1008, "pcap_id")


def test_stopped_capture_no_packets_fails(stk, acct):
    """The same rule when the user stopped a capture that had seen nothing."""
    c = create(acct, full_body(acct, time_limit=300, filter_v1={"destination_port": 5998}))
    wait_parts(stk, acct, c["id"])
    assert acct.call("PUT", "/%s/stop" % c["id"]).status == 200
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "failed", done
    assert done["error_message"] == ("No packets matched the filter before the capture was stopped. "
                                     "Please modify the filter or try again."), done
    assert done["packets_captured"] == 0 and done["stop_reason"] == "user", done
    assert [p["status"] for p in done["agents"]] == ["done"], done
    assert_error(acct.call("GET", "/%s/download" % c["id"]), 409, 1008, "pcap_id")


def pcap_bytes(n):
    """A classic pcap of n 60-byte Ethernet records, as an agent answers."""
    import struct
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    for i in range(n):
        out += struct.pack("<IIII", 1714564800 + i, 0, 60, 60) + bytes(60)
    return out


def answered_sample(bare, agent, packet_limit, packets):
    """A sample of a new account answered by a scripted agent with a pcap of
    `packets` records; returns (the object at creation, at its end). (The
    other scripted agents of this controller were asked too: the capture
    ends at the sample deadline, naming them.)"""
    acct = bare.account()
    s = assert_ok(acct.call("POST", "", simple_body(packet_limit=packet_limit)))
    r = bare.request("POST", "/agent/v1/sample?name=%s&id=%s" % (agent.name, s["id"]), token=agent.key,
                     raw=pcap_bytes(packets), headers={"Content-Type": "application/vnd.tcpdump.pcap"})
    assert r.status == 200, r
    done = bare.wait_status(acct, s["id"])
    assert {a["name"]: a["status"] for a in done["agents"]}[agent.name] == "done", done
    return s, done


def test_sample_packets_limit_stop_reason_and_remaining(bare):
    """A sample that holds packet_limit packets says stop_reason "packets"
    and packets_remaining 0; under the limit "none" and what is left."""
    agent = ScriptedAgent(bare, "smp1", "smp1")
    s, done = answered_sample(bare, agent, 2, 2)
    assert s["packets_remaining"] == 2 and s["packets_captured"] == 0, s
    assert done["status"] == "success", done
    assert done["stop_reason"] == "packets" and done["packets_captured"] == 2, done
    assert done["packets_remaining"] == 0, done
    s, done = answered_sample(bare, agent, 5, 3)
    assert done["status"] == "success", done
    assert done["stop_reason"] == "none" and done["packets_captured"] == 3, done
    assert done["packets_remaining"] == 2, done


def test_sample_late_answer_refused(bare):
    """A second answer to a sample that has ended is refused (409, the
    sample named final), before any of its parts is read."""
    agent = ScriptedAgent(bare, "smp3", "smp3")
    s, done = answered_sample(bare, agent, 5, 3)
    assert done["status"] == "success", done
    r = bare.request("POST", "/agent/v1/sample?name=%s&id=%s" % (agent.name, s["id"]), token=agent.key,
                     raw=pcap_bytes(4), headers={"Content-Type": "application/vnd.tcpdump.pcap"})
    assert r.status == 409 and r.json["errors"][0]["code"] == 1008, r.body
    assert "is final (success)" in r.json["errors"][0]["message"], r.body


def test_sample_no_packets_fails(bare):
    """And for a sample: an answer without a packet (here a scripted
    agent's empty pcap) makes a failed capture with the rule's message."""
    _, done = answered_sample(bare, ScriptedAgent(bare, "smp0", "smp0"), 100, 0)
    assert done["status"] == "failed", done
    assert done["error_message"].startswith("No packets matched the filter in the time window queried. "
                                            "Please modify the filter or try again."), done
    assert done["packets_captured"] == 0 and done["stop_reason"] == "none", done


def test_packet_limit(stk, acct):
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, packet_limit=7, filter_v1={"destination_port": 5004}))
    assert c["packets_remaining"] == 7, c     # packet_limit − packets_captured
    wait_parts(stk, acct, c["id"])
    frames = udp_frames(link, 20, dport=5004)
    send(link, frames)
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 7, done
    assert done.get("stop_reason") == "packets", done
    assert done["packets_remaining"] == 0, done
    obj = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT1))
    assert len(tshark(obj)) == 7
    assert count_markers(obj, frames[:7]) == 7


def test_byte_limit(stk, acct):
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, byte_limit=1000, filter_v1={"destination_port": 5005}))
    wait_parts(stk, acct, c["id"])
    frames = udp_frames(link, 20, dport=5005, size=200)
    size = len(frames[0].wire)
    send(link, frames)
    done = stk.wait_status(acct, c["id"])
    obj = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT1))
    pk = tshark(obj)
    assert sum(p[1] for p in pk) <= 1000
    # The limit is never exceeded: as many whole packets as fit.
    assert len(pk) == 1000 // size == done["packets_captured"], (size, pk, done)
    assert done["bytes_captured"] == size * len(pk), done
    assert done["status"] == "success" and done.get("stop_reason") == "bytes", done


def test_packets_remaining(stk, acct):
    """packets_remaining (in the docs' examples): packet_limit −
    packets_captured, floored at 0, while it runs and at its end; null
    without a packet_limit."""
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, packet_limit=10, filter_v1={"destination_port": 5013}))
    wait_parts(stk, acct, c["id"])
    send(link, udp_frames(link, 4, dport=5013))
    mid = stk.wait_captured(acct, c["id"], 4)
    assert mid["packets_remaining"] == 6, mid
    assert acct.call("PUT", "/%s/stop" % c["id"]).status == 200
    done = stk.wait_status(acct, c["id"])
    assert done["packets_captured"] == 4 and done["packets_remaining"] == 6, done
    listed = [x for x in assert_ok(acct.call("GET", "")) if x["id"] == c["id"]][0]
    assert listed["packets_remaining"] == 6, listed
    c = create(acct, full_body(acct, time_limit=1))
    assert "packets_remaining" in c and c["packets_remaining"] is None, c
    stk.wait_status(acct, c["id"])


def test_address_error_quotes_the_whole_value(stk, acct):
    before = snapshot(stk, acct)
    for value in ("not-an-ip", "10.0.0.1-x"):
        msg = assert_error(acct.call("POST", "", full_body(acct, filter_v1={"source_address": value})), 400, 1002,
                           "filter_v1.source_address")
        assert msg == 'filter_v1.source_address: "%s" is not an IPv4 or IPv6 address or range' % value, msg
    assert_unchanged(stk, acct, before)


def test_progress_reported_while_running(stk, acct):
    """Packets show in the capture's counters while it runs, not only at its
    end. (How soon after the POST the agent starts is a benchmark figure,
    bench/latency.py, not a test.)"""
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, filter_v1={"destination_port": 5007}))
    wait_parts(stk, acct, c["id"])
    send(link, udp_frames(link, 6, dport=5007))

    def progressed():
        o = assert_ok(acct.call("GET", "/" + c["id"], token=acct.read))
        assert o["status"] == "running", o
        return o if o["packets_captured"] == 6 else None

    obj = until(progressed, "6 packets reported while running")
    assert obj["bytes_captured"] > 0 and obj["agents"][0]["packets"] == 6, obj
    assert acct.call("PUT", "/%s/stop" % c["id"]).status == 200
    assert stk.wait_status(acct, c["id"])["status"] == "success"


def test_time_limit(stk, acct):
    """Frames flow before, during and after the window (so none is needed at
    a particular moment): the capture ends by its time limit, and what it
    holds spans at most time_limit seconds."""
    link = link_of(stk, AGENT1)
    with Steady(link, frames=udp_frames(link, 5, dport=5006)):
        c = create(acct, full_body(acct, time_limit=2, filter_v1={"destination_port": 5006}))
        done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] > 0, done
    assert done.get("stop_reason") == "time", done
    obj = os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (c["id"], AGENT1))
    ts = [p[0] for p in tshark(obj)]
    assert len(ts) == done["packets_captured"]
    assert ts[-1] - ts[0] <= 2.0, "packets span %.3fs of a 2 s capture" % (ts[-1] - ts[0])


# --- failures: agent lost, controller restarted ---------------------------------------------

def _lone_stack(request, grace):
    if os.geteuid() != 0:
        pytest.fail("needs root")
    s = Stack(tls=False, controller_args=["--grace", str(grace), "--agent-timeout", "3"])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent("lone1", "solo")
    return s


@pytest.fixture
def lone(request):
    """A stack of its own (one agent), for tests that kill processes. The
    grace after a controller start (20 s) covers the agent's reconnection
    backoff (at most 5 s) on a slow machine."""
    return _lone_stack(request, 20)


@pytest.fixture
def lone_nograce(request):
    """The same with a 1 s grace, where no controller restart is involved."""
    return _lone_stack(request, 1)


def test_agent_killed_capture_fails(lone_nograce):
    lone = lone_nograce
    acct = lone.account(bucket=True)
    c = create(acct, full_body(acct, where="solo", time_limit=60))
    wait_parts(lone, acct, c["id"])
    t0 = time.monotonic()
    lone.agents[0].kill()
    done = lone.wait_status(acct, c["id"])
    took = time.monotonic() - t0
    assert done["status"] == "failed", done
    assert done.get("error_message") and "lone1" in done["error_message"], done
    assert took > 2.0, took   # not before --agent-timeout 3 (how much later depends on the machine)
    # No agent left in the colo: new captures say so.
    assert_error(acct.call("POST", "", full_body(acct, where="solo")), 400, 1007, "colo_name")


def test_controller_sigkill_mid_capture(lone):
    acct = lone.account(bucket=True)
    link = lone.agents[0].link
    first = udp_frames(link, 5, dport=5010)
    second = udp_frames(link, 6, dport=5010)
    # A finished capture from before the crash.
    old = create(acct, full_body(acct, where="solo", time_limit=1))
    old = lone.wait_status(acct, old["id"])
    # Ends by its packet limit, with the last frames, while the controller is
    # down (or soon after): never by a time limit racing the sender.
    c = create(acct, full_body(acct, where="solo", time_limit=300, packet_limit=11,
                               filter_v1={"destination_port": 5010}))
    wait_parts(lone, acct, c["id"])
    send(link, first)
    lone.controller.kill()
    # The agent keeps capturing while the controller is away.
    send(link, second)
    time.sleep(1.0)  # a downtime, not a wait for anything
    lone.controller.start()
    done = lone.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert done["packets_captured"] == 11, done
    obj = os.path.join(acct.bucket_dir, "pcap_%s_lone1.pcap" % c["id"])
    assert count_markers(obj, first + second) == 11
    # Tokens (write, read, legacy), buckets and captures survived.
    ids = [x["id"] for x in assert_ok(acct.call("GET", "", token=acct.read))]
    assert c["id"] in ids and old["id"] in ids
    assert assert_ok(acct.call("GET", "/" + old["id"]))["status"] == old["status"]
    h = {"X-Auth-Email": acct.email, "X-Auth-Key": acct.key}
    assert assert_ok(lone.request("GET", acct.path("/ownership"), headers=h))[0]["status"] == "success"
    r = acct.call("GET", "/%s/download" % c["id"])
    assert r.status == 200 and r.body[:4] in PCAP_MAGICS
    # And it all keeps working: a new capture on the restarted controller.
    n = create(acct, full_body(acct, where="solo", time_limit=1))
    lone.wait_status(acct, n["id"])


def test_controller_restart_running_capture_without_agent_fails(lone):
    """A capture whose agent does not come back after a controller restart
    fails after the grace period, with an error message."""
    acct = lone.account(bucket=True)
    c = create(acct, full_body(acct, where="solo", time_limit=60))
    wait_parts(lone, acct, c["id"])
    lone.controller.kill()
    lone.agents[0].kill()
    lone.controller.start()
    done = lone.wait_status(acct, c["id"])
    assert done["status"] == "failed" and done.get("error_message"), done


def test_agents_list_shows_the_fleet(stk, acct):
    """pcapd extension: GET …/pcaps/agents lists the agents the controller knows."""
    r = acct.call("GET", "/agents")
    assert r.status == 200, r.body
    body = r.json
    names = {a["name"]: a for a in body["result"]}
    for a in stk.agents:
        assert a.name in names, names
        assert names[a.name]["colo"] == a.colo
        assert names[a.name]["online"] is True
    # read scope is enough; no credential is not
    assert acct.call("GET", "/agents", token=acct.read).status == 200
    assert stk.request("GET", f"/accounts/{acct.id}/pcaps/agents").status == 401


# --- the status lifecycle, state by state ----------------------------------------------------

def test_status_lifecycle_every_state_in_order(bare):
    """pending → running → conversion_pending → conversion_running →
    success, each state seen because the (scripted) agents hold it: two
    agents, so that one captured share and one still running is running, and
    one delivered share beside one waiting keeps conversion_running."""
    acct = bare.account(bucket=True)
    a1, a2 = ScriptedAgent(bare, "fsm1", "fsm"), ScriptedAgent(bare, "fsm2", "fsm")
    c = create(acct, full_body(acct, where="fsm", time_limit=300, packet_limit=5))
    seen = [c["status"]]

    def status(want, parts):
        obj = assert_ok(acct.call("GET", "/" + c["id"], token=acct.read))
        if obj["status"] != seen[-1]:
            seen.append(obj["status"])
        assert obj["status"] == want, obj
        assert {p["name"]: p["status"] for p in obj["agents"]} == parts, obj
        return obj

    status("pending", {"fsm1": "assigned", "fsm2": "assigned"})
    for a in (a1, a2):
        assert c["id"] in [s["id"] for s in a.poll()["start"]]
    a1.report([a1.job(c["id"], "running", 2)])
    status("running", {"fsm1": "running", "fsm2": "assigned"})
    a2.report([a2.job(c["id"], "running", 1)])
    a1.report([a1.job(c["id"], "captured", 5, "packets")])
    obj = status("running", {"fsm1": "captured", "fsm2": "running"})
    assert obj["packets_captured"] == 6, obj
    a2.report([a2.job(c["id"], "captured", 3, "packets")])
    status("conversion_pending", {"fsm1": "captured", "fsm2": "captured"})
    a1.report([a1.job(c["id"], "uploading", 5, "packets")])
    status("conversion_running", {"fsm1": "uploading", "fsm2": "captured"})
    a1.report([a1.job(c["id"], "done", 5, "packets")])
    status("conversion_running", {"fsm1": "done", "fsm2": "captured"})
    a2.report([a2.job(c["id"], "uploading", 3, "packets")])
    status("conversion_running", {"fsm1": "done", "fsm2": "uploading"})
    a2.report([a2.job(c["id"], "done", 3, "packets")])
    done = status("success", {"fsm1": "done", "fsm2": "done"})
    assert done["packets_captured"] == 8 and done["stop_reason"] == "packets", done
    assert seen == ["pending", "running", "conversion_pending", "conversion_running", "success"], seen
    # Terminal: a late report changes nothing.
    a1.report([a1.job(c["id"], "running", 1)])
    status("success", {"fsm1": "done", "fsm2": "done"})


def test_status_lifecycle_skipped_states_and_failure(bare):
    """A share may skip states (running → done between two reports); a
    failure at any point ends the capture failed, naming the agent."""
    acct = bare.account(bucket=True)
    a = ScriptedAgent(bare, "fsm3", "fsm3")
    c = create(acct, full_body(acct, where="fsm3", time_limit=300))
    a.report([a.job(c["id"], "done", 4, "time")])
    done = assert_ok(acct.call("GET", "/" + c["id"]))
    assert done["status"] == "success" and done["packets_captured"] == 4, done
    c = create(acct, full_body(acct, where="fsm3", time_limit=300))
    a.report([a.job(c["id"], "captured", 4, "time")])
    assert assert_ok(acct.call("GET", "/" + c["id"]))["status"] == "conversion_pending"
    a.report([dict(a.job(c["id"], "failed", 4, "error"), error="upload to file:///x: disk full")])
    done = assert_ok(acct.call("GET", "/" + c["id"]))
    assert done["status"] == "failed", done
    assert "agent fsm3: upload to file:///x: disk full" in done["error_message"], done


def test_status_lifecycle_real_agent_in_order(stk, acct):
    """With a real agent the states pass quickly (a file:// bucket takes
    the file at once), so which are seen depends on timing; what is seen is
    always in the lifecycle's order, and the share ends done."""
    order = ["pending", "running", "conversion_pending", "conversion_running", "success"]
    link = link_of(stk, AGENT1)
    c = create(acct, full_body(acct, time_limit=300, packet_limit=3, filter_v1={"destination_port": 5011}))
    seen = [c["status"]]
    wait_parts(stk, acct, c["id"])
    send(link, udp_frames(link, 3, dport=5011))
    done = stk.wait_status(acct, c["id"], seen=seen)
    assert done["status"] == "success", done
    assert seen == sorted(set(seen), key=order.index), seen
    assert [p["status"] for p in done["agents"]] == ["done"], done


# --- list paging ----------------------------------------------------------------------------

def test_list_pages_and_true_total(bare):
    """GET …/pcaps takes Cloudflare's page and per_page (default: the 50
    newest), result_info counts every capture of the account, and a page
    answered from the list cache is never another page's or a stale one."""
    acct = bare.account(bucket=True)
    ScriptedAgent(bare, "pg1", "pg")
    made = [create(acct, full_body(acct, where="pg1", time_limit=300))["id"] for _ in range(53)]
    newest = made[::-1]

    def page(query=""):
        r = acct.call("GET", query, token=acct.read)
        body = r.json
        assert_ok(r)
        return [c["id"] for c in body["result"]], body["result_info"]

    for _ in range(2):      # the second time from the cache
        ids, info = page()
        assert ids == newest[:50]
        assert info == {"page": 1, "per_page": 50, "count": 50, "total_count": 53, "total_pages": 2}, info
        ids, info = page("?page=2")
        assert ids == newest[50:]
        assert info == {"page": 2, "per_page": 50, "count": 3, "total_count": 53, "total_pages": 2}, info
        ids, info = page("?per_page=10&page=6")
        assert ids == newest[50:] and info["total_pages"] == 6, info
        ids, info = page("?page=3")
        assert ids == [] and info["count"] == 0 and info["total_count"] == 53, info
    ids, info = page("?per_page=1000")
    assert ids == newest and info["per_page"] == 1000, info
    # A new capture moves every page at once.
    new = create(acct, full_body(acct, where="pg1", time_limit=300))["id"]
    ids, info = page()
    assert ids == [new] + newest[:49] and info["total_count"] == 54, info
    ids, info = page("?page=2")
    assert ids == newest[49:], ids
    # The parameter named, and bounded.
    for query, field in (("?per_page=0", "per_page: 0 is outside 1..1000"),
                         ("?per_page=1001", "per_page: 1001 is outside 1..1000"),
                         ("?page=0", "page: 0 is outside 1..1000000"),
                         ("?page=two", 'page: "two" is not a whole number'),
                         ("?page=-1&per_page=5", 'page: "-1" is not a whole number')):
        assert_error(acct.call("GET", query, token=acct.read), 400, 1002, field)
    # Empty values are absent ones (forms send them).
    assert page("?page=&per_page=")[1]["per_page"] == 50


def test_ownership_list_newest_first(stk, acct):
    """Buckets list newest first, as captures do."""
    made = [acct.bucket_id]
    for _ in range(2):
        uri, _ = stk.new_bucket_dir()
        made.append(assert_ok(acct.call("POST", "/ownership", {"destination_conf": uri}))["id"])
    assert [b["id"] for b in assert_ok(acct.call("GET", "/ownership"))] == made[::-1]
