# SPDX-License-Identifier: MIT
"""The Azure Network Watcher dialect of a real controller over HTTPS, with real
agents capturing real traffic into files on their own disks (stack.py).

Every rule of routing, authentication, api-versions and path names, and every
validation class of a PacketCapture, has a negative test that checks the
status, ARM's error shape and code, the target named, and that nothing was
created (the watcher's list, the account's captures in the Cloudflare
dialect, the agents' files). Captures run end to end: filters over both
directions, bytes per packet, the time and byte limits, continuous captures
(a ring and one keeping every file, into files and into blobs, and a blob
store that fails while a ring runs) read back with tshark, the long-running
operations (create, queryStatus, stop, delete) polled as the SDK polls them,
a local file that exists already, a lost agent, and the same capture seen and
stopped through the Cloudflare dialect and pcapctl.

Nothing races a time limit against traffic: captures end by an explicit stop,
by their byte limit under steady traffic, or by a time limit with no traffic
expected.
"""

import http.client
import json
import os
import subprocess
import time

import pytest

from scapy.all import IP, TCP, UDP, Ether

import traffic
from stack import AZ_VERSION, Response, Stack, binary, path_of, random_id, send, subscription, udp_frames
from stores import AZ_ACCOUNT, AZ_KEY
from test_api import count_markers, raw_frames, tshark
from traffic import Steady
from waits import WAIT, pcap_records, until

VM1, VM2, VM3, SS = "vm1", "vm2", "vm3", "ss1"
OTHER_SS = "ss2"
ARM_VERSIONS = ("2023-11-01", "2024-05-01", "2025-09-01", AZ_VERSION, "2025-01-01-preview")


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="module")
def stk(request, azurite):
    """A controller (HTTPS) and three agents: vm1 and vm2 in scale set (colo)
    ss1, vm3 in ss2. Up to four captures per account at once. The
    controller holds the key of Azurite's account (the suite's one Azurite),
    so blob URLs of https://devstoreaccount1.blob.core.windows.net/… land
    there."""
    if os.geteuid() != 0:
        pytest.fail("the Azure dialect tests need root (network namespaces, packet sockets)")
    s = Stack(tls=True, controller_args=["--grace", "3", "--agent-timeout", "10", "--max-active-full", "4",
                                         "--azure-storage", "%s=%s@%s" % (AZ_ACCOUNT, AZ_KEY, azurite.endpoint)])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(VM1, SS)
    s.add_agent(VM2, SS, https=True, token_in_env=True)
    s.add_agent(VM3, OTHER_SS)
    return s


@pytest.fixture
def acct(stk):
    return stk.account()


def agent(stk, name):
    return [a for a in stk.agents if a.name == name][0]


def local(stk, name, rel):
    """Where /var/captures/rel is on agent name's disk."""
    return os.path.join(agent(stk, name).local_root, rel)


# --- helpers -------------------------------------------------------------------

NO_TARGET = object()


def arm_error(r, status, code, target=None):
    """ARM's error: status, {"error":{code,message[,target]}}, JSON, no
    Retry-After (so the SDK never retries it silently). target NO_TARGET:
    none may be given."""
    assert r.status == status, "expected %d %s, got %r" % (status, code, r)
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    assert r.header("retry-after") is None, r.headers
    e = r.json["error"]
    assert e["code"] == code, "expected %s: %r" % (code, r.json)
    assert isinstance(e["message"], str) and e["message"], r.json
    if target is NO_TARGET:
        assert "target" not in e, r.json
    elif target is not None:
        assert e.get("target") == target, "expected target %r: %r" % (target, r.json)
    return e["message"]


def props(acct, vm=VM1, path="/var/captures/pc.cap", **kw):
    """A valid classic capture on one VM into a local file; keyword arguments
    change properties (None deletes)."""
    p = {"target": acct.vm(vm), "storageLocation": {"filePath": path}}
    for k, v in kw.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return {"properties": p}


def local_files(stk):
    out = set()
    for a in stk.agents:
        for d, _, files in os.walk(a.local_root):
            out.update(os.path.join(d, f) for f in files)
    return out


def snapshot(stk, acct):
    r = acct.arm("GET", token=acct.read)
    assert r.status == 200, r
    cf = acct.call("GET", "", token=acct.read)
    assert cf.status == 200, cf
    return (sorted(c["name"] for c in r.json["value"]), sorted(c["id"] for c in cf.json["result"]),
            local_files(stk))


def assert_unchanged(stk, acct, before):
    after = snapshot(stk, acct)
    assert after[0] == before[0], "resources changed: %r -> %r" % (before[0], after[0])
    assert after[1] == before[1], "captures changed: %r -> %r" % (before[1], after[1])
    assert after[2] == before[2], "files appeared: %r" % (after[2] - before[2])


def poll(stk, acct, url, token=None, done=lambda r: r.status != 202):
    """Polls an operation URL as the SDK does (every 50 ms) until done."""
    last = {}

    def ready():
        r = stk.request("GET", path_of(url), token=token or acct.read, https=True)
        last["r"] = r
        return r if done(r) else None

    return until(ready, lambda: "operation %s: last answer %r" % (url, last.get("r")))


def create(stk, acct, name, body, wait=True):
    """PUT, 201 with Azure-AsyncOperation; with wait, polls the operation to
    its end and returns (the resource, the operation's last body)."""
    r = acct.arm("PUT", name, body=body)
    assert r.status == 201, r
    url = r.header("azure-asyncoperation")
    assert url and url.startswith("https://127.0.0.1:%d/subscriptions/%s/" % (stk.controller.https_port,
                                                                            acct.subscription)), r.headers
    assert "api-version=" + AZ_VERSION in url
    assert r.header("retry-after") == "1"
    assert r.json["properties"]["provisioningState"] in ("Updating", "Succeeded"), r.json
    if not wait:
        return r.json, url
    op = poll(stk, acct, url, done=lambda x: x.status == 200 and x.json["status"] != "InProgress")
    return acct.arm("GET", name, token=acct.read).json, op.json


def query(stk, acct, name):
    """queryStatus: 202 + Location, polled until 200; the status."""
    r = acct.arm("POST", name, "/queryStatus", token=acct.read)
    assert r.status == 202, r
    assert r.header("location"), r.headers
    return poll(stk, acct, r.header("location")).json


def stop(stk, acct, name, token=None):
    r = acct.arm("POST", name, "/stop", token=token)
    assert r.status == 202, r
    last = poll(stk, acct, r.header("location"))
    assert last.status == 200, last


def wait_running(stk, acct, name, n=1):
    """Until n agents' shares run (pcapd's extension): their sockets are open."""
    def running():
        r = acct.arm("GET", name, token=acct.read)
        agents = r.json["properties"]["pcapd"].get("agents", [])
        return sum(1 for a in agents if a["status"] == "running") >= n and r.json
    return until(running, "%s: %d agents running" % (name, n))


def wait_packets(stk, acct, name, n):
    def got():
        r = acct.arm("GET", name, token=acct.read)
        return r.json["properties"]["pcapd"]["packets"] >= n and r.json
    return until(got, "%s: %d packets captured" % (name, n))


def wait_stopped(stk, acct, name):
    return until(lambda: (lambda s: s["packetCaptureStatus"] in ("Stopped", "Error") and s)(query(stk, acct, name)),
                 "%s stopped" % name)


def frames(link, n, proto=UDP, sport=40000, dport=9, reverse=False):
    """n frames from the agent's peer namespace, each with a marker; reverse:
    with source and destination swapped (traffic towards the namespace as
    the capture sees it)."""
    from stack import _frame_range
    src, dst = (link.ip4_b, link.ip4_a) if reverse else (link.ip4_a, link.ip4_b)
    sp, dp = (dport, sport) if reverse else (sport, dport)
    base = _frame_range(n)
    e = Ether(src=link.mac_a, dst=traffic.NOBODY_MAC)
    l4 = traffic.TCP_ if proto is TCP else traffic.UDP_
    return [traffic.Frame(base + i, e / IP(src=src, dst=dst) / proto(sport=sp, dport=dp), 4, src, dst, l4,
                          ports=(sp, dp)) for i in range(n)]


