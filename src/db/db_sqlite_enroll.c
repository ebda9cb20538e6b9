/* SPDX-License-Identifier: MIT */
/*
 * db.h's enrolment tokens and agent keys over the SQLite plumbing of
 * db_sqlite.c (db_sqlite_int.h); their statements are in db_sqlite.c's table.
 * An empty account, pattern or colo is stored as NULL.
 */
#include <errno.h>
#include <string.h>

#include "db/db.h"
#include "db/db_rows.h"
#include "db/db_sqlite_int.h"

static const char *or_null(const char *s)
{
	return s && s[0] ? s : NULL;
}

int dbs_enroll_token_add(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_ENROLL_ADD, &c, &st, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC) || dbs_bind_text(st, 2, or_null(t->account)) ||
	    dbs_bind_text(st, 3, or_null(t->name_pattern)) || dbs_bind_text(st, 4, or_null(t->colo)) ||
	    sqlite3_bind_int64(st, 5, t->expires_ns) || sqlite3_bind_int64(st, 6, (sqlite3_int64)now_realtime_ns()))
		return dbs_bind_fail(c, st, "binding an enrolment token", err);
	r = dbs_stmt_exec(c, st, "storing an enrolment token", err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: this enrolment token exists already");
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", t->account);
	return r;
}

int dbs_enroll_token_find(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_ENROLL_FIND, &c, &st, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC))
		return dbs_bind_fail(c, st, "binding an enrolment token", err);
	return dbs_get_row(c, st, &dbr_enroll_tokens, "(by hash)", ret, err);
}

int dbs_agent_key_add(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	if (!k->name[0])
		return errbuf_set(err, -EINVAL, "db: an agent key needs a name");
	r = dbs_prep(db, ST_KEY_ADD, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, k->name) || sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC) ||
	    dbs_bind_text(st, 3, or_null(k->account)) || dbs_bind_text(st, 4, or_null(k->colo)) ||
	    sqlite3_bind_int64(st, 5, k->enrolled_ns) || sqlite3_bind_int64(st, 6, (sqlite3_int64)max_per_account))
		return dbs_bind_fail(c, st, "binding an agent key", err);
	r = dbs_stmt_exec(c, st, "storing an agent key", err);
	if (r == -EEXIST)
		return errbuf_set(err, r, "db: agent %s is enrolled already", k->name);
	if (r == -ENOENT)
		return errbuf_set(err, r, "db: account %s does not exist", k->account);
	if (r == 0 && sqlite3_changes(sqlite3_db_handle(st)) == 0)
		return errbuf_set(err, -EDQUOT, "db: account %s has %zu agents already", k->account, max_per_account);
	return r;
}

int dbs_agent_key_find(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_KEY_FIND, &c, &st, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC))
		return dbs_bind_fail(c, st, "binding an agent key", err);
	return dbs_get_row(c, st, &dbr_agent_keys, "(by hash)", ret, err);
}

int dbs_agent_key_get(Db *db, const char *name, AgentKey *ret, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_KEY_GET, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, name))
		return dbs_bind_fail(c, st, "binding an agent key", err);
	return dbs_get_row(c, st, &dbr_agent_keys, name, ret, err);
}

int dbs_agent_key_delete(Db *db, const char *name, ErrBuf *err)
{
	Conn *c;
	sqlite3_stmt *st;
	int r;

	r = dbs_prep(db, ST_KEY_DELETE, &c, &st, err);
	if (r < 0)
		return r;
	if (dbs_bind_text(st, 1, name))
		return dbs_bind_fail(c, st, "binding an agent key", err);
	return dbs_exec_one(c, st, "deleting an agent key", "agent", name, err);
}
