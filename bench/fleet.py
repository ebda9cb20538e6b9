#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""1,000 agents on one controller (issue 13 targets, on a 2-core machine):
  * idle: controller RSS <= 100 MB and CPU <= 5 % of one core;
  * a sample fanned out to every agent completes, p50 <= 1 s;
  * a full capture for a colo of 100 agents has all of them running within 1 s;
the same against PostgreSQL.

A real controller (`pcapd controller`, tests/integration/stack.py, plain
HTTP, default flags but --sample-interval 0 and --max-active-full 0: the
per-account limits of one sample a minute and one full capture would
otherwise stop the rounds) and AGENTS simulated agents (bench/agentsim.py,
PROCS processes) that enrol with the operator's enrolment token and speak the
real agent protocol. Per backend (DBS, SQLite then a PostgreSQL 15 of
tests/integration/pgserver.py):
  1. the controller's RSS before any agent; the agents enrol and connect
     (reported, polling); after SETTLE s, utime+stime of the controller and
     of the simulator over IDLE_S s, VmRSS and VmHWM (/proc), agents online
     as the API lists them;
  2. SAMPLES samples of every agent (no filter, packet_limit 10000): the time
     from the POST to status `success` (GET every 50 ms), and to the last
     first, half and last answers stored (the simulator's clock); every agent
     must have answered;
  3. FULLS full captures of one colo (COLO_SIZE agents, colos in turn) into
     a file:// bucket: the time from the POST to the last agent's `running`
     report answered 200; the API must list every share running; then stopped,
     and the capture must end `success`;
  4. VmRSS with every agent's third (sample) connection open, and again once
     the controller's idle time-out (30 s) closed them: the fleet at rest.
Prints the load average beside every run and every median with its spread
(min..max). The simulator shares the 2 cores with the controller: its CPU is
printed too. Needs root (the stack's checks); not part of `make test`.

    bench/fleet.py [BUILD_DIR]   env: AGENTS=1000 PROCS=2 COLO_SIZE=100 SETTLE=10 IDLE_S=60
                                      SAMPLES=7 FULLS=7 DBS=sqlite,postgres
                                      CONTROLLER_ARGS="--threads 8" (added to the controller's flags)
"""

import os
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

TICK = os.sysconf("SC_CLK_TCK")
IDLE_TIMEOUT_S = 30  # the controller's default --idle-timeout


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_s(pid):
    """utime + stime of a process, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_s(pid):
    """utime + stime of a server and its children (the live ones and those
    it waited for): PostgreSQL's postmaster and backends."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == pid:
            total += sum(int(x) for x in fields[11:15]) / TICK
        elif int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def mem_mb(pid):
    """(VmRSS, VmHWM) in MB (10^6 bytes)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            k, _, v = l.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024 / 1e6
    return out["VmRSS"], out["VmHWM"]


def sockets(pid):
    """How many sockets the process holds open."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def spread(v, fmt="%.3f"):
    return (fmt + " (" + fmt + ".." + fmt + ")") % (statistics.median(v), min(v), max(v))


class Sim:
    """One simulator process and the events it prints."""

    def __init__(self, url, token, first, count, colo_size):
        env = dict(os.environ, AGENTSIM_TOKEN=token)
        self.p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "agentsim.py"), url, str(first),
                                   str(count), str(colo_size)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  env=env)
        self.count = count
        self.ready = False
        self.runs = {}      # job -> {agent: t}
        self.answers = {}   # job -> {agent: t}
        self.errors = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            w = raw.decode(errors="replace").split()
            with self.cv:
                if not w:
                    continue
                if w[0] == "ready":
                    self.ready = True
                elif w[0] in ("run", "answer") and len(w) == 4:
                    (self.runs if w[0] == "run" else self.answers).setdefault(w[1], {}).setdefault(w[2], float(w[3]))
                elif w[0] == "error":
                    self.errors.append(" ".join(w[1:]))
                    if len(self.errors) <= 5:
                        print("  simulator: %s" % " ".join(w[1:]), flush=True)
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_for(sims, cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError("%s: not within %d s" % (what, timeout))
        if not all(s.alive() for s in sims):
            raise RuntimeError("%s: a simulator exited (%s)" % (what, [s.p.returncode for s in sims]))
        time.sleep(0.01)


def collected(sims, kind, job):
    out = {}
    for s in sims:
        with s.cv:
            out.update(getattr(s, kind).get(job, {}))
    return out


def run_backend(db, n, procs, colo_size, settle, idle_s, samples, fulls):
    from stack import Stack
    pg = None
    db_url = None
    res = {"db": db}
    if db == "postgres":
        from pgserver import PgServer
        pg = PgServer().start()
        db_url = pg.create_database("fleet")
    extra = os.environ.get("CONTROLLER_ARGS", "").split()
    s = Stack(tls=False, controller_args=["--sample-interval", "0", "--max-active-full", "0"] + extra, db_url=db_url)
    sims = []
    try:
        s.start()
        ctl = s.controller.proc.p.pid
        rss0, _ = mem_mb(ctl)
        acct = s.account(bucket=True)
        print("[%s] controller pid %d, RSS %.1f MB before any agent; load %s" % (db, ctl, rss0, load()), flush=True)
        t0 = time.monotonic()
        per = (n + procs - 1) // procs
        for k in range(procs):
            first, count = k * per, min(per, n - k * per)
            if count > 0:
                sims.append(Sim(s.http_url, s.enroll_token, first, count, colo_size))
        wait_for(sims, lambda: all(x.ready for x in sims), 600, "%d agents enrolled and connected" % n)
        print("[%s] %d agents enrolled, reported and polling in %.1f s; load %s" % (
            db, n, time.monotonic() - t0, load()), flush=True)
        time.sleep(settle)
        pg_cpu = (lambda: tree_cpu_s(pg.pid)) if pg else (lambda: 0.0)
        c0, s0, p0, w0 = cpu_s(ctl), sum(cpu_s(x.p.pid) for x in sims), pg_cpu(), time.monotonic()
        time.sleep(idle_s)
        c1, s1, p1, w1 = cpu_s(ctl), sum(cpu_s(x.p.pid) for x in sims), pg_cpu(), time.monotonic()
        rss, hwm = mem_mb(ctl)
        r = s.request("GET", acct.path("/agents"), token=acct.read)
        online = sum(1 for a in r.json["result"] if a.get("online")) if r.status == 200 else -1
        res.update(rss=rss, hwm=hwm, cpu=100 * (c1 - c0) / (w1 - w0), sim_cpu=100 * (s1 - s0) / (w1 - w0),
                   pg_cpu=100 * (p1 - p0) / (w1 - w0), online=online, idle_load=load())
        print("[%s] idle %.0f s: controller CPU %.2f %% of a core, VmRSS %.1f MB, VmHWM %.1f MB; simulator CPU "
              "%.1f %%%s; agents online (API) %d; load %s" % (
                  db, w1 - w0, res["cpu"], rss, hwm, res["sim_cpu"],
                  "; PostgreSQL CPU %.1f %%" % res["pg_cpu"] if pg else "", online, res["idle_load"]), flush=True)
        if online != n:
            raise RuntimeError("the API lists %d agents online, not %d" % (online, n))

        body = {"type": "simple", "system": "magic-transit", "time_limit": 300, "packet_limit": 10000}
        to_status, to_answers, answered = [], [], []
        for i in range(samples):
            ld = load()
            c0, s0, p0 = cpu_s(ctl), sum(cpu_s(x.p.pid) for x in sims), pg_cpu()
            t0 = time.monotonic()
            r = acct.call("POST", "", body)
            if r.status != 200:
                raise RuntimeError("sample create: %r" % r)
            pid = r.json["result"]["id"]
            end = t0 + 60
            while True:
                g = acct.call("GET", "/" + pid, token=acct.read)
                obj = g.json["result"]
                if obj["status"] in ("success", "failed"):
                    t1 = time.monotonic()
                    break
                if time.monotonic() > end:
                    raise RuntimeError("sample %s: still %s after 60 s" % (pid, obj["status"]))
                time.sleep(0.05)
            done = sum(1 for p in obj.get("agents", []) if p["status"] == "done")
            # The simulator's lines come every 50 ms, and a loaded simulator
            # reads the controller's 200s late: wait for one per done part.
            wait_for(sims, lambda: len(collected(sims, "answers", pid)) >= done, 30,
                     "sample %s: the simulator's answer events" % pid)
            ans = collected(sims, "answers", pid)
            if done != len(ans):
                raise RuntimeError("sample %s: %d parts done, but the simulator had %d answers stored" % (
                    pid, done, len(ans)))
            to_status.append(t1 - t0)
            to_answers.append(max(ans.values()) - t0 if ans else float("nan"))
            answered.append(done)
            # A sample whose deadline passed before every answer was stored
            # ends success with the rest `lost`: a miss, counted as such.
            at = sorted(ans.values())
            print("[%s] sample %d: %s, %d of %d agents answered in time; answers stored after %.3f (first), "
                  "%.3f (half), %.3f s (last), status seen %.3f s; CPU s controller %.2f simulator %.2f%s; load %s" % (
                      db, i + 1, obj["status"], done, n, at[0] - t0 if at else float("nan"),
                      at[len(at) // 2] - t0 if at else float("nan"), to_answers[-1], to_status[-1], cpu_s(ctl) - c0,
                      sum(cpu_s(x.p.pid) for x in sims) - s0,
                      " PostgreSQL %.2f" % (pg_cpu() - p0) if pg else "", ld), flush=True)
            if i + 1 < samples:
                time.sleep(2)   # the agents' `done` reports go out between rounds
        res.update(sample_status=to_status, sample_answers=to_answers, sample_answered=answered)

        running = []
        colos = max(1, n // colo_size)
        for i in range(fulls):
            colo = "colo%02d" % (i % colos)
            ld = load()
            t0 = time.monotonic()
            r = acct.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300,
                                       "colo_name": colo, "destination_conf": acct.bucket})
            if r.status != 200:
                raise RuntimeError("full capture create: %r" % r)
            pid = r.json["result"]["id"]
            want = min(colo_size, n - (i % colos) * colo_size)
            wait_for(sims, lambda: len(collected(sims, "runs", pid)) >= want, 60,
                     "capture %s: %d agents running" % (pid, want))
            runs = collected(sims, "runs", pid)
            running.append(max(runs.values()) - t0)
            obj = acct.call("GET", "/" + pid, token=acct.read).json["result"]
            shown = sum(1 for p in obj.get("agents", []) if p["status"] == "running")
            if shown != want:
                raise RuntimeError("capture %s: the API lists %d of %d shares running: %r" % (
                    pid, shown, want, obj))
            r = acct.call("PUT", "/%s/stop" % pid)
            if r.status != 200:
                raise RuntimeError("stop: %r" % r)
            obj = s.wait_status(acct, pid, timeout=120)
            if obj["status"] != "success":
                raise RuntimeError("capture %s ended %s: %r" % (pid, obj["status"], obj))
            print("[%s] full %d (%s): %d agents running after %.3f s (first %.3f s); stopped, success; load %s" % (
                db, i + 1, colo, want, running[-1], min(runs.values()) - t0, ld), flush=True)
        res.update(full_running=running)
        rss_end, hwm_end = mem_mb(ctl)
        res.update(rss_end=rss_end, hwm_end=hwm_end)
        print("[%s] after the rounds (each agent with a third connection, for sample answers): VmRSS %.1f MB, "
              "VmHWM %.1f MB; load %s" % (db, rss_end, hwm_end, load()), flush=True)
        # The agents' sample connections close at the controller's idle
        # time-out (30 s): the fleet at rest again, two connections each.
        t0 = time.monotonic()
        while sockets(ctl) > 2 * n + 50 and time.monotonic() - t0 < IDLE_TIMEOUT_S * 3:
            time.sleep(1)
        rss_rest, _ = mem_mb(ctl)
        res.update(rss_rest=rss_rest, socks_rest=sockets(ctl))
        print("[%s] %.0f s later (the sample connections' idle time-out): %d sockets, VmRSS %.1f MB; load %s" % (
            db, time.monotonic() - t0, res["socks_rest"], rss_rest, load()), flush=True)
        errs = sum(len(x.errors) for x in sims)
        res["sim_errors"] = errs
        if errs:
            print("[%s] the simulator saw %d failed requests (first ones printed above)" % (db, errs))
    finally:
        for x in sims:
            x.stop()
        s.close()
        if pg is not None:
            pg.stop()
    # A sanitizer's report or an unclean exit of the controller (an ASan
    # build) fails the run.
    s.assert_clean()
    return res


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    n = int(os.environ.get("AGENTS", "1000"))
    procs = int(os.environ.get("PROCS", "2"))
    colo_size = int(os.environ.get("COLO_SIZE", "100"))
    settle = float(os.environ.get("SETTLE", "10"))
    idle_s = float(os.environ.get("IDLE_S", "60"))
    samples = int(os.environ.get("SAMPLES", "7"))
    fulls = int(os.environ.get("FULLS", "7"))
    dbs = os.environ.get("DBS", "sqlite,postgres").split(",")
    print("fleet: %d agents (%d simulator process%s), colos of %d, %d CPUs, load %s" % (
        n, procs, "" if procs == 1 else "es", colo_size, os.cpu_count(), load()), flush=True)
    results = [run_backend(db, n, procs, colo_size, settle, idle_s, samples, fulls) for db in dbs]
    print()
    for r in results:
        print("%-8s idle: controller CPU %.2f %% (simulator %.1f %%%s), VmRSS %.1f MB, VmHWM %.1f MB, load %s" % (
            r["db"], r["cpu"], r["sim_cpu"], ", PostgreSQL %.1f %%" % r["pg_cpu"] if r["db"] == "postgres" else "",
            r["rss"], r["hwm"], r["idle_load"]))
        print("%-8s after the rounds: VmRSS %.1f MB, VmHWM %.1f MB; at rest again (%d sockets): VmRSS %.1f MB" % (
            r["db"], r["rss_end"], r["hwm_end"], r["socks_rest"], r["rss_rest"]))
        if r["sample_status"]:
            print("%-8s sample of %d agents: status final after %s s; last answer %s s; agents answered in time "
                  "%s" % (r["db"], n, spread(r["sample_status"]), spread(r["sample_answers"]),
                          spread(r["sample_answered"], "%d")))
        if r["full_running"]:
            print("%-8s full capture of %d agents: all running after %s s" % (
                r["db"], colo_size, spread(r["full_running"])))


if __name__ == "__main__":
    main()
