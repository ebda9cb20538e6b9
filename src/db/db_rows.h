/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/db: what both backends share about rows. A backend hands
 * its current result row to the readers here as a DbRow (two accessors over
 * its own result type), so the column lists below, the row readers and the
 * job limits are written once and mean the same in SQLite and PostgreSQL.
 *
 * Every text copied into a fixed array is length-checked first (a longer
 * value reads as -EIO, a corrupt row); integers that do not parse are -EIO.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "db/db.h"

/* Column lists, in the order the readers below read them. */
#define DB_JOB_COLS                                                                                                    \
	"id, account, type, status, filter_json, time_limit, packet_limit, byte_limit, colo_name, outputs, "           \
	"offset_time_ns, submitted_ns, stop_requested_ns, stop_reason, error_message, packets, bytes, drops, "         \
	"finished_ns, filter_model, snaplen, continuous, file_count, file_size, session_limit, started_ns, "           \
	"name_group, name_watcher, name, request, echo_json"
#define DB_JOB_NCOLS 31 /* the columns of DB_JOB_COLS */
/* A job and its parts' tally (dbr_jobs_tally). */
#define DB_JOB_TALLY_COLS DB_JOB_COLS ", tally"
#define DB_PART_COLS                                                                                                   \
	"job_id, agent, state, packets, bytes, drops, stop_reason, object, error, updated_ns, failure, attempt"
#define DB_BUCKET_COLS                                                                                                 \
	"id, account, destination_conf, filename, challenge, status, submitted_ns, validated_ns, match_key"
#define DB_AGENT_COLS "name, colo, interfaces, version, first_seen_ns, last_seen_ns, account, history"
/* A job's parts counted by state (db_part_modify): state, count, then the
 * sums of packets, bytes and drops, each capped at DB_TALLY_CAP by the
 * query (SQLite's sum() fails on overflow, PostgreSQL's is numeric). */
#define DB_TALLY_CAP 9007199254740992 /* 2^53: exact in a double */
#define DB_STR_(x) #x
#define DB_STR(x) DB_STR_(x)
#define DB_ENROLL_COLS "account, name_pattern, colo, expires_ns"
#define DB_KEY_COLS "name, account, colo, enrolled_ns"

typedef struct DbRow DbRow;

/* A backend's current row. */
struct DbRow {
	/* Column i: its text and length (not NUL-terminated necessarily past
	 * *ret_len), NULL for SQL NULL; -ENOMEM in *ret_r when a non-NULL value
	 * could not be had. */
	const char *(*text)(const DbRow *r, int i, size_t *ret_len, int *ret_r);
	/* Column i as an integer (SQL NULL: 0): 0 or -EIO. */
	int (*i64)(const DbRow *r, int i, int64_t *ret);
	void *src; /* the backend's statement or result */
	int row;   /* which row of src, where the backend needs it */
};

/* A text column into a fixed array (-EIO if it does not fit; NULL: ""). */
int dbr_fixed(const DbRow *r, int i, char *out, size_t cap);
/* A nullable text column as a new string (NULL for SQL NULL); -ENOMEM. */
int dbr_dup(const DbRow *r, int i, char **ret);

/* One kind of row (jobs, parts, buckets, agents, ...) for the backends'
 * generic readers; the strings name it in their messages. */
typedef struct RowKind {
	size_t size;                            /* of one element */
	int (*read)(const DbRow *r, void *ret); /* the current row: 0, -ENOMEM or -EIO (does not fit) */
	void (*free_all)(void *v, size_t n);    /* n elements and the array (NULL: nothing owned) */
	const char *name;                       /* "job": "db: no job <key>" */
	const char *a_name;                     /* "a job": a row that cannot be read */
	const char *reading;                    /* "reading a job": a get's database error */
	const char *listing;                    /* "listing jobs": a list's database error */
	const char *binding;                    /* "binding a job list": a list's bind error */
} RowKind;

