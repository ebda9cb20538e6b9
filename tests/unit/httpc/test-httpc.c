/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/httpc: the client against a real server on 127.0.0.1
 * (src/http on port 0, HTTP and HTTPS). The path picks the server's behaviour:
 *
 *   /echo       200, headers X-Method and ETag; the body is the request's body
 *               (or, without one, "METHOD content-length=N x-test=V")
 *   /sum        200 "LEN SUM": length and byte sum of the request body
 *   /big?n=N    200 with N bytes of the pattern i*7+3
 *   /json       200 application/json {"ok":true}
 *   /refuse     403 with an S3-style XML error
 *   /park       parks until the server stops (then 503): time-outs, cancels
 *
 * Time limits in these tests are lower bounds only (a request must fail after
 * a time-out); nothing depends on the machine being fast.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/util.h"
#include "http/http.h"
#include "http/tlscert.h"
#include "httpc/httpc.h"

#define BIG (5u * 1024 * 1024)

typedef struct Server {
	HttpServer *srv;
	char dir[64];
	char cert[128];
	char url[64];     /* http://127.0.0.1:PORT */
	char tls_url[64]; /* https://127.0.0.1:PORT */
} Server;

static Server S;

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void answer(HttpRequest *r, unsigned status, const char *type, const char *text)
{
	http_respond(r, status, type, text, strlen(text));
}

static void handler(void *ctx, HttpRequest *r)
{
	const char *path = http_req_path(r);
	char text[256];
	size_t n;
	const uint8_t *body = http_req_body(r, &n);

	(void)ctx;
	if (strcmp(path, "/echo") == 0) {
		const char *cl = http_req_header(r, "Content-Length"), *xt = http_req_header(r, "X-Test");

		http_add_header(r, "X-Method", http_req_method(r));
		http_add_header(r, "ETag", "\"abc\"");
		if (n > 0) {
			http_respond(r, 200, "application/octet-stream", body, n);
			return;
		}
		snprintf(text, sizeof(text), "%s content-length=%s x-test=%s", http_req_method(r), cl ? cl : "-",
			 xt ? xt : "-");
		answer(r, 200, "text/plain", text);
	} else if (strcmp(path, "/sum") == 0) {
		uint64_t sum = 0;

		for (size_t i = 0; i < n; i++)
			sum += body[i];
		snprintf(text, sizeof(text), "%zu %llu", n, (unsigned long long)sum);
		answer(r, 200, "text/plain", text);
	} else if (strcmp(path, "/big") == 0) {
		const char *q = http_req_query(r, "n");
		size_t len = q ? strtoul(q, NULL, 10) : 0;
		uint8_t *b = malloc(len ? len : 1);

		for (size_t i = 0; i < len; i++)
			b[i] = pattern(i);
		http_respond(r, 200, "application/octet-stream", b, len);
		free(b);
	} else if (strcmp(path, "/json") == 0) {
		answer(r, 200, "application/json", "{\"ok\":true}");
	} else if (strcmp(path, "/refuse") == 0) {
		answer(r, 403, "application/xml",
		       "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>");
	} else if (strcmp(path, "/park") == 0) {
		if (http_req_shutting_down(r))
			answer(r, 503, "text/plain", "stopping");
		else if (http_suspend(r) < 0)
			answer(r, 500, "text/plain", "cannot park");
	} else {
		answer(r, 404, "text/plain", "no such path");
	}
}

static int group_setup(void **state)
{
	const char *alt[] = {"127.0.0.1"};
	char key[128], *cert_pem = NULL, *key_pem = NULL;
	HttpConfig cfg = {0};
	ErrBuf err;

	(void)state;
	snprintf(S.dir, sizeof(S.dir), "/tmp/test-httpc-XXXXXX");
	assert_non_null(mkdtemp(S.dir));
	snprintf(S.cert, sizeof(S.cert), "%s/cert.pem", S.dir);
	snprintf(key, sizeof(key), "%s/key.pem", S.dir);
	if (tlscert_selfsigned(S.cert, key, "httpc test", alt, 1, &err) < 0)
		fail_msg("tlscert_selfsigned: %s", err.msg);
	assert_int_equal(tlscert_load(S.cert, &cert_pem, &err), 0);
	assert_int_equal(tlscert_load(key, &key_pem, &err), 0);
	cfg.http_addr = "127.0.0.1:0";
	cfg.https_addr = "127.0.0.1:0";
	cfg.tls_cert_pem = cert_pem;
	cfg.tls_key_pem = key_pem;
	cfg.threads = 2;
	cfg.max_body = 8u << 20;
	cfg.handler = handler;
	if (http_server_start(&cfg, &S.srv, &err) < 0)
		fail_msg("http_server_start: %s", err.msg);
	free(cert_pem);
	free(key_pem);
	snprintf(S.url, sizeof(S.url), "http://127.0.0.1:%u", http_server_port(S.srv, false));
	snprintf(S.tls_url, sizeof(S.tls_url), "https://127.0.0.1:%u", http_server_port(S.srv, true));
	unlink(key);
	return httpc_global_init(&err);
}

