/* SPDX-License-Identifier: MIT */
/*
 * db.h over PostgreSQL (libpq): connections, statements, errors and the row
 * plumbing of db_pg_int.h. The operations are in db_pg_ops.c, the schema in
 * db_pg_schema.c.
 *
 * URL: a libpq URI, postgres://... or postgresql://... (e.g.
 * postgres:///pcapd?host=/run/postgresql&user=pcapd for a Unix socket), given
 * to libpq as it is.
 *
 * Connections. As in the SQLite backend, each thread that calls into a Db
 * gets its own connection (opened on first use; db_threads.h keeps them), so
 * requests never wait for one another in this process and no lock of ours is
 * on the request path.
 * Statements are prepared per connection on first use. A connection that
 * broke (the server restarted) is reset on its thread's next call, which
 * prepares its statements again; the call that saw it break fails (-EIO).
 *
 * Several writers. Other controllers write the same database, so nothing
 * here relies on one writer: a limit is checked and applied in a transaction
 * that first locks the account's row (SELECT ... FOR NO KEY UPDATE), so two
 * inserts for one account, from any process, run one after the other and the
 * second sees the first (READ COMMITTED: each statement sees what committed
 * before it started, and the lock is taken before the counting statement).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_backend.h"
#include "db/db_pg_int.h"
#include "db/db_threads.h"

typedef struct PgDb PgDb;

struct PgConn {
	DbThreadConn tc;              /* first: on PgDb.conns */
	PGconn *h;                    /* used by one thread only */
	bool prepared[PG_STMT_COUNT]; /* on this session of h */
};

struct PgDb {
	Db base;             /* ops: the PostgreSQL DbOps (db_pg_ops.c) */
	char *url;           /* the libpq URI */
	DbThreadConns conns; /* every thread's connection */
};

/* ---- errors ---- */

int dbp_errno(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (!st || strlen(st) != 5)
		return -EIO;
	if (strcmp(st, "23505") == 0) /* unique_violation */
		return -EEXIST;
	if (strcmp(st, "23503") == 0) /* foreign_key_violation: the account (or job) referred to does not exist */
		return -ENOENT;
	if (strncmp(st, "23", 2) == 0 || strncmp(st, "22", 2) == 0) /* other constraints, bad data */
		return -EINVAL;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return -EAGAIN; /* serialization failure, deadlock, lock not available */
	if (strcmp(st, "53100") == 0)
		return -ENOSPC;
	if (strcmp(st, "53200") == 0)
		return -ENOMEM;
	if (strcmp(st, "25006") == 0)
		return -EROFS;
	return -EIO;
}

/* libpq's message, without its trailing newline, into a bounded copy. */
static const char *msg_of(const char *m, char *buf, size_t cap)
{
	size_t n;

	if (!m || !*m)
		return "unknown error";
	n = strnlen(m, cap - 1);
	memcpy(buf, m, n);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\t')
			buf[i] = ' ';
	return buf;
}

static int res_fail(const PgConn *c, const PGresult *res, const char *what, ErrBuf *err)
{
	char buf[200];
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (!m)
		m = PQerrorMessage(c->h);
	return errbuf_set(err, dbp_errno(res), "db: %s: %s", what, msg_of(m, buf, sizeof(buf)));
}

/* ---- parameters ---- */

static void param(PgParams *p, const char *v, int len, int fmt)
{
	if (p->n >= PG_PARAMS_MAX) {
		p->overflow = true;
		return;
	}
	p->v[p->n] = v;
	p->len[p->n] = len;
	p->fmt[p->n] = fmt;
	p->n++;
}

void dbp_text(PgParams *p, const char *s)
{
	param(p, s, 0, 0);
}

void dbp_i64(PgParams *p, int64_t v)
{
	if (p->n >= PG_PARAMS_MAX) {
		p->overflow = true;
		return;
	}
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)v);
	param(p, p->num[p->n], 0, 0);
}

