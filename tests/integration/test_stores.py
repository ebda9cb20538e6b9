# SPDX-License-Identifier: MIT
"""Every store operation of src/bucket against the real stores, started once
per suite (stores.py): Ceph radosgw for s3://, r2:// and gs:// (through
endpoint=, as an operator would point them at an S3-compatible store), and
Azurite for azblob://. bucket-tool runs the operations; what it wrote is read
back by clients no one here wrote (boto3, @azure/storage-blob), and presigned
URLs are used by a party holding no keys (plain urllib). Wrong secrets,
unknown buckets and a store that is down give errors naming the store's HTTP
status and error code, never the secret."""

import os
import random
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from stores import AZ_ACCOUNT, AZ_KEY, ROOT

TOOL = os.path.join(os.environ.get("PCAPD_BUILD", os.path.join(ROOT, "build")), "tests", "tools", "bucket-tool")
MIB = 1 << 20


def tool(*args, env=None, stdin=None):
    """Runs bucket-tool; (returncode, stdout bytes, stderr text)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_"))}
    e.update(env or {})
    r = subprocess.run([TOOL] + list(args), env=e, capture_output=True, timeout=300, input=stdin)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def ok(*args, env=None):
    rc, out, err = tool(*args, env=env)
    assert rc == 0, err
    return out


def fails(*args, env=None):
    rc, out, err = tool(*args, env=env)
    assert rc == 1, (rc, out, err)
    return err


def data(n, seed=1):
    """n reproducible bytes that differ at every offset (catches misplaced ranges)."""
    return random.Random(seed).randbytes(n)


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    return str(p)


def http(method, url, body=None, headers=None):
    """A request by a party with no keys: (status, body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def presign(uri, op, name, *extra, env=None, args=()):
    words = ok(*args, uri, "presign", op, name, *extra, env=env).decode().strip().split(" ", 2)
    method, url = words[0], words[1]
    headers = {}
    if len(words) > 2:
        k, v = words[2].split(": ", 1)
        headers[k] = v
    return method, url, headers


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- S3 and its kin on radosgw ----------------------------------------------------------------

@pytest.fixture(scope="module")
def rgw(radosgw):
    s3 = radosgw.boto3()
    for b in ("caps", "r2caps", "gscaps"):
        s3.create_bucket(Bucket=b)
    return radosgw


def s3_forms(rgw):
    """(id, URI, env, bucket, key prefix): every S3-family scheme, keys
    from the URI or from the configuration the CLI reads from the environment."""
    ep, ak, sk = rgw.endpoint, rgw.ACCESS_KEY, rgw.SECRET_KEY
    return [
        ("s3-uri-keys", "s3://caps/pre/fix?region=us-east-1&endpoint=%s&access-key-id=%s&secret-access-key=%s"
         % (ep, ak, sk), {}, "caps", "pre/fix/"),
        ("s3-env", "s3://caps", {"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_ENDPOINT_URL_S3": ep},
         "caps", ""),
        ("r2", "r2://r2caps/d?account-id=0123abcd&access-key-id=%s&secret-access-key=%s&endpoint=%s" % (ak, sk, ep),
         {}, "r2caps", "d/"),
        ("gs-env", "gs://gscaps/x/y?endpoint=%s" % ep, {"GOOGLE_HMAC_ACCESS_ID": ak, "GOOGLE_HMAC_SECRET": sk},
         "gscaps", "x/y/"),
    ]


@pytest.mark.parametrize("form", range(4), ids=["s3-uri-keys", "s3-env", "r2", "gs-env"])
def test_s3_objects(rgw, tmp_path, form):
    _, uri, env, bucket, prefix = s3_forms(rgw)[form]
    s3 = rgw.boto3()
    body = data(300000, seed=form + 1)
    ok(uri, "put", "pcap_1.pcap", write(tmp_path, "in", body), env=env)
    assert s3.get_object(Bucket=bucket, Key=prefix + "pcap_1.pcap")["Body"].read() == body
    assert ok(uri, "get", "pcap_1.pcap", env=env) == body
    assert ok(uri, "size", "pcap_1.pcap", env=env).strip() == b"300000"
    assert ok(uri, "read", "pcap_1.pcap", "123457", "1000", env=env) == body[123457:124457]
    assert ok(uri, "read", "pcap_1.pcap", "299990", "1000", env=env) == body[299990:]  # short at the end
    err = fails(uri, "get", "pcap_1.pcap", "1000", env=env)
    assert "EFBIG" in err
    ok(uri, "put-bytes", "small", "hello", env=env)
    assert s3.get_object(Bucket=bucket, Key=prefix + "small")["Body"].read() == b"hello"
    ok(uri, "rm", "pcap_1.pcap", env=env)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "pcap_1")["KeyCount"] == 0
    err = fails(uri, "rm", "pcap_1.pcap", env=env)
    assert "ENOENT" in err and "no object pcap_1.pcap" in err
    err = fails(uri, "get", "pcap_1.pcap", env=env)
    assert "ENOENT" in err and "HTTP 404 NoSuchKey" in err


