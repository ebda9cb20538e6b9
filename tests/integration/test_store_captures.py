# SPDX-License-Identifier: MIT
"""Full captures into real object stores, through the real API: a user
registers a bucket on the suite's Ceph radosgw (s3://, with endpoint= and
keys) or Azurite (azblob://), proves ownership by reading the challenge the
controller wrote into the bucket (boto3 / @azure/storage-blob, as a user
would), and a capture on two agents, with real traffic sent from network
namespaces, lands as one object per agent. The objects are read back by the
stores' own clients and checked with tshark; the download streams them from
the store, merged by time. Secrets never appear in answers or logs."""

import json
import os
import subprocess

import pytest

from stack import Stack, binary, random_id, send, udp_frames
from waits import until
from test_api import assert_ok, capinfos_count, count_markers, create, tshark, wait_parts

AGENT1, AGENT2, COLO = "sa1", "sa2", "storelab"


@pytest.fixture(scope="module")
def stk(request, radosgw, azurite):
    """Two agents in one colo; the stores (once per suite) started first."""
    if os.geteuid() != 0:
        pytest.fail("the store capture tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False)
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(AGENT1, COLO)
    s.add_agent(AGENT2, COLO)
    return s


def link_of(stk, name):
    return [a for a in stk.agents if a.name == name][0].link


class S3Bucket:
    """A fresh bucket on radosgw, as a user would name it."""

    def __init__(self, rgw):
        self.rgw = rgw
        self.s3 = rgw.boto3()
        self.name = "cap-" + random_id()[:12]
        self.prefix = "pcaps/"
        self.s3.create_bucket(Bucket=self.name)
        self.secret = rgw.SECRET_KEY
        self.uri = "s3://%s/pcaps?region=us-east-1&endpoint=%s&access-key-id=%s&secret-access-key=%s" % (
            self.name, rgw.endpoint, rgw.ACCESS_KEY, rgw.SECRET_KEY)

    def get(self, name):
        return self.s3.get_object(Bucket=self.name, Key=self.prefix + name)["Body"].read()

    def names(self):
        r = self.s3.list_objects_v2(Bucket=self.name)
        return sorted(o["Key"][len(self.prefix):] for o in r.get("Contents", []))

    def uploads(self):
        return self.s3.list_multipart_uploads(Bucket=self.name).get("Uploads", [])

    def parts_sent(self, name):
        """Parts of the object's unfinished upload the store holds (ListParts)."""
        ups = [u for u in self.uploads() if u["Key"] == self.prefix + name]
        if not ups:
            return 0
        r = self.s3.list_parts(Bucket=self.name, Key=ups[0]["Key"], UploadId=ups[0]["UploadId"])
        return len(r.get("Parts", []))


class R2Bucket(S3Bucket):
    """Cloudflare's R2 form, pointed at radosgw with endpoint=."""

    def __init__(self, rgw):
        super().__init__(rgw)
        self.uri = "r2://%s/pcaps?account-id=0123abcd&access-key-id=%s&secret-access-key=%s&endpoint=%s" % (
            self.name, rgw.ACCESS_KEY, rgw.SECRET_KEY, rgw.endpoint)


class GsBucket(S3Bucket):
    """Google Cloud Storage's XML API form (HMAC keys), pointed at radosgw."""

    def __init__(self, rgw):
        super().__init__(rgw)
        self.uri = "gs://%s/pcaps?endpoint=%s&access-key-id=%s&secret-access-key=%s" % (
            self.name, rgw.endpoint, rgw.ACCESS_KEY, rgw.SECRET_KEY)


class AzBucket:
    """A fresh container on Azurite."""

    def __init__(self, az):
        from stores import AZ_ACCOUNT, AZ_KEY
        self.az = az
        self.name = "cap-" + random_id()[:12]
        self.prefix = "pcaps/"
        self.secret = AZ_KEY
        az.node("""const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const c = new BlobServiceClient(process.env.ENDPOINT, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
c.getContainerClient(process.argv[1]).create().catch(e => { console.error(e.message); process.exit(1); });""",
                self.name)
        self.uri = "azblob://%s/%s/pcaps?endpoint=%s&key=%s" % (
            AZ_ACCOUNT, self.name, az.endpoint, __import__("urllib.parse").parse.quote(AZ_KEY, safe=""))

    def get(self, name):
        out = self.az.node("""const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const c = new BlobServiceClient(process.env.ENDPOINT, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
c.getContainerClient(process.argv[1]).getBlobClient(process.argv[2]).downloadToBuffer()
 .then(b => process.stdout.write(b.toString('base64')))
 .catch(e => { console.error(e.message); process.exit(1); });""", self.name, self.prefix + name)
        import base64
        return base64.b64decode(out)

    def names(self):
        out = self.az.node("""const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const c = new BlobServiceClient(process.env.ENDPOINT, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
(async () => { const n = []; for await (const b of c.getContainerClient(process.argv[1]).listBlobsFlat()) n.push(b.name);
 console.log(JSON.stringify(n)); })().catch(e => { console.error(e.message); process.exit(1); });""", self.name)
        return sorted(n[len(self.prefix):] for n in json.loads(out))


@pytest.fixture(params=["s3", "azblob"])
def bucket(request):
    if request.param == "s3":
        return S3Bucket(request.getfixturevalue("radosgw"))
    return AzBucket(request.getfixturevalue("azurite"))


def register(acct, b):
    """Ownership as a user proves it: create, read the challenge from the
    bucket with the store's own client, validate."""
    own = assert_ok(acct.call("POST", "/ownership", {"destination_conf": b.uri}))
    assert own["status"] == "pending", own
    assert b.secret not in json.dumps(own)
    challenge = b.get(own["filename"]).decode().strip()
    v = assert_ok(acct.call("POST", "/ownership/validate", {"destination_conf": b.uri,
                                                            "ownership_challenge": challenge}))
    assert v["status"] == "success", v
    return own


def save(stk, name, data):
    p = os.path.join(stk.dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def test_full_capture_lands_in_the_store(stk, bucket):
    acct = stk.account()
    register(acct, bucket)
    l1, l2 = link_of(stk, AGENT1), link_of(stk, AGENT2)
    f1 = udp_frames(l1, 10, dport=5301)
    f2 = udp_frames(l2, 12, dport=5301)
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": COLO,
                      "destination_conf": bucket.uri, "filter_v1": {"destination_port": 5301}})
    assert bucket.secret not in json.dumps(c)
    wait_parts(stk, acct, c["id"], n=2)
    send(l1, f1[:5])
    send(l2, f2[:6])
    send(l1, f1[5:])
    send(l2, f2[6:])
    stk.wait_captured(acct, c["id"], 22)
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert bucket.secret not in json.dumps(done)
    objs = ["pcap_%s_%s.pcap" % (c["id"], a) for a in (AGENT1, AGENT2)]
    assert [o for o in bucket.names() if o.startswith("pcap_")] == objs
    o1 = save(stk, "store-%s-1.pcap" % c["id"], bucket.get(objs[0]))
    o2 = save(stk, "store-%s-2.pcap" % c["id"], bucket.get(objs[1]))
    assert len(tshark(o1)) == 10 and len(tshark(o2)) == 12
    assert count_markers(o1, f1) == 10 and count_markers(o2, f2) == 12
    if isinstance(bucket, S3Bucket):
        assert bucket.uploads() == [], "an upload was left unfinished"
    # The download streams both objects from the store, merged by time.
    r = acct.call("GET", "/%s/download" % c["id"], token=acct.read)
    assert r.status == 200 and r.header("content-type") == "application/vnd.tcpdump.pcap", r
    out = save(stk, "store-merged-%s.pcap" % c["id"], r.body)
    pk = tshark(out)
    assert len(pk) == 22 == capinfos_count(out)
    assert [p[0] for p in pk] == sorted(p[0] for p in pk), "merged file not in time order"
    assert count_markers(out, f1 + f2) == 22


