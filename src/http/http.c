/* SPDX-License-Identifier: MIT */
/*
 * libmicrohttpd (0.9.75) behind http.h. Nothing else in pcapd includes
 * <microhttpd.h>.
 *
 * How MHD drives a request, and what this file does at each step
 * (MHD's access handler is on_access(); one HttpRequest per request):
 *
 *   connect      ─► on_connection() (MHD_OPTION_NOTIFY_CONNECTION): the
 *                   connection has until connect + untrusted_timeout_s to
 *                   send a request line (fresh.h), its closing ends that.
 *   request line ─► on_uri() (MHD_OPTION_URI_LOG_CALLBACK), before MHD
 *                   splits the query: allocate the HttpRequest (it becomes
 *                   *con_cls) and check the target's length and number of
 *                   parameters. Too many parameters: the query is ended
 *                   right after its '?' in MHD's own copy of the line, so
 *                   MHD stores none of them (MHD 0.9.75 answers nothing at
 *                   all when its per-connection memory runs out while it
 *                   stores them), and the request is refused below.
 *                   The first one: the untrusted idle time-out from now.
 *   headers in  ──► first call (started false, no data): the bounds on the
 *                   target and the headers (refuse() answers 414/400/431),
 *                   then, for a request announcing a body, on_headers (may
 *                   answer: 401 before any body byte). If Content-Length
 *                   already exceeds max_body, mark it too large and run the
 *                   handler now. Else reserve Content-Length bytes of the
 *                   body budget (none left: 503). An answer queued before
 *                   the body makes MHD skip "100 Continue", drop the body
 *                   unread and close after answering.
 *   body bytes  ──► calls with *upload_data_size > 0: copy up to max_body
 *                   (a chunked body reserves budget as it grows), past it
 *                   free the copy, set too_large and discard the rest.
 *   body done   ──► call with *upload_data_size == 0: run the handler (or
 *                   answer 503 if the budget ran out during a chunked body).
 *   handler     ──► answered (http_respond*) ─► MHD sends it;
 *                   parked (http_suspend) ─► MHD stops polling the socket;
 *                   neither ─► we answer 500 (503 while stopping).
 *   resumed     ──► MHD calls us again with no data: run the handler again.
 *   finished    ──► on_completed() (MHD_OPTION_NOTIFY_COMPLETED) frees it,
 *                   whether the answer went out or the client went away.
 *
 * Threads: each MHD worker thread owns its connections, so every call above
 * for one request happens on one thread and the request's fields need no
 * lock. The body budget (HttpServer.body_held) is one atomic counter: a
 * request takes bytes before it allocates them and gives them back when it
 * is freed. The exceptions are the parking fields (parked, tracked, the list
 * links), shared with http_resume() and http_server_stop(): they live under
 * HttpServer.lock, which only long-poll requests ever take. The hot path
 * (a plain request) takes no lock of ours.
 *
 * Parking and stopping: a parked request is put on the server's tracked list
 * and stays there until it is finished, not just until it is resumed, so
 * that http_server_stop() can resume every parked request with
 * shutting_down set, then wait until their answers (503) have actually
 * been sent before MHD_stop_daemon() closes the sockets. MHD forbids
 * stopping with suspended connections; http_suspend() refuses once
 * stopping has begun, so none can appear after the sweep.
 *
 * Suspend/resume races: http_suspend() calls MHD_suspend_connection() under
 * the lock after setting parked, and http_resume() calls
 * MHD_resume_connection() under the lock only if parked is still set (and
 * clears it). MHD never sees a resume before its suspend, nor two resumes
 * for one suspend. A resume that arrives while the handler that suspended
 * is still running is fine: MHD 0.9.75 moves the connection to its
 * suspended list inside MHD_suspend_connection() and picks up the resume on
 * its next loop iteration, after our access handler has returned.
 */
#include "http.h"
#include "fresh.h"
#include "listen.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#define HTTP_MAX_HEADERS 32
#define HTTP_HEADERS_MAX_BYTES (64u * 1024) /* names + values of one answer */
#define HTTP_HEADERS_INLINE 256             /* most answers add a header or two */
#define HTTP_BODY_FIRST_CAP 4096            /* chunked bodies start here, then double */
/* libmicrohttpd zeroes a connection's whole pool after each request, so a
 * kept-alive connection holds all of it: 36 KiB (a request at our bounds,
 * an 8 KiB target and 16 KiB of headers, fits) keeps 2,000 agents'
 * connections under 100 MB; 64 KiB took 150 MB. Above 32 KiB libmicrohttpd
 * maps each pool on its own (mmap) instead of taking it from malloc, so a
 * closed connection's memory goes back to the system at once: with 32 KiB
 * pools from malloc, the 1,000 sample connections of a fleet that had just
 * answered a sample kept the controller at 120 MB after they closed (the
 * freed pools stayed in malloc's arenas; malloc_trim gave back 3 MB), with
 * 36 KiB it fell back to 95 MB (bench/fleet.py, "at rest again"). */
#define HTTP_DEFAULT_MEMORY (36u * 1024)
#define HTTP_DEFAULT_MAX_BODY (1024u * 1024)
#define HTTP_DEFAULT_MAX_CONN 4096u
#define HTTP_DEFAULT_TIMEOUT_S 30u
#define HTTP_DEFAULT_UNTRUSTED_TIMEOUT_S 10u
/* GnuTLS priorities: its defaults, without SSL 3.0, TLS 1.0 and 1.1. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define HTTP_MAX_THREADS 256u
#define HTTP_STOP_GRACE_S 2            /* beyond the idle time-out, for parked answers to go out */
#define HTTP_STREAM_BUFFER (1u << 20)  /* a streamed answer's buffer when the caller names none */
#define HTTP_STREAM_BLOCK (64u * 1024) /* what MHD asks a streamed answer for at a time */
#define HTTP_STREAM_TRAILER_MAX 1024u  /* bytes of a streamed answer's trailer, name and value */

