/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Dialect plumbing, shared inside src/api/ only: what a dialect is to the
 * router, what the router gives it, and the neutral error's HTTP status.
 *
 * A dialect (src/api/<dialect>/) owns a path prefix and its wire format: it
 * routes below its prefix, authenticates (auth.h), parses, calls service_*
 * and renders results and ApiErrors (model/apierror.h) in its own shape. It
 * never touches the database or the buckets itself.
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "metrics/httpstats.h"
#include "model/apierror.h"

/* What a request announcing a body may send, decided on its headers
 * (ApiDialect.before_body). */
typedef enum ApiBody {
	API_BODY_REFUSED, /* its credentials fit no route of the dialect that takes a body */
	API_BODY_JSON,    /* application/json */
	API_BODY_RAW,     /* the route's own media type (an agent's sample answer: a pcap) */
} ApiBody;

typedef struct ApiDialect {
	const char *name; /* "cloudflare", "agent", "azure": also keys the list cache */
	/* Answers req; rest is the path after the dialect's prefix ("" or "/…"). */
	void (*handle)(Api *a, HttpRequest *req, const char *rest);
	/* Answers req with e in the dialect's shape. */
	void (*render_error)(HttpRequest *req, const ApiError *e);
	/* The body bound of a request below the prefix; NULL: API_MAX_BODY. */
	size_t (*body_limit)(const char *method, const char *rest);
	/* Before any byte of a body is read (api_on_headers): API_BODY_REFUSED
	 * unless the request's credentials are good for some route below the
	 * prefix that takes a body with this method (it answers nothing: the
	 * router then lets handle() answer, in its usual order, without the
	 * body); else what the body must be. NULL: every body is JSON, and
	 * read. */
	ApiBody (*before_body)(Api *a, HttpRequest *req, const char *method, const char *rest);
} ApiDialect;

extern const ApiDialect cloudflare_dialect; /* cloudflare/cloudflare.c */
extern const ApiDialect agentapi_dialect;   /* agent/agentapi.c */
extern const ApiDialect azure_dialect;      /* azure/azure.c */

Service *api_service(Api *a);
size_t api_list_limit(Api *a); /* the default page size of a list */
HttpStats *api_http_stats(Api *a);
/* GET /metrics on the API's listeners (metrics.c): any user token with read
 * scope; the captures counted are its account's only. Errors in d's shape. */
void api_metrics(Api *a, HttpRequest *req, const ApiDialect *d);
/* The list cache: answers req (200, application/json) from the cached list of
 * (d, key) if it was rendered at jobs generation gen; else false. key names
 * everything the rendered list depends on besides the jobs: the account and
 * the page ("<account>/<page>/<per_page>"); at most API_LIST_KEY_MAX bytes
 * (a longer one is never cached). */
#define API_LIST_KEY_MAX 80
bool api_list_cached(Api *a, const ApiDialect *d, HttpRequest *req, const char *key, uint64_t gen);
/* Keeps body (malloc'd, taken) as the list of (d, key) at generation gen. */
void api_list_store(Api *a, const ApiDialect *d, const char *key, uint64_t gen, char *body, size_t len);

/* The HTTP status of an error kind (400, 401, ..., 503; 500 for NONE). */
unsigned api_error_status(ApiErrorKind kind);

/* The request body as one JSON object (duplicate keys refused), bounded by
 * max (the body_limit the request was read with). NULL with e filled (field
 * "body"): API_ERR_TOO_LARGE, or API_ERR_BAD_BODY for no body, invalid JSON or
 * another JSON value. */
json_t *api_request_json(HttpRequest *req, size_t max, ApiError *e);
