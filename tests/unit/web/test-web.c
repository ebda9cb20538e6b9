/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/web: the generated table (sorted, complete, every file
 * with a known type, nothing in the shipped code that parses HTML or runs
 * inline script, the first load under 150 KiB), and web_serve() answering
 * through a real server on 127.0.0.1 with libcurl as the client: the file,
 * the security headers, HEAD, 304 on a matching ETag, 405 for other methods,
 * and paths that are not the dashboard's left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http/http.h"
#include "web/web.h"

#define FIRST_LOAD_MAX (150u * 1024u)

static bool contains(const WebAsset *a, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= a->len; i++)
		if (memcmp(a->data + i, needle, n) == 0)
			return true;
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void test_table(void **state)
{
	size_t total = 0;

	(void)state;
	assert_true(web_assets_count >= 10);
	for (size_t i = 0; i < web_assets_count; i++) {
		const WebAsset *a = &web_assets[i];

		if (i > 0 && strcmp(web_assets[i - 1].path, a->path) >= 0)
			fail_msg("table not sorted at %s", a->path);
		assert_ptr_equal(web_asset_find(a->path), a);
		assert_true(a->len > 0);
		assert_int_equal(strlen(a->etag), 34);
		if (ends_with(a->path, ".js"))
			assert_string_equal(a->content_type, "text/javascript; charset=utf-8");
		total += a->len;
	}
	/* Every file is part of the first load (the modules import each other). */
	if (total >= FIRST_LOAD_MAX)
		fail_msg("the dashboard is %zu bytes, over %u", total, FIRST_LOAD_MAX);
	assert_ptr_equal(web_asset_find("/"), web_asset_find("/index.html"));
	assert_non_null(web_asset_find("/js/bounds.js"));
	assert_non_null(web_asset_find("/js/app.js"));
	assert_null(web_asset_find("/index.html/"));
	assert_null(web_asset_find("/js"));
	assert_null(web_asset_find("/client/v4/accounts"));
	assert_null(web_asset_find("/../index.html"));
	assert_null(web_asset_find(""));
	assert_null(web_asset_find(NULL));
}

/* What the page ships never turns data into markup or code, and the HTML
 * carries no inline script or style (the CSP would refuse them anyway). */
static void test_shipped_code_is_safe(void **state)
{
	static const char *const sinks[] = {"innerHTML", "outerHTML",    "insertAdjacentHTML",   "document.write",
					    "eval(",     "new Function", "setAttribute('style'", "localStorage"};
	const WebAsset *index = web_asset_find("/index.html");

	(void)state;
	for (size_t i = 0; i < web_assets_count; i++) {
		const WebAsset *a = &web_assets[i];

		if (!ends_with(a->path, ".js"))
			continue;
		for (size_t k = 0; k < sizeof(sinks) / sizeof(sinks[0]); k++)
			if (contains(a, sinks[k]))
				fail_msg("%s uses %s", a->path, sinks[k]);
	}
	assert_non_null(index);
	assert_true(contains(index, "<script type=\"module\" src=\"/js/app.js\"></script>"));
	/* Every module is preloaded at once (a module that is not would load
	 * only when its importer has: one round trip per level). */
	for (size_t i = 0; i < web_assets_count; i++) {
		char link[160];

		if (!ends_with(web_assets[i].path, ".js"))
			continue;
		snprintf(link, sizeof(link), "<link rel=\"modulepreload\" href=\"%s\">", web_assets[i].path);
		if (!contains(index, link))
			fail_msg("index.html does not preload %s", web_assets[i].path);
	}
	assert_false(contains(index, "<script>"));
	assert_false(contains(index, " style="));
	assert_false(contains(index, " onload="));
	assert_false(contains(index, " onclick="));
	assert_false(contains(index, "javascript:"));
}

/* ---- web_serve behind a real server */

typedef struct Answer {
	long status;
	char *body;
	size_t len;
	char headers[8192];
	size_t hlen;
} Answer;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	Answer *a = arg;
	char *nb = realloc(a->body, a->len + size * n + 1);

	assert_non_null(nb);
	memcpy(nb + a->len, p, size * n);
	a->body = nb;
	a->len += size * n;
	a->body[a->len] = '\0';
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	Answer *a = arg;
	size_t k = size * n;

	if (a->hlen + k < sizeof(a->headers)) {
		memcpy(a->headers + a->hlen, p, k);
		a->hlen += k;
		a->headers[a->hlen] = '\0';
	}
	return k;
}

