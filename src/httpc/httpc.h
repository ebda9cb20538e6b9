/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one HTTP(S) client of pcapd (libcurl underneath; <curl/curl.h> is seen
 * only in src/httpc). The agent's calls to the controller, pcapctl's calls to
 * the API and the buckets' calls to object stores all go through it.
 *
 * One Httpc per thread: a curl handle is never shared. The connection (and
 * curl's DNS and TLS session caches) is kept between requests; every request
 * starts from a clean set of options. A connection idle for more than
 * HTTPC_MAX_IDLE_S is not reused (the controller closes idle connections at
 * 30 s; a request written into one it has just closed fails with "Broken
 * pipe"), and a streamed body can be rewound, so curl may resend it.
 *
 * Bodies:
 *  - a request body is in memory (body, body_n) or streamed from a read
 *    callback that is asked for bytes at an offset (so curl can rewind and
 *    resend on a reused connection that the server had closed);
 *  - an answer's body is buffered, never past its bound (HttpcRequest.max_body:
 *    the transfer is aborted with -EMSGSIZE instead of growing the buffer), or
 *    streamed to a write callback when stream_if() says so for the answer's
 *    status and Content-Type (by default: a 2xx answer is streamed when a write
 *    callback is given, and an error answer is buffered so its words can be
 *    read);
 *  - the answer's headers (of the final answer, after any 100 Continue) are
 *    kept, at most HTTPC_MAX_HEADER_BYTES, for httpc_header().
 *
 * Time: a connect time-out (HttpcConfig), a whole-request time-out and a
 * stall time-out (no byte moved for that long) per request.
 *
 * Cancelling: httpc_cancel() from any thread makes the running request, and
 * every later one, return -ECANCELED at once (curl_multi_wakeup: the one
 * thread-safe way to interrupt a transfer waiting in poll()). A signal
 * handler cannot call it; it sets HttpcConfig.cancel_flag instead, which is
 * looked at at least every HTTPC_FLAG_POLL_MS.
 *
 * Errors: 0 for any HTTP answer, whatever its status (the caller looks at
 * HttpcResponse.status; httpc_status_error() words a refusal). Otherwise
 * -ECONNREFUSED, -EHOSTUNREACH (name not resolved), -ETIMEDOUT,
 * -EKEYREJECTED (the server's certificate is not trusted), -EPROTO (other
 * TLS failures), -EMSGSIZE (an answer over its bound), -ECANCELED, the
 * -errno a read or write callback returned, -ENOMEM or -EIO. The message
 * names the method, the host and the path ("PUT 127.0.0.1:7480/b/o:
 * Connection refused"), never the query, which may hold a signature.
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

#define HTTPC_MAX_BODY_DEFAULT (1u << 20)  /* bound of a buffered answer when the request names none */
#define HTTPC_MAX_HEADER_BYTES (16u << 10) /* bound of the kept answer headers */
#define HTTPC_FLAG_POLL_MS 200u            /* how often cancel_flag is looked at */
#define HTTPC_MAX_IDLE_S 10u               /* a kept connection idle longer is not reused */

typedef struct Httpc Httpc;

typedef struct HttpcConfig {
	const char *cafile;                       /* CA bundle for https; NULL = the system's */
	bool insecure;                            /* https without verifying the certificate */
	const char *user_agent;                   /* NULL = "pcapd/VERSION" */
	uint32_t connect_timeout_ms;              /* 0 = 10 s */
	const volatile sig_atomic_t *cancel_flag; /* non-zero aborts the request (-ECANCELED); may be NULL */
} HttpcConfig;

/* Copies up to n bytes of the request body, starting at byte off, into buf.
 * Returns the number copied (> 0; fewer than n is fine) or -errno. Never 0
 * before the promised size is reached: a body that shrank is an error. */
typedef ssize_t (*HttpcReadFn)(void *ctx, uint64_t off, void *buf, size_t n);
/* Takes the next n bytes of a streamed answer. 0, or -errno to abort. */
typedef int (*HttpcWriteFn)(void *ctx, const void *p, size_t n);
/* Whether the answer's body goes to the write callback (true) or is buffered. */
typedef bool (*HttpcStreamIfFn)(void *ctx, long status, const char *content_type);

typedef struct HttpcRequest {
	const char *method;         /* "GET" (NULL), "HEAD" (no answer body), "PUT", "POST", "DELETE", ... */
	const char *url;            /* http:// or https://; no other protocol is followed, nor any redirect */
	const char *const *headers; /* "Name: value" lines, NULL-terminated; NULL = none */
	const void *body;           /* request body in memory (not copied), or NULL */
	size_t body_n;              /* its length */
	HttpcReadFn read;           /* or a streamed body of read_size bytes; NULL = none */
	void *read_ctx;             /* passed to read */
	uint64_t read_size;         /* exact size of the streamed body (sent as Content-Length) */
	HttpcWriteFn write;         /* where a streamed answer goes; NULL = always buffer */
	void *write_ctx;            /* passed to write and stream_if */
	HttpcStreamIfFn stream_if;  /* NULL = stream 2xx answers */
	size_t max_body;            /* bound of a buffered answer; 0 = HTTPC_MAX_BODY_DEFAULT */
	uint32_t timeout_ms;        /* whole request; 0 = no limit */
	uint32_t stall_ms;          /* abort when no byte moves for this long (rounded up to s); 0 = never */
	bool expect_continue;       /* send "Expect: 100-continue" with a body (big uploads) */
} HttpcRequest;

typedef struct HttpcResponse {
	long status;       /* HTTP status of the final answer */
	char *body;        /* buffered body, NUL-terminated (never NULL on success; "" when none) */
	size_t n;          /* its length */
	uint64_t streamed; /* bytes given to the write callback */
	char *hdrs;        /* kept headers: "name\0value\0" pairs, names lowercased; private */
	size_t hdrs_n;     /* bytes used in hdrs */
} HttpcResponse;

/* Once per process, before any thread makes a client. */
int httpc_global_init(ErrBuf *err);
void httpc_global_cleanup(void);

int httpc_new(const HttpcConfig *cfg, Httpc **ret, ErrBuf *err);
void httpc_free(Httpc *c); /* NULL is fine */

/* Runs one request to its end. On success *ret holds the answer (free it with
 * httpc_response_done). */
int httpc_request(Httpc *c, const HttpcRequest *req, HttpcResponse *ret, ErrBuf *err);
void httpc_response_done(HttpcResponse *r); /* NULL is fine */

/* The value of an answer header (name without regard to case; the first when
 * repeated), or NULL. */
const char *httpc_header(const HttpcResponse *r, const char *name);

/* Thread-safe: cancels the running request and refuses later ones. */
void httpc_cancel(Httpc *c);

/* Percent-encodes s[0..n) as RFC 3986 asks of a URI component: every byte
 * but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash) becomes %XX, upper-case
 * hex. A new NUL-terminated string, or NULL when out of memory. */
char *httpc_escape(const char *s, size_t n, bool keep_slash);

/* Writes "METHOD host[:port]/path" of url into out[cap] (no query or
 * fragment, shortened to fit), for messages. */
void httpc_describe(const char *method, const char *url, char *out, size_t cap);

/* Words a refused request: "METHOD host/path: HTTP <status>[ <code>][: <detail>]"
 * (code: the service's error code, detail: its message; each may be NULL and
 * is cut at 160 bytes and at the first line break). Returns code_ret. */
int httpc_status_error(ErrBuf *err, int code_ret, const char *method, const char *url, long status, const char *code,
		       const char *detail);
