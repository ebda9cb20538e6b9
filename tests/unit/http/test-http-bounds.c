/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the bounds of src/http (http.h, "Bounds"): a real server on
 * 127.0.0.1 (port 0), raw sockets as the client, so that every byte sent is
 * the test's (no Expect: 100-continue, duplicate headers, half-sent bodies).
 *
 * The server's refusal callback answers "refused <status>: <message>" as
 * text/x-refusal, so a test tells this layer's refusals from the handler's
 * answers and from MHD's own. The handler:
 *   /echo      200 with the body's length ("len=N")
 *   /guarded   200 "len=N"; on_headers refuses it (401 "no key") unless the
 *              request carries "X-Key: ok", and trusts the connection if so
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/util.h"
#include "http/http.h"

typedef struct Ctx {
	pthread_mutex_t lock;
	unsigned handler_calls;
	unsigned hook_calls;
} Ctx;

typedef struct Server {
	HttpServer *srv;
	Ctx ctx;
	uint16_t port;
} Server;

static void handler(void *ctx, HttpRequest *r)
{
	Ctx *c = ctx;
	char buf[64];
	size_t len;
	int n;

	pthread_mutex_lock(&c->lock);
	c->handler_calls++;
	pthread_mutex_unlock(&c->lock);
	if (http_req_body_too_large(r)) {
		assert_int_equal(http_respond(r, 413, "text/plain", "too large", 9), 0);
		return;
	}
	http_req_body(r, &len);
	n = snprintf(buf, sizeof(buf), "len=%zu", len);
	assert_int_equal(http_respond(r, 200, "text/plain", buf, (size_t)n), 0);
}

static void on_headers(void *ctx, HttpRequest *r)
{
	Ctx *c = ctx;
	const char *key = http_req_header(r, "X-Key");

	pthread_mutex_lock(&c->lock);
	c->hook_calls++;
	pthread_mutex_unlock(&c->lock);
	assert_int_equal(http_suspend(r), -EPERM); /* no parking before the body */
	if (strcmp(http_req_path(r), "/guarded") != 0)
		return;
	if (key && strcmp(key, "ok") == 0) {
		http_req_trust(r);
		return;
	}
	assert_int_equal(http_respond(r, 401, "text/plain", "no key", 6), 0);
}

static void on_refuse(void *ctx, HttpRequest *r, unsigned status, unsigned retry_after_s, const char *message)
{
	char buf[512], v[16];
	int n = snprintf(buf, sizeof(buf), "refused %u: %s", status, message);

	(void)ctx;
	snprintf(v, sizeof(v), "%u", retry_after_s);
	if (retry_after_s)
		assert_int_equal(http_add_header(r, "Retry-After", v), 0);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal(http_respond(r, status, "text/x-refusal", buf, (size_t)n), 0);
}

static unsigned calls(Server *s, bool hook)
{
	unsigned n;

	pthread_mutex_lock(&s->ctx.lock);
	n = hook ? s->ctx.hook_calls : s->ctx.handler_calls;
	pthread_mutex_unlock(&s->ctx.lock);
	return n;
}

static void server_start(Server *s, HttpConfig *cfg)
{
	ErrBuf err = {{0}};
	int r;

	cfg->http_addr = "127.0.0.1:0";
	cfg->threads = 2;
	cfg->handler = handler;
	cfg->on_headers = on_headers;
	cfg->refuse = on_refuse;
	cfg->ctx = &s->ctx;
	r = http_server_start(cfg, &s->srv, &err);
	if (r < 0)
		fail_msg("http_server_start: %d %s", r, err.msg);
	s->port = http_server_port(s->srv, false);
}

static int setup(void **state)
{
	Server *s = calloc(1, sizeof(*s));
	HttpConfig cfg = {.max_body = 16u * 1024 * 1024};

	pthread_mutex_init(&s->ctx.lock, NULL);
	server_start(s, &cfg);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	Server *s = *state;

	http_server_stop(s->srv);
	pthread_mutex_destroy(&s->ctx.lock);
	free(s);
	return 0;
}

static void restart(Server *s, HttpConfig *cfg)
{
	http_server_stop(s->srv);
	server_start(s, cfg);
}

static double now_s(void)
{
	return (double)now_monotonic_ns() / 1e9;
}

/* ---- a raw client ---- */

/* A connection from src ("127.0.0.1", "127.0.0.2", ...). */
static int dial(const Server *s, const char *src)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->port)};
	struct sockaddr_in from = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(inet_pton(AF_INET, src, &from.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Sends everything; false if the peer closed first (EPIPE/ECONNRESET). */
static bool send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		c += k;
		n -= (size_t)k;
	}
	return true;
}