/* One MHD daemon: plain or TLS. */
typedef struct HttpDaemon {
	HttpServer *srv;
	struct MHD_Daemon *mhd; /* NULL when this side is off */
	bool tls;
	uint16_t port; /* bound port */
} HttpDaemon;

struct HttpServer {
	HttpHandler handler;
	HttpHandler on_headers;
	void (*refuse)(void *ctx, HttpRequest *req, unsigned status, unsigned retry_after_s, const char *message);
	void (*observe)(void *ctx, const HttpRequest *req, unsigned status, uint64_t elapsed_ns);
	void *ctx;
	size_t max_body;
	size_t (*body_limit)(void *ctx, const char *method, const char *path);
	unsigned timeout_s;           /* trusted connections: the daemons' default */
	unsigned untrusted_timeout_s; /* until http_req_trust(): set per connection */
	HttpFresh *fresh;             /* connections before their first request line; NULL if the two are equal */
	size_t body_budget;
	atomic_size_t body_held; /* bytes reserved by request bodies, all threads */
	HttpDaemon daemons[2];   /* [0] plain, [1] TLS */

	pthread_mutex_t lock;   /* the parking fields of every request, and what follows */
	pthread_cond_t drained; /* signalled when ntracked drops to 0 while stopping */
	HttpRequest *tracked;   /* requests that were ever parked and are not finished */
	size_t ntracked;
	atomic_bool shutting_down; /* set (under lock) by http_server_stop() */

	pthread_mutex_t log_lock; /* MHD may log from any of its threads */
	bool log_collect;         /* only while starting: the reason a start fails */
	char log_msg[200];
};

struct HttpRequest {
	HttpServer *srv;
	struct MHD_Connection *conn;
	const char *method; /* MHD's, valid for the whole request (set by the first call) */
	size_t max_body;    /* this request's body cap (HttpConfig.body_limit or max_body) */
	const char *url;    /* MHD's, already %-decoded, no query (set by the first call) */
	bool tls;
	uint64_t start_ns; /* monotonic: the request line came in */
	bool started;      /* the first access call (headers in) happened */
	bool trusted;      /* http_req_trust() was called */

	/* a refusal decided from the request line, answered by the first call */
	unsigned early_status;
	char early_msg[96];

	/* the body, owned by the worker thread */
	uint8_t *body;       /* NULL when empty or too large */
	size_t body_len;     /* bytes in body, excluding the NUL */
	size_t body_cap;     /* allocated bytes (body_len + 1 always fits) */
	size_t reserved;     /* bytes of the body budget this request holds (>= body_cap) */
	uint64_t expect_len; /* Content-Length, 0 when absent or chunked */
	bool has_body;       /* Content-Length > 0 or chunked */
	bool too_large;
	bool budget_short; /* the body budget ran out while a chunked body grew */
	bool body_done;    /* the handler may run */

	/* one handler call */
	bool in_handler;
	bool in_hook; /* the call is on_headers: no suspending */
	bool responded;
	bool suspended_now; /* http_suspend() was called in this handler call */

	bool tracked; /* on srv->tracked; written (under srv->lock) and read by the worker only */

	/* parking: under srv->lock. parked is written by other threads, so it
	 * sits apart from the worker's flags above (between pointers) and is
	 * atomic: the compiler widens loads of neighbouring bools into one
	 * word, which would otherwise read it racily. */
	HttpRequest *prev, *next;
	atomic_bool parked; /* suspended in MHD, no resume asked yet */

	void *data;
	void (*data_free)(void *);
	HttpStream *stream; /* a streamed answer (http_respond_stream), or NULL */

	/* response headers: "name\0value\0" × nhdr, inline until it grows */
	unsigned nhdr;
	size_t hdr_len, hdr_cap;
	char *hdr_buf;
	char hdr_inline[HTTP_HEADERS_INLINE];
};

static void stream_detach(HttpStream *st);

static const char plain_500[] = "handler did not answer\n";
static const char plain_503[] = "server is shutting down\n";
static const char text_type[] = "text/plain; charset=utf-8";

/* ---- MHD's log ---- */

/* MHD reports start-up failures (bad certificate, ...) only through its log:
 * keep the last line while starting, drop everything afterwards (the owner
 * of the server logs at its boundary, from our return codes). */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	HttpServer *s = cls;

	pthread_mutex_lock(&s->log_lock);
	if (s->log_collect) {
		int n = vsnprintf(s->log_msg, sizeof(s->log_msg), fmt, ap);

		if (n < 0) {
			s->log_msg[0] = '\0';
		} else {
			size_t len = strnlen(s->log_msg, sizeof(s->log_msg));

			while (len > 0 && (s->log_msg[len - 1] == '\n' || s->log_msg[len - 1] == '\r'))
				s->log_msg[--len] = '\0';
		}
	}
	pthread_mutex_unlock(&s->log_lock);
}

/* ---- requests ---- */

static HttpRequest *req_new(HttpDaemon *d, struct MHD_Connection *conn)
{
	HttpRequest *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	/* Only the header part is cleared: the inline header buffer is written
	 * before it is read. */
	memset(r, 0, offsetof(HttpRequest, hdr_inline));
	r->srv = d->srv;
	r->conn = conn;
	r->max_body = d->srv->max_body;
	r->tls = d->tls;
	r->start_ns = now_monotonic_ns();
	r->hdr_buf = r->hdr_inline;
	r->hdr_cap = sizeof(r->hdr_inline);
	return r;
}

/* ---- the body budget ---- */

