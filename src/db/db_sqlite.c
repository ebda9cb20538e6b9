/* SPDX-License-Identifier: MIT */
/*
 * db.h over SQLite: connections, statements, the generic row readers
 * (db_sqlite_int.h), accounts, credentials, jobs and parts. Buckets and
 * agents are in db_sqlite_buckets_agents.c, the schema in migrations.c.
 *
 * Connections. SQLite connections are not shared between threads here: each
 * thread that calls into a Db gets its own connection (opened on first use,
 * SQLITE_OPEN_NOMUTEX since only that thread touches it; db_threads.h keeps
 * them), so readers run in parallel under WAL and no lock of ours is taken on
 * the request path.
 *
 * Statements are prepared on first use per connection and kept
 * (SQLITE_PREPARE_PERSISTENT); a call binds, steps and resets. The two lookups
 * every API request makes (db_credential_find, db_job_get) are one cached
 * statement each.
 *
 * Writes that must see a consistent state (a limited insert, a job and its
 * parts) run in BEGIN IMMEDIATE transactions: the write lock is taken before
 * the first read, so two controllers' threads (or processes) cannot both pass
 * a limit check. A busy database is waited on for 5 s (busy_timeout), then
 * -EAGAIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/db.h"
#include "db/db_backend.h"
#include "db/db_rows.h"
#include "db/db_sqlite_int.h"
#include "db/db_threads.h"
#include "db/migrations.h"

#define BUSY_TIMEOUT_MS 5000

typedef struct SqliteDb SqliteDb;

/* A part tally's columns (db_rows.h DbTallyRow), its sums capped at
 * DB_TALLY_CAP. */
#define TALLY_SUM(col) "min(total(" col "), " DB_STR(DB_TALLY_CAP) ")"
#define TALLY_COLS "state, count(*), " TALLY_SUM("packets") ", " TALLY_SUM("bytes") ", " TALLY_SUM("drops")

/* Statuses 4 and 5 (success, failed) and part states 4..7 are terminal;
 * migrations.c asserts the values. */
