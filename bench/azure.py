#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Azure dialect's two figures (issue 10), with Cloudflare's as the anchor
in the same invocation:

1. PUT of a packet capture -> its first packet on the agent: p50 and p99 over
   N sequential sessions (target p50 <= 100 ms). A real controller (HTTPS, as
   the SDK talks) and agent (tests/integration/stack.py) on one machine; a
   generator in the agent link's namespace sends RATE UDP frames per second
   without pause, so a session's first packet follows its socket's readiness
   within 1/RATE. Each session is a classic capture into a local file on the
   agent with totalBytesPerSession 150 (the first 106-byte packet fits, the
   second would not), so it ends by itself right after its first packet; its
   file is read once published. t0 = the wall clock just before the PUT;
   latency = the first record's kernel timestamp - t0. Shown too: the PUT's
   round trip and PUT -> the create operation Succeeded (polled every 10 ms,
   what beginCreateAndWait waits for). The anchor: the same with Cloudflare's
   POST of a full capture (packet_limit 1) into a file:// bucket, alternating
   with the Azure sessions.

2. queryStatus throughput: wrk with CONNS connections for DURATION against
   POST …/packetCaptures/{name}/queryStatus (202 + Location) of a running
   session, and against GET of the operation URL it returns (200 + the status,
   read from the database), over HTTPS with a read token.

The machine's load average is printed before and after: the figures are for
this machine as it was; rerun on a quiet one.

    bench/azure.py [BUILD_DIR]     env: SESSIONS=100 RATE=10000 DURATION=10s CONNS=100
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from latency import first_ts, pct  # noqa: E402


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def row(name, v):
    print("%-44s %9.1f %9.1f %9.1f" % (name, pct(v, 50), pct(v, 99), max(v)))


def wait_for(pred, what, timeout=30.0, interval=0.01):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError("not within %.0f s: %s" % (timeout, what))
        time.sleep(interval)


class KeepAlive:
    """One HTTPS connection kept open, as the SDK keeps its connections: the
    handshake is not part of any request measured."""

    def __init__(self, s, token):
        import http.client
        self.conn = http.client.HTTPSConnection("127.0.0.1", s.controller.https_port, context=s._ssl, timeout=30)
        self.token = token

    def request(self, method, path, body=None):
        h = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        out = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(out) if out else None


def azure_session(s, acct, agent, i, ka):
    from stack import path_of
    name = "lat%d" % i
    rel = "bench/%s.cap" % name
    body = {"properties": {"target": acct.vm(agent.name), "storageLocation": {"filePath": "/var/captures/" + rel},
                           "totalBytesPerSession": 150, "filters": [{"protocol": "UDP", "remotePort": "7777"}]}}
    t0 = time.time()
    status, headers, _ = ka.request("PUT", acct.arm_path(name), body)
    t1 = time.time()
    if status != 201:
        raise RuntimeError("PUT: %d" % status)
    op = path_of(headers["azure-asyncoperation"])

    def succeeded():
        st, _, o = ka.request("GET", op)
        return st == 200 and o["status"] != "InProgress" and o
    o = wait_for(succeeded, "%s created" % name)
    t2 = time.time()
    if o["status"] != "Succeeded":
        raise RuntimeError("%s: %r" % (name, o))
    path = os.path.join(agent.local_root, rel)
    wait_for(lambda: os.path.exists(path), "%s published" % path)
    return (first_ts(path) - t0) * 1000, (t1 - t0) * 1000, (t2 - t0) * 1000


def cloudflare_session(s, acct, agent):
    body = {"type": "full", "system": "magic-transit", "time_limit": 10, "packet_limit": 1,
            "colo_name": agent.name, "destination_conf": acct.bucket, "filter_v1": {"destination_port": 7777}}
    t0 = time.time()
    r = acct.call("POST", "", body)
    if r.status != 200:
        raise RuntimeError("create: %r" % r)
    pid = r.json["result"]["id"]
    done = s.wait_status(acct, pid, timeout=30)
    if done["status"] != "success":
        raise RuntimeError("capture %s: %r" % (pid, done))
    return (first_ts(os.path.join(acct.bucket_dir, "pcap_%s_%s.pcap" % (pid, agent.name))) - t0) * 1000


