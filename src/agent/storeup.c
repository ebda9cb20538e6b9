/* SPDX-License-Identifier: MIT */
/*
 * Uploads through grants (storeup.h). One Up per upload: the grant in hand,
 * the parts' ETags, and UP_LANES lanes, each a store client (a curl handle)
 * with its own backoff. Create, complete and abort go out on lane 0 from the
 * upload's driver (the caller's thread for a finished file; a growing one,
 * StoreStream, has a thread of its own, which polls the writer's count every
 * STREAM_POLL_MS and learns the end from storeup_stream_end()). The parts go
 * out from the workers: one thread per lane, each taking the next part that
 * is whole (part <= avail) and within UP_WINDOW of the confirmed prefix, so
 * that at most UP_LANES parts are in flight and none more than UP_WINDOW past
 * what a restart resumes from.
 *
 * Up.mu guards the grant (replaced and copied under it: a worker sends its
 * own copy of its part's request, so another's ask cannot free it), asking,
 * etags, sent, done, next, avail, n_parts, size, granted_ms, progress_ms,
 * failed and stop; Up.cv signals any change of them. StoreStream.lock guards
 * ended, size, end_ms and cancel, and whole() is called under it (so
 * storeup_stream_end() returning means whole() is done with). Lock order: mu,
 * then StoreStream.lock, never the other way. No request is made under
 * either lock: a grant is asked for with mu released and asking set (one
 * ask at a time; the others wait for its answer, not for the controller
 * under a held lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/backoff.h"
#include "agent/storeup.h"
#include "bucket/bucket.h"
#include "httpc/httpc.h"

#define UP_CTL_TIMEOUT_MS 30000u
#define UP_SMALL_TIMEOUT_MS 120000u /* create, complete, abort */
#define UP_STALL_MS 60000u          /* a part that moves no byte this long fails (and is retried) */
#define STREAM_POLL_MS 200u         /* how often a growing file's writer is asked how far it got */
#define UP_LANES STOREUP_PARTS_IN_FLIGHT
#define UP_WINDOW (2u * UP_LANES) /* parts sent at most this far past the confirmed prefix */

typedef struct Up Up;

typedef struct Lane {
	Up *up;
	Httpc *http;
	Backoff backoff;
	bool refused; /* a 403 since this lane's last success: the next one is final */
	pthread_t thread;
	bool started;
} Lane;

struct Up {
	const StoreUpload *cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* CLOCK_MONOTONIC */
	Lane main;            /* the driver's: create, complete, abort */
	Lane lanes[UP_LANES]; /* the workers': parts */
	AgentUploadGrant g;
	bool have_grant;
	bool asking;    /* a grant is being asked for (mu released meanwhile) */
	int ask_result; /* the last ask's: 0 or -errno with ask_err */
	ErrBuf ask_err;
	uint64_t granted_ms;  /* when g came */
	uint64_t progress_ms; /* the last request that succeeded */
	int fd;
	uint64_t size;        /* bytes of the file known to be whole (all of it once finished) */
	uint32_t n_parts;     /* parts of the finished file; 0 while a growing file's end is unknown */
	uint32_t sent;        /* parts 1..sent confirmed by the store */
	bool done[UP_WINDOW]; /* part p in (sent, sent + UP_WINDOW] confirmed: done[p % UP_WINDOW] */
	uint32_t next;        /* the next part a worker takes */
	uint32_t avail;       /* parts 1..avail are whole and may go out */
	int failed;           /* a part failed for good (-errno, fail_err), or the capture did */
	ErrBuf fail_err;
	bool stop;    /* the workers end */
	char **etags; /* S3: cap_etags slots, the confirmed parts' filled */
	uint32_t cap_etags;
	StoreStream *live; /* the growing file's stream, or NULL */
};

struct StoreStream {
	Up up;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: ended, cancel */
	StoreWholeFn whole;
	void *ctx;
	bool ended;      /* the file is finished at size */
	bool cancel;     /* stop and abort */
	uint64_t size;   /* the finished file's length */
	uint64_t end_ms; /* when it ended */
	int result;      /* the thread's: 0 or -errno with err */
	ErrBuf err;
};

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / 1000000u;
}

static bool stale(const Up *u)
{
	return !u->have_grant || u->granted_ms == 0 ||
	       now_ms() - u->granted_ms >= (uint64_t)u->g.expires_in_s * 1000u / 2u;
}