typedef struct Answer {
	unsigned status;
	char head[2048]; /* status line and headers */
	char body[1024]; /* NUL-terminated, cut at the buffer's end */
	bool closed;     /* the server closed the connection (EOF or reset) */
} Answer;

/* Reads one answer (Content-Length framed), waiting up to 20 s. */
static void read_answer(int fd, Answer *a)
{
	char buf[8192];
	size_t n = 0, want = SIZE_MAX;
	double t0 = now_s();

	memset(a, 0, sizeof(*a));
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		const char *end = memmem(buf, n, "\r\n\r\n", 4);
		ssize_t k;

		if (end && want == SIZE_MAX) {
			const char *cl = memmem(buf, (size_t)(end - buf), "Content-Length: ", 16);
			size_t hl = (size_t)(end - buf) + 4;

			want = hl + (cl ? strtoul(cl + 16, NULL, 10) : 0);
		}
		if (n >= want)
			break;
		assert_true(now_s() - t0 < 20);
		if (poll(&p, 1, 1000) <= 0)
			continue;
		k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0) {
			a->closed = true;
			break;
		}
		n += (size_t)k;
		assert_true(n < sizeof(buf) - 1);
	}
	buf[n] = '\0';
	if (n > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		a->status = (unsigned)strtoul(buf + 9, NULL, 10);
	{
		const char *end = strstr(buf, "\r\n\r\n");
		size_t hl = end ? (size_t)(end - buf) : n;

		snprintf(a->head, sizeof(a->head), "%.*s", (int)hl, buf);
		if (end)
			snprintf(a->body, sizeof(a->body), "%s", end + 4);
	}
}

/* One request on a new connection; the connection is closed after. */
static void exchange(const Server *s, const char *req, size_t len, Answer *a)
{
	int fd = dial(s, "127.0.0.1");

	assert_true(send_all(fd, req, len));
	read_answer(fd, a);
	close(fd);
}

/* True once the server has closed fd (EOF or reset), waiting up to max_s. */
static bool closed_within(int fd, double max_s)
{
	double t0 = now_s();

	while (now_s() - t0 < max_s) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char c;

		if (poll(&p, 1, 100) == 1)
			return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
	}
	return false;
}

/* ---- tests ---- */

static void test_query_args(void **state)
{
	Server *s = *state;
	size_t cap = 16384, o;
	char *req = malloc(cap);
	Answer a;
	double t0;

	/* 1000 parameters: a prompt 400 that says so (MHD alone answers
	 * nothing and waits for the idle time-out) */
	o = (size_t)snprintf(req, cap, "GET /echo?");
	for (int i = 0; i < 1000; i++)
		o += (size_t)snprintf(req + o, cap - o, "%sa%d=%d", i ? "&" : "", i, i);
	o += (size_t)snprintf(req + o, cap - o, " HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(o < cap);
	t0 = now_s();
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.body, "refused 400: query: 1000 parameters, at most 64");
	assert_true(now_s() - t0 < 5); /* the untrusted idle time-out is 10 s */

	/* exactly the bound is fine */
	o = (size_t)snprintf(req, cap, "GET /echo?");
	for (int i = 0; i < (int)HTTP_MAX_QUERY_ARGS; i++)
		o += (size_t)snprintf(req + o, cap - o, "%sa%d=%d", i ? "&" : "", i, i);
	o += (size_t)snprintf(req + o, cap - o, " HTTP/1.1\r\nHost: x\r\n\r\n");
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 200);

	/* a target over HTTP_MAX_URI: 414 in our words */
	o = (size_t)snprintf(req, cap, "GET /echo?a=");
	memset(req + o, 'x', HTTP_MAX_URI);
	o += HTTP_MAX_URI;
	o += (size_t)snprintf(req + o, cap - o, " HTTP/1.1\r\nHost: x\r\n\r\n");
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 414);
	assert_non_null(strstr(a.body, "refused 414: URI: "));
	assert_int_equal(calls(s, false), 1); /* only the good request reached the handler */
	free(req);
}

