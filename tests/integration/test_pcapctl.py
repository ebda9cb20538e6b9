# SPDX-License-Identifier: MIT
"""pcapctl against a real controller and agent (stack.py): every command, its
table and --json outputs (which must parse as the API's objects), downloads to
a file and to standard output (read with tshark), and the exit status and
message for API errors, bad flags and bad connections."""

import json
import os
import subprocess
import time

import pytest

from stack import Stack, binary, random_id, send, udp_frames
from waits import WAIT

AGENT, COLO = "ctl1", "ctlcolo"
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


@pytest.fixture(scope="module")
def stk(request):
    if os.geteuid() != 0:
        pytest.fail("the pcapctl tests need root (network namespaces, packet sockets)")
    # Grace 20 s: the last test restarts the controller; the agent's
    # reconnection backoff is at most 5 s, and the machine may be slow.
    s = Stack(tls=True, controller_args=["--grace", "20", "--agent-timeout", "10"])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(AGENT, COLO)
    return s


@pytest.fixture
def acct(stk):
    return stk.account(bucket=True)


class Ctl:
    """Runs pcapctl with PCAPD_URL/TOKEN/ACCOUNT for one account."""

    def __init__(self, stk, acct, token=None, url=None):
        self.stk = stk
        self.acct = acct
        self.env = dict(os.environ)
        for k in ("PCAPD_URL", "PCAPD_TOKEN", "PCAPD_ACCOUNT", "PCAPD_CACERT"):
            self.env.pop(k, None)
        self.env.update(PCAPD_URL=url or stk.http_url, PCAPD_TOKEN=token or acct.write, PCAPD_ACCOUNT=acct.id)

    def run(self, *args, env=None, input=None, timeout=2 * WAIT):
        e = dict(self.env)
        if env:
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        return subprocess.run([binary("pcapctl")] + [str(a) for a in args], env=e, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, "pcapctl %s: exit %d\n%s" % (" ".join(map(str, args)), r.returncode,
                                                                 r.stderr.decode(errors="replace"))
        return r

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, **kw).stdout)

    def fails(self, status, *args, **kw):
        r = self.run(*args, **kw)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == status, "pcapctl %s: exit %d, expected %d\n%s" % (
            " ".join(map(str, args)), r.returncode, status, err)
        assert "pcapctl" in err, err          # a message or the usage, never silence
        return err


def api_obj(acct, pid):
    r = acct.call("GET", "/" + pid)
    assert r.status == 200, r
    return r.json["result"]


def api_ids(acct):
    return sorted(c["id"] for c in acct.call("GET", "").json["result"])


