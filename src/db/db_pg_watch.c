/* SPDX-License-Identifier: MIT */
/*
 * db.h's watch over PostgreSQL: a connection of its own that LISTENs on the
 * channel "pcapd" (db_notify's pg_notify) and may hold a lease, a
 * session-level advisory lock (pg_try_advisory_lock): the server releases it
 * when the session ends, so a controller that dies (SIGKILL, a lost host)
 * gives up its lease as soon as PostgreSQL sees its connection close.
 *
 * The connection is used by the thread that owns the watch only. A broken
 * connection is -ECONNRESET from then on: the caller opens a new watch
 * (LISTEN again, the lease taken again if free) and treats what it may have
 * missed as changed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_backend.h"
#include "db/db_pg_int.h"

typedef struct PgWatch {
	DbWatch base; /* first: db.h's handle */
	PGconn *h;
	int64_t leased; /* the lease key held; valid when holding */
	bool holding;
	bool broken;
} PgWatch;

static int broken(PgWatch *w, ErrBuf *err)
{
	char buf[160];
	const char *m = PQerrorMessage(w->h);
	size_t n = m ? strnlen(m, sizeof(buf) - 1) : 0;

	memcpy(buf, m ? m : "", n);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	w->broken = true;
	w->holding = false;
	return errbuf_set(err, -ECONNRESET, "db: the watch's connection broke: %s", n ? buf : "closed");
}

static void watch_close(DbWatch *base)
{
	PgWatch *w = (PgWatch *)base;

	PQfinish(w->h);
	free(w);
}

/* The next notice already read, if any: 1 with its text, else 0. */
static int take_notice(PgWatch *w, char *ret)
{
	PGnotify *nf = PQnotifies(w->h);

	if (!nf)
		return 0;
	snprintf(ret, DB_NOTICE_MAX + 1, "%s", nf->extra ? nf->extra : "");
	PQfreemem(nf);
	return 1;
}

static int watch_next(DbWatch *base, int timeout_ms, char *ret, ErrBuf *err)
{
	PgWatch *w = (PgWatch *)base;
	struct pollfd pfd;
	int r;

	if (w->broken || PQstatus(w->h) != CONNECTION_OK)
		return broken(w, err);
	if (take_notice(w, ret))
		return 1;
	pfd = (struct pollfd){.fd = PQsocket(w->h), .events = POLLIN};
	if (pfd.fd < 0)
		return broken(w, err);
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : errbuf_errno(err, "db: waiting for a notice");
	if (r == 0)
		return 0;
	if (!PQconsumeInput(w->h) || PQstatus(w->h) != CONNECTION_OK)
		return broken(w, err);
	return take_notice(w, ret);
}

static int watch_lease(DbWatch *base, int64_t key, ErrBuf *err)
{
	PgWatch *w = (PgWatch *)base;
	char sql[80];
	PGresult *res;
	int r;

	if (w->broken || PQstatus(w->h) != CONNECTION_OK)
		return broken(w, err);
	/* Taken once: the lock is re-entrant, and the session keeps it. */
	if (w->holding && w->leased == key)
		return 1;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)", (long long)key);
	res = PQexec(w->h, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		PQclear(res);
		return PQstatus(w->h) != CONNECTION_OK
			       ? broken(w, err)
			       : errbuf_set(err, -EIO, "db: taking the lease: %.160s", PQerrorMessage(w->h));
	}
	r = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (r) {
		w->holding = true;
		w->leased = key;
	}
	return r;
}

static const DbWatchOps pg_watch_ops = {.close = watch_close, .next = watch_next, .lease = watch_lease};

int dbp_watch_open(Db *db, DbWatch **ret, ErrBuf *err)
{
	PgWatch *w = calloc(1, sizeof(*w));
	PGresult *res;

	if (!w)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	w->base.ops = &pg_watch_ops;
	w->h = PQconnectdb(dbp_url(db));
	if (!w->h || PQstatus(w->h) != CONNECTION_OK) {
		int r = errbuf_set(err, -ECONNREFUSED, "db: connecting to PostgreSQL: %.160s",
				   w->h ? PQerrorMessage(w->h) : "out of memory");

		watch_close(&w->base);
		return r;
	}
	res = PQexec(w->h, "LISTEN pcapd");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		int r = errbuf_set(err, -EIO, "db: LISTEN: %.160s", PQerrorMessage(w->h));

		PQclear(res);
		watch_close(&w->base);
		return r;
	}
	PQclear(res);
	*ret = &w->base;
	return 0;
}
