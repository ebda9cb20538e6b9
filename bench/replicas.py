#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Wake-up latency across two controllers over one PostgreSQL database
(issue 13 target: a capture created through controller B reaches an agent
long-polling controller A within 1 s, p50 <= 200 ms).

A real PostgreSQL 15 (tests/integration/pgserver.py), two controllers over
one database and one agent given both URLs (A first: it long-polls A). Each
round creates a full capture through B (the path under test: B's NOTIFY, A's
LISTEN, A's parked poll) and one through A (the anchor: the same agent and
measurement, a wake-up inside one process), alternately, so both see the
same machine. latency = from just before the POST until a GET (through A,
every 5 ms) shows the agent's share out of "assigned": the agent took the
start, opened its sockets and reported "running". Each capture is stopped
before the next.

    bench/replicas.py [BUILD_DIR]        env: ROUNDS=50
"""

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def main():
    if len(sys.argv) > 1:
        os.environ["PCAPD_BUILD"] = os.path.abspath(sys.argv[1])
    rounds = int(os.environ.get("ROUNDS", "50"))
    import stack
    from pgserver import PgServer
    from stack import Controller, Stack
    from waits import until

    srv = PgServer().start()
    stack.PG_SERVER = srv
    s = Stack(tls=False)
    s.ctl_b = Controller(s, data=os.path.join(s.dir, "ctl-b"))
    try:
        s.start()
        s.ctl_b.start()
        s.add_agent("bench1", "bench", extra_args=["--controller", "http://127.0.0.1:%d" % s.ctl_b.http_port])
        acct = s.account(bucket=True)

        def on(ctl, method, suffix="", body=None):
            return s.request(method, acct.path(suffix), token=acct.write, body=body, controller=ctl)

        until(lambda: any(a["name"] == "bench1" and a["online"] for a in on(s.ctl_b, "GET", "/agents").json["result"]),
              "controller B sees the agent")
        lat = {"B": [], "A": []}
        for i in range(rounds * 2):
            via = "B" if i % 2 == 0 else "A"
            t0 = time.monotonic()
            r = on(s.ctl_b if via == "B" else s.controller, "POST", "",
                   {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": "bench",
                    "destination_conf": acct.bucket})
            assert r.status == 200, r
            cid = r.json["result"]["id"]
            while on(s.controller, "GET", "/" + cid).json["result"]["agents"][0]["status"] == "assigned":
                time.sleep(0.005)
            lat[via].append(time.monotonic() - t0)
            on(s.controller, "PUT", "/%s/stop" % cid)
            s.wait_status(acct, cid)
        for via, what in (("B", "created through B, agent polls A"), ("A", "created through A (anchor)")):
            v = sorted(lat[via])
            print("%-36s n=%d p50=%.0f ms p90=%.0f ms max=%.0f ms min=%.0f ms" % (
                what, len(v), 1000 * statistics.median(v), 1000 * v[int(0.9 * len(v)) - 1], 1000 * v[-1],
                1000 * v[0]))
    finally:
        try:
            s.ctl_b.stop()
        finally:
            s.close()
            srv.stop()


if __name__ == "__main__":
    main()