static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN", /* deferred: reads see one snapshot, take no write lock */
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_ACCOUNT_ENSURE] = "INSERT INTO accounts (id, created_ns) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
	[ST_ACCOUNT_EXISTS] = "SELECT 1 FROM accounts WHERE id = ?1",
	[ST_CRED_ADD] = "INSERT INTO credentials (hash, email, account, scope, created_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
	/* IS: a bearer token (email NULL) never matches a legacy key's row. */
	[ST_CRED_FIND] = "SELECT account, scope FROM credentials WHERE hash = ?1 AND email IS ?2",
	[ST_JOB_INSERT] =
		"INSERT INTO jobs (" DB_JOB_COLS ") VALUES "
		"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, "
		"?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
	[ST_JOB_GET] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = ?1 AND account = ?2",
	[ST_JOB_GET_ANY] = "SELECT " DB_JOB_COLS " FROM jobs WHERE id = ?1",
	[ST_JOB_GET_TALLY] = "SELECT " DB_JOB_TALLY_COLS " FROM jobs WHERE id = ?1",
	[ST_JOB_LIST] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = ?1 ORDER BY submitted_ns DESC, id DESC "
			"LIMIT ?2 OFFSET ?3",
	[ST_JOB_COUNT] = "SELECT count(*) FROM jobs WHERE account = ?1",
	[ST_JOB_LIST_ACTIVE] = "SELECT " DB_JOB_COLS " FROM jobs WHERE status NOT IN (4, 5) ORDER BY submitted_ns, id",
	[ST_JOB_UPDATE] = "UPDATE jobs SET status = ?3, stop_requested_ns = ?4, stop_reason = ?5, error_message = ?6, "
			  "packets = ?7, bytes = ?8, drops = ?9, finished_ns = ?10, started_ns = ?11, tally = ?12 "
			  "WHERE id = ?1 AND account = ?2",
	[ST_JOB_COUNT_ACTIVE_FULL] = "SELECT count(*) FROM jobs WHERE account = ?1 AND type = 1 "
				     "AND status NOT IN (4, 5)",
	/* When the soonest active full job reaches its time limit (NULL: none has one). */
	[ST_JOB_ACTIVE_FULL_END] = "SELECT min(submitted_ns + time_limit * 1000000000) FROM jobs "
				   "WHERE account = ?1 AND type = 1 AND status NOT IN (4, 5) AND time_limit > 0",
	[ST_JOB_LAST_SIMPLE] = "SELECT submitted_ns FROM jobs WHERE account = ?1 AND type = 0 "
			       "ORDER BY submitted_ns DESC LIMIT 1",
	/* Named captures: the NOCASE comparisons use the index jobs_by_name. */
	[ST_JOB_FIND_NAMED] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = ?1 AND name_group = ?2 COLLATE NOCASE "
			      "AND name_watcher = ?3 COLLATE NOCASE AND name = ?4 COLLATE NOCASE AND name IS NOT NULL",
	[ST_JOB_LIST_NAMED] = "SELECT " DB_JOB_COLS " FROM jobs WHERE account = ?1 AND name_group = ?2 COLLATE NOCASE "
			      "AND name_watcher = ?3 COLLATE NOCASE AND name IS NOT NULL "
			      "AND (submitted_ns < ?4 OR (submitted_ns = ?4 AND id < ?5)) "
			      "ORDER BY submitted_ns DESC, id DESC LIMIT ?6",
	[ST_JOB_UNNAME] = "UPDATE jobs SET name_group = NULL, name_watcher = NULL, name = NULL "
			  "WHERE account = ?1 AND id = ?2 AND name IS NOT NULL",
	[ST_JOB_COUNT_STATUS] = "SELECT account, status, count(*) FROM jobs GROUP BY account, status "
				"ORDER BY account, status",
	[ST_JOB_COUNT_STATUS_ACCOUNT] = "SELECT account, status, count(*) FROM jobs WHERE account = ?1 "
					"GROUP BY account, status ORDER BY account, status",
	[ST_PART_INSERT] =
		"INSERT INTO parts (" DB_PART_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[ST_PART_UPSERT] =
		"INSERT INTO parts (" DB_PART_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
		"ON CONFLICT (job_id, agent) DO UPDATE SET state = excluded.state, "
		"packets = excluded.packets, bytes = excluded.bytes, drops = excluded.drops, "
		"stop_reason = excluded.stop_reason, object = excluded.object, error = excluded.error, "
		"updated_ns = excluded.updated_ns, failure = excluded.failure, attempt = excluded.attempt",
	[ST_PART_LIST] = "SELECT " DB_PART_COLS " FROM parts WHERE job_id = ?1 ORDER BY agent",
	[ST_PART_LIST_AGENT] = "SELECT " DB_PART_COLS " FROM parts WHERE agent = ?1 AND state NOT IN (4, 5, 6, 7) "
			       "ORDER BY job_id",
	[ST_PART_GET] = "SELECT " DB_PART_COLS " FROM parts WHERE job_id = ?1 AND agent = ?2",
	[ST_PART_TALLY] = "SELECT " TALLY_COLS " FROM parts WHERE job_id = ?1 GROUP BY state",
	/* One statement, so the count and the insert cannot interleave with
	 * another connection's: nothing is inserted at ?10 buckets (0 = no limit). */
	[ST_BUCKET_INSERT] = "INSERT INTO buckets (" DB_BUCKET_COLS ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 "
			     "WHERE ?10 = 0 OR (SELECT COUNT(*) FROM buckets WHERE account = ?2) < ?10",
	[ST_BUCKET_GET] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE id = ?2 AND account = ?1",
	[ST_BUCKET_FIND] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE account = ?1 AND match_key = ?2",
	[ST_BUCKET_LIST] = "SELECT " DB_BUCKET_COLS " FROM buckets WHERE account = ?1 "
			   "ORDER BY submitted_ns DESC, id DESC",
	[ST_BUCKET_UPDATE] = "UPDATE buckets SET status = ?3, validated_ns = ?4 WHERE account = ?1 AND id = ?2",
	[ST_BUCKET_DELETE] = "DELETE FROM buckets WHERE account = ?1 AND id = ?2",
	[ST_BUCKET_OWNER] = "SELECT account FROM buckets WHERE match_key = ?2 AND account != ?1 AND status = 1 "
			    "AND NOT EXISTS (SELECT 1 FROM bucket_shares s WHERE s.bucket_id = buckets.id "
			    "AND s.account = ?1) ORDER BY validated_ns LIMIT 1",
	[ST_BUCKET_SHARE] = "INSERT INTO bucket_shares (bucket_id, account) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
	[ST_AGENT_UPSERT] = "INSERT INTO agents (" DB_AGENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
			    "ON CONFLICT (name) DO UPDATE SET colo = excluded.colo, interfaces = excluded.interfaces, "
			    "version = excluded.version, last_seen_ns = excluded.last_seen_ns, "
			    "account = excluded.account, history = coalesce(excluded.history, agents.history)",
	[ST_AGENT_LIST] = "SELECT " DB_AGENT_COLS " FROM agents ORDER BY name",
	[ST_AGENT_BEAT] = "UPDATE agents SET last_seen_ns = max(last_seen_ns, ?2), history = coalesce(?3, history) "
			  "WHERE name = ?1 AND last_seen_ns > 0",
	[ST_ENROLL_ADD] = "INSERT INTO enroll_tokens (hash, account, name_pattern, colo, expires_ns, created_ns) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_ENROLL_FIND] = "SELECT " DB_ENROLL_COLS " FROM enroll_tokens WHERE hash = ?1",
	/* Count and insert in one statement, as for buckets: nothing is
	 * inserted at ?6 agents of the account (0 = no limit; operator agents,
	 * account NULL, are not counted). */
	[ST_KEY_ADD] = "INSERT INTO agent_keys (name, hash, account, colo, enrolled_ns) SELECT ?1, ?2, ?3, ?4, ?5 "
		       "WHERE ?6 = 0 OR ?3 IS NULL OR (SELECT COUNT(*) FROM agent_keys WHERE account = ?3) < ?6",
	[ST_KEY_FIND] = "SELECT " DB_KEY_COLS " FROM agent_keys WHERE hash = ?1",
	[ST_KEY_GET] = "SELECT " DB_KEY_COLS " FROM agent_keys WHERE name = ?1",
	[ST_KEY_DELETE] = "DELETE FROM agent_keys WHERE name = ?1",
	[ST_SAMPLE_PUT] = "INSERT INTO samples (job_id, agent, pcap) VALUES (?1, ?2, ?3)",
	[ST_SAMPLE_GET] = "SELECT pcap FROM samples WHERE job_id = ?1 AND agent = ?2",
};

struct Conn {
	DbThreadConn tc;              /* first: on SqliteDb.conns */
	sqlite3 *h;                   /* used by one thread only */
	sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
};

struct SqliteDb {
	Db base; /* ops: sqlite_ops */
	char *path;
	DbThreadConns conns; /* every thread's connection */
};

/* ---- errors ---- */

/* SQLite's result code as an errno of the db.h contract. */
int dbs_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT; /* the account (or job) referred to does not exist */
	default:
		break;
	}
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
		return -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Fails with the connection's last error, naming what was being done. */
