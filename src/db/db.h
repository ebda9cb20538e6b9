/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The controller's state: accounts, credentials, jobs and their parts, buckets
 * and agents. One interface, several backends behind an operations table
 * (db_backend.h); db_open chooses one by the database URL:
 *   sqlite:PATH   SQLite file PATH (the default, embedded)
 *   PATH          the same, for a string that does not start with "scheme:"
 *   postgres://USER@HOST/DBNAME?...  (or postgresql://) PostgreSQL through
 *                 libpq (db_pg.c), the URI as libpq takes it, e.g.
 *                 postgres:///pcapd?host=/run/postgresql for a Unix socket
 * Every backend keeps the same schema, numbered migrations and error
 * contract; tests/unit/db runs the same tests against each.
 *
 * SQLite: one database file, WAL mode, synchronous=FULL (a committed change
 * survives SIGKILL and power loss), foreign keys on, busy timeout 5 s (the
 * `pcapd token create` process may write while the controller runs). Schema
 * changes are numbered migrations applied in order at open (PRAGMA
 * user_version), each in its own transaction; a database newer than the
 * binary is refused.
 *
 * Threads: every function may be called from any thread. Each thread gets its
 * own connection with its prepared statements (created on first use), so reads
 * run in parallel; writes serialise in SQLite. Nothing correct depends on one
 * process: limits are checked and applied in one statement or one locking
 * transaction, so several processes (controllers, `pcapd token create`) may
 * write at once.
 *
 * Error contract: 0 on success, -ENOENT when a looked-up row does not exist,
 * -EEXIST on a duplicate key, -EBUSY when a *_limited insert hits its limit,
 * other -errno (-EIO for an SQLite error) with err filled. ret_* are written
 * only on success; what they own is freed with the matching *_free/done.
 * Every query that touches jobs or buckets is scoped by account.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "model/job.h"

typedef struct Db Db;

/* Opens (creating if needed) the database at url (above) and migrates it.
 * -EINVAL for an empty url or an unknown scheme. */
int db_open(const char *url, Db **ret, ErrBuf *err);
void db_close(Db *db); /* NULL is fine; closes every thread's connection */

/* ---- accounts and credentials ---- */

typedef enum TokenScope {
	SCOPE_READ = 1,  /* list, get, download */
	SCOPE_WRITE = 2, /* also create, stop, buckets */
	SCOPE_AGENT = 3, /* the agent API only */
} TokenScope;

const char *token_scope_to_string(TokenScope s);             /* "read", "write", "agent" */
int token_scope_from_string(const char *s, TokenScope *ret); /* -EINVAL */

/* Creates the account if it does not exist (idempotent). */
int db_account_ensure(Db *db, const char *account, ErrBuf *err);
bool db_account_exists(Db *db, const char *account);

/* Stores a credential: hash = SHA-256 of the secret. email NULL: a bearer
 * token; else a legacy X-Auth-Key bound to that email. */
int db_credential_add(Db *db, const uint8_t hash[32], const char *email, const char *account, TokenScope scope,
		      ErrBuf *err);
/* Finds a credential by hash (and email for a legacy key). -ENOENT if none. */
int db_credential_find(Db *db, const uint8_t hash[32], const char *email, char ret_account[JOB_ID_LEN + 1],
		       TokenScope *ret_scope, ErrBuf *err);

/* ---- jobs ---- */

typedef struct JobLimits {
	size_t max_active_full;     /* full jobs pending or running per account; 0 = no limit */
	int64_t sample_interval_ns; /* minimum time between two simple jobs of an account; 0 = none */
} JobLimits;

/* Inserts a job and its parts in one transaction, after checking the limits
 * inside it: -EBUSY (with err saying which limit) if the account already has
 * max_active_full non-terminal full jobs (for a full job), or submitted a
 * simple job less than sample_interval_ns before j->submitted_ns. Then
 * *ret_after_ns (may be NULL) gets when the limit lets a job in (ns since the
 * epoch): the end of the sample interval, or when the soonest of the
 * account's active full jobs reaches its time limit (counted from its
 * submission; it may be past, while the job delivers its files); 0 when none
 * has a time limit. -EEXIST: a named job whose name the account already uses. */
int db_job_insert(Db *db, const Job *j, const JobPart *parts, size_t n, const JobLimits *lim, int64_t *ret_after_ns,
		  ErrBuf *err);