static int group_teardown(void **state)
{
	(void)state;
	http_server_stop(S.srv);
	unlink(S.cert);
	rmdir(S.dir);
	httpc_global_cleanup();
	return 0;
}

static Httpc *client(const HttpcConfig *cfg)
{
	HttpcConfig none = {0};
	Httpc *c = NULL;
	ErrBuf err;

	if (httpc_new(cfg ? cfg : &none, &c, &err) < 0)
		fail_msg("httpc_new: %s", err.msg);
	return c;
}

static void url(char *out, size_t cap, const char *base, const char *path)
{
	snprintf(out, cap, "%s%s", base, path);
}

/* ---- buffered answers, headers ---- */

static void test_get_buffered(void **state)
{
	const char *hdrs[] = {"X-Test: hello", NULL};
	char u[128];
	HttpcRequest q = {.url = u, .headers = hdrs};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.url, "/echo");
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "GET content-length=- x-test=hello");
	assert_string_equal(httpc_header(&resp, "x-method"), "GET");
	assert_string_equal(httpc_header(&resp, "ETAG"), "\"abc\"");
	assert_null(httpc_header(&resp, "x-absent"));
	httpc_response_done(&resp);

	/* The same client again: a second request on the kept connection. */
	q.method = "DELETE";
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_string_equal(resp.body, "DELETE content-length=- x-test=hello");
	httpc_response_done(&resp);
	httpc_free(c);
}

static void test_put_and_post_bodies(void **state)
{
	static const char data[] = "some bytes to store";
	char u[128];
	HttpcRequest q = {.method = "PUT", .url = u, .body = data, .body_n = sizeof(data) - 1};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.url, "/echo");
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.n, sizeof(data) - 1);
	assert_memory_equal(resp.body, data, resp.n);
	assert_string_equal(httpc_header(&resp, "x-method"), "PUT");
	httpc_response_done(&resp);

	/* A POST without a body still says Content-Length: 0. */
	q = (HttpcRequest){.method = "POST", .url = u};
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_string_equal(resp.body, "POST content-length=0 x-test=-");
	httpc_response_done(&resp);
	httpc_free(c);
}

typedef struct Src {
	uint64_t size;
	unsigned calls;
	int fail_at_call; /* 0 = never */
} Src;

/* The pattern at any offset, in odd-sized pieces. */
static ssize_t src_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	Src *s = ctx;
	uint8_t *p = buf;

	if (++s->calls == (unsigned)s->fail_at_call)
		return -EIO;
	if (n > 4093)
		n = 4093;
	if (n > s->size - off)
		n = (size_t)(s->size - off);
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(off + i);
	return (ssize_t)n;
}

static void test_put_streamed(void **state)
{
	Src src = {.size = 3u << 20};
	uint64_t sum = 0;
	char u[128], want[64];
	HttpcRequest q = {.method = "PUT", .url = u, .read = src_read, .read_ctx = &src, .read_size = src.size};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	for (uint64_t i = 0; i < src.size; i++)
		sum += pattern(i);
	snprintf(want, sizeof(want), "%llu %llu", (unsigned long long)src.size, (unsigned long long)sum);
	url(u, sizeof(u), S.url, "/sum");
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_string_equal(resp.body, want);
	httpc_response_done(&resp);

	/* With 100-continue asked for, the same. */
	q.expect_continue = true;
	src.calls = 0;
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_string_equal(resp.body, want);
	httpc_response_done(&resp);

	/* A read error ends the request with that error, named. */
	src = (Src){.size = 3u << 20, .fail_at_call = 3};
	q.expect_continue = false;
	assert_int_equal(httpc_request(c, &q, &resp, &err), -EIO);
	assert_non_null(strstr(err.msg, "reading the body"));
	assert_non_null(strstr(err.msg, "PUT 127.0.0.1:"));
	httpc_free(c);
}