static int sql_fail(const Conn *c, const char *what, ErrBuf *err)
{
	int rc = sqlite3_extended_errcode(c->h);

	return errbuf_set(err, dbs_errno(rc), "db: %s: %s", what, sqlite3_errmsg(c->h));
}

/* ---- connections ---- */

static void conn_close(Conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close_v2(c->h);
	free(c);
}

static void conn_close_tc(DbThreadConn *tc)
{
	conn_close((Conn *)tc); /* tc is its first member */
}

static int conn_open(SqliteDb *db, int flags, Conn **ret, ErrBuf *err)
{
	Conn *c;
	int rc, r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	rc = sqlite3_open_v2(db->path, &c->h, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (!c->h) {
			r = errbuf_set(err, -ENOMEM, "db: opening %s: out of memory", db->path);
		} else {
			int e = sqlite3_system_errno(c->h);

			r = errbuf_set(err, e > 0 ? -e : dbs_errno(rc), "db: opening %s: %s", db->path,
				       sqlite3_errmsg(c->h));
		}
		goto fail;
	}
	sqlite3_extended_result_codes(c->h, 1);
	sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
	/* Per-connection settings: neither is stored in the file. */
	rc = sqlite3_exec(c->h, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = sql_fail(c, "configuring the connection", err);
		goto fail;
	}
	*ret = c;
	return 0;

fail:
	conn_close(c);
	return r;
}

/* This thread's connection, opened on first use. */
static int conn_get(Db *base, Conn **ret, ErrBuf *err)
{
	SqliteDb *db = (SqliteDb *)base; /* base is its first member */
	Conn *c = (Conn *)dbtc_get(&db->conns);
	int r;

	if (c) {
		*ret = c;
		return 0;
	}
	r = conn_open(db, SQLITE_OPEN_READWRITE, &c, err);
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

/* A cached statement of this connection, prepared on first use. */
static int stmt_get(Conn *c, StmtId id, sqlite3_stmt **ret, ErrBuf *err)
{
	if (!c->stmt[id]) {
		int rc = sqlite3_prepare_v3(c->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL);

		if (rc != SQLITE_OK) {
			c->stmt[id] = NULL;
			return sql_fail(c, "preparing a statement", err);
		}
	}
	*ret = c->stmt[id];
	return 0;
}

/* This thread's connection and one of its statements. */
int dbs_prep(Db *db, StmtId id, Conn **ret_c, sqlite3_stmt **ret_st, ErrBuf *err)
{
	Conn *c;
	int r;

	r = conn_get(db, &c, err);
	if (r < 0)
		return r;
	r = stmt_get(c, id, ret_st, err);
	if (r < 0)
		return r;
	*ret_c = c;
	return 0;
}

/* Ready for the next call; bindings may point into the caller's memory. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* A bind failed: fails as sql_fail and leaves the statement ready. */
int dbs_bind_fail(Conn *c, sqlite3_stmt *st, const char *what, ErrBuf *err)
{
	int r = sql_fail(c, what, err);

	stmt_done(st);
	return r;
}

/* Runs a statement that returns no row (after binding). */
int dbs_stmt_exec(Conn *c, sqlite3_stmt *st, const char *what, ErrBuf *err)
{
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : sql_fail(c, what, err);

	stmt_done(st);
	return r;
}

/* dbs_stmt_exec of an UPDATE or DELETE meant for one row: -ENOENT ("db: no
 * <name> <key>") when it matched none. */
int dbs_exec_one(Conn *c, sqlite3_stmt *st, const char *what, const char *name, const char *key, ErrBuf *err)
{
	int r = dbs_stmt_exec(c, st, what, err);

	if (r < 0)
		return r;
	if (sqlite3_changes(c->h) == 0)
		return errbuf_set(err, -ENOENT, "db: no %s %s", name, key ? key : "(null)");
	return 0;
}

static int tx_run(Conn *c, StmtId id, const char *what, ErrBuf *err)
{
	sqlite3_stmt *st = NULL;
	int r = stmt_get(c, id, &st, err);

	return r < 0 ? r : dbs_stmt_exec(c, st, what, err);
}

static int tx_begin(Conn *c, ErrBuf *err)
{
	return tx_run(c, ST_BEGIN, "starting a transaction", err);
}

static int tx_commit(Conn *c, ErrBuf *err)
{
	return tx_run(c, ST_COMMIT, "committing", err);
}

static void tx_rollback(Conn *c)
{
	/* Harmless when SQLite already rolled back (e.g. after SQLITE_FULL). */
	if (sqlite3_get_autocommit(c->h))
		return;
	tx_run(c, ST_ROLLBACK, "rolling back", NULL);
}

/* A transaction's end: commits after r == 0, rolls back otherwise; r or the
 * commit's error. */
static int tx_end(Conn *c, int r, ErrBuf *err)
{
	if (r == 0)
		r = tx_commit(c, err);
	if (r < 0)
		tx_rollback(c);
	return r;
}

/* ---- binding and reading ---- */

/* NULL binds SQL NULL. The text must outlive the step (it is the caller's). */
int dbs_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	/* Counters stay far below 2^63; a larger value is stored clamped rather
	 * than wrapping to a negative number. */
	return sqlite3_bind_int64(st, i, v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

/* DbRow over a stepped statement (db_rows.h). */
static const char *row_text(const DbRow *r, int i, size_t *ret_len, int *ret_r)
{
	sqlite3_stmt *st = r->src;
	const unsigned char *s = sqlite3_column_text(st, i);

	if (!s) {
		if (sqlite3_column_type(st, i) != SQLITE_NULL)
			*ret_r = -ENOMEM;
		return NULL;
	}
	*ret_len = (size_t)sqlite3_column_bytes(st, i);
	return (const char *)s;
}

static int row_i64(const DbRow *r, int i, int64_t *ret)
{
	*ret = sqlite3_column_int64(r->src, i);
	return 0;
}

static DbRow row_of(sqlite3_stmt *st)
{
	return (DbRow){.text = row_text, .i64 = row_i64, .src = st};
}

/* Steps a bound statement to its one row and reads it; -ENOENT naming key
 * when there is none. Leaves the statement ready. */
int dbs_get_row(Conn *c, sqlite3_stmt *st, const RowKind *k, const char *key, void *ret, ErrBuf *err)
{
	DbRow row = row_of(st);
	int r, rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		r = errbuf_set(err, -ENOENT, "db: no %s %s", k->name, key ? key : "(null)");
	else if (rc != SQLITE_ROW)
		r = sql_fail(c, k->reading, err);
	else if ((r = k->read(&row, ret)) < 0)
		r = dbr_row_fail(r, k->a_name, err);
	stmt_done(st);
	return r;
}

/* Collects every row of a bound statement into a new array (NULL when
 * empty). Leaves the statement ready. */
int dbs_list_rows(Conn *c, sqlite3_stmt *st, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err)
{
	DbRow row = row_of(st);
	void *v = NULL;
	size_t n = 0, cap = 0;
	int r, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
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
	if (rc != SQLITE_DONE) {
		r = sql_fail(c, k->listing, err);
		goto fail;
	}
	stmt_done(st);
	*ret = v;
	*ret_n = n;
	return 0;

fail:
	stmt_done(st);
	k->free_all(v, n);
	return r;
}

/* dbs_list_rows of statement id with key bound as ?1. */
int dbs_list_by_key(Db *db, StmtId id, const char *key, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, id, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, key))
		return dbs_bind_fail(c, st, k->binding, err);
	return dbs_list_rows(c, st, k, ret, ret_n, err);
}