# --- routing, api-versions, names ------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/subscriptions",
    "/subscriptions/{sub}",
    "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1",
    "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/flowLogs",
    "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Storage/networkWatchers/nw1/packetCaptures",
    "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/packetCaptures/pc1/x",
    "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/packetCaptures/",
    "/subscriptions/{sub}/providers/Microsoft.Network/locations/pcapd/things/x",
])
def test_unknown_route_404(stk, acct, path):
    r = stk.request("GET", path.format(sub=acct.subscription) + "?api-version=" + AZ_VERSION, token=acct.write,
                    https=True)
    arm_error(r, 404, "InvalidResourceType", NO_TARGET)


@pytest.mark.parametrize("method,name,suffix,allow", [
    ("POST", "", "", "GET"),
    ("PATCH", "pc1", "", "GET, PUT, DELETE"),
    ("GET", "pc1", "/queryStatus", "POST"),
    ("PUT", "pc1", "/stop", "POST"),
])
def test_wrong_method_405(stk, acct, method, name, suffix, allow):
    before = snapshot(stk, acct)
    r = acct.arm(method, name, suffix, body={})
    arm_error(r, 405, "MethodNotAllowed")
    assert r.header("allow") == allow
    assert_unchanged(stk, acct, before)


def test_paths_compare_without_case(stk, acct):
    p = acct.arm_path().replace("/subscriptions/", "/SUBSCRIPTIONS/").replace("resourceGroups", "RESOURCEGROUPS")
    p = p.replace("Microsoft.Network", "microsoft.network").replace("packetCaptures", "PacketCaptures")
    r = stk.request("GET", p, token=acct.read, https=True)
    assert r.status == 200 and r.json == {"value": []}, r


@pytest.mark.parametrize("sub", ["notauuid", "0123456789abcdef0123456789abcdef", "01234567-89ab-cdef-0123-45678",
                                 "g1234567-89ab-cdef-0123-456789abcdef"])
def test_subscription_not_uuid_400(stk, acct, sub):
    r = stk.request("GET", acct.arm_path().replace(acct.subscription, sub), token=acct.write, https=True)
    arm_error(r, 400, "InvalidSubscriptionId", NO_TARGET)


@pytest.mark.parametrize("version,code", [(None, "MissingApiVersionParameter"), ("", "InvalidApiVersionParameter"),
                                          ("2026-13-01", "InvalidApiVersionParameter"),
                                          ("latest", "InvalidApiVersionParameter"),
                                          ("2023-09-01", "NoRegisteredProviderFound"),
                                          ("2016-09-01", "NoRegisteredProviderFound")])
def test_api_version_refused(stk, acct, version, code):
    before = snapshot(stk, acct)
    for method, name, suffix in (("GET", "", ""), ("PUT", "pc1", ""), ("POST", "pc1", "/stop")):
        r = acct.arm(method, name, suffix, body=props(acct) if method == "PUT" else None, version=version)
        arm_error(r, 400, code, NO_TARGET)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("version", ARM_VERSIONS)
def test_api_versions_taken(stk, acct, version):
    r = acct.arm("GET", version=version, token=acct.read)
    assert r.status == 200 and r.json == {"value": []}, r


@pytest.mark.parametrize("where,value,target", [
    ("group", "rg.", "resourceGroupName"),
    ("group", "r" * 91, "resourceGroupName"),
    ("group", "rg!", "resourceGroupName"),
    ("watcher", "-nw", "networkWatcherName"),
    ("watcher", "nw(1)", "networkWatcherName"),
    ("name", "pc 1", "packetCaptureName"),
    ("name", "p" * 81, "packetCaptureName"),
    ("name", "pc1.", "packetCaptureName"),
])
def test_names_in_path_400(stk, acct, where, value, target):
    before = snapshot(stk, acct)
    kw = {where: value} if where != "name" else {}
    name = value if where == "name" else "pc1"
    r = acct.arm("PUT", name, body=props(acct), **kw)
    arm_error(r, 400, "InvalidResourceName", target)
    assert_unchanged(stk, acct, before)


# --- credentials ---------------------------------------------------------------------------

ENDPOINTS = [("GET", "", ""), ("PUT", "pc1", ""), ("GET", "pc1", ""), ("DELETE", "pc1", ""),
             ("POST", "pc1", "/queryStatus"), ("POST", "pc1", "/stop")]


@pytest.mark.parametrize("method,name,suffix", ENDPOINTS)
def test_no_credentials_401(stk, acct, method, name, suffix):
    before = snapshot(stk, acct)
    r = stk.request(method, acct.arm_path(name, suffix), body=props(acct) if method == "PUT" else None, https=True)
    arm_error(r, 401, "AuthenticationFailed", NO_TARGET)
    assert r.header("www-authenticate", ).startswith("Bearer"), r.headers
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("header", ["Bearer pcapd_nottherealtokenatall", "Bearer ", "Basic dXNlcjpwdw=="])
def test_bad_token_401(stk, acct, header):
    r = stk.request("GET", acct.arm_path(), headers={"Authorization": header}, https=True)
    arm_error(r, 401, "InvalidAuthenticationToken", NO_TARGET)


@pytest.mark.parametrize("method,name,suffix", ENDPOINTS)
def test_other_accounts_subscription_403(stk, acct, method, name, suffix):
    other = stk.account()
    before = snapshot(stk, acct)
    r = acct.arm(method, name, suffix, body=props(acct) if method == "PUT" else None, token=other.write)
    arm_error(r, 403, "AuthorizationFailed", NO_TARGET)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("method,name,suffix", [e for e in ENDPOINTS if e[0] in ("PUT", "DELETE") or
                                                e[2] == "/stop"])
def test_read_scope_cannot_write_403(stk, acct, method, name, suffix):
    before = snapshot(stk, acct)
    r = acct.arm(method, name, suffix, body=props(acct) if method == "PUT" else None, token=acct.read)
    msg = arm_error(r, 403, "AuthorizationFailed", NO_TARGET)
    assert "scope read" in msg, msg
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("method,name,suffix", ENDPOINTS)
def test_agent_token_403(stk, acct, method, name, suffix):
    r = acct.arm(method, name, suffix, body=props(acct) if method == "PUT" else None, token=stk.agent_token)
    arm_error(r, 403, "AuthorizationFailed", NO_TARGET)


def test_credentials_before_body_and_names(stk, acct):
    """A stranger learns nothing about names or bodies: 401 first."""
    r = stk.request("PUT", acct.arm_path("bad%20name!"), raw="{", https=True)
    arm_error(r, 401, "AuthenticationFailed")


def test_token_create_takes_the_subscription_form(stk):
    """pcapd token create --account accepts the UUID: the same account."""
    aid = random_id()
    tok = stk.token(subscription(aid).upper(), "read")
    r = stk.request("GET", "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/"
                    "packetCaptures?api-version=%s" % (subscription(aid), AZ_VERSION), token=tok, https=True)
    assert r.status == 200, r
    r = stk.request("GET", "/client/v4/accounts/%s/pcaps" % aid, token=tok)
    assert r.status == 200, r


# --- validation ---------------------------------------------------------------------------