/* Takes n bytes of the budget; false if they are not there. */
static bool budget_take(HttpServer *s, size_t n)
{
	size_t held = atomic_load(&s->body_held);

	do {
		if (n > s->body_budget - held)
			return false;
	} while (!atomic_compare_exchange_weak(&s->body_held, &held, held + n));
	return true;
}

/* Makes r hold at least want bytes of the budget. */
static bool reserve_to(HttpRequest *r, size_t want)
{
	if (want <= r->reserved)
		return true;
	if (!budget_take(r->srv, want - r->reserved))
		return false;
	r->reserved = want;
	return true;
}

/* Frees the body and gives its budget back. */
static void body_drop(HttpRequest *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	if (r->reserved) {
		atomic_fetch_sub(&r->srv->body_held, r->reserved);
		r->reserved = 0;
	}
}

static void req_free(HttpRequest *r)
{
	if (!r)
		return;
	if (r->data_free)
		r->data_free(r->data);
	if (r->hdr_buf != r->hdr_inline)
		free(r->hdr_buf);
	body_drop(r);
	free(r);
}

static void req_track(HttpRequest *r)
{
	HttpServer *s = r->srv;

	r->prev = NULL;
	r->next = s->tracked;
	if (s->tracked)
		s->tracked->prev = r;
	s->tracked = r;
	s->ntracked++;
	r->tracked = true;
}

static void req_untrack(HttpRequest *r)
{
	HttpServer *s = r->srv;

	if (r->prev)
		r->prev->next = r->next;
	else
		s->tracked = r->next;
	if (r->next)
		r->next->prev = r->prev;
	s->ntracked--;
	r->tracked = false;
	if (s->ntracked == 0 && atomic_load(&s->shutting_down))
		pthread_cond_broadcast(&s->drained);
}

/* Appends a piece of the body; past max_body the copy is dropped and only
 * the flag remains (the rest of the upload is read and discarded). The
 * buffer never outgrows the budget the request holds. */
static void body_append(HttpRequest *r, const char *data, size_t n)
{
	size_t max = r->max_body;

	if (r->too_large || r->budget_short)
		return;
	if (n > max - r->body_len) {
		r->too_large = true;
		body_drop(r);
		return;
	}
	if (r->body_len + n + 1 > r->body_cap) {
		size_t need = r->body_len + n + 1;
		size_t cap = r->body_cap ? r->body_cap : HTTP_BODY_FIRST_CAP;
		uint8_t *nb;

		if (cap > max + 1)
			cap = max + 1;
		while (cap < need)
			cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
		/* A body of known length was reserved whole: never beyond it. */
		if (r->expect_len && cap > r->expect_len + 1 && need <= r->expect_len + 1)
			cap = (size_t)r->expect_len + 1;
		if (!reserve_to(r, cap)) {
			cap = need; /* at least what this piece needs */
			if (!reserve_to(r, cap)) {
				r->budget_short = true;
				body_drop(r);
				return;
			}
		}
		nb = realloc(r->body, cap);
		if (!nb) {
			/* No memory for a body within the cap: the handler is told
			 * the body is too large rather than given part of it. */
			r->too_large = true;
			body_drop(r);
			return;
		}
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
}

/* What the headers say of the body (headers_check() has refused
 * Content-Length together with Transfer-Encoding, and MHD a malformed
 * Content-Length, with 400). */
static void body_plan(HttpRequest *r)
{
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t len;

	if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		r->has_body = true; /* chunked: reserved as it grows */
		return;
	}
	if (!cl || parse_u64(cl, strlen(cl), 0, UINT64_MAX, &len) < 0 || len == 0)
		return;
	r->has_body = true;
	if (len > r->max_body) {
		r->too_large = true;
		return;
	}
	r->expect_len = len;
}

/* A body of known length: its budget, then its whole buffer at once. The
 * pages of a large allocation are the kernel's until written, so a client
 * that announces a large body and sends nothing holds address space, not
 * memory (and the budget bounds the address space too); and a body that
 * arrives is never copied to grow (realloc's copies, kept a while by a
 * sanitizer's quarantine, would double the peak). False: no budget left. */
static bool body_reserve(HttpRequest *r)
{
	if (!r->expect_len)
		return true;
	if (!reserve_to(r, (size_t)r->expect_len + 1))
		return false;
	r->body = malloc((size_t)r->expect_len + 1);
	if (r->body) /* else body_append() allocates as the bytes come */
		r->body_cap = (size_t)r->expect_len + 1;
	return true;
}

/* ---- the bounds on a request's head ---- */

typedef struct HeadStats {
	size_t count, bytes;
	const char *clen; /* the first Content-Length */
	size_t clen_len;
	bool clen_differs; /* a second one with another value */
	bool chunked;      /* Transfer-Encoding present */
} HeadStats;

static enum MHD_Result head_count(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				  const char *value, size_t value_size)
{
	HeadStats *h = cls;

	(void)kind;
	h->count++;
	h->bytes += key_size + value_size;
	if (key_size == 14 && strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, 14) == 0) {
		if (!h->clen) {
			h->clen = value ? value : "";
			h->clen_len = value_size;
		} else if (value_size != h->clen_len || memcmp(value ? value : "", h->clen, value_size) != 0) {
			h->clen_differs = true;
		}
	} else if (key_size == 17 && strncasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING, 17) == 0) {
		h->chunked = true;
	}
	return MHD_YES;
}