extern const RowKind dbr_jobs;          /* DB_JOB_COLS → Job */
extern const RowKind dbr_parts;         /* DB_PART_COLS → JobPart */
extern const RowKind dbr_buckets;       /* DB_BUCKET_COLS → BucketRow */
extern const RowKind dbr_agents;        /* DB_AGENT_COLS → AgentRow */
extern const RowKind dbr_enroll_tokens; /* DB_ENROLL_COLS → EnrollToken */
extern const RowKind dbr_agent_keys;    /* DB_KEY_COLS → AgentKey */
extern const RowKind dbr_owners;        /* one account column → char[JOB_ID_LEN + 1] */
extern const RowKind dbr_status_counts; /* (account, status, count) → JobStatusCount */
extern const RowKind dbr_tally_rows;    /* (state, count, packets, bytes, drops) → DbTallyRow */

typedef struct DbTallyRow {
	int64_t state, count, packets, bytes, drops;
} DbTallyRow;

/* A job with the tally of its parts as stored in its row (jobs.tally,
 * schema 9): known only while every writer of the job's parts since kept it
 * (db_part_modify keeps it; db_job_insert and db_job_modify leave NULL, and
 * the next db_part_modify counts the parts again), and while its sums are
 * below DB_TALLY_CAP. */
typedef struct DbJobTally {
	Job j;
	bool known;
	PartTally t;
} DbJobTally;
extern const RowKind dbr_jobs_tally; /* DB_JOB_TALLY_COLS → DbJobTally */
#define DB_TALLY_TEXT_MAX 256
/* jobs.tally's text for jt (11 numbers), or NULL when it is not known. */
const char *dbr_tally_text(const DbJobTally *jt, char out[DB_TALLY_TEXT_MAX]);

/* "db: reading <what>: ..." for a row reader's -ENOMEM or -EIO. */
int dbr_row_fail(int r, const char *what, ErrBuf *err);

/* Grows a result array by one element; *cap doubles. 0 or -ENOMEM. */
int dbr_grow(void **v, size_t elem, size_t n, size_t *cap);

/* The queries db_job_insert's limits need, each bound to the account and
 * returning at most one integer. */
typedef enum DbLimitQuery {
	DB_LQ_ACTIVE_FULL,     /* how many full jobs are not terminal */
	DB_LQ_ACTIVE_FULL_END, /* when the soonest of them reaches its time limit (NULL/0: none has one) */
	DB_LQ_LAST_SIMPLE,     /* when the account's newest simple job was submitted (no row: none) */
} DbLimitQuery;

typedef int (*DbLimitQueryFn)(void *ctx, DbLimitQuery q, const char *account, bool *ret_found, int64_t *ret,
			      ErrBuf *err);

/* db_job_insert's limits (db.h), asked of the database through query inside
 * the caller's transaction: 0, -EBUSY with *ret_after_ns, or query's error. */
int dbr_check_limits(const Job *j, const JobLimits *lim, DbLimitQueryFn query, void *ctx, int64_t *ret_after_ns,
		     ErrBuf *err);

/* The middle of both backends' job_modify, between reading the job and its
 * parts and writing them back in the same transaction: runs fn on them.
 * 1 when fn changed something, with parts[0..*ret_n) the parts to write (the
 * changed ones, moved first: one agent's report to a job of 1,000 agents
 * writes one row); 0 when nothing changed; -ENOMEM with err. */
int db_rows_modify(Job *j, JobPart *parts, size_t n, DbJobFn fn, void *arg, size_t *ret_n, ErrBuf *err);

/* db_part_modify's middle, shared: after the part changed from before to
 * after (as written), jt's tally follows it when known; else it is counted
 * again from the tally rows, read by count_fn in the same transaction. Then
 * the job is aggregated from the tally (job_aggregate_tally) or, where that
 * does not suffice, from every part, read by list_fn. 0, or the error of
 * count_fn or list_fn. */
typedef int (*DbTallyCountFn)(void *ctx, DbTallyRow **ret, size_t *ret_n, ErrBuf *err);
typedef int (*DbPartListFn)(void *ctx, JobPart **ret, size_t *ret_n, ErrBuf *err);
int db_rows_part_aggregate(DbJobTally *jt, const JobPart *before, const JobPart *after, DbTallyCountFn count_fn,
			   DbPartListFn list_fn, void *ctx, ErrBuf *err);