def test_s3_multipart_and_abort(rgw, tmp_path):
    _, uri, env, bucket, prefix = s3_forms(rgw)[0]
    s3 = rgw.boto3()
    body = data(12 * MIB + 12345, seed=7)
    path = write(tmp_path, "big", body)
    upload_id = ok(uri, "upload", "multi", path, str(5 * MIB)).decode().strip()
    assert upload_id
    got = s3.get_object(Bucket=bucket, Key=prefix + "multi")
    assert got["Body"].read() == body
    assert got["ETag"].endswith('-3"')  # three parts, completed as one object

    ok(uri, "upload", "aborted", path, str(5 * MIB), "abort")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "aborted")["KeyCount"] == 0
    ups = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "aborted").get("Uploads", [])
    assert ups == []  # nothing half-made left behind


def test_s3_big_file_goes_in_parts(rgw, tmp_path):
    _, uri, env, bucket, prefix = s3_forms(rgw)[1]
    body = data(65 * MIB, seed=3)
    ok(uri, "put", "big", write(tmp_path, "big", body), env=env)
    head = rgw.boto3().head_object(Bucket=bucket, Key=prefix + "big")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].endswith('-5"')  # 16 MiB parts
    assert ok(uri, "get", "big", str(100 * MIB), env=env) == body


def test_s3_presigned_urls_without_keys(rgw, tmp_path):
    _, uri, env, bucket, prefix = s3_forms(rgw)[0]
    s3 = rgw.boto3()

    # PUT and GET of a whole object.
    method, url, _ = presign(uri, "put", "pre_1")
    assert (method, http(method, url, b"presigned body")[0]) == ("PUT", 200)
    assert s3.get_object(Bucket=bucket, Key=prefix + "pre_1")["Body"].read() == b"presigned body"
    method, url, _ = presign(uri, "get", "pre_1")
    assert http(method, url) == (200, b"presigned body")
    assert "X-Amz-Signature=" in url and rgw.SECRET_KEY not in url
    # Tampered: the signature no longer matches.
    assert http("GET", url.replace("pre_1", "pre_2"))[0] == 403

    # A multipart upload driven wholly through URLs, as an agent would.
    method, url, _ = presign(uri, "create", "pre_multi")
    status, answer = http(method, url)
    assert status == 200, answer
    upload_id = answer.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    parts = [data(5 * MIB, seed=11), data(777, seed=12)]
    etags = []
    for i, part in enumerate(parts, 1):
        method, url, _ = presign(uri, "part", "pre_multi", upload_id, str(i))
        req = urllib.request.Request(url, data=part, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
            etags.append(r.headers["ETag"])
    body = ok("body", "s3", upload_id, *etags)
    method, url, _ = presign(uri, "complete", "pre_multi", upload_id)
    status, answer = http(method, url, body)
    assert status == 200 and b"<Error>" not in answer, answer
    assert s3.get_object(Bucket=bucket, Key=prefix + "pre_multi")["Body"].read() == b"".join(parts)

    # Abort through a URL: nothing is left.
    method, url, _ = presign(uri, "create", "pre_abort")
    upload_id = http(method, url)[1].split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    method, url, _ = presign(uri, "part", "pre_abort", upload_id, "1")
    assert http(method, url, b"x" * 1000)[0] == 200
    method, url, _ = presign(uri, "abort", "pre_abort", upload_id)
    assert http(method, url)[0] == 204
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "pre_abort").get("Uploads", []) == []

    # DELETE.
    method, url, _ = presign(uri, "delete", "pre_1")
    assert http(method, url)[0] == 204
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "pre_1")["KeyCount"] == 0