/* The headers' bounds: 0, or the status to refuse with and msg. */
static unsigned headers_check(HttpRequest *r, char *msg, size_t cap)
{
	HeadStats h = {0};

	MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, head_count, &h);
	if (h.count > HTTP_MAX_REQ_HEADERS) {
		snprintf(msg, cap, "headers: %zu request headers, at most %u", h.count, HTTP_MAX_REQ_HEADERS);
		return 431;
	}
	if (h.bytes > HTTP_MAX_REQ_HEADER_BYTES) {
		snprintf(msg, cap, "headers: %zu bytes of request headers, at most %u", h.bytes,
			 HTTP_MAX_REQ_HEADER_BYTES);
		return 431;
	}
	if (h.clen_differs) {
		snprintf(msg, cap, "Content-Length: two headers with different values");
		return 400;
	}
	if (h.clen && h.chunked) {
		snprintf(msg, cap, "Content-Length: not allowed together with Transfer-Encoding");
		return 400;
	}
	return 0;
}

/* MHD_OPTION_NOTIFY_CONNECTION: never MHD's time-out lists here (fresh.h). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	HttpServer *s = cls;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		http_fresh_remove(s->fresh, *socket_context);
		*socket_context = NULL;
		return;
	}
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info)
		return;
	*socket_context = http_fresh_add(s->fresh, info->connect_fd);
	if (!*socket_context)
		shutdown(info->connect_fd, SHUT_RDWR); /* out of memory: no deadline to keep, so no connection */
}

/* The first request line is in: the untrusted idle time-out until trusted. */
static void conn_served(HttpServer *s, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	if (!s->fresh)
		return; /* one time-out for all: the daemon's default */
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (info && info->socket_context && http_fresh_served(s->fresh, info->socket_context))
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->untrusted_timeout_s);
}

/* MHD_OPTION_URI_LOG_CALLBACK: the request line is in, MHD has not split the
 * query yet. The request object starts here (MHD hands the return value to
 * every access call as *con_cls, and on_completed() frees it). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	HttpDaemon *d = cls;
	HttpRequest *r = req_new(d, conn);
	const char *q;
	size_t len, args = 0;

	conn_served(d->srv, conn);
	if (!r)
		return NULL; /* the first access call tries again */
	len = strlen(uri);
	q = memchr(uri, '?', len);
	if (q && q[1]) {
		args = 1;
		for (const char *p = q + 1; *p; p++)
			args += *p == '&';
	}
	if (args > HTTP_MAX_QUERY_ARGS) {
		r->early_status = 400;
		snprintf(r->early_msg, sizeof(r->early_msg), "query: %zu parameters, at most %u", args,
			 HTTP_MAX_QUERY_ARGS);
	} else if (len > HTTP_MAX_URI) {
		r->early_status = 414;
		snprintf(r->early_msg, sizeof(r->early_msg), "URI: %zu bytes, at most %u", len, HTTP_MAX_URI);
	}
	/* Refused: MHD is to store no parameter at all (see the top of the
	 * file). uri is MHD's writable copy of the request line, and MHD has
	 * already put the start of the query after q; the query now ends at
	 * once. (Should MHD ever pass a copy, this changes nothing harmful.) */
	if (r->early_status && q && q[1])
		((char *)q)[1] = '\0';
	return r;
}

static enum MHD_Result queue(HttpRequest *r, unsigned status, const char *content_type, struct MHD_Response *resp)
{
	enum MHD_Result ok = MHD_YES;
	const char *p = r->hdr_buf;

	if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
		ok = MHD_NO;
	for (unsigned i = 0; ok == MHD_YES && i < r->nhdr; i++) {
		const char *name = p;
		const char *value = name + strlen(name) + 1;

		p = value + strlen(value) + 1;
		if (MHD_add_response_header(resp, name, value) != MHD_YES)
			ok = MHD_NO;
	}
	if (ok == MHD_YES)
		ok = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ok == MHD_YES) {
		r->responded = true;
		if (r->srv->observe)
			r->srv->observe(r->srv->ctx, r, status, now_monotonic_ns() - r->start_ns);
	}
	return ok;
}

static enum MHD_Result run_handler(HttpRequest *r)
{
	HttpServer *s = r->srv;
	struct MHD_Response *resp;
	bool stopping;

	r->in_handler = true;
	r->suspended_now = false;
	s->handler(s->ctx, r);
	r->in_handler = false;
	if (r->responded || r->suspended_now)
		return MHD_YES;

	/* The handler broke its contract (or its answer could not be
	 * queued): answer for it, without its headers, which may be the
	 * reason its answer failed. */
	r->nhdr = 0;
	stopping = atomic_load(&s->shutting_down);
	resp = MHD_create_response_from_buffer(stopping ? sizeof(plain_503) - 1 : sizeof(plain_500) - 1,
					       (void *)(stopping ? plain_503 : plain_500), MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO; /* MHD closes the connection */
	return queue(r, stopping ? 503 : 500, text_type, resp);
}

/* Answers with this layer's refusal, in the application's shape when it
 * renders one (HttpConfig.refuse), else as text. */
static enum MHD_Result refuse(HttpRequest *r, unsigned status, unsigned retry_after_s, const char *msg)
{
	HttpServer *s = r->srv;

	r->in_handler = true;
	r->suspended_now = false;
	if (s->refuse)
		s->refuse(s->ctx, r, status, retry_after_s, msg);
	if (!r->responded) {
		char v[16];

		r->nhdr = 0;
		snprintf(v, sizeof(v), "%u", retry_after_s);
		if (retry_after_s)
			http_add_header(r, "Retry-After", v);
		http_respond(r, status, text_type, msg, strlen(msg));
	}
	r->in_handler = false;
	return r->responded ? MHD_YES : MHD_NO;
}

/* on_headers, called like a handler: true if it answered. */
static bool run_hook(HttpRequest *r)
{
	HttpServer *s = r->srv;

	r->in_handler = true;
	r->in_hook = true;
	r->suspended_now = false;
	s->on_headers(s->ctx, r);
	r->in_hook = false;
	r->in_handler = false;
	return r->responded;
}

static enum MHD_Result busy(HttpRequest *r)
{
	char msg[128];