def test_upload_while_capturing(stk, radosgw):
    """A capture of 20 MiB (three parts of 8 MiB): a part is in the store
    while the capture still runs, the object is complete only at the end and
    holds exactly what the agent captured. (Azure's blocks go out through the
    same code, storeup_stream_*; radosgw only, to keep CI short.)"""
    import traffic
    bucket = S3Bucket(radosgw)
    acct = stk.account()
    register(acct, bucket)
    link = link_of(stk, AGENT2)
    frames = udp_frames(link, 50, dport=5306, size=1400)
    limit = 20 << 20
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "byte_limit": limit,
                      "colo_name": AGENT2, "destination_conf": bucket.uri,
                      "filter_v1": {"destination_port": 5306}})
    wait_parts(stk, acct, c["id"])
    obj = "pcap_%s_%s.pcap" % (c["id"], AGENT2)
    # ~12 MB: a part whole with room for drops, well short of the limit.
    send(link, frames * 170, gap_us=20)
    until(lambda: bucket.parts_sent(obj) >= 1, lambda: "capture %s: %d parts in the store" % (
        c["id"], bucket.parts_sent(obj)))
    assert share(stk, acct, c["id"], AGENT2)["status"] == "running"
    assert obj not in bucket.names(), "the object appeared before the capture ended"
    with traffic.Steady(link, frames=frames, gap_us=20, max_s=120):
        done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success" and done.get("stop_reason") == "bytes", done
    data = bucket.get(obj)
    n = done["packets_captured"]
    # Classic pcap: the file header, then a 16-byte header per record.
    assert len(data) == 24 + 16 * n + done["bytes_captured"], (len(data), done)
    p = save(stk, "streamed-%s.pcap" % c["id"], data)
    assert [pk[1] for pk in tshark(p)] == [len(frames[0].wire)] * n  # our frames, whole
    assert bucket.uploads() == [], "an upload was left unfinished"


