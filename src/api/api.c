/* SPDX-License-Identifier: MIT */
/*
 * The controller's one HTTP handler: routes a request to its dialect by path
 * prefix (see api.h for the table, api-int.h for what a dialect is). The
 * Cloudflare SDK puts "/client/v4" in front of every path when its baseURL
 * ends there and nothing when it is a bare host, so that prefix is optional
 * and stripped first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api-int.h"
#include "web/web.h"

#define DEFAULT_LIST_LIMIT 50
#define LIST_CACHE_SLOTS 64
#define LIST_KEY_MAX (16 + API_LIST_KEY_MAX) /* dialect name, '/', the dialect's key */

/* The rendered list page of one account in one dialect, valid while the
 * service's jobs generation stays what it was when the list was read. A page
 * of 50 captures costs about 50 rows and 50 objects to render; most list
 * calls (dashboards, pcapctl --wait loops) see nothing new. */
typedef struct ListCache {
	char key[LIST_KEY_MAX + 1];
	uint64_t gen;
	char *body; /* NULL = empty slot */
	size_t len;
} ListCache;

struct Api {
	Service *svc;
	HttpStats *stats;
	size_t list_limit;
	pthread_mutex_t cache_lock;
	ListCache cache[LIST_CACHE_SLOTS];
};

/* Paths under no dialect are answered in the default dialect's shape. */
static const ApiDialect *const default_dialect = &cloudflare_dialect;

static const struct {
	const char *prefix;
	const ApiDialect *dialect;
	bool nocase; /* ARM paths compare without regard to case */
} routes[] = {
	{"/accounts", &cloudflare_dialect, false},
	{"/agent/v1", &agentapi_dialect, false},
	{"/subscriptions", &azure_dialect, true},
};

/* "dialect/key" into out; false if it does not fit (then not cached). */
static bool list_key(const ApiDialect *d, const char *key, char out[LIST_KEY_MAX + 1])
{
	int n = snprintf(out, LIST_KEY_MAX + 1, "%s/%s", d->name, key);

	return n > 0 && n <= LIST_KEY_MAX;
}

