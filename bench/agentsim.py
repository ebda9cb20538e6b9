#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""N agents speaking pcapd's agent protocol (docs/AGENT-PROTOCOL.md) from one
process: the simulator behind bench/fleet.py (issue 13, "1,000 agents on one
controller"). No capture, no history: everything else as `pcapd agent` does
it, over HTTP/1.1 on asyncio streams (the standard library only).

Each agent
  * enrols with an enrolment token (POST /agent/v1/enroll) for its own key;
  * reports (POST /agent/v1/report) with `hello` at first and after every
    failed request, every `heartbeat_ms` while idle, every second while a
    full capture runs and at once on a job's change, listing every job not
    yet acknowledged, with a `history` member as a recording agent sends it;
  * long-polls (GET /agent/v1/poll, 25 s) only after its first report
    succeeded, and after a poll that started full captures reports them
    `running` before it polls again;
  * answers a sample (`"type": "simple"`) with a small valid pcap (4 UDP
    records inside [from_ns, to_ns], at most packet_limit) by POST
    /agent/v1/sample on a connection it keeps for samples, retrying a 503
    after 250 ms doubling while the deadline allows, then reports it done;
  * runs a full capture until a stop or its time_limit, then writes a small
    pcap into its file:// bucket (as the agent does under --bucket-root) and
    reports it done with the stop reason;
  * keeps one connection for reports, one for polls, one for samples, like
    the agent's three curl handles, and connects from its own loopback
    address (127.100.X.Y), since the controller limits connections per
    client address.

Run as `AGENTSIM_TOKEN=<enrolment token> agentsim.py URL FIRST COUNT COLO_SIZE` (the agents
sim00000.. of colos colo00..); it prints events on stdout, one a line, for
the driver:  `ready N` (N agents reported and polling), `run JOB AGENT T`
(the agent's report of `running` was answered 200 at time.monotonic() T),
`answer JOB AGENT T` (its sample answer was stored), `error TEXT`. SIGTERM
ends it within a few seconds (every request has a time-out). The agents
start spread over AGENTSIM_STAGGER seconds (default 5, one heartbeat).
"""

import asyncio
import collections
import json
import os
import random
import signal
import struct
import sys
import time

POLL_MS = 25000
REPORT_TIMEOUT_S = 30
# Agents start spread over this many seconds (one heartbeat).
STAGGER_S = float(os.environ.get("AGENTSIM_STAGGER", "5"))
VERSION = "agentsim-0.1"


def agent_name(i):
    return "sim%05d" % i


def agent_colo(i, colo_size):
    return "colo%02d" % (i // colo_size)


def agent_ip(i):
    """Its own loopback address: 127.100.0.1 ..."""
    return "127.100.%d.%d" % (i // 250, i % 250 + 1)


# --- HTTP/1.1 over one kept connection ------------------------------------------

class HttpError(Exception):
    pass


class Conn:
    def __init__(self, host, port, local_ip):
        self.host, self.port, self.local_ip = host, port, local_ip
        self.r = self.w = None

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def _read(self):
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError("bad status line %r" % lines[0])
        status = int(parts[1])
        hdr = {}
        for l in lines[1:]:
            if ":" in l:
                k, v = l.split(":", 1)
                hdr[k.strip().lower()] = v.strip()
        if "content-length" in hdr:
            body = await self.r.readexactly(int(hdr["content-length"]))
        elif hdr.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.r.readuntil(b"\r\n")   # no trailers from our controller
                    break
                chunks.append(await self.r.readexactly(size))
                await self.r.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await self.r.read()
            hdr["connection"] = "close"
        if hdr.get("connection", "").lower() == "close":
            self.close()
        return status, hdr, body

    async def request(self, method, path, token, body=b"", ctype="application/json", timeout=30.0):
        """(status, headers, body); raises OSError, HttpError or TimeoutError.
        A kept connection that turns out closed is tried once more on a new
        one, as the agent does."""
        head = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port),
                "User-Agent: " + VERSION, "Accept: application/json"]
        if token:
            head.append("Authorization: Bearer " + token)
        if body or method == "POST":
            head.append("Content-Type: " + ctype)
            head.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        for attempt in (0, 1):
            fresh = self.w is None
            try:
                if fresh:
                    self.r, self.w = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port, local_addr=(self.local_ip, 0)), timeout)
                self.w.write(data)
                return await asyncio.wait_for(self._read(), timeout)
            except (ConnectionError, asyncio.IncompleteReadError, HttpError) as e:
                self.close()
                if fresh or attempt:
                    raise HttpError(str(e) or type(e).__name__)
            except BaseException:
                self.close()
                raise
        raise HttpError("unreachable")


# --- a pcap answer ------------------------------------------------------------------

def udp_frame(i):
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    payload = b"agentsim%04d" % i
    udp = struct.pack("!HHHH", 40000 + i, 7777, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
    return eth + ip + udp


FRAMES = [udp_frame(i) for i in range(4)]
PCAP_NS_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)


def sample_pcap(from_ns, to_ns, limit):
    """Classic pcap, nanosecond stamps, up to 4 records in [from_ns, to_ns]
    in time order; (bytes, records, captured bytes)."""
    n = max(0, min(len(FRAMES), limit))
    out = [PCAP_NS_HEADER]
    total = 0
    for k in range(n):
        t = max(from_ns, to_ns - (n - k) * 1000000)
        f = FRAMES[k]
        out.append(struct.pack("<IIII", t // 1000000000, t % 1000000000, len(f), len(f)))
        out.append(f)
        total += len(f)
    return b"".join(out), n, total


# --- one agent ----------------------------------------------------------------------

TERMINAL = ("done", "failed", "upload_failed")


class Job:
    __slots__ = ("id", "sample", "state", "packets", "bytes", "stop_reason", "object", "error", "target",
                 "timer")

    def __init__(self, jid, sample):
        self.id, self.sample = jid, sample
        self.state = "running"
        self.packets = self.bytes = 0
        self.stop_reason = "none"
        self.object = self.error = ""
        self.target = None
        self.timer = None

    def wire(self):
        o = {"id": self.id, "state": self.state, "packets": self.packets, "bytes": self.bytes, "drops": 0,
             "stop_reason": self.stop_reason}
        if self.object:
            o["object"] = self.object
        if self.error:
            o["error"] = self.error
            o["failure"] = "internal"
        return o


class SimAgent:
    def __init__(self, fleet, i):
        self.fleet = fleet
        self.i = i
        self.name = agent_name(i)
        self.colo = agent_colo(i, fleet.colo_size)
        ip = agent_ip(i)
        self.rconn = Conn(fleet.host, fleet.port, ip)
        self.pconn = Conn(fleet.host, fleet.port, ip)
        self.sconn = Conn(fleet.host, fleet.port, ip)
        self.key = None
        self.hello = True
        self.heartbeat = 5.0
        self.jobs = {}                      # id -> Job, until acknowledged (samples: once answered)
        self.recent = collections.deque(maxlen=512)
        self.kick = asyncio.Event()         # a job changed: report now
        self.version = 0                    # bumped on every change
        self.reported = 0                   # version of the last report answered 200
        self.reported_cv = asyncio.Condition()
        self.registered = asyncio.Event()
        self.polling = False
        self.started_mono = time.monotonic()

    def changed(self):
        self.version += 1
        self.kick.set()

    def history(self):
        now = time.time_ns()
        iso = lambda ns: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%06dZ" % (
            ns // 1000 % 10**6)
        return {"recording": True, "error": None, "packets": 120000, "bytes": 9600000, "segments": 3, "drops": 0,
                "oldest": iso(now - 3600 * 10**9), "newest": iso(now), "sample_rate": 100}

    async def enroll(self, token):
        c = Conn(self.fleet.host, self.fleet.port, agent_ip(self.i))
        try:
            body = json.dumps({"name": self.name, "colo": self.colo}).encode()
            st, _, b = await c.request("POST", "/agent/v1/enroll", token, body, timeout=60)
        finally:
            c.close()
        if st != 200:
            raise HttpError("enrolment of %s: %d %s" % (self.name, st, b[:300]))
        self.key = json.loads(b)["secret"]

    async def backoff(self, d):
        await asyncio.sleep(random.uniform(d / 2, d))
        return min(d * 2, 5.0)

    async def reporter(self):
        delay = 0.1
        while not self.fleet.stopping:
            self.kick.clear()
            v = self.version
            running_now = [j.id for j in self.jobs.values() if not j.sample and j.state == "running"]
            rep = {"name": self.name, "colo": self.colo, "version": VERSION, "interfaces": ["eth0"],
                   "hello": self.hello, "jobs": [j.wire() for j in self.jobs.values() if not j.sample or
                                                j.state in TERMINAL],
                   "history": self.history()}
            try:
                st, _, b = await self.rconn.request("POST", "/agent/v1/report", self.key, json.dumps(rep).encode(),
                                                    timeout=REPORT_TIMEOUT_S)
            except (OSError, HttpError, asyncio.TimeoutError) as e:
                self.fleet.fail("report %s: %s" % (self.name, e))
                self.hello = True
                delay = await self.backoff(delay)
                continue
            if st != 200:
                self.fleet.fail("report %s: HTTP %d %s" % (self.name, st, b[:200]))
                self.hello = True
                delay = await self.backoff(delay)
                continue
            delay = 0.1
            t = time.monotonic()
            self.hello = False
            ans = json.loads(b)
            for jid in ans.get("ack", []):
                j = self.jobs.get(jid)
                if j is not None and j.state in TERMINAL:
                    del self.jobs[jid]
                    self.recent.append(jid)
            self.heartbeat = min(max(ans.get("heartbeat_ms", 5000), 1000), 60000) / 1000.0
            for jid in running_now:
                self.fleet.event("run %s %s %.6f" % (jid, self.name, t))
            self.registered.set()
            async with self.reported_cv:
                self.reported = max(self.reported, v)
                self.reported_cv.notify_all()
            active = any(not j.sample and j.state == "running" for j in self.jobs.values())
            try:
                await asyncio.wait_for(self.kick.wait(), 1.0 if active else self.heartbeat)
            except asyncio.TimeoutError:
                pass

    async def poller(self):
        delay = 0.1
        await self.registered.wait()
        path = "/agent/v1/poll?name=%s&timeout_ms=%d" % (self.name, POLL_MS)
        while not self.fleet.stopping:
            self.polling = True
            try:
                st, _, b = await self.pconn.request("GET", path, self.key, timeout=POLL_MS / 1000.0 + 10)
            except (OSError, HttpError, asyncio.TimeoutError) as e:
                self.polling = False
                self.fleet.fail("poll %s: %s" % (self.name, e))
                self.hello = True
                delay = await self.backoff(delay)
                continue
            self.polling = False
            if st != 200:
                self.fleet.fail("poll %s: HTTP %d %s" % (self.name, st, b[:200]))
                self.hello = True
                delay = await self.backoff(delay)
                continue
            delay = 0.1
            t_answer = time.monotonic()
            work = json.loads(b)
            started_full = False
            for s in work.get("start", []):
                jid = s.get("id")
                if not isinstance(jid, str) or len(jid) != 32 or jid in self.jobs or jid in self.recent:
                    continue
                if s.get("type") == "simple":
                    j = self.jobs[jid] = Job(jid, True)
                    self.fleet.spawn(self.answer(j, s, t_answer))
                else:
                    j = self.jobs[jid] = Job(jid, False)
                    outs = s.get("outputs") or []
                    if len(outs) == 1 and outs[0].get("kind") == "bucket" and \
                            outs[0].get("target", "").startswith("file://"):
                        j.target = (outs[0]["target"][7:], outs[0].get("object") or
                                    "pcap_%s_%s.pcap" % (jid, self.name))
                        if s.get("time_limit"):
                            j.timer = asyncio.get_running_loop().call_later(
                                s["time_limit"], lambda j=j: self.fleet.spawn(self.finish(j, "time")))
                    else:
                        j.state, j.stop_reason = "failed", "error"
                        j.error = "outputs: agentsim writes one file:// bucket only"
                    started_full = True
            for jid in work.get("stop", []):
                j = self.jobs.get(jid)
                if j is not None and not j.sample and j.state == "running":
                    await self.finish(j, "user")
            if started_full:
                self.changed()
                want = self.version
                async with self.reported_cv:
                    try:
                        await asyncio.wait_for(self.reported_cv.wait_for(
                            lambda: self.reported >= want or self.fleet.stopping), REPORT_TIMEOUT_S + 5)
                    except asyncio.TimeoutError:
                        pass

    async def finish(self, j, reason):
        """A full capture's end: the file into the bucket, then done."""
        if j.state != "running":
            return
        if j.timer is not None:
            j.timer.cancel()
        now = time.time_ns()
        data, n, total = sample_pcap(now - 10**9, now, 4)
        d, obj = j.target
        try:
            tmp = os.path.join(d, ".%s.agentsim" % obj)
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(d, obj))
            j.state, j.packets, j.bytes, j.object = "done", n, total, obj
        except OSError as e:
            j.state, j.error = "failed", "upload to file://%s: %s" % (d, e)
        j.stop_reason = reason if j.state == "done" else "error"
        self.changed()

    async def answer(self, j, s, t_answer):
        deadline = t_answer + s.get("deadline_ms", 5000) / 1000.0
        now = time.time_ns()
        data, n, total = sample_pcap(s.get("from_ns", now - 300 * 10**9), s.get("to_ns", now),
                                     s.get("packet_limit", 4))
        path = "/agent/v1/sample?name=%s&id=%s" % (self.name, j.id)
        wait = 0.25
        while True:
            timeout = max(deadline - time.monotonic(), 1.0)
            try:
                st, _, b = await self.sconn.request("POST", path, self.key, data,
                                                    ctype="application/vnd.tcpdump.pcap", timeout=timeout)
            except (OSError, HttpError, asyncio.TimeoutError) as e:
                j.state, j.stop_reason, j.error = "failed", "error", "answer not delivered: %s" % e
                break
            if st == 503 and time.monotonic() + wait < deadline:
                await asyncio.sleep(wait)
                wait *= 2
                continue
            if st == 200:
                j.state, j.packets, j.bytes = "done", n, total
                self.fleet.event("answer %s %s %.6f" % (j.id, self.name, time.monotonic()))
            else:
                j.state, j.stop_reason = "failed", "error"
                j.error = "the controller refused the answer (%d): %s" % (st, b[:200].decode(errors="replace"))
            break
        if j.state == "failed":
            self.fleet.fail("sample %s %s: %s" % (j.id, self.name, j.error))
        self.changed()


# --- the fleet ----------------------------------------------------------------------

class Fleet:
    def __init__(self, url, token, first, count, colo_size):
        hostport = url.split("://", 1)[1].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.token = token
        self.colo_size = colo_size
        self.agents = [SimAgent(self, i) for i in range(first, first + count)]
        self.stopping = False
        self.tasks = set()
        self.failures = 0

    def event(self, line):
        sys.stdout.write(line + "\n")

    def fail(self, msg):
        self.failures += 1
        if self.stopping:
            return
        # Bounded: the first 20 failures by text, then a count every 1000.
        if self.failures <= 20 or self.failures % 1000 == 0:
            self.event("error %s (failure %d)" % (msg.replace("\n", " "), self.failures))

    def spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        sem = asyncio.Semaphore(32)

        async def enroll(a):
            async with sem:
                await a.enroll(self.token)

        await asyncio.gather(*(enroll(a) for a in self.agents))
        self.event("enrolled %d" % len(self.agents))
        sys.stdout.flush()
        # Agents start spread over one heartbeat, as a fleet's machines do,
        # not all in the same millisecond.
        for k, a in enumerate(self.agents):
            self.spawn(self.start(a, STAGGER_S * k / len(self.agents)))
        ready = False
        while not self.stopping:
            if not ready and all(a.registered.is_set() and a.polling for a in self.agents):
                ready = True
                self.event("ready %d" % len(self.agents))
            sys.stdout.flush()
            await asyncio.sleep(0.05)
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for a in self.agents:
            for c in (a.rconn, a.pconn, a.sconn):
                c.close()

    async def start(self, a, delay):
        await asyncio.sleep(delay)
        self.spawn(a.reporter())
        self.spawn(a.poller())

    def stop(self):
        self.stopping = True


def main(argv):
    token = os.environ.get("AGENTSIM_TOKEN")
    if len(argv) != 5 or not token:
        sys.stderr.write("usage: AGENTSIM_TOKEN=<enrolment token> agentsim.py URL FIRST COUNT COLO_SIZE\n")
        return 2
    fleet = Fleet(argv[1], token, int(argv[2]), int(argv[3]), int(argv[4]))
    asyncio.run(fleet.run())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