static void test_header_bounds(void **state)
{
	Server *s = *state;
	size_t cap = 32768, o;
	char *req = malloc(cap);
	Answer a;

	/* one header more than the bound (Host is one) */
	o = (size_t)snprintf(req, cap, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	for (unsigned i = 0; i < HTTP_MAX_REQ_HEADERS; i++)
		o += (size_t)snprintf(req + o, cap - o, "X-H%u: v\r\n", i);
	o += (size_t)snprintf(req + o, cap - o, "\r\n");
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 431);
	assert_string_equal(a.body, "refused 431: headers: 65 request headers, at most 64");

	/* the bound itself is fine */
	o = (size_t)snprintf(req, cap, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	for (unsigned i = 1; i < HTTP_MAX_REQ_HEADERS; i++)
		o += (size_t)snprintf(req + o, cap - o, "X-H%u: v\r\n", i);
	o += (size_t)snprintf(req + o, cap - o, "\r\n");
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 200);

	/* 20 KiB of header values, within MHD's 36 KiB of connection memory */
	o = (size_t)snprintf(req, cap, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + o, 'v', 20000);
	o += 20000;
	o += (size_t)snprintf(req + o, cap - o, "\r\n\r\n");
	exchange(s, req, o, &a);
	assert_int_equal(a.status, 431);
	assert_non_null(strstr(a.body, "refused 431: headers: "));
	assert_non_null(strstr(a.body, "bytes of request headers, at most 16384"));
	free(req);
}

static void test_content_length_conflicts(void **state)
{
	Server *s = *state;
	static const char two[] =
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
	static const char same[] =
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
	static const char both[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	Answer a;

	exchange(s, two, sizeof(two) - 1, &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.body, "refused 400: Content-Length: two headers with different values");
	exchange(s, same, sizeof(same) - 1, &a);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "len=5");
	exchange(s, both, sizeof(both) - 1, &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.body, "refused 400: Content-Length: not allowed together with Transfer-Encoding");
	assert_int_equal(calls(s, false), 1);
}

static void test_refused_before_body(void **state)
{
	Server *s = *state;
	size_t big = 12u * 1024 * 1024, sent = 0;
	char *chunk = calloc(1, 1 << 16);
	char head[256];
	Answer a;
	int fd, n;

	/* no key: 401 from on_headers while the client is still sending; the
	 * handler never runs and the server stops reading */
	n = snprintf(head, sizeof(head), "POST /guarded HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", big);
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, head, (size_t)n));
	read_answer(fd, &a);
	assert_int_equal(a.status, 401);
	assert_string_equal(a.body, "no key");
	/* the server closes: sending the body ends in a reset or EOF long
	 * before 12 MiB (the kernel's buffers hold a few MiB at most) */
	while (sent < big && send_all(fd, chunk, 1 << 16))
		sent += 1 << 16;
	assert_true(sent < big);
	close(fd);
	assert_int_equal(calls(s, false), 0);
	assert_int_equal(calls(s, true), 1);

	/* with the key the same body is read */
	n = snprintf(head, sizeof(head),
		     "POST /guarded HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\nContent-Length: %zu\r\n\r\n",
		     (size_t)(1 << 20));
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, head, (size_t)n));
	for (int i = 0; i < 16; i++)
		assert_true(send_all(fd, chunk, 1 << 16));
	read_answer(fd, &a);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "len=1048576");
	close(fd);

	/* a request without a body does not go through on_headers */
	exchange(s, "GET /guarded HTTP/1.1\r\nHost: x\r\n\r\n", 34, &a);
	assert_int_equal(a.status, 200);
	assert_int_equal(calls(s, true), 2);
	free(chunk);
}

/* Waits until the server holds at least (at_least) or exactly (else) want
 * bytes of its body budget; the bound only decides how long a broken run
 * takes to fail. */
static void wait_held(Server *s, size_t want, bool at_least)
{
	double t0 = now_s();

	for (;;) {
		size_t held = http_server_body_held(s->srv);

		if (at_least ? held >= want : held == want)
			return;
		assert_true(now_s() - t0 < 60);
		usleep(2000);
	}
}

