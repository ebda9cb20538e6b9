/* SPDX-License-Identifier: MIT */
/*
 * A continuous capture's files to an object store (ringup.h). The thread
 * takes the files in order; `next` is the file it uploads next, `removed`
 * the newest file whose object is deleted or was never made (every older
 * one is too).
 *
 * Each upload is storeup_file()'s, of a descriptor held open across it
 * (through /proc/self/fd): in a ring the capture's thread may remove the
 * file from the disk while it goes up, and the upload must not lose it then.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/backoff.h"
#include "agent/ringup.h"
#include "agent/storeup.h"
#include "bucket/bucket.h"
#include "common/log.h"
#include "httpc/httpc.h"

#define RINGUP_DELETE_TIMEOUT_MS 60000u

struct RingUp {
	RingUpConfig cfg;
	CtlClient *ctl;
	Httpc *http; /* the deletes' */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t published; /* under lock: the newest file published on this machine */
	bool closing;       /* under lock: no file comes any more */
	pthread_t thread;
	/* the thread's own */
	uint64_t next;    /* the file to upload next */
	uint64_t removed; /* objects up to this file are deleted or were never made */
	int failed;       /* files that did not reach the store, objects not deleted */
	ErrBuf last;      /* the last of those failures */
};

/* Files up to this one have left the ring (0: none). */
static uint64_t out_of_ring(const RingUp *u, uint64_t published)
{
	return u->cfg.ring && published > u->cfg.keep ? published - u->cfg.keep : 0;
}

/* File index's object in the store, for messages. */
static void object_name(const RingUp *u, uint64_t index, char *out, size_t cap)
{
	const char *object = u->cfg.out->object;

	if (!object[0] || job_file_object(object, index, out, cap) < 0)
		snprintf(out, cap, "file %llu", (unsigned long long)index);
}

static void failure(RingUp *u, const char *fmt, ...) PCAPD_PRINTF(2, 3);

/* A file or an object that failed: logged, counted, and in the share's
 * report at once (the capture goes on). */
static void failure(RingUp *u, const char *fmt, ...)
{
	AgentJob *job = u->cfg.job;
	Agent *a = job->agent;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->last.msg, sizeof(u->last.msg), fmt, ap);
	va_end(ap);
	u->failed++;
	log_warning("job %s: %s", job->spec.id, u->last.msg);
	pthread_mutex_lock(&a->lock);
	snprintf(job->rep.error, sizeof(job->rep.error), "%s", u->last.msg);
	a->report_due = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* ---- one file up ---- */

static void upload(RingUp *u, uint64_t index)
{
	AgentJob *job = u->cfg.job;
	const AgentConfig *cfg = job->agent->cfg;
	char name[NAME_MAX + 1], object[AGENTPROTO_OBJECT_MAX + 1], path[64];
	StoreUpload su = {.ctl = u->ctl,
			  .agent = cfg->name,
			  .job_id = job->spec.id,
			  .attempt = job->spec.attempt,
			  .target = u->cfg.out->target,
			  .object = object,
			  .budget_s = cfg->upload_budget_s,
			  .file = index};
	ErrBuf e = {{0}};
	uint64_t published;
	int fd, r;

	object_name(u, index, object, sizeof(object));
	if (job_file_object(u->cfg.base, index, name, sizeof(name)) < 0) {
		failure(u, "%s: the file's name is too long", object);
		return;
	}
	fd = openat(u->cfg.dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = errno;
		pthread_mutex_lock(&u->lock);
		published = u->published;
		pthread_mutex_unlock(&u->lock);
		if (r == ENOENT && index <= out_of_ring(u, published))
			return; /* it left the ring before its turn: nothing to publish */
		failure(u, "%s did not reach the store: %s/%s: %s", object, u->cfg.dir, name, strerror(r));
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = storeup_file(&su, path, &e);
	close(fd);
	if (r < 0) {
		/* The store's words first: the report's error is bounded. */
		failure(u, "%s did not reach the store: %s (kept on agent %s as %s/%s%s)", object, e.msg, cfg->name,
			u->cfg.dir, name, u->cfg.ring ? " while in the ring" : "");
		return;
	}
	if (u->cfg.spooled && unlinkat(u->cfg.dirfd, name, 0) < 0 && errno != ENOENT)
		log_warning("job %s: cannot remove %s/%s after its upload: %s", job->spec.id, u->cfg.dir, name,
			    strerror(errno));
}

/* ---- one object deleted ---- */

/* One try: the controller's grant, then the store's DELETE. -EAGAIN when
 * another try may succeed. An object that is not there (its upload failed)
 * is as good as deleted. */
static int delete_once(RingUp *u, uint64_t index, ErrBuf *err)
{
	AgentJob *job = u->cfg.job;
	AgentUploadRequest q = {.attempt = job->spec.attempt, .file = index, .remove = true};
	AgentUploadGrant g = {0};
	HttpcResponse answer = {0};
	const char *headers[2] = {0};
	int r;

	r = storeup_grant_request(u->ctl, job->agent->cfg->name, job->spec.id, &q, &g, err);
	if (r < 0)
		return r;
	if (!g.remove.url) {
		agentproto_grant_done(&g);
		return errbuf_set(err, -EPROTO, "the controller granted no delete");
	}
	if (g.remove.header[0])
		headers[0] = g.remove.header;
	HttpcRequest rq = {.method = g.remove.method,
			   .url = g.remove.url,
			   .headers = headers,
			   .timeout_ms = RINGUP_DELETE_TIMEOUT_MS};
	r = httpc_request(u->http, &rq, &answer, err);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EAGAIN;
	} else {
		if (answer.status != 404 && (answer.status < 200 || answer.status >= 300))
			r = bucket_answer_error(err, g.remove.method, g.remove.url, &answer);
		httpc_response_done(&answer);
	}
	agentproto_grant_done(&g);
	return r;
}