/* One job; account NULL matches any account (agent API). */
int db_job_get(Db *db, const char *account, const char *id, Job *ret, ErrBuf *err);
/* A page of an account's jobs, newest first: `limit` of them after skipping
 * the newest `offset`. *ret_total (may be NULL) gets how many jobs the
 * account has in all, read in the same transaction as the page. */
int db_job_list(Db *db, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n, uint64_t *ret_total,
		ErrBuf *err);
/* Every non-terminal job of every account (scheduler, reconciliation). */
int db_job_list_active(Db *db, Job **ret, size_t *ret_n, ErrBuf *err);
/* What db_job_modify lets change: the job and its parts as stored; true if
 * it changed something (then both are written back). Of the job, status,
 * stop_requested_ns, stop_reason, error_message, counters, started_ns and
 * finished_ns are written (the other fields are immutable); of each part,
 * its state, counters, stop_reason, object, error, updated_ns, failure and
 * attempt. */
typedef bool (*DbJobFn)(Job *j, JobPart *parts, size_t n, void *arg);
/* A job's read-modify-write, safe with any number of writers in any number
 * of processes: in one transaction that holds the job's row (PostgreSQL:
 * SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE, the database's write
 * lock), loads the job (account NULL: of any account) and its parts (by
 * agent name), calls fn, and when fn returns true writes the job and every
 * part back. A second writer of the same job waits
 * for the first to commit and then sees its change. fn runs inside the
 * transaction on this thread's connection: it may call db operations of a
 * single statement (db_sample_put), which then commit or roll back with the
 * change, never one that opens a transaction of its own. ret_job (may be
 * NULL) gets the job as it is afterwards. -ENOENT if there is no such job. */
int db_job_modify(Db *db, const char *account, const char *id, DbJobFn fn, void *arg, Job *ret_job, ErrBuf *err);
/* What db_part_modify lets change: one part, as stored (NULL when the job
 * has no part for that agent; fn then says why in its own arg); true if it
 * changed it. The job is read-only here. */
typedef bool (*DbPartFn)(const Job *j, JobPart *part, void *arg);
/* A sample answer stored with a db_part_modify change (db_sample_put's). */
typedef struct DbSample {
	const uint8_t *pcap;
	size_t n;
} DbSample;
/* One agent's part of a job, changed under the same row lock as
 * db_job_modify (so the two mix safely), without reading the job's other
 * parts where that can be helped: in one transaction, loads the job and the
 * agent's part, calls fn, and when fn returns true writes the part back and
 * then the job as job_aggregate makes it, from a tally of the parts while
 * that suffices (job_aggregate_tally), from all of them otherwise (the
 * answer that ends a sample). The tally is kept in the job's row, so an
 * answer reads and writes one part and the job; after db_job_insert or
 * db_job_modify (which do not keep it) the next call counts the parts with
 * one aggregate query. answer (may be NULL) is stored as the agent's sample
 * answer in the same transaction when fn changes the part, and only then
 * (with the part's write: PostgreSQL sends the writes and the COMMIT in one
 * round trip). ret_job (may be NULL) gets the job as it is afterwards.
 * -ENOENT if there is no such job; db_sample_put's errors for the answer. */
int db_part_modify(Db *db, const char *id, const char *agent, DbPartFn fn, void *arg, const DbSample *answer,
		   Job *ret_job, ErrBuf *err);
/* ---- named jobs (job.h JobName) ---- */

/* Where a list of named jobs goes on: after the job submitted at
 * submitted_ns with this id (newest first). */
typedef struct JobCursor {
	int64_t submitted_ns;
	char id[JOB_ID_LEN + 1];
} JobCursor;

/* The account's job named n (group, watcher and name compared without regard
 * to case). -ENOENT if none. */
int db_job_find_named(Db *db, const char *account, const JobName *n, Job *ret, ErrBuf *err);
/* The account's named jobs of one group and watcher, newest first, at most
 * limit, after the cursor (NULL: from the newest). */
int db_job_list_named(Db *db, const char *account, const char *group, const char *watcher, const JobCursor *after,
		      size_t limit, Job **ret, size_t *ret_n, ErrBuf *err);
/* Takes the name away from the account's job (the job stays). -ENOENT if it
 * has none. */
int db_job_unname(Db *db, const char *account, const char *id, ErrBuf *err);

