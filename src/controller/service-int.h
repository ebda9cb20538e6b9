/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared inside src/controller only. */

#include <pthread.h>
#include <stdatomic.h>

#include "controller/keycache.h"
#include "controller/registry.h"
#include "controller/service.h"

struct Service {
	ServiceConfig cfg;
	Registry *reg;
	pthread_mutex_t hk_lock;
	pthread_cond_t hk_cond;
	pthread_t hk;
	bool hk_running, stopping;
	int64_t started_mono;
	atomic_uint samples_pending;   /* sample jobs that may still wait for answers */
	atomic_uint_fast64_t jobs_gen; /* service_jobs_generation() */
	atomic_uint downloads;         /* downloads running (download.c) */
	pthread_mutex_t taps_lock;     /* taps.c: the live streams */
	Tap *taps;
	size_t n_taps;
	size_t taps_mem; /* bytes the taps' input queues hold or reserve (cfg.stream_memory) */
	bool taps_stopping;
	/* fleet.c: several controllers over one database */
	bool shared;                /* the database has notices (PostgreSQL): other controllers may use it */
	char instance[17];          /* this controller's id in notices (hex) */
	atomic_bool leader;         /* holds the housekeeping lease (always, over SQLite) */
	atomic_bool fleet_stopping; /* the fleet thread ends */
	pthread_t fleet;
	bool fleet_running;
	pthread_mutex_t beats_lock; /* heartbeats waiting for the fleet thread's round */
	AgentBeat *beats;
	size_t n_beats, cap_beats;
	size_t beats_dropped; /* since the last flush: the queue was full (FLEET_BEATS_MAX) */
	KeyCache *keys;       /* agents' keys (keycache.h), when shared; else NULL */
};

Db *service_db(Service *s);
const BucketConfig *service_buckets(Service *s);
/* Counts a change of some job (service_jobs_generation()). */
void service_jobs_changed(Service *s);

/* Loads a job and its parts, lets fn change them, aggregates and stores, all
 * in one database transaction that holds the job's row (db_job_modify), so
 * that no writer in this or another controller loses another's change. fn
 * returns true if it changed something. ret_job (may be NULL) gets the job
 * after the change. */
typedef bool (*PartsFn)(Job *j, JobPart *parts, size_t n, void *arg);
int service_update_job(Service *s, const char *account, const char *id, PartsFn fn, void *arg, Job *ret_job,
		       ErrBuf *err);

/* The account's bucket that uri names, whatever its spelling or keys
 * (its identity: bucket_uri_match_key), into *ret (free with
 * bucket_row_done). API_ERR_NOT_FOUND ("destination"), API_ERR_INVALID for a
 * bad URI. */
int service_bucket_find(Service *s, const char *account, const char *uri, BucketRow *ret, ApiError *e);

/* The signed requests q asks for part p of job j (grants.c): -EOPNOTSUPP
 * for a file:// bucket (the agent writes it), -ENOENT without a bucket. */
int service_grant_sign(Service *s, const Job *j, const JobPart *p, const AgentUploadRequest *q, AgentUploadGrant *ret,
		       ErrBuf *err);

/* Agent's answer to sample id, from the database, as a new descriptor of a
 * file of its own (memfd, at offset 0). -ENOENT if none is stored. */
int service_sample_open(Service *s, const char *id, const char *agent, int *ret_fd, ErrBuf *err);

/* Removes DATA/downloads, the merge cache of earlier versions (download.c). */
void service_downloads_clean(Service *s);
/* taps.c: live streams end (service_shutdown); joined and freed (service_free). */
void service_taps_stop(Service *s);
void service_taps_free(Service *s);
/* Stream orders not yet given to the agent, at most cap, now marked given;
 * and whether there are any (a poll does not park then). */
size_t service_tap_orders(Service *s, const char *agent, AgentStreamOrder *ret, size_t cap);
bool service_tap_pending(Service *s, const char *agent);

/* fleet.c. Agents have new work: each one's parked poll here answers at
 * service_wake_add, and (over a shared database) every other controller is
 * told to wake theirs, in as few notices as the names fit in (sent when
 * full and at service_wake_end). */
typedef struct WakeBatch {
	Service *s;
	char text[DB_NOTICE_MAX + 1];
	size_t len, prefix;
} WakeBatch;
void service_wake_begin(Service *s, WakeBatch *b);
void service_wake_add(WakeBatch *b, const char *agent);
void service_wake_end(WakeBatch *b);
/* A revoked agent: forgotten here and (over a shared database) by every
 * other controller; its poll parked here is woken. */
void service_agent_forget(Service *s, const char *name);
/* Starts the fleet thread over a shared database (notices, the housekeeping
 * lease, other controllers' agents); without one, this controller is the
 * only one and leads. Stopped by service_fleet_stop. */
int service_fleet_start(Service *s, ErrBuf *err);
void service_fleet_stop(Service *s);
/* Stores the agent's last-seen (with its account and history) when due:
 * at every hello, and over a shared database at most every few seconds
 * (registry_persist_due). */
int service_agent_persist(Service *s, const AgentKey *k, const AgentReport *rep, ErrBuf *err);

/* An ErrBuf from storage as an internal error. */
int service_internal(ApiError *e, int r, const ErrBuf *err);

/* The one spelling of a bucket URI (bucket_uri_normalize: file:// paths in
 * lexical normal form, keys kept) into ret, and (ret_key not NULL) its
 * identity (bucket_uri_match_key: without credentials), so that two
 * spellings of one bucket register, validate and are written to as one;
 * API_ERR_INVALID ("destination") for a URI bucket.h refuses. */
int service_bucket_uri(const char *uri, char ret[BUCKET_URI_MAX + 1], char ret_key[BUCKET_URI_MAX + 1], ApiError *e);