BAD = [
    # (id, change the properties, target)
    ("no-properties", lambda a, p: {}, "properties"),
    ("unknown-top", lambda a, p: dict(p, location="westus"), "body.location"),
    ("unknown-property", lambda a, p: dict(p, properties=dict(p["properties"], timeLimit=5)), "properties.timeLimit"),
    ("no-target", lambda a, p: props(a, target=None), "properties.target"),
    ("target-not-id", lambda a, p: props(a, target="vm1"), "properties.target"),
    ("target-disk", lambda a, p: props(a, target=a.vm("d1", kind="disks")), "properties.target"),
    ("target-other-sub", lambda a, p: props(a, target=a.vm("vm1").replace(a.subscription, subscription(random_id()))),
     "properties.target"),
    ("target-type", lambda a, p: props(a, targetType="AzureVMSS"), "properties.targetType"),
    ("target-type-enum", lambda a, p: props(a, targetType="AzureArc"), "properties.targetType"),
    ("scope-on-vm", lambda a, p: props(a, scope={"include": ["vm1"]}), "properties.scope"),
    ("scope-type", lambda a, p: props(a, target=a.vm(SS, "virtualMachineScaleSets"), scope={"include": "vm1"}),
     "properties.scope.include"),
    ("snaplen-negative", lambda a, p: props(a, bytesToCapturePerPacket=-1), "properties.bytesToCapturePerPacket"),
    ("snaplen-2^32", lambda a, p: props(a, bytesToCapturePerPacket=4294967296), "properties.bytesToCapturePerPacket"),
    ("bytes-2^32", lambda a, p: props(a, totalBytesPerSession=4294967296), "properties.totalBytesPerSession"),
    ("bytes-string", lambda a, p: props(a, totalBytesPerSession="1000"), "properties.totalBytesPerSession"),
    ("time-18001", lambda a, p: props(a, timeLimitInSeconds=18001), "properties.timeLimitInSeconds"),
    ("time-real", lambda a, p: props(a, timeLimitInSeconds=1.5), "properties.timeLimitInSeconds"),
    ("no-storage", lambda a, p: props(a, storageLocation=None), "properties.storageLocation"),
    ("empty-storage", lambda a, p: props(a, storageLocation={}), "properties.storageLocation"),
    ("windows-path", lambda a, p: props(a, path="C:\\Captures\\a.cap"), "properties.storageLocation.filePath"),
    ("outside-root", lambda a, p: props(a, path="/tmp/a.cap"), "properties.storageLocation.filePath"),
    ("dotdot", lambda a, p: props(a, path="/var/captures/../etc/a.cap"), "properties.storageLocation.filePath"),
    ("not-cap", lambda a, p: props(a, path="/var/captures/a.pcap"), "properties.storageLocation.filePath"),
    ("local-classic", lambda a, p: props(a, storageLocation={"localPath": "/var/captures/a.cap"}),
     "properties.storageLocation.localPath"),
    ("file-continuous", lambda a, p: props(a, continuousCapture=True), "properties.storageLocation.filePath"),
    ("blob-url", lambda a, p: props(a, storageLocation={"storagePath": "https://x/y"}),
     "properties.storageLocation.storagePath"),
    ("blob-name", lambda a, p: props(a, storageLocation={
        "storagePath": "https://%s.blob.core.windows.net/caps/a%%20b.cap" % AZ_ACCOUNT}),
     "properties.storageLocation.storagePath"),
    ("storage-id-alone", lambda a, p: props(a, storageLocation={
        "storageId": "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/%s" % (
            a.subscription, AZ_ACCOUNT)}), "properties.storageLocation.storageId"),
    # A continuous capture's blobs add _<agent> and _<N> to the name: 115 bytes at most (classic: 136).
    ("continuous-blob-name", lambda a, p: props(a, storageLocation={
        "storagePath": "https://%s.blob.core.windows.net/caps/d/%s.cap" % (AZ_ACCOUNT, "r" * 112),
        "localPath": "/var/captures/r.cap"}, continuousCapture=True), "properties.storageLocation.storagePath"),
    ("continuous-blob-name-keep", lambda a, p: props(a, storageLocation={
        "storagePath": "https://%s.blob.core.windows.net/caps/%s" % (AZ_ACCOUNT, "k" * 116)},
        continuousCapture=False), "properties.storageLocation.storagePath"),
    ("continuous-blob-dot", lambda a, p: props(a, storageLocation={
        "storagePath": "https://%s.blob.core.windows.net/caps/.r.cap" % AZ_ACCOUNT}, continuousCapture=True),
     "properties.storageLocation.storagePath"),
    ("continuous-file-path", lambda a, p: props(a, storageLocation={
        "storagePath": "https://%s.blob.core.windows.net/caps/r.cap" % AZ_ACCOUNT, "filePath": "/var/captures/r.cap"},
        continuousCapture=True), "properties.storageLocation.filePath"),
    ("storage-id", lambda a, p: props(a, storageLocation={"storageId": "/subscriptions/x"}),
     "properties.storageLocation.storageId"),
    ("filters-object", lambda a, p: props(a, filters={}), "properties.filters"),
    ("filter-protocol", lambda a, p: props(a, filters=[{"protocol": "ICMP"}]), "properties.filters[0].protocol"),
    ("filter-port", lambda a, p: props(a, filters=[{}, {"remotePort": "0-70000"}]), "properties.filters[1].remotePort"),
    ("filter-address", lambda a, p: props(a, filters=[{"localIPAddress": "10.0.0.300"}]),
     "properties.filters[0].localIPAddress"),
    ("filter-port-number", lambda a, p: props(a, filters=[{"localPort": 80}]), "properties.filters[0].localPort"),
    ("filters-33", lambda a, p: props(a, filters=[{}] * 33), "properties.filters"),
    ("continuous-type", lambda a, p: props(a, continuousCapture="true"), "properties.continuousCapture"),
    ("settings-classic", lambda a, p: props(a, captureSettings={"fileCount": 2}), "properties.captureSettings"),
    ("ring-0-files", lambda a, p: props(a, storageLocation={"localPath": "/var/captures/r.cap"}, continuousCapture=True,
                                        captureSettings={"fileCount": 0}), "properties.captureSettings.fileCount"),
    ("files-10001", lambda a, p: props(a, storageLocation={"localPath": "/var/captures/r.cap"},
                                       continuousCapture=False, captureSettings={"fileCount": 10001}),
     "properties.captureSettings.fileCount"),
    ("file-size-2^32", lambda a, p: props(a, storageLocation={"localPath": "/var/captures/r.cap"},
                                          continuousCapture=True, captureSettings={"fileSizeInBytes": 2 ** 32}),
     "properties.captureSettings.fileSizeInBytes"),
    ("session-604801", lambda a, p: props(a, storageLocation={"localPath": "/var/captures/r.cap"},
                                          continuousCapture=True,
                                          captureSettings={"sessionTimeLimitInSeconds": 604801}),
     "properties.captureSettings.sessionTimeLimitInSeconds"),
]