def test_s3_errors(rgw):
    ep, ak, sk = rgw.endpoint, rgw.ACCESS_KEY, rgw.SECRET_KEY
    wrong = "s3://caps?endpoint=%s&access-key-id=%s&secret-access-key=NOT-THE-SECRET" % (ep, ak)
    err = fails(wrong, "put-bytes", "x", "y")
    assert "EACCES" in err and "HTTP 403 SignatureDoesNotMatch" in err, err
    assert "NOT-THE-SECRET" not in err
    # A URL presigned with the wrong secret is refused by the store.
    method, url, _ = presign(wrong, "get", "x")
    assert http(method, url)[0] == 403

    unknown = "s3://no-such-bucket?endpoint=%s&access-key-id=%s&secret-access-key=%s" % (ep, ak, sk)
    err = fails(unknown, "put-bytes", "x", "y")
    assert "ENOENT" in err and "HTTP 404 NoSuchBucket" in err, err
    assert sk not in err

    down = "s3://caps?endpoint=http://127.0.0.1:%d&access-key-id=%s&secret-access-key=%s" % (closed_port(), ak, sk)
    err = fails(down, "put-bytes", "x", "y")
    assert "ECONNREFUSED" in err and "PUT 127.0.0.1:" in err, err


# --- Azure Blob on Azurite ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def az(azurite):
    azurite.node("""
const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const svc = new BlobServiceClient(process.env.ENDPOINT,
  new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
svc.getContainerClient('caps').createIfNotExists().then(() => process.exit(0));
""")
    return azurite


def az_read(az, blob):
    """The blob's bytes as the official SDK reads them (hex over stdout)."""
    out = az.node("""
const {BlobServiceClient, StorageSharedKeyCredential} = require('@azure/storage-blob');
const svc = new BlobServiceClient(process.env.ENDPOINT,
  new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
svc.getContainerClient('caps').getBlobClient(process.argv[1]).downloadToBuffer()
  .then(b => process.stdout.write(b.toString('hex')))
  .catch(e => { process.stdout.write('ERR ' + e.statusCode); });
""", blob)
    if out.startswith(b"ERR "):
        return int(out[4:])
    return bytes.fromhex(out.decode())


def az_forms(az):
    return [
        ("azblob-config", ["--azure-storage", "%s=%s@%s" % (AZ_ACCOUNT, AZ_KEY, az.endpoint)],
         "azblob://%s/caps/pre" % AZ_ACCOUNT, "pre/"),
        ("azblob-uri-key", [], "azblob://%s/caps?endpoint=%s&key=%s" % (AZ_ACCOUNT, az.endpoint,
                                                                        urllib.parse.quote(AZ_KEY, safe="")), ""),
    ]


@pytest.mark.parametrize("form", range(2), ids=["azblob-config", "azblob-uri-key"])
def test_azure_objects(az, tmp_path, form):
    _, args, uri, prefix = az_forms(az)[form]
    body = data(300000, seed=21 + form)
    ok(*args, uri, "put", "pcap_1.pcap", write(tmp_path, "in", body))
    assert az_read(az, prefix + "pcap_1.pcap") == body
    assert ok(*args, uri, "get", "pcap_1.pcap") == body
    assert ok(*args, uri, "size", "pcap_1.pcap").strip() == b"300000"
    assert ok(*args, uri, "read", "pcap_1.pcap", "4097", "3000") == body[4097:7097]
    ok(*args, uri, "rm", "pcap_1.pcap")
    assert az_read(az, prefix + "pcap_1.pcap") == 404
    err = fails(*args, uri, "rm", "pcap_1.pcap")
    assert "ENOENT" in err and "no object pcap_1.pcap" in err, err


def test_azure_blocks_and_abort(az, tmp_path):
    _, args, uri, prefix = az_forms(az)[0]
    body = data(11 * MIB + 3, seed=31)
    path = write(tmp_path, "big", body)
    ok(*args, uri, "upload", "blocks", path, str(5 * MIB))
    assert az_read(az, prefix + "blocks") == body
    ok(*args, uri, "upload", "aborted", path, str(5 * MIB), "abort")
    assert az_read(az, prefix + "aborted") == 404  # blocks never committed: no blob