WRK_POST = 'wrk.method = "POST"\nwrk.headers["Content-Length"] = "0"\n'


def wrk(url, token, duration, conns, post=False):
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%s" % duration, "--latency", "-H", "Authorization: Bearer " + token]
    script = None
    if post:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(WRK_POST)
        script.close()
        cmd += ["-s", script.name]
    try:
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=600).stdout
    finally:
        if script:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "gen":
        from latency import generator
        generator(sys.argv[2], int(sys.argv[3]))
        return 0
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    n = int(os.environ.get("SESSIONS", "100"))
    rate = int(os.environ.get("RATE", "10000"))
    duration = os.environ.get("DURATION", "10s")
    conns = int(os.environ.get("CONNS", "100"))

    from stack import Stack
    print("load average before: %s (%d CPUs)" % (loadavg(), os.cpu_count()))
    s = Stack(tls=True, controller_args=["--max-active-full", "0"]).start()
    gen = None
    try:
        agent = s.add_agent("azlat1", "azlatset")
        acct = s.account(bucket=True)
        gen = subprocess.Popen(["ip", "netns", "exec", agent.link.ns_a, "/usr/bin/python3",
                                os.path.join(ROOT, "bench", "latency.py"), "gen", agent.link.if_a, str(rate)])
        time.sleep(1.0)
        first, put_rtt, to_ok, cf_first = [], [], [], []
        ka = KeepAlive(s, acct.write)
        for i in range(n):
            f, rtt, ok = azure_session(s, acct, agent, i, ka)
            first.append(f)
            put_rtt.append(rtt)
            to_ok.append(ok)
            cf_first.append(cloudflare_session(s, acct, agent))
        print("sessions: %d sequential, generator %d frames/s" % (n, rate))
        print("%-44s %9s %9s %9s" % ("", "p50 ms", "p99 ms", "max ms"))
        row("Azure PUT -> first packet on the agent", first)
        row("Azure PUT round trip (HTTPS, kept alive)", put_rtt)
        row("Azure PUT -> create operation Succeeded", to_ok)
        row("anchor: Cloudflare POST -> first packet", cf_first)
        print("target (p50 <= 100 ms): %s" % ("met" if pct(first, 50) <= 100 else "NOT met"))
        gen.kill()
        gen.wait()
        gen = None

        # queryStatus of a session that runs for the whole measurement
        r = acct.arm("PUT", "qs", body={"properties": {"target": acct.vm(agent.name),
                                                       "storageLocation": {"filePath": "/var/captures/qs.cap"}}})
        if r.status != 201:
            raise RuntimeError("PUT qs: %r" % r)
        from stack import path_of
        loc = path_of(s.request("POST", acct.arm_path("qs", "/queryStatus"), token=acct.read,
                                https=True).header("location"))
        cf_id = acct.call("GET", "", token=acct.read).json["result"][0]["id"]
        print("\nwrk -t1 -c%d -d%s, read token (kept-alive connections)" % (conns, duration))
        print("%-52s %12s %10s" % ("", "req/s", "p99 ms"))
        for scheme, base in (("https", s.https_url), ("http", s.http_url)):
            for name, path, post in (("POST …/queryStatus (202 + Location)", acct.arm_path("qs", "/queryStatus"), True),
                                     ("GET its operation result (200 + status)", loc, False),
                                     ("anchor: Cloudflare GET /pcaps/{id}", acct.path("/" + cf_id), False)):
                rps, p99, bad = wrk(base + path, acct.read, duration, conns, post)
                if bad:
                    raise RuntimeError("%s: %d answers were not 2xx" % (name, bad))
                print("%-52s %12.0f %10.2f" % ("%s (%s)" % (name, scheme), rps, p99))
        s.request("POST", acct.arm_path("qs", "/stop"), token=acct.write, https=True)
    finally:
        if gen is not None:
            gen.kill()
            gen.wait()
        s.close()
    print("load average after: %s" % loadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
