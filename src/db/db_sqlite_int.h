/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/db: the plumbing of the SQLite backend (db_sqlite.c), shared
 * by the files that implement the rest of db.h over it
 * (db_sqlite_buckets_agents.c, db_sqlite_enroll.c) and by migrations.c.
 *
 * Statements are numbered (StmtId); their SQL is the one table in
 * db_sqlite.c, next to the column lists. A call takes this thread's
 * connection and the statement with dbs_prep, binds, then runs it with one of
 * the functions below. Each of them follows db.h's error contract (0 or -errno
 * with err filled, "db: ..." messages) and leaves the statement reset and its
 * bindings cleared, ready for the next call.
 */

#include <sqlite3.h>
#include <stddef.h>

#include "common/util.h"
#include "db/db.h"
#include "db/db_rows.h"

typedef enum StmtId {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_ACCOUNT_ENSURE,
	ST_ACCOUNT_EXISTS,
	ST_CRED_ADD,
	ST_CRED_FIND,
	ST_JOB_INSERT,
	ST_JOB_GET,
	ST_JOB_GET_ANY,
	ST_JOB_GET_TALLY,
	ST_JOB_LIST,
	ST_JOB_COUNT,
	ST_JOB_LIST_ACTIVE,
	ST_JOB_UPDATE,
	ST_JOB_COUNT_ACTIVE_FULL,
	ST_JOB_ACTIVE_FULL_END,
	ST_JOB_LAST_SIMPLE,
	ST_JOB_FIND_NAMED,
	ST_JOB_LIST_NAMED,
	ST_JOB_UNNAME,
	ST_JOB_COUNT_STATUS,
	ST_JOB_COUNT_STATUS_ACCOUNT,
	ST_PART_INSERT,
	ST_PART_UPSERT,
	ST_PART_LIST,
	ST_PART_LIST_AGENT,
	ST_PART_GET,
	ST_PART_TALLY,
	ST_BUCKET_INSERT,
	ST_BUCKET_GET,
	ST_BUCKET_FIND,
	ST_BUCKET_LIST,
	ST_BUCKET_UPDATE,
	ST_BUCKET_DELETE,
	ST_BUCKET_OWNER,
	ST_BUCKET_SHARE,
	ST_AGENT_UPSERT,
	ST_AGENT_BEAT,
	ST_AGENT_LIST,
	ST_ENROLL_ADD,
	ST_ENROLL_FIND,
	ST_KEY_ADD,
	ST_KEY_FIND,
	ST_KEY_GET,
	ST_KEY_DELETE,
	ST_SAMPLE_PUT,
	ST_SAMPLE_GET,
	ST_COUNT,
} StmtId;

typedef struct Conn Conn; /* one thread's connection and its statements */

/* SQLite's (extended) result code as an errno of the db.h contract. */
int dbs_errno(int rc);

/* This thread's connection (opened on first use) and one of its statements. */
int dbs_prep(Db *db, StmtId id, Conn **ret_c, sqlite3_stmt **ret_st, ErrBuf *err);

/* Binds text (NULL: SQL NULL); the text must outlive the step. SQLite's code. */
int dbs_bind_text(sqlite3_stmt *st, int i, const char *s);
/* A bind failed: the connection's error, naming what. */
int dbs_bind_fail(Conn *c, sqlite3_stmt *st, const char *what, ErrBuf *err);

/* Runs a bound statement that returns no row. */
int dbs_stmt_exec(Conn *c, sqlite3_stmt *st, const char *what, ErrBuf *err);
/* dbs_stmt_exec of an UPDATE or DELETE meant for one row: -ENOENT
 * ("db: no <name> <key>") when it matched none. */
int dbs_exec_one(Conn *c, sqlite3_stmt *st, const char *what, const char *name, const char *key, ErrBuf *err);

/* The one row of a bound statement into *ret (a k->size element); -ENOENT
 * naming key when there is none. */
int dbs_get_row(Conn *c, sqlite3_stmt *st, const RowKind *k, const char *key, void *ret, ErrBuf *err);
/* Every row of a bound statement as a new array (NULL when empty). */
int dbs_list_rows(Conn *c, sqlite3_stmt *st, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err);
/* dbs_list_rows of statement id with key bound as ?1. */
int dbs_list_by_key(Db *db, StmtId id, const char *key, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err);

/* db.h operations implemented in db_sqlite_buckets_agents.c and
 * db_sqlite_enroll.c, for db_sqlite.c's ops table (db_backend.h). */
int dbs_bucket_insert(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err);
int dbs_bucket_get(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err);
int dbs_bucket_find(Db *db, const char *account, const char *destination_conf, BucketRow *ret, ErrBuf *err);
int dbs_bucket_list(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err);
int dbs_bucket_update(Db *db, const BucketRow *b, ErrBuf *err);
int dbs_bucket_delete(Db *db, const char *account, const char *id, ErrBuf *err);
int dbs_bucket_owned_elsewhere(Db *db, const char *account, const char *destination_conf, char *ret_owner, ErrBuf *err);
int dbs_bucket_share(Db *db, const char *bucket_id, const char *account, ErrBuf *err);
int dbs_sample_put(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err);
int dbs_sample_get(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err);
int dbs_agent_upsert(Db *db, const AgentRow *a, ErrBuf *err);
int dbs_agent_list(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err);
int dbs_enroll_token_add(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err);
int dbs_enroll_token_find(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err);
int dbs_agent_key_add(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err);
int dbs_agent_key_find(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err);
int dbs_agent_key_get(Db *db, const char *name, AgentKey *ret, ErrBuf *err);
int dbs_agent_key_delete(Db *db, const char *name, ErrBuf *err);
