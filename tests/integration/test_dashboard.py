# SPDX-License-Identifier: MIT
"""What the controller does for the web dashboard, over real HTTP and HTTPS
(the dashboard itself is driven in a browser by tests/web):

  - GET …/accounts/{account}/tokens/verify: Cloudflare's token check with
    pcapd's scope, and every refusal in the API's order (route, credentials,
    account, scope);
  - the dashboard's files at / on both listeners, with their security
    headers, revalidation, HEAD, 405 for other methods, and the API's paths
    left alone.
"""

import os
import re

import pytest

from stack import Stack, random_id

VERIFY = "/client/v4/accounts/%s/tokens/verify"


@pytest.fixture(scope="module")
def stk(request):
    """A controller over HTTP and HTTPS; no agent is needed."""
    if os.geteuid() != 0:
        pytest.fail("the dashboard tests need root (the stack's certificate and data directory)")
    s = Stack(tls=True)
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    return s.start()


def error_of(r, status, code):
    assert r.status == status, r
    j = r.json
    assert j["success"] is False and j["errors"][0]["code"] == code, j
    assert r.header("x-should-retry") == "false", r.headers
    return j["errors"][0]["message"]


@pytest.mark.parametrize("https", [False, True])
def test_verify_tells_the_scope(stk, https):
    acct = stk.account()
    for token, scope in ((acct.write, "write"), (acct.read, "read")):
        r = stk.request("GET", VERIFY % acct.id, token=token, https=https)
        assert r.status == 200, r
        j = r.json
        assert j["success"] is True and j["errors"] == [], j
        res = j["result"]
        assert res["status"] == "active" and res["scope"] == scope and res["account"] == acct.id, res
        assert re.fullmatch(r"[0-9a-f]{32}", res["id"]), res
        assert token not in r.body.decode()
    # Two tokens, two ids; the same token, the same id; the legacy key works too.
    ids = {stk.request("GET", VERIFY % acct.id, token=t).json["result"]["id"] for t in (acct.write, acct.read, acct.write)}
    assert len(ids) == 2
    r = stk.request("GET", VERIFY % acct.id, headers={"X-Auth-Email": acct.email, "X-Auth-Key": acct.key})
    assert r.status == 200 and r.json["result"]["scope"] == "write", r
    # Capitals in the account id: the account as stored comes back.
    r = stk.request("GET", VERIFY % acct.id.upper(), token=acct.read)
    assert r.status == 200 and r.json["result"]["account"] == acct.id, r
    # Without the /client/v4 prefix, as the SDK sends it with a bare host.
    r = stk.request("GET", "/accounts/%s/tokens/verify" % acct.id, token=acct.read)
    assert r.status == 200, r


def test_verify_refusals(stk):
    acct = stk.account()
    other = stk.account()
    assert "no credentials" in error_of(stk.request("GET", VERIFY % acct.id), 401, 10000)
    assert "invalid credentials" in error_of(stk.request("GET", VERIFY % acct.id, token="pcapd_nope"), 401, 10000)
    assert "another account" in error_of(stk.request("GET", VERIFY % acct.id, token=other.write), 403, 10000)
    agent = stk.agent_token
    msg = error_of(stk.request("GET", VERIFY % acct.id, token=agent), 403, 10000)
    assert "agent protocol" in msg, msg
    r = stk.request("POST", VERIFY % acct.id, token=acct.write, body={})
    assert "takes GET" in error_of(r, 405, 7001)
    assert r.header("allow") == "GET"
    for path in ("/client/v4/accounts/%s/tokens" % acct.id, "/client/v4/accounts/%s/tokens/verify/x" % acct.id,
                 "/client/v4/accounts/%s/tokens/" % acct.id, "/client/v4/accounts/%s/other" % acct.id):
        error_of(stk.request("GET", path, token=acct.write), 404, 7003)
    # The route comes first, then the credentials: an unknown account is a 403
    # for a valid token (not a way to probe accounts).
    error_of(stk.request("GET", VERIFY % random_id(), token=acct.write), 403, 10000)


SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_secure(r):
    csp = r.header("content-security-policy") or ""
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "unsafe" not in csp, csp
    for k, v in SECURITY.items():
        assert r.header(k) == v, (k, r.headers)


@pytest.mark.parametrize("https", [False, True])
def test_dashboard_files(stk, https):
    r = stk.request("GET", "/", https=https)
    assert r.status == 200, r
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert b'<script type="module" src="/js/app.js"></script>' in r.body
    assert_secure(r)
    etag = r.header("etag")
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag), etag
    assert r.header("cache-control") == "no-cache"
    again = stk.request("GET", "/index.html", https=https)
    assert again.body == r.body and again.header("etag") == etag
    # Revalidation: same tag, nothing sent again.
    r304 = stk.request("GET", "/", headers={"If-None-Match": etag}, https=https)
    assert r304.status == 304 and r304.body == b"", r304
    assert_secure(r304)
    js = stk.request("GET", "/js/app.js", https=https)
    assert js.status == 200 and js.header("content-type") == "text/javascript; charset=utf-8"
    bounds = stk.request("GET", "/js/bounds.js", https=https)
    assert b"time_limit: Object.freeze({ min: 1, max: 300 })" in bounds.body, bounds
    head = stk.request("HEAD", "/app.css", https=https)
    assert head.status == 200 and head.body == b"" and head.header("content-type") == "text/css; charset=utf-8"


def test_dashboard_leaves_the_api_alone(stk):
    r = stk.request("POST", "/", body={})
    assert r.status == 405 and r.header("allow") == "GET, HEAD", r
    assert_secure(r)
    # Not a dashboard file: the API's own 404 envelope.
    for path in ("/client/v4/", "/client/v4/index.html", "/nothing.js", "/js/", "/index.html/x"):
        error_of(stk.request("GET", path), 404, 7003)
    assert stk.request("GET", "/healthz").body == b"ok"
