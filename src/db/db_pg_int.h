/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/db: the plumbing of the PostgreSQL backend (db_pg.c), used
 * by the operations (db_pg_ops.c) and the schema (db_pg_schema.c).
 *
 * Statements are numbered (PgStmtId); their SQL is the one table in
 * db_pg_ops.c. Each thread has its own connection, on which a statement is
 * prepared (PQprepare) on first use. Parameters go as text (integers
 * formatted here) or, for the 32-byte hashes, as binary bytea; results come
 * as text and are read through db_rows.h's DbRow, so every text is
 * length-checked before it is copied into a fixed buffer and every integer
 * is parsed with its range checked.
 *
 * Every function here follows db.h's error contract (0 or -errno with err
 * filled, "db: ..." messages); SQLSTATEs map to errnos in dbp_errno.
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "db/db.h"
#include "db/db_rows.h"

typedef enum PgStmtId {
	PG_BEGIN,
	PG_BEGIN_READ,
	PG_COMMIT,
	PG_ROLLBACK,
	PG_ACCOUNT_LOCK,
	PG_ACCOUNT_ENSURE,
	PG_ACCOUNT_EXISTS,
	PG_CRED_ADD,
	PG_CRED_FIND,
	PG_JOB_INSERT,
	PG_JOB_GET,
	PG_JOB_GET_ANY,
	PG_JOB_LOCK,
	PG_JOB_LOCK_ANY,
	PG_JOB_LOCK_TALLY,
	PG_JOB_LIST,
	PG_JOB_COUNT,
	PG_JOB_LIST_ACTIVE,
	PG_JOB_UPDATE,
	PG_JOB_COUNT_ACTIVE_FULL,
	PG_JOB_ACTIVE_FULL_END,
	PG_JOB_LAST_SIMPLE,
	PG_JOB_FIND_NAMED,
	PG_JOB_LIST_NAMED,
	PG_JOB_UNNAME,
	PG_JOB_COUNT_STATUS,
	PG_JOB_COUNT_STATUS_ACCOUNT,
	PG_PART_INSERT,
	PG_PART_UPSERT,
	PG_PART_LIST,
	PG_PART_LIST_AGENT,
	PG_PART_GET,
	PG_PART_TALLY,
	PG_BUCKET_INSERT,
	PG_BUCKET_GET,
	PG_BUCKET_FIND,
	PG_BUCKET_LIST,
	PG_BUCKET_UPDATE,
	PG_BUCKET_DELETE,
	PG_BUCKET_OWNER,
	PG_BUCKET_SHARE,
	PG_AGENT_UPSERT,
	PG_AGENT_BEATS,
	PG_AGENT_LIST,
	PG_ENROLL_ADD,
	PG_ENROLL_FIND,
	PG_KEY_ADD,
	PG_KEY_FIND,
	PG_KEY_GET,
	PG_KEY_DELETE,
	PG_SAMPLE_PUT,
	PG_SAMPLE_GET,
	PG_NOTIFY,
	PG_STMT_COUNT,
} PgStmtId;

/* The SQL of each statement (db_pg_ops.c). */
extern const char *const dbp_stmt_sql[PG_STMT_COUNT];

typedef struct PgConn PgConn; /* one thread's connection and its prepared statements */

#define PG_PARAMS_MAX 32

/* The parameters of one statement, $1 first. */
typedef struct PgParams {
	int n;
	bool overflow; /* more than PG_PARAMS_MAX: dbp_run refuses the statement */
	const char *v[PG_PARAMS_MAX];
	int len[PG_PARAMS_MAX];
	int fmt[PG_PARAMS_MAX]; /* 0 text, 1 binary */
	char num[PG_PARAMS_MAX][24];
} PgParams;

void dbp_text(PgParams *p, const char *s); /* NULL: SQL NULL; s must outlive the call */
void dbp_i64(PgParams *p, int64_t v);
void dbp_u64(PgParams *p, uint64_t v); /* clamped to INT64_MAX, as SQLite stores it */
void dbp_hash(PgParams *p, const uint8_t hash[32]);
void dbp_bytes(PgParams *p, const uint8_t *v, int n); /* binary bytea; v must outlive the call */

