/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP face of the controller: one handler (api_handle) that routes every
 * request to a dialect by its path's first segments:
 *   /client/v4/accounts/{account}/pcaps…  and  /accounts/{account}/pcaps…
 *                      Cloudflare PCAPs (src/api/cloudflare/)
 *   /client/v4/accounts/{account}/tokens/verify  (and without /client/v4)
 *                      Cloudflare's token check, with pcapd's scope (same)
 *   /agent/v1/…        the agent protocol (src/api/agent/, docs/AGENT-PROTOCOL.md)
 *   /healthz           liveness: 200 "ok"
 *   /metrics           Prometheus text (metrics.c), with a read-scope token
 *   /, /app.css, /js/… the web dashboard (src/web, built into the binary)
 * Anything else: 404 (Cloudflare's envelope, code 7003, for now).
 * How dialects plug in: api-int.h.
 */

#include <stddef.h>

#include "controller/service.h"
#include "http/http.h"

/* Request bodies of the public API are small JSON objects: give this to
 * HttpConfig.max_body; a larger body is answered 413. */
#define API_MAX_BODY (64u * 1024u)

typedef struct ApiConfig {
	Service *svc;      /* borrowed */
	size_t list_limit; /* jobs on a list page when the request does not say (per_page); 0 = 50 */
} ApiConfig;

typedef struct Api Api;

int api_new(const ApiConfig *cfg, Api **ret, ErrBuf *err);
void api_free(Api *a); /* NULL is fine */
/* The HttpHandler: ctx is the Api. */
void api_handle(void *ctx, HttpRequest *req);
/* HttpConfig.on_headers: a request announcing a body is checked before any
 * of it is read. Its dialect (ApiDialect.before_body) says whether its
 * credentials are good for some route that takes a body; if not, the route
 * answers at once, in its usual order (404, 405, 401, 403), and the body is
 * never read. Then the media type, checked here and only here: a body the
 * route takes as JSON must come as application/json (else 415). A path under
 * no dialect takes no body: answered at once (404, 405). */
void api_on_headers(void *ctx, HttpRequest *req);
/* HttpConfig.refuse: the HTTP layer's own refusals (a query, target or
 * headers over their bounds: 400, 414, 431; the body budget: 503 with
 * retry-after) as neutral errors, in the default dialect's shape. */
void api_refuse(void *ctx, HttpRequest *req, unsigned status, unsigned retry_after_s, const char *message);
/* HttpConfig.body_limit: what the path's dialect takes (an agent's answer to
 * a sample is a pcap of up to AGENTPROTO_MAX_SAMPLE_BODY), API_MAX_BODY
 * elsewhere. */
size_t api_body_limit(void *ctx, const char *method, const char *path);
/* HttpConfig.observe: counts the request in the HTTP statistics under its
 * route template (api_route_of). Give it to every listener of the Api. */
void api_observe(void *ctx, const HttpRequest *req, unsigned status, uint64_t elapsed_ns);

/* ---- metrics (metrics.c) ---- */

/* The HttpHandler of the separate, unauthenticated metrics listener (ctx is
 * the Api): GET /metrics (every account's captures), GET /healthz; 404
 * elsewhere, 405 for other methods, in text/plain. */
void api_metrics_handle(void *ctx, HttpRequest *req);
/* The route templates that label HTTP statistics ("/agent/v1/poll", ...,
 * "other" last), and the index of the one a path (as the server saw it)
 * falls under: "/client/v4" is dropped first, an id becomes "{id}". */
const char *const *api_route_names(size_t *ret_n);
size_t api_route_of(const char *path);