/* Deletes file index's object, with storeup.c's backoff and budget. */
static void delete_object(RingUp *u, uint64_t index)
{
	const AgentConfig *cfg = u->cfg.job->agent->cfg;
	uint64_t budget_ms = (uint64_t)(cfg->upload_budget_s ? cfg->upload_budget_s : STOREUP_DEFAULT_BUDGET_S) * 1000u;
	uint64_t start = now_monotonic_ns() / 1000000u;
	char object[AGENTPROTO_OBJECT_MAX + 1];
	ErrBuf e = {{0}};
	Backoff b;
	int r;

	backoff_init(&b, 250, 10000);
	object_name(u, index, object, sizeof(object));
	while ((r = delete_once(u, index, &e)) == -EAGAIN) {
		uint64_t wait = backoff_next(&b, agent_random_u32()), spent = now_monotonic_ns() / 1000000u - start;

		if (spent >= budget_ms)
			break;
		if (wait > budget_ms - spent)
			wait = budget_ms - spent;
		struct timespec ts = {.tv_sec = (time_t)(wait / 1000u), .tv_nsec = (long)(wait % 1000u) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (r < 0)
		failure(u, "%s left the ring but is still in the store: %s", object, e.msg);
}

/* Deletes the object of every file whose place a file done since has taken
 * (done: the files up to it were uploaded, or were not to be): the newest
 * file goes up before the one it pushes out is deleted, so that the store
 * never holds fewer files than the ring. */
static void evict(RingUp *u, uint64_t done)
{
	uint64_t limit = out_of_ring(u, done);

	while (u->removed < limit)
		delete_object(u, ++u->removed);
}

static void *run(void *arg)
{
	RingUp *u = arg;
	uint64_t published;
	bool closing;

	for (;;) {
		pthread_mutex_lock(&u->lock);
		while (u->next > u->published && !u->closing)
			pthread_cond_wait(&u->cond, &u->lock);
		published = u->published;
		closing = u->closing;
		pthread_mutex_unlock(&u->lock);
		if (u->next > published && closing)
			break;
		if (u->next > out_of_ring(u, published))
			upload(u, u->next);
		else if (u->removed == u->next - 1)
			u->removed = u->next; /* left the ring before its turn: never made */
		evict(u, u->next);
		u->next++;
	}
	return NULL;
}

/* ---- the interface ---- */

int ringup_start(const RingUpConfig *cfg, RingUp **ret, ErrBuf *err)
{
	Agent *a = cfg->job->agent;
	HttpcConfig hc = {0};
	RingUp *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return errbuf_set(err, -ENOMEM, "out of memory");
	u->cfg = *cfg;
	u->next = 1;
	r = ctlclient_new(&a->client_cfg, &u->ctl, err);
	if (r == 0)
		r = httpc_new(&hc, &u->http, err);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	r = -pthread_create(&u->thread, NULL, run, u);
	if (r < 0) {
		errbuf_set(err, r, "cannot start the upload thread: %s", strerror(-r));
		pthread_cond_destroy(&u->cond);
		pthread_mutex_destroy(&u->lock);
		goto fail;
	}
	*ret = u;
	return 0;
fail:
	httpc_free(u->http);
	ctlclient_free(u->ctl);
	free(u);
	return r;
}

void ringup_add(RingUp *u, uint64_t index)
{
	pthread_mutex_lock(&u->lock);
	if (index > u->published)
		u->published = index;
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

int ringup_finish(RingUp *u, ErrBuf *err)
{
	int failed;

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	u->closing = true;
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->thread, NULL);
	failed = u->failed;
	if (failed == 1)
		errbuf_set(err, -EIO, "%s", u->last.msg);
	else if (failed > 1)
		errbuf_set(err, -EIO, "%d files did not reach the store (or leave it); the last: %s", failed,
			   u->last.msg);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	httpc_free(u->http);
	ctlclient_free(u->ctl);
	free(u);
	return failed;
}
