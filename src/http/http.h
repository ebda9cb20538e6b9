/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP(S) server: libmicrohttpd wrapped in this one module (systemd's
 * journal-remote model), so nothing else includes <microhttpd.h>.
 *
 * One HttpServer runs one or two MHD daemons (plain HTTP, HTTPS with GnuTLS),
 * each with an epoll thread pool, a per-connection memory limit, a connection
 * limit and an idle time-out for slow clients. The request body is collected
 * up to max_body bytes; a larger body is discarded as it arrives and the
 * handler is told (http_req_body_too_large) so it can answer 413 in its own
 * dialect.
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

typedef struct HttpConfig {
	const char *http_addr;    /* "ADDR:PORT" ("[::1]:8080" for IPv6), or NULL for none */
	const char *https_addr;   /* same, or NULL; needs tls_cert_pem and tls_key_pem */
	const char *tls_cert_pem; /* PEM text (certificate chain) */
	const char *tls_key_pem;  /* PEM text (private key) */
	unsigned threads;         /* thread pool size per daemon; 0 = number of CPUs */
	size_t conn_memory_limit; /* bytes per connection for headers etc.; 0 = 64 KiB */
	size_t max_body;          /* request body cap; 0 = 1 MiB */
	unsigned max_connections; /* 0 = 4096 */
	unsigned timeout_s;       /* idle connection time-out; 0 = 30 s */
	/* Optional: a route's own body cap (0 = max_body), decided from the
	 * request line before any body byte is read, e.g. a larger one for
	 * agents' result uploads than for JSON requests. */
	size_t (*body_limit)(void *ctx, const char *method, const char *path);
	HttpHandler handler;
	void *ctx;
} HttpConfig;

/* Binds and starts serving. -errno with err (address in use, bad PEM, ...). */
int http_server_start(const HttpConfig *cfg, HttpServer **ret, ErrBuf *err);
/* The port actually bound (useful with port 0); 0 if that daemon is off. */
uint16_t http_server_port(const HttpServer *s, bool tls);
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
/* Queues p[0..n), waiting while the buffer is full. 0, or -EPIPE once the
 * client went away or the server is stopping (the producer should give up). */
int http_stream_write(HttpStream *s, const void *p, size_t n);
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