void dbp_u64(PgParams *p, uint64_t v)
{
	/* Counters stay far below 2^63; a larger value is stored clamped rather
	 * than wrapping to a negative number. */
	dbp_i64(p, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

void dbp_hash(PgParams *p, const uint8_t hash[32])
{
	param(p, (const char *)hash, 32, 1);
}

void dbp_bytes(PgParams *p, const uint8_t *v, int n)
{
	param(p, n ? (const char *)v : "", n, 1);
}

/* ---- connections ---- */

static void ignore_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static void conn_close(PgConn *c)
{
	if (!c)
		return;
	PQfinish(c->h);
	free(c);
}

static void conn_close_tc(DbThreadConn *tc)
{
	conn_close((PgConn *)tc); /* tc is its first member */
}

static int conn_open(PgDb *db, PgConn **ret, ErrBuf *err)
{
	char buf[200];
	PgConn *c;

	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	c->h = PQconnectdb(db->url);
	if (!c->h) {
		free(c);
		return errbuf_set(err, -ENOMEM, "db: connecting to PostgreSQL: out of memory");
	}
	if (PQstatus(c->h) != CONNECTION_OK) {
		int r = errbuf_set(err, -ECONNREFUSED, "db: connecting to PostgreSQL: %s",
				   msg_of(PQerrorMessage(c->h), buf, sizeof(buf)));

		conn_close(c);
		return r;
	}
	PQsetNoticeProcessor(c->h, ignore_notice, NULL);
	*ret = c;
	return 0;
}

int dbp_conn(Db *base, PgConn **ret, ErrBuf *err)
{
	PgDb *db = (PgDb *)base; /* base is its first member */
	PgConn *c = (PgConn *)dbtc_get(&db->conns);
	int r;

	if (c) {
		if (PQstatus(c->h) != CONNECTION_OK) {
			char buf[200];

			/* The server went away: a new session, whose statements
			 * are not prepared yet. */
			PQreset(c->h);
			memset(c->prepared, 0, sizeof(c->prepared));
			if (PQstatus(c->h) != CONNECTION_OK)
				return errbuf_set(err, -ECONNREFUSED, "db: reconnecting to PostgreSQL: %s",
						  msg_of(PQerrorMessage(c->h), buf, sizeof(buf)));
		}
		*ret = c;
		return 0;
	}
	r = conn_open(db, &c, err);
	if (r < 0)
		return r;
	r = dbtc_add(&db->conns, &c->tc, err);
	if (r < 0) {
		conn_close(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* ---- statements ---- */

static int prepare(PgConn *c, PgStmtId id, ErrBuf *err)
{
	char name[32];
	PGresult *res;
	int r = 0;

	if (c->prepared[id])
		return 0;
	snprintf(name, sizeof(name), "pcapd_%d", (int)id);
	res = PQprepare(c->h, name, dbp_stmt_sql[id], 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = res_fail(c, res, "preparing a statement", err);
	else
		c->prepared[id] = true;
	PQclear(res);
	return r;
}

/* PQcmdTuples' count: "" for a statement that writes none. */
static uint64_t changed_of(PGresult *res)
{
	const char *s = PQcmdTuples(res);
	uint64_t v = 0;

	if (s && *s && parse_u64(s, strlen(s), 0, UINT64_MAX, &v) < 0)
		v = 0;
	return v;
}

int dbp_run(PgConn *c, PgStmtId id, const PgParams *p, const char *what, PGresult **ret, uint64_t *ret_changed,
	    ErrBuf *err)
{
	static const PgParams none;
	char name[32];
	PGresult *res;
	ExecStatusType st;
	int r;

	if (!p)
		p = &none;
	if (p->overflow)
		return errbuf_set(err, -E2BIG, "db: %s: too many parameters", what);
	r = prepare(c, id, err);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "pcapd_%d", (int)id);
	res = PQexecPrepared(c->h, name, p->n, p->v, p->len, p->fmt, 0);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = res_fail(c, res, what, err);
		PQclear(res);
		return r;
	}
	if (ret_changed)
		*ret_changed = changed_of(res);
	if (ret)
		*ret = res;
	else
		PQclear(res);
	return 0;
}

/* After a pipeline's failure: reads what is left of it up to its sync, so
 * that the connection can leave pipeline mode. */
static void pipeline_drain(PgConn *c)
{
	for (int nulls = 0; nulls < 2;) {
		PGresult *res = PQgetResult(c->h);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_COMMAND_OK;

		if (!res) {
			/* Two NULLs in a row: nothing more will come (a broken
			 * connection); one ends a step's results. */
			nulls++;
			continue;
		}
		nulls = 0;
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			return;
	}
}

int dbp_pipeline(PgConn *c, PgStep *steps, size_t n, ErrBuf *err)
{
	static const PgParams none;
	char name[32];
	size_t sent = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		steps[i].res = NULL;
		if (steps[i].p && steps[i].p->overflow)
			return errbuf_set(err, -E2BIG, "db: %s: too many parameters", steps[i].what);
		r = prepare(c, steps[i].id, err); /* a round trip of its own, once per session */
		if (r < 0)
			return r;
	}
	if (!PQenterPipelineMode(c->h))
		return res_fail(c, NULL, "starting a pipeline", err);
	for (; sent < n; sent++) {
		const PgParams *p = steps[sent].p ? steps[sent].p : &none;

		snprintf(name, sizeof(name), "pcapd_%d", (int)steps[sent].id);
		if (!PQsendQueryPrepared(c->h, name, p->n, p->v, p->len, p->fmt, 0)) {
			r = res_fail(c, NULL, steps[sent].what, err);
			break;
		}
	}
	if (!PQpipelineSync(c->h)) {
		if (r == 0)
			r = res_fail(c, NULL, "sending a pipeline", err);
		PQexitPipelineMode(c->h);
		return r;
	}
	for (size_t i = 0; i < sent; i++) {
		PGresult *res = PQgetResult(c->h);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			steps[i].res = res;
		} else {
			if (r == 0)
				r = st == PGRES_PIPELINE_ABORTED
					    ? errbuf_set(err, -EIO, "db: %s: not run (an earlier step failed)",
							 steps[i].what)
					    : res_fail(c, res, steps[i].what, err);
			PQclear(res);
		}
		if (!res)
			break;
		res = PQgetResult(c->h); /* a step's results end with a NULL */
		if (res) {
			PQclear(res);
			if (r == 0)
				r = errbuf_set(err, -EIO, "db: %s: more than one result", steps[i].what);
			break;
		}
	}
	pipeline_drain(c);
	if (!PQexitPipelineMode(c->h) && r == 0)
		r = res_fail(c, NULL, "ending a pipeline", err);
	if (r < 0)
		for (size_t i = 0; i < n; i++) {
			PQclear(steps[i].res);
			steps[i].res = NULL;
		}
	return r;
}

int dbp_exec(Db *db, PgStmtId id, const PgParams *p, const char *what, PGresult **ret, uint64_t *ret_changed,
	     ErrBuf *err)
{
	PgConn *c;
	int r = dbp_conn(db, &c, err);

	return r < 0 ? r : dbp_run(c, id, p, what, ret, ret_changed, err);
}

int dbp_exec_one(Db *db, PgStmtId id, const PgParams *p, const char *what, const char *name, const char *key,
		 ErrBuf *err)
{
	uint64_t n = 0;
	int r = dbp_exec(db, id, p, what, NULL, &n, err);

	if (r < 0)
		return r;
	if (n == 0)
		return errbuf_set(err, -ENOENT, "db: no %s %s", name, key ? key : "(null)");
	return 0;
}

int dbp_begin(PgConn *c, ErrBuf *err)
{
	return dbp_run(c, PG_BEGIN, NULL, "starting a transaction", NULL, NULL, err);
}

int dbp_commit(PgConn *c, ErrBuf *err)
{
	return dbp_run(c, PG_COMMIT, NULL, "committing", NULL, NULL, err);
}

void dbp_rollback(PgConn *c)
{
	if (PQtransactionStatus(c->h) == PQTRANS_IDLE)
		return;
	dbp_run(c, PG_ROLLBACK, NULL, "rolling back", NULL, NULL, NULL);
}

/* ---- rows ---- */

/* DbRow over row r->row of a PGresult (db_rows.h). */
static const char *row_text(const DbRow *r, int i, size_t *ret_len, int *ret_r)
{
	const PGresult *res = r->src;

	(void)ret_r;
	if (i >= PQnfields(res) || PQgetisnull(res, r->row, i))
		return NULL;
	*ret_len = (size_t)PQgetlength(res, r->row, i);
	return PQgetvalue(res, r->row, i);
}

static int row_i64(const DbRow *r, int i, int64_t *ret)
{
	const PGresult *res = r->src;
	const char *s;
	size_t n;
	uint64_t v;
	bool neg;

	if (i >= PQnfields(res) || PQgetisnull(res, r->row, i)) {
		*ret = 0;
		return 0;
	}
	s = PQgetvalue(res, r->row, i);
	n = (size_t)PQgetlength(res, r->row, i);
	neg = n > 0 && s[0] == '-';
	if (parse_u64(s + neg, n - neg, 0, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v) < 0)
		return -EIO;
	*ret = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	return 0;
}

static DbRow row_of(const PGresult *res, int row)
{
	return (DbRow){.text = row_text, .i64 = row_i64, .src = (void *)res, .row = row};
}

int dbp_get_row(Db *db, PgStmtId id, const PgParams *p, const RowKind *k, const char *key, void *ret, ErrBuf *err)
{
	PgConn *c;
	int r = dbp_conn(db, &c, err);

	return r < 0 ? r : dbp_get_row_c(c, id, p, k, key, ret, err);
}

int dbp_res_row(const PGresult *res, const RowKind *k, const char *key, void *ret, ErrBuf *err)
{
	DbRow row;
	int r;

	if (PQntuples(res) == 0)
		return errbuf_set(err, -ENOENT, "db: no %s %s", k->name, key ? key : "(null)");
	row = row_of(res, 0);
	r = k->read(&row, ret);
	return r < 0 ? dbr_row_fail(r, k->a_name, err) : 0;
}

int dbp_get_row_c(PgConn *c, PgStmtId id, const PgParams *p, const RowKind *k, const char *key, void *ret, ErrBuf *err)
{
	PGresult *res = NULL;
	int r;

	r = dbp_run(c, id, p, k->reading, &res, NULL, err);
	if (r < 0)
		return r;
	r = dbp_res_row(res, k, key, ret, err);
	PQclear(res);
	return r;
}

int dbp_list_rows_c(PgConn *c, PgStmtId id, const PgParams *p, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err)
{
	PGresult *res = NULL;
	void *v = NULL;
	size_t n = 0, cap = 0;
	int r, rows;

	r = dbp_run(c, id, p, k->listing, &res, NULL, err);
	if (r < 0)
		return r;
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		DbRow row = row_of(res, i);

		if (dbr_grow(&v, k->size, n, &cap) < 0) {
			r = errbuf_set(err, -ENOMEM, "db: out of memory");
			goto fail;
		}
		r = k->read(&row, (char *)v + n * k->size);
		if (r < 0) {
			r = dbr_row_fail(r, k->a_name, err);
			goto fail;
		}
		n++;
	}
	PQclear(res);
	*ret = v;
	*ret_n = n;
	return 0;

fail:
	PQclear(res);
	k->free_all(v, n);
	return r;
}

int dbp_list_rows(Db *db, PgStmtId id, const PgParams *p, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err)
{
	PgConn *c;
	int r = dbp_conn(db, &c, err);

	return r < 0 ? r : dbp_list_rows_c(c, id, p, k, ret, ret_n, err);
}

int dbp_query_i64(PgConn *c, PgStmtId id, const PgParams *p, const char *what, bool *ret_found, int64_t *ret,
		  ErrBuf *err)
{
	PGresult *res = NULL;
	DbRow row;
	int64_t v;
	int r;

	r = dbp_run(c, id, p, what, &res, NULL, err);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		*ret_found = false;
		PQclear(res);
		return 0;
	}
	row = row_of(res, 0);
	r = row.i64(&row, 0, &v);
	PQclear(res);
	if (r < 0)
		return errbuf_set(err, -EIO, "db: %s: not an integer", what);
	*ret = v;
	*ret_found = true;
	return 0;
}

