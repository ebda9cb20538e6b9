/* SPDX-License-Identifier: MIT */
/*
 * Uploads through grants (storeup.h). One Up per upload, on the capture's
 * thread: its own store client, the grant in hand, the parts' ETags.
 */
#include <errno.h>
#include <fcntl.h>
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

typedef struct Up {
	const StoreUpload *cfg;
	Httpc *http;
	AgentUploadGrant g;
	bool have_grant;
	uint64_t granted_ms;  /* when g came */
	bool refused;         /* a 403 since the last success: the next one is final */
	uint64_t progress_ms; /* the last request that succeeded */
	Backoff backoff;
	int fd;
	uint64_t size;
	uint32_t n_parts;
	char **etags; /* S3: n_parts */
} Up;

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

/* Asks for the requests q names; the answer replaces the grant in hand.
 * -EAGAIN for what may pass, another -errno for a refusal. */
static int ask(Up *u, AgentUploadRequest *q, ErrBuf *err)
{
	const StoreUpload *c = u->cfg;
	char path[256], msg[512];
	CtlResponse resp = {0};
	AgentUploadGrant g = {0};
	char *body = NULL;
	int r;

	q->attempt = c->attempt;
	q->file = c->file;
	if (u->have_grant)
		memcpy(q->upload_id, u->g.upload_id, sizeof(q->upload_id));
	snprintf(path, sizeof(path), "/agent/v1/upload?name=%s&id=%s", c->agent, c->job_id);
	r = agentproto_upload_request_build(q, &body, err);
	if (r < 0)
		return r;
	r = ctlclient_post_json(c->ctl, path, body, UP_CTL_TIMEOUT_MS, &resp, err);
	free(body);
	if (r < 0)
		return reword(err, transient(r) ? -EAGAIN : r, "the controller: ", "");
	if (resp.status != 200) {
		agentproto_error_message(resp.body, resp.n, msg, sizeof(msg));
		r = errbuf_set(err, resp.status >= 500 || resp.status == 429 ? -EAGAIN : -EACCES,
			       "the controller refused the upload (HTTP %ld): %s", resp.status, msg);
		ctlclient_response_done(&resp);
		return r;
	}
	r = agentproto_grant_parse(resp.body, resp.n, &g, err);
	ctlclient_response_done(&resp);
	if (r < 0)
		return reword(err, -EPROTO, "the controller's grant: ", "");
	if (u->have_grant && u->g.upload_id[0] && !g.upload_id[0])
		memcpy(g.upload_id, u->g.upload_id, sizeof(g.upload_id));
	agentproto_grant_move(&u->g, &g);
	u->have_grant = true;
	u->granted_ms = now_ms();
	return 0;
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

/* Sends rq with a body (mem, or [off, off+len) of the spool when len_file);
 * -EAGAIN when it may pass (a 403 of URLs that may have expired makes them
 * stale), another -errno for a refusal. */
static int send(Up *u, const AgentSignedRequest *rq, const char *mem, uint64_t off, uint64_t len, bool from_file,
		HttpcResponse *ret, ErrBuf *err)
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
	r = httpc_request(u->http, &q, ret, err);
	if (r < 0)
		return transient(r) ? reword(err, -EAGAIN, "", "") : r;
	if (ret->status >= 200 && ret->status < 300)
		return 0;
	r = bucket_answer_error(err, rq->method, rq->url, ret);
	httpc_response_done(ret);
	if (r == -EACCES && !u->refused) {
		/* Expired URLs (or clocks apart): once more with new ones. */
		u->refused = true;
		u->granted_ms = 0;
		return reword(err, -EAGAIN, "", "");
	}
	return r;
}

/* Runs step until it succeeds, fails for good, or the budget is spent. */
typedef int (*StepFn)(Up *u, void *arg, ErrBuf *err);