/* How many jobs each account has in each status (metrics; read-only): one
 * element per (account, status) that has any, ordered by account then
 * status; account NULL counts every account. Free *ret with free(). */
typedef struct JobStatusCount {
	char account[JOB_ID_LEN + 1];
	JobStatus status;
	uint64_t count;
} JobStatusCount;
int db_job_count_by_status(Db *db, const char *account, JobStatusCount **ret, size_t *ret_n, ErrBuf *err);
/* The parts of a job, ordered by agent name. */
int db_part_list(Db *db, const char *job_id, JobPart **ret, size_t *ret_n, ErrBuf *err);
/* Every non-terminal part assigned to an agent (what it should be doing). */
int db_part_list_for_agent(Db *db, const char *agent, JobPart **ret, size_t *ret_n, ErrBuf *err);

/* ---- sample answers ----
 *
 * An agent's answer to a sample job, kept in the database so that every
 * controller over it can serve the download. At most one per (job, agent);
 * bounded by the agent protocol's body limit before it gets here. */

/* -EEXIST if this agent's answer to the job is stored already; -ENOENT if the
 * job does not exist. */
int db_sample_put(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err);
/* The stored answer as a new buffer (free() it); -ENOENT if none. */
int db_sample_get(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err);

/* ---- several processes over one database ----
 *
 * Notices: db_notify sends a short text to every process watching the
 * database (PostgreSQL NOTIFY on the channel "pcapd", delivered when the
 * sender's transaction commits; identical notices of one transaction arrive
 * once). SQLite has no such thing: one controller per SQLite database, and
 * db_notify does nothing there.
 *
 * A watch is a session of its own (its own connection, never used for
 * anything else): it receives notices and may hold a lease, an exclusive
 * lock that the database releases when the session ends, however the
 * process ended (PostgreSQL: a session-level advisory lock). */

#define DB_NOTICE_MAX 4000 /* bytes of a notice's text, NUL excluded (PostgreSQL takes < 8000) */

int db_notify(Db *db, const char *text, ErrBuf *err); /* -EINVAL over DB_NOTICE_MAX */

typedef struct DbWatch DbWatch;

/* -EOPNOTSUPP for a backend without notices (SQLite). */
int db_watch_open(Db *db, DbWatch **ret, ErrBuf *err);
void db_watch_close(DbWatch *w); /* NULL is fine; a lease it holds is released */
/* Waits up to timeout_ms for the next notice: 1 with its text in
 * ret[DB_NOTICE_MAX + 1], 0 when none came, -ECONNRESET when the session
 * broke (notices may have been missed and the lease is lost: close the watch
 * and open another). */
int db_watch_next(DbWatch *w, int timeout_ms, char *ret, ErrBuf *err);
/* Takes the lease `key` if no other session holds it: 1 held by this watch
 * (now or already), 0 held by another, -ECONNRESET as above. */
int db_watch_lease(DbWatch *w, int64_t key, ErrBuf *err);

/* ---- buckets (Cloudflare "ownership") ---- */

typedef enum BucketStatus {
	BUCKET_PENDING,
	BUCKET_SUCCESS,
	BUCKET_FAILED,
} BucketStatus;

const char *bucket_status_to_string(BucketStatus s); /* "pending", "success", "failed" */

typedef struct BucketRow {
	char id[JOB_ID_LEN + 1];
	char account[JOB_ID_LEN + 1];
	char *destination_conf; /* owned: the URI as registered (keys included) */
	char *match_key;        /* owned: the bucket's identity (bucket_uri_match_key: no credentials) */
	char *filename;         /* owned: challenge object name */
	char *challenge;        /* owned: the token written into it */
	BucketStatus status;
	int64_t submitted_ns;
	int64_t validated_ns; /* 0 = not yet */
} BucketRow;

void bucket_row_done(BucketRow *b); /* NULL is fine */
void bucket_rows_free(BucketRow *v, size_t n);

/* -EEXIST if the account already registered this identity (match_key);
 * -EDQUOT if it has max_per_account buckets already (0 = no limit; checked
 * and inserted in one statement). */
int db_bucket_insert(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err);
int db_bucket_get(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err);
int db_bucket_find(Db *db, const char *account, const char *match_key, BucketRow *ret, ErrBuf *err); /* by identity */
int db_bucket_list(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err);        /* newest first */
int db_bucket_update(Db *db, const BucketRow *b, ErrBuf *err); /* status and validated_ns */
int db_bucket_delete(Db *db, const char *account, const char *id, ErrBuf *err);
/* Lets account use bucket_id (of another account) too: db_bucket_owned_elsewhere
 * no longer counts that bucket for it. Idempotent; -ENOENT if the bucket or
 * the account does not exist. */