@pytest.mark.parametrize("change,target", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_create_validation_400(stk, acct, change, target):
    before = snapshot(stk, acct)
    r = acct.arm("PUT", "pc1", body=change(acct, props(acct)))
    arm_error(r, 400, "InvalidRequestFormat", target)
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("raw", ["", "{", "[1]", "not json", '{"properties":{},"properties":{}}'])
def test_create_body_not_json_400(stk, acct, raw):
    before = snapshot(stk, acct)
    r = stk.request("PUT", acct.arm_path("pc1"), token=acct.write, raw=raw, https=True)
    arm_error(r, 400, "InvalidRequestContent", "body")
    assert_unchanged(stk, acct, before)


def test_create_body_over_64k_413(stk, acct):
    """A body announced over 64 KiB is refused on its headers: the answer
    comes before the body is sent (sending it would race the server's close
    of the connection)."""
    before = snapshot(stk, acct)
    body = props(acct)
    body["properties"]["pad"] = "x" * (70 * 1024)
    data = json.dumps(body).encode()
    conn = http.client.HTTPSConnection("127.0.0.1", stk.controller.https_port, context=stk._ssl, timeout=WAIT)
    try:
        conn.putrequest("PUT", acct.arm_path("pc1"))
        for k, v in (("Authorization", "Bearer " + acct.write), ("Content-Type", "application/json"),
                     ("Accept", "application/json"), ("Content-Length", str(len(data)))):
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        r = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
    arm_error(r, 413, "RequestContentTooLarge")
    assert_unchanged(stk, acct, before)


def test_blob_of_an_unknown_storage_account_400(stk, acct):
    """A blob of a storage account whose key the controller does not hold
    (--azure-storage) is refused naming the account; nothing is created."""
    before = snapshot(stk, acct)
    r = acct.arm("PUT", "pc1", body=props(acct, storageLocation={
        "storagePath": "https://acct9.blob.core.windows.net/network-watcher-logs/pc1.cap"}))
    msg = arm_error(r, 400, "InvalidRequestFormat", "properties.storageLocation.storagePath")
    assert "acct9" in msg and "--azure-storage" in msg, msg
    assert_unchanged(stk, acct, before)


@pytest.mark.parametrize("kind,name", [("virtualMachines", "nosuchvm"), ("virtualMachines", SS),
                                       ("virtualMachineScaleSets", "nosuchss"),
                                       ("virtualMachineScaleSets", VM1)])
def test_target_without_agent_400(stk, acct, kind, name):
    """A VM (or scale set) with no online agent of that name (colo) is refused
    as Azure refuses a VM without the extension, naming it."""
    before = snapshot(stk, acct)
    r = acct.arm("PUT", "pc1", body=props(acct, target=acct.vm(name, kind)))
    msg = arm_error(r, 400, "AzureNetworkWatcherExtensionNotInstalled", "properties.target")
    assert "'%s'" % name in msg and "AzureNetworkWatcherExtension" in msg, msg
    assert_unchanged(stk, acct, before)


def test_account_agent_targets_its_account_only(stk):
    """An agent enrolled with an account's token is a VM (its colo a scale
    set) of that account only: to another subscription it is a VM without
    the extension, and is not among the agents its message names; the
    operator's agents (vm1..vm3) serve every account."""
    a, b = stk.account(), stk.account()
    key = stk.enroll("vmb1", "ssb", token=stk.token(b.id, "enroll"))
    r = stk.request("POST", "/agent/v1/report", token=key,
                    body={"name": "vmb1", "colo": "ssb", "hello": True, "version": "x", "interfaces": ["lo"],
                          "jobs": []})
    assert r.status == 200, r
    before = snapshot(stk, a)
    for kind, name in (("virtualMachines", "vmb1"), ("virtualMachineScaleSets", "ssb")):
        r = a.arm("PUT", "pc1", body=props(a, target=a.vm(name, kind)))
        msg = arm_error(r, 400, "AzureNetworkWatcherExtensionNotInstalled", "properties.target")
        assert "'%s'" % name in msg and "vm1 (colo ss1)" in msg, msg
        assert "vmb1" not in msg.split("online agents:")[1], msg
    assert_unchanged(stk, a, before)
    r = b.arm("PUT", "pcb", body=props(b, target=b.vm("ssb", "virtualMachineScaleSets")))
    assert r.status == 201, r
    pid = b.arm("GET", "pcb", token=b.read).json["properties"]["pcapd"]["id"]
    cf = b.call("GET", "/" + pid, token=b.read).json["result"]
    assert [p["name"] for p in cf["agents"]] == ["vmb1"], cf


@pytest.mark.parametrize("scope,missing", [({"include": ["vm1", "vm9"]}, "vm9"), ({"include": [VM3]}, VM3),
                                           ({"exclude": [VM1, VM2]}, None)])
def test_scale_set_scope_refused_400(stk, acct, scope, missing):
    before = snapshot(stk, acct)
    r = acct.arm("PUT", "pc1", body=props(acct, target=acct.vm(SS, "virtualMachineScaleSets"), scope=scope))
    msg = arm_error(r, 400, "AzureNetworkWatcherExtensionNotInstalled", "properties.target")
    if missing:
        assert "'%s'" % missing in msg, msg
    assert_unchanged(stk, acct, before)


# --- captures end to end ----------------------------------------------------------------------

def test_classic_capture_into_a_local_file(stk, acct):
    """Filters match both directions and are OR-ed; the file is pcap, named
    as asked, below the agent's --local-root; queryStatus, stop and the
    objects as Azure shows them."""
    link = agent(stk, VM1).link
    want_out = frames(link, 4, TCP, dport=443)                  # local 192.0.2.1 → remote :443
    want_in = frames(link, 3, TCP, dport=443, reverse=True)     # remote :443 → local: the same filter
    want_udp = frames(link, 2, UDP, dport=5353)                 # the second filter
    noise = frames(link, 3, TCP, dport=80) + frames(link, 2, UDP, dport=5354) + udp_frames(link, 2, 443)
    body = props(acct, path="/var/captures/e2e/pc1.cap", filters=[
        {"protocol": "TCP", "localIPAddress": link.ip4_a, "remotePort": "443"},
        {"protocol": "UDP", "remotePort": "5300-5353"}])
    res, op = create(stk, acct, "pc1", body)
    assert op["status"] == "Succeeded", op
    assert res["properties"]["provisioningState"] == "Succeeded", res
    assert res["name"] == "pc1"
    assert res["id"] == "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1/" \
                        "packetCaptures/pc1" % acct.subscription
    assert res["etag"].startswith('W/"') and len(res["etag"]) == 40, res["etag"]
    p = res["properties"]
    assert p["target"] == acct.vm(VM1) and p["targetType"] == "AzureVM"
    assert p["timeLimitInSeconds"] == 18000 and p["totalBytesPerSession"] == 1073741824
    assert p["bytesToCapturePerPacket"] == 0
    assert p["storageLocation"] == {"filePath": "/var/captures/e2e/pc1.cap"}
    assert p["filters"][0] == {"protocol": "TCP", "localIPAddress": link.ip4_a, "remotePort": "443"}
    wait_running(stk, acct, "pc1")
    send(link, want_out + noise + want_in + want_udp)
    wait_packets(stk, acct, "pc1", 9)
    st = query(stk, acct, "pc1")
    assert st["packetCaptureStatus"] == "Running" and st["stopReason"] == "", st
    assert st["captureStartTime"].endswith("Z") and st["packetCaptureError"] == [], st
    assert st["pcapd"]["packets"] >= 9, st
    stop(stk, acct, "pc1")
    st = query(stk, acct, "pc1")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "StoppedByUser", st
    path = local(stk, VM1, "e2e/pc1.cap")
    assert os.path.exists(path), local_files(stk)
    with open(path, "rb") as f:
        assert f.read(4) in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
    assert len(tshark(path)) == 9
    assert count_markers(path, want_out + want_in + want_udp) == 9
    assert count_markers(path, noise) == 0
    # nothing else written, on this agent or the others
    assert local_files(stk) >= {path}
    assert not [f for f in local_files(stk) if f.endswith(".part")]
    res = acct.arm("GET", "pc1", token=acct.read).json
    assert res["properties"]["pcapd"]["agents"][0]["packets"] == 9, res


def test_bytes_per_packet(stk, acct):
    link = agent(stk, VM2).link
    create(stk, acct, "snap", props(acct, vm=VM2, path="/var/captures/snap.cap", bytesToCapturePerPacket=60,
                                    filters=[{"protocol": "UDP", "remotePort": "6060"}]))
    wait_running(stk, acct, "snap")
    sent = udp_frames(link, 5, 6060, size=300)
    send(link, sent)
    wait_packets(stk, acct, "snap", 5)
    stop(stk, acct, "snap")
    pk = tshark(local(stk, VM2, "snap.cap"))
    assert len(pk) == 5 and all(c == 60 and n == len(sent[0].wire) for _, c, n in pk), pk


def test_time_limit_ends_the_session(stk, acct):
    """No traffic: the session ends by its time limit alone (TimeExceeded)
    and leaves an empty, valid capture file."""
    create(stk, acct, "short", props(acct, vm=VM3, path="/var/captures/short.cap", timeLimitInSeconds=1,
                                     filters=[{"protocol": "UDP", "remotePort": "1"}]))
    st = wait_stopped(stk, acct, "short")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "TimeExceeded", st
    path = local(stk, VM3, "short.cap")
    assert os.path.exists(path) and pcap_records(path) == 0 and os.path.getsize(path) == 24
    res = acct.arm("GET", "short", token=acct.read).json
    assert res["properties"]["provisioningState"] == "Succeeded", res


def test_total_bytes_ends_the_session(stk, acct):
    link = agent(stk, VM1).link
    create(stk, acct, "bytes", props(acct, path="/var/captures/bytes.cap", totalBytesPerSession=2000,
                                     filters=[{"protocol": "UDP", "remotePort": "7070"}]))
    wait_running(stk, acct, "bytes")
    with Steady(link, dport=7070, gap_us=2000):
        st = wait_stopped(stk, acct, "bytes")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "TotalBytesExceeded", st
    pk = tshark(local(stk, VM1, "bytes.cap"))
    assert pk and sum(c for _, c, _ in pk) <= 2000, pk


def total_files_expected(frames_sent, per_file):
    return (frames_sent + per_file - 1) // per_file


def ring_body(acct, path, ring, count, size, vm=VM1, **kw):
    return props(acct, vm=vm, storageLocation={"localPath": path}, continuousCapture=ring,
                 captureSettings={"fileCount": count, "fileSizeInBytes": size, "sessionTimeLimitInSeconds": 3600},
                 **kw)


@pytest.mark.parametrize("ring", [True, False])
def test_continuous_capture(stk, acct, ring):
    """Rotating files ring1_1.cap, ring1_2.cap, … of at most fileSizeInBytes,
    each published whole while the session runs; a ring keeps the newest
    fileCount, false keeps all. 30 frames, four to a file: 8 files."""
    link = agent(stk, VM1).link
    name = "ring" if ring else "keep"
    rel = "cont-%s/%s1.cap" % (name, name)
    want = frames(link, 30, UDP, dport=8080)
    rec = 16 + len(want[0].wire)
    size = 24 + 4 * rec + rec // 2  # four records a file
    res, op = create(stk, acct, name, ring_body(acct, "/var/captures/" + rel, ring, 3, size,
                                                 filters=[{"protocol": "UDP", "remotePort": "8080"}]))
    assert op["status"] == "Succeeded"
    p = res["properties"]
    assert p["continuousCapture"] is ring and p["storageLocation"] == {"localPath": "/var/captures/" + rel}
    assert p["captureSettings"] == {"fileCount": 3, "fileSizeInBytes": size, "sessionTimeLimitInSeconds": 3600}
    wait_running(stk, acct, name)
    d = os.path.dirname(local(stk, VM1, rel))
    send(link, want[:20])
    # Files are published while the session runs: the first ones are whole already.
    until(lambda: os.path.exists(os.path.join(d, "%s1_3.cap" % name)), "%s1_3.cap published" % name)
    assert pcap_records(os.path.join(d, "%s1_3.cap" % name)) > 0
    send(link, want[20:])
    wait_packets(stk, acct, name, 30)
    stop(stk, acct, name)
    files = sorted(os.listdir(d), key=lambda f: int(f.split("_")[1].split(".")[0]))
    assert not [f for f in files if f.endswith(".part")], files
    sizes = [os.path.getsize(os.path.join(d, f)) for f in files]
    assert all(s <= size for s in sizes), sizes
    assert total_files_expected(30, 4) == int(files[-1].split("_")[1].split(".")[0]), files
    counts = [pcap_records(os.path.join(d, f)) for f in files]
    total_files = int(files[-1].split("_")[1].split(".")[0])
    if ring:
        assert len(files) == 3, files
        assert files == ["%s1_%d.cap" % (name, n) for n in range(total_files - 2, total_files + 1)], files
    else:
        assert files == ["%s1_%d.cap" % (name, n) for n in range(1, total_files + 1)], files
        assert sum(counts) == 30, counts
    # The newest files hold the last frames, in order.
    last = os.path.join(d, files[-1])
    assert count_markers(last, want[30 - counts[-1]:]) == counts[-1]
    st = query(stk, acct, name)
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "StoppedByUser", st


def test_existing_file_fails_the_capture(stk, acct):
    """A capture never replaces a file: the create fails (LocalFileFailed)
    and the file stays as it was."""
    path = local(stk, VM2, "taken.cap")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"precious")
    res, op = create(stk, acct, "taken", props(acct, vm=VM2, path="/var/captures/taken.cap"))
    assert op["status"] == "Failed", (op, res)
    assert op["error"]["code"] == "LocalFileFailed" and "exists already" in op["error"]["message"], op
    assert res["properties"]["provisioningState"] == "Failed", res
    st = query(stk, acct, "taken")
    assert st["packetCaptureStatus"] == "Error" and st["packetCaptureError"] == ["LocalFileFailed"], st
    with open(path, "rb") as f:
        assert f.read() == b"precious"