	r->nhdr = 0;
	snprintf(msg, sizeof(msg), "busy: request bodies in progress hold the server's %zu MiB; retry in %u s",
		 r->srv->body_budget >> 20, HTTP_BUSY_RETRY_S);
	return refuse(r, 503, HTTP_BUSY_RETRY_S, msg);
}

/* The first access call: the head is in, nothing of the body read. */
static enum MHD_Result on_head(HttpRequest *r, const char *url, const char *method)
{
	HttpServer *s = r->srv;
	char msg[128];
	unsigned st;

	r->started = true;
	r->url = url;
	r->method = method;
	if (s->body_limit) {
		size_t lim = s->body_limit(s->ctx, method, url);

		if (lim)
			r->max_body = lim;
	}
	if (r->early_status)
		return refuse(r, r->early_status, 0, r->early_msg);
	st = headers_check(r, msg, sizeof(msg));
	if (st)
		return refuse(r, st, 0, msg);
	body_plan(r);
	if (r->has_body && s->on_headers && run_hook(r))
		return MHD_YES; /* refused before its body */
	if (r->too_large) {
		/* too large by Content-Length: the handler answers before the body */
		r->body_done = true;
		return run_handler(r);
	}
	if (!body_reserve(r))
		return busy(r);
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	HttpRequest *r = *con_cls;

	(void)version;
	if (!r) { /* on_uri() had no memory */
		r = req_new(cls, conn);
		if (!r)
			return MHD_NO;
		*con_cls = r;
	}
	if (!r->started)
		return on_head(r, url, method);
	if (*upload_data_size > 0) {
		body_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* The body is complete (MHD makes this call once it is), or the
	 * request was resumed. */
	if (r->budget_short && !r->body_done) {
		r->body_done = true;
		return busy(r);
	}
	r->body_done = true;
	return run_handler(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	HttpRequest *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->stream)
		stream_detach(r->stream); /* before the request goes: a producer may be resuming it */
	if (r->tracked) {                 /* read by the thread that wrote it */
		pthread_mutex_lock(&r->srv->lock);
		req_untrack(r);
		pthread_mutex_unlock(&r->srv->lock);
	}
	*con_cls = NULL;
	req_free(r);
}

/* ---- request accessors ---- */

const char *http_req_method(const HttpRequest *r)
{
	return r->method;
}

const char *http_req_path(const HttpRequest *r)
{
	return r->url;
}

const char *http_req_header(const HttpRequest *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

typedef struct QueryFind {
	const char *key;
	size_t key_len;
	const char *value;
	bool found;
} QueryFind;

static enum MHD_Result query_match(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				   const char *value, size_t value_size)
{
	QueryFind *q = cls;

	(void)kind;
	(void)value_size;
	if (key_size != q->key_len || memcmp(key, q->key, key_size) != 0)
		return MHD_YES;
	q->value = value ? value : ""; /* "?flag" without '=' */
	q->found = true;
	return MHD_NO;
}

/* MHD's own lookup compares keys without regard to case, which is right for
 * headers but not for query keys: match them exactly. */
const char *http_req_query(const HttpRequest *r, const char *key)
{
	QueryFind q = {.key = key, .key_len = strlen(key)};

	MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, query_match, &q);
	return q.found ? q.value : NULL;
}

const uint8_t *http_req_body(const HttpRequest *r, size_t *ret_len)
{
	if (ret_len)
		*ret_len = r->body ? r->body_len : 0;
	return r->body ? r->body : (const uint8_t *)"";
}

bool http_req_body_too_large(const HttpRequest *r)
{
	return r->too_large;
}

bool http_req_is_tls(const HttpRequest *r)
{
	return r->tls;
}

bool http_req_shutting_down(const HttpRequest *r)
{
	return atomic_load(&r->srv->shutting_down);
}

void http_req_trust(HttpRequest *r)
{
	HttpServer *s = r->srv;
	const union MHD_ConnectionInfo *info;

	if (r->trusted || r->suspended_now || !r->in_handler)
		return;
	r->trusted = true;
	info = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
	if (info && info->connection_timeout == s->timeout_s)
		return; /* trusted by an earlier request on this connection */
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, s->timeout_s);
}

void http_req_set_data(HttpRequest *r, void *data, void (*free_fn)(void *))
{
	if (r->data_free && r->data != data)
		r->data_free(r->data);
	r->data = data;
	r->data_free = free_fn;
}

void *http_req_get_data(const HttpRequest *r)
{
	return r->data;
}

/* ---- answers ---- */

static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		/* RFC 9110 token characters */
		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
			return false;
	}
	return true;
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false; /* no response splitting */
	return true;
}

int http_add_header(HttpRequest *r, const char *name, const char *value)
{
	size_t nlen, vlen, need;

	if (r->nhdr >= HTTP_MAX_HEADERS)
		return -E2BIG;
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	nlen = strlen(name);
	vlen = strlen(value);
	if (nlen + vlen + 2 > HTTP_HEADERS_MAX_BYTES - r->hdr_len)
		return -E2BIG;
	need = r->hdr_len + nlen + vlen + 2;
	if (need > r->hdr_cap) {
		size_t cap = r->hdr_cap * 2 > need ? r->hdr_cap * 2 : need;
		char *nb;

		if (r->hdr_buf == r->hdr_inline) {
			nb = malloc(cap);
			if (nb)
				memcpy(nb, r->hdr_buf, r->hdr_len);
		} else {
			nb = realloc(r->hdr_buf, cap);
		}
		if (!nb)
			return -ENOMEM;
		r->hdr_buf = nb;
		r->hdr_cap = cap;
	}
	memcpy(r->hdr_buf + r->hdr_len, name, nlen + 1);
	memcpy(r->hdr_buf + r->hdr_len + nlen + 1, value, vlen + 1);
	r->hdr_len = need;
	r->nhdr++;
	return 0;
}