/* ---- open and close ---- */

static const DbOps sqlite_ops;
static void dbs_close(Db *base);

static int dbs_open(const char *path, Db **ret, ErrBuf *err)
{
	SqliteDb *db;
	Conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int fd, r, rc;

	if (!path || !*path)
		return errbuf_set(err, -EINVAL, "db: no database path");
	if (!sqlite3_threadsafe())
		return errbuf_set(err, -ENOTSUP, "db: this SQLite library is built without thread support");
	/* Create the file ourselves: it holds credential hashes, so no one
	 * else may read it (SQLite gives its -wal and -shm the same mode). */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errbuf_errno(err, "db: opening %s", path);
	/* It also holds the keys of registered buckets: a file made by an
	 * older version with a looser mode is tightened. */
	if (fchmod(fd, 0600) < 0) {
		r = errbuf_errno(err, "db: chmod 0600 %s", path);
		close(fd);
		return r;
	}
	close(fd);

	db = calloc(1, sizeof(*db));
	if (!db)
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	db->path = strdup(path);
	if (!db->path) {
		free(db);
		return errbuf_set(err, -ENOMEM, "db: out of memory");
	}
	r = dbtc_init(&db->conns, conn_close_tc, err);
	if (r < 0) {
		free(db->path);
		free(db);
		return r;
	}

	db->base.ops = &sqlite_ops;
	r = conn_get(&db->base, &c, err);
	if (r < 0)
		goto fail;
	/* WAL is stored in the file: readers never wait for the writer. */
	rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = sql_fail(c, "switching to WAL", err);
		goto fail;
	}
	if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		r = errbuf_set(err, -ENOTSUP, "db: %s: the file system does not support SQLite's WAL mode", path);
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	r = db_migrate(c->h, err);
	if (r < 0)
		goto fail;
	*ret = &db->base;
	return 0;

fail:
	sqlite3_finalize(st);
	dbs_close(&db->base);
	return r;
}

static void dbs_close(Db *base)
{
	SqliteDb *db = (SqliteDb *)base;

	if (!db)
		return;
	dbtc_done(&db->conns);
	free(db->path);
	free(db);
}

/* ---- accounts and credentials ---- */

static int dbs_account_ensure(Db *db, const char *account, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (!account || !*account)
		return errbuf_set(err, -EINVAL, "db: empty account id");
	r = dbs_prep(db, ST_ACCOUNT_ENSURE, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || sqlite3_bind_int64(st, 2, (sqlite3_int64)now_realtime_ns()))
		return dbs_bind_fail(c, st, "binding an account", err);
	return dbs_stmt_exec(c, st, "storing an account", err);
}

static bool dbs_account_exists(Db *db, const char *account)
{
	Conn *c;
	sqlite3_stmt *st;
	bool found;

	if (!account || dbs_prep(db, ST_ACCOUNT_EXISTS, &c, &st, NULL) < 0)
		return false;
	found = dbs_bind_text(st, 1, account) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
	stmt_done(st);
	return found;
}

static int dbs_credential_add(Db *db, const uint8_t hash[32], const char *email, const char *account, TokenScope scope,
			      ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (scope < SCOPE_READ || scope > SCOPE_AGENT)
		return errbuf_set(err, -EINVAL, "db: invalid token scope %d", (int)scope);
	if (!account || (email && !*email))
		return errbuf_set(err, -EINVAL, "db: a credential needs an account (and a non-empty email, if any)");
	r = dbs_prep(db, ST_CRED_ADD, &c, &st, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC) || dbs_bind_text(st, 2, email) ||
	    dbs_bind_text(st, 3, account) || sqlite3_bind_int(st, 4, (int)scope) ||
	    sqlite3_bind_int64(st, 5, (sqlite3_int64)now_realtime_ns()))
		return dbs_bind_fail(c, st, "binding a credential", err);
	r = dbs_stmt_exec(c, st, "storing a credential", err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: this credential exists already");
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", account);
	return r;
}

