/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/agent's pure parts: backoff, the job table's
 * deduplication, the job records on disk (atomic, recovered, faults injected
 * through the I/O seam) and the configuration check; and the controller
 * client's upload against a raw server that drops a kept-alive connection as
 * it is reused; a store upload's parts in flight at once against a raw store
 * that holds them. The protocol codec has its own tests (tests/unit/proto).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/agentkey.h"
#include "agent/backoff.h"
#include "agent/ctlclient.h"
#include "agent/jobstore.h"
#include "agent/jobtable.h"
#include "agent/storeup.h"
#include "httpc/httpc.h"
#include "proto/agentproto.h"

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"

/* ---- backoff ---- */

static void test_backoff(void **state)
{
	const uint32_t nominal[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
	Backoff b;

	(void)state;
	backoff_init(&b, 100, 5000);
	for (size_t i = 0; i < sizeof(nominal) / sizeof(nominal[0]); i++) {
		Backoff lo = b, hi = b;
		uint32_t d_lo = backoff_next(&lo, 0), d_hi = backoff_next(&hi, UINT32_MAX);
		uint32_t d = backoff_next(&b, 12345u * (uint32_t)i);

		/* Equal jitter: every delay in [nominal/2, nominal]. */
		assert_int_equal(d_lo, nominal[i] - nominal[i] / 2);
		assert_true(d_hi <= nominal[i] && d_hi >= nominal[i] - nominal[i] / 2);
		assert_true(d >= nominal[i] - nominal[i] / 2 && d <= nominal[i]);
	}
	/* Reaching the nominal maximum exactly. */
	{
		Backoff c;
		uint32_t top = 0;

		backoff_init(&c, 100, 5000);
		for (int i = 0; i < 20; i++)
			top = backoff_next(&c, 2500); /* 2500 % 2501 = 2500: the top of the range */
		assert_int_equal(top, 5000);
	}
	backoff_reset(&b);
	assert_true(backoff_next(&b, 0) == 50);
	/* Degenerate settings stay sane. */
	backoff_init(&b, 0, 0);
	assert_true(backoff_next(&b, 7) <= 1);
}

/* ---- job table ---- */

static void test_jobtable(void **state)
{
	JobTable *t = malloc(sizeof(*t));
	int a = 1, b = 2;
	char id[JOB_ID_LEN + 1];

	(void)state;
	jobtable_init(t);
	assert_int_equal(jobtable_add(t, ID1, &a), 0);
	assert_int_equal(jobtable_add(t, ID1, &b), -EEXIST); /* the same start twice */
	assert_ptr_equal(jobtable_get(t, ID1), &a);
	assert_null(jobtable_get(t, ID2));
	assert_int_equal(jobtable_add(t, ID2, &b), 0);
	assert_int_equal(jobtable_add(t, "short", &b), -EINVAL);
	assert_ptr_equal(jobtable_take(t, ID1), &a);
	assert_null(jobtable_take(t, ID1));
	assert_true(jobtable_recent(t, ID1));
	assert_int_equal(jobtable_add(t, ID1, &a), -EALREADY); /* acknowledged: never again */
	assert_ptr_equal(jobtable_get(t, ID2), &b);
	assert_int_equal(t->n, 1);
	/* A retried upload runs again once forgotten; the other ids stay known. */
	assert_ptr_equal(jobtable_take(t, ID2), &b);
	jobtable_forget_recent(t, ID1);
	assert_false(jobtable_recent(t, ID1));
	assert_true(jobtable_recent(t, ID2));
	assert_int_equal(jobtable_add(t, ID1, &a), 0);
	assert_int_equal(jobtable_add(t, ID2, &b), -EALREADY);
	assert_ptr_equal(jobtable_take(t, ID1), &a);

	/* Full table. */
	jobtable_init(t);
	for (unsigned i = 0; i < JOBTABLE_MAX; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		assert_int_equal(jobtable_add(t, id, &a), 0);
	}
	assert_int_equal(jobtable_add(t, ID1, &a), -ENOSPC);
	/* The memory of acknowledged ids is bounded: the oldest goes first. */
	for (unsigned i = 0; i < JOBTABLE_MAX; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		assert_non_null(jobtable_take(t, id));
	}
	for (unsigned i = 0; i < JOBTABLE_RECENT; i++) {
		snprintf(id, sizeof(id), "%032x", 100000 + i);
		assert_int_equal(jobtable_add(t, id, &a), 0);
		assert_non_null(jobtable_take(t, id));
	}
	snprintf(id, sizeof(id), "%032x", 0);
	assert_false(jobtable_recent(t, id));
	snprintf(id, sizeof(id), "%032x", 100000 + JOBTABLE_RECENT - 1);
	assert_true(jobtable_recent(t, id));
	free(t);
}

/* ---- job store ---- */

typedef struct FaultState {
	int fail_fsync; /* fail the Nth fsync (1-based); 0 never */
	int fsyncs;
} FaultState;

static int faulty_fsync(const IoOps *self, int fd)
{
	FaultState *s = self->state;

	if (++s->fsyncs == s->fail_fsync)
		return -EIO;
	return io_posix.fsync(&io_posix, fd);
}

static void rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static bool exists(const char *dir, const char *name)
{
	char path[2 * PATH_MAX];
	struct stat st;

	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
	return stat(path, &st) == 0;
}

static void touch(const char *dir, const char *name)
{
	char path[2 * PATH_MAX];
	int fd;

	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static void test_jobstore(void **state)
{
	char tmpl[] = "/tmp/pcapd-test-agent-XXXXXX", data[PATH_MAX], path[2 * PATH_MAX];
	AgentJobReport r = {0}, *v = NULL;
	size_t n = 0, bad = 0;
	JobStore *s = NULL;
	ErrBuf err = {{0}};

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_true(snprintf(data, sizeof(data), "%s/a/b", tmpl) < (int)sizeof(data)); /* parents are created */
	assert_int_equal(jobstore_open(data, NULL, &s, &err), 0);
	memcpy(r.id, ID1, sizeof(r.id));
	r.state = PART_RUNNING;
	assert_int_equal(jobstore_save(s, &r, &err), 0);
	r.state = PART_DONE;
	r.packets = 9;
	assert_int_equal(jobstore_save(s, &r, &err), 0); /* replaces */
	assert_true(snprintf(path, sizeof(path), "%s/jobs", data) < (int)sizeof(path));
	assert_true(exists(path, ID1 ".json"));
	assert_false(exists(path, ID1 ".json.tmp"));
	assert_int_equal(jobstore_spool_path(s, ID1, path, sizeof(path)), 0);
	touch(data, "spool/" ID1 ".pcap");
	assert_true(exists(data, "spool/" ID1 ".pcap"));

	/* Garbage and a record under another id's name are left alone, counted. */
	touch(data, "jobs/" ID2 ".json");
	touch(data, "jobs/leftover.json.tmp");
	touch(data, "jobs/unrelated.txt");
	jobstore_free(s);
	assert_int_equal(jobstore_open(data, NULL, &s, &err), 0);
	assert_false(exists(data, "jobs/leftover.json.tmp")); /* recovery removed it */
	assert_int_equal(jobstore_load(s, &v, &n, &bad, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 1);
	assert_string_equal(v[0].id, ID1);
	assert_int_equal(v[0].state, PART_DONE);
	assert_int_equal(v[0].packets, 9);
	free(v);

	assert_int_equal(jobstore_remove(s, ID1, &err), 0);
	assert_false(exists(data, "jobs/" ID1 ".json"));
	assert_false(exists(data, "spool/" ID1 ".pcap"));
	assert_int_equal(jobstore_remove(s, ID1, &err), 0); /* absent is fine */

	touch(data, "spool/" ID2 ".pcap");
	assert_int_equal(jobstore_clear_spool(s, NULL, 0, &err), 0);
	assert_false(exists(data, "spool/" ID2 ".pcap"));
	jobstore_free(s);
	rm_rf(tmpl);
}

/* An upload's progress: saved after each part, read back at a restart,
 * removed with the record; the spool of a resumed upload is kept. */
static void test_jobstore_upload(void **state)
{
	char tmpl[] = "/tmp/pcapd-test-agent-XXXXXX", target[] = "s3://caps/p?secret-access-key=REDACTED";
	char e1[] = "\"etag-1\"", e2[] = "\"etag-2\"", *etags[] = {e1, e2};
	JobUpload u = {.attempt = 2, .target = target, .sent = 2, .etags = etags}, got = {0};
	const char *keep[] = {ID1};
	JobStore *s = NULL;
	ErrBuf err = {{0}};

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(jobstore_open(tmpl, NULL, &s, &err), 0);
	assert_int_equal(jobstore_load_upload(s, ID1, &got, &err), -ENOENT);
	memcpy(u.object, "pcap_x_a.pcap", sizeof("pcap_x_a.pcap"));
	memcpy(u.upload_id, "2~abc", sizeof("2~abc"));
	assert_int_equal(jobstore_save_upload(s, ID1, &u, &err), 0);
	u.sent = 1;
	assert_int_equal(jobstore_save_upload(s, ID1, &u, &err), 0); /* replaces */
	u.sent = 2;
	assert_int_equal(jobstore_save_upload(s, ID1, &u, &err), 0);
	assert_int_equal(jobstore_load_upload(s, ID1, &got, &err), 0);
	assert_int_equal(got.attempt, 2);
	assert_string_equal(got.target, target);
	assert_string_equal(got.object, "pcap_x_a.pcap");
	assert_string_equal(got.upload_id, "2~abc");
	assert_int_equal(got.sent, 2);
	assert_string_equal(got.etags[0], e1);
	assert_string_equal(got.etags[1], e2);
	jobstore_upload_done(&got);

	/* Azure: no ETags. */
	u.etags = NULL;
	u.upload_id[0] = '\0';
	assert_int_equal(jobstore_save_upload(s, ID2, &u, &err), 0);
	assert_int_equal(jobstore_load_upload(s, ID2, &got, &err), 0);
	assert_int_equal(got.sent, 2);
	assert_null(got.etags);
	jobstore_upload_done(&got);

	/* Bad files: the member named, nothing returned. */
	touch(tmpl, "jobs/" ID2 ".upload");
	assert_int_equal(jobstore_load_upload(s, ID2, &got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ID2 ".upload"));

	/* The record goes with its progress; a kept spool stays. */
	touch(tmpl, "spool/" ID1 ".pcap");
	touch(tmpl, "spool/" ID2 ".pcap");
	assert_int_equal(jobstore_clear_spool(s, keep, 1, &err), 0);
	assert_true(exists(tmpl, "spool/" ID1 ".pcap"));
	assert_false(exists(tmpl, "spool/" ID2 ".pcap"));
	assert_int_equal(jobstore_remove_record(s, ID1, &err), 0);
	assert_false(exists(tmpl, "jobs/" ID1 ".upload"));
	jobstore_free(s);
	rm_rf(tmpl);
}

static void test_jobstore_fsync_fault(void **state)
{
	char tmpl[] = "/tmp/pcapd-test-agent-XXXXXX";
	FaultState fs = {.fail_fsync = 1};
	IoOps ops = io_posix;
	AgentJobReport r = {0}, *v = NULL;
	size_t n = 0, bad = 0;
	JobStore *s = NULL;
	ErrBuf err = {{0}};

	(void)state;
	ops.fsync = faulty_fsync;
	ops.state = &fs;
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(jobstore_open(tmpl, &ops, &s, &err), 0);
	memcpy(r.id, ID1, sizeof(r.id));
	r.state = PART_DONE;
	assert_int_equal(jobstore_save(s, &r, &err), -EIO);
	assert_non_null(strstr(err.msg, ID1 ".json."));
	assert_non_null(strstr(err.msg, ".tmp"));
	/* Nothing published, nothing left behind. */
	assert_false(exists(tmpl, "jobs/" ID1 ".json"));
	{
		char jobs[128];
		struct dirent *e;
		DIR *d;
		int files = 0;

		snprintf(jobs, sizeof(jobs), "%s/jobs", tmpl);
		d = opendir(jobs);
		assert_non_null(d);
		while ((e = readdir(d)))
			files += e->d_name[0] != '.';
		closedir(d);
		assert_int_equal(files, 0);
	}
	assert_int_equal(jobstore_load(s, &v, &n, &bad, &err), 0);
	assert_int_equal(n + bad, 0);
	free(v);
	jobstore_free(s);
	rm_rf(tmpl);
}

/* ---- configuration ---- */

static const char *check(AgentConfig c)
{
	static ErrBuf err;

	memset(&err, 0, sizeof(err));
	return agent_config_check(&c, &err) == 0 ? "ok" : err.msg;
}

/* ---- the controller client: a file upload on a connection that died ---- */

#define UPLOAD_SIZE 3000

typedef struct RawServer {
	int lfd;
	int bodies_ok; /* whole, correct bodies received */
	bool failed;   /* the server could not play its part */
} RawServer;

/* Reads one request (headers and Content-Length body) from fd; false on EOF
 * first. Checks the body against the file's bytes. */
static bool read_request(int fd, RawServer *rs, bool head_only)
{
	char buf[8192];
	size_t n = 0, want = 0;
	char *end = NULL;

	for (;;) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);

		if (k <= 0 || n + (size_t)k >= sizeof(buf) - 1)
			return false;
		n += (size_t)k;
		buf[n] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "Content-Length: ");

			want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
			if (head_only)
				return true;
		}
		if (end && n >= want)
			break;
	}
	for (size_t i = 0; i < UPLOAD_SIZE; i++)
		if ((unsigned char)end[4 + i] != (unsigned char)(i * 13 + 1))
			return true;
	rs->bodies_ok++;
	return true;
}