def test_scale_set_include_exclude(stk, acct):
    """A scale set is the agents of that colo, narrowed by scope."""
    target = acct.vm(SS, "virtualMachineScaleSets")
    for name, scope, want in (("all", None, [VM1, VM2]), ("inc", {"include": [VM2]}, [VM2]),
                              ("exc", {"exclude": [VM2]}, [VM1])):
        res, op = create(stk, acct, name, props(acct, target=target, targetType="AzureVMSS",
                                                path="/var/captures/ss-%s.cap" % name, scope=scope))
        assert op["status"] == "Succeeded", op
        got = sorted(a["name"] for a in res["properties"]["pcapd"]["agents"])
        assert got == want, (name, res)
        wait_running(stk, acct, name, len(want))
        stop(stk, acct, name)
        for vm in (VM1, VM2):
            assert os.path.exists(local(stk, vm, "ss-%s.cap" % name)) == (vm in want)


def test_put_is_idempotent_by_name(stk, acct):
    """The same PUT again (a retry) gets the same capture; another one under
    that name is a conflict; names compare without regard to case."""
    body = props(acct, vm=VM3, path="/var/captures/idem.cap")
    res, url = create(stk, acct, "idem", body, wait=False)
    r = acct.arm("PUT", "IDEM", body=body)
    assert r.status == 200, r
    assert r.json["properties"]["pcapd"]["id"] == res["properties"]["pcapd"]["id"]
    assert r.header("azure-asyncoperation") == url
    r = acct.arm("PUT", "idem", body=props(acct, vm=VM3, path="/var/captures/idem2.cap"))
    arm_error(r, 409, "PacketCaptureAlreadyExists", "packetCaptureName")
    r = acct.arm("GET", token=acct.read)
    assert [c["name"] for c in r.json["value"]] == ["idem"], r.json
    stop(stk, acct, "IdEm")


def test_get_list_delete(stk, acct):
    """list is per watcher (and group); GET of a missing one is 404; DELETE
    stops a running capture (202, then 204), leaves its file and frees the
    name; deleting what is not there is 204 at once."""
    create(stk, acct, "del1", props(acct, vm=VM3, path="/var/captures/del1.cap"))
    create(stk, acct, "oth1", props(acct, vm=VM3, path="/var/captures/oth1.cap"))
    r = acct.arm("PUT", "pc1", body=props(acct, vm=VM3, path="/var/captures/nw2.cap"), watcher="nw2")
    assert r.status == 201, r
    r = acct.arm("GET", token=acct.read)
    assert sorted(c["name"] for c in r.json["value"]) == ["del1", "oth1"], r.json
    assert "nextLink" not in r.json
    r = acct.arm("GET", token=acct.read, watcher="NW2")
    assert [c["name"] for c in r.json["value"]] == ["pc1"], r.json
    r = acct.arm("GET", token=acct.read, group="rg2")
    assert r.json == {"value": []}
    arm_error(acct.arm("GET", "nosuch", token=acct.read), 404, "PacketCaptureNotFound", "packetCaptureName")
    for suffix in ("/queryStatus", "/stop"):
        arm_error(acct.arm("POST", "nosuch", suffix), 404, "PacketCaptureNotFound", "packetCaptureName")

    pid = acct.arm("GET", "del1", token=acct.read).json["properties"]["pcapd"]["id"]
    r = acct.arm("DELETE", "del1")
    assert r.status == 202 and r.header("location"), r
    last = poll(stk, acct, r.header("location"))
    assert last.status == 204, last
    arm_error(acct.arm("GET", "del1", token=acct.read), 404, "PacketCaptureNotFound")
    assert os.path.exists(local(stk, VM3, "del1.cap"))
    cf = acct.call("GET", "/" + pid, token=acct.read).json["result"]
    assert cf["stop_reason"] == "user" and "azure" not in cf, cf
    # The one zero-packet rule (README): stopped with no packet is failed in
    # the Cloudflare dialect (Azure shows a stopped session either way).
    if cf["packets_captured"]:
        assert cf["status"] == "success", cf
    else:
        assert cf["status"] == "failed", cf
        assert cf["error_message"].startswith("No packets matched the filter before the capture was stopped."), cf
    assert acct.arm("DELETE", "del1").status == 204
    # the name is free again (a new file name: the old file stays)
    create(stk, acct, "del1", props(acct, vm=VM3, path="/var/captures/del1b.cap"))
    for name in ("del1", "oth1"):
        assert acct.arm("DELETE", name).status in (202, 204)
    r = acct.arm("DELETE", "pc1", watcher="nw2")
    assert r.status == 202
    poll(stk, acct, r.header("location"))


