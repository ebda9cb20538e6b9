/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP(S) server: libmicrohttpd wrapped in this one module (systemd's
 * journal-remote model), so nothing else includes <microhttpd.h>.
 *
 * One HttpServer runs one or two MHD daemons (plain HTTP, HTTPS with GnuTLS,
 * TLS 1.2 and 1.3 only), each with an epoll thread pool, a per-connection
 * memory limit, a connection limit, a limit per client address and idle
 * time-outs for slow clients. The request body is collected up to max_body
 * bytes; a larger body is discarded as it arrives and the handler is told
 * (http_req_body_too_large) so it can answer 413 in its own dialect.
 *
 * Bounds, checked when a request's headers are in and before anything of its
 * body is read (HttpConfig.refuse renders the answer in the application's
 * shape; without it, text/plain):
 *   - request target over HTTP_MAX_URI bytes                     → 414
 *   - more than HTTP_MAX_QUERY_ARGS query parameters             → 400
 *   - more than HTTP_MAX_REQ_HEADERS headers, or their names and
 *     values over HTTP_MAX_REQ_HEADER_BYTES                      → 431
 *   - two Content-Length headers that differ, or Content-Length
 *     together with Transfer-Encoding (request smuggling)        → 400
 *   - body bytes held by all requests together over body_budget  → 503 with
 *     Retry-After (the body is refused, not queued: the client retries)
 * Requests beyond what MHD itself can hold (a header block over the
 * per-connection memory, a Content-Length that is not a number, broken
 * chunked framing, an HTTP version other than 1.x) are refused by MHD with
 * its own short body; nothing of ours runs for them.
 *
 * Authentication before the body: on_headers (optional) is called once the
 * headers of a request that announces a body are in, before any body byte
 * is read. It may answer (401, 403, 415, ...): the body is then never read
 * and the connection closes after the answer. A connection must send its
 * first request line (TLS handshake included) within untrusted_timeout_s of
 * its connect; from then on it has the idle time-out untrusted_timeout_s
 * until http_req_trust() (called once credentials were checked) gives it
 * the normal timeout_s for good.
 *
 * Handler contract: the handler is called once per request when the whole body
 * is in (again after http_resume). It must, before returning, either answer
 * with exactly one http_respond*() or park the request with http_suspend().
 * Returning without doing either answers 500. Headers added with
 * http_add_header() go on the answer.
 *
 * Long-poll: http_suspend() parks a request; any thread may later call
 * http_resume() exactly once, after which the handler is called again for the
 * same request (http_req_set_data() keeps state across calls). The caller must
 * make suspend and a concurrent resume race-free (e.g. under its own lock:
 * register the waiter and suspend while holding it). When the server stops,
 * every parked request is resumed with http_req_shutting_down() true; the
 * handler then answers (503) and must not suspend again (http_suspend then
 * fails with -ESHUTDOWN). The resumer should call http_resume() under the
 * same lock the resumed handler takes to deregister its waiter: a request
 * that was resumed by http_server_stop() and answered is freed, and a late
 * http_resume() on it would touch freed memory. A parked request has no idle
 * time-out and MHD does not notice its client leaving: long-polls resume it
 * after their own wait.
 *
 * Paths are %-decoded by MHD before the handler sees them ("%2F" becomes
 * '/'); query values are decoded too, query keys compare exactly, header
 * names without regard to case. http_respond*() and http_suspend() work only
 * inside the handler, on its thread; http_server_stop() must not be called
 * from a handler.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

typedef void (*HttpHandler)(void *ctx, HttpRequest *req);

#define HTTP_MAX_URI (8u * 1024)               /* request target, path and query */
#define HTTP_MAX_QUERY_ARGS 64u                /* query parameters of one request */
#define HTTP_MAX_REQ_HEADERS 64u               /* request headers */
#define HTTP_MAX_REQ_HEADER_BYTES (16u * 1024) /* names and values of the request headers */
#define HTTP_DEFAULT_BODY_BUDGET (256u * 1024 * 1024)
#define HTTP_DEFAULT_PER_ADDRESS 128u
#define HTTP_BUSY_RETRY_S 1u /* Retry-After of a 503 for the body budget */