/* Sets err's code to r, its message "pre<old message>post" (the old one
 * cannot be its own format argument: the buffers would overlap). */
static int reword(ErrBuf *err, int r, const char *pre, const char *post)
{
	ErrBuf old = *err;

	return errbuf_set(err, r, "%s%s%s", pre, old.msg, post);
}

/* Whether a transport failure may pass. */
static bool transient(int r)
{
	return r == -ECONNREFUSED || r == -ECONNRESET || r == -ETIMEDOUT || r == -EIO || r == -EPIPE ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH || r == -EAGAIN;
}

/* ---- the controller: grants ---- */

int storeup_grant_request(CtlClient *ctl, const char *agent, const char *job_id, const AgentUploadRequest *q,
			  AgentUploadGrant *ret, ErrBuf *err)
{
	char path[256], msg[512];
	CtlResponse resp = {0};
	char *body = NULL;
	int r;

	snprintf(path, sizeof(path), "/agent/v1/upload?name=%s&id=%s", agent, job_id);
	r = agentproto_upload_request_build(q, &body, err);
	if (r < 0)
		return r;
	r = ctlclient_post_json(ctl, path, body, UP_CTL_TIMEOUT_MS, &resp, err);
	free(body);
	if (r < 0)
		return reword(err, transient(r) ? -EAGAIN : r, "the controller: ", "");
	if (resp.status != 200) {
		agentproto_error_message(resp.body, resp.n, msg, sizeof(msg));
		r = errbuf_set(err, resp.status >= 500 || resp.status == 429 ? -EAGAIN : -EACCES,
			       "the controller refused the %s (HTTP %ld): %s", q->remove ? "delete" : "upload",
			       resp.status, msg);
		ctlclient_response_done(&resp);
		return r;
	}
	r = agentproto_grant_parse(resp.body, resp.n, ret, err);
	ctlclient_response_done(&resp);
	return r < 0 ? reword(err, -EPROTO, "the controller's grant: ", "") : 0;
}

/* Under u->mu, with no other ask out (!u->asking): asks for the requests q
 * names, releasing mu while the controller answers; the answer replaces
 * the grant in hand. -EAGAIN for what may pass, another -errno for a
 * refusal. */
static int ask(Up *u, AgentUploadRequest *q, ErrBuf *err)
{
	const StoreUpload *c = u->cfg;
	AgentUploadGrant g = {0};
	int r;

	q->attempt = c->attempt;
	q->file = c->file;
	memcpy(q->upload_id, u->g.upload_id, sizeof(q->upload_id)); /* "" until created (or resumed) */
	u->asking = true;
	pthread_mutex_unlock(&u->mu);
	r = storeup_grant_request(c->ctl, c->agent, c->job_id, q, &g, err);
	pthread_mutex_lock(&u->mu);
	u->asking = false;
	u->ask_result = r;
	if (r < 0)
		u->ask_err = *err;
	pthread_cond_broadcast(&u->cv);
	if (r < 0)
		return r;
	if (u->g.upload_id[0] && !g.upload_id[0])
		memcpy(g.upload_id, u->g.upload_id, sizeof(g.upload_id));
	agentproto_grant_move(&u->g, &g);
	u->have_grant = true;
	u->granted_ms = now_ms();
	return 0;
}

/* ask() from the upload's driver, which holds no lock (and runs while no
 * worker does). */
static int driver_ask(Up *u, AgentUploadRequest *q, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&u->mu);
	while (u->asking)
		pthread_cond_wait(&u->cv, &u->mu);
	r = ask(u, q, err);
	pthread_mutex_unlock(&u->mu);
	return r;
}

/* ---- the store: one signed request ---- */

typedef struct Body {
	int fd;
	uint64_t base;
} Body;

static ssize_t body_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	Body *b = ctx;
	ssize_t k;

	do
		k = pread(b->fd, buf, n, (off_t)(b->base + off));
	while (k < 0 && errno == EINTR);
	return k > 0 ? k : -EIO; /* a spool that shrank broke the promised size */
}

/* Sends rq on lane l with a body (mem, or [off, off+len) of the spool when
 * from_file); -EAGAIN when it may pass (a 403 of URLs that may have expired
 * makes them stale), another -errno for a refusal. */