static int dbs_credential_find(Db *db, const uint8_t hash[32], const char *email, char ret_account[JOB_ID_LEN + 1],
			       TokenScope *ret_scope, ErrBuf *err)
{
	char account[JOB_ID_LEN + 1];
	DbRow row;
	Conn *c;
	sqlite3_stmt *st;
	int r, rc, scope;

	r = dbs_prep(db, ST_CRED_FIND, &c, &st, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC) || dbs_bind_text(st, 2, email)) {
		r = sql_fail(c, "binding a credential", err);
		goto done;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = errbuf_set(err, -ENOENT, "db: unknown credential");
		goto done;
	}
	if (rc != SQLITE_ROW) {
		r = sql_fail(c, "looking up a credential", err);
		goto done;
	}
	row = row_of(st);
	r = dbr_fixed(&row, 0, account, sizeof(account));
	if (r < 0) {
		r = dbr_row_fail(r, "a credential", err);
		goto done;
	}
	scope = sqlite3_column_int(st, 1);
	memcpy(ret_account, account, sizeof(account));
	*ret_scope = (TokenScope)scope;
	r = 0;
done:
	stmt_done(st);
	return r;
}

/* ---- jobs ---- */

/* outputs: j's outputs as job_outputs_to_text() wrote them (NULL: none). */
static int bind_job(sqlite3_stmt *st, const Job *j, const char *outputs)
{
	const JobContinuous *c = &j->continuous;

	return dbs_bind_text(st, 1, j->id) || dbs_bind_text(st, 2, j->account) ||
	       sqlite3_bind_int(st, 3, (int)j->type) || sqlite3_bind_int(st, 4, (int)j->status) ||
	       dbs_bind_text(st, 5, j->filter_json) || sqlite3_bind_int64(st, 6, j->time_limit_s) ||
	       sqlite3_bind_int64(st, 7, j->packet_limit) || bind_u64(st, 8, j->byte_limit) ||
	       dbs_bind_text(st, 9, j->colo_name) || dbs_bind_text(st, 10, outputs) ||
	       sqlite3_bind_int64(st, 11, j->offset_time_ns) || sqlite3_bind_int64(st, 12, j->submitted_ns) ||
	       sqlite3_bind_int64(st, 13, j->stop_requested_ns) || sqlite3_bind_int(st, 14, (int)j->stop_reason) ||
	       dbs_bind_text(st, 15, j->error_message) || bind_u64(st, 16, j->packets) || bind_u64(st, 17, j->bytes) ||
	       bind_u64(st, 18, j->drops) || sqlite3_bind_int64(st, 19, j->finished_ns) ||
	       dbs_bind_text(st, 20, j->filter_model) || sqlite3_bind_int64(st, 21, j->snaplen) ||
	       sqlite3_bind_int(st, 22, c->on ? (c->ring ? 2 : 1) : 0) || sqlite3_bind_int64(st, 23, c->file_count) ||
	       bind_u64(st, 24, c->file_size) || sqlite3_bind_int64(st, 25, c->session_limit_s) ||
	       sqlite3_bind_int64(st, 26, j->started_ns) || dbs_bind_text(st, 27, j->name.group) ||
	       dbs_bind_text(st, 28, j->name.watcher) || dbs_bind_text(st, 29, j->name.name) ||
	       dbs_bind_text(st, 30, j->request) || dbs_bind_text(st, 31, j->echo_json);
}

static int bind_part(sqlite3_stmt *st, const JobPart *p)
{
	return dbs_bind_text(st, 1, p->job_id) || dbs_bind_text(st, 2, p->agent) ||
	       sqlite3_bind_int(st, 3, (int)p->state) || bind_u64(st, 4, p->packets) || bind_u64(st, 5, p->bytes) ||
	       bind_u64(st, 6, p->drops) || sqlite3_bind_int(st, 7, (int)p->stop_reason) ||
	       dbs_bind_text(st, 8, p->object) || dbs_bind_text(st, 9, p->error) ||
	       sqlite3_bind_int64(st, 10, p->updated_ns) || sqlite3_bind_int(st, 11, (int)p->failure) ||
	       sqlite3_bind_int64(st, 12, (int64_t)p->attempt);
}

/* Runs a one-row, one-integer query bound to the account; *ret_found false
 * when it returns no row. */
static int query_i64(Conn *c, StmtId id, const char *account, const char *what, bool *ret_found, int64_t *ret,
		     ErrBuf *err)
{
	sqlite3_stmt *st;
	int r, rc;

	r = stmt_get(c, id, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account)) {
		r = sql_fail(c, what, err);
		goto done;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		*ret_found = true;
		r = 0;
	} else if (rc == SQLITE_DONE) {
		*ret_found = false;
		r = 0;
	} else {
		r = sql_fail(c, what, err);
	}
done:
	stmt_done(st);
	return r;
}

