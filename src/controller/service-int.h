/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared inside src/controller only. */

#include <pthread.h>
#include <stdatomic.h>

#include "controller/registry.h"
#include "controller/service.h"

struct Service {
	ServiceConfig cfg;
	Registry *reg;
	pthread_mutex_t jobs_lock;
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
	bool taps_stopping;
};

Db *service_db(Service *s);
const BucketConfig *service_buckets(Service *s);
/* Counts a change of some job (service_jobs_generation()). */
void service_jobs_changed(Service *s);

/* Loads a job and its parts, lets fn change them, aggregates and stores, all
 * under the service's jobs lock. fn returns true if it changed something.
 * ret_job (may be NULL) gets the job after the change. */
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

/* Removes DATA/downloads, the merge cache of earlier versions (download.c). */
void service_downloads_clean(Service *s);
/* taps.c: live streams end (service_shutdown); joined and freed (service_free). */
void service_taps_stop(Service *s);
void service_taps_free(Service *s);
/* Stream orders not yet given to the agent, at most cap, now marked given;
 * and whether there are any (a poll does not park then). */
size_t service_tap_orders(Service *s, const char *agent, AgentStreamOrder *ret, size_t cap);
bool service_tap_pending(Service *s, const char *agent);

/* An ErrBuf from storage as an internal error. */
int service_internal(ApiError *e, int r, const ErrBuf *err);

/* The one spelling of a bucket URI (bucket_uri_normalize: file:// paths in
 * lexical normal form, keys kept) into ret, and (ret_key not NULL) its
 * identity (bucket_uri_match_key: without credentials), so that two
 * spellings of one bucket register, validate and are written to as one;
 * API_ERR_INVALID ("destination") for a URI bucket.h refuses. */
int service_bucket_uri(const char *uri, char ret[BUCKET_URI_MAX + 1], char ret_key[BUCKET_URI_MAX + 1], ApiError *e);