static void *raw_server(void *arg)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	RawServer *rs = arg;
	int c1, c2 = -1;

	/* The first request is answered and the connection kept; the second
	 * on it is read up to its headers and the connection closed, as a
	 * server's idle time-out does when it strikes as the client reuses
	 * it. The client must send the whole request again on a new one.
	 * (No cmocka assertions on this thread: the test checks rs.) */
	c1 = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC);
	rs->failed = c1 < 0 || !read_request(c1, rs, false) ||
		     send(c1, ok, sizeof(ok) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ok) - 1 ||
		     !read_request(c1, rs, true);
	if (c1 >= 0)
		close(c1);
	if (!rs->failed) {
		c2 = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC); /* fails once the test shuts lfd */
		rs->failed = c2 < 0 || !read_request(c2, rs, false) ||
			     send(c2, ok, sizeof(ok) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ok) - 1;
	}
	if (c2 >= 0)
		close(c2);
	return NULL;
}

static void test_upload_retried_on_a_dead_connection(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char path[] = "/tmp/pcapd-test-upload-XXXXXX", url[64];
	uint8_t data[UPLOAD_SIZE];
	RawServer rs = {0};
	CtlClient *c = NULL;
	CtlResponse resp = {0};
	ErrBuf err = {{0}};
	pthread_t t;
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	rs.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(rs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(rs.lfd, 4), 0);
	assert_int_equal(getsockname(rs.lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&t, NULL, raw_server, &rs), 0);

	CtlClientConfig cfg = {.base_url = url, .token = "t", .user_agent = "test"};
	long status[2] = {0, 0};
	char why[2][sizeof(err.msg)] = {"", ""};

	assert_int_equal(ctlclient_global_init(&err), 0);
	assert_int_equal(ctlclient_new(&cfg, &c, &err), 0);
	for (int i = 0; i < 2; i++) {
		if (ctlclient_post_file(c, "/agent/v1/sample", "application/vnd.tcpdump.pcap", fd, sizeof(data), 20000,
					&resp, &err) < 0) {
			snprintf(why[i], sizeof(why[i]), "%s", err.msg);
			break;
		}
		status[i] = resp.status;
		ctlclient_response_done(&resp);
	}
	shutdown(rs.lfd, SHUT_RDWR); /* a server still waiting for the retry stops */
	pthread_join(t, NULL);
	ctlclient_free(c);
	ctlclient_global_cleanup();
	close(rs.lfd);
	close(fd);
	if (why[0][0] || why[1][0])
		fail_msg("upload failed: '%s' '%s'", why[0], why[1]);
	assert_int_equal(status[0], 200);
	assert_int_equal(status[1], 200);
	assert_false(rs.failed);
	assert_int_equal(rs.bodies_ok, 2);
}