/* dbr_check_limits's queries, on this connection. */
static int limit_query(void *ctx, DbLimitQuery q, const char *account, bool *ret_found, int64_t *ret, ErrBuf *err)
{
	static const struct {
		StmtId id;
		const char *what;
	} qs[] = {
		[DB_LQ_ACTIVE_FULL] = {ST_JOB_COUNT_ACTIVE_FULL, "counting active captures"},
		[DB_LQ_ACTIVE_FULL_END] = {ST_JOB_ACTIVE_FULL_END, "finding when active captures end"},
		[DB_LQ_LAST_SIMPLE] = {ST_JOB_LAST_SIMPLE, "finding the last sample capture"},
	};

	return query_i64(ctx, qs[q].id, account, qs[q].what, ret_found, ret, err);
}

/* Inserts (or with upsert, writes) parts of job j inside a transaction. */
static int write_parts(Conn *c, const Job *j, const JobPart *parts, size_t n, bool upsert, ErrBuf *err)
{
	sqlite3_stmt *st;
	int r;

	r = stmt_get(c, upsert ? ST_PART_UPSERT : ST_PART_INSERT, &st, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(parts[i].job_id, j->id) != 0)
			return errbuf_set(err, -EINVAL, "db: part %zu belongs to job %s, not %s", i, parts[i].job_id,
					  j->id);
		if (bind_part(st, &parts[i]))
			return dbs_bind_fail(c, st, "binding a part", err);
		r = dbs_stmt_exec(c, st, "storing a part", err);
		if (r == -EEXIST)
			return errbuf_set(err, r, "db: job %s lists agent %s twice", j->id, parts[i].agent);
		if (r < 0)
			return r;
	}
	return 0;
}

static int dbs_job_insert(Db *db, const Job *j, const JobPart *parts, size_t n, const JobLimits *lim,
			  int64_t *ret_after_ns, ErrBuf *err)
{
	int64_t after_ns = 0;
	char *outputs = NULL;
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = conn_get(db, &c, err);
	if (r < 0)
		return r;
	r = tx_begin(c, err);
	if (r < 0)
		return r;
	if (lim) {
		r = dbr_check_limits(j, lim, limit_query, c, &after_ns, err);
		if (r == -EBUSY && ret_after_ns)
			*ret_after_ns = after_ns;
		if (r < 0)
			goto rollback;
	}
	r = stmt_get(c, ST_JOB_INSERT, &st, err);
	if (r < 0)
		goto rollback;
	if (job_outputs_to_text(j, &outputs) < 0) {
		r = errbuf_set(err, -ENOMEM, "db: out of memory");
		goto rollback;
	}
	if (bind_job(st, j, outputs)) {
		r = dbs_bind_fail(c, st, "binding a job", err);
		goto rollback;
	}
	r = dbs_stmt_exec(c, st, "storing a job", err);
	if (r == -EEXIST && job_named(j))
		errbuf_set(err, r, "db: the account has a capture named %s in %s/%s already", j->name.name,
			   j->name.group, j->name.watcher);
	else if (r == -EEXIST)
		errbuf_set(err, r, "db: job %s exists already", j->id);
	else if (r == -ENOENT)
		errbuf_set(err, r, "db: account %s does not exist", j->account);
	if (r < 0)
		goto rollback;
	r = write_parts(c, j, parts, n, false, err);
	if (r < 0)
		goto rollback;
	r = tx_commit(c, err);
	if (r < 0)
		goto rollback;
	free(outputs);
	return 0;

rollback:
	tx_rollback(c);
	free(outputs);
	return r;
}

static int dbs_job_get(Db *db, const char *account, const char *id, Job *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, account ? ST_JOB_GET : ST_JOB_GET_ANY, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, id) || (account && dbs_bind_text(st, 2, account)))
		return dbs_bind_fail(c, st, "binding a job id", err);
	return dbs_get_row(c, st, &dbr_jobs, id, ret, err);
}

static sqlite3_int64 clamp_i64(size_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int dbs_job_list(Db *db, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n,
			uint64_t *ret_total, ErrBuf *err)
{
	Job *v = NULL;
	size_t n = 0;
	int64_t total = 0;
	bool found = false;
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = conn_get(db, &c, err);
	if (r < 0)
		return r;
	/* One read transaction: the page and the total count the same jobs. */
	r = tx_run(c, ST_BEGIN_READ, "starting a read", err);
	if (r < 0)
		return r;
	r = stmt_get(c, ST_JOB_LIST, &st, err);
	if (r < 0)
		goto out;
	if (dbs_bind_text(st, 1, account) || sqlite3_bind_int64(st, 2, clamp_i64(limit)) ||
	    sqlite3_bind_int64(st, 3, clamp_i64(offset))) {
		r = dbs_bind_fail(c, st, dbr_jobs.binding, err);
		goto out;
	}
	r = dbs_list_rows(c, st, &dbr_jobs, (void **)&v, &n, err);
	if (r == 0 && ret_total)
		r = query_i64(c, ST_JOB_COUNT, account, "counting jobs", &found, &total, err);
	if (r == 0)
		r = tx_commit(c, err);
out:
	if (r < 0) {
		tx_rollback(c);
		jobs_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	if (ret_total)
		*ret_total = found && total > 0 ? (uint64_t)total : 0;
	return 0;
}

static int dbs_job_list_active(Db *db, Job **ret, size_t *ret_n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_JOB_LIST_ACTIVE, &c, &st, err);
	if (r < 0)
		return r;
	return dbs_list_rows(c, st, &dbr_jobs, (void **)ret, ret_n, err);
}

/* The job's mutable fields and its parts' tally (NULL: not known). */
static int update_job(Conn *c, const Job *j, const char *tally, ErrBuf *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = stmt_get(c, ST_JOB_UPDATE, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, j->id) || dbs_bind_text(st, 2, j->account) ||
	    sqlite3_bind_int(st, 3, (int)j->status) || sqlite3_bind_int64(st, 4, j->stop_requested_ns) ||
	    sqlite3_bind_int(st, 5, (int)j->stop_reason) || dbs_bind_text(st, 6, j->error_message) ||
	    bind_u64(st, 7, j->packets) || bind_u64(st, 8, j->bytes) || bind_u64(st, 9, j->drops) ||
	    sqlite3_bind_int64(st, 10, j->finished_ns) || sqlite3_bind_int64(st, 11, j->started_ns) ||
	    dbs_bind_text(st, 12, tally))
		return dbs_bind_fail(c, st, "binding a job", err);
	return dbs_exec_one(c, st, "updating a job", "job", j->id, err);
}

