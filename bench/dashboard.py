#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The dashboard's Captures page with 1,000 captures in the account, in
Debian's Chromium (issue 12): time to first render and to refresh.

A real controller and two agents (tests/integration/stack.py; --sample-interval
0 and --max-active-full 0, so captures can be made quickly); CAPTURES captures
are made through the API (nine in ten samples, the rest full captures of 1 s
on both agents, several at once, so the list holds successes and failures with
their messages) and awaited until every one is finished. Then
bench/dashboard.mjs measures in Chromium, RUNS times each, in one invocation:

  * the page as it is: the controller lists the newest 50 (Cloudflare's
    list, no paging yet), so the page draws 50 rows;
  * the same page given all CAPTURES real capture objects in one answer (what
    a controller with paging would send for per_page=1000), to measure the
    page's own rendering of 1,000 rows;
  * the anchor: Chromium loading a static, server-made HTML table of the same
    1,000 rows (no script), and node fetching the list from the API.

Load averages are printed before and after (the machine is shared).

    bench/dashboard.py [BUILD_DIR]        env: CAPTURES=1000 RUNS=7
"""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def make_captures(acct, n):
    """n captures, nine in ten samples; returns their ids once all are finished."""
    ids = []
    for i in range(n):
        if i % 10 == 9:
            body = {"type": "full", "system": "magic-transit", "time_limit": 1, "colo_name": "lab",
                    "destination_conf": acct.bucket, "filter_v1": {"destination_port": 7000 + i % 50}}
        else:
            body = {"type": "simple", "system": "magic-transit", "time_limit": 300, "packet_limit": 100,
                    "filter_v1": {"destination_port": 7000 + i % 50, "protocol": "udp"}}
        r = acct.call("POST", "", body)
        if r.status != 200:
            raise RuntimeError("create %d: %r" % (i, r))
        ids.append(r.json["result"]["id"])
    pending = set(ids)
    end = time.monotonic() + 600
    while pending:
        for pid in list(pending):
            r = acct.call("GET", "/" + pid, token=acct.read)
            if r.status == 200 and r.json["result"]["status"] in ("success", "failed"):
                pending.discard(pid)
        if time.monotonic() > end:
            raise RuntimeError("%d captures not finished after 600 s" % len(pending))
        if pending:
            time.sleep(0.5)
    return ids


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    n = int(os.environ.get("CAPTURES", "1000"))
    runs = int(os.environ.get("RUNS", "7"))

    from stack import Stack
    print("machine: %d cores; load average before: %s" % (os.cpu_count(), loadavg()))
    s = Stack(tls=False, controller_args=["--grace", "3", "--agent-timeout", "15", "--sample-interval", "0",
                                          "--max-active-full", "0"]).start()
    try:
        for i in (1, 2):
            s.add_agent("dash%d" % i, "lab", extra_args=["--sample-rate", "1"])
        acct = s.account(bucket=True)
        t0 = time.monotonic()
        ids = make_captures(acct, n)
        print("made %d captures in %.0f s" % (len(ids), time.monotonic() - t0))
        objs = []
        for pid in ids:
            o = acct.call("GET", "/" + pid, token=acct.read).json["result"]
            o.pop("agents", None)  # as the list gives them
            objs.append(o)
        objs.reverse()  # newest first, as the API lists
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(objs, f)
            captures_file = f.name
        env = dict(os.environ, PCAPD_SDK_HTTP_URL=s.http_url, PCAPD_SDK_ACCOUNT_ID=acct.id,
                   PCAPD_SDK_TOKEN=acct.write, BENCH_CAPTURES=captures_file, BENCH_RUNS=str(runs))
        try:
            rc = subprocess.call(["node", os.path.join(ROOT, "bench", "dashboard.mjs")], env=env)
        finally:
            os.unlink(captures_file)
        print("load average after: %s" % loadavg())
        return rc
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