static int with_retries(Up *u, StepFn step, void *arg, ErrBuf *err)
{
	uint64_t budget_ms = (uint64_t)(u->cfg->budget_s ? u->cfg->budget_s : STOREUP_DEFAULT_BUDGET_S) * 1000u;

	for (;;) {
		uint64_t wait;
		int r = step(u, arg, err);

		if (r != -EAGAIN) {
			if (r == 0) {
				u->refused = false;
				u->progress_ms = now_ms();
				backoff_reset(&u->backoff);
			}
			return r;
		}
		if (now_ms() - u->progress_ms >= budget_ms) {
			char post[64];

			snprintf(post, sizeof(post), " (no progress for %llu s, the retry budget)",
				 (unsigned long long)(budget_ms / 1000u));
			return reword(err, -ETIMEDOUT, "", post);
		}
		wait = backoff_next(&u->backoff, agent_random_u32());
		if (now_ms() + wait > u->progress_ms + budget_ms)
			wait = u->progress_ms + budget_ms - now_ms();
		struct timespec ts = {.tv_sec = (time_t)(wait / 1000u), .tv_nsec = (long)(wait % 1000u) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* ---- the steps ---- */

static int step_create(Up *u, void *arg, ErrBuf *err)
{
	HttpcResponse resp = {0};
	int r;

	(void)arg;
	if (stale(u) || (u->g.store == AGENT_STORE_S3 && !u->g.upload_id[0] && !u->g.create.url)) {
		AgentUploadRequest q = {.create = true};

		r = ask(u, &q, err);
		if (r < 0)
			return r;
	}
	if (u->g.store != AGENT_STORE_S3 || u->g.upload_id[0])
		return 0;
	if (!u->g.create.url)
		return errbuf_set(err, -EPROTO, "the controller granted no create request");
	r = send(u, &u->g.create, NULL, 0, 0, false, &resp, err);
	if (r < 0)
		return r;
	if (!bucket_xml_value(resp.body, "UploadId", u->g.upload_id, sizeof(u->g.upload_id)) || !u->g.upload_id[0])
		r = errbuf_set(err, -EPROTO, "%s %s: the store's answer names no UploadId", u->g.create.method,
			       "create");
	httpc_response_done(&resp);
	return r;
}

static int step_part(Up *u, void *arg, ErrBuf *err)
{
	uint32_t part = *(uint32_t *)arg;
	uint64_t off = (uint64_t)(part - 1) * u->g.part_size, len;
	HttpcResponse resp = {0};
	const char *etag;
	int r;

	if (stale(u) || part < u->g.first_part || part >= u->g.first_part + u->g.n_parts) {
		uint32_t left = u->n_parts - part + 1;
		AgentUploadRequest q = {.first_part = part,
					.n_parts =
						left < AGENTPROTO_MAX_GRANT_PARTS ? left : AGENTPROTO_MAX_GRANT_PARTS};

		r = ask(u, &q, err);
		if (r < 0)
			return r;
		if (part < u->g.first_part || part >= u->g.first_part + u->g.n_parts)
			return errbuf_set(err, -EPROTO, "the controller granted no URL for part %u", part);
	}
	len = u->size - off < u->g.part_size ? u->size - off : u->g.part_size;
	r = send(u, &u->g.parts[part - u->g.first_part], NULL, off, len, true, &resp, err);
	if (r < 0)
		return r;
	if (u->g.store == AGENT_STORE_S3) {
		etag = httpc_header(&resp, "etag");
		if (!etag) {
			httpc_response_done(&resp);
			return errbuf_set(err, -EPROTO, "part %u: the store's answer has no ETag", part);
		}
		free(u->etags[part - 1]);
		u->etags[part - 1] = strdup(etag);
		if (!u->etags[part - 1])
			r = errbuf_set(err, -ENOMEM, "out of memory");
	}
	httpc_response_done(&resp);
	return r;
}

static int step_complete(Up *u, void *arg, ErrBuf *err)
{
	HttpcResponse resp = {0};
	char *body = NULL, code[128];
	int r;

	(void)arg;
	if (stale(u) || !u->g.complete.url) {
		AgentUploadRequest q = {.complete = true};

		r = ask(u, &q, err);
		if (r < 0)
			return r;
		if (!u->g.complete.url)
			return errbuf_set(err, -EPROTO, "the controller granted no complete request");
	}
	r = bucket_complete_body(u->g.store == AGENT_STORE_S3 ? BUCKET_KIND_S3 : BUCKET_KIND_AZURE, u->g.upload_id,
				 (const char *const *)u->etags, u->n_parts, &body, err);
	if (r < 0)
		return r;
	r = send(u, &u->g.complete, body, 0, 0, false, &resp, err);
	free(body);
	if (r < 0)
		return r;
	/* S3 may answer 200 and an error in the body (the store failed late). */
	if (bucket_xml_value(resp.body, "Code", code, sizeof(code)) && strstr(resp.body, "<Error"))
		r = errbuf_set(err, -EAGAIN, "complete: the store answered %s", code);
	httpc_response_done(&resp);
	return r;
}

/* Best effort, once: a failed S3 upload leaves no parts behind. */
static void abort_upload(Up *u)
{
	AgentUploadRequest q = {.abort = true};
	HttpcResponse resp = {0};
	ErrBuf e = {{0}};

	if (u->g.store != AGENT_STORE_S3 || !u->g.upload_id[0])
		return;
	if ((stale(u) || !u->g.abort.url) && ask(u, &q, &e) < 0)
		return;
	if (u->g.abort.url && send(u, &u->g.abort, NULL, 0, 0, false, &resp, &e) == 0)
		httpc_response_done(&resp);
}

int storeup_file(const StoreUpload *c, const char *path, ErrBuf *err)
{
	HttpcConfig hc = {.cafile = c->cafile};
	Up u = {.cfg = c, .fd = -1};
	ErrBuf e = {{0}};
	struct stat st;
	uint64_t n;
	int r;

	backoff_init(&u.backoff, 250, 10000);
	u.progress_ms = now_ms();
	if (c->grant) {
		agentproto_grant_move(&u.g, c->grant);
		u.have_grant = true;
		u.granted_ms = now_ms();
	}
	u.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (u.fd < 0 || fstat(u.fd, &st) < 0) {
		r = errbuf_errno(&e, "reading %s", path);
		goto out;
	}
	u.size = (uint64_t)st.st_size;
	r = httpc_new(&hc, &u.http, &e);
	if (r == 0)
		r = with_retries(&u, step_create, NULL, &e); /* also the first grant when the start had none */
	if (r == 0) {
		n = u.size ? (u.size + u.g.part_size - 1) / u.g.part_size : 1;
		if (n > 10000)
			r = errbuf_set(&e, -EFBIG, "%llu bytes need more than 10000 parts of %llu bytes",
				       (unsigned long long)u.size, (unsigned long long)u.g.part_size);
		u.n_parts = (uint32_t)n;
		u.etags = r == 0 ? calloc(n, sizeof(*u.etags)) : NULL;
		if (r == 0 && !u.etags)
			r = errbuf_set(&e, -ENOMEM, "out of memory");
	}
	for (uint32_t p = 1; r == 0 && p <= u.n_parts; p++)
		r = with_retries(&u, step_part, &p, &e);
	if (r == 0)
		r = with_retries(&u, step_complete, NULL, &e);
	if (r < 0)
		abort_upload(&u);
out:
	if (r < 0) {
		/* The bucket without its query (the store's words name the
		 * object's path): error messages are short. */
		int len = (int)strcspn(c->target, "?");

		errbuf_set(err, r, "upload to %.*s: %s", len, c->target, e.msg);
	}
	for (size_t i = 0; u.etags && i < u.n_parts; i++)
		free(u.etags[i]);
	free(u.etags);
	agentproto_grant_done(&u.g);
	httpc_free(u.http);
	if (u.fd >= 0)
		close(u.fd);
	return r;
}