int db_bucket_share(Db *db, const char *bucket_id, const char *account, ErrBuf *err);
/* Whether an account other than `account` validated a bucket of this
 * identity (match_key) (and
 * did not share it with `account`):
 * 1 (ret_owner, JOB_ID_LEN + 1 bytes, gets the first such account), 0, or
 * -errno. */
int db_bucket_owned_elsewhere(Db *db, const char *account, const char *match_key, char *ret_owner, ErrBuf *err);

/* ---- agents ---- */

typedef struct AgentRow {
	char name[AGENT_NAME_MAX + 1];
	char colo[AGENT_NAME_MAX + 1];
	char *interfaces; /* owned: comma-separated */
	char *version;    /* owned */
	int64_t first_seen_ns;
	int64_t last_seen_ns;
	char *account; /* owned: the account its key serves, "" an operator's; NULL: not recorded (before version 8) */
	char *history; /* owned: its last reported history status (JSON object text), or NULL */
} AgentRow;

void agent_row_done(AgentRow *a);
void agent_rows_free(AgentRow *v, size_t n);
int db_agent_upsert(Db *db, const AgentRow *a, ErrBuf *err);           /* keeps first_seen_ns of an existing row */
int db_agent_list(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err); /* by name */
/* An agent's heartbeat (db_agent_beats). */
typedef struct AgentBeat {
	char name[AGENT_NAME_MAX + 1];
	int64_t seen_ns;
	char *history; /* its history status (JSON object text), or NULL: unchanged */
} AgentBeat;
/* Many agents' heartbeats in one statement (one round trip): each existing
 * row's last_seen_ns (never lowered) and history, when given. Several beats
 * of one agent may come together: the newest last-seen and the last history
 * given (in v's order) are kept. A row marked
 * never seen (db_agent_forget) stays so: a beat queued before the agent was
 * revoked does not bring it back; a row that does not exist is not made
 * (db_agent_upsert registers). */
int db_agent_beats(Db *db, const AgentBeat *v, size_t n, ErrBuf *err);
/* Every controller over db forgets agent `name` (a revoked key): its row
 * is marked never seen, so that no controller merges it back, and a notice
 * "<sender> forget <name>" tells those that watch (PostgreSQL; with SQLite
 * the one controller forgets it at its agent time-out). sender: the
 * caller's id in notices, which its own watch ignores. */
int db_agent_forget(Db *db, const char *sender, const char *name, ErrBuf *err);

/* ---- agent enrolment (docs/SECURITY.md) ----
 *
 * An enrolment token is exchanged by an agent for its own key, once per
 * name: the key is a secret bound to that name (and to a colo when the token
 * named one). An account's token enrols agents that serve that account only;
 * an operator's (account "") agents that serve every account. Only hashes
 * are stored. */

#define ENROLL_PATTERN_MAX 127

typedef struct EnrollToken {
	char account[JOB_ID_LEN + 1];              /* "" = operator */
	char name_pattern[ENROLL_PATTERN_MAX + 1]; /* fnmatch(3) glob; "" = any name */
	char colo[AGENT_NAME_MAX + 1];             /* "" = any colo */
	int64_t expires_ns;                        /* realtime; 0 = never */
} EnrollToken;

int db_enroll_token_add(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err);
int db_enroll_token_find(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err); /* -ENOENT */

typedef struct AgentKey {
	char name[AGENT_NAME_MAX + 1];
	char account[JOB_ID_LEN + 1];  /* "" = operator agent: serves every account */
	char colo[AGENT_NAME_MAX + 1]; /* the only colo it may report; "" = any */
	int64_t enrolled_ns;
} AgentKey;

/* -EEXIST if the name is enrolled already; -EDQUOT if the account has
 * max_per_account agents (0 = no limit; checked and inserted in one
 * statement). */
int db_agent_key_add(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err);
int db_agent_key_find(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err); /* by secret; -ENOENT */
int db_agent_key_get(Db *db, const char *name, AgentKey *ret, ErrBuf *err);        /* by name; -ENOENT */
int db_agent_key_delete(Db *db, const char *name, ErrBuf *err);                    /* -ENOENT */