@pytest.mark.parametrize("kind", [R2Bucket, GsBucket], ids=["r2", "gs"])
def test_r2_and_gs_capture(stk, radosgw, kind):
    """r2:// and gs:// (on radosgw through endpoint=): ownership created and
    validated in the bucket, a capture lands as an object."""
    b = kind(radosgw)
    acct = stk.account()
    register(acct, b)
    c, frames = capture_some(stk, acct, b, AGENT1, 3, 5307)
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert b.secret not in json.dumps(done)
    p = save(stk, "%s-%s.pcap" % (b.uri[:2], c["id"]), b.get("pcap_%s_%s.pcap" % (c["id"], AGENT1)))
    assert len(tshark(p)) == 3 and count_markers(p, frames) == 3
    assert b.uploads() == []


def test_no_secret_in_logs(stk, bucket):
    """After a capture, neither process has written the store's secret."""
    acct = stk.account()
    register(acct, bucket)
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "packet_limit": 3,
                      "colo_name": AGENT1, "destination_conf": bucket.uri})
    wait_parts(stk, acct, c["id"])
    send(link_of(stk, AGENT1), udp_frames(link_of(stk, AGENT1), 3, dport=5302))
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    logs = [stk.controller.proc.stderr()] + [a.proc.stderr() for a in stk.agents]
    for text in logs:
        assert bucket.secret not in text
    r = subprocess.run(["grep", "-rlF", bucket.secret, stk.dir], capture_output=True, text=True)
    leaked = [p for p in r.stdout.splitlines() if not p.endswith((".db", ".db-wal", ".db-shm"))]
    assert leaked == [], leaked


# --- faults: the store slow or away, the bucket gone ------------------------------------------

BUDGET_AGENT = "sa3"  # --upload-budget 2: gives up quickly


@pytest.fixture(scope="module")
def budget_agent(stk):
    return stk.add_agent(BUDGET_AGENT, "budgetlab", extra_args=["--upload-budget", "2"])


@pytest.fixture(params=["s3", "azblob"])
def away(request):
    """A fresh bucket on a store the test stops and starts: (bucket, stop,
    start); the store is started again after the test whatever it did."""
    if request.param == "s3":
        rgw = request.getfixturevalue("radosgw")
        yield S3Bucket(rgw), rgw.stop_gateway, rgw.start_gateway
        if len(rgw.pids) < 3:
            rgw.start_gateway()
        return
    az = request.getfixturevalue("azurite")
    # Again on its port (the bucket's URI names it), its blobs kept on disk.
    yield AzBucket(az), az.stop_proc, lambda: az.start(port=az.port)
    if az.proc is None:
        az.start(port=az.port)


def share(stk, acct, pcap_id, agent):
    obj = assert_ok(acct.call("GET", "/" + pcap_id, token=acct.read))
    return [p for p in obj.get("agents", []) if p["name"] == agent][0]


def capture_some(stk, acct, b, agent, n, dport):
    """A capture on one agent that ends by its packet limit after n frames."""
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "packet_limit": n,
                      "colo_name": agent, "destination_conf": b.uri, "filter_v1": {"destination_port": dport}})
    wait_parts(stk, acct, c["id"])
    link = link_of(stk, agent)
    frames = udp_frames(link, n, dport=dport)
    send(link, frames)
    return c, frames