/* ---- a store upload: several parts in flight at once ---- */

static int listener(char *url, size_t cap);

/* A raw server on a port of the kernel's choice (its URL in url): each
 * connection on a thread of its own, handled by serve(ctx, fd), which closes
 * fd. */
typedef struct Accepter {
	int lfd;
	char url[64];
	void (*serve)(void *ctx, int fd);
	void *ctx;
	bool failed; /* a connection could not be served */
	pthread_t thread, conns[16];
	int n_conns;
} Accepter;

typedef struct Accepted {
	Accepter *a;
	int fd;
} Accepted;

static void *accepted_main(void *arg)
{
	Accepted *c = arg;

	c->a->serve(c->a->ctx, c->fd);
	free(c);
	return NULL;
}

static void *accepter_main(void *arg)
{
	Accepter *a = arg;
	int fd;

	while ((fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		Accepted *c = malloc(sizeof(*c));

		if (!c || a->n_conns == 16) {
			a->failed = true;
			free(c);
			close(fd);
			continue;
		}
		*c = (Accepted){.a = a, .fd = fd};
		if (pthread_create(&a->conns[a->n_conns], NULL, accepted_main, c) != 0) {
			a->failed = true;
			close(fd);
			free(c);
			continue;
		}
		a->n_conns++;
	}
	return NULL;
}

static void accepter_start(Accepter *a, void (*serve)(void *ctx, int fd), void *ctx)
{
	*a = (Accepter){.serve = serve, .ctx = ctx};
	a->lfd = listener(a->url, sizeof(a->url));
	assert_int_equal(pthread_create(&a->thread, NULL, accepter_main, a), 0);
}

/* Once the clients have closed their connections. */
static void accepter_stop(Accepter *a)
{
	shutdown(a->lfd, SHUT_RDWR);
	pthread_join(a->thread, NULL);
	for (int i = 0; i < a->n_conns; i++)
		pthread_join(a->conns[i], NULL);
	close(a->lfd);
}

#define HELD_PARTS 3
#define HELD_PART_SIZE 1000u

/* A raw store: a part's PUT is held until HELD_PARTS of them are held at
 * once (or 60 s passed: an upload that sends one part at a time), then
 * answered, as the block list is. */
typedef struct HoldStore {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int held, peak, parts, lists;
} HoldStore;

/* Reads one request (headers and its Content-Length body): its first line
 * in line[cap]; false at the connection's end. */
static bool hold_read(int fd, char *line, size_t cap)
{
	char buf[8192], *end, *cl;
	size_t n = 0, want;
	ssize_t k;

	while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
		if (n == sizeof(buf) || (k = read(fd, buf + n, sizeof(buf) - n)) <= 0)
			return false;
		n += (size_t)k;
	}
	*end = '\0';
	snprintf(line, cap, "%.*s", (int)strcspn(buf, "\r"), buf);
	if (strcasestr(buf, "expect: 100-continue") &&
	    send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL) != 25)
		return false;
	cl = strcasestr(buf, "content-length:");
	want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
	while (n < want) {
		char sink[4096];

		k = read(fd, sink, want - n < sizeof(sink) ? want - n : sizeof(sink));
		if (k <= 0)
			return false;
		n += (size_t)k;
	}
	return true;
}

