/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's HTTP(S) client for the controller, over src/httpc. One CtlClient
 * per thread (a curl handle is never shared); the connection is kept alive
 * between requests. Every request carries "Authorization: Bearer <token>".
 *
 * A request can be cut short from another thread: ctlclient_cancel() makes
 * the running request, and every later one, return -ECANCELED at once (the
 * long-poll would otherwise hold shutdown for up to its time-out).
 *
 * Several controllers (replicas over one database): a CtlRoute lists their
 * base URLs and says which one every client of the agent uses now. A request
 * that cannot reach the current one (no connection, a time-out, TLS) or that
 * it answers with a 5xx moves the route on to the next URL (once, however
 * many clients saw the failure), so that the caller's usual retry, after its
 * back-off, goes there; the token, the agent's identity, is the same for all.
 *
 * Errors: -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -EKEYREJECTED (the
 * controller's certificate is not trusted), -EPROTO (other TLS), -EMSGSIZE
 * (answer over AGENTPROTO_MAX_BODY) or -EIO, with curl's words in err. An HTTP
 * answer of any status is a success here: the caller looks at the status.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef struct CtlClient CtlClient;

#define CTL_MAX_URLS 8 /* controllers an agent knows */

/* Shared by every client of one agent; lives as long as they do. */
typedef struct CtlRoute {
	const char *const *urls; /* base URLs as CtlClientConfig.base_url, 1..CTL_MAX_URLS */
	size_t n;
	atomic_uint current; /* index into urls, modulo n */
} CtlRoute;

/* The base URL requests go to now. */
const char *ctlroute_current(CtlRoute *r);

typedef struct CtlClientConfig {
	const char *base_url; /* http://host:port[/prefix] or https://...; a trailing '/' is ignored */
	CtlRoute *route;      /* several controllers (then base_url is unused); NULL: base_url only */
	const char *token;
	const char *cafile; /* CA bundle for https, NULL = the system's */
	bool insecure;      /* https without verifying the certificate (tests, first set-up) */
	const char *user_agent;
} CtlClientConfig;

typedef struct CtlResponse {
	long status; /* HTTP status */
	char *body;  /* owned, NUL-terminated */
	size_t n;
} CtlResponse;

/* Once per process, before any thread uses a client. */
int ctlclient_global_init(ErrBuf *err);
void ctlclient_global_cleanup(void);

int ctlclient_new(const CtlClientConfig *cfg, CtlClient **ret, ErrBuf *err);
void ctlclient_free(CtlClient *c); /* NULL is fine */

/* GET base_url + path (path starts with '/'), whole request within timeout_ms. */
int ctlclient_get(CtlClient *c, const char *path, uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err);
/* POST of a JSON body. */
int ctlclient_post_json(CtlClient *c, const char *path, const char *body, uint32_t timeout_ms, CtlResponse *ret,
			ErrBuf *err);
/* POST of body[0..n) with the given Content-Type. */
int ctlclient_post(CtlClient *c, const char *path, const char *content_type, const void *body, size_t n,
		   uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err);
/* POST of size bytes read from fd (from offset 0, with pread: the descriptor's
 * position is not used), streamed, with the given Content-Type. A read error
 * is -EIO with its cause in err. */
int ctlclient_post_file(CtlClient *c, const char *path, const char *content_type, int fd, uint64_t size,
			uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err);
void ctlclient_response_done(CtlResponse *r); /* NULL is fine */

/* Thread-safe: cancels the running request and refuses later ones. */
void ctlclient_cancel(CtlClient *c);
