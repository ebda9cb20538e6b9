#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Upload of a full capture to an object store (issue 9 target: pcapd at
least as fast as `rclone copy` on the same store, in the same run).

A real Ceph radosgw (tests/integration/stores.py, one memstore OSD), a real
controller and one agent (tests/integration/stack.py). Each round:
  1. a full capture with byte_limit SIZE_MIB MiB: trafgen sends 1514-byte
     frames into the agent's link until the limit stops it;
  2. pcapd: the time from the capture's end (the agent's share first seen
     past `running`) to `done` (status polled every 5 ms). The agent uploads
     8 MiB parts through the controller's signed URLs while it captures, so
     this is what is left at the end: the tail, complete; the object is
     ready that long after the capture ends (rclone starts only then);
  3. the anchor: the same object, fetched to local disk, copied with
     `rclone copy` (an S3 remote on the same radosgw, keys in the
     environment) into another bucket, timed around the process.
Prints every round (with the load average at its end) and the median and
spread (min..max) of both, and their ratio. Needs root, Debian's rclone and trafgen, and a quiet machine; not
part of `make test`.

With --small-frames (the issue's second figure): 64-byte frames (60 on the
wire) at trafgen's maximum, SIZE_MIB MiB of capture file's worth (76 bytes a
record), captured into the bucket while the upload runs (parts go out as the
capture grows). Each round: frames sent (trafgen -n), captured, kernel drops
and frames missing, the generator's rate, the agent's CPU (utime+stime from
/proc over the round's wall time), and whether parts were in the store before
the capture ended (ListParts). No drops is the target.

    bench/store_upload.py [--small-frames] [BUILD_DIR]   env: ROUNDS=5 SIZE_MIB=512
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

TRAFGEN_CONF = """{ fill(0xff, 6), 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
  0x45, 0x00, const16(1500), 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33),
  192, 0, 2, 1, 192, 0, 2, 2, const16(9999), const16(9999), const16(1480), 0x00, 0x00,
  fill(0x41, 1472) }
"""


def share_times(acct, pid, agent, timeout=600):
    """(monotonic time the share was first seen past running: the capture's
    end, time seen done)."""
    t_up, obj = None, None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = acct.call("GET", "/" + pid, token=acct.read)
        obj = r.json["result"]
        st = [p for p in obj.get("agents", []) if p["name"] == agent]
        st = st[0]["status"] if st else None
        now = time.monotonic()
        if st in ("captured", "uploading", "done") and t_up is None:
            t_up = now
        if obj["status"] == "failed" or st in ("done", "failed", "upload_failed", "lost"):
            if st != "done" or t_up is None:
                raise RuntimeError("capture %s: share %s (%r)" % (pid, st, obj))
            return t_up, now
        time.sleep(0.005)
    raise RuntimeError("capture %s: not uploaded within %ds; last %r" % (pid, timeout, obj))


SMALL_CONF = """{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
  0x45, 0x00, const16(46), 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33),
  192, 0, 2, 1, 192, 0, 2, 2, const16(9999), const16(9999), const16(26), 0x00, 0x00,
  fill(0x41, 18) }
"""


def load():
    """The machine's load average at the round's end (a shared machine: the
    ratio is what holds, both tools run in the same round)."""
    return "load %.2f %.2f %.2f" % os.getloadavg()


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_running(acct, pid):
    end = time.monotonic() + 60
    while not [p for p in acct.call("GET", "/" + pid, token=acct.read).json["result"].get("agents", [])
               if p["status"] == "running"]:
        if time.monotonic() > end:
            raise RuntimeError("capture %s: the agent did not start within 60 s" % pid)
        time.sleep(0.01)


def small_frames(agent, acct, s3, uri, work, rounds, size):
    """64-byte frames at trafgen's maximum, captured while the upload runs."""
    conf = os.path.join(work, "small.cfg")
    with open(conf, "w") as f:
        f.write(SMALL_CONF)
    n = max(1, size // 76)
    pids = [agent.proc.p.pid]
    rows = []
    for i in range(rounds):
        r = acct.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300,
                                   "colo_name": "benchlab", "destination_conf": uri,
                                   "filter_v1": {"destination_port": 9999}})
        if r.status != 200:
            raise RuntimeError("capture refused: %r" % r)
        pid = r.json["result"]["id"]
        wait_running(acct, pid)
        obj = "pcap_%s_%s.pcap" % (pid, agent.name)
        c0, t0 = sum(cpu_s(p) for p in pids), time.monotonic()
        subprocess.run(["ip", "netns", "exec", agent.link.ns_a, "trafgen", "--dev", agent.link.if_a,
                        "--conf", conf, "-n", str(n), "--cpu", "1", "-q"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        t_gen = time.monotonic() - t0
        cpu_gen = sum(cpu_s(p) for p in pids) - c0
        # Parts in the store while the capture still runs.
        ups = [u for u in s3.list_multipart_uploads(Bucket="bench").get("Uploads", []) if u["Key"] == obj]
        parts = len(s3.list_parts(Bucket="bench", Key=obj, UploadId=ups[0]["UploadId"]).get("Parts", [])) \
            if ups else 0
        # Until the counters stop moving (every frame sent has been counted
        # or dropped), then stop.
        last, still = None, time.monotonic()
        while time.monotonic() - still < 3:
            cur = acct.call("GET", "/" + pid, token=acct.read).json["result"]
            key = (cur.get("packets_captured"), cur.get("kernel_drops"))
            if key != last:
                last, still = key, time.monotonic()
            if (key[0] or 0) + (key[1] or 0) >= n:
                break
            time.sleep(0.1)
        acct.call("PUT", "/%s/stop" % pid)
        t_up, t_done = share_times(acct, pid, agent.name)
        cpu = sum(cpu_s(p) for p in pids) - c0
        wall = time.monotonic() - t0
        done = acct.call("GET", "/" + pid, token=acct.read).json["result"]
        got, drops = done.get("packets_captured", 0), done.get("kernel_drops", 0)
        head = s3.head_object(Bucket="bench", Key=obj)
        rows.append((n, got, drops, n / t_gen, cpu_gen / t_gen))
        print("round %d: sent %d  captured %d  kernel drops %d  missing %d  rate %.0f pps  "
              "agent CPU %.0f%% while the generator ran (%.2f s over %.2f s; %.1f s over the round's %.1f s)  "
              "parts in the store before the end %d  object %.0f MiB  tail upload %.2f s  %s" % (
                  i + 1, n, got, drops, n - got, n / t_gen, 100 * cpu_gen / t_gen, cpu_gen, t_gen, cpu, wall,
                  parts, head["ContentLength"] / (1 << 20), t_done - t_up, load()), flush=True)
        s3.delete_object(Bucket="bench", Key=obj)
    rates = [r[3] for r in rows]
    print("64-byte frames while uploading: drops %s  missing %s  rate median %.0f pps (%.0f..%.0f)  "
          "agent CPU median %.0f%% of a core while the generator ran" % ([r[2] for r in rows], [r[0] - r[1] for r in rows],
                                       statistics.median(rates), min(rates), max(rates),
                                       100 * statistics.median(r[4] for r in rows)))


def main():
    args = sys.argv[1:]
    small = "--small-frames" in args
    args = [a for a in args if a != "--small-frames"]
    build = args[0] if args else os.path.join(os.path.dirname(HERE), "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    rounds = int(os.environ.get("ROUNDS", "5"))
    size = int(os.environ.get("SIZE_MIB", "512")) << 20
    for tool in ("trafgen",) if small else ("rclone", "trafgen"):
        if not shutil.which(tool):
            sys.exit("bench/store_upload.py needs %s (apt-get install %s)" % (tool, tool))

    from stack import Stack
    from stores import Radosgw
    # Another suite's Ceph may take a port chosen free before our monitor
    # binds it (the test fixture does the same): again, on new ports.
    for attempt in range(3):
        # Every round's objects stay (rgw frees a deleted multipart
        # object's parts only hours later): room for them all.
        rgw = Radosgw(memstore_bytes=(2 * rounds + 2) * size + (1 << 30))
        try:
            rgw.start()
            break
        except Exception:
            rgw.stop()
            if attempt == 2:
                raise
    s = Stack(tls=False)
    work = tempfile.mkdtemp(prefix="pcapd-bench-upload-")
    try:
        s.start()
        agent = s.add_agent("upl", "benchlab")
        acct = s.account()
        s3 = rgw.boto3()
        s3.create_bucket(Bucket="bench")
        s3.create_bucket(Bucket="rclone")
        uri = "s3://bench?region=us-east-1&endpoint=%s&access-key-id=%s&secret-access-key=%s" % (
            rgw.endpoint, rgw.ACCESS_KEY, rgw.SECRET_KEY)
        own = acct.call("POST", "/ownership", {"destination_conf": uri}).json["result"]
        token = s3.get_object(Bucket="bench", Key=own["filename"])["Body"].read().decode().strip()
        acct.call("POST", "/ownership/validate", {"destination_conf": uri, "ownership_challenge": token})
        if small:
            small_frames(agent, acct, s3, uri, work, rounds, size)
            return
        conf = os.path.join(work, "frame.cfg")
        with open(conf, "w") as f:
            f.write(TRAFGEN_CONF)
        # The store's keys from here only (an AWS_CA_BUNDLE or keys in the
        # environment would change what rclone does).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(RCLONE_CONFIG_RGW_TYPE="s3", RCLONE_CONFIG_RGW_PROVIDER="Ceph",
                   RCLONE_CONFIG_RGW_ENDPOINT=rgw.endpoint, RCLONE_CONFIG_RGW_ACCESS_KEY_ID=rgw.ACCESS_KEY,
                   RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=rgw.SECRET_KEY, RCLONE_CONFIG_RGW_REGION="us-east-1")
        ours, theirs = [], []
        for i in range(rounds):
            r = acct.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300,
                                       "byte_limit": size, "colo_name": "benchlab", "destination_conf": uri})
            pid = r.json["result"]["id"]
            wait_running(acct, pid)
            gen = subprocess.Popen(["ip", "netns", "exec", agent.link.ns_a, "trafgen", "--dev", agent.link.if_a,
                                    "--conf", conf, "--cpu", "1", "-q"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                t_up, t_done = share_times(acct, pid, agent.name)
            finally:
                # trafgen stops on ^C, not on SIGTERM; `ip netns exec` forks
                # it, so the whole group gets it (else trafgen lives on).
                os.killpg(gen.pid, signal.SIGINT)
                try:
                    gen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(gen.pid, signal.SIGKILL)
                    gen.wait()
            ours.append(t_done - t_up)
            obj = "pcap_%s_%s.pcap" % (pid, agent.name)
            local = os.path.join(work, obj)
            s3.download_file("bench", obj, local)
            mib = os.path.getsize(local) / (1 << 20)
            t0 = time.monotonic()
            rc = subprocess.run(["rclone", "copy", "--s3-upload-cutoff", "8M", "--s3-chunk-size", "8M", local,
                                 "rgw:rclone/r%d" % i], env=env, capture_output=True, text=True)
            if rc.returncode != 0:
                raise RuntimeError("rclone copy: %s" % rc.stderr)
            theirs.append(time.monotonic() - t0)
            os.unlink(local)
            print("round %d: %.0f MiB  pcapd %.2f s  rclone %.2f s  ratio %.2f  %s" % (
                i + 1, mib, ours[-1], theirs[-1], ours[-1] / theirs[-1], load()), flush=True)
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print("pcapd agent upload: median %.2f s (%.2f..%.2f)" % (mo, min(ours), max(ours)))
        print("rclone copy:        median %.2f s (%.2f..%.2f)" % (mt, min(theirs), max(theirs)))
        print("ratio pcapd/rclone: %.2f (<= 1.0 is the target)" % (mo / mt))
    finally:
        s.close()
        rgw.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
