/* SPDX-License-Identifier: MIT */
/*
 * Answers for the dashboard's files (web.h): a lookup in the generated table
 * and the same security headers on every answer.
 */
#include <string.h>

#include "web/web.h"

const WebAsset *web_asset_find(const char *path)
{
	size_t lo = 0, hi = web_assets_count;

	if (!path)
		return NULL;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, web_assets[mid].path);

		if (c == 0)
			return &web_assets[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* If-None-Match: "*" or a list of entity tags, one of which may be ours
 * (weak or strong; a revalidation compares weakly, RFC 9110 §13.1.2). */
static bool etag_matches(const char *header, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = header;

	if (!header)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcmp(p, "*") == 0)
		return true;
	while ((p = strstr(p, etag)) != NULL) {
		char after = p[n];

		if (after == '\0' || after == ',' || after == ' ' || after == '\t')
			return true;
		p += n;
	}
	return false;
}

static void security_headers(HttpRequest *req)
{
	http_add_header(req, "Content-Security-Policy", WEB_CSP);
	http_add_header(req, "X-Content-Type-Options", "nosniff");
	http_add_header(req, "X-Frame-Options", "DENY");
	http_add_header(req, "Referrer-Policy", "no-referrer");
	http_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
	http_add_header(req, "Cross-Origin-Resource-Policy", "same-origin");
}

bool web_serve(HttpRequest *req, const char *path)
{
	const WebAsset *a = web_asset_find(path);
	const char *method = http_req_method(req);
	static const char not_allowed[] = "method not allowed: dashboard files take GET\n";

	if (!a)
		return false;
	security_headers(req);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_add_header(req, "Allow", "GET, HEAD");
		http_respond(req, 405, "text/plain; charset=utf-8", not_allowed, sizeof(not_allowed) - 1);
		return true;
	}
	http_add_header(req, "Cache-Control", "no-cache");
	http_add_header(req, "ETag", a->etag);
	if (etag_matches(http_req_header(req, "If-None-Match"), a->etag)) {
		http_respond(req, 304, NULL, NULL, 0);
		return true;
	}
	http_respond(req, 200, a->content_type, a->data, a->len);
	return true;
}
