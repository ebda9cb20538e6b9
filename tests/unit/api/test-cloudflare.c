/* SPDX-License-Identifier: MIT */
/*
 * The Cloudflare handlers in process: api_handle() driven with requests made
 * here, over the real service and a real SQLite database in a temporary
 * directory. This file provides the http.h functions itself (a fake request
 * that records the answer), so no socket is involved; what it checks is the
 * order of the checks (route → credentials → ids → body), every status and
 * error code, the headers the SDK depends on, and the ownership flow with its
 * challenge file in a file:// bucket.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/cloudflare/cloudflare.h"
#include "api/cloudflare/envelope.h"

/* ---- the fake request (http.h) ---- */

#define MAX_HDR 32

struct HttpRequest {
	const char *method, *path;
	char *path_buf;    /* the path before '?' */
	const char *query; /* what follows '?' (not %-decoded: tests write plain values), or NULL */
	const char *req_hdr[MAX_HDR][2];
	size_t n_req_hdr;
	char *body;
	size_t body_len;
	bool too_large;
	/* the answer */
	int answers;
	unsigned status;
	char content_type[128];
	char *resp;
	size_t resp_len;
	char hdr[MAX_HDR][2][256];
	size_t n_hdr;
	void *data;
	void (*free_data)(void *);
	bool trusted; /* http_req_trust() was called */
	/* parking and streaming (a download) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool parked, resumed;
	bool streaming, stream_ended, stream_ok;
};

struct HttpStream {
	HttpRequest *r;
	bool cancelled; /* http_stream_cancel(): writes fail */
};

const char *http_req_method(const HttpRequest *r)
{
	return r->method;
}

const char *http_req_path(const HttpRequest *r)
{
	return r->path;
}

const char *http_req_header(const HttpRequest *r, const char *name)
{
	for (size_t i = 0; i < r->n_req_hdr; i++)
		if (strcasecmp(r->req_hdr[i][0], name) == 0)
			return r->req_hdr[i][1];
	return NULL;
}

/* The value of key in the query, in one of a few buffers used in turn (a
 * handler holds two or three values at once). */
static char query_values[4][256];
static unsigned query_next;

const char *http_req_query(const HttpRequest *r, const char *key)
{
	char *query_value = query_values[query_next++ % 4];
	size_t n = strlen(key);

	for (const char *p = r->query; p && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > n && strncmp(p, key, n) == 0 && p[n] == '=') {
			snprintf(query_value, sizeof(query_values[0]), "%.*s", (int)(len - n - 1), p + n + 1);
			return query_value;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

const uint8_t *http_req_body(const HttpRequest *r, size_t *ret_len)
{
	*ret_len = r->body_len;
	return (const uint8_t *)r->body;
}

bool http_req_body_too_large(const HttpRequest *r)
{
	return r->too_large;
}

bool http_req_is_tls(const HttpRequest *r)
{
	(void)r;
	return false;
}

bool http_req_shutting_down(const HttpRequest *r)
{
	(void)r;
	return false;
}

void http_req_trust(HttpRequest *r)
{
	r->trusted = true;
}

void http_req_set_data(HttpRequest *r, void *data, void (*free_fn)(void *))
{
	r->data = data;
	r->free_data = free_fn;
}

void *http_req_get_data(const HttpRequest *r)
{
	return r->data;
}

int http_add_header(HttpRequest *r, const char *name, const char *value)
{
	if (r->n_hdr == MAX_HDR)
		return -E2BIG;
	snprintf(r->hdr[r->n_hdr][0], 256, "%s", name);
	snprintf(r->hdr[r->n_hdr][1], 256, "%s", value);
	r->n_hdr++;
	return 0;
}

int http_respond(HttpRequest *r, unsigned status, const char *content_type, const void *body, size_t len)
{
	r->answers++;
	r->status = status;
	snprintf(r->content_type, sizeof(r->content_type), "%s", content_type ? content_type : "");
	free(r->resp);
	r->resp = malloc(len + 1);
	assert_non_null(r->resp);
	if (len)
		memcpy(r->resp, body, len);
	r->resp[len] = '\0';
	r->resp_len = len;
	return 0;
}

int http_respond_fd(HttpRequest *r, unsigned status, const char *content_type, int fd, uint64_t len)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, len < sizeof(buf) ? len : sizeof(buf), 0);

	close(fd);
	return http_respond(r, status, content_type, buf, n > 0 ? (size_t)n : 0);
}