def test_store_away_during_the_upload(stk, away):
    """The store (radosgw, Azurite) stopped before the capture ends and
    started again while the agent retries: the capture still ends success,
    one whole object."""
    b, stop_store, start_store = away
    acct = stk.account()
    register(acct, b)
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": AGENT1,
                      "destination_conf": b.uri, "filter_v1": {"destination_port": 5303}})
    wait_parts(stk, acct, c["id"])
    link = link_of(stk, AGENT1)
    frames = udp_frames(link, 8, dport=5303)
    send(link, frames)
    stk.wait_captured(acct, c["id"], 8)
    stop_store()
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    wait_parts(stk, acct, c["id"], state="uploading")
    start_store()
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    obj = "pcap_%s_%s.pcap" % (c["id"], AGENT1)
    p = save(stk, "away-%s.pcap" % c["id"], b.get(obj))
    assert len(tshark(p)) == 8 and count_markers(p, frames) == 8
    if isinstance(b, S3Bucket):
        assert b.uploads() == []


def upload_progress(agent, pcap_id):
    """The agent's kept progress of its upload (DATA/jobs/<id>.upload), or None."""
    try:
        with open(os.path.join(agent.data, "jobs", pcap_id + ".upload")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def a_part_in_the_store(stk, b, dport):
    """A capture on AGENT2 into b with ~12 MB of frames sent, once the store
    confirmed its first part (the agent keeps what the store confirmed):
    (acct, agent, frames, capture, object, the kept progress)."""
    acct = stk.account()
    register(acct, b)
    agent = [a for a in stk.agents if a.name == AGENT2][0]
    frames = udp_frames(agent.link, 50, dport=dport, size=1400)
    c = create(acct, {"type": "full", "system": "magic-transit", "time_limit": 300, "colo_name": AGENT2,
                      "destination_conf": b.uri, "filter_v1": {"destination_port": dport}})
    wait_parts(stk, acct, c["id"])
    send(agent.link, frames * 170, gap_us=20)  # a part and a tail
    kept = until(lambda: (upload_progress(agent, c["id"]) or {}).get("sent", 0) >= 1 and
                 upload_progress(agent, c["id"]),
                 lambda: "progress of %s: %r" % (c["id"], upload_progress(agent, c["id"])))
    return acct, agent, frames, c, "pcap_%s_%s.pcap" % (c["id"], AGENT2), kept


def test_agent_killed_mid_upload_resumes(stk, away):
    """An agent SIGKILLed while its upload has a part in the store (radosgw,
    Azurite) and its tail still to send (the store away meanwhile), started
    again: it resumes the same upload (S3: the same multipart upload; Azure:
    the blocks the store kept), and the capture ends with one complete
    object, no stray upload, the share done."""
    b, stop_store, start_store = away
    acct, agent, frames, c, obj, kept = a_part_in_the_store(stk, b, 5308)
    if isinstance(b, S3Bucket):
        assert b.parts_sent(obj) >= 1
        assert kept["upload_id"] == b.uploads()[0]["UploadId"] and len(kept["etags"]) == kept["sent"], kept
    else:
        assert kept["upload_id"] == "" and kept["etags"] == [], kept
    stop_store()
    assert 200 <= acct.call("PUT", "/%s/stop" % c["id"]).status < 300
    wait_parts(stk, acct, c["id"], state="uploading")  # the tail refused, retried
    agent.kill()
    agent.start()
    start_store()
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert share(stk, acct, c["id"], AGENT2)["status"] == "done"
    # From the part the store had confirmed (no later one: the store was away).
    assert "resuming the upload of %s (attempt 0) after %d confirmed parts" % (
        obj, kept["sent"]) in agent.proc.stderr()
    data = b.get(obj)
    n = done["packets_captured"]
    assert len(data) == 24 + 16 * n + done["bytes_captured"], (len(data), done)
    p = save(stk, "resumed-%s.pcap" % c["id"], data)
    assert [pk[1] for pk in tshark(p)] == [len(frames[0].wire)] * n
    assert [o for o in b.names() if o.startswith("pcap_")] == [obj]
    if isinstance(b, S3Bucket):
        assert b.uploads() == [], "an upload was left unfinished"
        # The part sent before the kill is in the object: one upload, completed.
        head = b.s3.head_object(Bucket=b.name, Key=b.prefix + obj)
        assert head["ETag"].strip('"').endswith("-%d" % ((len(data) + (8 << 20) - 1) // (8 << 20))), head


def test_agent_killed_mid_capture_aborts_its_upload(stk, radosgw):
    """An agent SIGKILLed while capturing, a part already in the store,
    started again: the capture is lost (the share fails, saying why) and the
    multipart upload it had begun is aborted: nothing half-made stays."""
    b = S3Bucket(radosgw)
    acct, agent, _, c, _, _ = a_part_in_the_store(stk, b, 5309)
    assert len(b.uploads()) == 1
    agent.kill()
    agent.start()
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "failed" and "agent restarted during the capture" in done["error_message"], done
    assert b.uploads() == [], "the begun upload was left unfinished"
    assert "its capture had begun is aborted" in agent.proc.stderr()
    assert [o for o in b.names() if o.startswith("pcap_")] == []


def pcapctl(stk, acct, *args):
    env = dict(os.environ, PCAPD_URL=stk.http_url, PCAPD_TOKEN=acct.write, PCAPD_ACCOUNT=acct.id)
    return subprocess.run([binary("pcapctl")] + list(args), env=env, capture_output=True, text=True, timeout=60)


def test_store_down_past_the_budget_then_retry(stk, away, budget_agent):
    """The store (radosgw, Azurite) away longer than the agent's budget: the
    share ends upload_failed naming the object and the store's answer, the
    capture is kept on the agent, and a retry through the API uploads it."""
    b, stop_store, start_store = away
    acct = stk.account()
    register(acct, b)
    stop_store()
    c, frames = capture_some(stk, acct, b, BUDGET_AGENT, 6, 5304)
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "failed", done
    s = share(stk, acct, c["id"], BUDGET_AGENT)
    assert s["status"] == "upload_failed", s
    obj = "pcap_%s_%s.pcap" % (c["id"], BUDGET_AGENT)
    assert obj in done["error_message"], done
    assert "onnect" in done["error_message"], done  # the transport's answer (refused)
    if isinstance(b, S3Bucket):
        # Azure's longer paths and curl's words fill the 256-byte message
        # before this last note.
        assert "retry budget" in done["error_message"], done
    assert b.secret not in json.dumps(done)
    spool = os.path.join(budget_agent.data, "spool", c["id"] + ".pcap")
    assert os.path.exists(spool)
    start_store()
    r = assert_ok(acct.call("POST", "/%s/retry-upload" % c["id"]))
    assert r["status"] == "conversion_running", r
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    assert done["packets_captured"] == 6, done
    p = save(stk, "retried-%s.pcap" % c["id"], b.get(obj))
    assert len(tshark(p)) == 6 and count_markers(p, frames) == 6
    if isinstance(b, S3Bucket):
        assert b.uploads() == []

    def spool_gone():
        return not os.path.exists(spool)
    until(spool_gone, lambda: "the spool %s is still there after the upload" % spool)
    # A capture that succeeded has nothing to retry: 409, and pcapctl says why.
    r = acct.call("POST", "/%s/retry-upload" % c["id"])
    assert r.status == 409, r
    out = pcapctl(stk, acct, "retry-upload", c["id"])
    assert out.returncode == 1 and "only a failed capture" in out.stderr, out


def test_bucket_deleted_behind_our_back(stk, radosgw):
    """The bucket removed after registration: the share ends upload_failed
    at once with the store's 404 NoSuchBucket; made again, a retry lands."""
    b = S3Bucket(radosgw)
    acct = stk.account()
    register(acct, b)
    for o in b.s3.list_objects_v2(Bucket=b.name).get("Contents", []):
        b.s3.delete_object(Bucket=b.name, Key=o["Key"])
    b.s3.delete_bucket(Bucket=b.name)
    c, frames = capture_some(stk, acct, b, AGENT2, 4, 5305)
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "failed", done
    assert "404 NoSuchBucket" in done["error_message"], done
    assert share(stk, acct, c["id"], AGENT2)["status"] == "upload_failed"
    b.s3.create_bucket(Bucket=b.name)
    # pcapctl's retry-upload: silent on success
    out = pcapctl(stk, acct, "retry-upload", c["id"])
    assert out.returncode == 0 and out.stdout == "", out
    done = stk.wait_status(acct, c["id"])
    assert done["status"] == "success", done
    p = save(stk, "recreated-%s.pcap" % c["id"], b.get("pcap_%s_%s.pcap" % (c["id"], AGENT2)))
    assert len(tshark(p)) == 4 and count_markers(p, frames) == 4