static int answer_check(const HttpRequest *r, unsigned status)
{
	if (!r->in_handler)
		return -EPERM;
	if (r->responded)
		return -EALREADY;
	if (r->suspended_now)
		return -EBUSY;
	if (status < 100 || status > 999)
		return -EINVAL;
	return 0;
}

int http_respond(HttpRequest *r, unsigned status, const char *content_type, const void *body, size_t len)
{
	struct MHD_Response *resp;
	int e = answer_check(r, status);

	if (e < 0)
		return e;
	if (len > 0 && !body)
		return -EINVAL;
	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return -ENOMEM;
	return queue(r, status, content_type, resp) == MHD_YES ? 0 : -EIO;
}

int http_respond_fd(HttpRequest *r, unsigned status, const char *content_type, int fd, uint64_t len)
{
	struct MHD_Response *resp;
	off_t off;
	int e = answer_check(r, status);

	if (e < 0)
		goto fail;
	/* Only seekable files: MHD would read a pipe with blocking read()s on
	 * the worker thread, stalling every other connection it serves. */
	off = lseek(fd, 0, SEEK_CUR);
	if (off < 0) {
		e = -errno;
		goto fail;
	}
	if (len > (uint64_t)INT64_MAX - (uint64_t)off) {
		e = -EINVAL;
		goto fail;
	}
	resp = MHD_create_response_from_fd_at_offset64(len, fd, (uint64_t)off);
	if (!resp) {
		e = -ENOMEM;
		goto fail;
	}
	/* from here on the response owns fd */
	return queue(r, status, content_type, resp) == MHD_YES ? 0 : -EIO;
fail:
	close(fd);
	return e;
}

/* ---- streamed answers (http_respond_stream) ----
 *
 * A ring buffer between a producer thread and MHD's content reader. The
 * reader copies what is there; when the buffer is empty it parks the
 * connection (as http_suspend does, so that http_server_stop() resumes it)
 * and returns 0, and the producer's next write or its end resumes it. The
 * producer waits while the buffer is full. Three holders keep the stream
 * alive (the producer until http_stream_end, MHD's response until it is
 * freed, the request until it completes); the last one frees it. Locks:
 * the stream's, then the server's, never the other way. */

struct HttpStream {
	pthread_mutex_t lock;
	pthread_cond_t space; /* the producer waits here while the buffer is full */
	uint8_t *buf;
	size_t cap, head, len; /* ring: len bytes from head */
	HttpRequest *req;      /* NULL once the request completed */
	bool waiting;          /* the reader parked the connection for want of bytes */
	bool ended, ok;        /* http_stream_end() was called, and how */
	bool gone;             /* the client or the server went: writes fail */
	bool cancelled;        /* http_stream_cancel(): writes fail */
	unsigned refs;
	struct MHD_Response *resp; /* ours while the reader runs: the trailer goes on it at the end */
	char *trailer;             /* "name\0value\0" (http_stream_trailer), or NULL */
};

static void stream_unref_locked(HttpStream *st)
{
	bool last = --st->refs == 0;

	pthread_mutex_unlock(&st->lock);
	if (!last)
		return;
	pthread_cond_destroy(&st->space);
	pthread_mutex_destroy(&st->lock);
	free(st->trailer);
	free(st->buf);
	free(st);
}

/* Resumes the reader if it waits (st->lock held). */
static void stream_wake_locked(HttpStream *st)
{
	if (st->waiting && st->req) {
		st->waiting = false;
		http_resume(st->req);
	}
}

static void stream_detach(HttpStream *st)
{
	pthread_mutex_lock(&st->lock);
	st->req = NULL;
	st->gone = true;
	pthread_cond_broadcast(&st->space);
	stream_unref_locked(st);
}

