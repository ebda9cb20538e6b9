/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/db: the seam between db.c (the db.h functions every caller
 * uses) and a backend (db_sqlite*.c, db_pg*.c). A backend is an operations
 * table, one function per db.h operation with the same arguments and the same
 * contract, and an open function for the part of the URL after its scheme.
 *
 * A backend's Db starts with `Db base` (its ops), so db.c dispatches through
 * db->ops and the backend casts db back to its own struct. Everything db.h
 * says about an operation (the -ENOENT/-EEXIST/-EBUSY/-EDQUOT contract, ret_*
 * written only on success, account scoping, "one statement" limits that hold
 * with several writers) is what each backend must provide; tests/unit/db runs
 * the same tests against each.
 */

#include "db/db.h"

typedef struct DbOps DbOps;

struct Db {
	const DbOps *ops;
};

struct DbOps {
	void (*close)(Db *db);

	int (*account_ensure)(Db *db, const char *account, ErrBuf *err);
	bool (*account_exists)(Db *db, const char *account);
	int (*credential_add)(Db *db, const uint8_t hash[32], const char *email, const char *account, TokenScope scope,
			      ErrBuf *err);
	int (*credential_find)(Db *db, const uint8_t hash[32], const char *email, char ret_account[JOB_ID_LEN + 1],
			       TokenScope *ret_scope, ErrBuf *err);

	int (*job_insert)(Db *db, const Job *j, const JobPart *parts, size_t n, const JobLimits *lim,
			  int64_t *ret_after_ns, ErrBuf *err);
	int (*job_get)(Db *db, const char *account, const char *id, Job *ret, ErrBuf *err);
	int (*job_list)(Db *db, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n,
			uint64_t *ret_total, ErrBuf *err);
	int (*job_list_active)(Db *db, Job **ret, size_t *ret_n, ErrBuf *err);
	int (*job_modify)(Db *db, const char *account, const char *id, DbJobFn fn, void *arg, Job *ret_job,
			  ErrBuf *err);
	int (*part_modify)(Db *db, const char *id, const char *agent, DbPartFn fn, void *arg, const DbSample *answer,
			   Job *ret_job, ErrBuf *err);
	int (*job_find_named)(Db *db, const char *account, const JobName *n, Job *ret, ErrBuf *err);
	int (*job_list_named)(Db *db, const char *account, const char *group, const char *watcher,
			      const JobCursor *after, size_t limit, Job **ret, size_t *ret_n, ErrBuf *err);
	int (*job_unname)(Db *db, const char *account, const char *id, ErrBuf *err);
	int (*job_count_by_status)(Db *db, const char *account, JobStatusCount **ret, size_t *ret_n, ErrBuf *err);
	int (*part_list)(Db *db, const char *job_id, JobPart **ret, size_t *ret_n, ErrBuf *err);
	int (*part_list_for_agent)(Db *db, const char *agent, JobPart **ret, size_t *ret_n, ErrBuf *err);

	int (*bucket_insert)(Db *db, const BucketRow *b, size_t max_per_account, ErrBuf *err);
	int (*bucket_get)(Db *db, const char *account, const char *id, BucketRow *ret, ErrBuf *err);
	int (*bucket_find)(Db *db, const char *account, const char *destination_conf, BucketRow *ret, ErrBuf *err);
	int (*bucket_list)(Db *db, const char *account, BucketRow **ret, size_t *ret_n, ErrBuf *err);
	int (*bucket_update)(Db *db, const BucketRow *b, ErrBuf *err);
	int (*bucket_delete)(Db *db, const char *account, const char *id, ErrBuf *err);
	int (*bucket_share)(Db *db, const char *bucket_id, const char *account, ErrBuf *err);
	int (*bucket_owned_elsewhere)(Db *db, const char *account, const char *destination_conf, char *ret_owner,
				      ErrBuf *err);

	int (*sample_put)(Db *db, const char *job_id, const char *agent, const uint8_t *pcap, size_t n, ErrBuf *err);
	int (*sample_get)(Db *db, const char *job_id, const char *agent, uint8_t **ret, size_t *ret_n, ErrBuf *err);
	/* NULL in a backend without notices (db_notify does nothing,
	 * db_watch_open is -EOPNOTSUPP). */
	int (*notify)(Db *db, const char *text, ErrBuf *err);
	int (*watch_open)(Db *db, DbWatch **ret, ErrBuf *err);

	int (*agent_upsert)(Db *db, const AgentRow *a, ErrBuf *err);
	int (*agent_list)(Db *db, AgentRow **ret, size_t *ret_n, ErrBuf *err);
	int (*agent_beats)(Db *db, const AgentBeat *v, size_t n, ErrBuf *err);

	int (*enroll_token_add)(Db *db, const uint8_t hash[32], const EnrollToken *t, ErrBuf *err);
	int (*enroll_token_find)(Db *db, const uint8_t hash[32], EnrollToken *ret, ErrBuf *err);
	int (*agent_key_add)(Db *db, const uint8_t hash[32], const AgentKey *k, size_t max_per_account, ErrBuf *err);
	int (*agent_key_find)(Db *db, const uint8_t hash[32], AgentKey *ret, ErrBuf *err);
	int (*agent_key_get)(Db *db, const char *name, AgentKey *ret, ErrBuf *err);
	int (*agent_key_delete)(Db *db, const char *name, ErrBuf *err);
};

/* A backend's watch starts with `DbWatch base`, as a Db does. */
typedef struct DbWatchOps {
	void (*close)(DbWatch *w);
	int (*next)(DbWatch *w, int timeout_ms, char *ret, ErrBuf *err);
	int (*lease)(DbWatch *w, int64_t key, ErrBuf *err);
} DbWatchOps;

struct DbWatch {
	const DbWatchOps *ops;
};

/* A backend: the URL scheme it answers to and how it opens a database. */
typedef struct DbBackend {
	const char *scheme; /* "sqlite", without the colon */
	bool target_is_url; /* open_db gets the whole URL, not what follows "scheme:" */
	/* target: the URL after "scheme:" (sqlite: the path; a bare path as
	 * it is), or all of it with target_is_url (a libpq URI). */
	int (*open_db)(const char *target, Db **ret, ErrBuf *err);
} DbBackend;

extern const DbBackend db_backend_sqlite;     /* db_sqlite.c */
extern const DbBackend db_backend_postgres;   /* db_pg.c: postgres://, a libpq URI */
extern const DbBackend db_backend_postgresql; /* db_pg.c: postgresql://, the same */