/* ---- streamed answers ---- */

typedef struct Sink {
	uint64_t n;
	bool bad; /* a byte differed from the pattern */
	int fail; /* returned from the first call when non-zero */
} Sink;

static int sink_write(void *ctx, const void *p, size_t n)
{
	Sink *s = ctx;
	const uint8_t *b = p;

	if (s->fail)
		return s->fail;
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(s->n + i))
			s->bad = true;
	s->n += n;
	return 0;
}

static void test_download_streamed(void **state)
{
	Sink sink = {0};
	char u[128];
	HttpcRequest q = {.url = u, .write = sink_write, .write_ctx = &sink, .max_body = 1024};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	snprintf(u, sizeof(u), "%s/big?n=%u", S.url, BIG);
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(sink.n, BIG);
	assert_int_equal(resp.streamed, BIG);
	assert_false(sink.bad);
	assert_int_equal(resp.n, 0);
	assert_string_equal(resp.body, "");
	httpc_response_done(&resp);

	/* An error answer is buffered, never streamed, so it can be read. */
	sink = (Sink){0};
	url(u, sizeof(u), S.url, "/refuse");
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 403);
	assert_int_equal(sink.n, 0);
	assert_non_null(strstr(resp.body, "<Code>AccessDenied</Code>"));
	httpc_response_done(&resp);

	/* A write error aborts with that error. */
	sink = (Sink){.fail = -ENOSPC};
	snprintf(u, sizeof(u), "%s/big?n=%u", S.url, BIG);
	assert_int_equal(httpc_request(c, &q, &resp, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "writing the answer"));
	httpc_free(c);
}

static bool not_json(void *ctx, long status, const char *type)
{
	(void)ctx;
	return status == 200 && !(type && strncmp(type, "application/json", 16) == 0);
}

static void test_stream_if(void **state)
{
	Sink sink = {0};
	char u[128];
	HttpcRequest q = {.url = u, .write = sink_write, .write_ctx = &sink, .stream_if = not_json};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.url, "/json");
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(sink.n, 0);
	assert_string_equal(resp.body, "{\"ok\":true}");
	httpc_response_done(&resp);
	httpc_free(c);
}

static void test_bounded_and_head(void **state)
{
	char u[128];
	HttpcRequest q = {.url = u, .max_body = 1u << 20};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	snprintf(u, sizeof(u), "%s/big?n=%u", S.url, 1u << 20);
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0); /* exactly the bound: fine */
	assert_int_equal(resp.n, 1u << 20);
	httpc_response_done(&resp);

	snprintf(u, sizeof(u), "%s/big?n=%u", S.url, (1u << 20) + 1);
	assert_int_equal(httpc_request(c, &q, &resp, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "answer over 1048576 bytes"));
	assert_non_null(strstr(err.msg, "GET 127.0.0.1:"));
	assert_null(strstr(err.msg, "n=")); /* never the query */

	q.method = "HEAD";
	snprintf(u, sizeof(u), "%s/big?n=100", S.url);
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.n, 0);
	assert_string_equal(httpc_header(&resp, "content-length"), "100");
	httpc_response_done(&resp);
	httpc_free(c);
}

/* ---- failures before an answer ---- */

/* A port on which nothing listens: bound, then closed. */
static unsigned closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_refused_and_bad_url(void **state)
{
	char u[128], want[64];
	HttpcRequest q = {.method = "PUT", .url = u};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;
	unsigned port = closed_port();

	(void)state;
	snprintf(u, sizeof(u), "http://127.0.0.1:%u/bucket/object?X-Amz-Signature=secret", port);
	snprintf(want, sizeof(want), "PUT 127.0.0.1:%u/bucket/object: ", port);
	assert_int_equal(httpc_request(c, &q, &resp, &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, want));
	assert_null(strstr(err.msg, "secret"));

	q.url = "ftp://127.0.0.1/x";
	assert_int_equal(httpc_request(c, &q, &resp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an http:// or https:// URL"));
	httpc_free(c);
}

static void test_timeouts(void **state)
{
	char u[128];
	HttpcRequest q = {.url = u, .timeout_ms = 300};
	HttpcResponse resp;
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.url, "/park");
	assert_int_equal(httpc_request(c, &q, &resp, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "GET 127.0.0.1:"));

	/* No byte for a second: the stall time-out. */
	q = (HttpcRequest){.url = u, .stall_ms = 1000};
	assert_int_equal(httpc_request(c, &q, &resp, &err), -ETIMEDOUT);
	httpc_free(c);
}

typedef struct Canceller {
	Httpc *c;
	volatile sig_atomic_t *flag;
} Canceller;

static void *cancel_later(void *arg)
{
	Canceller *k = arg;
	struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};

	nanosleep(&ts, NULL);
	if (k->flag)
		*k->flag = 1;
	else
		httpc_cancel(k->c);
	return NULL;
}