def test_stop_is_idempotent(stk, acct):
    create(stk, acct, "twice", props(acct, vm=VM3, path="/var/captures/twice.cap"))
    stop(stk, acct, "twice")
    stop(stk, acct, "twice")
    st = query(stk, acct, "twice")
    assert st["packetCaptureStatus"] == "Stopped", st


def test_operation_urls(stk, acct):
    """Operation URLs are absolute (the request's Host), answer only to their
    account, carry the api-version, and an unknown one is 404."""
    _, url = create(stk, acct, "ops", props(acct, vm=VM3, path="/var/captures/ops.cap"), wait=False)
    other = stk.account()
    arm_error(stk.request("GET", path_of(url), token=other.read, https=True), 403, "AuthorizationFailed")
    r = stk.request("GET", path_of(url), token=acct.read, https=True, headers={"Host": "localhost:1234"})
    assert r.status == 200, r
    r = acct.arm("POST", "ops", "/stop", headers={"Host": "localhost:%d" % stk.controller.https_port})
    assert r.header("location").startswith("https://localhost:%d/subscriptions/" % stk.controller.https_port)
    poll(stk, acct, r.header("location"))
    bad = path_of(url).replace("/operations/create-", "/operations/stop-")
    arm_error(stk.request("GET", bad, token=acct.read, https=True), 404, "NotFound")
    bad = path_of(url).replace("/operations/create-", "/operations/create-0")
    arm_error(stk.request("GET", bad, token=acct.read, https=True), 404, "NotFound")
    r = stk.request("GET", path_of(url).split("?")[0], token=acct.read, https=True)
    arm_error(r, 400, "MissingApiVersionParameter")


def test_limit_429_without_retry_after(stk, acct):
    """More captures than --max-active-full: 429 TooManyRequests, with no
    Retry-After, so the SDK reports it at once instead of retrying."""
    for i in range(4):
        create(stk, acct, "lim%d" % i, props(acct, vm=VM3, path="/var/captures/lim%d.cap" % i))
        wait_running(stk, acct, "lim%d" % i)
    before = snapshot(stk, acct)
    r = acct.arm("PUT", "lim4", body=props(acct, vm=VM3, path="/var/captures/lim4.cap"))
    arm_error(r, 429, "TooManyRequests")
    assert_unchanged(stk, acct, before)
    for i in range(4):
        stop(stk, acct, "lim%d" % i)


def test_lost_agent(stk, acct):
    """An agent that stops answering: the session ends in Error, AgentStopped."""
    a = stk.add_agent("vm-lost", "lostset")
    create(stk, acct, "lost", props(acct, vm="vm-lost", path="/var/captures/lost.cap"))
    wait_running(stk, acct, "lost")
    a.kill()
    st = until(lambda: (lambda s: s["packetCaptureStatus"] == "Error" and s)(query(stk, acct, "lost")),
               "the lost agent's capture in Error", timeout=WAIT + 20)
    assert st["packetCaptureError"] == ["AgentStopped"], st


# --- blob outputs (storagePath) in Azurite ------------------------------------------------

class Container:
    """A fresh container in Azurite (or only its name: create=False), read
    back with @azure/storage-blob as a user would."""

    READ = """const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const c = new BlobServiceClient(process.env.ENDPOINT, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
const cc = c.getContainerClient(process.argv[1]);
(async () => {
  if (process.argv[2] === 'create') { await cc.create(); return; }
  const out = {};
  for await (const b of cc.listBlobsFlat())
    out[b.name] = (await cc.getBlobClient(b.name).downloadToBuffer()).toString('base64');
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e.message); process.exit(1); });"""

    def __init__(self, azurite, create=True):
        self.az = azurite
        self.name = "nw-" + random_id()[:12]
        if create:
            azurite.node(self.READ, self.name, "create")

    def url(self, blob):
        return "https://%s.blob.core.windows.net/%s/%s" % (AZ_ACCOUNT, self.name, blob)

    def blobs(self):
        """{name: bytes} of every blob."""
        import base64
        out = json.loads(self.az.node(self.READ, self.name, "list"))
        return {k: base64.b64decode(v) for k, v in out.items()}


def save_blob(stk, name, data):
    p = os.path.join(stk.dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def test_blob_output_per_agent_of_a_scale_set(stk, acct, azurite):
    """A scale set's capture into a blob: each agent's share is a blob named
    after the given one with _<agent> before its extension, in the given
    directory; pcap, holding exactly that agent's matching frames; the
    resource echoes storageLocation as given; queryStatus says Stopped; the
    Cloudflare dialect's download of the same capture merges the blobs."""
    c = Container(azurite)
    l1, l2 = agent(stk, VM1).link, agent(stk, VM2).link
    want1, want2 = frames(l1, 4, UDP, dport=7301), frames(l2, 6, UDP, dport=7301)
    noise = frames(l1, 2, UDP, dport=7302)
    loc = {"storagePath": c.url("logs/day1/pc.cap")}
    res, op = create(stk, acct, "blob1", props(acct, target=acct.vm(SS, "virtualMachineScaleSets"),
                                               targetType="AzureVMSS", storageLocation=loc,
                                               filters=[{"protocol": "UDP", "remotePort": "7301"}]))
    assert op["status"] == "Succeeded", op
    assert res["properties"]["storageLocation"] == loc, res
    listed = acct.arm("GET", token=acct.read).json["value"]
    assert [x["properties"]["storageLocation"] for x in listed if x["name"] == "blob1"] == [loc], listed
    wait_running(stk, acct, "blob1", n=2)
    send(l1, want1 + noise)
    send(l2, want2)
    wait_packets(stk, acct, "blob1", 10)
    stop(stk, acct, "blob1")
    st = wait_stopped(stk, acct, "blob1")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "StoppedByUser", st
    assert st["packetCaptureError"] == [], st
    blobs = c.blobs()
    assert sorted(blobs) == ["logs/day1/pc_%s.cap" % VM1, "logs/day1/pc_%s.cap" % VM2], sorted(blobs)
    for name, want in ((VM1, want1), (VM2, want2)):
        data = blobs["logs/day1/pc_%s.cap" % name]
        assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), data[:4]
        p = save_blob(stk, "blob1-%s.cap" % name, data)
        assert len(tshark(p)) == len(want) and count_markers(p, want) == len(want)
        assert count_markers(p, noise) == 0
    # The same capture in the Cloudflare dialect: its download merges both blobs.
    r = acct.call("GET", "/%s/download" % res["properties"]["pcapd"]["id"], token=acct.read)
    assert r.status == 200, r
    p = save_blob(stk, "blob1-merged.pcap", r.body)
    assert len(tshark(p)) == 10 and count_markers(p, want1 + want2) == 10


def test_blob_and_local_file_from_one_capture(stk, acct, azurite):
    """filePath and storagePath together (with the account's storageId, as
    Azure's portal sends it): one capture, written both to the agent's file
    and to the blob (a VM's blob is named exactly as given), the same packets
    in each."""
    c = Container(azurite)
    link = agent(stk, VM3).link
    want = frames(link, 5, TCP, dport=8443)
    loc = {"storageId": "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/%s" % (
        acct.subscription, AZ_ACCOUNT), "filePath": "/var/captures/both/pc2.cap", "storagePath": c.url("pc2.cap")}
    res, op = create(stk, acct, "blob2", props(acct, vm=VM3, storageLocation=loc,
                                               filters=[{"protocol": "TCP", "remotePort": "8443"}]))
    assert op["status"] == "Succeeded", op
    assert res["properties"]["storageLocation"] == loc, res
    wait_running(stk, acct, "blob2")
    send(link, want)
    wait_packets(stk, acct, "blob2", 5)
    stop(stk, acct, "blob2")
    st = wait_stopped(stk, acct, "blob2")
    assert st["packetCaptureStatus"] == "Stopped" and st["packetCaptureError"] == [], st
    path = local(stk, VM3, "both/pc2.cap")
    blobs = c.blobs()
    assert sorted(blobs) == ["pc2.cap"], sorted(blobs)
    with open(path, "rb") as f:
        assert f.read() == blobs["pc2.cap"]
    assert len(tshark(path)) == 5 and count_markers(path, want) == 5
    assert os.listdir(os.path.dirname(path)) == ["pc2.cap"]  # no .part left beside it


