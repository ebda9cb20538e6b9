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

/* taps.c: live streams end (service_shutdown); joined and freed (service_free). */
void service_taps_stop(Service *s);
void service_taps_free(Service *s);
/* Stream orders not yet given to the agent, at most cap, now marked given;
 * and whether there are any (a poll does not park then). */
size_t service_tap_orders(Service *s, const char *agent, AgentStreamOrder *ret, size_t cap);
bool service_tap_pending(Service *s, const char *agent);

/* An ErrBuf from storage as an internal error. */
int service_internal(ApiError *e, int r, const ErrBuf *err);

/* The one spelling of a bucket URI (bucket_uri_normalize) into ret, so that
 * two spellings of one bucket register, validate and are written to as one;
 * API_ERR_INVALID ("destination") for a URI bucket.h refuses. */
int service_bucket_uri(const char *uri, char ret[BUCKET_URI_MAX + 1], ApiError *e);
