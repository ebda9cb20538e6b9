# SPDX-License-Identifier: MIT
"""One real PostgreSQL 15 (Debian's `postgresql`) for a test run: initdb into
a temporary directory as the unprivileged `postgres` user (when run as root;
else as the caller), listening on a Unix socket in that directory only
(listen_addresses=''), stopped by pg_ctl and, failing that, by the PID it
wrote. Each test module or stack gets a database of its own (create_database),
so tests stay independent while the server starts once.

Durability settings are off (fsync, synchronous_commit): the server lives as
long as the run, and a crash test of pcapd kills pcapd, not PostgreSQL.

Also a command: `pgserver.py run -- CMD...` starts a server, creates one
database, runs CMD with PCAPD_TEST_PG set to its libpq URI, stops the server
and exits with CMD's status (the PostgreSQL leg of the db unit tests).
"""

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"


class PgServer:
    def __init__(self):
        self.dir = None
        self.data = None
        self.pid = None
        self._n = itertools.count(1)
        self._user = None

    def _as_owner(self, cmd, **kw):
        """Runs cmd as the server's owner (postgres when we are root)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        if self._user is not None:
            kw["user"] = self._user.pw_uid
            kw["group"] = self._user.pw_gid
            kw["extra_groups"] = []
        return subprocess.run(cmd, cwd=self.dir, timeout=300, **kw)

    def start(self):
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise RuntimeError("PostgreSQL 15 is not installed (%s/initdb); run scripts/install-deps.sh" % PG_BIN)
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="pcapd-pg-")
        os.chmod(self.dir, 0o700)
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        try:
            r = self._as_owner([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                                "-E", "UTF8", "--no-sync"])
            if r.returncode != 0:
                raise RuntimeError("initdb: %s" % r.stdout.decode(errors="replace"))
            opts = "-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=300" \
                % self.dir
            r = self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                                os.path.join(self.dir, "log"), "-w", "-t", "120", "start"])
            if r.returncode != 0:
                raise RuntimeError("pg_ctl start: %s\n%s" % (r.stdout.decode(errors="replace"), self.log()))
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                self.pid = int(f.readline())
        except BaseException:
            self.stop()
            raise
        return self

    def log(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def uri(self, db="postgres"):
        """The libpq URI of database db, over the Unix socket."""
        return "postgres:///%s?host=%s&user=postgres" % (db, self.dir)

    def create_database(self, prefix="pcapd"):
        """A new empty database; returns its URI."""
        name = "%s_%d" % (prefix, next(self._n))
        r = subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", self.uri(), "-c",
                            'CREATE DATABASE "%s"' % name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError("CREATE DATABASE %s: %s" % (name, r.stdout.decode(errors="replace")))
        return self.uri(name)

    def stop(self):
        if self.data and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        if self.pid is not None:
            # pg_ctl failed: end the server we started, by its PID only.
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                pass
            else:
                os.kill(self.pid, signal.SIGQUIT)
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    try:
                        os.kill(self.pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.1)
            self.pid = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def main(argv):
    if len(argv) < 3 or argv[1] != "run" or argv[2] != "--":
        sys.stderr.write("usage: pgserver.py run -- CMD...\n")
        return 2
    srv = PgServer().start()
    try:
        env = dict(os.environ, PCAPD_TEST_PG=srv.create_database("unit"))
        return subprocess.run(argv[3:], env=env).returncode
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
