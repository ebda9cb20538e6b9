#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Upload of a full capture to an object store (issue 9 target: pcapd at
least as fast as `rclone copy` on the same store, in the same run).

A real Ceph radosgw (tests/integration/stores.py, one memstore OSD), a real
controller and one agent (tests/integration/stack.py). Each round:
  1. a full capture with byte_limit SIZE_MIB MiB: trafgen sends 1514-byte
     frames into the agent's link until the limit stops it;
  2. pcapd: the time from the agent's share first seen `uploading` to `done`
     (status polled every 5 ms), i.e. create + 8 MiB parts through the
     controller's signed URLs + complete;
  3. the anchor: the same object, fetched to local disk, copied with
     `rclone copy` (an S3 remote on the same radosgw, keys in the
     environment) into another bucket, timed around the process.
Prints every round and the median and spread (min..max) of both, and their
ratio. Needs root, Debian's rclone and trafgen, and a quiet machine; not
part of `make test`.

    bench/store_upload.py [BUILD_DIR]        env: ROUNDS=5 SIZE_MIB=512
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
    """(monotonic time the share was first seen uploading, time seen done)."""
    t_up, obj = None, None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = acct.call("GET", "/" + pid, token=acct.read)
        obj = r.json["result"]
        st = [p for p in obj.get("agents", []) if p["name"] == agent]
        st = st[0]["status"] if st else None
        now = time.monotonic()
        if st == "uploading" and t_up is None:
            t_up = now
        if obj["status"] == "failed" or st in ("done", "failed", "upload_failed", "lost"):
            if st != "done" or t_up is None:
                raise RuntimeError("capture %s: share %s (%r)" % (pid, st, obj))
            return t_up, now
        time.sleep(0.005)
    raise RuntimeError("capture %s: not uploaded within %ds; last %r" % (pid, timeout, obj))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "build")
    os.environ["PCAPD_BUILD"] = os.path.abspath(build)
    rounds = int(os.environ.get("ROUNDS", "5"))
    size = int(os.environ.get("SIZE_MIB", "512")) << 20
    for tool in ("rclone", "trafgen"):
        if not shutil.which(tool):
            sys.exit("bench/store_upload.py needs %s (apt-get install %s)" % (tool, tool))

    from stack import Stack
    from stores import Radosgw
    rgw = Radosgw().start()
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
            end = time.monotonic() + 60
            while not [p for p in acct.call("GET", "/" + pid, token=acct.read).json["result"].get("agents", [])
                       if p["status"] == "running"]:
                if time.monotonic() > end:
                    raise RuntimeError("capture %s: the agent did not start within 60 s" % pid)
                time.sleep(0.01)
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
            print("round %d: %.0f MiB  pcapd %.2f s  rclone %.2f s" % (i + 1, mib, ours[-1], theirs[-1]),
                  flush=True)
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