static void test_cancel(void **state)
{
	static volatile sig_atomic_t flag;
	char u[128];
	HttpcRequest q = {.url = u};
	HttpcResponse resp;
	HttpcConfig cfg = {.cancel_flag = &flag};
	Canceller k = {.c = client(NULL)};
	pthread_t t;
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.url, "/park");
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &k), 0);
	assert_int_equal(httpc_request(k.c, &q, &resp, &err), -ECANCELED);
	pthread_join(t, NULL);
	url(u, sizeof(u), S.url, "/echo"); /* and every later request */
	assert_int_equal(httpc_request(k.c, &q, &resp, &err), -ECANCELED);
	httpc_free(k.c);

	/* The flag a signal handler sets. */
	flag = 0;
	k = (Canceller){.c = client(&cfg), .flag = &flag};
	url(u, sizeof(u), S.url, "/park");
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &k), 0);
	assert_int_equal(httpc_request(k.c, &q, &resp, &err), -ECANCELED);
	pthread_join(t, NULL);
	httpc_free(k.c);
}

/* ---- TLS ---- */

static void test_tls(void **state)
{
	char u[128];
	HttpcRequest q = {.url = u};
	HttpcResponse resp;
	HttpcConfig trusted = {.cafile = S.cert}, insecure = {.insecure = true};
	Httpc *c = client(NULL);
	ErrBuf err;

	(void)state;
	url(u, sizeof(u), S.tls_url, "/echo");
	assert_int_equal(httpc_request(c, &q, &resp, &err), -EKEYREJECTED);
	httpc_free(c);

	c = client(&trusted);
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	httpc_response_done(&resp);
	httpc_free(c);

	c = client(&insecure);
	assert_int_equal(httpc_request(c, &q, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	httpc_response_done(&resp);
	httpc_free(c);
}

/* ---- words ---- */

static void test_describe_and_status_error(void **state)
{
	char out[64];
	ErrBuf err;

	(void)state;
	httpc_describe("PUT", "https://h.example:9000/b/o?uploadId=1&X-Amz-Signature=abc#f", out, sizeof(out));
	assert_string_equal(out, "PUT h.example:9000/b/o");
	httpc_describe(NULL, "http://h/", out, sizeof(out));
	assert_string_equal(out, "GET h/");
	httpc_describe("GET", "http://h/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", out,
		       16);
	assert_string_equal(out, "GET h/aaaaaa...");

	assert_int_equal(httpc_status_error(&err, -EACCES, "PUT", "http://h:1/b/o?sig=x", 403, "SignatureDoesNotMatch",
					    "The request signature we calculated does not match\nmore"),
			 -EACCES);
	assert_string_equal(
		err.msg,
		"PUT h:1/b/o: HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match");
	httpc_status_error(&err, -ENOENT, "GET", "http://h/b", 404, NULL, NULL);
	assert_string_equal(err.msg, "GET h/b: HTTP 404");
	httpc_status_error(&err, -ENOENT, "GET", "http://h/b", 404, "NoSuchBucket", NULL);
	assert_string_equal(err.msg, "GET h/b: HTTP 404 NoSuchBucket");
	httpc_status_error(&err, -EIO, "GET", "http://h/b", 500, "", "busy");
	assert_string_equal(err.msg, "GET h/b: HTTP 500: busy");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_buffered),
		cmocka_unit_test(test_put_and_post_bodies),
		cmocka_unit_test(test_put_streamed),
		cmocka_unit_test(test_download_streamed),
		cmocka_unit_test(test_stream_if),
		cmocka_unit_test(test_bounded_and_head),
		cmocka_unit_test(test_refused_and_bad_url),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_describe_and_status_error),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
