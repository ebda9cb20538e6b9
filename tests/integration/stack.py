# SPDX-License-Identifier: MIT
"""A whole pcapd deployment on one machine, for end-to-end tests and benchmarks.

Stack starts a real controller (`pcapd controller`) on 127.0.0.1 with ports
chosen by the kernel (HTTP, and HTTPS with a certificate made by openssl for
IP:127.0.0.1), creates credentials with `pcapd token create`, and starts agents
(`pcapd agent`) that capture on veth interfaces of the root namespace whose
peers live in namespaces made here; traffic is sent from those namespaces
(tests/integration/traffic.py frames, sendraw.py). Every process is stopped by
its pid and every namespace deleted in Stack.close(), whatever happened.

Used three ways:
  - from pytest (test_api.py, test_pcapctl.py): Stack(...).start(), then
    stack.account(), stack.request(...), stack.add_agent(...);
  - by the SDK suites: `python3 stack.py run -- node --test ...` starts a stack
    with two agents, exports what the node tests need (PCAPD_SDK_* variables,
    NODE_EXTRA_CA_CERTS), runs the command and tears everything down;
    `stack.py run --azure -- …` does the same for the Azure SDK tests
    (PCAPD_AZ_* variables);
  - by hand: `python3 stack.py up` prints the same variables and waits for
    Ctrl-C.

Only 192.0.2.0/24 and 2001:db8::/64 are used, on links that exist only here.
"""

import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from netns import PREFIX, _QUIET_SYSCTLS, Proc, _cleanup_stale, ns_cmd, run  # noqa: E402
from waits import WAIT, until  # noqa: E402

CONTROLLER_READY = "pcapd: controller listening on"
API_PREFIX = "/client/v4"
AZ_VERSION = "2026-01-01"  # what @azure/arm-network 39 sends
_counter = 0


# The run's PostgreSQL server (pgserver.PgServer), set by conftest.py when the
# suite runs with --db postgres; None: every stack uses SQLite.
PG_SERVER = None


def build_dir():
    return os.environ.get("PCAPD_BUILD", os.path.join(ROOT, "build"))