typedef struct HttpConfig {
	const char *http_addr;    /* "ADDR:PORT" ("[::1]:8080" for IPv6), or NULL for none */
	const char *https_addr;   /* same, or NULL; needs tls_cert_pem and tls_key_pem */
	const char *tls_cert_pem; /* PEM text (certificate chain) */
	const char *tls_key_pem;  /* PEM text (private key) */
	unsigned threads;         /* thread pool size per daemon; 0 = number of CPUs */
	size_t conn_memory_limit; /* bytes per connection for headers etc.; 0 = 36 KiB */
	size_t max_body;          /* request body cap; 0 = 1 MiB */
	size_t body_budget;       /* body bytes held by all requests at once; 0 = HTTP_DEFAULT_BODY_BUDGET */
	unsigned max_connections; /* per listener; 0 = 4096 */
	unsigned max_per_address; /* connections from one client address, per listener; 0 = HTTP_DEFAULT_PER_ADDRESS */
	unsigned timeout_s;       /* idle time-out of a trusted connection; 0 = 30 s */
	unsigned untrusted_timeout_s; /* idle time-out before http_req_trust(); 0 = 10 s; at most timeout_s */
	/* Optional: a route's own body cap (0 = max_body), decided from the
	 * request line before any body byte is read, e.g. a larger one for
	 * agents' result uploads than for JSON requests. */
	size_t (*body_limit)(void *ctx, const char *method, const char *path);
	/* Optional: called on the worker thread when the headers of a request
	 * that announces a body (Content-Length > 0, or chunked) are in, before
	 * any body byte is read. It may answer with one http_respond*() (not
	 * http_suspend): the body is then never read and the connection closes
	 * after the answer. Returning without answering reads the body and
	 * calls the handler as usual. */
	HttpHandler on_headers;
	/* Optional: renders a refusal of this layer (the bounds above) in the
	 * application's shape. Called like a handler; must answer with
	 * http_respond(r, status, ...); message names the bound first ("query:
	 * 1000 parameters, at most 64"). retry_after_s > 0 (a 503): the answer
	 * says when to try again (Retry-After). */
	void (*refuse)(void *ctx, HttpRequest *req, unsigned status, unsigned retry_after_s, const char *message);
	/* Optional: called on the worker thread each time an answer of ours
	 * (handler, on_headers, refuse, or this layer's own 500/503) is queued,
	 * with its status and the time since the request line came in (for a
	 * parked request, the wait included; a streamed body's transfer is
	 * not). The request's method and path may be read; nothing else may be
	 * done with it. MHD's own refusals are not seen. */
	void (*observe)(void *ctx, const HttpRequest *req, unsigned status, uint64_t elapsed_ns);
	HttpHandler handler;
	void *ctx;
} HttpConfig;

/* Binds and starts serving. -errno with err (address in use, bad PEM, ...). */
int http_server_start(const HttpConfig *cfg, HttpServer **ret, ErrBuf *err);
/* The port actually bound (useful with port 0); 0 if that daemon is off. */
uint16_t http_server_port(const HttpServer *s, bool tls);
/* Bytes of the body budget that requests hold now (reserved on their
 * headers, given back when they end): for tests and metrics. */
size_t http_server_body_held(const HttpServer *s);
/* Resumes parked requests (shutting down), stops the daemons, frees. NULL is fine. */
void http_server_stop(HttpServer *s);