/* The calling thread's connection to db, opened on first use. */
int dbp_conn(Db *db, PgConn **ret, ErrBuf *err);

/* Runs statement id on c. ret (may be NULL) gets the result (free with
 * PQclear); ret_changed (may be NULL) how many rows it wrote. */
int dbp_run(PgConn *c, PgStmtId id, const PgParams *p, const char *what, PGresult **ret, uint64_t *ret_changed,
	    ErrBuf *err);
/* dbp_run on this thread's connection. */
int dbp_exec(Db *db, PgStmtId id, const PgParams *p, const char *what, PGresult **ret, uint64_t *ret_changed,
	     ErrBuf *err);
/* dbp_exec of an UPDATE or DELETE meant for one row: -ENOENT ("db: no
 * <name> <key>") when it matched none. */
int dbp_exec_one(Db *db, PgStmtId id, const PgParams *p, const char *what, const char *name, const char *key,
		 ErrBuf *err);

/* One statement of a pipeline (dbp_pipeline). */
typedef struct PgStep {
	PgStmtId id;
	const PgParams *p; /* NULL: no parameters */
	const char *what;  /* "reading a job": its error's words */
	PGresult *res;     /* out: its result (free with PQclear), NULL unless it ran */
} PgStep;
/* Runs steps[0..n) on c in one round trip (libpq's pipeline mode: sent
 * together, then their results read in order). 0, or the first failed
 * step's error; the steps after a failure do not run (in a transaction,
 * which is then aborted: the caller rolls back). Every step's res is set
 * (or NULL) either way. */
int dbp_pipeline(PgConn *c, PgStep *steps, size_t n, ErrBuf *err);
/* The one row of a result (a step's) into *ret, as dbp_get_row_c reads it. */
int dbp_res_row(const PGresult *res, const RowKind *k, const char *key, void *ret, ErrBuf *err);

/* Transactions on one connection. dbp_rollback is harmless outside one. */
int dbp_begin(PgConn *c, ErrBuf *err);
int dbp_commit(PgConn *c, ErrBuf *err);
void dbp_rollback(PgConn *c);

/* The one row of statement id into *ret (a k->size element); -ENOENT
 * naming key when there is none. */
int dbp_get_row(Db *db, PgStmtId id, const PgParams *p, const RowKind *k, const char *key, void *ret, ErrBuf *err);
int dbp_get_row_c(PgConn *c, PgStmtId id, const PgParams *p, const RowKind *k, const char *key, void *ret, ErrBuf *err);
/* Every row of statement id as a new array (NULL when empty). */
int dbp_list_rows_c(PgConn *c, PgStmtId id, const PgParams *p, const RowKind *k, void **ret, size_t *ret_n,
		    ErrBuf *err);
int dbp_list_rows(Db *db, PgStmtId id, const PgParams *p, const RowKind *k, void **ret, size_t *ret_n, ErrBuf *err);
/* A one-row, one-integer query: *ret_found false when it returns no row
 * (or SQL NULL). */
int dbp_query_i64(PgConn *c, PgStmtId id, const PgParams *p, const char *what, bool *ret_found, int64_t *ret,
		  ErrBuf *err);

/* Applies every migration the database lacks (db_pg_schema.c), each in its
 * own transaction under an advisory lock, so that several processes opening
 * one database migrate it once. -ENOTSUP if the database is newer. */
int dbp_migrate(PGconn *h, ErrBuf *err);
/* A watch (db.h): a connection of its own, LISTENing (db_pg_watch.c). */
int dbp_watch_open(Db *db, DbWatch **ret, ErrBuf *err);
/* The database's libpq URI. */
const char *dbp_url(Db *db);
/* Closes every connection of db (the ops table's close). */
void dbp_close(Db *db);
/* The PostgreSQL operations table (db_pg_ops.c). */
extern const struct DbOps dbp_ops;

/* A libpq result's SQLSTATE as an errno of the db.h contract. */
int dbp_errno(const PGresult *res);