/* ---- open and close ---- */

const char *dbp_url(Db *base)
{
	return ((PgDb *)base)->url;
}

void dbp_close(Db *base)
{
	PgDb *db = (PgDb *)base;

	if (!db)
		return;
	dbtc_done(&db->conns);
	free(db->url);
	free(db);
}

/* Checks the URI before connecting: a typo is a clear -EINVAL, not a
 * connection failure. */
static int url_check(const char *url, ErrBuf *err)
{
	char buf[200];
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(url, &msg);

	if (!o) {
		int r = errbuf_set(err, -EINVAL, "db: not a PostgreSQL URI: %s",
				   msg ? msg_of(msg, buf, sizeof(buf)) : "out of memory");

		PQfreemem(msg);
		return r;
	}
	PQconninfoFree(o);
	return 0;
}

static int dbp_open(const char *url, Db **ret, ErrBuf *err)
{
	PgDb *db;
	PgConn *c;
	int r;

	r = url_check(url, err);
	if (r < 0)
		return r;
	db = calloc(1, sizeof(*db));
	if (!db)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	db->base.ops = &dbp_ops;
	db->url = strdup(url);
	if (!db->url) {
		free(db);
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	}
	r = dbtc_init(&db->conns, conn_close_tc, err);
	if (r < 0) {
		free(db->url);
		free(db);
		return r;
	}
	r = dbp_conn(&db->base, &c, err);
	if (r == 0)
		r = dbp_migrate(c->h, err);
	if (r < 0) {
		dbp_close(&db->base);
		return r;
	}
	*ret = &db->base;
	return 0;
}

const DbBackend db_backend_postgres = {.scheme = "postgres", .target_is_url = true, .open_db = dbp_open};
const DbBackend db_backend_postgresql = {.scheme = "postgresql", .target_is_url = true, .open_db = dbp_open};