/* ---- the request ---- */
const char *http_req_method(const HttpRequest *r);                   /* "GET", ... */
const char *http_req_path(const HttpRequest *r);                     /* decoded path, no query */
const char *http_req_header(const HttpRequest *r, const char *name); /* case-insensitive; NULL if absent */
const char *http_req_query(const HttpRequest *r, const char *key);   /* decoded; NULL if absent */
const uint8_t *http_req_body(const HttpRequest *r, size_t *ret_len); /* NUL-terminated copy; len excludes it */
bool http_req_body_too_large(const HttpRequest *r);
bool http_req_is_tls(const HttpRequest *r);
bool http_req_shutting_down(const HttpRequest *r);
/* The request's credentials were checked: its connection keeps the normal
 * idle time-out from now on (instead of the untrusted one). Worker thread,
 * inside the handler or on_headers, before http_suspend. */
void http_req_trust(HttpRequest *r);
void http_req_set_data(HttpRequest *r, void *data, void (*free_fn)(void *)); /* freed when the request ends */
void *http_req_get_data(const HttpRequest *r);

/* ---- the answer ---- */
/* Adds a response header (copied). -E2BIG past 32 headers. */
int http_add_header(HttpRequest *r, const char *name, const char *value);
/* Answers with a copy of body[0..len) (content_type NULL: no Content-Type). */
int http_respond(HttpRequest *r, unsigned status, const char *content_type, const void *body, size_t len);
/* Answers with len bytes of fd from its current offset, streamed; takes fd
 * (closed when done, also on failure). fd must be seekable (a regular file):
 * a pipe gets -ESPIPE, since reading it would block the server's thread. */
int http_respond_fd(HttpRequest *r, unsigned status, const char *content_type, int fd, uint64_t len);
/* ---- streamed answers: a body another thread produces as it goes ---- */
typedef struct HttpStream HttpStream;
/* Answers with a body of unknown length (chunked transfer encoding), which
 * a producer thread then writes through *ret with http_stream_write() and
 * ends with http_stream_end(). At most `buffer` bytes (0 = 1 MiB) wait
 * between the producer and the client: a slow client slows the producer,
 * and no server thread ever waits for the producer (the connection is
 * parked while the buffer is empty). In the handler only, like every
 * http_respond*(). */
int http_respond_stream(HttpRequest *r, unsigned status, const char *content_type, size_t buffer, HttpStream **ret);
/* Queues p[0..n), waiting for room: all of it at once when n fits the
 * buffer, else piece by piece. 0, or -EPIPE once the client went away or
 * the server is stopping (the producer should give up), or -ECANCELED. */
int http_stream_write(HttpStream *s, const void *p, size_t n);
/* Makes http_stream_write() fail with -ECANCELED, now (a producer waiting
 * for room wakes) and from then on: for a producer told to stop while a slow
 * client holds it. A write that fits the buffer is then queued whole or not
 * at all, so the body still ends where a write ended. Any thread, before
 * http_stream_end(). */
void http_stream_cancel(HttpStream *s);
/* Whether the client is still there: 0, -EPIPE once it went away (or the
 * server is stopping), -ECANCELED once cancelled. While the buffer is empty
 * the connection is parked and nothing reads its socket, so a client that
 * left an idle stream is seen only here: its end of the connection closed
 * (a client that only shuts down its sending side counts as gone). Later
 * writes then fail with -EPIPE. Any thread, before http_stream_end(). */
int http_stream_check(HttpStream *s);
/* A trailer field sent after the body when it ends well (ok): how the
 * stream ended, for a client that reads on to the end (curl, libcurl's
 * header callback). Announce it with a "Trailer" header before answering.
 * Call before http_stream_end(); a later call replaces. -EINVAL (not a
 * token, or CR/LF in the value), -E2BIG (over 1 KiB), -EALREADY (ended). */
int http_stream_trailer(HttpStream *s, const char *name, const char *value);
/* Ends the body: ok sends its end; !ok cuts the connection mid-body, so the
 * client sees a broken transfer rather than a short file. s is gone after
 * this call. NULL is fine. */
void http_stream_end(HttpStream *s, bool ok);

/* Parks the request (long-poll). */
int http_suspend(HttpRequest *r);
/* Un-parks it: the handler runs again soon. Any thread; once per suspend. */
void http_resume(HttpRequest *r);