static ListCache *cache_slot(Api *a, const char *key)
{
	unsigned h = 5381;

	for (const char *p = key; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return &a->cache[h % LIST_CACHE_SLOTS];
}

bool api_list_cached(Api *a, const ApiDialect *d, HttpRequest *req, const char *list, uint64_t gen)
{
	char key[LIST_KEY_MAX + 1];
	ListCache *c;
	bool hit;

	if (!list_key(d, list, key))
		return false;
	c = cache_slot(a, key);
	pthread_mutex_lock(&a->cache_lock);
	hit = c->body && c->gen == gen && strcmp(c->key, key) == 0;
	if (hit)
		http_respond(req, 200, "application/json", c->body, c->len);
	pthread_mutex_unlock(&a->cache_lock);
	return hit;
}

void api_list_store(Api *a, const ApiDialect *d, const char *list, uint64_t gen, char *body, size_t len)
{
	char key[LIST_KEY_MAX + 1];
	ListCache *c;

	if (!list_key(d, list, key)) {
		free(body);
		return;
	}
	c = cache_slot(a, key);
	pthread_mutex_lock(&a->cache_lock);
	free(c->body);
	memcpy(c->key, key, sizeof(key));
	c->gen = gen;
	c->body = body;
	c->len = len;
	pthread_mutex_unlock(&a->cache_lock);
}

int api_new(const ApiConfig *cfg, Api **ret, ErrBuf *err)
{
	const char *const *names;
	size_t n_names;
	Api *a;

	if (!cfg || !cfg->svc)
		return errbuf_set(err, -EINVAL, "api: no service");
	a = calloc(1, sizeof(*a));
	if (!a)
		return errbuf_set(err, -ENOMEM, "out of memory");
	a->svc = cfg->svc;
	names = api_route_names(&n_names);
	if (httpstats_new(names, n_names, &a->stats) < 0) {
		free(a);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	a->list_limit = cfg->list_limit ? cfg->list_limit : DEFAULT_LIST_LIMIT;
	pthread_mutex_init(&a->cache_lock, NULL);
	*ret = a;
	return 0;
}

void api_free(Api *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < LIST_CACHE_SLOTS; i++)
		free(a->cache[i].body);
	pthread_mutex_destroy(&a->cache_lock);
	httpstats_free(a->stats);
	free(a);
}

Service *api_service(Api *a)
{
	return a->svc;
}

HttpStats *api_http_stats(Api *a)
{
	return a->stats;
}

size_t api_list_limit(Api *a)
{
	return a->list_limit;
}

/* If path starts with the segment(s) prefix (followed by '/' or its end),
 * returns what follows; else NULL. */
static const char *after_prefix_case(const char *path, const char *prefix, bool nocase)
{
	size_t n = strlen(prefix);

	if ((nocase ? strncasecmp(path, prefix, n) : strncmp(path, prefix, n)) != 0 ||
	    (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return path + n;
}

static const char *after_prefix(const char *path, const char *prefix)
{
	return after_prefix_case(path, prefix, false);
}

unsigned api_error_status(ApiErrorKind kind)
{
	static const unsigned status[] = {
		[API_ERR_NONE] = 500,
		[API_ERR_INTERNAL] = 500,
		[API_ERR_BAD_BODY] = 400,
		[API_ERR_INVALID] = 400,
		[API_ERR_UNVERIFIED] = 400,
		[API_ERR_NO_TARGET] = 400,
		[API_ERR_MISMATCH] = 400,
		[API_ERR_UNAUTHENTICATED] = 401,
		[API_ERR_FORBIDDEN] = 403,
		[API_ERR_NOT_FOUND] = 404,
		[API_ERR_NO_ROUTE] = 404,
		[API_ERR_METHOD] = 405,
		[API_ERR_CONFLICT] = 409,
		[API_ERR_TOO_LARGE] = 413,
		[API_ERR_UNSUPPORTED_MEDIA] = 415,
		[API_ERR_BUSY] = 429,
		[API_ERR_UNAVAILABLE] = 503,
		[API_ERR_URI_TOO_LONG] = 414,
		[API_ERR_HEADERS_TOO_LARGE] = 431,
	};

	return (unsigned)kind < ARRAY_SIZE(status) ? status[kind] : 500;
}

json_t *api_request_json(HttpRequest *req, size_t max, ApiError *e)
{
	json_error_t jerr;
	const uint8_t *body;
	size_t len = 0;
	json_t *obj;

	if (http_req_body_too_large(req)) {
		apierror_set(e, API_ERR_TOO_LARGE, "body", "larger than %zu bytes", max);
		return NULL;
	}
	body = http_req_body(req, &len);
	if (!body || len == 0) {
		apierror_set(e, API_ERR_BAD_BODY, "body", "must be a JSON object (the request has no body)");
		return NULL;
	}
	/* Duplicate keys are refused: which of two values would count is a guess
	 * that a validator must not make. */
	obj = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		apierror_set(e, API_ERR_BAD_BODY, "body", "invalid JSON at line %d column %d: %s", jerr.line,
			     jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		apierror_set(e, API_ERR_BAD_BODY, "body", "must be a JSON object");
		return NULL;
	}
	return obj;
}

/* The path without the optional "/client/v4". */
static const char *strip_client_v4(const char *path)
{
	const char *rest = after_prefix(path, "/client/v4");

	return rest ? rest : path;
}

static const ApiDialect *dialect_of(const char *path, const char **ret_rest)
{
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const char *rest = after_prefix_case(path, routes[i].prefix, routes[i].nocase);

		if (rest) {
			*ret_rest = rest;
			return routes[i].dialect;
		}
	}
	return NULL;
}

size_t api_body_limit(void *ctx, const char *method, const char *path)
{
	const ApiDialect *d;
	const char *rest;

	(void)ctx;
	d = dialect_of(strip_client_v4(path ? path : ""), &rest);
	return d && d->body_limit ? d->body_limit(method, rest) : API_MAX_BODY;
}

/* "application/json", in any case, with or without parameters. */
static bool is_json_type(const char *ct)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, json, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

void api_on_headers(void *ctx, HttpRequest *req)
{
	Api *a = ctx;
	const char *path = strip_client_v4(http_req_path(req) ? http_req_path(req) : "");
	const char *ct = http_req_header(req, "Content-Type");
	const ApiDialect *d;
	const char *rest;
	ApiBody kind;
	ApiError e;

	d = dialect_of(path, &rest);
	if (!d) {
		api_handle(a, req); /* no route here takes a body: 404 or 405 now */
		return;
	}
	kind = d->before_body ? d->before_body(a, req, http_req_method(req), rest) : API_BODY_JSON;
	if (kind == API_BODY_REFUSED) {
		d->handle(a, req, rest); /* 404/405/401/403, and not one byte of the body read */
		return;
	}
	/* The one place that decides that a body is JSON. */
	if (kind == API_BODY_JSON && !(ct && is_json_type(ct))) {
		http_add_header(req, "Accept", "application/json");
		if (ct)
			apierror_set(&e, API_ERR_UNSUPPORTED_MEDIA, "Content-Type",
				     "\"%.64s\" is not JSON; the body must be application/json", ct);
		else
			apierror_set(&e, API_ERR_UNSUPPORTED_MEDIA, "Content-Type",
				     "missing; the body must be application/json");
		d->render_error(req, &e);
	}
}

void api_refuse(void *ctx, HttpRequest *req, unsigned status, unsigned retry_after_s, const char *message)
{
	ApiErrorKind kind = status == 414   ? API_ERR_URI_TOO_LONG
			    : status == 431 ? API_ERR_HEADERS_TOO_LARGE
			    : status == 413 ? API_ERR_TOO_LARGE
			    : status == 503 ? API_ERR_UNAVAILABLE
			    : status == 400 ? API_ERR_INVALID
					    : API_ERR_INTERNAL;
	ApiError e;

	(void)ctx;
	apierror_from_msg(&e, kind, message);
	e.retry_after_s = retry_after_s;
	default_dialect->render_error(req, &e);
}

void api_handle(void *ctx, HttpRequest *req)
{
	Api *a = ctx;
	const char *full = http_req_path(req) ? http_req_path(req) : "";
	const char *path = strip_client_v4(full);
	const ApiDialect *d;
	const char *rest;
	ApiError e;

	d = dialect_of(path, &rest);
	if (d) {
		d->handle(a, req, rest);
	} else if (strcmp(path, "/healthz") == 0) {
		if (strcmp(http_req_method(req), "GET") != 0 && strcmp(http_req_method(req), "HEAD") != 0) {
			apierror_set(&e, API_ERR_METHOD, NULL, "Method not allowed: /healthz takes GET");
			e.allow = "GET, HEAD";
			default_dialect->render_error(req, &e);
			return;
		}
		http_respond(req, 200, "text/plain; charset=utf-8", "ok", 2);
	} else if (strcmp(path, "/metrics") == 0) {
		api_metrics(a, req, default_dialect);
	} else if (web_serve(req, full)) {
		/* the dashboard's files (src/web; never under /client/v4) */
	} else {
		apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI");
		default_dialect->render_error(req, &e);
	}
}