def test_azure_presigned_urls_without_keys(az):
    _, args, uri, prefix = az_forms(az)[0]
    method, url, headers = presign(uri, "put", "sas_1", args=args)
    assert headers == {"x-ms-blob-type": "BlockBlob"}
    assert http(method, url, b"sas body", headers)[0] == 201
    assert az_read(az, prefix + "sas_1") == b"sas body"
    method, url, _ = presign(uri, "get", "sas_1", args=args)
    assert http(method, url) == (200, b"sas body")
    assert AZ_KEY not in url and "sig=" in url
    # A SAS for reading does not write.
    assert http("PUT", url, b"x", {"x-ms-blob-type": "BlockBlob"})[0] == 403

    # Blocks and the block list through URLs, as an agent would.
    upload_id = ok(*args, uri, "begin", "sas_blocks").decode().strip()
    parts = [data(4 * MIB, seed=41), data(1000, seed=42)]
    for i, part in enumerate(parts, 1):
        method, url, _ = presign(uri, "part", "sas_blocks", upload_id, str(i), args=args)
        assert http(method, url, part)[0] == 201
    body = ok("body", "azure", upload_id, "2")
    method, url, _ = presign(uri, "complete", "sas_blocks", args=args)
    assert http(method, url, body)[0] == 201
    assert az_read(az, prefix + "sas_blocks") == b"".join(parts)

    method, url, _ = presign(uri, "delete", "sas_1", args=args)
    assert http(method, url)[0] == 202
    assert az_read(az, prefix + "sas_1") == 404


def test_azure_sas_signature_matches_the_sdk(az):
    """Our service SAS for fixed inputs equals @azure/storage-blob's."""
    _, args, uri, prefix = az_forms(az)[0]
    now = 1716800400
    method, url, _ = presign(uri, "get", "x", args=args, env={"BUCKET_TOOL_NOW": str(now)})
    ours = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    theirs = az.node("""
const {generateBlobSASQueryParameters, BlobSASPermissions, StorageSharedKeyCredential, SASProtocol} =
  require('@azure/storage-blob');
const q = generateBlobSASQueryParameters({
  containerName: 'caps', blobName: process.argv[1], permissions: BlobSASPermissions.parse('r'),
  startsOn: new Date((+process.argv[2] - 300) * 1000), expiresOn: new Date((+process.argv[2] + 300) * 1000),
  protocol: SASProtocol.HttpsAndHttp, version: process.argv[3],
}, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
process.stdout.write(q.signature);
""", prefix + "x", str(now), ours["sv"][0]).decode()
    assert ours["sig"][0] == theirs


def test_azure_user_sas(az):
    """A container SAS the user made (sas=) works for every request."""
    sas = az.node("""
const {generateBlobSASQueryParameters, ContainerSASPermissions, StorageSharedKeyCredential} =
  require('@azure/storage-blob');
const q = generateBlobSASQueryParameters({
  containerName: 'caps', permissions: ContainerSASPermissions.parse('racwd'),
  expiresOn: new Date(Date.now() + 3600 * 1000),
}, new StorageSharedKeyCredential(process.env.ACCOUNT, process.env.KEY));
process.stdout.write(q.toString());
""").decode()
    uri = "azblob://%s/caps/u?endpoint=%s&sas=%s" % (AZ_ACCOUNT, az.endpoint, urllib.parse.quote(sas, safe=""))
    ok(uri, "put-bytes", "with_sas", "sas written")
    assert az_read(az, "u/with_sas") == b"sas written"
    assert ok(uri, "get", "with_sas") == b"sas written"


def test_azure_errors(az):
    wrong_key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    uri = "azblob://%s/caps?endpoint=%s&key=%s" % (AZ_ACCOUNT, az.endpoint, wrong_key)
    err = fails(uri, "put-bytes", "x", "y")
    assert "EACCES" in err and "HTTP 403" in err, err
    assert "AuthorizationFailure" in err or "AuthenticationFailed" in err, err
    assert wrong_key not in err
    args = ["--azure-storage", "%s=%s@%s" % (AZ_ACCOUNT, AZ_KEY, az.endpoint)]
    err = fails(*args, "azblob://%s/nocontainer" % AZ_ACCOUNT, "put-bytes", "x", "y")
    assert "ENOENT" in err and "HTTP 404 ContainerNotFound" in err, err
    down = "azblob://%s/caps?endpoint=http://127.0.0.1:%d/%s&key=%s" % (AZ_ACCOUNT, closed_port(), AZ_ACCOUNT,
                                                                       urllib.parse.quote(AZ_KEY, safe=""))
    err = fails(down, "get", "x")
    assert "ECONNREFUSED" in err, err
