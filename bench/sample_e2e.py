#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Sample captures end to end through the API (issue 4 target: p50 <= 250 ms):
POST of a sample -> status success -> the download complete, p50 and p99 over
N samples.

A real controller and two agents (tests/integration/stack.py), each recording
every packet (--sample-rate 1) of a generator sending RATE UDP frames/s into
its link for FILL seconds first, so each history holds FILL*RATE packets when
the queries run. Each sample asks both agents for the last 300 s, filtered to
the generator's port, packet_limit 10000 (so each agent finds more than the
limit and returns its newest 10000; the controller merges 20000 and keeps the
newest 10000). Status is polled every 5 ms.

    bench/sample_e2e.py [BUILD_DIR]        env: SAMPLES=50 RATE=5000 FILL=20
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

from latency import pct  # noqa: E402


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    n = int(os.environ.get("SAMPLES", "50"))
    rate = int(os.environ.get("RATE", "5000"))
    fill = int(os.environ.get("FILL", "20"))

    from stack import Stack
    s = Stack(tls=False, controller_args=["--sample-interval", "0"]).start()
    gens = []
    try:
        agents = [s.add_agent("smp%d" % i, "c%d" % i, extra_args=["--sample-rate", "1"]) for i in (1, 2)]
        acct = s.account()
        for a in agents:
            gens.append(subprocess.Popen(["ip", "netns", "exec", a.link.ns_a, "/usr/bin/python3",
                                          os.path.join(HERE, "latency.py"), "gen", a.link.if_a, str(rate)]))
        time.sleep(fill)
        body = {"type": "simple", "system": "magic-transit", "time_limit": 300, "packet_limit": 10000,
                "filter_v1": {"destination_port": 7777}}
        total, to_success, sizes = [], [], []
        for _ in range(n):
            t0 = time.monotonic()
            r = acct.call("POST", "", body)
            if r.status != 200:
                raise RuntimeError("create: %r" % r)
            pid = r.json["result"]["id"]
            while True:
                g = acct.call("GET", "/" + pid, token=acct.read)
                st = g.json["result"]["status"]
                if st in ("success", "failed"):
                    break
                time.sleep(0.005)
            t1 = time.monotonic()
            if st != "success":
                raise RuntimeError("sample %s: %r" % (pid, g.json["result"]))
            d = acct.call("GET", "/%s/download" % pid, token=acct.read, timeout=60)
            t2 = time.monotonic()
            if d.status != 200:
                raise RuntimeError("download %s: %r" % (pid, d.status))
            total.append((t2 - t0) * 1000)
            to_success.append((t1 - t0) * 1000)
            sizes.append(len(d.body))
        print("samples: %d sequential; 2 agents, each history %d packets (%d s at %d frames/s, 1 in 1)" %
              (n, fill * rate, fill, rate))
        print("query: last 300 s, destination_port 7777, packet_limit 10000; answer %.1f MB" %
              (sorted(sizes)[len(sizes) // 2] / 1e6))
        print("%-38s %9s %9s %9s" % ("", "p50 ms", "p99 ms", "max ms"))
        for name, v in (("POST -> status success", to_success), ("POST -> success -> download done", total)):
            print("%-38s %9.1f %9.1f %9.1f" % (name, pct(v, 50), pct(v, 99), max(v)))
        print("target (end to end p50 <= 250 ms): %s" % ("met" if pct(total, 50) <= 250 else "NOT met"))
    finally:
        for g in gens:
            g.kill()
            g.wait()
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