def test_existing_file_fails_a_capture_with_a_blob(stk, acct, azurite):
    """filePath naming a file that exists, with storagePath: the capture fails
    at once (LocalFileFailed), before capturing; no blob is written and the
    file stays as it was."""
    c = Container(azurite)
    path = local(stk, VM2, "taken-blob.cap")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"precious")
    res, op = create(stk, acct, "blob4", props(acct, vm=VM2, storageLocation={
        "filePath": "/var/captures/taken-blob.cap", "storagePath": c.url("taken.cap")}))
    assert op["status"] == "Failed", (op, res)
    assert op["error"]["code"] == "LocalFileFailed" and "exists already" in op["error"]["message"], op
    st = query(stk, acct, "blob4")
    assert st["packetCaptureStatus"] == "Error" and st["packetCaptureError"] == ["LocalFileFailed"], st
    assert c.blobs() == {}
    with open(path, "rb") as f:
        assert f.read() == b"precious"


def test_blob_upload_failure_is_storage_failed(stk, acct, azurite):
    """A container that does not exist (deleted behind our back): Azurite
    answers 404 at once, the share ends upload_failed, and queryStatus says
    Error with StorageFailed; once the container exists, the Cloudflare
    dialect's retry-upload writes the blob and the session is Stopped."""
    c = Container(azurite, create=False)
    link = agent(stk, VM1).link
    res, op = create(stk, acct, "blob3", props(acct, storageLocation={"storagePath": c.url("pc3.cap")},
                                               filters=[{"protocol": "UDP", "remotePort": "7303"}]))
    assert op["status"] == "Succeeded", op
    wait_running(stk, acct, "blob3")
    send(link, frames(link, 3, UDP, dport=7303))
    wait_packets(stk, acct, "blob3", 3)
    stop(stk, acct, "blob3")
    st = wait_stopped(stk, acct, "blob3")
    assert st["packetCaptureStatus"] == "Error" and st["packetCaptureError"] == ["StorageFailed"], st
    res = acct.arm("GET", "blob3", token=acct.read).json
    share = res["properties"]["pcapd"]["agents"][0]
    assert share["status"] == "upload_failed", share
    azurite.node(Container.READ, c.name, "create")
    r = acct.call("POST", "/%s/retry-upload" % res["properties"]["pcapd"]["id"])
    assert r.status == 200, r
    st = until(lambda: (lambda s: s["packetCaptureStatus"] != "Running" and s)(query(stk, acct, "blob3")),
               "blob3 uploaded again")
    assert st["packetCaptureStatus"] == "Stopped" and st["packetCaptureError"] == [], st
    p = save_blob(stk, "blob3.cap", c.blobs()["pc3.cap"])
    assert len(tshark(p)) == 3


def wait_blobs(c, want):
    """Until the container holds exactly the blobs want (names); {name: bytes}."""
    last = {}

    def exact():
        last["b"] = c.blobs()
        return sorted(last["b"]) == sorted(want) and last["b"]
    return until(exact, lambda: "blobs %r, want %r" % (sorted(last.get("b", {})), sorted(want)), interval=0.25)


def same_packets(stk, tag, data, path=None, frames_=None):
    """data (a blob) is a pcap tshark reads whole: byte for byte the local
    file at path, and/or holding exactly frames_. The number of packets."""
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), data[:4]
    if path is not None:
        with open(path, "rb") as f:
            assert f.read() == data, "%s differs from %s" % (tag, path)
    got = raw_frames(save_blob(stk, tag, data))
    if frames_ is not None:
        marked = sum(1 for fr in frames_ if any(fr.marker in d for d in got))
        assert len(got) == len(frames_) == marked, (tag, len(got), len(frames_), marked)
    return len(got)


def test_continuous_ring_into_blobs_and_files(stk, acct, azurite):
    """A ring (continuousCapture true, fileCount 2) with localPath and
    storagePath: each finished file is published both on the agent and as a
    blob named like it (r1.cap → r1_N.cap, in the given directory), and the
    blob of a file that left the ring is deleted: while the session runs and
    after its stop, the container holds exactly the newest two files, each
    byte for byte the agent's file. 14 frames, four to a file."""
    c = Container(azurite)
    link = agent(stk, VM1).link
    want = frames(link, 14, UDP, dport=7311)
    rec = 16 + len(want[0].wire)
    size = 24 + 4 * rec + rec // 2  # four records a file
    loc = {"localPath": "/var/captures/ringb/r1.cap", "storagePath": c.url("rings/r1.cap")}
    res, op = create(stk, acct, "ringb", props(acct, storageLocation=loc, continuousCapture=True,
                                               captureSettings={"fileCount": 2, "fileSizeInBytes": size,
                                                                "sessionTimeLimitInSeconds": 3600},
                                               filters=[{"protocol": "UDP", "remotePort": "7311"}]))
    assert op["status"] == "Succeeded", op
    assert res["properties"]["storageLocation"] == loc, res
    wait_running(stk, acct, "ringb")
    d = os.path.dirname(local(stk, VM1, "ringb/r1.cap"))
    send(link, want)  # files 1-3 finished, the 4th (frames 13-14) still open
    until(lambda: os.path.exists(os.path.join(d, "r1_3.cap")), "r1_3.cap published")
    blobs = wait_blobs(c, ["rings/r1_2.cap", "rings/r1_3.cap"])
    st = query(stk, acct, "ringb")
    assert st["packetCaptureStatus"] == "Running" and st["packetCaptureError"] == [], st
    assert sorted(f for f in os.listdir(d) if not f.startswith("."))[:2] == ["r1_2.cap", "r1_3.cap"], os.listdir(d)
    for n in (2, 3):
        assert same_packets(stk, "ringb-%d.cap" % n, blobs["rings/r1_%d.cap" % n],
                            path=os.path.join(d, "r1_%d.cap" % n), frames_=want[4 * (n - 1):4 * n]) == 4
    wait_packets(stk, acct, "ringb", 14)
    stop(stk, acct, "ringb")
    st = wait_stopped(stk, acct, "ringb")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "StoppedByUser", st
    assert st["packetCaptureError"] == [], st
    assert sorted(os.listdir(d)) == ["r1_3.cap", "r1_4.cap"], os.listdir(d)
    blobs = c.blobs()
    assert sorted(blobs) == ["rings/r1_3.cap", "rings/r1_4.cap"], sorted(blobs)
    assert same_packets(stk, "ringb-3b.cap", blobs["rings/r1_3.cap"], path=os.path.join(d, "r1_3.cap")) == 4
    assert same_packets(stk, "ringb-4.cap", blobs["rings/r1_4.cap"], path=os.path.join(d, "r1_4.cap"),
                        frames_=want[12:]) == 2