def binary(name):
    path = os.path.join(build_dir(), name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("no %s binary at %s (set PCAPD_BUILD to the build directory)" % (name, path))
    return path


def random_id():
    return os.urandom(16).hex()


def subscription(account_id):
    """The Azure subscription id of a pcapd account: its 32 hex digits as a UUID."""
    a = account_id
    return "%s-%s-%s-%s-%s" % (a[:8], a[8:12], a[12:16], a[16:20], a[20:])


def path_of(url):
    """The path and query of an absolute URL the controller gave (an
    operation's), to request it again."""
    i = url.index("/subscriptions/")
    return url[i:]


# --- links: a veth whose root-namespace end an agent captures on -------------

class Link:
    """A veth pair: `root_if` in the root namespace (no address, IPv6 off, so
    the host never sends anything on it), its peer `if_a` in namespace `ns_a`
    with 192.0.2.1/24. Frames sent from ns_a to a MAC nobody owns reach
    root_if and are dropped there after the capture taps saw them.

    The attribute names match NetPair's sending side, so traffic.filler() and
    traffic.send() work with a Link."""

    def __init__(self):
        global _counter
        _counter += 1
        tag = "%d-%d" % (os.getpid(), _counter)
        short = "%d%d" % (os.getpid() % 100000, _counter)
        self.ns_a = "%s-%s-s" % (PREFIX, tag)
        self.ns_b = None
        self.if_a = "ps%s" % short
        self.root_if = "pr%s" % short
        self.vlan_a = self.if_a + ".100"   # never created: no kernel_tag frames here
        self.ip4_a, self.ip4_b = "192.0.2.1", "192.0.2.2"
        self.ip6_a, self.ip6_b = "2001:db8::1", "2001:db8::2"
        self.mac_a = None
        self.has_vlan_dev = False
        self.VLAN = 100
        self._made = False

    def create(self):
        _cleanup_stale()
        run(["ip", "netns", "add", self.ns_a])
        self._made = True
        run(ns_cmd(self.ns_a, ["sysctl", "-q", "-w"] + _QUIET_SYSCTLS))
        run(ns_cmd(self.ns_a, ["ip", "link", "set", "lo", "up"]))
        run(["ip", "link", "add", "name", self.root_if, "type", "veth",
             "peer", "name", self.if_a, "netns", self.ns_a])
        # Before the link is up: no link-local address, no MLD, no router
        # solicitation from the host side.
        run(["sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % self.root_if])
        run(["ip", "link", "set", self.root_if, "up"])
        ip = ["ip", "-n", self.ns_a]
        run(ip + ["addr", "add", self.ip4_a + "/24", "dev", self.if_a])
        run(ip + ["addr", "add", self.ip6_a + "/64", "dev", self.if_a, "nodad"])
        run(ip + ["link", "set", self.if_a, "up"])
        r = run(["ip", "-j", "-n", self.ns_a, "link", "show", "dev", self.if_a])
        self.mac_a = json.loads(r.stdout)[0]["address"]
        time.sleep(0.2)
        return self

    def destroy(self):
        if self._made:
            run(["ip", "netns", "del", self.ns_a], check=False)   # takes the veth pair with it
            run(["ip", "link", "del", self.root_if], check=False)
            self._made = False


# Frame indexes (traffic.Frame markers) handed out in order, all 7 digits, so
# that no two frames of one process share a marker or one is a prefix of
# another.
_next_frame = 1000000


def _frame_range(n):
    global _next_frame
    first = _next_frame
    _next_frame += n
    assert _next_frame < 10000000
    return first


def udp_frames(link, n, dport, size=200):
    """n IPv4 UDP frames of `size` bytes from link's namespace to nobody,
    each with its own marker (traffic.Frame); dport picks what a filter
    selects."""
    import traffic
    return traffic.filler(link, n, size=size, dport=dport, first=_frame_range(n))


def tcp_frames(link, n, dport):
    from scapy.all import IP, TCP, Ether
    import traffic
    base = _frame_range(n)
    e = Ether(src=link.mac_a, dst=traffic.NOBODY_MAC)
    return [traffic.Frame(base + i, e / IP(src=link.ip4_a, dst=link.ip4_b) / TCP(sport=41000 + i, dport=dport),
                          4, link.ip4_a, link.ip4_b, traffic.TCP_, ports=(41000 + i, dport), note="tcp")
            for i in range(n)]


def send(link, frames, gap_us=0):
    import traffic
    traffic.send(link, frames, gap_us=gap_us)


# --- HTTP ----------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # {lowercase name: value}
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Account:
    """An account with its credentials: write, read (Bearer tokens) and a
    legacy key bound to `email`."""

    def __init__(self, stack, account_id, write, read, email, key):
        self.stack = stack
        self.id = account_id
        self.write = write
        self.read = read
        self.email = email
        self.key = key
        self.bucket = None        # destination_conf of a validated bucket
        self.bucket_dir = None
        self.bucket_id = None

    def path(self, suffix="", prefix=API_PREFIX):
        return "%s/accounts/%s/pcaps%s" % (prefix, self.id, suffix)

    def call(self, method, suffix="", body=None, token=None, **kw):
        return self.stack.request(method, self.path(suffix), token=token or self.write, body=body, **kw)

    # -- the Azure dialect: the account is the subscription

    @property
    def subscription(self):
        return subscription(self.id)

    def arm_path(self, name="", suffix="", group="rg1", watcher="nw1", version=AZ_VERSION):
        """…/packetCaptures[/name[suffix]]?api-version=version (None: no query)."""
        from urllib.parse import quote
        p = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s/packetCaptures" % (
            self.subscription, quote(group, safe=""), quote(watcher, safe=""))
        if name:
            p += "/" + quote(name, safe="%") + suffix
        return p if version is None else p + "?api-version=" + version

    def arm(self, method, name="", suffix="", body=None, token=None, https=True, **kw):
        """One request of the Azure dialect (HTTPS, as the SDK requires)."""
        path_kw = {k: kw.pop(k) for k in ("group", "watcher", "version") if k in kw}
        return self.stack.request(method, self.arm_path(name, suffix, **path_kw), token=token or self.write,
                                  body=body, https=https, **kw)

    def vm(self, name, kind="virtualMachines", group="rg1"):
        """The ARM id of a target."""
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/%s/%s" % (
            self.subscription, group, kind, name)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _check_exit(what, proc, rc, problems):
    """Records a sanitizer report or an unclean exit of a process stopped
    with SIGTERM (rc None: it was killed on purpose; only reports count)."""
    text = proc.stderr()
    if any(m in text for m in SANITIZER_MARKS):
        problems.append("%s: sanitizer report:\n%s" % (what, text[-4000:]))
    elif rc is not None and rc != 0:
        problems.append("%s: exit status %d after SIGTERM:\n%s" % (what, rc, text[-2000:]))


class Controller:
    """data: its --data directory (default the stack's); a second controller
    over the stack's database (test_replicas.py) has one of its own."""

    def __init__(self, stack, data=None):
        self.stack = stack
        self.data = data
        self.proc = None
        self.http_port = 0
        self.https_port = 0

    def start(self, extra=()):
        s = self.stack
        if self.proc is not None and not self.alive():
            _check_exit("controller", self.proc, None, s.problems)
        cmd = [binary("pcapd"), "controller", "--data", self.data or s.ctl_data, "--db", s.db_url,
               "--http", "127.0.0.1:%d" % self.http_port,
               "--bucket-root", s.bucket_root] + list(s.controller_args) + list(extra)
        if s.tls:
            cmd += ["--https", "127.0.0.1:%d" % self.https_port, "--tls-cert", s.cert, "--tls-key", s.key]
        self.proc = Proc(cmd)
        if not self.proc.wait_line(CONTROLLER_READY, WAIT):
            err = self.proc.stderr()
            self.proc.kill()
            raise RuntimeError("controller not ready: %s\n%s" % (" ".join(cmd), err))
        line = [l for l in self.proc.lines if l.startswith(CONTROLLER_READY)][0]
        urls = line[len(CONTROLLER_READY):].split()
        for u in urls:
            m = re.match(r"(https?)://127\.0\.0\.1:(\d+)$", u)
            if not m:
                raise RuntimeError("controller readiness line: %r" % line)
            if m.group(1) == "http":
                self.http_port = int(m.group(2))
            else:
                self.https_port = int(m.group(2))
        return self

    def alive(self):
        return self.proc is not None and self.proc.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        if self.proc is None:
            return None
        rc = self.proc.stop(sig, timeout)
        _check_exit("controller", self.proc, rc, self.stack.problems)
        return rc

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            _check_exit("controller", self.proc, None, self.stack.problems)
            self.proc = None


class Agent:
    """An agent enrols at its first start with enroll_token (default: the
    stack's operator enrolment token, whose agents serve every account) and
    keeps its own key in its data directory from then on."""

    def __init__(self, stack, name, colo, link, https=False, token_in_env=False, extra_args=None,
                 enroll_token=None):
        self.stack = stack
        self.enroll_token = enroll_token
        self.extra_args = list(extra_args or [])
        self.name = name
        self.colo = colo
        self.link = link
        self.https = https
        self.token_in_env = token_in_env
        self.data = os.path.join(stack.dir, "agent-" + name)
        # Where the agent writes /var/captures/X (files on its own disk)
        self.local_root = os.path.join(stack.dir, "local-" + name)
        self.proc = None

    def start(self, timeout=WAIT):
        s = self.stack
        url = s.https_url if self.https else s.http_url
        cmd = [binary("pcapd"), "agent", "--controller", url, "--name", self.name, "--colo", self.colo,
               "-i", self.link.root_if, "--data", self.data, "--bucket-root", s.bucket_root,
               "--local-root", self.local_root] + self.extra_args
        env = dict(os.environ)
        tok = self.enroll_token or s.enroll_token
        if self.token_in_env:
            env["PCAPD_ENROLL_TOKEN"] = tok
        else:
            cmd += ["--enroll-token", tok]
        if self.https:
            cmd += ["--cacert", s.cert]
        self.proc = Proc(cmd, env=env)
        ready = "pcapd: agent %s registered with" % self.name
        if not self.proc.wait_line(ready, timeout):
            err = self.proc.stderr()
            self.proc.kill()
            raise RuntimeError("agent %s not registered within %ds: %s\n%s" % (self.name, timeout, " ".join(cmd), err))
        return self

    def alive(self):
        return self.proc is not None and self.proc.p.poll() is None

    def kill(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            _check_exit("agent " + self.name, self.proc, None, self.stack.problems)
            self.proc = None

    def stop(self, timeout=WAIT):
        if self.proc is not None:
            rc = self.proc.stop(signal.SIGTERM, timeout)
            _check_exit("agent " + self.name, self.proc, rc, self.stack.problems)
            self.proc = None
            return rc
        return None


class Stack:
    """controller_args: extra flags (--grace 3 --agent-timeout 10 by default:
    an agent is not lost merely because a busy machine delayed its report)."""

    def __init__(self, tls=True, controller_args=None, workdir=None, db_url=None):
        self.tls = tls
        if controller_args is None:
            controller_args = ["--grace", "3", "--agent-timeout", "10"]
        self.controller_args = list(controller_args)
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="pcapd-e2e-")
        self.ctl_data = os.path.join(self.dir, "ctl")
        # The controller and `pcapd token create` name the database with
        # --db: a database of its own on the run's PostgreSQL server (pytest
        # --db postgres), else the SQLite file the controller's --data implies.
        if db_url is None and PG_SERVER is not None:
            db_url = PG_SERVER.create_database()
        self.db_url = db_url or "sqlite:" + os.path.join(self.ctl_data, "pcapd.db")
        self.bucket_root = os.path.join(self.dir, "buckets")
        os.makedirs(self.bucket_root, exist_ok=True)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.controller = Controller(self)
        self.agents = []
        self.links = []
        self.accounts = []
        self.agent_token = None
        self.enroll_token = None
        self._ssl = None
        self._bucket_n = 0
        self._lock = threading.Lock()
        # Sanitizer reports and unclean exits of the processes started here,
        # filled as they stop; close() leaves the verdict to the caller
        # (assert_clean()).
        self.problems = []

    # -- lifecycle

    def start(self):
        if os.geteuid() != 0:
            raise RuntimeError("the end-to-end stack needs root (network namespaces, packet sockets)")
        try:
            if self.tls:
                self._make_cert()
            self.controller.start()
            # The operator's enrolment token: its agents serve every account.
            self.enroll_token = self.token(None, "enroll")
            # An agent's own key, for tests that speak the agent protocol
            # themselves (this agent never runs).
            self.agent_token = self.enroll("harness-key", "none")
        except BaseException:
            self.close()
            raise
        return self

    def _make_cert(self):
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], timeout=30)
        self._ssl = ssl.create_default_context(cafile=self.cert)

    def close(self):
        for a in self.agents:
            try:
                a.stop()
            except Exception:
                a.kill()
        try:
            if self.controller.proc is not None:
                if self.controller.alive():
                    self.controller.stop(signal.SIGTERM)
                else:
                    _check_exit("controller", self.controller.proc, self.controller.proc.p.returncode,
                                self.problems)
                self.controller.proc = None
        except Exception:
            self.controller.kill()
        for l in self.links:
            l.destroy()
        self.links = []
        if self._own_dir and not os.environ.get("PCAPD_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def assert_clean(self):
        """Raises if a process of this stack reported a sanitizer error or
        exited uncleanly after SIGTERM."""
        if self.problems:
            raise AssertionError("\n\n".join(self.problems))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def restart_controller(self, kill=True):
        """SIGKILL (or SIGTERM) the controller and start it again on the same
        ports and --data."""
        if kill:
            self.controller.kill()
        else:
            self.controller.stop()
        self.controller.start()

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.controller.http_port

    @property
    def https_url(self):
        return "https://127.0.0.1:%d" % self.controller.https_port

    # -- credentials

    def token(self, account_id, scope, email=None, extra=None):
        """A new credential; account_id None: an operator's (enroll only)."""
        cmd = [binary("pcapd"), "token", "create", "--db", self.db_url, "--scope", scope]
        if account_id:
            cmd += ["--account", account_id]
        if email:
            cmd += ["--email", email]
        cmd += list(extra or [])
        r = run(cmd)
        tok = r.stdout.decode().strip()
        if not tok or "\n" in tok:
            raise RuntimeError("pcapd token create printed %r" % tok)
        return tok

    def enroll(self, name, colo, token=None):
        """Enrols agent name with an enrolment token (default: the
        operator's) through the API; returns its key."""
        r = self.request("POST", "/agent/v1/enroll", token=token or self.enroll_token,
                         body={"name": name, "colo": colo})
        if r.status != 200:
            raise RuntimeError("enrolment of %s: %d %r" % (name, r.status, r.body))
        return json.loads(r.body)["secret"]

    def account(self, bucket=False):
        """A new account with write and read tokens and a legacy key; with
        bucket=True also a validated file:// bucket (account.bucket)."""
        aid = random_id()
        email = "e2e-%s@example.com" % aid[:8]
        acct = Account(self, aid, self.token(aid, "write"), self.token(aid, "read"), email,
                       self.token(aid, "write", email=email))
        self.accounts.append(acct)
        if bucket:
            acct.bucket, acct.bucket_dir, acct.bucket_id = self.validated_bucket(acct)
        return acct

    def new_bucket_dir(self):
        with self._lock:
            self._bucket_n += 1
            n = self._bucket_n
        d = os.path.join(self.bucket_root, "b%d" % n)
        return "file://" + d, d

    def validated_bucket(self, acct):
        uri, d = self.new_bucket_dir()
        r = acct.call("POST", "/ownership", {"destination_conf": uri})
        if r.status != 200:
            raise RuntimeError("ownership create: %r" % r)
        own = r.json["result"]
        with open(os.path.join(d, own["filename"])) as f:
            challenge = f.read().strip()
        r = acct.call("POST", "/ownership/validate", {"destination_conf": uri, "ownership_challenge": challenge})
        if r.status != 200 or r.json["result"]["status"] != "success":
            raise RuntimeError("ownership validate: %r" % r)
        return uri, d, own["id"]

    # -- agents and links

    def add_link(self):
        l = Link()
        self.links.append(l)
        l.create()
        return l

    def add_agent(self, name, colo, https=False, token_in_env=False, link=None, extra_args=None, enroll_token=None):
        link = link or self.add_link()
        a = Agent(self, name, colo, link, https=https, token_in_env=token_in_env, extra_args=extra_args,
                  enroll_token=enroll_token)
        self.agents.append(a)
        a.start()
        return a

    # -- HTTP

    def request(self, method, path, token=None, body=None, headers=None, https=False, raw=None, timeout=30,
                controller=None):
        """One request to the controller (or to another Controller over the
        same database); body: an object sent as JSON, or raw bytes/str as
        they are. Never raises for an HTTP status."""
        ctl = controller or self.controller
        if https:
            conn = http.client.HTTPSConnection("127.0.0.1", ctl.https_port, context=self._ssl, timeout=timeout)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", ctl.http_port, timeout=timeout)
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
            h["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            out = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()
        return out

    # -- captures

    def wait_status(self, acct, pcap_id, want=("success", "failed"), timeout=WAIT, token=None, seen=None):
        """Polls GET …/pcaps/{id} every 50 ms until its status is in want;
        returns the object. seen (a list) collects every status observed."""
        end = time.monotonic() + timeout
        last = None
        while True:
            r = acct.call("GET", "/" + pcap_id, token=token or acct.read)
            if r.status == 200:
                last = r.json["result"]
                if seen is not None and (not seen or seen[-1] != last.get("status")):
                    seen.append(last.get("status"))
                if last.get("status") in want:
                    return last
            if time.monotonic() > end:
                raise AssertionError("capture %s not %s within %.0fs; last answer %r (%r)" %
                                     (pcap_id, "/".join(want), timeout, last, r))
            time.sleep(0.05)

    def wait_captured(self, acct, pcap_id, n, timeout=WAIT):
        """Waits until the capture's packets_captured (the agents' reports)
        reaches n, so that a stop sent next cannot overtake packets already
        sent; returns the object."""
        last = {}

        def got():
            r = acct.call("GET", "/" + pcap_id, token=acct.read)
            if r.status == 200:
                last["obj"] = r.json["result"]
                if last["obj"].get("packets_captured", 0) >= n:
                    return last["obj"]
            return None

        return until(got, lambda: "capture %s: %d packets captured; last answer %r" % (
            pcap_id, n, last.get("obj")), timeout)


# --- the CLI used by run-tests.sh for the SDK suite ------------------------------

def sdk_stack():
    """The stack the node tests run against: TLS, two agents in colo "lab"
    (one over HTTP, one over HTTPS with the token in the environment), three
    accounts: http (with a bucket), https (with a bucket), other."""
    s = Stack(tls=True).start()
    try:
        # Every packet into the history, so the sample test knows what to expect.
        a1 = s.add_agent("sdk-a1", "lab", extra_args=["--sample-rate", "1"])
        a2 = s.add_agent("sdk-a2", "lab", https=True, token_in_env=True, extra_args=["--sample-rate", "1"])
        acc_http = s.account(bucket=True)
        acc_https = s.account(bucket=True)
        other = s.account()
    except BaseException:
        s.close()
        raise
    env = {
        "PCAPD_SDK_HTTP_URL": s.http_url,
        "PCAPD_SDK_HTTPS_URL": s.https_url,
        "PCAPD_SDK_COLO": "lab",
        "PCAPD_SDK_AGENTS": "%s,%s" % (a1.name, a2.name),
        "PCAPD_SDK_BUCKET_ROOT": s.bucket_root,
        "PCAPD_SDK_ACCOUNT_ID": acc_http.id,
        "PCAPD_SDK_TOKEN": acc_http.write,
        "PCAPD_SDK_READ_TOKEN": acc_http.read,
        "PCAPD_SDK_EMAIL": acc_http.email,
        "PCAPD_SDK_KEY": acc_http.key,
        "PCAPD_SDK_BUCKET": acc_http.bucket,
        "PCAPD_SDK_TLS_ACCOUNT_ID": acc_https.id,
        "PCAPD_SDK_TLS_TOKEN": acc_https.write,
        "PCAPD_SDK_TLS_BUCKET": acc_https.bucket,
        "PCAPD_SDK_OTHER_ACCOUNT_ID": other.id,
        "PCAPD_SDK_OTHER_TOKEN": other.write,
        "PCAPD_SDK_AGENT_TOKEN": s.agent_token,
        "PCAPD_SDK_LINKS": ",".join("%s:%s" % (l.ns_a, l.if_a) for l in s.links),
        "PCAPD_SDK_SEND": os.path.join(HERE, "stack.py"),
        "PCAPD_SDK_WORKDIR": s.dir,
        "NODE_EXTRA_CA_CERTS": s.cert,
    }
    return s, env


def azure_stack():
    """The stack the Azure SDK tests (tests/azure) run against: TLS (the SDK
    takes only https), agents vm1 and vm2 in scale set (colo) ss1, each
    writing /var/captures below its own --local-root; accounts: the main one
    (write and read tokens), another (its token is another subscription's)
    and one to reach the per-account limit with (--max-active-full 4).
    Azurite (one for the run, stopped with the stack) stands in for Azure
    Storage: the controller holds its account's key (--azure-storage), so
    blobs of https://devstoreaccount1.blob.core.windows.net/… land there."""
    from stores import AZ_ACCOUNT, AZ_KEY, Azurite
    limit = 4
    az = Azurite()
    try:
        az.start()
    except BaseException:
        az.stop()
        raise
    try:
        s = Stack(tls=True, controller_args=["--grace", "3", "--agent-timeout", "10", "--max-active-full", str(limit),
                                             "--azure-storage", "%s=%s@%s" % (AZ_ACCOUNT, AZ_KEY, az.endpoint)]
                  ).start()
    except BaseException:
        az.stop()
        raise
    s.azurite = az
    try:
        a1 = s.add_agent("vm1", "ss1")
        a2 = s.add_agent("vm2", "ss1", https=True, token_in_env=True)
        main, other, limited = s.account(), s.account(), s.account()
    except BaseException:
        s.close()
        az.stop()
        raise
    env = {
        "PCAPD_AZ_ENDPOINT": s.https_url,
        "PCAPD_AZ_HTTPS_PORT": str(s.controller.https_port),
        "PCAPD_AZ_SUBSCRIPTION": main.subscription,
        "PCAPD_AZ_TOKEN": main.write,
        "PCAPD_AZ_READ_TOKEN": main.read,
        "PCAPD_AZ_ACCOUNT_ID": main.id,
        "PCAPD_AZ_OTHER_SUBSCRIPTION": other.subscription,
        "PCAPD_AZ_OTHER_TOKEN": other.write,
        "PCAPD_AZ_LIMITED_SUBSCRIPTION": limited.subscription,
        "PCAPD_AZ_LIMITED_TOKEN": limited.write,
        "PCAPD_AZ_LIMIT": str(limit),
        "PCAPD_AZ_AGENT_TOKEN": s.agent_token,
        "PCAPD_AZ_VMS": "%s,%s" % (a1.name, a2.name),
        "PCAPD_AZ_SCALE_SET": "ss1",
        "PCAPD_AZ_LOCAL_ROOTS": ",".join("%s:%s" % (a.name, a.local_root) for a in (a1, a2)),
        "PCAPD_AZ_LINKS": ",".join("%s:%s" % (l.ns_a, l.if_a) for l in s.links),
        "PCAPD_AZ_SEND": os.path.join(HERE, "stack.py"),
        "PCAPD_AZ_PCAPCTL": binary("pcapctl"),
        "PCAPD_AZ_CACERT": s.cert,
        "PCAPD_AZ_BLOB_ENDPOINT": az.endpoint,
        "PCAPD_AZ_BLOB_ACCOUNT": AZ_ACCOUNT,
        "PCAPD_AZ_BLOB_KEY": AZ_KEY,
        "NODE_EXTRA_CA_CERTS": s.cert,
    }
    return s, env


def _send_cli(args):
    """stack.py send NS IFACE N DPORT [SIZE]: n UDP frames to dport from the
    namespace's interface (the SDK tests use it to make traffic). Prints the
    number of frames sent."""
    ns, iface, n, dport = args[0], args[1], int(args[2]), int(args[3])
    size = int(args[4]) if len(args) > 4 else 200
    link = Link()
    link.ns_a, link.if_a = ns, iface
    r = run(["ip", "-j", "-n", ns, "link", "show", "dev", iface])
    link.mac_a = json.loads(r.stdout)[0]["address"]
    send(link, udp_frames(link, n, dport, size=size))
    print(n)
    return 0


def main(argv):
    if len(argv) < 1 or argv[0] not in ("run", "up", "send"):
        print("usage: stack.py run [--azure] -- CMD [ARGS...] | stack.py up [--azure] | "
              "stack.py send NS IFACE N DPORT [SIZE]", file=sys.stderr)
        return 2
    if argv[0] == "send":
        return _send_cli(argv[1:])
    azure = len(argv) > 1 and argv[1] == "--azure"
    if azure:
        argv = argv[:1] + argv[2:]
    s, env = azure_stack() if azure else sdk_stack()
    try:
        if argv[0] == "up":
            for k, v in sorted(env.items()):
                print("export %s=%s" % (k, v))
            sys.stdout.flush()
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *a: stop.set())
            signal.signal(signal.SIGINT, lambda *a: stop.set())
            while not stop.wait(1):
                pass
            return 0
        cmd = argv[1:]
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            print("stack.py run: no command", file=sys.stderr)
            return 2
        full = dict(os.environ)
        full.update(env)
        p = subprocess.Popen(cmd, env=full)
        try:
            rc = p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
        s.close()
        if s.problems:
            print("stack.py: %s" % "\n\n".join(s.problems), file=sys.stderr)
            return rc or 1
        return rc
    finally:
        s.close()
        if getattr(s, "azurite", None):
            s.azurite.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