int http_suspend(HttpRequest *r)
{
	pthread_mutex_lock(&r->lock);
	r->parked = true;
	r->resumed = false;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void http_resume(HttpRequest *r)
{
	pthread_mutex_lock(&r->lock);
	r->resumed = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Set by a test: streamed answers fail, as when the server cannot answer
 * (a live stream's tap is then dropped). */
static bool refuse_streams;

int http_respond_stream(HttpRequest *r, unsigned status, const char *content_type, size_t buffer, HttpStream **ret)
{
	HttpStream *st;

	(void)buffer;
	if (refuse_streams)
		return -ENOTSUP;
	st = calloc(1, sizeof(*st));
	assert_non_null(st);
	http_respond(r, status, content_type, "", 0);
	st->r = r;
	r->streaming = true;
	*ret = st;
	return 0;
}

int http_stream_write(HttpStream *st, const void *p, size_t n)
{
	HttpRequest *r = st->r;
	char *nb;

	pthread_mutex_lock(&r->lock);
	if (st->cancelled) {
		pthread_mutex_unlock(&r->lock);
		return -ECANCELED;
	}
	nb = realloc(r->resp, r->resp_len + n + 1);
	assert_non_null(nb);
	memcpy(nb + r->resp_len, p, n);
	r->resp = nb;
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void http_stream_cancel(HttpStream *st)
{
	pthread_mutex_lock(&st->r->lock);
	st->cancelled = true;
	pthread_mutex_unlock(&st->r->lock);
}

int http_stream_check(HttpStream *st)
{
	int r;

	pthread_mutex_lock(&st->r->lock);
	r = st->cancelled ? -ECANCELED : 0;
	pthread_mutex_unlock(&st->r->lock);
	return r;
}

void http_stream_end(HttpStream *st, bool ok)
{
	HttpRequest *r = st->r;

	pthread_mutex_lock(&r->lock);
	r->stream_ended = true;
	r->stream_ok = ok;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	free(st);
}

/* Live streams' trailers are the integration tests' (tests/integration/test_stream.py). */
int http_stream_trailer(HttpStream *st, const char *name, const char *value)
{
	(void)st;
	(void)name;
	(void)value;
	return 0;
}

/* ---- fixture ---- */

#define ACCOUNT "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"
#define T_WRITE "pcapd_write-token-for-tests"
#define T_READ "pcapd_read-token-for-tests"
#define T_OTHER "pcapd_other-account-token"
#define T_AGENT "pcapd_agent-token-for-tests"
#define T_LEGACY_AGENT "pcapd_unbound-agent-token"
#define KEY "legacy-key-for-tests"
#define EMAIL "user@example.com"
#define BASE "/client/v4/accounts/" ACCOUNT "/pcaps"
#define OTHER_BASE "/accounts/" OTHER "/pcaps"
#define BEARER(t) "Authorization", "Bearer " t

typedef struct Fixture {
	char dir[64];
	char bucket_root[128];
	char bucket_uri[160];
	char data_dir[128];
	Db *db;
	Service *svc;
	Api *api;
} Fixture;

static Fixture fx;

static void add_cred(const char *secret, const char *email, const char *account, TokenScope scope)
{
	uint8_t h[32];
	ErrBuf err;

	auth_hash(secret, strlen(secret), h);
	assert_int_equal(db_account_ensure(fx.db, account, &err), 0);
	if (db_credential_add(fx.db, h, email, account, scope, &err) < 0)
		fail_msg("credential: %s", err.msg);
}

/* The operator's agent web01, which serves every account. */
static const AgentKey agent_key = {.name = "web01"};

static void add_key(const char *secret, const AgentKey *k)
{
	uint8_t h[32];
	ErrBuf err;

	auth_hash(secret, strlen(secret), h);
	if (db_agent_key_add(fx.db, h, k, 0, &err) < 0)
		fail_msg("agent key: %s", err.msg);
}

static int setup(void **state)
{
	ServiceConfig scfg = {0};
	ApiConfig acfg = {0};
	char path[160];
	ErrBuf err;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/pcapd-test-api-XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	snprintf(fx.bucket_root, sizeof(fx.bucket_root), "%s/buckets", fx.dir);
	snprintf(fx.data_dir, sizeof(fx.data_dir), "%s/data", fx.dir);
	assert_int_equal(mkdir(fx.bucket_root, 0755), 0);
	assert_int_equal(mkdir(fx.data_dir, 0755), 0);
	snprintf(fx.bucket_uri, sizeof(fx.bucket_uri), "file://%s/b1", fx.bucket_root);
	snprintf(path, sizeof(path), "%s/pcapd.db", fx.dir);
	if (db_open(path, &fx.db, &err) < 0)
		fail_msg("db_open: %s", err.msg);
	scfg.db = fx.db;
	scfg.data_dir = fx.data_dir;
	scfg.buckets.root = fx.bucket_root;
	scfg.limits.max_active_full = 1;
	scfg.limits.sample_interval_ns = 60LL * 1000000000LL;
	if (service_start(&scfg, &fx.svc, &err) < 0)
		fail_msg("service_start: %s", err.msg);
	acfg.svc = fx.svc;
	assert_int_equal(api_new(&acfg, &fx.api, &err), 0);
	add_cred(T_WRITE, NULL, ACCOUNT, SCOPE_WRITE);
	add_cred(T_READ, NULL, ACCOUNT, SCOPE_READ);
	add_cred(T_OTHER, NULL, OTHER, SCOPE_WRITE);
	add_key(T_AGENT, &agent_key);
	add_cred(T_LEGACY_AGENT, NULL, ACCOUNT, SCOPE_AGENT);
	add_cred(KEY, EMAIL, ACCOUNT, SCOPE_WRITE);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	api_free(fx.api);
	service_free(fx.svc);
	db_close(fx.db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", fx.dir);
	return 0;
}

static HttpRequest *request_va(const char *method, const char *path, const char *body, va_list ap)
{
	HttpRequest *r = calloc(1, sizeof(*r));
	const char *name;

	assert_non_null(r);
	r->method = method;
	r->path_buf = strdup(path);
	assert_non_null(r->path_buf);
	if (strchr(r->path_buf, '?')) {
		*strchr(r->path_buf, '?') = '\0';
		r->query = strchr(path, '?') + 1;
	}
	r->path = r->path_buf;
	if (body) {
		r->body = strdup(body);
		r->body_len = strlen(body);
	}
	while ((name = va_arg(ap, const char *)) != NULL) {
		assert_true(r->n_req_hdr < MAX_HDR);
		r->req_hdr[r->n_req_hdr][0] = name;
		r->req_hdr[r->n_req_hdr][1] = va_arg(ap, const char *);
		r->n_req_hdr++;
	}
	return r;
}

/* One request: method, path, body (NULL: none), then header name/value pairs,
 * NULL-terminated. The answer is checked to be exactly one. */
static HttpRequest *call(const char *method, const char *path, const char *body, ...)
{
	HttpRequest *r;
	va_list ap;

	va_start(ap, body);
	r = request_va(method, path, body, ap);
	va_end(ap);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	api_handle(fx.api, r);
	/* A parked request runs again once resumed, as the server does. */
	while (r->answers == 0 && r->parked) {
		pthread_mutex_lock(&r->lock);
		while (!r->resumed)
			pthread_cond_wait(&r->cond, &r->lock);
		r->parked = false;
		pthread_mutex_unlock(&r->lock);
		api_handle(fx.api, r);
	}
	assert_int_equal(r->answers, 1);
	/* A streamed answer is whole once its producer ended it. */
	pthread_mutex_lock(&r->lock);
	while (r->streaming && !r->stream_ended)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	return r;
}

/* The headers of a request announcing a body, through api_on_headers: at
 * most one answer (none: the body is to be read). */
static HttpRequest *pre(const char *method, const char *path, ...)
{
	HttpRequest *r;
	va_list ap;

	va_start(ap, path);
	r = request_va(method, path, NULL, ap);
	va_end(ap);
	api_on_headers(fx.api, r);
	assert_true(r->answers <= 1);
	return r;
}

static void done(HttpRequest *r)
{
	if (r->free_data)
		r->free_data(r->data);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->path_buf);
	free(r->body);
	free(r->resp);
	free(r);
}

static const char *header(const HttpRequest *r, const char *name)
{
	for (size_t i = 0; i < r->n_hdr; i++)
		if (strcasecmp(r->hdr[i][0], name) == 0)
			return r->hdr[i][1];
	return NULL;
}

/* The answer parsed as an envelope; checks what every envelope must be. */
static json_t *envelope(const HttpRequest *r)
{
	json_error_t jerr;
	json_t *doc;

	assert_string_equal(r->content_type, "application/json");
	doc = json_loads(r->resp, 0, &jerr);
	if (!doc)
		fail_msg("answer is not JSON (%s): %s", jerr.text, r->resp);
	assert_true(json_is_boolean(json_object_get(doc, "success")));
	assert_true(json_is_array(json_object_get(doc, "errors")));
	assert_true(json_is_array(json_object_get(doc, "messages")));
	assert_non_null(json_object_get(doc, "result"));
	return doc;
}

/* Checks an error answer: status, code, exact message (or its start when
 * msg ends in '*'), the documentation_url and source.pointer (pointer "":
 * none; NULL: not checked) of its item, x-should-retry: false. */
static void expect_error_at(HttpRequest *r, unsigned status, int code, const char *msg, const char *pointer)
{
	json_t *doc = envelope(r);
	json_t *e = json_array_get(json_object_get(doc, "errors"), 0);
	const char *got = json_string_value(json_object_get(e, "message"));
	const char *doc_url = json_string_value(json_object_get(e, "documentation_url"));
	json_t *source = json_object_get(e, "source");
	size_t n = strlen(msg);

	assert_non_null(doc_url);
	assert_true(doc_url[0] != '\0');
	if (pointer && !pointer[0])
		assert_null(source);
	else if (!pointer)
		;
	else if (!source || !json_string_value(json_object_get(source, "pointer")))
		fail_msg("no source.pointer (expected %s): %s", pointer, r->resp);
	else
		assert_string_equal(json_string_value(json_object_get(source, "pointer")), pointer);

	if (r->status != status)
		fail_msg("status %u, expected %u: %s", r->status, status, r->resp);
	assert_false(json_is_true(json_object_get(doc, "success")));
	assert_true(json_is_null(json_object_get(doc, "result")));
	assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
	assert_non_null(got);
	if (msg[n - 1] == '*' ? strncmp(got, msg, n - 1) != 0 : strcmp(got, msg) != 0)
		fail_msg("message \"%s\", expected \"%s\"", got, msg);
	assert_non_null(header(r, "x-should-retry"));
	assert_string_equal(header(r, "x-should-retry"), "false");
	json_decref(doc);
	done(r);
}

/* expect_error_at, source.pointer not checked. */
static void expect_error(HttpRequest *r, unsigned status, int code, const char *msg)
{
	expect_error_at(r, status, code, msg, NULL);
}

/* A 429: retry-after is a number of seconds in 1..max (the real wait: the
 * slot may come a little sooner than max, never later) and the message, what
 * followed by that number and " s", says the same. */
static void expect_busy(HttpRequest *r, unsigned max, const char *what)
{
	const char *v = header(r, "retry-after");
	char msg[256];
	unsigned n;

	assert_non_null(v);
	assert_int_equal(sscanf(v, "%u", &n), 1);
	if (n < 1 || n > max)
		fail_msg("retry-after %s, expected 1..%u", v, max);
	snprintf(msg, sizeof(msg), "%s%u s", what, n);
	expect_error(r, 429, 1004, msg);
}

/* Checks a success answer and returns its result (a new reference). */
static json_t *expect_ok(HttpRequest *r)
{
	json_t *doc, *res;

	if (r->status != 200)
		fail_msg("status %u: %s", r->status, r->resp);
	doc = envelope(r);
	assert_true(json_is_true(json_object_get(doc, "success")));
	assert_int_equal(json_array_size(json_object_get(doc, "errors")), 0);
	res = json_incref(json_object_get(doc, "result"));
	json_decref(doc);
	done(r);
	return res;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s)
		fail_msg("no string \"%s\" in the answer", key);
	return s;
}

/* The first line of the challenge file fname in bucket directory dir (below
 * the bucket root), newline included, into out. */
static void challenge_token(const char *dir, const char *fname, char *out, size_t cap)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", fx.bucket_root, dir, fname);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(out, (int)cap, f));
	fclose(f);
}

/* A one-packet classic pcap file, as an agent would leave it in the bucket. */
static void write_pcap(const char *jid, const char *agent)
{
	static const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
	uint32_t rec[4] = {1714564800, 0, 60, 60};
	uint8_t frame[60] = {0};
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/b1/pcap_%s_%s.pcap", fx.bucket_root, jid, agent);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(hdr, sizeof(hdr), 1, f), 1);
	assert_int_equal(fwrite(rec, sizeof(rec), 1, f), 1);
	assert_int_equal(fwrite(frame, sizeof(frame), 1, f), 1);
	assert_int_equal(fclose(f), 0);
}

/* ---- tests ---- */

static void test_routes(void **state)
{
	HttpRequest *r;
	json_t *res;

	(void)state;
	r = call("GET", "/healthz", NULL, NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->resp, "ok");
	done(r);

	/* "/" is the dashboard (src/web), never under /client/v4 */
	r = call("GET", "/", NULL, NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->content_type, "text/html; charset=utf-8");
	assert_non_null(header(r, "Content-Security-Policy"));
	done(r);
	expect_error(call("GET", "/client/v4/", NULL, NULL), 404, 7003, "No route for the URI");

	/* unknown paths: 404 7003, before credentials are looked at */
	expect_error(call("GET", "/nothing", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", "/client/v4/zones", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", "/accounts/" ACCOUNT "/pcapsx", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", "/accounts/" ACCOUNT "/pcaps/", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", "/accounts//pcaps", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", BASE "/a/b/c", NULL, NULL), 404, 7003, "No route for the URI");
	expect_error(call("GET", BASE "/0123/files", NULL, NULL), 404, 7003, "No route for the URI");

	/* known paths, wrong method: 405 with Allow, before credentials */
	r = call("DELETE", BASE, NULL, NULL);
	assert_string_equal(header(r, "Allow"), "GET, POST");
	expect_error(r, 405, 7001, "Method not allowed: DELETE takes GET, POST");
	r = call("POST", BASE "/0123456789abcdef0123456789abcdef/stop", NULL, NULL);
	assert_string_equal(header(r, "Allow"), "PUT");
	expect_error(r, 405, 7001, "*");
	r = call("GET", BASE "/ownership/validate", NULL, NULL);
	assert_string_equal(header(r, "Allow"), "POST");
	expect_error(r, 405, 7001, "*");
	r = call("GET", BASE "/ownership/0123456789abcdef0123456789abcdef", NULL, NULL);
	assert_string_equal(header(r, "Allow"), "DELETE");
	expect_error(r, 405, 7001, "*");

	/* with and without /client/v4 */
	res = expect_ok(call("GET", "/accounts/" ACCOUNT "/pcaps", NULL, BEARER(T_READ), NULL));
	assert_true(json_is_array(res));
	json_decref(res);
	res = expect_ok(call("GET", BASE, NULL, BEARER(T_READ), NULL));
	json_decref(res);
}

static void test_auth(void **state)
{
	json_t *res;

	(void)state;
	expect_error(call("GET", BASE, NULL, NULL), 401, 10000, "Authentication error: no credentials*");
	expect_error(call("GET", BASE, NULL, BEARER("pcapd_nope"), NULL), 401, 10000,
		     "Authentication error: invalid credentials");
	expect_error(call("GET", BASE, NULL, "Authorization", "Basic dXNlcjpwYXNz", NULL), 401, 10000,
		     "Authentication error: the Authorization header must be \"Bearer <token>\"");
	expect_error(call("GET", BASE, NULL, "X-Auth-Key", KEY, NULL), 401, 10000,
		     "Authentication error: no credentials*");
	expect_error(call("GET", BASE, NULL, "X-Auth-Email", "other@example.com", "X-Auth-Key", KEY, NULL), 401, 10000,
		     "Authentication error: invalid credentials");
	/* legacy pair */
	res = expect_ok(call("GET", BASE, NULL, "X-Auth-Email", EMAIL, "X-Auth-Key", KEY, NULL));
	json_decref(res);
	/* bearer scheme is case-insensitive */
	res = expect_ok(call("GET", BASE, NULL, "Authorization", "bearer  " T_READ, NULL));
	json_decref(res);

	/* another account, or something that is no account at all */
	expect_error(call("GET", "/accounts/" OTHER "/pcaps", NULL, BEARER(T_WRITE), NULL), 403, 10000,
		     "Forbidden: this credential belongs to another account");
	expect_error(call("GET", "/accounts/nope/pcaps", NULL, BEARER(T_WRITE), NULL), 403, 10000,
		     "Forbidden: this credential belongs to another account");
	/* the account id is not case-sensitive */
	res = expect_ok(call("GET", "/accounts/0123456789ABCDEF0123456789ABCDEF/pcaps", NULL, BEARER(T_READ), NULL));
	json_decref(res);

	/* scopes */
	expect_error(call("POST", BASE, "{}", BEARER(T_READ), NULL), 403, 10000,
		     "Forbidden: this token has scope read; create needs write");
	expect_error(call("PUT", BASE "/0123456789abcdef0123456789abcdef/stop", NULL, BEARER(T_READ), NULL), 403, 10000,
		     "Forbidden: this token has scope read; stop needs write");
	expect_error(call("POST", BASE "/ownership", "{}", BEARER(T_READ), NULL), 403, 10000,
		     "Forbidden: this token has scope read; ownership create needs write");
	expect_error(call("DELETE", BASE "/ownership/0123456789abcdef0123456789abcdef", NULL, BEARER(T_READ), NULL),
		     403, 10000, "Forbidden: this token has scope read; ownership delete needs write");
	expect_error(call("GET", BASE, NULL, BEARER(T_AGENT), NULL), 403, 10000,
		     "Forbidden: this is agent web01's key; it is only for the agent protocol");
	expect_error(call("GET", BASE, NULL, BEARER(T_LEGACY_AGENT), NULL), 403, 10000,
		     "Forbidden: this token has scope agent; it is only for the agent protocol");
	res = expect_ok(call("GET", BASE "/ownership", NULL, BEARER(T_READ), NULL));
	json_decref(res);
}

static void test_order_of_checks(void **state)
{
	HttpRequest *r;

	(void)state;
	/* a bad id without credentials: 401 first */
	expect_error(call("GET", BASE "/xyz", NULL, NULL), 401, 10000, "*");
	/* with them: 404 1003, as for an id that does not exist */
	expect_error(call("GET", BASE "/xyz", NULL, BEARER(T_READ), NULL), 404, 1003,
		     "pcap_id: no capture with id xyz");
	expect_error(call("GET", BASE "/0123456789abcdef0123456789abcdeg", NULL, BEARER(T_READ), NULL), 404, 1003,
		     "pcap_id: no capture with id 0123456789abcdef0123456789abcdeg");
	expect_error(call("GET", BASE "/0123456789abcdef0123456789abcdef", NULL, BEARER(T_READ), NULL), 404, 1003,
		     "pcap_id: no capture with id 0123456789abcdef0123456789abcdef");
	expect_error(call("GET", BASE "/0123456789ABCDEF0123456789ABCDEF/download", NULL, BEARER(T_READ), NULL), 404,
		     1003, "pcap_id: no capture with id 0123456789abcdef0123456789abcdef");
	expect_error(call("PUT", BASE "/0123456789abcdef0123456789abcdef/stop", NULL, BEARER(T_WRITE), NULL), 404, 1003,
		     "pcap_id: no capture with id 0123456789abcdef0123456789abcdef");
	expect_error(call("DELETE", BASE "/ownership/zz", NULL, BEARER(T_WRITE), NULL), 404, 1003,
		     "ownership_id: no bucket with id zz");
	/* a bad body with a read token: 403 before the body is read */
	expect_error(call("POST", BASE, "not json", BEARER(T_READ), NULL), 403, 10000, "*");

	/* bodies */
	expect_error(call("POST", BASE, NULL, BEARER(T_WRITE), NULL), 400, 1001,
		     "body: must be a JSON object (the request has no body)");
	expect_error(call("POST", BASE, "{\"type\":", BEARER(T_WRITE), NULL), 400, 1001, "body: invalid JSON*");
	expect_error(call("POST", BASE, "[1,2]", BEARER(T_WRITE), NULL), 400, 1001, "body: must be a JSON object");
	expect_error(call("POST", BASE, "{\"type\":\"full\",\"type\":\"simple\"}", BEARER(T_WRITE), NULL), 400, 1001,
		     "body: invalid JSON at line 1 column 21: duplicate object key near '\"type\"'");
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->method = "POST";
	r->path = BASE;
	r->too_large = true;
	r->req_hdr[0][0] = "Authorization";
	r->req_hdr[0][1] = "Bearer " T_WRITE;
	r->n_req_hdr = 1;
	api_handle(fx.api, r);
	expect_error(r, 413, 1005, "body: larger than 65536 bytes");
	expect_error(call("POST", BASE,
			  "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":301,"
			  "\"packet_limit\":1}",
			  BEARER(T_WRITE), NULL),
		     400, 1002, "time_limit: 301 is outside 1..300");
}

static void test_before_body(void **state)
{
	HttpRequest *r;
	json_t *doc;

	(void)state;
	/* refused on the headers, in the routes' own order */
	expect_error(pre("POST", BASE, NULL), 401, 10000, "Authentication error: no credentials*");
	expect_error(pre("POST", BASE, BEARER("pcapd_nope"), NULL), 401, 10000,
		     "Authentication error: invalid credentials");
	expect_error(pre("POST", BASE, BEARER(T_READ), NULL), 403, 10000,
		     "Forbidden: this token has scope read; create needs write");
	expect_error(pre("POST", "/accounts/" OTHER "/pcaps", BEARER(T_WRITE), NULL), 403, 10000,
		     "Forbidden: this credential belongs to another account");
	expect_error(pre("DELETE", BASE, NULL), 405, 7001, "Method not allowed: DELETE takes GET, POST");
	expect_error(pre("POST", BASE "/a/b/c", NULL), 404, 7003, "No route for the URI");
	expect_error(pre("POST", "/nowhere", BEARER(T_WRITE), NULL), 404, 7003, "No route for the URI");
	expect_error(pre("POST", "/healthz", NULL), 405, 7001, "*");
	expect_error(pre("POST", "/agent/v1/sample", BEARER(T_WRITE), NULL), 403, 10000, "*");
	expect_error(pre("POST", "/agent/v1/report", NULL), 401, 10000, "*");
	/* an agent token bound to no name (issued before enrolment existed) */
	expect_error(pre("POST", "/agent/v1/report", BEARER(T_LEGACY_AGENT), NULL), 403, 10000,
		     "Forbidden: this agent token is bound to no agent; *");

	/* the media type: JSON, except an agent's sample answer */
	r = pre("POST", BASE, BEARER(T_WRITE), "Content-Type", "text/plain", NULL);
	assert_true(r->trusted);
	assert_string_equal(header(r, "Accept"), "application/json");
	expect_error(r, 415, 1001, "Content-Type: \"text/plain\" is not JSON; the body must be application/json");
	expect_error(pre("POST", BASE, BEARER(T_WRITE), NULL), 415, 1001,
		     "Content-Type: missing; the body must be application/json");
	expect_error(pre("POST", "/agent/v1/report", BEARER(T_AGENT), "Content-Type",
			 "application/x-www-form-urlencoded", NULL),
		     415, 1001, "*");
	r = pre("POST", BASE, BEARER(T_WRITE), "Content-Type", "Application/JSON ; charset=utf-8", NULL);
	assert_int_equal(r->answers, 0); /* the body is read */
	assert_true(r->trusted);
	done(r);
	r = pre("POST", "/client/v4/accounts/" ACCOUNT "/pcaps/ownership", "X-Auth-Email", EMAIL, "X-Auth-Key", KEY,
		"Content-Type", "application/json", NULL);
	assert_int_equal(r->answers, 0);
	done(r);
	r = pre("POST", "/agent/v1/sample", BEARER(T_AGENT), "Content-Type", "application/vnd.tcpdump.pcap", NULL);
	assert_int_equal(r->answers, 0);
	done(r);
	r = pre("POST", "/agent/v1/report", BEARER(T_AGENT), "Content-Type", "application/json", NULL);
	assert_int_equal(r->answers, 0);
	assert_true(r->trusted);
	done(r);
	/* a GET with a body needs only read */
	r = pre("GET", BASE, BEARER(T_READ), "Content-Type", "application/json", NULL);
	assert_int_equal(r->answers, 0);
	done(r);

	/* the HTTP layer's refusals in the envelope; a 503 may be retried */
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	api_refuse(fx.api, r, 503, 1, "busy: retry");
	doc = envelope(r);
	assert_int_equal(r->status, 503);
	assert_string_equal(header(r, "x-should-retry"), "true");
	assert_string_equal(header(r, "retry-after"), "1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "code")),
			 1011);
	json_decref(doc);
	done(r);
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	api_refuse(fx.api, r, 431, 0, "headers: 65 request headers, at most 64");
	expect_error(r, 431, 1010, "headers: 65 request headers, at most 64");
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	api_refuse(fx.api, r, 414, 0, "URI: 9000 bytes, at most 8192");
	expect_error(r, 414, 1010, "URI: 9000 bytes, at most 8192");
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	api_refuse(fx.api, r, 400, 0, "query: 1000 parameters, at most 64");
	expect_error(r, 400, 1002, "query: 1000 parameters, at most 64");
}

static void test_simple_capture(void **state)
{
	const char *body = "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":5}";
	char path[256];
	json_t *res, *got, *list;
	HttpRequest *r;
	char id[JOB_ID_LEN + 1];

	(void)state;
	res = expect_ok(call("POST", BASE, body, BEARER(T_WRITE), NULL));
	assert_string_equal(str(res, "type"), "simple");
	assert_string_equal(str(res, "system"), "magic-transit");
	assert_int_equal(strlen(str(res, "id")), 32);
	assert_int_equal(strlen(str(res, "submitted")), 27);
	assert_int_equal(json_integer_value(json_object_get(res, "packet_limit")), 5);
	assert_true(json_is_object(json_object_get(res, "filter_v1")));
	snprintf(id, sizeof(id), "%s", str(res, "id"));
	json_decref(res);

	/* one sample a minute: 429 with the real wait in retry-after and in the
	 * service's words */
	expect_busy(call("POST", BASE, body, BEARER(T_WRITE), NULL), 60,
		    "one sample capture per 60 seconds per account; next allowed in ");

	/* get, list (newest first, with result_info), another account cannot see it */
	snprintf(path, sizeof(path), BASE "/%s", id);
	got = expect_ok(call("GET", path, NULL, BEARER(T_READ), NULL));
	assert_string_equal(str(got, "id"), id);
	assert_true(json_is_array(json_object_get(got, "agents")));
	json_decref(got);
	snprintf(path, sizeof(path), "/accounts/" OTHER "/pcaps/%s", id);
	expect_error(call("GET", path, NULL, BEARER(T_OTHER), NULL), 404, 1003, "pcap_id: no capture with id*");

	r = call("GET", BASE, NULL, BEARER(T_READ), NULL);
	{
		json_t *doc = envelope(r);
		json_t *info = json_object_get(doc, "result_info");

		list = json_object_get(doc, "result");
		assert_true(json_array_size(list) >= 1);
		assert_string_equal(str(json_array_get(list, 0), "id"), id);
		assert_null(json_object_get(json_array_get(list, 0), "agents"));
		assert_int_equal(json_integer_value(json_object_get(info, "page")), 1);
		assert_int_equal(json_integer_value(json_object_get(info, "per_page")), 50);
		assert_int_equal(json_integer_value(json_object_get(info, "count")), json_array_size(list));
		assert_int_equal(json_integer_value(json_object_get(info, "total_count")), json_array_size(list));
		json_decref(doc);
		done(r);
	}

	/* a simple capture cannot be stopped; this one failed, so no download */
	snprintf(path, sizeof(path), BASE "/%s/stop", id);
	expect_error(call("PUT", path, NULL, BEARER(T_WRITE), NULL), 409, 1008,
		     "pcap_id: only full captures can be stopped");
	snprintf(path, sizeof(path), BASE "/%s/download", id);
	expect_error(call("GET", path, NULL, BEARER(T_READ), NULL), 409, 1008, "pcap_id: capture failed: *");
}

/* The ids on a list page, newest first, and its result_info. */
static json_t *list_page(const char *query, json_t **ret_info)
{
	char path[256];
	HttpRequest *r;
	json_t *doc, *res;

	snprintf(path, sizeof(path), OTHER_BASE "%s", query);
	r = call("GET", path, NULL, BEARER(T_OTHER), NULL);
	if (r->status != 200)
		fail_msg("%s: status %u: %s", path, r->status, r->resp);
	doc = envelope(r);
	res = json_incref(json_object_get(doc, "result"));
	*ret_info = json_incref(json_object_get(doc, "result_info"));
	json_decref(doc);
	done(r);
	return res;
}

static void expect_info(json_t *info, int page, int per_page, int count, int total, int pages)
{
	assert_int_equal(json_integer_value(json_object_get(info, "page")), page);
	assert_int_equal(json_integer_value(json_object_get(info, "per_page")), per_page);
	assert_int_equal(json_integer_value(json_object_get(info, "count")), count);
	assert_int_equal(json_integer_value(json_object_get(info, "total_count")), total);
	assert_int_equal(json_integer_value(json_object_get(info, "total_pages")), pages);
	json_decref(info);
}

/* In an account of its own (the fixture is shared by every test). */
static void test_list_pages(void **state)
{
	char ids[7][JOB_ID_LEN + 1];
	ErrBuf err = {{0}};
	json_t *list, *info;

	(void)state;
	/* 7 finished captures, the newest last */
	for (int i = 0; i < 7; i++) {
		Job j = {.type = JOB_FULL, .status = JOB_SUCCESS, .submitted_ns = 1000000000LL * (100 + i)};

		assert_int_equal(job_new_id(j.id), 0);
		memcpy(j.account, OTHER, sizeof(j.account));
		memcpy(ids[i], j.id, sizeof(ids[i]));
		if (db_job_insert(fx.db, &j, NULL, 0, NULL, NULL, &err) < 0)
			fail_msg("insert: %s", err.msg);
	}
	/* default: one page of 50, the true total */
	list = list_page("", &info);
	assert_int_equal(json_array_size(list), 7);
	assert_string_equal(str(json_array_get(list, 0), "id"), ids[6]);
	json_decref(list);
	expect_info(info, 1, 50, 7, 7, 1);
	/* pages of 3: 3, 3, 1, then none; each its own (cached) answer */
	for (int round = 0; round < 2; round++) {
		list = list_page("?per_page=3", &info);
		assert_string_equal(str(json_array_get(list, 0), "id"), ids[6]);
		assert_string_equal(str(json_array_get(list, 2), "id"), ids[4]);
		json_decref(list);
		expect_info(info, 1, 3, 3, 7, 3);
		list = list_page("?page=2&per_page=3", &info);
		assert_string_equal(str(json_array_get(list, 0), "id"), ids[3]);
		json_decref(list);
		expect_info(info, 2, 3, 3, 7, 3);
		list = list_page("?per_page=3&page=3", &info);
		assert_int_equal(json_array_size(list), 1);
		assert_string_equal(str(json_array_get(list, 0), "id"), ids[0]);
		json_decref(list);
		expect_info(info, 3, 3, 1, 7, 3);
		list = list_page("?per_page=3&page=4", &info);
		assert_int_equal(json_array_size(list), 0);
		json_decref(list);
		expect_info(info, 4, 3, 0, 7, 3);
	}
	/* empty values are absent ones; bounds name the parameter */
	list = list_page("?page=&per_page=", &info);
	json_decref(list);
	expect_info(info, 1, 50, 7, 7, 1);
	list = list_page("?per_page=1000", &info);
	json_decref(list);
	expect_info(info, 1, 1000, 7, 7, 1);
	expect_error(call("GET", OTHER_BASE "?per_page=0", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "per_page: 0 is outside 1..1000");
	expect_error(call("GET", OTHER_BASE "?per_page=1001", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "per_page: 1001 is outside 1..1000");
	expect_error(call("GET", OTHER_BASE "?page=0", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "page: 0 is outside 1..1000000");
	expect_error(call("GET", OTHER_BASE "?page=-1", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "page: \"-1\" is not a whole number in 1..1000000");
	expect_error(call("GET", OTHER_BASE "?page=2.5", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "page: \"2.5\" is not a whole number in 1..1000000");
	expect_error(call("GET", OTHER_BASE "?page=99999999999999999999999", NULL, BEARER(T_OTHER), NULL), 400, 1002,
		     "page: 99999999999999999999999 is outside 1..1000000");
	/* a new capture (a sample no agent answers: failed at once) is on every
	 * page's answer at once, cached or not */
	json_decref(
		expect_ok(call("POST", OTHER_BASE,
			       "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":5,\"packet_limit\":5}",
			       BEARER(T_OTHER), NULL)));
	list = list_page("?per_page=3", &info);
	assert_string_not_equal(str(json_array_get(list, 0), "id"), ids[6]);
	assert_string_equal(str(json_array_get(list, 1), "id"), ids[6]);
	json_decref(list);
	expect_info(info, 1, 3, 3, 8, 3);
	list = list_page("?per_page=3&page=3", &info);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	expect_info(info, 3, 3, 2, 8, 3);
}

static void test_ownership_and_full(void **state)
{
	char body[512], path[512], query[600], token[64], fname[128], id[JOB_ID_LEN + 1], jid[JOB_ID_LEN + 1];
	AgentReport rep = {.name = "web01", .colo = "lab", .version = "test", .interfaces = "lo", .hello = true};
	AgentReportAnswer acks = {0};
	json_t *res;
	HttpRequest *r;
	ApiError err;
	FILE *f;

	(void)state;
	/* a full capture needs a registered, validated bucket */
	snprintf(body, sizeof(body),
		 "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":60,\"colo_name\":\"lab\","
		 "\"destination_conf\":\"%s\"}",
		 fx.bucket_uri);
	expect_error(call("POST", BASE, body, BEARER(T_WRITE), NULL), 400, 1006,
		     "destination_conf: bucket is not registered; add it with POST …/pcaps/ownership and validate it");

	/* register: the challenge file holds the token */
	snprintf(path, sizeof(path), "{\"destination_conf\":\"%s\"}", fx.bucket_uri);
	res = expect_ok(call("POST", BASE "/ownership", path, BEARER(T_WRITE), NULL));
	snprintf(id, sizeof(id), "%s", str(res, "id"));
	snprintf(fname, sizeof(fname), "%s", str(res, "filename"));
	assert_string_equal(str(res, "status"), "pending");
	assert_string_equal(str(res, "validated"), "");
	assert_string_equal(str(res, "destination_conf"), fx.bucket_uri);
	assert_int_equal(strncmp(fname, "ownership-challenge-", 20), 0);
	assert_int_equal(strncmp(fname + 20, id, 32), 0);
	json_decref(res);
	challenge_token("b1", fname, token, sizeof(token));
	assert_int_equal(strlen(token), 33); /* 32 hex and a newline */

	/* registering twice */
	snprintf(path, sizeof(path), "{\"destination_conf\":\"%s\"}", fx.bucket_uri);
	snprintf(body, sizeof(body), "destination_conf: already registered (id %s); delete it first to register again",
		 id);
	expect_error(call("POST", BASE "/ownership", path, BEARER(T_WRITE), NULL), 400, 1002, body);
	/* ... under another spelling of the same bucket */
	snprintf(path, sizeof(path), "{\"destination_conf\":\"file://%s/./x/../b1/\"}", fx.bucket_root);
	expect_error(call("POST", BASE "/ownership", path, BEARER(T_WRITE), NULL), 400, 1002, body);
	/* outside the bucket root */
	expect_error(
		call("POST", BASE "/ownership", "{\"destination_conf\":\"file:///etc/pcapd\"}", BEARER(T_WRITE), NULL),
		400, 1002, "destination_conf: *");
	expect_error(call("POST", BASE "/ownership", "{\"destination_conf\":\"gs://b\"}", BEARER(T_WRITE), NULL), 400,
		     1002, "destination_conf: *");

	/* pending bucket: not yet usable */
	snprintf(body, sizeof(body),
		 "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":60,\"colo_name\":\"lab\","
		 "\"destination_conf\":\"%s\"}",
		 fx.bucket_uri);
	expect_error(call("POST", BASE, body, BEARER(T_WRITE), NULL), 400, 1006,
		     "destination_conf: bucket is pending validation*");

	/* validate: unknown URI, wrong token, then the token (with its newline) */
	expect_error(call("POST", BASE "/ownership/validate",
			  "{\"destination_conf\":\"file:///nowhere\",\"ownership_challenge\":\"x\"}", BEARER(T_WRITE),
			  NULL),
		     404, 1003, "destination_conf: no bucket registered with this URI");
	snprintf(path, sizeof(path), "{\"destination_conf\":\"%s\",\"ownership_challenge\":\"nope\"}", fx.bucket_uri);
	snprintf(body, sizeof(body), "ownership_challenge: does not match the token in %s", fname);
	expect_error(call("POST", BASE "/ownership/validate", path, BEARER(T_WRITE), NULL), 400, 1009, body);
	/* a challenge file changed behind our back is read back, and refused */
	snprintf(path, sizeof(path), "%s/b1/%s", fx.bucket_root, fname);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs("something else\n", f);
	fclose(f);
	token[32] = '\0';
	snprintf(path, sizeof(path), "{\"destination_conf\":\"%s\",\"ownership_challenge\":\"%s\"}", fx.bucket_uri,
		 token);
	snprintf(body, sizeof(body),
		 "ownership_challenge: the challenge file %s in %s no longer holds the token it was given", fname,
		 fx.bucket_uri);
	expect_error(call("POST", BASE "/ownership/validate", path, BEARER(T_WRITE), NULL), 400, 1009, body);
	snprintf(path, sizeof(path), "%s/b1/%s", fx.bucket_root, fname);
	f = fopen(path, "we");
	assert_non_null(f);
	fprintf(f, "%s\n", token);
	fclose(f);
	/* the token, with its newline, under another spelling of the URI */
	snprintf(path, sizeof(path), "{\"destination_conf\":\"file://%s//b1\",\"ownership_challenge\":\"%s\\n\"}",
		 fx.bucket_root, token);
	res = expect_ok(call("POST", BASE "/ownership/validate", path, BEARER(T_WRITE), NULL));
	assert_string_equal(str(res, "status"), "success");
	assert_int_equal(strlen(str(res, "validated")), 27);
	json_decref(res);
	res = expect_ok(call("GET", BASE "/ownership", NULL, BEARER(T_READ), NULL));
	assert_int_equal(json_array_size(res), 1);
	assert_string_equal(str(json_array_get(res, 0), "status"), "success");
	json_decref(res);

	/* no agent in that colo */
	snprintf(body, sizeof(body),
		 "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":60,\"colo_name\":\"lab\","
		 "\"destination_conf\":\"%s\"}",
		 fx.bucket_uri);
	expect_error(call("POST", BASE, body, BEARER(T_WRITE), NULL), 400, 1007, "colo_name: *");

	/* an agent says hello: the capture is created, pending, with one share */
	if (service_agent_report(fx.svc, &agent_key, &rep, &acks, &err) < 0)
		fail_msg("report: %s", err.msg);
	agentproto_report_answer_done(&acks);
	res = expect_ok(call("POST", BASE, body, BEARER(T_WRITE), NULL));
	assert_string_equal(str(res, "type"), "full");
	assert_string_equal(str(res, "status"), "pending");
	assert_string_equal(str(res, "colo_name"), "lab");
	assert_int_equal(json_integer_value(json_object_get(res, "packets_captured")), 0);
	assert_null(json_object_get(res, "stop_requested"));
	snprintf(jid, sizeof(jid), "%s", str(res, "id"));
	json_decref(res);

	/* one full capture at a time: until the active one's time limit (60 s) */
	expect_busy(call("POST", BASE, body, BEARER(T_WRITE), NULL), 60,
		    "only 1 pending or running full capture(s) per account; the soonest reaches its time "
		    "limit in ");

	snprintf(path, sizeof(path), BASE "/%s", jid);
	res = expect_ok(call("GET", path, NULL, BEARER(T_READ), NULL));
	assert_int_equal(json_array_size(json_object_get(res, "agents")), 1);
	assert_string_equal(str(json_array_get(json_object_get(res, "agents"), 0), "name"), "web01");
	json_decref(res);

	snprintf(path, sizeof(path), BASE "/%s/download", jid);
	expect_error(call("GET", path, NULL, BEARER(T_READ), NULL), 409, 1008,
		     "pcap_id: capture is pending; it can be downloaded once its status is success");
	/* a pending capture streams: the tap opens (the fake refuses to stream
	 * here, so the answer is the internal error, and the tap is dropped) */
	snprintf(path, sizeof(path), BASE "/%s/stream", jid);
	refuse_streams = true;
	expect_error(call("GET", path, NULL, BEARER(T_READ), NULL), 500, 1000, "internal error: cannot answer: *");
	refuse_streams = false;
	expect_error(call("GET", path, NULL, BEARER(T_OTHER), NULL), 403, 10000, "*");
	expect_error(call("PUT", path, NULL, BEARER(T_WRITE), NULL), 405, 7001, "*");
	r = call("HEAD", path, NULL, BEARER(T_READ), NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->content_type, "application/x-pcapng");
	done(r);

	/* stop: stop_requested appears; a body is ignored */
	snprintf(path, sizeof(path), BASE "/%s/stop", jid);
	res = expect_ok(call("PUT", path, "garbage", BEARER(T_WRITE), NULL));
	assert_int_equal(strlen(str(res, "stop_requested")), 27);
	json_decref(res);

	/* kernel drops count by how much a part's count grew: 7, then 3 more,
	 * then nothing for the same report again */
	{
		AgentJobReport jr = {.state = PART_RUNNING, .packets = 1, .bytes = 60, .drops = 7};
		uint64_t drops[] = {7, 10, 10};
		AgentStats *st = NULL;
		size_t n = 0;

		snprintf(jr.id, sizeof(jr.id), "%s", jid);
		rep.hello = false;
		rep.jobs = &jr;
		rep.n_jobs = 1;
		for (size_t i = 0; i < ARRAY_SIZE(drops); i++) {
			jr.drops = drops[i];
			if (service_agent_report(fx.svc, &agent_key, &rep, &acks, &err) < 0)
				fail_msg("report: %s", err.msg);
			agentproto_report_answer_done(&acks);
		}
		assert_int_equal(service_agent_stats(fx.svc, NULL, &st, &n, &err), 0);
		assert_int_equal(n, 1);
		assert_string_equal(st[0].name, "web01");
		assert_true(st[0].online);
		assert_int_equal(st[0].kernel_drops, 10);
		assert_int_equal(st[0].parts_failed, 0);
		assert_false(st[0].history_known);
		free(st);
	}

	/* the agent delivers its file: success, and the download streams it */
	write_pcap(jid, "web01");
	{
		AgentJobReport jr = {.state = PART_DONE, .packets = 1, .bytes = 60, .stop_reason = JOB_STOP_USER};

		snprintf(jr.id, sizeof(jr.id), "%s", jid);
		snprintf(jr.object, sizeof(jr.object), "pcap_%s_web01.pcap", jid);
		rep.hello = false;
		rep.jobs = &jr;
		rep.n_jobs = 1;
		if (service_agent_report(fx.svc, &agent_key, &rep, &acks, &err) < 0)
			fail_msg("report: %s", err.msg);
		assert_int_equal(acks.n_ack, 1);
		agentproto_report_answer_done(&acks);
	}
	snprintf(path, sizeof(path), BASE "/%s", jid);
	res = expect_ok(call("GET", path, NULL, BEARER(T_READ), NULL));
	assert_string_equal(str(res, "status"), "success");
	assert_int_equal(json_integer_value(json_object_get(res, "packets_captured")), 1);
	assert_string_equal(str(res, "stop_reason"), "user");
	json_decref(res);
	snprintf(path, sizeof(path), BASE "/%s/download", jid);
	r = call("GET", path, NULL, BEARER(T_READ), NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->content_type, "application/vnd.tcpdump.pcap");
	snprintf(body, sizeof(body), "attachment; filename=\"pcap_%s.pcap\"", jid);
	assert_string_equal(header(r, "Content-Disposition"), body);
	assert_true(r->stream_ok);
	assert_true(r->resp_len > 24);
	done(r);
	/* the annotated pcapng, and a format that is neither */
	snprintf(query, sizeof(query), "%s?format=pcapng", path);
	r = call("GET", query, NULL, BEARER(T_READ), NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->content_type, "application/x-pcapng");
	assert_true(r->resp_len > 28 && memcmp(r->resp, "\x0a\x0d\x0d\x0a", 4) == 0);
	done(r);
	snprintf(query, sizeof(query), "%s?format=pcapnx", path);
	expect_error(call("GET", query, NULL, BEARER(T_READ), NULL), 400, 1002, "format: must be pcap or pcapng");
	/* a finished capture does not stream */
	snprintf(path, sizeof(path), BASE "/%s/stream", jid);
	expect_error(call("GET", path, NULL, BEARER(T_READ), NULL), 409, 1008,
		     "pcap_id: capture is success; only a pending or running capture streams (download a finished "
		     "one)");
	snprintf(path, sizeof(path), BASE "/%s/stop", jid);
	expect_error(call("PUT", path, NULL, BEARER(T_WRITE), NULL), 409, 1008,
		     "pcap_id: capture already finished (success)");

	/* deleting the bucket removes its challenge file; twice is 404 */
	snprintf(path, sizeof(path), BASE "/ownership/%s", id);
	r = call("DELETE", path, NULL, BEARER(T_WRITE), NULL);
	assert_int_equal(r->status, 204);
	assert_int_equal(r->resp_len, 0);
	done(r);
	snprintf(body, sizeof(body), "%s/b1/%s", fx.bucket_root, fname);
	assert_int_equal(access(body, F_OK), -1);
	snprintf(body, sizeof(body), "ownership_id: no bucket with id %s", id);
	expect_error(call("DELETE", path, NULL, BEARER(T_WRITE), NULL), 404, 1003, body);
	res = expect_ok(call("GET", BASE "/ownership", NULL, BEARER(T_READ), NULL));
	assert_int_equal(json_array_size(res), 0);
	json_decref(res);
}

/* Every rendering of a destination_conf shows its secrets REDACTED. */
static void test_render_redacts(void **state)
{
	char conf[] = "s3://b/p?region=us-east-1&access-key-id=AK&secret-access-key=TOPSECRET";
	BucketRow b = {.id = "x", .destination_conf = conf, .filename = "f", .status = BUCKET_PENDING};
	Job j = {.id = "y",
		 .type = JOB_FULL,
		 .colo_name = "c",
		 .outputs = {{.kind = JOB_OUTPUT_BUCKET, .target = conf}},
		 .n_outputs = 1};
	json_t *o;
	char *text;

	(void)state;
	o = cloudflare_render_ownership(&b);
	assert_string_equal(json_string_value(json_object_get(o, "destination_conf")),
			    "s3://b/p?region=us-east-1&access-key-id=AK&secret-access-key=REDACTED");
	json_decref(o);
	o = cloudflare_render_pcap(&j, false, NULL, 0);
	text = json_dumps(o, 0);
	assert_null(strstr(text, "TOPSECRET"));
	assert_non_null(strstr(text, "secret-access-key=REDACTED"));
	free(text);
	json_decref(o);
}

/* Field errors point at the body's member (RFC 6901), in the words the
 * request used; other errors point nowhere. (After test_ownership_and_full:
 * the account's bucket is validated.) */
static void test_error_items(void **state)
{
	char body[512], uri[200], token[64];
	json_t *res;

	(void)state;
	/* a validated bucket (the token its challenge file holds) */
	snprintf(uri, sizeof(uri), "file://%s/b2", fx.bucket_root);
	snprintf(body, sizeof(body), "{\"destination_conf\":\"%s\"}", uri);
	res = expect_ok(call("POST", BASE "/ownership", body, BEARER(T_WRITE), NULL));
	challenge_token("b2", str(res, "filename"), token, sizeof(token));
	token[strcspn(token, "\n")] = '\0';
	snprintf(body, sizeof(body), "{\"destination_conf\":\"%s\",\"ownership_challenge\":\"%s\"}", uri, token);
	json_decref(res);
	json_decref(expect_ok(call("POST", BASE "/ownership/validate", body, BEARER(T_WRITE), NULL)));

	snprintf(body, sizeof(body),
		 "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":5,\"colo\":\"nowhere\","
		 "\"destination_conf\":\"%s\"%s}",
		 uri, "");
	expect_error_at(call("POST", BASE, body, BEARER(T_WRITE), NULL), 400, 1007, "colo: no online agent*", "/colo");
	snprintf(body, sizeof(body),
		 "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":5,\"colo_name\":\"nowhere\","
		 "\"destination_conf\":\"%s\",\"filter_v1\":{\"source_port\":70000}}",
		 uri);
	expect_error_at(call("POST", BASE, body, BEARER(T_WRITE), NULL), 400, 1002, "filter_v1.source_port: *",
			"/filter_v1/source_port");
	expect_error_at(call("POST", BASE, "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":301}",
			     BEARER(T_WRITE), NULL),
			400, 1002, "time_limit: 301 is outside 1..300", "/time_limit");
	expect_error_at(call("POST", BASE "/ownership/validate", "{\"destination_conf\":\"file:///nowhere\"}",
			     BEARER(T_WRITE), NULL),
			400, 1002, "ownership_challenge: required", "/ownership_challenge");
	expect_error_at(call("POST", BASE, "{", BEARER(T_WRITE), NULL), 400, 1001, "body: *", "");
	expect_error_at(call("GET", BASE "/0123456789abcdef0123456789abcdef", NULL, BEARER(T_READ), NULL), 404, 1003,
			"pcap_id: *", "");
	expect_error_at(call("GET", BASE "?per_page=0", NULL, BEARER(T_READ), NULL), 400, 1002, "per_page: *", "");
	expect_error_at(call("GET", BASE, NULL, NULL), 401, 10000, "*", "");
}

/* POST /agent/v1/stream: the query checked (names the parameter), and a
 * chunk for a tap that does not exist is told to stop. */
static void test_agent_stream_chunk(void **state)
{
	HttpRequest *r;

	(void)state;
	r = call("POST",
		 "/agent/v1/stream?name=web01&id=0123456789abcdef0123456789abcdef&tap=0123456789ABCDEF&offset=0", "",
		 BEARER(T_AGENT), NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->resp, "{\"more\":false,\"reason\":\"no such stream (its reader left)\"}");
	done(r);
	expect_error(call("POST", "/agent/v1/stream?name=web01&id=0123456789abcdef0123456789abcdef&offset=0", "",
			  BEARER(T_AGENT), NULL),
		     400, 1002, "tap: must be 16 hex digits");
	expect_error(call("POST", "/agent/v1/stream?name=web01", "", BEARER(T_READ), NULL), 403, 10000, "*");
	/* an agent's key streams for its own name only */
	expect_error(
		call("POST",
		     "/agent/v1/stream?name=web02&id=0123456789abcdef0123456789abcdef&tap=0123456789ABCDEF&offset=0",
		     "", BEARER(T_AGENT), NULL),
		403, 10000, "Forbidden: this key is agent web01's; it cannot act as 'web02'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_order_of_checks),
		cmocka_unit_test(test_before_body),
		cmocka_unit_test(test_simple_capture),
		cmocka_unit_test(test_list_pages),
		cmocka_unit_test(test_ownership_and_full),
		cmocka_unit_test(test_render_redacts),
		cmocka_unit_test(test_error_items),
		cmocka_unit_test(test_agent_stream_chunk),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