def test_continuous_keep_all_into_blobs_of_a_scale_set(stk, acct, azurite):
    """continuousCapture false with storagePath alone, on a scale set: every
    file is a blob, named after the share's blob (k1_<agent>.cap) with _N:
    k1_vm2_1.cap, k1_vm2_2.cap, …; none is deleted; together they hold every
    frame once. Nothing is left in the agent's spool."""
    c = Container(azurite)
    link = agent(stk, VM2).link
    want = frames(link, 10, UDP, dport=7312)
    rec = 16 + len(want[0].wire)
    size = 24 + 4 * rec + rec // 2
    res, op = create(stk, acct, "keepb", props(acct, target=acct.vm(SS, "virtualMachineScaleSets"),
                                               targetType="AzureVMSS", scope={"include": [VM2]},
                                               storageLocation={"storagePath": c.url("k1.cap")},
                                               continuousCapture=False,
                                               captureSettings={"fileCount": 2, "fileSizeInBytes": size},
                                               filters=[{"protocol": "UDP", "remotePort": "7312"}]))
    assert op["status"] == "Succeeded", op
    wait_running(stk, acct, "keepb")
    send(link, want)  # files 1-2 finished, the 3rd open
    wait_packets(stk, acct, "keepb", 10)
    stop(stk, acct, "keepb")
    st = wait_stopped(stk, acct, "keepb")
    assert st["packetCaptureStatus"] == "Stopped" and st["packetCaptureError"] == [], st
    blobs = c.blobs()
    names = ["k1_%s_%d.cap" % (VM2, n) for n in (1, 2, 3)]
    assert sorted(blobs) == names, sorted(blobs)
    counts = [same_packets(stk, "keepb-%d.cap" % n, blobs[b], frames_=want[4 * n:4 * n + 4])
              for n, b in enumerate(names)]
    assert counts == [4, 4, 2], counts
    pid = res["properties"]["pcapd"]["id"]
    spool = os.path.join(agent(stk, VM2).data, "spool")
    assert not [f for f in os.listdir(spool) if pid in f and f.endswith(".cap")], os.listdir(spool)


def test_continuous_blob_failure_goes_on(stk, acct, azurite):
    """A ring into a blob alone (no localPath: the files wait in the agent's
    spool) whose container does not exist: each file fails its upload at
    once (Azurite: 404), the capture goes on, and queryStatus says Running
    with StorageFailed, the share's error naming the file; stopped, the
    session is Error with StorageFailed (the share upload_failed) and the
    files are whole in the agent's spool. A continuous capture's uploads are
    not retried (each file had its own)."""
    c = Container(azurite, create=False)
    link = agent(stk, VM3).link
    want = frames(link, 6, UDP, dport=7313)
    rec = 16 + len(want[0].wire)
    size = 24 + 4 * rec + rec // 2
    res, op = create(stk, acct, "ringf", props(acct, vm=VM3, storageLocation={"storagePath": c.url("f1.cap")},
                                               continuousCapture=True,
                                               captureSettings={"fileCount": 3, "fileSizeInBytes": size},
                                               filters=[{"protocol": "UDP", "remotePort": "7313"}]))
    assert op["status"] == "Succeeded", op
    wait_running(stk, acct, "ringf")
    send(link, want)  # file 1 finished, the 2nd open
    st = until(lambda: (lambda s: s["packetCaptureError"] and s)(query(stk, acct, "ringf")), "ringf StorageFailed")
    assert st["packetCaptureStatus"] == "Running" and st["packetCaptureError"] == ["StorageFailed"], st
    share = st["pcapd"]["agents"][0]
    assert share["status"] == "running" and share["error"].startswith("f1_1.cap did not reach the store"), share
    wait_packets(stk, acct, "ringf", 6)
    stop(stk, acct, "ringf")
    st = wait_stopped(stk, acct, "ringf")
    assert st["packetCaptureStatus"] == "Error" and st["packetCaptureError"] == ["StorageFailed"], st
    share = st["pcapd"]["agents"][0]
    assert share["status"] == "upload_failed" and "2 files did not reach the store" in share["error"], share
    pid = res["properties"]["pcapd"]["id"]
    spool = os.path.join(agent(stk, VM3).data, "spool")
    kept = ["%s_1.cap" % pid, "%s_2.cap" % pid]
    assert sorted(f for f in os.listdir(spool) if pid in f and f.endswith(".cap")) == kept, os.listdir(spool)
    assert [len(tshark(os.path.join(spool, f))) for f in kept] == [4, 2]
    r = acct.call("POST", "/%s/retry-upload" % pid)
    assert r.status == 409 and "continuous" in r.json["errors"][0]["message"], r


def test_upload_grants_name_each_file(stk, acct, azurite):
    """The controller's side of a continuous capture's uploads, asked by an
    agent played by the test: file N of a ring is granted as its own blob
    (NAME_N: parts, block list and, asked for, its DELETE); a file of a
    classic capture, a DELETE in a capture that keeps every file, and a
    DELETE without a file are refused (400, naming the member)."""
    key = stk.enroll("vmg1", "ssg")
    r = stk.request("POST", "/agent/v1/report", token=key,
                    body={"name": "vmg1", "colo": "ssg", "hello": True, "version": "x", "interfaces": ["lo"],
                          "jobs": []})
    assert r.status == 200, r
    c = Container(azurite, create=False)

    def capture(name, **kw):
        loc = {"storagePath": c.url("g/%s.cap" % name)}
        res, _ = create(stk, acct, name, props(acct, vm="vmg1", storageLocation=loc, **kw), wait=False)
        return res["properties"]["pcapd"]["id"]

    def ask(pid, **q):
        return stk.request("POST", "/agent/v1/upload?name=vmg1&id=%s" % pid, token=key, body=dict(attempt=0, **q))

    ring = capture("gring", continuousCapture=True, captureSettings={"fileCount": 2})
    r = ask(ring, file=3, create=True, first_part=1, parts=1, complete=True, delete=True)
    assert r.status == 200, r
    g = r.json
    assert g["store"] == "azure", g
    for req, method in ((g["parts"][0], "PUT"), (g["complete"], "PUT"), (g["delete"], "DELETE")):
        assert req["method"] == method and "/%s/g/gring_3.cap?" % c.name in req["url"], req
    r = ask(ring, delete=True)
    assert r.status == 400 and "delete: only of a continuous capture's file" in r.body.decode(), r
    keep = capture("gkeep", continuousCapture=False)
    r = ask(keep, file=1, create=True)
    assert r.status == 200, r
    r = ask(keep, file=1, delete=True)
    assert r.status == 400 and "keeps every file" in r.body.decode(), r
    classic = capture("gclassic")
    r = ask(classic, file=1, create=True)
    assert r.status == 400 and "is not continuous" in r.body.decode(), r


# --- one capture, two dialects ------------------------------------------------------------

def test_azure_capture_in_cloudflare_and_pcapctl(stk, acct):
    """An Azure session is a capture like any other: the Cloudflare list and
    pcapctl show it (target as colo_name, its file, its Azure name), and
    pcapctl stops it."""
    link = agent(stk, VM2).link
    res, _ = create(stk, acct, "both", props(acct, vm=VM2, path="/var/captures/both.cap",
                                             filters=[{"protocol": "UDP", "remotePort": "9090"}]))
    pid = res["properties"]["pcapd"]["id"]
    wait_running(stk, acct, "both")
    send(link, udp_frames(link, 3, 9090))
    wait_packets(stk, acct, "both", 3)
    caps = acct.call("GET", "", token=acct.read).json["result"]
    cap = [c for c in caps if c["id"] == pid][0]
    assert cap["type"] == "full" and cap["colo_name"] == VM2 and cap["destination_conf"] == "", cap
    assert cap["outputs"] == [{"kind": "file", "target": "/var/captures/both.cap"}], cap
    assert cap["azure"] == {"resource_group": "rg1", "network_watcher": "nw1", "name": "both"}, cap
    assert cap["filter"]["clauses"][0]["both"] is True and "filter_v1" not in cap, cap
    env = dict(os.environ, PCAPD_URL=stk.https_url, PCAPD_TOKEN=acct.write, PCAPD_ACCOUNT=acct.id,
               PCAPD_CACERT=stk.cert)
    out = subprocess.run([binary("pcapctl"), "list"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    row = [l for l in out.stdout.splitlines() if l.startswith(pid)]
    assert row and VM2 in row[0] and "/var/captures/both.cap" in row[0], out.stdout
    out = subprocess.run([binary("pcapctl"), "stop", pid], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    st = wait_stopped(stk, acct, "both")
    assert st["packetCaptureStatus"] == "Stopped" and st["stopReason"] == "StoppedByUser", st
    assert st["pcapd"]["packets"] == 3
    assert len(tshark(local(stk, VM2, "both.cap"))) == 3
    # Cloudflare's download knows there is no bucket to read
    r = acct.call("GET", "/%s/download" % pid, token=acct.read)
    assert r.status == 409 and "/var/captures/both.cap" in r.json["errors"][0]["message"], r