static void test_body_budget(void **state)
{
	Server *s = *state;
	HttpConfig cfg = {.max_body = 4u * 1024 * 1024, .body_budget = 1024 * 1024};
	size_t body = 700 * 1024;
	char *data = calloc(1, 1536 * 1024);
	char head[256];
	Answer a;
	int hold, fd, n;

	restart(s, &cfg);
	/* over the whole budget by Content-Length: 503, before the body */
	n = snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", 1536 * 1024);
	exchange(s, head, (size_t)n, &a);
	assert_int_equal(a.status, 503);
	assert_non_null(strstr(a.head, "\r\nRetry-After: 1"));
	assert_string_equal(a.body, "refused 503: busy: request bodies in progress hold the server's 1 MiB; "
				    "retry in 1 s");

	/* one request holds 700 KiB of it while its body trickles in ... */
	n = snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", body);
	hold = dial(s, "127.0.0.1");
	assert_true(send_all(hold, head, (size_t)n));
	assert_true(send_all(hold, data, 10));
	/* ... once the server holds its budget (reserved on its headers), a
	 * second one does not fit; it is told at once */
	wait_held(s, body, true);
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, head, (size_t)n));
	read_answer(fd, &a);
	close(fd);
	assert_int_equal(a.status, 503);
	/* the first completes; its budget comes back once its request is
	 * over (just after the answer went out) */
	assert_true(send_all(hold, data + 10, body - 10));
	read_answer(hold, &a);
	assert_int_equal(a.status, 200);
	close(hold);
	wait_held(s, 0, false);
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, head, (size_t)n));
	assert_true(send_all(fd, data, body));
	read_answer(fd, &a);
	close(fd);
	assert_int_equal(a.status, 200);

	/* a chunked body that outgrows the budget: read to its end, then 503 */
	fd = dial(s, "127.0.0.1");
	n = snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	assert_true(send_all(fd, head, (size_t)n));
	for (int i = 0; i < 24; i++) {
		n = snprintf(head, sizeof(head), "10000\r\n");
		assert_true(send_all(fd, head, (size_t)n));
		assert_true(send_all(fd, data, 0x10000));
		assert_true(send_all(fd, "\r\n", 2));
	}
	assert_true(send_all(fd, "0\r\n\r\n", 5));
	read_answer(fd, &a);
	close(fd);
	assert_int_equal(a.status, 503);
	assert_non_null(strstr(a.head, "\r\nRetry-After: 1"));
	free(data);
}

static void test_per_address(void **state)
{
	Server *s = *state;
	HttpConfig cfg = {.max_per_address = 2};
	int a1, a2, a3, b;
	Answer a;

	restart(s, &cfg);
	a1 = dial(s, "127.0.0.1");
	a2 = dial(s, "127.0.0.1");
	/* both are the server's before the third arrives: each answers */
	assert_true(send_all(a1, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 32));
	read_answer(a1, &a);
	assert_int_equal(a.status, 200);
	assert_true(send_all(a2, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 32));
	read_answer(a2, &a);
	assert_int_equal(a.status, 200);
	/* a third from the same address is closed unanswered */
	a3 = dial(s, "127.0.0.1");
	assert_true(closed_within(a3, 10));
	close(a3);
	/* another address is served at once */
	b = dial(s, "127.0.0.2");
	assert_true(send_all(b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 32));
	read_answer(b, &a);
	assert_int_equal(a.status, 200);
	close(b);
	close(a1);
	close(a2);
}

static void test_trusted_timeout(void **state)
{
	Server *s = *state;
	HttpConfig cfg = {.timeout_s = 30, .untrusted_timeout_s = 1};
	static const char plain[] = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char keyed[] = "POST /guarded HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\nContent-Length: 2\r\n\r\nhi";
	Answer a;
	double t0;
	int fd;

	restart(s, &cfg);
	/* untrusted: closed after about a second of silence */
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, plain, sizeof(plain) - 1));
	read_answer(fd, &a);
	assert_int_equal(a.status, 200);
	t0 = now_s();
	assert_true(closed_within(fd, 15));
	assert_true(now_s() - t0 >= 0.5);
	close(fd);
	/* nothing sent at all: the same */
	fd = dial(s, "127.0.0.1");
	assert_true(closed_within(fd, 15));
	close(fd);
	/* a request line trickled in, a byte every 200 ms: closed all the
	 * same, the first line being due within the untrusted time-out of the
	 * connect (MHD's idle time-out alone would keep it open) */
	fd = dial(s, "127.0.0.1");
	t0 = now_s();
	assert_true(send_all(fd, "GET /", 5));
	while (!closed_within(fd, 0.2) && now_s() - t0 < 15)
		(void)!send(fd, "a", 1, MSG_NOSIGNAL);
	assert_true(now_s() - t0 < 15);
	assert_true(now_s() - t0 >= 0.5);
	close(fd);

	/* trusted by its request: still open after three idle seconds, and
	 * serves the next request */
	fd = dial(s, "127.0.0.1");
	assert_true(send_all(fd, keyed, sizeof(keyed) - 1));
	read_answer(fd, &a);
	assert_int_equal(a.status, 200);
	assert_false(closed_within(fd, 3));
	assert_true(send_all(fd, plain, sizeof(plain) - 1));
	read_answer(fd, &a);
	assert_int_equal(a.status, 200);
	assert_false(a.closed);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_query_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_length_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_before_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trusted_timeout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
