# SPDX-License-Identifier: MIT
"""GET /metrics of a real controller with a real agent capturing real traffic
(stack.py): the separate --metrics listener without credentials, the API's
listener with a read-scope token, the text parsed by the Prometheus project's
own parser (python3-prometheus-client), and values that move after a capture
succeeds, after one fails in its upload, and after requests are answered.
"""
import http.client
import os
import re
import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack import Stack, send, udp_frames
from waits import until

AGENT = "met1"
METRICS_READY = "pcapd: metrics on "


@pytest.fixture(scope="module")
def stk(request):
    if os.geteuid() != 0:
        pytest.fail("the metrics tests need root (network namespaces, packet sockets)")
    s = Stack(tls=False, controller_args=["--grace", "3", "--agent-timeout", "10", "--sample-interval", "0",
                                          "--metrics", "127.0.0.1:0"])
    request.addfinalizer(lambda: (s.close(), s.assert_clean()))
    s.start()
    s.add_agent(AGENT, "mlab", extra_args=["--sample-rate", "1"])
    return s


def metrics_port(stk):
    line = [l for l in stk.controller.proc.lines if l.startswith(METRICS_READY)][0]
    m = re.match(r"http://127\.0\.0\.1:(\d+)/metrics$", line[len(METRICS_READY):])
    assert m, line
    return int(m.group(1))


def get(port, path="/metrics", method="GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def parse(text):
    """{(sample name, frozenset of labels): value}, through Prometheus' parser
    (which refuses malformed text), and the families' types."""
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "duplicate series %r" % (key,)
            samples[key] = s.value
    return samples, types


def scrape(stk):
    status, h, body = get(metrics_port(stk))
    assert status == 200, body
    assert h["content-type"].startswith("text/plain; version=0.0.4"), h
    return parse(body)[0]


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def start_full(stk, acct, packets, dport):
    """A full capture on AGENT ending after `packets` UDP frames to dport; its
    id once /metrics counts it running."""
    r = acct.call("POST", "", {"type": "full", "system": "magic-transit", "time_limit": 300,
                               "packet_limit": packets, "colo_name": AGENT, "destination_conf": acct.bucket,
                               "filter_v1": {"destination_port": dport}})
    assert r.status == 200, r
    until(lambda: val(scrape(stk), "pcapd_captures", account=acct.id, status="running") == 1,
          "the capture counted running")
    return r.json["result"]["id"]


def test_metrics_listener_needs_no_token(stk):
    status, h, body = get(metrics_port(stk))
    assert status == 200
    samples, types = parse(body)
    assert types["pcapd_captures"] == "gauge"
    assert types["pcapd_agent_kernel_drops"] == "counter"  # the parser drops _total from family names
    assert types["pcapd_http_request_duration_seconds"] == "histogram"
    # The agent is seen online and its recorder (--sample-rate 1) recording.
    s = until(lambda: (lambda x: x if val(x, "pcapd_agent_history_recording", agent=AGENT) == 1 else None)(
        scrape(stk)), "agent %s online and recording in /metrics" % AGENT)
    assert val(s, "pcapd_agent_online", agent=AGENT) == 1
    assert val(s, "pcapd_agents_online") >= 1
    assert val(s, "pcapd_agent_kernel_drops_total", agent=AGENT) == 0
    assert val(s, "pcapd_agent_history_drops_total", agent=AGENT) is not None
    # Only /metrics and /healthz there; GET only.
    assert get(metrics_port(stk), "/healthz")[0] == 200
    assert get(metrics_port(stk), "/accounts/x/pcaps")[0] == 404
    status, h, _ = get(metrics_port(stk), method="POST")
    assert status == 405 and h["allow"] == "GET, HEAD"


def test_api_listener_needs_a_read_token(stk):
    a, b = stk.account(), stk.account()
    assert stk.request("GET", "/metrics").status == 401
    assert stk.request("GET", "/metrics", token=stk.agent_token).status == 403
    assert stk.request("POST", "/metrics", token=a.read).status == 405
    # Each account sees its own captures only.
    for acct in (a, b):
        r = acct.call("POST", "", {"type": "simple", "system": "magic-transit", "time_limit": 1,
                                   "packet_limit": 10}, token=acct.write)
        assert r.status == 200, r
    for acct, other in ((a, b), (b, a)):
        r = stk.request("GET", "/metrics", token=acct.read)
        assert r.status == 200, r
        assert r.header("content-type").startswith("text/plain; version=0.0.4")
        text = r.body.decode()
        samples, _ = parse(text)
        assert sum(v for (n, l), v in samples.items()
                   if n == "pcapd_captures" and dict(l)["account"] == acct.id) == 1
        assert other.id not in text
        assert val(samples, "pcapd_agent_online", agent=AGENT) is not None


def test_values_move_after_a_capture(stk):
    acct = stk.account(bucket=True)
    link = stk.agents[0].link
    before = scrape(stk)
    assert val(before, "pcapd_captures", account=acct.id, status="success") is None
    route = "/accounts/{account}/pcaps"
    created0 = val(before, "pcapd_http_requests_total", route=route, method="POST", code="2xx") or 0
    pid = start_full(stk, acct, 5, 5100)
    send(link, udp_frames(link, 5, dport=5100))
    assert stk.wait_status(acct, pid)["status"] == "success"
    after = scrape(stk)
    assert val(after, "pcapd_captures", account=acct.id, status="success") == 1
    assert val(after, "pcapd_captures", account=acct.id, status="running") == 0
    assert val(after, "pcapd_http_requests_total", route=route, method="POST", code="2xx") == created0 + 1
    # The histogram agrees with the counter, and its buckets are cumulative.
    n = val(after, "pcapd_http_request_duration_seconds_count", route=route, method="POST", code="2xx")
    assert n == created0 + 1
    assert val(after, "pcapd_http_request_duration_seconds_bucket", route=route, method="POST", code="2xx",
               le="+Inf") == n
    # The GETs of wait_status are counted under the template, never the id.
    assert val(after, "pcapd_http_requests_total", route="/accounts/{account}/pcaps/{id}", method="GET",
               code="2xx") >= 1
    assert not any(pid in dict(l).get("route", "") for _, l in after)
    assert val(after, "pcapd_agent_kernel_drops_total", agent=AGENT) == 0


def test_failed_upload_counts(stk):
    acct = stk.account(bucket=True)
    link = stk.agents[0].link
    failed0 = val(scrape(stk), "pcapd_agent_parts_failed_total", agent=AGENT)
    pid = start_full(stk, acct, 3, 5101)
    # The bucket's directory becomes a file: the agent's upload cannot succeed.
    shutil.rmtree(acct.bucket_dir)
    with open(acct.bucket_dir, "w") as f:
        f.write("not a directory\n")
    send(link, udp_frames(link, 3, dport=5101))
    done = stk.wait_status(acct, pid)
    assert done["status"] == "failed", done
    after = scrape(stk)
    assert val(after, "pcapd_agent_parts_failed_total", agent=AGENT) == failed0 + 1
    assert val(after, "pcapd_captures", account=acct.id, status="failed") == 1
