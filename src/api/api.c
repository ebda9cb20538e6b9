/* SPDX-License-Identifier: MIT */
/*
 * The controller's one HTTP handler: routes a request to its dialect (see
 * api.h for the table). The Cloudflare SDK puts "/client/v4" in front of every
 * path when its baseURL ends there and nothing when it is a bare host, so the
 * prefix is optional and stripped first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/envelope.h"

#define DEFAULT_LIST_LIMIT 50
#define ACCOUNT_SEGMENT_MAX 128 /* longer cannot be an account; still answered by auth */

struct Api {
	Service *svc;
	size_t list_limit;
};

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
	*ret = a;
	return 0;
}

void api_free(Api *a)
{
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
	sub = after_prefix(slash, "/pcaps");
	if (!sub)
		goto no_route;
	n = (size_t)(slash - (rest + 1));
	if (n > ACCOUNT_SEGMENT_MAX)
		n = ACCOUNT_SEGMENT_MAX; /* cut: it is no account either way, auth says so */
	memcpy(account, rest + 1, n);
	account[n] = '\0';
	cloudflare_handle(a, req, account, sub);
	return;
no_route:
	envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
}

void api_handle(void *ctx, HttpRequest *req)
{
	Api *a = ctx;
	const char *path = http_req_path(req);
	const char *rest;

	if (!path)
		path = "";
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
	} else {
		envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
	}
}