/* The start of db_job_modify's and db_part_modify's transaction: this
 * thread's connection, the write lock first (no other connection changes
 * the job between this read and the caller's write), then the job (account
 * NULL: of any account). Rolled back on failure. */
static int modify_begin(Db *db, const char *account, const char *id, StmtId get, const RowKind *k, void *ret,
			Conn **ret_c, ErrBuf *err)
{
	sqlite3_stmt *st;
	Conn *c;
	int r;

	r = conn_get(db, &c, err);
	if (r < 0)
		return r;
	r = tx_begin(c, err);
	if (r < 0)
		return r;
	r = stmt_get(c, get, &st, err);
	if (r == 0 && (dbs_bind_text(st, 1, id) || (account && dbs_bind_text(st, 2, account))))
		r = dbs_bind_fail(c, st, "binding a job id", err);
	if (r == 0)
		r = dbs_get_row(c, st, k, id, ret, err);
	if (r < 0) {
		tx_rollback(c);
		return r;
	}
	*ret_c = c;
	return 0;
}

/* The end of db_job_modify's and db_part_modify's transaction: commits
 * after r == 0, rolls back otherwise; hands j over to ret_job (may be NULL)
 * on success and frees it. Returns r or the commit's error. */
static int modify_end(Conn *c, int r, Job *j, Job *ret_job, ErrBuf *err)
{
	r = tx_end(c, r, err);
	if (r == 0 && ret_job) {
		*ret_job = *j;
		memset(j, 0, sizeof(*j));
	}
	job_done(j);
	return r;
}

static int dbs_job_modify(Db *db, const char *account, const char *id, DbJobFn fn, void *arg, Job *ret_job, ErrBuf *err)
{
	JobPart *parts = NULL;
	size_t n = 0, w = 0;
	Job j = {0};
	Conn *c;
	int r;

	r = modify_begin(db, account, id, account ? ST_JOB_GET : ST_JOB_GET_ANY, &dbr_jobs, &j, &c, err);
	if (r < 0)
		return r;
	r = dbs_list_by_key(db, ST_PART_LIST, id, &dbr_parts, (void **)&parts, &n, err);
	if (r == 0)
		r = db_rows_modify(&j, parts, n, fn, arg, &w, err);
	if (r == 1) {
		/* The parts' tally is not kept here: the next db_part_modify
		 * counts them again. */
		r = update_job(c, &j, NULL, err);
		if (r == 0)
			r = write_parts(c, &j, parts, w, true, err);
	}
	parts_free(parts, n);
	return modify_end(c, r, &j, ret_job, err);
}

/* The agent's part of job id: 0, -ENOENT (none; err untouched), or an error. */
static int part_get(Conn *c, const char *id, const char *agent, JobPart *ret, ErrBuf *err)
{
	sqlite3_stmt *st;
	ErrBuf none;
	int r;

	r = stmt_get(c, ST_PART_GET, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, id) || dbs_bind_text(st, 2, agent))
		return dbs_bind_fail(c, st, "binding a part", err);
	r = dbs_get_row(c, st, &dbr_parts, agent, ret, &none);
	if (r < 0 && r != -ENOENT)
		*err = none;
	return r;
}

/* The job whose parts db_rows_part_aggregate reads. */
typedef struct PartsOf {
	Db *db;
	const char *id;
} PartsOf;

static int count_parts(void *ctx, DbTallyRow **ret, size_t *ret_n, ErrBuf *err)
{
	PartsOf *o = ctx;

	return dbs_list_by_key(o->db, ST_PART_TALLY, o->id, &dbr_tally_rows, (void **)ret, ret_n, err);
}

static int list_parts(void *ctx, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	PartsOf *o = ctx;

	return dbs_list_by_key(o->db, ST_PART_LIST, o->id, &dbr_parts, (void **)ret, ret_n, err);
}

static int dbs_part_modify(Db *db, const char *id, const char *agent, DbPartFn fn, void *arg, const DbSample *answer,
			   Job *ret_job, ErrBuf *err)
{
	PartsOf o = {.db = db, .id = id};
	JobPart part = {0}, before;
	DbJobTally jt = {0};
	char text[DB_TALLY_TEXT_MAX];
	bool found;
	Conn *c;
	int r;

	r = modify_begin(db, NULL, id, ST_JOB_GET_TALLY, &dbr_jobs_tally, &jt, &c, err);
	if (r < 0)
		return r;
	r = part_get(c, id, agent, &part, err);
	found = r == 0;
	if (r == -ENOENT)
		r = 0;
	/* What the stored tally counted of it (fn may free its strings). */
	before = (JobPart){.state = part.state, .packets = part.packets, .bytes = part.bytes, .drops = part.drops};
	/* fn has nothing to change without a part. */
	if (r == 0 && fn(&jt.j, found ? &part : NULL, arg) && found) {
		if (answer)
			r = dbs_sample_put(db, id, agent, answer->pcap, answer->n, err);
		if (r == 0)
			r = write_parts(c, &jt.j, &part, 1, true, err);
		if (r == 0)
			r = db_rows_part_aggregate(&jt, &before, &part, count_parts, list_parts, &o, err);
		if (r == 0)
			r = update_job(c, &jt.j, dbr_tally_text(&jt, text), err);
	}
	part_done(&part);
	return modify_end(c, r, &jt.j, ret_job, err);
}