def tshark_count(path=None, data=None):
    r = subprocess.run(["tshark", "-n", "-r", path or "-", "-T", "fields", "-e", "frame.number"], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = "\n".join(l for l in r.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l and "could be dangerous" not in l)
    assert r.returncode == 0 and not err.strip(), "tshark: %s" % err
    return len([l for l in r.stdout.decode().splitlines() if l.strip()])


def wait_running(stk, acct, pid, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        o = api_obj(acct, pid)
        if any(p.get("status") == "running" for p in o.get("agents") or []):
            return o
        assert o["status"] not in ("success", "failed"), o
        time.sleep(0.03)
    raise AssertionError("capture %s never running" % pid)


def wait_for_new_capture(acct, before, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = set(api_ids(acct)) - set(before)
        if new:
            return new.pop()
        time.sleep(0.03)
    raise AssertionError("no capture appeared")


# --- help, usage --------------------------------------------------------------------

def test_help_version_usage(stk, acct):
    ctl = Ctl(stk, acct)
    out = ctl.ok("--help").stdout.decode()
    for cmd in ("create", "list", "get", "download", "stop", "bucket"):
        assert cmd in out
    assert ctl.ok("--version").stdout.decode().startswith("pcapctl ")
    for cmd in (["create"], ["list"], ["get"], ["download"], ["stop"], ["bucket"], ["bucket", "add"]):
        r = ctl.ok(*(cmd + ["--help"]))
        assert b"usage: pcapctl" in r.stdout, cmd
    ctl.ok("help", "get")
    ctl.fails(2)
    ctl.fails(2, "nosuchcommand")
    ctl.fails(2, "--nosuchflag", "list")


# --- buckets ------------------------------------------------------------------------

def test_bucket_add_validate_list_rm(stk, acct):
    ctl = Ctl(stk, acct)
    uri, d = stk.new_bucket_dir()
    out = ctl.ok("bucket", "add", uri).stdout.decode()
    objs = [b for b in ctl.json("bucket", "list", "--json") if b["destination_conf"] == uri]
    assert len(objs) == 1
    own = objs[0]
    assert own["status"] == "pending" and own["id"] in out and own["filename"] in out
    # --json objects are the API's objects.
    api = [b for b in acct.call("GET", "/ownership").json["result"] if b["id"] == own["id"]][0]
    assert own == api
    table = ctl.ok("bucket", "list").stdout.decode()
    assert own["id"] in table and "pending" in table
    with open(os.path.join(d, own["filename"])) as f:
        token = f.read().strip()
    err = ctl.fails(1, "bucket", "validate", uri, token + "x")
    assert "ownership_challenge" in err and "(HTTP 400, code 1009)" in err, err
    v = ctl.json("bucket", "validate", uri, token, "--json")
    assert v["status"] == "success" and v["id"] == own["id"] and v["validated"]
    assert [b for b in ctl.json("bucket", "list", "--json") if b["id"] == own["id"]][0]["status"] == "success"
    r = ctl.ok("bucket", "rm", own["id"])
    assert r.stdout == b""
    assert own["id"] not in [b["id"] for b in ctl.json("bucket", "list", "--json")]
    err = ctl.fails(1, "bucket", "rm", own["id"])
    assert "(HTTP 404, code 1003)" in err
    ctl.fails(2, "bucket", "rm", "not-an-id")
    ctl.fails(2, "bucket", "add", "not a uri")
    ctl.fails(2, "bucket", "validate", uri)
    ctl.fails(2, "bucket", "frobnicate")
    err = ctl.fails(1, "bucket", "add", "ftp://example/x")
    assert "destination_conf" in err and "HTTP 400" in err


# --- captures --------------------------------------------------------------------------

def test_create_full_wait_and_output(stk, acct):
    ctl = Ctl(stk, acct)
    link = stk.agents[0].link
    out = os.path.join(stk.dir, "ctl-wait-%s.pcap" % random_id()[:8])
    before = api_ids(acct)
    # Ends by its packet limit with the last wanted frame, however long the
    # sending takes (a time limit would race the sender on a busy machine).
    p = subprocess.Popen([binary("pcapctl"), "create", "full", "--colo", COLO, "--bucket", acct.bucket,
                          "--time-limit", "300", "--packet-limit", "8", "--proto", "udp", "--dport", "5100",
                          "--wait", "-o", out],
                         env=ctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = wait_for_new_capture(acct, before)
        wait_running(stk, acct, pid)
        want = udp_frames(link, 8, dport=5100)
        send(link, udp_frames(link, 4, dport=5101) + want)
        so, se = p.communicate(timeout=2 * WAIT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, se.decode(errors="replace")
    assert pid in so.decode()
    assert tshark_count(out) == 8
    assert not os.path.exists(out + ".part")
    assert api_obj(acct, pid)["status"] == "success"
    assert api_obj(acct, pid)["packets_captured"] == 8


def test_create_json_get_list_stop_download(stk, acct):
    ctl = Ctl(stk, acct)
    link = stk.agents[0].link
    c = ctl.json("create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--time-limit", "60",
                 "--packet-limit", "100", "--byte-limit", "1M", "--dport", "5102", "--json")
    api = api_obj(acct, c["id"])
    for k in ("id", "type", "system", "submitted", "time_limit", "colo_name", "destination_conf", "filter_v1"):
        assert c[k] == api[k], k
    assert c["byte_limit"] == 1024 * 1024 or c["byte_limit"] == 1000000, c
    assert c["filter_v1"] == {"destination_port": 5102}
    listed = ctl.json("list", "--json")
    assert c["id"] in [x["id"] for x in listed]
    assert [x for x in listed if x["id"] == c["id"]][0]["type"] == "full"
    table = ctl.ok("list").stdout.decode()
    assert c["id"] in table
    g = ctl.json("get", c["id"], "--json")
    assert g["id"] == c["id"] and g["colo_name"] == AGENT
    assert c["id"] in ctl.ok("get", c["id"]).stdout.decode()
    # Downloading before the end: the API's 409.
    err = ctl.fails(1, "download", c["id"], "-o", os.path.join(stk.dir, "early.pcap"))
    assert "(HTTP 409, code 1008)" in err
    assert not os.path.exists(os.path.join(stk.dir, "early.pcap"))
    wait_running(stk, acct, c["id"])
    send(link, udp_frames(link, 6, dport=5102))
    stk.wait_captured(acct, c["id"], 6)
    r = ctl.ok("stop", c["id"])
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done["packets_captured"] == 6 and done.get("stop_requested"), done
    err = ctl.fails(1, "stop", c["id"])
    assert "(HTTP 409, code 1008)" in err
    path = os.path.join(stk.dir, "ctl-dl-%s.pcap" % c["id"])
    ctl.ok("download", c["id"], "-o", path)
    assert tshark_count(path) == 6
    r = ctl.ok("download", c["id"], "-o", "-")
    assert r.stdout[:4] in PCAP_MAGICS
    assert tshark_count(data=r.stdout) == 6
    ctl.fails(2, "download", c["id"])          # -o is required


def test_filter_flags_become_filter_v1(stk, acct):
    ctl = Ctl(stk, acct)
    c = ctl.json("create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--time-limit", "30",
                 "--src", "192.0.2.1", "--dst", "192.0.2.0/24", "--sport", "30000", "--dport", "5200;5201",
                 "--proto", "udp", "--bpf", "udp", "--json")
    f = c["filter_v1"]
    assert f["source_address"] == "192.0.2.1" and f["destination_address"] == "192.0.2.0/24"
    assert f["source_port"] in (30000, "30000") and f["destination_port"] == "5200;5201"
    assert f["protocol"] in (17, "udp") and f["bpf"] == "udp"
    assert api_obj(acct, c["id"])["filter_v1"] == f
    ctl.ok("stop", c["id"])
    stk.wait_status(acct, c["id"])


def test_create_sample_and_rate_limit(stk, acct):
    ctl = Ctl(stk, acct)
    out = ctl.ok("create", "sample", "--time-limit", "2", "--packet-limit", "5").stdout.decode().strip()
    assert len(out) == 32 and out in api_ids(acct)
    before = api_ids(acct)
    err = ctl.fails(1, "create", "sample", "--time-limit", "2", "--packet-limit", "5")
    assert "(HTTP 429, code 1004)" in err, err
    assert api_ids(acct) == before


# --- errors ----------------------------------------------------------------------------------

def test_errors_from_the_api(stk, acct):
    ctl = Ctl(stk, acct)
    before = api_ids(acct)
    err = ctl.fails(1, "get", random_id())
    assert "pcap_id" in err and "(HTTP 404, code 1003)" in err
    err = ctl.fails(1, "create", "full", "--colo", "nowhere", "--bucket", acct.bucket, "--time-limit", "5")
    assert "colo_name" in err and "(HTTP 400, code 1007)" in err
    uri, _ = stk.new_bucket_dir()
    err = ctl.fails(1, "create", "full", "--colo", AGENT, "--bucket", uri, "--time-limit", "5")
    assert "destination_conf" in err and "(HTTP 400, code 1006)" in err
    err = ctl.fails(1, "list", env={"PCAPD_TOKEN": "pcapd_wrong"})
    assert "HTTP 401" in err and "10000" in err
    err = ctl.fails(1, "create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--time-limit", "5",
                    env={"PCAPD_TOKEN": acct.read})
    assert "HTTP 403" in err
    other = stk.account()
    err = ctl.fails(1, "list", env={"PCAPD_ACCOUNT": other.id})
    assert "HTTP 403" in err
    assert api_ids(acct) == before


def test_errors_before_any_request(stk, acct):
    ctl = Ctl(stk, acct)
    before = api_ids(acct)
    for args, flag in (
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--time-limit", "301"], "--time-limit"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--packet-limit", "0"], "--packet-limit"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--dport", "70000"], "--dport"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--src", "999.1.1.1"], "--src"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--proto", "nosuch"], "--proto"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--bpf", "tcp port"], "--bpf"),
            (["create", "full", "--colo", AGENT, "--bucket", "nope"], "--bucket"),
            (["create", "sample", "--bucket", acct.bucket], "--bucket"),
            (["create", "sample", "--colo", AGENT], "--colo"),
            (["create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--offset-time", "2024-01-01T00:00:00Z"],
             "--offset-time"),
            (["create", "sample", "--offset-time", "yesterday"], "--offset-time"),
            (["create", "half"], "half"),
            (["get", "xyz"], "xyz"),
            (["stop", "12"], "12"),
            (["list", "--bogus"], "--bogus"),
            (["get"], "ID"),
    ):
        err = ctl.fails(2, *args)
        assert flag in err, (args, err)
    # An unwritable -o costs no capture.
    r = ctl.run("create", "full", "--colo", AGENT, "--bucket", acct.bucket, "--time-limit", "5", "-o",
                "/nonexistent-dir/x.pcap")
    assert r.returncode != 0 and b"/nonexistent-dir/x.pcap" in r.stderr, r.stderr
    # Missing settings.
    err = ctl.fails(2, "list", env={"PCAPD_TOKEN": None})
    assert "token" in err.lower()
    err = ctl.fails(2, "list", env={"PCAPD_ACCOUNT": None})
    assert "account" in err.lower()
    assert api_ids(acct) == before


def test_unreachable_controller(stk, acct):
    ctl = Ctl(stk, acct, url="http://127.0.0.1:9")
    err = ctl.fails(1, "list")
    assert "127.0.0.1" in err or "connect" in err.lower(), err


# --- connection flags, HTTPS -------------------------------------------------------------

def test_https_cacert_insecure(stk, acct):
    ctl = Ctl(stk, acct, url=stk.https_url)
    ctl.fails(1, "list")                                   # self-signed: not trusted
    assert ctl.json("list", "--json", "--cacert", stk.cert) == []
    assert ctl.json("list", "--json", env={"PCAPD_CACERT": stk.cert}) == []
    assert ctl.json("list", "--json", "--insecure") == []
    assert ctl.json("--cacert", stk.cert, "bucket", "list", "--json")[0]["destination_conf"] == acct.bucket


def test_flags_override_environment(stk, acct):
    other = stk.account()
    ctl = Ctl(stk, other, url="http://127.0.0.1:9")
    got = ctl.json("list", "--json", "--url", stk.http_url, "--account", acct.id, "--token", acct.read)
    assert got == []
    got = ctl.json("--url", stk.http_url, "--account", acct.id, "--token", acct.write, "bucket", "list", "--json")
    assert [b["destination_conf"] for b in got] == [acct.bucket]


# --- last: restarts the module's controller ------------------------------------------------

def test_wait_survives_controller_restart(stk, acct):
    """create --wait -o keeps following the capture while the controller is
    killed and restarted, then downloads it."""
    ctl = Ctl(stk, acct)
    link = stk.agents[0].link
    out = os.path.join(stk.dir, "ctl-restart.pcap")
    before = api_ids(acct)
    p = subprocess.Popen([binary("pcapctl"), "create", "full", "--colo", AGENT, "--bucket", acct.bucket,
                          "--time-limit", "300", "--packet-limit", "5", "--dport", "5400", "--wait", "-o", out],
                         env=ctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = wait_for_new_capture(acct, before)
        wait_running(stk, acct, pid)
        send(link, udp_frames(link, 3, dport=5400))
        stk.restart_controller(kill=True)
        send(link, udp_frames(link, 2, dport=5400))
        so, se = p.communicate(timeout=2 * WAIT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, se.decode(errors="replace")
    assert tshark_count(out) == 5
    assert api_obj(acct, pid)["packets_captured"] == 5
