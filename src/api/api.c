/* SPDX-License-Identifier: MIT */
/*
 * The controller's one HTTP handler: routes a request to its dialect (see
 * api.h for the table). The Cloudflare SDK puts "/client/v4" in front of every
 * path when its baseURL ends there and nothing when it is a bare host, so the
 * prefix is optional and stripped first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/envelope.h"
#include "web/web.h"

#define DEFAULT_LIST_LIMIT 50
#define ACCOUNT_SEGMENT_MAX 128 /* longer cannot be an account; still answered by auth */

#define LIST_CACHE_SLOTS 64

/* The rendered list of one account, valid while the service's jobs generation
 * stays what it was when the list was read. A list of 50 captures costs about
 * 50 rows and 50 objects to render; most list calls (dashboards, pcapctl
 * --wait loops) see nothing new. */
typedef struct ListCache {
	char account[JOB_ID_LEN + 1];
	uint64_t gen;
	char *body; /* NULL = empty slot */
	size_t len;
} ListCache;

struct Api {
	Service *svc;
	size_t list_limit;
	pthread_mutex_t cache_lock;
	ListCache cache[LIST_CACHE_SLOTS];
};

static ListCache *cache_slot(Api *a, const char *account)
{
	unsigned h = 5381;

	for (const char *p = account; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return &a->cache[h % LIST_CACHE_SLOTS];
}

bool api_list_cached(Api *a, HttpRequest *req, const char *account, uint64_t gen)
{
	ListCache *c = cache_slot(a, account);
	bool hit;

	pthread_mutex_lock(&a->cache_lock);
	hit = c->body && c->gen == gen && strcmp(c->account, account) == 0;
	if (hit)
		http_respond(req, 200, "application/json", c->body, c->len);
	pthread_mutex_unlock(&a->cache_lock);
	return hit;
}

void api_list_store(Api *a, const char *account, uint64_t gen, char *body, size_t len)
{
	ListCache *c = cache_slot(a, account);

	pthread_mutex_lock(&a->cache_lock);
	free(c->body);
	snprintf(c->account, sizeof(c->account), "%s", account);
	c->gen = gen;
	c->body = body;
	c->len = len;
	pthread_mutex_unlock(&a->cache_lock);
}

int api_new(const ApiConfig *cfg, Api **ret, ErrBuf *err)
{
	Api *a;

	if (!cfg || !cfg->svc)
		return errbuf_set(err, -EINVAL, "api: no service");
	a = calloc(1, sizeof(*a));
	if (!a)
		return errbuf_set(err, -ENOMEM, "out of memory");
	a->svc = cfg->svc;
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
	free(a);
}

Service *api_service(Api *a)
{
	return a->svc;
}

size_t api_list_limit(Api *a)
{
	return a->list_limit;
}

/* If path starts with the segment(s) prefix (followed by '/' or its end),
 * returns what follows; else NULL. */
static const char *after_prefix(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return path + n;
}

static void handle_accounts(Api *a, HttpRequest *req, const char *rest)
{
	char account[ACCOUNT_SEGMENT_MAX + 1];
	const char *slash, *sub;
	size_t n;

	/* rest = "/{account}/pcaps[...]" */
	if (rest[0] != '/')
		goto no_route;
	slash = strchr(rest + 1, '/');
	if (!slash || slash == rest + 1)
		goto no_route;
	n = (size_t)(slash - (rest + 1));
	if (n > ACCOUNT_SEGMENT_MAX)
		n = ACCOUNT_SEGMENT_MAX; /* cut: it is no account either way, auth says so */
	memcpy(account, rest + 1, n);
	account[n] = '\0';
	if ((sub = after_prefix(slash, "/pcaps")))
		cloudflare_handle(a, req, account, sub);
	else if ((sub = after_prefix(slash, "/tokens")))
		tokens_handle(a, req, account, sub);
	else
		goto no_route;
	return;
no_route:
	envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
}

void api_handle(void *ctx, HttpRequest *req)
{
	Api *a = ctx;
	const char *path = http_req_path(req);
	const char *full, *rest;

	if (!path)
		path = "";
	full = path;
	rest = after_prefix(path, "/client/v4");
	if (rest)
		path = rest;

	if ((rest = after_prefix(path, "/accounts"))) {
		handle_accounts(a, req, rest);
	} else if ((rest = after_prefix(path, "/agent/v1"))) {
		agentapi_handle(a, req, rest);
	} else if (strcmp(path, "/healthz") == 0) {
		if (strcmp(http_req_method(req), "GET") != 0 && strcmp(http_req_method(req), "HEAD") != 0) {
			http_add_header(req, "Allow", "GET, HEAD");
			envelope_error(req, 405, API_E_METHOD, "Method not allowed: /healthz takes GET");
			return;
		}
		http_respond(req, 200, "text/plain; charset=utf-8", "ok", 2);
	} else if (path == full && web_serve(req, path)) {
		/* the dashboard's files (never under /client/v4) */
	} else {
		envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
	}
}