static int send(Up *u, Lane *l, const AgentSignedRequest *rq, const char *mem, uint64_t off, uint64_t len,
		bool from_file, HttpcResponse *ret, ErrBuf *err)
{
	const char *headers[3] = {0};
	Body b = {.fd = u->fd, .base = off};
	HttpcRequest q = {.method = rq->method, .url = rq->url, .headers = headers, .stall_ms = UP_STALL_MS};
	int r;

	if (rq->header[0])
		headers[0] = rq->header;
	if (from_file) {
		q.read = body_read;
		q.read_ctx = &b;
		q.read_size = len;
		q.expect_continue = len > (1u << 20);
	} else {
		q.body = mem ? mem : "";
		q.body_n = mem ? strlen(mem) : 0;
		q.timeout_ms = UP_SMALL_TIMEOUT_MS;
	}
	r = httpc_request(l->http, &q, ret, err);
	if (r < 0)
		return transient(r) ? reword(err, -EAGAIN, "", "") : r;
	if (ret->status >= 200 && ret->status < 300)
		return 0;
	r = bucket_answer_error(err, rq->method, rq->url, ret);
	httpc_response_done(ret);
	if (r == -EACCES && !l->refused) {
		/* Expired URLs (or clocks apart): once more with new ones. */
		l->refused = true;
		pthread_mutex_lock(&u->mu);
		u->granted_ms = 0;
		pthread_mutex_unlock(&u->mu);
		return reword(err, -EAGAIN, "", "");
	}
	return r;
}

/* Whether a growing file's capture failed: its upload stops, aborted. */
static bool cancelled(Up *u)
{
	bool c;

	if (!u->live)
		return false;
	pthread_mutex_lock(&u->live->lock);
	c = u->live->cancel;
	pthread_mutex_unlock(&u->live->lock);
	return c;
}

/* Where the retry budget counts from: the last success, but never before a
 * growing file's end (until then the capture goes on and the upload with
 * it); -ECANCELED when the capture failed or another part did. */
static int budget_origin(Up *u, uint64_t *ret)
{
	StoreStream *s = u->live;
	uint64_t o;
	int r = 0;

	pthread_mutex_lock(&u->mu);
	o = u->progress_ms;
	if (u->failed)
		r = -ECANCELED;
	pthread_mutex_unlock(&u->mu);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->cancel)
			r = -ECANCELED;
		else if (!s->ended)
			o = now_ms();
		else if (s->end_ms > o)
			o = s->end_ms;
		pthread_mutex_unlock(&s->lock);
	}
	*ret = o;
	return r;
}