static void hold_conn(void *ctx, int fd)
{
	static const char created[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
	HoldStore *hs = ctx;
	char line[512];

	while (hold_read(fd, line, sizeof(line))) {
		pthread_mutex_lock(&hs->mu);
		if (strstr(line, "comp=blocklist")) {
			hs->lists++;
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 60;
			hs->parts++;
			hs->held++;
			if (hs->held > hs->peak)
				hs->peak = hs->held;
			pthread_cond_broadcast(&hs->cv);
			while (hs->peak < HELD_PARTS && pthread_cond_timedwait(&hs->cv, &hs->mu, &ts) == 0)
				;
			hs->held--;
		}
		pthread_mutex_unlock(&hs->mu);
		if (send(fd, created, sizeof(created) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(created) - 1)
			break;
	}
	close(fd);
}

static void count_progress(void *ctx, const StoreProgress *p)
{
	uint32_t *sent = ctx;

	if (p->sent < *sent)
		*sent = UINT32_MAX; /* went back: caught below */
	else if (*sent != UINT32_MAX)
		*sent = p->sent;
}

/* An Azure grant for parts 1..n of part_size bytes under url ("http://…/"),
 * and the block list. */
static void blocks_grant(AgentUploadGrant *g, const char *url, uint32_t n, uint64_t part_size)
{
	char u[160];

	*g = (AgentUploadGrant){.store = AGENT_STORE_AZURE,
				.expires_in_s = 900,
				.part_size = part_size,
				.upload_id = "blk",
				.first_part = 1,
				.n_parts = n};
	g->parts = calloc(n, sizeof(*g->parts));
	assert_non_null(g->parts);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(u, sizeof(u), "%sb/o?comp=block&blockid=%u", url, i + 1);
		snprintf(g->parts[i].method, sizeof(g->parts[i].method), "PUT");
		g->parts[i].url = strdup(u);
		assert_non_null(g->parts[i].url);
	}
	snprintf(u, sizeof(u), "%sb/o?comp=blocklist", url);
	snprintf(g->complete.method, sizeof(g->complete.method), "PUT");
	g->complete.url = strdup(u);
	assert_non_null(g->complete.url);
}

/* Agent a1's upload of job ID1's object to azblob://b/o through g. */
static StoreUpload blocks_upload(AgentUploadGrant *g, StoreProgressFn progress, void *ctx)
{
	return (StoreUpload){.agent = "a1",
			     .job_id = ID1,
			     .target = "azblob://b",
			     .object = "o",
			     .grant = g,
			     .budget_s = 60,
			     .progress = progress,
			     .progress_ctx = ctx};
}

/* A finished file of three parts (Azure blocks): all three are in flight at
 * once (the store answers none before), and the block list follows. */
static void test_store_parts_in_flight(void **state)
{
	char path[] = "/tmp/pcapd-test-storeup-XXXXXX";
	uint8_t data[HELD_PARTS * HELD_PART_SIZE - 10];
	AgentUploadGrant g;
	HoldStore hs = {0};
	Accepter a;
	ErrBuf err = {{0}};
	uint32_t sent = 0;
	int fd, r;

	(void)state;
	memset(data, 'x', sizeof(data));
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);
	pthread_mutex_init(&hs.mu, NULL);
	pthread_cond_init(&hs.cv, NULL);
	accepter_start(&a, hold_conn, &hs);
	blocks_grant(&g, a.url, HELD_PARTS, HELD_PART_SIZE);

	StoreUpload u = blocks_upload(&g, count_progress, &sent);

	assert_int_equal(httpc_global_init(&err), 0);
	r = storeup_file(&u, path, &err);
	accepter_stop(&a);
	httpc_global_cleanup();
	unlink(path);
	agentproto_grant_done(&g);
	pthread_cond_destroy(&hs.cv);
	pthread_mutex_destroy(&hs.mu);
	if (r < 0)
		fail_msg("upload failed: %s", err.msg);
	assert_false(a.failed);
	assert_int_equal(hs.parts, HELD_PARTS);
	assert_int_equal(hs.peak, HELD_PARTS); /* all three in flight at once */
	assert_int_equal(hs.lists, 1);
	assert_int_equal(sent, HELD_PARTS); /* the confirmed prefix only grew, to the last part */
}