/* The value of header name in a, copied into out (empty if absent). */
static const char *header(const Answer *a, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	const char *p = a->headers;

	out[0] = '\0';
	while (p && *p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *end;

			while (*v == ' ')
				v++;
			end = strstr(v, "\r\n");
			snprintf(out, cap, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
			return out;
		}
		p = strstr(p, "\r\n");
		if (p)
			p += 2;
	}
	return out;
}

static void handler(void *ctx, HttpRequest *r)
{
	static const char none[] = "not the dashboard";

	(void)ctx;
	if (!web_serve(r, http_req_path(r)))
		http_respond(r, 404, "text/plain", none, sizeof(none) - 1);
}

static HttpServer *srv;
static uint16_t port;

static int setup(void **state)
{
	HttpConfig cfg = {.http_addr = "127.0.0.1:0", .threads = 2, .handler = handler};
	ErrBuf err = {{0}};

	(void)state;
	if (http_server_start(&cfg, &srv, &err) < 0)
		fail_msg("server: %s", err.msg);
	port = http_server_port(srv, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	http_server_stop(srv);
	return 0;
}

static void fetch(const char *method, const char *path, const char *if_none_match, Answer *a)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[256], inm[128];

	memset(a, 0, sizeof(*a));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (if_none_match) {
		snprintf(inm, sizeof(inm), "If-None-Match: %s", if_none_match);
		h = curl_slist_append(h, inm);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void assert_policy(const Answer *a)
{
	char v[512];

	assert_string_equal(header(a, "Content-Security-Policy", v, sizeof(v)), WEB_CSP);
	assert_non_null(strstr(v, "frame-ancestors 'none'"));
	assert_null(strstr(v, "unsafe-inline"));
	assert_string_equal(header(a, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	assert_string_equal(header(a, "X-Frame-Options", v, sizeof(v)), "DENY");
	assert_string_equal(header(a, "Referrer-Policy", v, sizeof(v)), "no-referrer");
}

static void test_serve(void **state)
{
	const WebAsset *index = web_asset_find("/index.html"), *app = web_asset_find("/js/app.js");
	char v[256];
	Answer a;

	(void)state;
	fetch("GET", "/", NULL, &a);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.len, index->len);
	assert_memory_equal(a.body, index->data, index->len);
	assert_string_equal(header(&a, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8");
	assert_string_equal(header(&a, "ETag", v, sizeof(v)), index->etag);
	assert_string_equal(header(&a, "Cache-Control", v, sizeof(v)), "no-cache");
	assert_policy(&a);
	free(a.body);

	fetch("GET", "/js/app.js", NULL, &a);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.len, app->len);
	assert_string_equal(header(&a, "Content-Type", v, sizeof(v)), "text/javascript; charset=utf-8");
	free(a.body);

	fetch("HEAD", "/app.css", NULL, &a);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.len, 0);
	assert_policy(&a);
	free(a.body);
}

static void test_revalidate(void **state)
{
	const WebAsset *app = web_asset_find("/js/app.js");
	char list[160];
	Answer a;

	(void)state;
	fetch("GET", "/js/app.js", app->etag, &a);
	assert_int_equal(a.status, 304);
	assert_int_equal(a.len, 0);
	assert_policy(&a);
	free(a.body);
	snprintf(list, sizeof(list), "\"0000\", W/%s", app->etag);
	fetch("GET", "/js/app.js", list, &a);
	assert_int_equal(a.status, 304);
	free(a.body);
	/* another file's tag, or a longer tag that starts with ours: the file */
	fetch("GET", "/js/app.js", web_asset_find("/index.html")->etag, &a);
	assert_int_equal(a.status, 200);
	free(a.body);
	snprintf(list, sizeof(list), "%.*sx\"", (int)strlen(app->etag) - 1, app->etag);
	fetch("GET", "/js/app.js", list, &a);
	assert_int_equal(a.status, 200);
	free(a.body);
}

static void test_other_methods_and_paths(void **state)
{
	char v[64];
	Answer a;

	(void)state;
	fetch("POST", "/", NULL, &a);
	assert_int_equal(a.status, 405);
	assert_string_equal(header(&a, "Allow", v, sizeof(v)), "GET, HEAD");
	assert_policy(&a);
	free(a.body);
	fetch("DELETE", "/js/app.js", NULL, &a);
	assert_int_equal(a.status, 405);
	free(a.body);
	fetch("GET", "/nothing-here.js", NULL, &a);
	assert_int_equal(a.status, 404);
	assert_string_equal(a.body, "not the dashboard");
	free(a.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_shipped_code_is_safe),
		cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revalidate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_methods_and_paths, setup, teardown),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
