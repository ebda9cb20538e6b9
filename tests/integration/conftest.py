# SPDX-License-Identifier: MIT
"""Fixtures for the capture integration tests. All are opt-in by name: a test
module that asks for none of them (test_merge.py) gets no namespace and needs
no root."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stack  # noqa: E402
from harness import Captures, pcapd_binary  # noqa: E402
from netns import NetPair  # noqa: E402
from pgserver import PgServer  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--db", choices=("sqlite", "postgres"), default=os.environ.get("PCAPD_TEST_DB", "sqlite"),
                     help="the controllers' database: sqlite (a file per stack) or postgres (one real "
                          "PostgreSQL 15 for the run, a database per stack); default $PCAPD_TEST_DB or sqlite")


@pytest.fixture(scope="session", autouse=True)
def database_backend(request):
    """With --db postgres: one PostgreSQL server for the whole run, from which
    every Stack takes a database of its own (stack.PG_SERVER); stopped at the
    end of the run."""
    if request.config.getoption("--db") != "postgres":
        yield "sqlite"
        return
    srv = PgServer().start()
    stack.PG_SERVER = srv
    try:
        yield "postgres"
    finally:
        stack.PG_SERVER = None
        srv.stop()


@pytest.fixture(scope="session")
def pcapd():
    """Path of the pcapd binary under test ($PCAPD_BUILD/pcapd)."""
    path = pcapd_binary()
    if not os.access(path, os.X_OK):
        pytest.fail("no pcapd binary at %s (set PCAPD_BUILD to the build directory)" % path)
    return path


@pytest.fixture(scope="module")
def net(request):
    """Two namespaces (a sends, b receives) joined by a veth pair, with a VLAN
    100 subinterface on each end; deleted at the end of the module, whatever
    happened."""
    if os.geteuid() != 0:
        pytest.fail("the capture integration tests need root (network namespaces)")
    pair = NetPair()
    request.addfinalizer(pair.destroy)
    return pair.create()


@pytest.fixture
def caps(pcapd, request):
    """Starts pcapd/tcpdump processes; whatever still runs at teardown is killed."""
    c = Captures(pcapd)
    request.addfinalizer(c.cleanup)
    return c


# --- the real object stores, once per suite (stores.py) ---------------------------------

_started = {}


@pytest.fixture(scope="session")
def radosgw():
    """Ceph radosgw (one mon, one memstore OSD) on 127.0.0.1 with a test user."""
    from stores import Radosgw
    # Other suites on this machine start their own Ceph: a port chosen free
    # may be taken before our monitor binds it, and our OSD then meets
    # another cluster's monitor ("wrong fsid") and exits. Again, on new ports.
    for attempt in range(3):
        r = Radosgw()
        try:
            r.start()
            break
        except Exception:
            r.stop()
            if attempt == 2:
                raise
    _started["radosgw"] = r.start_seconds
    yield r
    r.stop()


@pytest.fixture(scope="session")
def azurite():
    """Azurite's blob service on 127.0.0.1 (devstoreaccount1)."""
    from stores import Azurite
    a = Azurite()
    try:
        a.start()
    except Exception:
        a.stop()
        raise
    yield a
    a.stop()


def pytest_terminal_summary(terminalreporter):
    if "radosgw" in _started:
        terminalreporter.write_line("radosgw started in %.1f s (once for the suite)" % _started["radosgw"])