/* ---- a grant asked for while a part is out ---- */

/* One server is both the store and the controller. Part 1's PUT is held
 * until the controller is asked for part 2's URL, and that ask is held until
 * part 1 has been confirmed to the caller (or ASK_WAIT_S passed). An upload
 * that asked under its lock could confirm nothing while the controller
 * thinks, and the ask would find part 1 unconfirmed. */
#define ASK_WAIT_S 20
#define ASK_PART_SIZE (5u << 20) /* the least a grant may name */

typedef struct AskStore {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool asked, confirmed, early, failed;
	const char *grant; /* the controller's answer */
	int parts, lists;
} AskStore;

/* Under as->mu: waits until *flag or ASK_WAIT_S. */
static void ask_wait(AskStore *as, const bool *flag)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ASK_WAIT_S;
	while (!*flag && pthread_cond_timedwait(&as->cv, &as->mu, &ts) == 0)
		;
}

static void ask_conn(void *ctx, int fd)
{
	static const char created[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
	AskStore *as = ctx;
	char line[512], answer[8192];
	int n;

	while (hold_read(fd, line, sizeof(line))) {
		const char *out = created;

		pthread_mutex_lock(&as->mu);
		if (strstr(line, "/agent/v1/upload")) {
			as->asked = true;
			pthread_cond_broadcast(&as->cv);
			ask_wait(as, &as->confirmed);
			as->early = as->confirmed;
			n = snprintf(
				answer, sizeof(answer),
				"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				strlen(as->grant), as->grant);
			as->failed |= n < 0 || (size_t)n >= sizeof(answer);
			out = answer;
		} else if (strstr(line, "comp=blocklist")) {
			as->lists++;
		} else {
			as->parts++;
			if (strstr(line, "blockid=1 "))
				ask_wait(as, &as->asked);
		}
		pthread_mutex_unlock(&as->mu);
		if (send(fd, out, strlen(out), MSG_NOSIGNAL) != (ssize_t)strlen(out))
			break;
	}
	close(fd);
}

static void ask_progress(void *ctx, const StoreProgress *p)
{
	AskStore *as = ctx;

	pthread_mutex_lock(&as->mu);
	if (p->sent >= 1)
		as->confirmed = true;
	pthread_cond_broadcast(&as->cv);
	pthread_mutex_unlock(&as->mu);
}

static void test_store_grant_asked_unlocked(void **state)
{
	char path[] = "/tmp/pcapd-test-storeup-XXXXXX", base[64];
	size_t size = ASK_PART_SIZE + 1000; /* two parts */
	uint8_t *data = malloc(size);
	AgentUploadGrant g, next;
	AskStore as = {0};
	Accepter a;
	CtlClient *ctl = NULL;
	ErrBuf err = {{0}};
	char *grant = NULL;
	int fd, r;

	(void)state;
	assert_non_null(data);
	memset(data, 'y', size);
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	free(data);
	pthread_mutex_init(&as.mu, NULL);
	pthread_cond_init(&as.cv, NULL);
	accepter_start(&a, ask_conn, &as);
	snprintf(base, sizeof(base), "%.*s", (int)strlen(a.url) - 1, a.url); /* without the last '/' */
	/* The upload's grant has part 1 only, so part 2's worker asks; the
	 * controller answers with both. */
	blocks_grant(&g, a.url, 1, ASK_PART_SIZE);
	blocks_grant(&next, a.url, 2, ASK_PART_SIZE);
	assert_int_equal(agentproto_grant_build(&next, &grant, &err), 0);
	as.grant = grant;

	CtlClientConfig cc = {.base_url = base, .token = "t", .user_agent = "test"};
	StoreUpload u = blocks_upload(&g, ask_progress, &as);

	assert_int_equal(httpc_global_init(&err), 0);
	assert_int_equal(ctlclient_global_init(&err), 0);
	assert_int_equal(ctlclient_new(&cc, &ctl, &err), 0);
	u.ctl = ctl;
	r = storeup_file(&u, path, &err);
	ctlclient_free(ctl); /* closes its connection: the server's thread ends */
	accepter_stop(&a);
	ctlclient_global_cleanup();
	httpc_global_cleanup();
	unlink(path);
	free(grant);
	agentproto_grant_done(&g);
	agentproto_grant_done(&next);
	pthread_cond_destroy(&as.cv);
	pthread_mutex_destroy(&as.mu);
	if (r < 0)
		fail_msg("upload failed: %s", err.msg);
	assert_false(a.failed);
	assert_false(as.failed);
	assert_true(as.asked);
	assert_true(as.early); /* part 1 confirmed while the controller was being asked */
	assert_int_equal(as.parts, 2);
	assert_int_equal(as.lists, 1);
}

/* ---- several controllers: the route moves on a failure ---- */

typedef struct OneShot {
	int lfd;
	const char *answer; /* the whole HTTP answer to the one request */
	bool failed;
} OneShot;

static void *one_shot(void *arg)
{
	OneShot *o = arg;
	RawServer rs = {0};
	int c = accept4(o->lfd, NULL, NULL, SOCK_CLOEXEC);

	o->failed = c < 0 || !read_request(c, &rs, true) ||
		    send(c, o->answer, strlen(o->answer), MSG_NOSIGNAL) != (ssize_t)strlen(o->answer);
	if (c >= 0)
		close(c);
	return NULL;
}

/* A listening socket on a port of the kernel's choice, its URL in url. */
static int listener(char *url, size_t cap)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, cap, "http://127.0.0.1:%u/", ntohs(sa.sin_port));
	return fd;
}

