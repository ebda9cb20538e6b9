# SPDX-License-Identifier: MIT
"""The fleet benchmark's simulator works (bench/agentsim.py driven by
bench/fleet.py): 20 simulated agents enrol, report and long-poll a real
controller; one sample of all of them ends `success` with every answer
stored, and one full capture of a colo of 10 has every share running, then
stops and ends `success`; the controller exits clean (no sanitizer report in
the ASan leg). Figures are the benchmark's business; this only keeps the
simulator speaking the current protocol (2-4 s)."""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_fleet_benchmark_smoke():
    env = dict(os.environ, AGENTS="20", PROCS="1", COLO_SIZE="10", SETTLE="0", IDLE_S="1", SAMPLES="1", FULLS="1",
               DBS="sqlite", AGENTSIM_STAGGER="0.5")
    build = os.environ.get("PCAPD_BUILD", os.path.join(ROOT, "build"))
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "fleet.py"), build], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert "[sqlite] sample 1: success, 20 of 20 agents answered in time" in out, out
    assert "[sqlite] full 1 (colo00): 10 agents running" in out, out
    assert "agents online (API) 20" in out, out
