/* SPDX-License-Identifier: MIT */
/*
 * db.h's buckets, agents and sample answers over the SQLite plumbing of
 * db_sqlite.c (db_sqlite_int.h); their statements are in db_sqlite.c's table.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_rows.h"
#include "db/db_sqlite_int.h"

/* ---- buckets ---- */

int dbs_bucket_insert(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (!b->destination_conf || !b->match_key)
		return errbuf_set(err, -EINVAL, "db: a bucket needs a destination_conf and its identity");
	r = dbs_prep(db, ST_BUCKET_INSERT, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, b->id) || dbs_bind_text(st, 2, b->account) ||
	    dbs_bind_text(st, 3, b->destination_conf) || dbs_bind_text(st, 4, b->filename) ||
	    dbs_bind_text(st, 5, b->challenge) || sqlite3_bind_int(st, 6, (int)b->status) ||
	    sqlite3_bind_int64(st, 7, b->submitted_ns) || sqlite3_bind_int64(st, 8, b->validated_ns) ||
	    dbs_bind_text(st, 9, b->match_key) || sqlite3_bind_int64(st, 10, (sqlite3_int64)max_per_account))
		return dbs_bind_fail(c, st, "binding a bucket", err);
	r = dbs_stmt_exec(c, st, "storing a bucket", err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: bucket %s or its identity exists already", b->id);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", b->account);
	if (r == 0 && sqlite3_changes(sqlite3_db_handle(st)) == 0)
		return errbuf_set(err, -EDQUOT, "db: account %s has %zu buckets already", b->account, max_per_account);
	return r;
}

/* One bucket by a bound two-key statement (account, then id or URI). */
static int get_bucket(Db *db, StmtId id, const char *account, const char *key, BucketRow *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, id, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, key))
		return dbs_bind_fail(c, st, "binding a bucket lookup", err);
	return dbs_get_row(c, st, &dbr_buckets, key, ret, err);
}

int dbs_bucket_get(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err)
{
	return get_bucket(db, ST_BUCKET_GET, account, id, ret, err);
}

int dbs_bucket_find(Db *db, const char *account, const char *match_key, BucketRow *ret, ErrBuf *err)
{
	return get_bucket(db, ST_BUCKET_FIND, account, match_key, ret, err);
}

int dbs_bucket_list(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err)
{
	return dbs_list_by_key(db, ST_BUCKET_LIST, account, &dbr_buckets, (void **)ret, ret_n, err);
}

int dbs_bucket_update(Db *db, const BucketRow *b, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_BUCKET_UPDATE, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, b->account) || dbs_bind_text(st, 2, b->id) ||
	    sqlite3_bind_int(st, 3, (int)b->status) || sqlite3_bind_int64(st, 4, b->validated_ns))
		return dbs_bind_fail(c, st, "binding a bucket", err);
	return dbs_exec_one(c, st, "updating a bucket", "bucket", b->id, err);
}

int dbs_bucket_delete(Db *db, const char *account, const char *id, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_BUCKET_DELETE, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, id))
		return dbs_bind_fail(c, st, "binding a bucket", err);
	return dbs_exec_one(c, st, "deleting a bucket", "bucket", id, err);
}

int dbs_bucket_owned_elsewhere(Db *db, const char *account, const char *match_key, char *ret_owner, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_BUCKET_OWNER, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, account) || dbs_bind_text(st, 2, match_key))
		return dbs_bind_fail(c, st, "binding a bucket lookup", err);
	r = dbs_get_row(c, st, &dbr_owners, match_key, ret_owner, err);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int dbs_bucket_share(Db *db, const char *bucket_id, const char *account, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_BUCKET_SHARE, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, bucket_id) || dbs_bind_text(st, 2, account))
		return dbs_bind_fail(c, st, "binding a bucket share", err);
	r = dbs_stmt_exec(c, st, "storing a bucket share", err);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: no bucket %s or no account %s", bucket_id, account);
	return r;
}

/* ---- agents ---- */

int dbs_agent_upsert(Db *db, const AgentRow *a, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (!a->name[0])
		return errbuf_set(err, -EINVAL, "db: an agent needs a name");
	r = dbs_prep(db, ST_AGENT_UPSERT, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, a->name) || dbs_bind_text(st, 2, a->colo) || dbs_bind_text(st, 3, a->interfaces) ||
	    dbs_bind_text(st, 4, a->version) || sqlite3_bind_int64(st, 5, a->first_seen_ns) ||
	    sqlite3_bind_int64(st, 6, a->last_seen_ns) || dbs_bind_text(st, 7, a->account) ||
	    dbs_bind_text(st, 8, a->history))
		return dbs_bind_fail(c, st, "binding an agent", err);
	return dbs_stmt_exec(c, st, "storing an agent", err);
}

int dbs_agent_list(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_AGENT_LIST, &c, &st, err);
	if (r < 0)
		return r;
	return dbs_list_rows(c, st, &dbr_agents, (void **)ret, ret_n, err);
}

/* ---- sample answers ---- */

int dbs_sample_put(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (n > INT_MAX)
		return errbuf_set(err, -EFBIG, "db: a sample answer of %zu bytes", n);
	r = dbs_prep(db, ST_SAMPLE_PUT, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, job_id) || dbs_bind_text(st, 2, agent) ||
	    sqlite3_bind_blob(st, 3, n ? (const void *)pcap : "", (int)n, SQLITE_STATIC))
		return dbs_bind_fail(c, st, "binding a sample answer", err);
	r = dbs_stmt_exec(c, st, "storing a sample answer", err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: agent %s answered sample %s already", agent, job_id);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: no job %s", job_id);
	return r;
}

int dbs_sample_get(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	const void *blob;
	uint8_t *v;
	Conn *c;
	sqlite3_stmt *st;
	int r, rc, n;

	r = dbs_prep(db, ST_SAMPLE_GET, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, job_id) || dbs_bind_text(st, 2, agent))
		return dbs_bind_fail(c, st, "binding a sample answer's key", err);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = errbuf_set(err, -ENOENT, "db: no answer of agent %s to sample %s", agent, job_id);
	} else if (rc != SQLITE_ROW) {
		r = errbuf_set(err, dbs_errno(rc), "db: reading a sample answer: %s",
			       sqlite3_errmsg(sqlite3_db_handle(st)));
	} else {
		blob = sqlite3_column_blob(st, 0);
		n = sqlite3_column_bytes(st, 0);
		v = malloc(n > 0 ? (size_t)n : 1);
		if (!v) {
			r = errbuf_set(err, -ENOMEM, "db: out of memory");
		} else {
			if (n > 0)
				memcpy(v, blob, (size_t)n);
			*ret = v;
			*ret_n = (size_t)n;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}