/* Controller 0 answers 503: the route moves to 1, which answers; a refused
 * connection (1, gone) moves it on to 0 again. The caller retries on its
 * own; the route only says where. */
static void test_route_moves_on(void **state)
{
	char u0[64], u1[64];
	const char *urls[2] = {u0, u1};
	CtlRoute route = {.urls = urls, .n = 2};
	OneShot s0 = {.answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"};
	OneShot s1 = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
	CtlClientConfig cfg = {.route = &route, .token = "t", .user_agent = "test"};
	CtlResponse resp = {0};
	ErrBuf err = {{0}};
	CtlClient *c = NULL;
	pthread_t t0, t1;

	(void)state;
	s0.lfd = listener(u0, sizeof(u0));
	s1.lfd = listener(u1, sizeof(u1));
	assert_int_equal(pthread_create(&t0, NULL, one_shot, &s0), 0);
	assert_int_equal(pthread_create(&t1, NULL, one_shot, &s1), 0);
	assert_int_equal(ctlclient_global_init(&err), 0);
	assert_int_equal(ctlclient_new(&cfg, &c, &err), 0);
	assert_string_equal(ctlroute_current(&route), u0);
	assert_int_equal(ctlclient_get(c, "/agent/v1/poll", 20000, &resp, &err), 0);
	assert_int_equal(resp.status, 503);
	ctlclient_response_done(&resp);
	assert_string_equal(ctlroute_current(&route), u1);
	assert_int_equal(ctlclient_get(c, "/agent/v1/poll", 20000, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	ctlclient_response_done(&resp);
	assert_string_equal(ctlroute_current(&route), u1);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	assert_false(s0.failed);
	assert_false(s1.failed);
	close(s1.lfd); /* now refused */
	assert_int_equal(ctlclient_get(c, "/agent/v1/poll", 20000, &resp, &err), -ECONNREFUSED);
	assert_string_equal(ctlroute_current(&route), u0);
	ctlclient_free(c);
	ctlclient_global_cleanup();
	close(s0.lfd);
}

static void test_config_check(void **state)
{
	const char *ifs[] = {"eth0"};
	AgentConfig good = {.controller = "http://127.0.0.1:8080",
			    .name = "web01",
			    .colo = "ord02",
			    .ifaces = ifs,
			    .n_ifaces = 1,
			    .token = "abc",
			    .data_dir = "/tmp/x"};
	AgentConfig c;

	(void)state;
	assert_string_equal(check(good), "ok");
	c = good;
	c.controller = "ftp://x";
	assert_string_equal(check(c), "--controller: 'ftp://x' is not an http:// or https:// URL (up to 1024 bytes)");
	c.controller = "https://";
	assert_string_not_equal(check(c), "ok");
	c.controller = "HTTPS://ctl.example:8443/pcapd/";
	assert_string_equal(check(c), "ok");
	c.controller = "http://a b";
	assert_string_equal(check(c), "--controller: the URL contains a blank or control character");
	/* Several controllers: each URL checked, at most CTL_MAX_URLS. */
	const char *urls[CTL_MAX_URLS + 1] = {"http://127.0.0.1:8080", "https://ctl2.example", "ftp://y"};
	c = good;
	c.urls = urls;
	c.n_urls = 2;
	assert_string_equal(check(c), "ok");
	c.n_urls = 3;
	assert_string_equal(check(c), "--controller: 'ftp://y' is not an http:// or https:// URL (up to 1024 bytes)");
	for (size_t i = 2; i < CTL_MAX_URLS + 1; i++)
		urls[i] = "http://127.0.0.1:8081";
	c.n_urls = CTL_MAX_URLS + 1;
	assert_string_equal(check(c), "--controller: more than 8 controllers");
	c = good;
	c.name = "web 01";
	assert_string_equal(check(c), "--name: 'web 01' is not 1..63 characters of [A-Za-z0-9._-]");
	c = good;
	c.colo = "";
	assert_string_equal(check(c), "--colo: '' is not 1..63 characters of [A-Za-z0-9._-]");
	c = good;
	c.all_ifaces = true;
	assert_string_equal(check(c), "-i: name the interfaces, or 'all'");
	c.n_ifaces = 0;
	assert_string_equal(check(c), "ok");
	c = good;
	c.token = "ab\r\nX-Evil: 1";
	assert_string_equal(check(c), "agent key: contains a blank, control or non-ASCII character");
	c.token = "";
	assert_string_equal(check(c), "agent key: empty or longer than 256 bytes");
	c.token = NULL; /* before enrolment: agent_run() wants it */
	assert_string_equal(check(c), "ok");
	c = good;
	c.bucket_root = "relative";
	assert_string_equal(check(c), "--bucket-root: 'relative' is not an absolute path");
	c = good;
	c.cafile = "/etc/ssl/ca.pem";
	c.insecure = true;
	assert_string_equal(check(c), "--cacert and --insecure: choose one");
	c = good;
	c.block_size = 3000;
	assert_string_equal(check(c), "block size: 3000 is not a power of two");
	c = good;
	c.sample_rate = 1;
	c.sample_snaplen = 262144;
	c.history_bytes = 256 * 1024;
	c.history_age_s = 1;
	assert_string_equal(check(c), "ok");
	c.sample_snaplen = 262145;
	assert_string_equal(check(c), "--sample-snaplen: 262145 is outside 1..262144");
	c.sample_snaplen = 0; /* the default */
	c.history_bytes = 256 * 1024 - 1;
	assert_string_equal(check(c), "--history-size: 262143 bytes is below 262144 (256K)");
	c.history_bytes = 0;
	c.history_age_s = AGENT_MAX_HISTORY_AGE_S + 1;
	assert_string_equal(check(c), "--history-age: 31622401 s is over 31622400 (366 days)");
}

/* The agent's key file: private, bound to its name, damage reported. */
static void test_agentkey_file(void **state)
{
	char dir[] = "/tmp/pcapd-test-agentkey-XXXXXX", sub[64], path[96], got[AGENTKEY_SECRET_MAX + 1];
	ErrBuf err = {{0}};
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/data", dir);
	assert_int_equal(agentkey_load(sub, "rt01", got, &err), -ENOENT);
	assert_int_equal(agentkey_save(sub, "rt01", "pcapd_secret", &err), 0);
	snprintf(path, sizeof(path), "%s/%s", sub, AGENTKEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(agentkey_load(sub, "rt01", got, &err), 0);
	assert_string_equal(got, "pcapd_secret");
	assert_int_equal(agentkey_load(sub, "rt02", got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "the key of agent 'rt01', not 'rt02'"));
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"name\": \"rt01\", \"secret\": \"a b\"}", f);
	fclose(f);
	assert_int_equal(agentkey_load(sub, "rt01", got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an agent key"));
	unlink(path);
	rmdir(sub);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agentkey_file),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_jobtable),
		cmocka_unit_test(test_jobstore),
		cmocka_unit_test(test_jobstore_fsync_fault),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_upload_retried_on_a_dead_connection),
		cmocka_unit_test(test_store_parts_in_flight),
		cmocka_unit_test(test_store_grant_asked_unlocked),
		cmocka_unit_test(test_route_moves_on),
		/* jobstore.c: an upload's progress */
		cmocka_unit_test(test_jobstore_upload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