/* CLOCK_MONOTONIC ms from now, for the condition variables. */
static struct timespec deadline_after(uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000u);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Sleeps ms; wakes up early when the upload failed or its capture did. */
static void pause_ms(Up *u, uint64_t ms)
{
	struct timespec ts = deadline_after(ms);

	pthread_mutex_lock(&u->mu);
	while (!u->failed && !cancelled(u) && pthread_cond_timedwait(&u->cv, &u->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&u->mu);
}

/* Runs step on lane l until it succeeds, fails for good, or the budget is
 * spent. */
typedef int (*StepFn)(Up *u, Lane *l, void *arg, ErrBuf *err);

static int with_retries(Up *u, Lane *l, StepFn step, void *arg, ErrBuf *err)
{
	uint64_t budget_ms = (uint64_t)(u->cfg->budget_s ? u->cfg->budget_s : STOREUP_DEFAULT_BUDGET_S) * 1000u;

	for (;;) {
		uint64_t wait, origin;
		int r = step(u, l, arg, err);

		if (r != -EAGAIN) {
			if (r == 0) {
				l->refused = false;
				backoff_reset(&l->backoff);
				pthread_mutex_lock(&u->mu);
				u->progress_ms = now_ms();
				pthread_mutex_unlock(&u->mu);
			}
			return r;
		}
		if (budget_origin(u, &origin) < 0)
			return errbuf_set(err, -ECANCELED, "the capture failed");
		if (now_ms() - origin >= budget_ms) {
			char post[64];

			snprintf(post, sizeof(post), " (no progress for %llu s, the retry budget)",
				 (unsigned long long)(budget_ms / 1000u));
			return reword(err, -ETIMEDOUT, "", post);
		}
		wait = backoff_next(&l->backoff, agent_random_u32());
		if (now_ms() + wait > origin + budget_ms)
			wait = origin + budget_ms - now_ms();
		pause_ms(u, wait);
	}
}

/* ---- the steps ---- */

static int step_create(Up *u, Lane *l, void *arg, ErrBuf *err)
{
	HttpcResponse resp = {0};
	int r;

	(void)arg;
	if (stale(u) || (u->g.store == AGENT_STORE_S3 && !u->g.upload_id[0] && !u->g.create.url)) {
		AgentUploadRequest q = {.create = true};

		r = driver_ask(u, &q, err);
		if (r < 0)
			return r;
	}
	if (u->g.store != AGENT_STORE_S3 || u->g.upload_id[0])
		return 0;
	if (!u->g.create.url)
		return errbuf_set(err, -EPROTO, "the controller granted no create request");
	r = send(u, l, &u->g.create, NULL, 0, 0, false, &resp, err);
	if (r < 0)
		return r;
	if (!bucket_xml_value(resp.body, "UploadId", u->g.upload_id, sizeof(u->g.upload_id)) || !u->g.upload_id[0])
		r = errbuf_set(err, -EPROTO, "%s %s: the store's answer names no UploadId", u->g.create.method,
			       "create");
	httpc_response_done(&resp);
	return r;
}

/* A part a worker took: its number and length. */
typedef struct PartJob {
	uint32_t part;
	uint64_t off, len;
	bool s3; /* the answer's ETag is kept */
} PartJob;

static bool covers(const AgentUploadGrant *g, uint32_t part)
{
	return part >= g->first_part && part - g->first_part < g->n_parts;
}

/* Under u->mu: a copy of part's signed request. A grant is asked anew when
 * stale or not covering it (from the first unconfirmed part on), with mu
 * released while the controller answers; when another worker is asking,
 * its answer is waited for instead, and its failure is this one's (so the
 * waiters back off with it rather than ask again at once). */
static int part_request(Up *u, uint32_t part, AgentSignedRequest *ret, ErrBuf *err)
{
	const AgentSignedRequest *rq;
	bool waited = false;
	int r;

	while (stale(u) || !covers(&u->g, part)) {
		/* The finished file's parts, or (growing) as many as may come. */
		uint32_t first = u->sent + 1;
		uint32_t left = (u->n_parts ? u->n_parts : BUCKET_PART_MAX) - first + 1;
		AgentUploadRequest q = {.first_part = first,
					.n_parts =
						left < AGENTPROTO_MAX_GRANT_PARTS ? left : AGENTPROTO_MAX_GRANT_PARTS};

		if (u->failed || u->stop)
			return errbuf_set(err, -ECANCELED, "the upload stopped");
		if (u->asking) {
			pthread_cond_wait(&u->cv, &u->mu);
			waited = true;
			continue;
		}
		if (waited && u->ask_result < 0) {
			*err = u->ask_err;
			return u->ask_result;
		}
		r = ask(u, &q, err);
		if (r < 0)
			return r;
		if (!covers(&u->g, part))
			return errbuf_set(err, -EPROTO, "the controller granted no URL for part %u", part);
		break;
	}
	rq = &u->g.parts[part - u->g.first_part];
	*ret = *rq;
	ret->url = strdup(rq->url ? rq->url : "");
	if (!ret->url)
		return errbuf_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int step_part(Up *u, Lane *l, void *arg, ErrBuf *err)
{
	const PartJob *j = arg;
	AgentSignedRequest rq = {{0}};
	HttpcResponse resp = {0};
	char *etag = NULL;
	int r;

	pthread_mutex_lock(&u->mu);
	r = part_request(u, j->part, &rq, err);
	pthread_mutex_unlock(&u->mu);
	if (r < 0)
		return r;
	r = send(u, l, &rq, NULL, j->off, j->len, true, &resp, err);
	free(rq.url);
	if (r < 0)
		return r;
	if (j->s3) {
		const char *h = httpc_header(&resp, "etag");

		if (!h)
			r = errbuf_set(err, -EPROTO, "part %u: the store's answer has no ETag", j->part);
		else if (!(etag = strdup(h)))
			r = errbuf_set(err, -ENOMEM, "out of memory");
	}
	httpc_response_done(&resp);
	if (etag) {
		pthread_mutex_lock(&u->mu);
		free(u->etags[j->part - 1]);
		u->etags[j->part - 1] = etag;
		pthread_mutex_unlock(&u->mu);
	}
	return r;
}

static int step_complete(Up *u, Lane *l, void *arg, ErrBuf *err)
{
	HttpcResponse resp = {0};
	char *body = NULL, code[128];
	int r;

	(void)arg;
	if (stale(u) || !u->g.complete.url) {
		AgentUploadRequest q = {.complete = true};

		r = driver_ask(u, &q, err);
		if (r < 0)
			return r;
		if (!u->g.complete.url)
			return errbuf_set(err, -EPROTO, "the controller granted no complete request");
	}
	r = bucket_complete_body(u->g.store == AGENT_STORE_S3 ? BUCKET_KIND_S3 : BUCKET_KIND_AZURE, u->g.upload_id,
				 (const char *const *)u->etags, u->n_parts, &body, err);
	if (r < 0)
		return r;
	r = send(u, l, &u->g.complete, body, 0, 0, false, &resp, err);
	free(body);
	if (r < 0)
		return r;
	/* S3 may answer 200 and an error in the body (the store failed late). */
	if (bucket_xml_value(resp.body, "Code", code, sizeof(code)) && strstr(resp.body, "<Error"))
		r = errbuf_set(err, -EAGAIN, "complete: the store answered %s", code);
	httpc_response_done(&resp);
	return r;
}

/* Best effort, once: a failed S3 upload leaves no parts behind. 0 when the
 * store took the abort (or there was nothing to abort), else -errno with e. */
static int abort_upload(Up *u, ErrBuf *e)
{
	AgentUploadRequest q = {.abort = true};
	HttpcResponse resp = {0};
	int r;

	if (u->g.store != AGENT_STORE_S3 || !u->g.upload_id[0])
		return 0;
	if ((stale(u) || !u->g.abort.url) && (r = driver_ask(u, &q, e)) < 0)
		return r;
	if (!u->g.abort.url)
		return 0; /* the store needs none */
	r = send(u, &u->main, &u->g.abort, NULL, 0, 0, false, &resp, e);
	if (r == 0)
		httpc_response_done(&resp);
	return r;
}

/* ---- one upload ---- */

/* Room for the ETags of parts 1..n. */
static int etags_reserve(Up *u, uint32_t n, ErrBuf *err)
{
	uint32_t cap = u->cap_etags ? u->cap_etags : 64;
	char **e;

	if (n <= u->cap_etags)
		return 0;
	while (cap < n)
		cap *= 2;
	if (cap > BUCKET_PART_MAX)
		cap = BUCKET_PART_MAX;
	e = realloc(u->etags, cap * sizeof(*e));
	if (!e)
		return errbuf_set(err, -ENOMEM, "out of memory");
	memset(e + u->cap_etags, 0, (cap - u->cap_etags) * sizeof(*e));
	u->etags = e;
	u->cap_etags = cap;
	return 0;
}

/* Under u->mu: what the store confirmed, to the caller's keeping. */
static void report_progress(Up *u)
{
	bool s3 = u->g.store == AGENT_STORE_S3;
	StoreProgress p = {.upload_id = s3 ? u->g.upload_id : "", .sent = u->sent, .etags = s3 ? u->etags : NULL};

	if (u->cfg->progress)
		u->cfg->progress(u->cfg->progress_ctx, &p);
}

/* An earlier run's progress: its UploadId and confirmed parts (S3 needs
 * their ETags; without them the parts go again). */
static int resume_from(Up *u, const StoreProgress *p, ErrBuf *err)
{
	int r;

	if (strlen(p->upload_id) >= sizeof(u->g.upload_id))
		return errbuf_set(err, -EINVAL, "resume: upload id too long");
	memcpy(u->g.upload_id, p->upload_id, strlen(p->upload_id) + 1);
	if (p->sent == 0 || p->sent > BUCKET_PART_MAX || (p->upload_id[0] && !p->etags))
		return 0;
	r = etags_reserve(u, p->sent, err);
	for (uint32_t i = 0; r == 0 && p->etags && i < p->sent; i++)
		if (!(u->etags[i] = strdup(p->etags[i])))
			r = errbuf_set(err, -ENOMEM, "out of memory");
	if (r == 0)
		u->sent = p->sent;
	return r;
}

/* An Up with nothing begun: its lock and the driver's lane. */
static int up_init(Up *u, const StoreUpload *c, ErrBuf *err)
{
	HttpcConfig hc = {.cafile = c->cafile};
	pthread_condattr_t ca;

	*u = (Up){.cfg = c, .fd = -1};
	pthread_mutex_init(&u->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cv, &ca);
	pthread_condattr_destroy(&ca);
	u->main.up = u;
	backoff_init(&u->main.backoff, 250, 10000);
	u->progress_ms = now_ms();
	return httpc_new(&hc, &u->main.http, err);
}

/* The upload's state for the file at path; the start's grant taken over. */
static int up_open(Up *u, const StoreUpload *c, const char *path, ErrBuf *err)
{
	int r = up_init(u, c, err);

	if (r < 0)
		return r;
	if (c->grant) {
		agentproto_grant_move(&u->g, c->grant);
		u->have_grant = true;
		u->granted_ms = now_ms();
	}
	u->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (u->fd < 0)
		return errbuf_errno(err, "reading %s", path);
	if (c->resume)
		return resume_from(u, c->resume, err);
	return 0;
}

/* ---- the workers: parts in flight ---- */

/* Under u->mu: the upload fails with r (the first failure wins); the parts
 * in flight are cut short. */
static void up_fail(Up *u, int r, const ErrBuf *e)
{
	if (!u->failed) {
		u->failed = r;
		u->fail_err = *e;
		for (size_t i = 0; i < UP_LANES; i++)
			if (u->lanes[i].started)
				httpc_cancel(u->lanes[i].http);
	}
	pthread_cond_broadcast(&u->cv);
}

/* Under u->mu: part is confirmed; the prefix 1..sent grows over the
 * confirmed parts that follow it, and is reported when it grew. */
static void up_confirm(Up *u, uint32_t part)
{
	uint32_t before = u->sent;

	u->done[part % UP_WINDOW] = true;
	while (u->done[(u->sent + 1) % UP_WINDOW]) {
		u->done[(u->sent + 1) % UP_WINDOW] = false;
		u->sent++;
	}
	if (u->sent != before)
		report_progress(u);
	pthread_cond_broadcast(&u->cv);
}

/* Under u->mu: the next part to send, if one is whole and within the
 * window (0 when none; -errno with e when it cannot go). */
static int up_take(Up *u, PartJob *j, ErrBuf *e)
{
	int r;

	j->part = 0;
	if (u->next > u->avail || u->next > u->sent + UP_WINDOW)
		return 0;
	if (u->next > BUCKET_PART_MAX)
		return errbuf_set(e, -EFBIG, "the capture needs more than %u parts of %llu bytes", BUCKET_PART_MAX,
				  (unsigned long long)u->g.part_size);
	r = etags_reserve(u, u->next, e);
	if (r < 0)
		return r;
	j->part = u->next++;
	j->off = (uint64_t)(j->part - 1) * u->g.part_size;
	j->len = u->size - j->off < u->g.part_size ? u->size - j->off : u->g.part_size;
	j->s3 = u->g.store == AGENT_STORE_S3;
	return 0;
}

static void *lane_main(void *arg)
{
	Lane *l = arg;
	Up *u = l->up;

	pthread_mutex_lock(&u->mu);
	while (!u->failed && !u->stop) {
		ErrBuf e = {{0}};
		PartJob j;
		int r = up_take(u, &j, &e);

		if (r < 0) {
			up_fail(u, r, &e);
			break;
		}
		if (!j.part) {
			pthread_cond_wait(&u->cv, &u->mu);
			continue;
		}
		pthread_mutex_unlock(&u->mu);
		r = with_retries(u, l, step_part, &j, &e);
		pthread_mutex_lock(&u->mu);
		if (r < 0)
			up_fail(u, r, &e);
		else
			up_confirm(u, j.part);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

/* Stops the workers (when they run) and waits for them. */
static void workers_stop(Up *u)
{
	pthread_mutex_lock(&u->mu);
	u->stop = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	for (size_t i = 0; i < UP_LANES; i++) {
		Lane *l = &u->lanes[i];
		Httpc *h;

		if (l->started)
			pthread_join(l->thread, NULL);
		pthread_mutex_lock(&u->mu); /* a worker still running looks at them in up_fail() */
		l->started = false;
		h = l->http;
		l->http = NULL;
		pthread_mutex_unlock(&u->mu);
		httpc_free(h);
	}
}

/* Starts UP_LANES workers; parts go out as avail grows. */
static int workers_start(Up *u, ErrBuf *err)
{
	HttpcConfig hc = {.cafile = u->cfg->cafile};
	int r = 0;

	u->next = u->sent + 1;
	for (size_t i = 0; r == 0 && i < UP_LANES; i++) {
		Lane *l = &u->lanes[i];

		l->up = u;
		backoff_init(&l->backoff, 250, 10000);
		r = httpc_new(&hc, &l->http, err);
		if (r == 0) {
			pthread_mutex_lock(&u->mu); /* up_fail() looks at started */
			r = -pthread_create(&l->thread, NULL, lane_main, l);
			l->started = r == 0;
			pthread_mutex_unlock(&u->mu);
			if (r < 0)
				errbuf_set(err, r, "cannot start the upload's thread: %s", strerror(-r));
		}
	}
	if (r < 0)
		workers_stop(u);
	return r;
}

/* Waits until every part of the finished file is confirmed, or one failed,
 * or the capture did; then stops the workers. */
static int workers_finish(Up *u, ErrBuf *err)
{
	int r = 0;

	pthread_mutex_lock(&u->mu);
	while (!u->failed && u->sent < u->n_parts) {
		struct timespec ts = deadline_after(STREAM_POLL_MS);

		if (cancelled(u)) {
			ErrBuf e = {{0}};

			errbuf_set(&e, -ECANCELED, "the capture failed");
			up_fail(u, -ECANCELED, &e);
			break;
		}
		pthread_cond_timedwait(&u->cv, &u->mu, &ts);
	}
	if (u->failed) {
		r = u->failed;
		*err = u->fail_err;
	}
	pthread_mutex_unlock(&u->mu);
	workers_stop(u);
	return r;
}

/* The file is finished at size bytes: the parts not yet sent go out, then
 * complete. */
static int up_rest(Up *u, uint64_t size, ErrBuf *err)
{
	uint64_t n;
	uint32_t had;
	int r;

	pthread_mutex_lock(&u->mu);
	n = size ? (size + u->g.part_size - 1) / u->g.part_size : 1;
	had = u->avail > u->sent ? u->avail : u->sent;
	if (n > BUCKET_PART_MAX)
		r = errbuf_set(err, -EFBIG, "%llu bytes need more than %u parts of %llu bytes",
			       (unsigned long long)size, BUCKET_PART_MAX, (unsigned long long)u->g.part_size);
	else if (n < had)
		r = errbuf_set(err, -EPROTO,
			       "the file shrank to %llu bytes, below the %u parts already read whole or sent",
			       (unsigned long long)size, had);
	else {
		u->size = size;
		u->n_parts = (uint32_t)n;
		u->avail = (uint32_t)n;
		r = 0;
	}
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	if (r == 0)
		r = workers_finish(u, err);
	if (r == 0 && cancelled(u))
		r = errbuf_set(err, -ECANCELED, "the capture failed");
	if (r == 0)
		r = with_retries(u, &u->main, step_complete, NULL, err);
	return r;
}

/* Create (also the first grant when the start had none), reported, and the
 * workers started. */
static int up_begin(Up *u, ErrBuf *err)
{
	int r = with_retries(u, &u->main, step_create, NULL, err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&u->mu);
	report_progress(u);
	pthread_mutex_unlock(&u->mu);
	return workers_start(u, err);
}

/* Ends the upload: a failed one is aborted and its message worded into err
 * ("upload to s3://bucket/prefix: …"). Returns r. */
static int up_close(Up *u, int r, const ErrBuf *e, ErrBuf *err)
{
	const StoreUpload *c = u->cfg;

	if (r < 0) {
		pthread_mutex_lock(&u->mu);
		up_fail(u, r, e);
		pthread_mutex_unlock(&u->mu);
	}
	workers_stop(u);
	if (r < 0) {
		ErrBuf ignored = {{0}};

		abort_upload(u, &ignored);
	}
	if (r < 0) {
		/* The bucket without its query (the store's words name the
		 * object's path): error messages are short. */
		int len = (int)strcspn(c->target, "?");

		errbuf_set(err, r, "upload to %.*s: %s", len, c->target, e->msg);
	}
	for (size_t i = 0; u->etags && i < u->cap_etags; i++)
		free(u->etags[i]);
	free(u->etags);
	u->etags = NULL;
	agentproto_grant_done(&u->g);
	httpc_free(u->main.http);
	u->main.http = NULL;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	if (!u->live) { /* a stream's are woken until storeup_stream_wait() has joined its thread */
		pthread_cond_destroy(&u->cv);
		pthread_mutex_destroy(&u->mu);
	}
	return r;
}

int storeup_file(const StoreUpload *c, const char *path, ErrBuf *err)
{
	ErrBuf e = {{0}};
	struct stat st = {0};
	Up u;
	int r;

	r = up_open(&u, c, path, &e);
	if (r == 0 && fstat(u.fd, &st) < 0)
		r = errbuf_errno(&e, "reading %s", path);
	if (r == 0)
		r = up_begin(&u, &e);
	if (r == 0)
		r = up_rest(&u, (uint64_t)st.st_size, &e);
	return up_close(&u, r, &e, err);
}

int storeup_abort(const StoreUpload *c, ErrBuf *err)
{
	ErrBuf e = {{0}};
	Up u;
	int r;

	if (!c->resume || !c->resume->upload_id[0])
		return 0; /* nothing begun, or Azure's blocks (they expire uncommitted) */
	r = up_init(&u, c, &e);
	if (r == 0)
		r = resume_from(&u, c->resume, &e);
	if (r == 0)
		r = abort_upload(&u, &e);
	up_close(&u, 0, NULL, NULL);
	if (r < 0) {
		int len = (int)strcspn(c->target, "?");

		errbuf_set(err, r, "abort of the upload to %.*s: %s", len, c->target, e.msg);
	}
	return r;
}

/* ---- a growing file ---- */

/* One look at the writer: 1 when at least want bytes are whole (*ret_whole)
 * or the file is finished (*ret_ended, *ret_whole its size), 0 when neither
 * after waiting up to STREAM_POLL_MS, -ECANCELED when the capture failed. */
static int stream_look(StoreStream *s, uint64_t want, uint64_t *ret_whole, bool *ret_ended)
{
	struct timespec ts = deadline_after(STREAM_POLL_MS);
	int r = 0;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < 2 && r == 0; i++) {
		if (i)
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		if (s->cancel) {
			r = -ECANCELED;
		} else if (s->ended) {
			*ret_whole = s->size;
			*ret_ended = true;
			r = 1;
		} else if ((*ret_whole = s->whole(s->ctx)) >= want) {
			r = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *stream_main(void *arg)
{
	StoreStream *s = arg;
	Up *u = &s->up;
	ErrBuf e = {{0}};
	bool ended = false;
	uint64_t whole = 0;
	int r;

	r = up_begin(u, &e);
	while (r == 0 && !ended) {
		uint64_t want;
		int k;

		pthread_mutex_lock(&u->mu);
		want = (uint64_t)(u->avail + 1) * u->g.part_size;
		pthread_mutex_unlock(&u->mu);
		k = stream_look(s, want, &whole, &ended);
		if (k < 0) {
			r = errbuf_set(&e, -ECANCELED, "the capture failed");
			break;
		}
		pthread_mutex_lock(&u->mu);
		if (u->failed) {
			r = u->failed;
			e = u->fail_err;
		} else if (k > 0 && !ended) {
			u->size = whole;
			u->avail = (uint32_t)(whole / u->g.part_size < BUCKET_PART_MAX + 1u ? whole / u->g.part_size
											    : BUCKET_PART_MAX + 1u);
			pthread_cond_broadcast(&u->cv);
		}
		pthread_mutex_unlock(&u->mu);
	}
	if (r == 0)
		r = up_rest(u, whole, &e);
	s->result = up_close(u, r, &e, &s->err);
	return NULL;
}

int storeup_stream_start(const StoreUpload *c, const char *path, StoreWholeFn whole, void *ctx, StoreStream **ret,
			 ErrBuf *err)
{
	pthread_condattr_t ca;
	StoreStream *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = up_open(&s->up, c, path, err);
	if (r < 0) {
		up_close(&s->up, 0, NULL, NULL);
		free(s);
		return r;
	}
	s->up.live = s;
	s->whole = whole;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&s->thread, NULL, stream_main, s);
	if (r < 0) {
		errbuf_set(err, r, "cannot start the upload's thread: %s", strerror(-r));
		s->up.live = NULL;
		up_close(&s->up, 0, NULL, NULL);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void storeup_stream_end(StoreStream *s, uint64_t size)
{
	pthread_mutex_lock(&s->lock);
	s->ended = true;
	s->size = size;
	s->end_ms = now_ms();
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int storeup_stream_wait(StoreStream *s, bool abort, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	if (abort || !s->ended)
		s->cancel = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* Wake the workers and the driver out of their pauses (the order of
	 * the locks: Up.mu is never taken under StoreStream.lock). */
	pthread_mutex_lock(&s->up.mu);
	pthread_cond_broadcast(&s->up.cv);
	pthread_mutex_unlock(&s->up.mu);
	pthread_join(s->thread, NULL);
	r = s->result;
	if (r < 0 && err)
		*err = s->err;
	pthread_cond_destroy(&s->up.cv);
	pthread_mutex_destroy(&s->up.mu);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return r;
}
