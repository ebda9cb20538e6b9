# SPDX-License-Identifier: MIT
"""The real object stores the store tests use, each started once per suite
(conftest.py's session fixtures), on 127.0.0.1, in temporary directories, and
stopped by the PIDs they wrote:

* Radosgw: Ceph's S3 gateway from Debian (ceph-mon, ceph-osd, radosgw). One
  monitor and one memstore OSD (data in RAM), cephx off, a user made with
  radosgw-admin. About 15 s from nothing to serving. It checks SigV4 and the
  payload hash, so it is the S3 store for s3://, r2:// and gs:// (endpoint=).
* Azurite: the Azure Storage emulator from npm (pinned in tests/stores), with
  --disableTelemetry and --skipApiVersionCheck, account devstoreaccount1 and
  its published development key.

Ports are chosen by the kernel (bind to port 0, then hand the number over);
a start that loses the port to another process is retried with a new one."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORES_NODE = os.path.join(ROOT, "tests", "stores")

# Azurite's development account: the key is the one its README publishes.
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout=120.0, proc_alive=None):
    """Waits for cond() to be true; fails naming what after timeout (a
    generous bound for a busy machine, not a performance target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc_alive is not None and not proc_alive():
            raise RuntimeError("%s: the process died while starting" % what)
        time.sleep(0.2)
    raise RuntimeError("%s: not ready after %.0f s" % (what, timeout))


def http_answers(url):
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: it is serving
    except OSError:
        return False


def stop_pid(pid, timeout=20.0):
    """SIGTERM, then SIGKILL after timeout; only the process we started."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Radosgw:
    """One mon, one memstore OSD and one radosgw, cephx off."""

    ACCESS_KEY = "PCAPDTESTACCESSKEY01"
    SECRET_KEY = "pcapd-test-secret-key-0123456789abcdef"

    def __init__(self, memstore_bytes=1 << 30):
        self.memstore_bytes = memstore_bytes  # the OSD's RAM (a benchmark stores more than the tests)
        self.dir = tempfile.mkdtemp(prefix="pcapd-rgw-")
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.pids = []
        self.port = None
        self.start_seconds = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def _ceph(self, *args, timeout=60):
        try:
            return subprocess.run(["ceph", "-c", self.conf, "--connect-timeout", "10"] + list(args),
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 1, "", "timed out")

    def _write_conf(self, mon_port):
        d = self.dir
        with open(self.conf, "w") as f:
            f.write("""[global]
fsid = %(fsid)s
mon_host = v1:127.0.0.1:%(mon)d
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
osd_crush_chooseleaf_type = 0
ms_bind_ipv6 = false
public_network = 127.0.0.0/8
run_dir = %(d)s/run
pid_file = %(d)s/run/$name.pid
admin_socket = %(d)s/run/$name.asok
log_file = %(d)s/log/$name.log
mon_data = %(d)s/mon/$cluster-$id
osd_data = %(d)s/osd/$cluster-$id
osd_objectstore = memstore
memstore_device_bytes = %(mem)d
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:%(rgw)d
rgw_data = %(d)s/rgw
""" % {"fsid": self.fsid, "mon": mon_port, "rgw": self.port, "d": d, "mem": self.memstore_bytes})

    def _pid(self, name):
        """The PID a daemon wrote (it forks; the file may come a moment later)."""
        path = os.path.join(self.dir, "run", name + ".pid")
        wait_for("%s's pid file" % name, lambda: os.path.exists(path) and os.path.getsize(path) > 0, timeout=60)
        with open(path) as f:
            return int(f.read().strip())

    def start(self):
        t0 = time.monotonic()
        self.fsid = str(uuid.uuid4())
        for sub in ("run", "log", "mon", "osd/ceph-0", "rgw"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        mon_port, self.port = free_port(), free_port()
        self._write_conf(mon_port)
        monmap = os.path.join(self.dir, "monmap")
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, timeout=120)  # noqa: E731
        run("monmaptool", "--create", "--add", "a", "v1:127.0.0.1:%d" % mon_port, "--fsid", self.fsid, monmap)
        run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap)
        run("ceph-mon", "-c", self.conf, "-i", "a")  # daemonizes; its PID goes to run/mon.a.pid
        self.pids.append(self._pid("mon.a"))
        wait_for("ceph-mon answering", lambda: self._ceph("mon", "stat").returncode == 0,
                 proc_alive=lambda: os.path.exists("/proc/%d" % self.pids[0]))
        # A monitor that answers "mon stat" may still refuse other commands
        # for a moment ("problem getting command descriptions": the command
        # was not run): retry those until "osd create" goes through.
        last = []

        def osd_created():
            r = self._ceph("osd", "create")
            last[:] = [r]
            if r.returncode != 0 and "problem getting command descriptions" not in r.stderr:
                raise RuntimeError("ceph osd create: %s" % r.stderr)
            return r.returncode == 0
        wait_for("ceph osd create", osd_created, proc_alive=lambda: os.path.exists("/proc/%d" % self.pids[0]))
        if last[0].stdout.strip() != "0":
            raise RuntimeError("ceph osd create: made osd %r, not 0" % last[0].stdout.strip())
        run("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs")
        run("ceph-osd", "-c", self.conf, "-i", "0")
        self.pids.append(self._pid("osd.0"))
        wait_for("ceph osd 0 up", lambda: "1 up" in self._ceph("osd", "stat").stdout)
        run("radosgw", "-c", self.conf, "-n", "client.rgw.a")
        self.pids.append(self._pid("client.rgw.a"))
        wait_for("radosgw on %s" % self.endpoint, lambda: http_answers(self.endpoint + "/"))
        run("radosgw-admin", "-c", self.conf, "user", "create", "--uid=pcapd", "--display-name=pcapd tests",
            "--access-key=" + self.ACCESS_KEY, "--secret-key=" + self.SECRET_KEY)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop_gateway(self):
        """Stops radosgw alone (the store goes away; mon and OSD keep the data)."""
        stop_pid(self.pids.pop())

    def start_gateway(self):
        """Starts radosgw again on the same port."""
        try:
            os.unlink(os.path.join(self.dir, "run", "client.rgw.a.pid"))
        except FileNotFoundError:
            pass
        subprocess.run(["radosgw", "-c", self.conf, "-n", "client.rgw.a"], check=True, capture_output=True,
                       timeout=120)
        self.pids.append(self._pid("client.rgw.a"))
        wait_for("radosgw on %s" % self.endpoint, lambda: http_answers(self.endpoint + "/"))

    def stop(self):
        for pid in reversed(self.pids):
            stop_pid(pid)
        self.pids = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def boto3(self, secret=None):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.ACCESS_KEY,
                            aws_secret_access_key=secret or self.SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


class Azurite:
    """Azurite's blob service on a kernel-chosen port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pcapd-azurite-")
        self.proc = None
        self.port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d/%s" % (self.port, AZ_ACCOUNT)

    def start(self, port=None):
        """On a kernel-chosen port, or again on the same one (port=)."""
        main = os.path.join(STORES_NODE, "node_modules", "azurite", "dist", "src", "blob", "main.js")
        if not os.path.exists(main):
            raise RuntimeError("no Azurite at %s (scripts/install-deps.sh installs it)" % main)
        for _ in range(3):
            self.port = port or free_port()
            self.log = open(os.path.join(self.dir, "azurite.log"), "w")
            self.proc = subprocess.Popen(
                ["node", main, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "-l", self.dir,
                 "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
                stdout=self.log, stderr=subprocess.STDOUT)
            try:
                wait_for("azurite on %s" % self.endpoint, lambda: http_answers(self.endpoint + "?comp=list"),
                         timeout=60, proc_alive=lambda: self.proc.poll() is None)
                return self
            except RuntimeError:
                self.stop_proc()  # the port was taken meanwhile: another one
        raise RuntimeError("azurite did not start; see %s" % os.path.join(self.dir, "azurite.log"))

    def stop_proc(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self.stop_proc()
        shutil.rmtree(self.dir, ignore_errors=True)

    def node(self, script, *args, timeout=60):
        """Runs a node script (text) with @azure/storage-blob resolvable; the
        endpoint, account and key are in ENDPOINT, ACCOUNT, KEY. Returns stdout."""
        env = dict(os.environ, ENDPOINT=self.endpoint, ACCOUNT=AZ_ACCOUNT, KEY=AZ_KEY,
                   NODE_PATH=os.path.join(STORES_NODE, "node_modules"))
        r = subprocess.run(["node", "-e", script] + list(args), env=env, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("node: %s" % r.stderr.decode(errors="replace"))
        return r.stdout