/* One statement per beat, in one transaction (one controller per SQLite
 * file: a path for completeness and tests more than for speed). */
static int dbs_agent_beats(Db *db, const AgentBeat *v, size_t n, ErrBuf *err)
{
	sqlite3_stmt *st;
	Conn *c;
	int r;

	r = conn_get(db, &c, err);
	if (r < 0)
		return r;
	r = tx_begin(c, err);
	if (r < 0)
		return r;
	r = stmt_get(c, ST_AGENT_BEAT, &st, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (dbs_bind_text(st, 1, v[i].name) || sqlite3_bind_int64(st, 2, v[i].seen_ns) ||
		    dbs_bind_text(st, 3, v[i].history))
			r = dbs_bind_fail(c, st, "binding an agent's heartbeat", err);
		else
			r = dbs_stmt_exec(c, st, "storing an agent's heartbeat", err);
	}
	return tx_end(c, r, err);
}

static int dbs_job_find_named(Db *db, const char *account, const JobName *n, Job *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_JOB_FIND_NAMED, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, n->group) || dbs_bind_text(st, 3, n->watcher) ||
	    dbs_bind_text(st, 4, n->name))
		return dbs_bind_fail(c, st, "binding a capture name", err);
	return dbs_get_row(c, st, &dbr_jobs, n->name, ret, err);
}

static int dbs_job_list_named(Db *db, const char *account, const char *group, const char *watcher,
			      const JobCursor *after, size_t limit, Job **ret, size_t *ret_n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_JOB_LIST_NAMED, &c, &st, err);
	if (r < 0)
		return r;
	/* No cursor: everything before the end of time. */
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, group) || dbs_bind_text(st, 3, watcher) ||
	    sqlite3_bind_int64(st, 4, after ? after->submitted_ns : INT64_MAX) ||
	    dbs_bind_text(st, 5, after ? after->id : "~") ||
	    sqlite3_bind_int64(st, 6, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit))
		return dbs_bind_fail(c, st, dbr_jobs.binding, err);
	return dbs_list_rows(c, st, &dbr_jobs, (void **)ret, ret_n, err);
}

static int dbs_job_unname(Db *db, const char *account, const char *id, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_JOB_UNNAME, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, id))
		return dbs_bind_fail(c, st, "binding a job id", err);
	return dbs_exec_one(c, st, "removing a capture's name", "named job", id, err);
}

static int dbs_part_list(Db *db, const char *job_id, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	return dbs_list_by_key(db, ST_PART_LIST, job_id, &dbr_parts, (void **)ret, ret_n, err);
}

static int dbs_part_list_for_agent(Db *db, const char *agent, JobPart **ret, size_t *ret_n, ErrBuf *err)
{
	return dbs_list_by_key(db, ST_PART_LIST_AGENT, agent, &dbr_parts, (void **)ret, ret_n, err);
}

static int dbs_job_count_by_status(Db *db, const char *account, JobStatusCount **ret, size_t *ret_n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (account)
		return dbs_list_by_key(db, ST_JOB_COUNT_STATUS_ACCOUNT, account, &dbr_status_counts, (void **)ret,
				       ret_n, err);
	r = dbs_prep(db, ST_JOB_COUNT_STATUS, &c, &st, err);
	if (r < 0)
		return r;
	return dbs_list_rows(c, st, &dbr_status_counts, (void **)ret, ret_n, err);
}

/* ---- the backend ---- */

static const DbOps sqlite_ops = {
	.close = dbs_close,
	.account_ensure = dbs_account_ensure,
	.account_exists = dbs_account_exists,
	.credential_add = dbs_credential_add,
	.credential_find = dbs_credential_find,
	.job_insert = dbs_job_insert,
	.job_get = dbs_job_get,
	.job_list = dbs_job_list,
	.job_list_active = dbs_job_list_active,
	.job_modify = dbs_job_modify,
	.part_modify = dbs_part_modify,
	.job_find_named = dbs_job_find_named,
	.job_list_named = dbs_job_list_named,
	.job_unname = dbs_job_unname,
	.job_count_by_status = dbs_job_count_by_status,
	.part_list = dbs_part_list,
	.part_list_for_agent = dbs_part_list_for_agent,
	.bucket_insert = dbs_bucket_insert,
	.bucket_get = dbs_bucket_get,
	.bucket_find = dbs_bucket_find,
	.bucket_list = dbs_bucket_list,
	.bucket_update = dbs_bucket_update,
	.bucket_delete = dbs_bucket_delete,
	.bucket_share = dbs_bucket_share,
	.bucket_owned_elsewhere = dbs_bucket_owned_elsewhere,
	.sample_put = dbs_sample_put,
	.sample_get = dbs_sample_get,
	.agent_upsert = dbs_agent_upsert,
	.agent_beats = dbs_agent_beats,
	.agent_list = dbs_agent_list,
	.enroll_token_add = dbs_enroll_token_add,
	.enroll_token_find = dbs_enroll_token_find,
	.agent_key_add = dbs_agent_key_add,
	.agent_key_find = dbs_agent_key_find,
	.agent_key_get = dbs_agent_key_get,
	.agent_key_delete = dbs_agent_key_delete,
};

const DbBackend db_backend_sqlite = {.scheme = "sqlite", .open_db = dbs_open};