static void stream_response_free(void *cls)
{
	HttpStream *st = cls;

	pthread_mutex_lock(&st->lock);
	st->gone = true;
	pthread_cond_broadcast(&st->space);
	stream_unref_locked(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	HttpStream *st = cls;
	HttpServer *srv;
	size_t n = 0;

	(void)pos;
	pthread_mutex_lock(&st->lock);
	while (n < max && st->len > 0) {
		size_t k = st->cap - st->head < st->len ? st->cap - st->head : st->len;

		if (k > max - n)
			k = max - n;
		memcpy(out + n, st->buf + st->head, k);
		n += k;
		st->head = (st->head + k) % st->cap;
		st->len -= k;
	}
	if (n > 0) {
		pthread_cond_broadcast(&st->space);
		pthread_mutex_unlock(&st->lock);
		return (ssize_t)n;
	}
	if (st->ended || !st->req) {
		bool ok = st->ended && st->ok;

		/* On MHD's thread, in its reader: nothing else touches the
		 * response's headers now. Sent after the last chunk. */
		if (ok && st->trailer)
			MHD_add_response_footer(st->resp, st->trailer, st->trailer + strlen(st->trailer) + 1);
		pthread_mutex_unlock(&st->lock);
		return ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	/* Nothing yet: park until the producer writes or ends. */
	srv = st->req->srv;
	pthread_mutex_lock(&srv->lock);
	if (atomic_load(&srv->shutting_down)) {
		pthread_mutex_unlock(&srv->lock);
		st->gone = true;
		pthread_cond_broadcast(&st->space);
		pthread_mutex_unlock(&st->lock);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (!st->req->tracked)
		req_track(st->req);
	atomic_store(&st->req->parked, true);
	MHD_suspend_connection(st->req->conn);
	pthread_mutex_unlock(&srv->lock);
	st->waiting = true;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

int http_respond_stream(HttpRequest *r, unsigned status, const char *content_type, size_t buffer, HttpStream **ret)
{
	struct MHD_Response *resp;
	HttpStream *st;
	int e = answer_check(r, status);

	if (e < 0)
		return e;
	if (r->stream)
		return -EALREADY;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->cap = buffer ? buffer : HTTP_STREAM_BUFFER;
	st->buf = malloc(st->cap);
	if (!st->buf) {
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->space, NULL);
	st->req = r;
	st->refs = 3; /* producer, response, request */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read, st,
						 stream_response_free);
	if (!resp) {
		pthread_cond_destroy(&st->space);
		pthread_mutex_destroy(&st->lock);
		free(st->buf);
		free(st);
		return -ENOMEM;
	}
	st->resp = resp;
	r->stream = st; /* the request's hold */
	if (queue(r, status, content_type, resp) != MHD_YES) {
		/* MHD freed the response (its hold); the request's stays. */
		pthread_mutex_lock(&st->lock);
		st->gone = true;
		stream_unref_locked(st); /* the producer's: there will be none */
		return -EIO;
	}
	*ret = st;
	return 0;
}

int http_stream_write(HttpStream *st, const void *p, size_t n)
{
	const uint8_t *b = p;

	pthread_mutex_lock(&st->lock);
	while (n > 0) {
		/* What fits the buffer goes in whole: a cancel leaves none of it. */
		size_t need = n <= st->cap ? n : 1, tail, k;

		while (st->cap - st->len < need && !st->gone && !st->cancelled)
			pthread_cond_wait(&st->space, &st->lock);
		if (st->gone || st->cancelled) {
			int r = st->gone ? -EPIPE : -ECANCELED;

			pthread_mutex_unlock(&st->lock);
			return r;
		}
		tail = (st->head + st->len) % st->cap;
		k = st->cap - st->len;
		if (k > st->cap - tail)
			k = st->cap - tail;
		if (k > n)
			k = n;
		memcpy(st->buf + tail, b, k);
		st->len += k;
		b += k;
		n -= k;
		stream_wake_locked(st);
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

void http_stream_cancel(HttpStream *st)
{
	pthread_mutex_lock(&st->lock);
	st->cancelled = true;
	pthread_cond_broadcast(&st->space);
	pthread_mutex_unlock(&st->lock);
}

int http_stream_check(HttpStream *st)
{
	int r = 0;

	pthread_mutex_lock(&st->lock);
	if (st->cancelled) {
		r = -ECANCELED;
	} else if (st->gone || !st->req) {
		r = -EPIPE;
	} else if (st->waiting) {
		/* Parked: MHD does not look at the socket. Its descriptor stays
		 * open while st->req is set (the request completes, and detaches
		 * under this lock, before MHD closes it). */
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(st->req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct pollfd p = {.fd = ci ? ci->connect_fd : -1, .events = POLLRDHUP};

		if (p.fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			st->gone = true;
			r = -EPIPE;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

int http_stream_trailer(HttpStream *st, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value);
	char *t;
	int r = 0;

	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	if (nlen + vlen + 2 > HTTP_STREAM_TRAILER_MAX)
		return -E2BIG;
	t = malloc(nlen + vlen + 2);
	if (!t)
		return -ENOMEM;
	memcpy(t, name, nlen + 1);
	memcpy(t + nlen + 1, value, vlen + 1);
	pthread_mutex_lock(&st->lock);
	if (st->ended) {
		r = -EALREADY;
	} else {
		free(st->trailer);
		st->trailer = t;
		t = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	free(t);
	return r;
}

void http_stream_end(HttpStream *st, bool ok)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->ended = true;
	st->ok = ok;
	stream_wake_locked(st);
	stream_unref_locked(st);
}

int http_suspend(HttpRequest *r)
{
	HttpServer *s = r->srv;

	if (!r->in_handler || r->in_hook)
		return -EPERM;
	if (r->responded)
		return -EALREADY;
	if (r->suspended_now)
		return -EBUSY;
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->shutting_down)) {
		pthread_mutex_unlock(&s->lock);
		return -ESHUTDOWN;
	}
	if (!r->tracked)
		req_track(r);
	atomic_store(&r->parked, true);
	r->suspended_now = true;
	MHD_suspend_connection(r->conn);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void http_resume(HttpRequest *r)
{
	HttpServer *s;

	if (!r)
		return;
	s = r->srv;
	pthread_mutex_lock(&s->lock);
	if (atomic_exchange(&r->parked, false)) /* else already resumed (by http_server_stop, say) */
		MHD_resume_connection(r->conn);
	pthread_mutex_unlock(&s->lock);
}

/* ---- the server ---- */

/* Checked here rather than left to MHD, whose only report is a log line. */
static int check_tls_pair(const char *cert_pem, const char *key_pem, ErrBuf *err)
{
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
	gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
	int g;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return errbuf_set(err, -ENOMEM, "TLS credentials: out of memory");
	g = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (g < 0)
		return errbuf_set(err, -EINVAL, "TLS certificate/key: %s", gnutls_strerror(g));
	return 0;
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > (long)HTTP_MAX_THREADS ? HTTP_MAX_THREADS : (unsigned)n;
}

static int daemon_start(HttpServer *s, HttpDaemon *d, const HttpConfig *cfg, const char *spec, ErrBuf *err)
{
	unsigned threads = cfg->threads ? cfg->threads : default_threads();
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem opts[16];
	const union MHD_DaemonInfo *info;
	struct stat st;
	size_t n = 0;
	bool v6 = false;
	int fd = -1, r;

	if (threads > HTTP_MAX_THREADS)
		threads = HTTP_MAX_THREADS;
	r = http_listen_socket(spec, &v6, &fd, err);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0) {
		r = errbuf_errno(err, "fstat listening socket");
		close(fd);
		return r;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (d->tls)
		flags |= MHD_USE_TLS;

#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
	OPT(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
	OPT(MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->conn_memory_limit ? cfg->conn_memory_limit : HTTP_DEFAULT_MEMORY,
	    NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONN, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_address ? cfg->max_per_address : HTTP_DEFAULT_PER_ADDRESS,
	    NULL);
	/* Trusted is the default: MHD keeps those on its sorted list (fresh.h). */
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, s->timeout_s, NULL);
	if (s->fresh)
		OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
	OPT(MHD_OPTION_URI_LOG_CALLBACK, on_uri, d);
	if (threads > 1)
		OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
	if (d->tls) {
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert_pem);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key_pem);
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

	pthread_mutex_lock(&s->log_lock);
	s->log_collect = true;
	s->log_msg[0] = '\0';
	pthread_mutex_unlock(&s->log_lock);

	d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, d, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);

	pthread_mutex_lock(&s->log_lock);
	s->log_collect = false;
	if (!d->mhd)
		r = errbuf_set(err, -EIO, "starting the %s server on %s: %s", d->tls ? "HTTPS" : "HTTP", spec,
			       s->log_msg[0] ? s->log_msg : "libmicrohttpd failed");
	pthread_mutex_unlock(&s->log_lock);
	if (!d->mhd) {
		/* Depending on where it failed, MHD has or has not closed our
		 * socket. Close it only if the number still names that socket
		 * (another thread may have reused the number already). */
		struct stat now;

		if (fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
			close(fd);
		return r;
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	d->port = info ? info->port : 0;
	return 0;
}

int http_server_start(const HttpConfig *cfg, HttpServer **ret, ErrBuf *err)
{
	HttpServer *s;
	pthread_condattr_t ca;
	int r;

	if (!cfg || !ret || !cfg->handler)
		return errbuf_set(err, -EINVAL, "no handler");
	if (!cfg->http_addr && !cfg->https_addr)
		return errbuf_set(err, -EINVAL, "neither an HTTP nor an HTTPS address");
	if (cfg->https_addr) {
		if (!cfg->tls_cert_pem || !cfg->tls_key_pem)
			return errbuf_set(err, -EINVAL, "HTTPS needs a certificate and a key");
		r = check_tls_pair(cfg->tls_cert_pem, cfg->tls_key_pem, err);
		if (r < 0)
			return r;
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	s->handler = cfg->handler;
	s->on_headers = cfg->on_headers;
	s->refuse = cfg->refuse;
	s->observe = cfg->observe;
	s->ctx = cfg->ctx;
	s->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	s->body_limit = cfg->body_limit;
	s->timeout_s = cfg->timeout_s ? cfg->timeout_s : HTTP_DEFAULT_TIMEOUT_S;
	s->untrusted_timeout_s = cfg->untrusted_timeout_s ? cfg->untrusted_timeout_s : HTTP_DEFAULT_UNTRUSTED_TIMEOUT_S;
	if (s->untrusted_timeout_s > s->timeout_s)
		s->untrusted_timeout_s = s->timeout_s;
	s->body_budget = cfg->body_budget ? cfg->body_budget : HTTP_DEFAULT_BODY_BUDGET;
	atomic_init(&s->body_held, 0);
	atomic_init(&s->shutting_down, false);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->log_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->drained, &ca);
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < 2; i++) {
		s->daemons[i].srv = s;
		s->daemons[i].tls = i == 1;
	}
	if (s->untrusted_timeout_s < s->timeout_s) {
		r = http_fresh_start(s->untrusted_timeout_s, &s->fresh, err);
		if (r < 0)
			goto fail;
	}

	if (cfg->http_addr) {
		r = daemon_start(s, &s->daemons[0], cfg, cfg->http_addr, err);
		if (r < 0)
			goto fail;
	}
	if (cfg->https_addr) {
		r = daemon_start(s, &s->daemons[1], cfg, cfg->https_addr, err);
		if (r < 0)
			goto fail;
	}
	*ret = s;
	return 0;
fail:
	http_server_stop(s);
	return r;
}

size_t http_server_body_held(const HttpServer *s)
{
	return atomic_load(&((HttpServer *)s)->body_held);
}

uint16_t http_server_port(const HttpServer *s, bool tls)
{
	if (!s)
		return 0;
	return s->daemons[tls ? 1 : 0].mhd ? s->daemons[tls ? 1 : 0].port : 0;
}

void http_server_stop(HttpServer *s)
{
	struct timespec deadline;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->shutting_down, true);
	for (HttpRequest *r = s->tracked; r; r = r->next) {
		if (atomic_exchange(&r->parked, false))
			MHD_resume_connection(r->conn);
	}
	/* Wait for the resumed requests to be answered and sent. A client
	 * that does not read its answer is cut off by the idle time-out. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)s->timeout_s + HTTP_STOP_GRACE_S;
	while (s->ntracked > 0)
		if (pthread_cond_timedwait(&s->drained, &s->lock, &deadline) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->lock);

	/* Nothing is suspended any more (what is still tracked was resumed),
	 * which MHD_stop_daemon() requires. It finishes what remains. */
	for (int i = 0; i < 2; i++)
		if (s->daemons[i].mhd)
			MHD_stop_daemon(s->daemons[i].mhd);
	http_fresh_free(s->fresh); /* after the daemons: their closed hooks emptied it */
	pthread_cond_destroy(&s->drained);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->log_lock);
	free(s);
}
