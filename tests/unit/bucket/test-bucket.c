/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/bucket: the destination_conf parser (a table of good and
 * bad URIs with their exact messages), file:// buckets kept inside their root
 * (".." and symlink escapes), atomic puts that leave no temporary file behind
 * on success or failure (faults injected through IoOps), and object names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bucket/bucket.h"
#include "bucket/bucket_int.h"

typedef struct T {
	char dir[64];      /* scratch directory */
	char root[128];    /* the bucket root inside it */
	char outside[128]; /* a directory outside the root */
	BucketConfig cfg;
} T;

static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char sub[PATH_MAX];

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			rm_rf(sub);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int setup(void **state)
{
	T *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	umask(022);
	snprintf(t->dir, sizeof(t->dir), "/tmp/test-bucket-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->root, sizeof(t->root), "%s/root", t->dir);
	snprintf(t->outside, sizeof(t->outside), "%s/outside", t->dir);
	assert_int_equal(mkdir(t->root, 0755), 0);
	assert_int_equal(mkdir(t->outside, 0755), 0);
	t->cfg.root = t->root;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	T *t = *state;

	rm_rf(t->dir);
	free(t);
	return 0;
}

static void uri(char *out, size_t cap, const char *fmt, ...) PCAPD_PRINTF(3, 4);
static void uri(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, cap, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < cap);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Number of entries in dir whose name starts with ".tmp-". */
static int count_temps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, ".tmp-", 5) == 0)
			n++;
	closedir(d);
	return n;
}

/* ---- bucket_uri_check ---- */

typedef struct UriCase {
	const char *uri;
	int code;
	const char *msg; /* exact message, for failures */
} UriCase;

static void test_uri_check(void **state)
{
	static const UriCase cases[] = {
		{"file:///srv/pcaps", 0, NULL},
		{"FILE:///srv/pcaps", 0, NULL},
		{"file:///", 0, NULL},
		{"file:///a/./b/../c//d/", 0, NULL},
		{"file:///a-b_c.d~e:f@g!h", 0, NULL},
		{"", -EINVAL, "destination_conf: empty"},
		{"/srv/pcaps", -EINVAL,
		 "destination_conf: not a URI; expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
		{"file:/srv/pcaps", -EINVAL,
		 "destination_conf: not a URI; expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
		{"3s://bucket", -EINVAL,
		 "destination_conf: not a URI; expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
		{"://x", -EINVAL,
		 "destination_conf: not a URI; expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
		{"ftp://host/x", -EINVAL,
		 "destination_conf: unknown scheme 'ftp'; expected file:///DIR, s3://BUCKET, r2://BUCKET, gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
		{"file://", -EINVAL, "destination_conf: empty path; expected file:///absolute/dir"},
		{"file://host/srv", -EINVAL,
		 "destination_conf: a file URI takes no host; expected file:///absolute/dir"},
		{"file:///srv/a%20b", -EINVAL,
		 "destination_conf: percent-escapes ('%') are not supported in file URIs"},
		{"file:///srv/a?x=1", -EINVAL, "destination_conf: a file URI takes no query ('?')"},
		{"file:///srv/a#frag", -EINVAL, "destination_conf: a file URI takes no fragment ('#')"},
		{"file:///srv/a\nb", -EINVAL, "destination_conf: control character (0x0a) in the path"},
		{"file:///srv/a\x7f", -EINVAL, "destination_conf: control character (0x7f) in the path"},
		{"s3://pcaps-bucket?region=us-east-1", 0, NULL},
		{"S3://pcaps-bucket/dir", 0, NULL},
		{"gs://bucket-test", 0, NULL},
		{"r2://b?account-id=1&access-key-id=2&secret-access-key=3", 0, NULL},
		{"s3://", -EINVAL, "destination_conf: the s3 URI names no bucket"},
		{"gs:///dir", -EINVAL, "destination_conf: the gs URI names no bucket"},
		{"https://acct.blob.core.windows.net/pcaps", 0, NULL},
		{"https://example.com/pcaps", -EINVAL,
		 "destination_conf: an https URI must be an Azure blob container "
		 "(https://ACCOUNT.blob.core.windows.net/CONTAINER)"},
		{"https://.blob.core.windows.net/pcaps", -EINVAL,
		 "destination_conf: an https URI must be an Azure blob container "
		 "(https://ACCOUNT.blob.core.windows.net/CONTAINER)"},
		{"http://acct.blob.core.windows.net/x", -EINVAL,
		 "destination_conf: unknown scheme 'http'; expected file:///DIR, s3://BUCKET, r2://BUCKET, "
		 "gs://BUCKET, "
		 "azblob://ACCOUNT/CONTAINER or https://ACCOUNT.blob.core.windows.net/CONTAINER"},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		ErrBuf err = {{0}};
		int r = bucket_uri_check(cases[i].uri, strlen(cases[i].uri), &err);

		if (r != cases[i].code)
			fail_msg("%s: got %d (%s), want %d", cases[i].uri, r, err.msg, cases[i].code);
		if (cases[i].msg)
			assert_string_equal(err.msg, cases[i].msg);
	}
}

static void test_uri_check_bounds(void **state)
{
	char buf[BUCKET_URI_MAX + 2];
	ErrBuf err = {{0}};

	(void)state;
	/* Exactly the maximum is fine; one more byte is not. */
	memcpy(buf, "file:///", 8);
	memset(buf + 8, 'a', sizeof(buf) - 8);
	assert_int_equal(bucket_uri_check(buf, BUCKET_URI_MAX, &err), 0);
	assert_int_equal(bucket_uri_check(buf, BUCKET_URI_MAX + 1, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: longer than 1024 bytes");
	/* A NUL inside the given length. */
	assert_int_equal(bucket_uri_check("file:///a\0b", 11, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: contains a NUL byte");
	/* Only n bytes are read: the query after them is not seen. */
	assert_int_equal(bucket_uri_check("file:///abc?x", 11, &err), 0);
	assert_int_equal(bucket_uri_check("file:///abc?x", 7, &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: empty path; expected file:///absolute/dir");
	assert_int_equal(bucket_uri_check(NULL, 0, &err), -EINVAL);
	assert_int_equal(bucket_uri_check("s3://b", 6, NULL), 0);
}

static void test_uri_normalize(void **state)
{
	static const char *const cases[][2] = {
		{"file:///srv/pcaps/b1", "file:///srv/pcaps/b1"},
		{"file:///srv/pcaps/./b1", "file:///srv/pcaps/b1"},
		{"file:///srv/pcaps//b1", "file:///srv/pcaps/b1"},
		{"file:///srv/pcaps/b1/", "file:///srv/pcaps/b1"},
		{"file:////srv/pcaps/b1", "file:///srv/pcaps/b1"},
		{"FILE:///srv/pcaps/x/../b1/.", "file:///srv/pcaps/b1"},
		{"file:///srv/../../..", "file:///"},
		{"file:///", "file:///"},
		{"file:///./", "file:///"},
		{"file:///a/b/..", "file:///a"},
	};
	char out[BUCKET_URI_MAX + 1];
	ErrBuf err = {{0}};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (bucket_uri_normalize(cases[i][0], out, sizeof(out), &err) != 0)
			fail_msg("%s: %s", cases[i][0], err.msg);
		if (strcmp(out, cases[i][1]) != 0)
			fail_msg("%s: got %s, want %s", cases[i][0], out, cases[i][1]);
	}
	/* what bucket_uri_check refuses, normalizing refuses with its message */
	assert_int_equal(bucket_uri_normalize("file://host/x", out, sizeof(out), &err), -EINVAL);
	assert_string_equal(err.msg, "destination_conf: a file URI takes no host; expected file:///absolute/dir");
	assert_int_equal(bucket_uri_normalize(NULL, out, sizeof(out), &err), -EINVAL);
	/* no room */
	assert_int_equal(bucket_uri_normalize("file:///abc", out, 8, &err), -ENAMETOOLONG);
}

/* ---- opening file:// buckets ---- */

static void test_open_creates(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char u[512], p[512];
	struct stat st;
	Bucket *b = NULL;

	uri(u, sizeof(u), "file://%s/acct/./caps/../pcaps", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), 0);
	bucket_free(b);
	snprintf(p, sizeof(p), "%s/acct/pcaps", t->root);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	snprintf(p, sizeof(p), "%s/acct/caps", t->root);
	assert_false(exists(p)); /* resolved lexically, never created */

	/* Again: the directory exists now. The root itself is a bucket too. */
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), 0);
	bucket_free(b);
	uri(u, sizeof(u), "file://%s", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), 0);
	bucket_free(b);
	bucket_free(NULL);

	/* A root reached through a symlink: both spellings work. */
	char link[256];
	BucketConfig via = {.root = link};
	snprintf(link, sizeof(link), "%s/rootlink", t->dir);
	assert_int_equal(symlink(t->root, link), 0);
	uri(u, sizeof(u), "file://%s/x", link);
	assert_int_equal(bucket_open(u, &via, &b, &err), 0);
	bucket_free(b);
	uri(u, sizeof(u), "file://%s/y", t->root);
	assert_int_equal(bucket_open(u, &via, &b, &err), 0);
	bucket_free(b);

	/* A file where a directory should be. */
	snprintf(p, sizeof(p), "%s/plain", t->root);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	uri(u, sizeof(u), "file://%s/plain", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -ENOTDIR);
	uri(u, sizeof(u), "file://%s/plain/sub", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -ENOTDIR);
}

static void test_open_refused(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char u[512], p[512], want[512];
	Bucket *b = NULL;
	BucketConfig none = {.root = NULL};

	/* ".." out of the root. */
	uri(u, sizeof(u), "file://%s/../etc", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -EPERM);
	snprintf(want, sizeof(want), "destination_conf: %s/etc is outside the bucket root %s", t->dir, t->root);
	assert_string_equal(err.msg, want);
	uri(u, sizeof(u), "file://%s/a/../../outside", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -EPERM);
	assert_int_equal(bucket_open("file:///etc", &t->cfg, &b, &err), -EPERM);
	assert_int_equal(bucket_open("file:///", &t->cfg, &b, &err), -EPERM);
	/* A sibling that shares the root's name as a prefix. */
	uri(u, sizeof(u), "file://%s2/x", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -EPERM);
	snprintf(p, sizeof(p), "%s/a", t->root);
	assert_false(exists(p));

	/* A symlink inside the root pointing outside: refused, nothing created
	 * beyond it. */
	snprintf(p, sizeof(p), "%s/escape", t->root);
	assert_int_equal(symlink(t->outside, p), 0);
	uri(u, sizeof(u), "file://%s/escape/new/deeper", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -EPERM);
	assert_non_null(strstr(err.msg, "leads outside the bucket root"));
	snprintf(p, sizeof(p), "%s/new", t->outside);
	assert_false(exists(p));
	uri(u, sizeof(u), "file://%s/escape", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), -EPERM);
	/* A dangling one. */
	snprintf(p, sizeof(p), "%s/dangling", t->root);
	assert_int_equal(symlink("/nonexistent-pcapd-test/dir", p), 0);
	uri(u, sizeof(u), "file://%s/dangling/x", t->root);
	assert_true(bucket_open(u, &t->cfg, &b, &err) < 0);
	assert_false(exists("/nonexistent-pcapd-test"));

	/* A symlink that stays inside the root is followed. */
	snprintf(p, sizeof(p), "%s/real", t->root);
	assert_int_equal(mkdir(p, 0750), 0);
	snprintf(p, sizeof(p), "%s/inner", t->root);
	assert_int_equal(symlink("real", p), 0);
	uri(u, sizeof(u), "file://%s/inner/sub", t->root);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), 0);
	bucket_free(b);
	b = NULL;
	snprintf(p, sizeof(p), "%s/real/sub", t->root);
	assert_true(exists(p));

	/* No root configured; bad URIs; unsupported schemes; a missing root. */
	uri(u, sizeof(u), "file://%s/x", t->root);
	assert_int_equal(bucket_open(u, &none, &b, &err), -EPERM);
	assert_int_equal(bucket_open(u, NULL, &b, &err), -EPERM);
	assert_int_equal(bucket_open("s3://bucket", &t->cfg, &b, &err), -EINVAL); /* no keys */
	assert_int_equal(bucket_open("file:///x?y", &t->cfg, &b, &err), -EINVAL);
	assert_int_equal(bucket_open(NULL, &t->cfg, &b, &err), -EINVAL);
	BucketConfig gone = {.root = "/nonexistent-pcapd-test/root"};
	assert_int_equal(bucket_open("file:///nonexistent-pcapd-test/root/x", &gone, &b, &err), -ENOENT);
	assert_null(b);
}

/* ---- objects ---- */

static Bucket *open_bucket(T *t, const char *sub, char *dir, size_t cap)
{
	ErrBuf err = {{0}};
	char u[512];
	Bucket *b = NULL;

	uri(u, sizeof(u), "file://%s/%s", t->root, sub);
	assert_int_equal(bucket_open(u, &t->cfg, &b, &err), 0);
	snprintf(dir, cap, "%s/%s", t->root, sub);
	return b;
}

static void test_put_get_remove(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char dir[256], path[512], want[512];
	Bucket *b = open_bucket(t, "acct", dir, sizeof(dir));
	uint8_t *data;
	size_t n;
	struct stat st;

	assert_int_equal(bucket_put_bytes(b, "pcap_1.pcap", "hello", 5, &err), 0);
	assert_int_equal(count_temps(dir), 0);
	assert_int_equal(bucket_get_bytes(b, "pcap_1.pcap", 100, &data, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_int_equal(bucket_get_bytes(b, "pcap_1.pcap", 5, &data, &n, &err), 0);
	free(data);
	assert_int_equal(bucket_get_bytes(b, "pcap_1.pcap", 4, &data, &n, &err), -EFBIG);

	/* Overwrite; the file and its mode. */
	assert_int_equal(bucket_put_bytes(b, "pcap_1.pcap", "bye", 3, &err), 0);
	snprintf(want, sizeof(want), "%s/pcap_1.pcap", dir);
	assert_int_equal(stat(want, &st), 0);
	assert_int_equal(st.st_size, 3);
	assert_int_equal(st.st_mode & 0777, 0640);

	/* An empty object. */
	assert_int_equal(bucket_put_bytes(b, "empty", NULL, 0, &err), 0);
	assert_int_equal(bucket_get_bytes(b, "empty", 0, &data, &n, &err), 0);
	assert_int_equal(n, 0);
	free(data);

	assert_int_equal(bucket_remove(b, "pcap_1.pcap", &err), 0);
	assert_int_equal(bucket_remove(b, "pcap_1.pcap", &err), -ENOENT);
	assert_string_equal(err.msg, "bucket: no object pcap_1.pcap");
	assert_int_equal(bucket_get_bytes(b, "pcap_1.pcap", 100, &data, &n, &err), -ENOENT);
	assert_false(exists(want));

	/* A symlink planted in the bucket is not followed on reads. */
	snprintf(path, sizeof(path), "%s/planted", dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_true(bucket_get_bytes(b, "planted", 1 << 20, &data, &n, &err) < 0);
	{
		BucketReader *rd = NULL;

		assert_int_equal(bucket_reader_open(b, "planted", &rd, &err), -ELOOP);
		assert_null(rd);
	}
	/* A directory is not an object. */
	snprintf(path, sizeof(path), "%s/adir", dir);
	assert_int_equal(mkdir(path, 0750), 0);
	assert_int_equal(bucket_get_bytes(b, "adir", 100, &data, &n, &err), -EINVAL);
	assert_int_equal(count_temps(dir), 0);
	bucket_free(b);
}

/* A sink for bucket_reader_copy(): appends to buf (or fails with fail). */
typedef struct Sink {
	uint8_t buf[64];
	size_t n;
	int fail;
} Sink;

static int sink_append(void *ctx, const void *p, size_t n)
{
	Sink *s = ctx;

	if (s->fail)
		return s->fail;
	assert_true(s->n + n <= sizeof(s->buf));
	memcpy(s->buf + s->n, p, n);
	s->n += n;
	return 0;
}

/* Readers and uploads in parts on file://: the same contract as the stores. */
static void test_reader_and_upload(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char dir[256], path[512];
	Bucket *b = open_bucket(t, "acct", dir, sizeof(dir));
	BucketReader *rd;
	BucketUpload *u;
	uint8_t buf[16];
	BucketSignedUrl url;
	BucketUrlRequest q = {.op = BUCKET_URL_GET, .name = "x", .expires_s = 60};

	assert_int_equal(bucket_put_bytes(b, "obj", "0123456789", 10, &err), 0);
	assert_int_equal(bucket_reader_open(b, "obj", &rd, &err), 0);
	assert_int_equal(bucket_reader_size(rd), 10);
	assert_int_equal(bucket_reader_pread(rd, buf, 4, 3, &err), 4);
	assert_memory_equal(buf, "3456", 4);
	assert_int_equal(bucket_reader_pread(rd, buf, 16, 8, &err), 2); /* short at the end */
	assert_int_equal(bucket_reader_pread(rd, buf, 16, 10, &err), 0);
	/* Streamed copies of a range, and their bounds. */
	{
		Sink sk = {0};

		assert_int_equal(bucket_reader_copy(rd, 2, 7, sink_append, &sk, &err), 0);
		assert_int_equal(sk.n, 7);
		assert_memory_equal(sk.buf, "2345678", 7);
		assert_int_equal(bucket_reader_copy(rd, 5, 6, sink_append, &sk, &err), -EINVAL);
		assert_int_equal(bucket_reader_copy(rd, 10, 0, sink_append, &sk, &err), 0);
		sk.fail = -EPIPE;
		assert_int_equal(bucket_reader_copy(rd, 0, 10, sink_append, &sk, &err), -EPIPE);
	}
	bucket_reader_close(rd);
	assert_int_equal(bucket_reader_open(b, "absent", &rd, &err), -ENOENT);

	/* Parts in order (a retried last part rewrites it); the object appears at complete. */
	assert_int_equal(bucket_upload_begin(b, "up", &u, &err), 0);
	assert_true(strncmp(bucket_upload_id(u), ".tmp-up-", 8) == 0);
	assert_int_equal(bucket_upload_part(u, 2, "x", 1, &err), -EINVAL);
	assert_int_equal(bucket_upload_complete(u, &err), -EINVAL); /* no part */
	assert_int_equal(bucket_upload_part(u, 1, "aaa", 3, &err), 0);
	assert_int_equal(bucket_upload_part(u, 1, "AAA", 3, &err), 0);
	assert_int_equal(bucket_upload_part(u, 2, "bb", 2, &err), 0);
	assert_int_equal(bucket_upload_part(u, 4, "c", 1, &err), -EINVAL);
	snprintf(path, sizeof(path), "%s/up", dir);
	assert_false(exists(path));
	assert_int_equal(bucket_upload_complete(u, &err), 0);
	assert_int_equal(bucket_upload_abort(u, &err), -EINVAL); /* ended */
	bucket_upload_free(u);
	assert_int_equal(bucket_reader_open(b, "up", &rd, &err), 0);
	assert_int_equal(bucket_reader_pread(rd, buf, 16, 0, &err), 5);
	assert_memory_equal(buf, "AAAbb", 5);
	bucket_reader_close(rd);

	/* Abort leaves nothing. */
	assert_int_equal(bucket_upload_begin(b, "gone", &u, &err), 0);
	assert_int_equal(bucket_upload_part(u, 1, "x", 1, &err), 0);
	assert_int_equal(bucket_upload_abort(u, &err), 0);
	bucket_upload_free(u);
	snprintf(path, sizeof(path), "%s/gone", dir);
	assert_false(exists(path));
	assert_int_equal(count_temps(dir), 0);

	assert_int_equal(bucket_presign(b, &q, &url, &err), -EOPNOTSUPP);
	assert_int_equal(bucket_kind(b), BUCKET_KIND_FILE);
	bucket_free(b);
}

static void write_file(const char *path, const uint8_t *data, size_t n)
{
	FILE *f = fopen(path, "wbe");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void test_put_file(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char dir[256], src[256], obj[512];
	Bucket *b = open_bucket(t, "files", dir, sizeof(dir));
	size_t big = 3u << 20;
	uint8_t *in = malloc(big), *out;
	size_t n;

	assert_non_null(in);
	for (size_t i = 0; i < big; i++)
		in[i] = (uint8_t)(i * 2654435761u >> 13);
	snprintf(src, sizeof(src), "%s/source.pcap", t->outside);
	write_file(src, in, big);
	assert_int_equal(bucket_put_file(b, "pcap_big", src, &err), 0);
	assert_int_equal(bucket_get_bytes(b, "pcap_big", big, &out, &n, &err), 0);
	assert_int_equal(n, big);
	assert_memory_equal(out, in, big);
	free(out);
	assert_int_equal(count_temps(dir), 0);

	/* An empty source. */
	snprintf(src, sizeof(src), "%s/empty.pcap", t->outside);
	write_file(src, in, 0);
	assert_int_equal(bucket_put_file(b, "pcap_empty", src, &err), 0);
	assert_int_equal(bucket_get_bytes(b, "pcap_empty", 10, &out, &n, &err), 0);
	assert_int_equal(n, 0);
	free(out);

	/* A missing source: an error, no object, no temporary file. */
	snprintf(src, sizeof(src), "%s/missing.pcap", t->outside);
	assert_int_equal(bucket_put_file(b, "pcap_missing", src, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing.pcap"));
	snprintf(obj, sizeof(obj), "%s/pcap_missing", dir);
	assert_false(exists(obj));
	/* A source that is a directory. */
	assert_int_equal(bucket_put_file(b, "pcap_dir", t->outside, &err), -EINVAL);
	assert_int_equal(bucket_put_file(b, "pcap_dir", NULL, &err), -EINVAL);
	assert_int_equal(count_temps(dir), 0);
	free(in);
	bucket_free(b);
}

/* IoOps that fails one chosen operation, to check what a failed put leaves. */
typedef struct Faults {
	int fail_fsync;  /* fail every file fsync */
	int fail_rename; /* fail the rename */
	int fail_write;  /* fail writev with ENOSPC */
} Faults;

static const Faults *faults_of(const IoOps *self)
{
	return self->state;
}

static int f_open(const IoOps *self, const char *path, int flags, mode_t mode)
{
	(void)self;
	return io_posix.open(&io_posix, path, flags, mode);
}

static ssize_t f_writev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt)
{
	if (faults_of(self)->fail_write)
		return -ENOSPC;
	return io_posix.writev(&io_posix, fd, iov, iovcnt);
}

static int f_fsync(const IoOps *self, int fd)
{
	struct stat st;

	if (faults_of(self)->fail_fsync && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return -EIO;
	return io_posix.fsync(&io_posix, fd);
}

static int f_rename(const IoOps *self, const char *from, const char *to)
{
	if (faults_of(self)->fail_rename)
		return -EIO;
	return io_posix.rename(&io_posix, from, to);
}

static int f_unlink(const IoOps *self, const char *path)
{
	(void)self;
	return io_posix.unlink(&io_posix, path);
}

static int f_close(const IoOps *self, int fd)
{
	(void)self;
	return io_posix.close(&io_posix, fd);
}

static void test_put_faults(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char dir[256], src[256];
	Bucket *b = open_bucket(t, "faults", dir, sizeof(dir));
	Faults f = {0};
	IoOps io = {.open = f_open,
		    .writev = f_writev,
		    .pwritev = io_posix.pwritev,
		    .fsync = f_fsync,
		    .ftruncate = io_posix.ftruncate,
		    .rename = f_rename,
		    .unlink = f_unlink,
		    .close = f_close,
		    .state = &f};
	uint8_t *out;
	size_t n;

	bucket_file_set_io(b, &io);
	assert_int_equal(bucket_put_bytes(b, "obj", "old", 3, &err), 0);
	snprintf(src, sizeof(src), "%s/src", t->outside);
	write_file(src, (const uint8_t *)"new data", 8);

	for (int which = 0; which < 3; which++) {
		f.fail_fsync = which == 0;
		f.fail_rename = which == 1;
		f.fail_write = which == 2;
		assert_true(bucket_put_bytes(b, "obj", "new", 3, &err) < 0);
		assert_int_equal(count_temps(dir), 0);
		assert_true(bucket_put_bytes(b, "fresh", "new", 3, &err) < 0);
		assert_int_equal(count_temps(dir), 0);
		if (which != 2) { /* put_file does not write through writev when copy_file_range works */
			assert_true(bucket_put_file(b, "obj", src, &err) < 0);
			assert_int_equal(count_temps(dir), 0);
		}
		/* The old object is intact; the new one never appeared. */
		f = (Faults){0};
		assert_int_equal(bucket_get_bytes(b, "obj", 100, &out, &n, &err), 0);
		assert_int_equal(n, 3);
		assert_memory_equal(out, "old", 3);
		free(out);
		assert_int_equal(bucket_get_bytes(b, "fresh", 100, &out, &n, &err), -ENOENT);
	}
	f.fail_fsync = 1;
	assert_int_equal(bucket_put_bytes(b, "obj", "new", 3, &err), -EIO);
	assert_string_equal(err.msg, "bucket: fsync of object obj: Input/output error");
	bucket_free(b);
}

static void test_names(void **state)
{
	T *t = *state;
	ErrBuf err = {{0}};
	char dir[256], name[256];
	Bucket *b = open_bucket(t, "names", dir, sizeof(dir));
	BucketReader *rd = NULL;
	static const char *const bad[] = {"",    ".",    "..",  ".hidden",     "a/b", "../x",
					  "a b", "a\\b", "a:b", "caf\xc3\xa9", "a\nb"};
	uint8_t *out;
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(bucket_put_bytes(b, bad[i], "x", 1, &err), -EINVAL);
		assert_int_equal(bucket_get_bytes(b, bad[i], 10, &out, &n, &err), -EINVAL);
		assert_int_equal(bucket_reader_open(b, bad[i], &rd, &err), -EINVAL);
		assert_int_equal(bucket_remove(b, bad[i], &err), -EINVAL);
		assert_int_equal(bucket_put_file(b, bad[i], "/etc/hostname", &err), -EINVAL);
	}
	assert_int_equal(bucket_put_bytes(b, NULL, "x", 1, &err), -EINVAL);
	assert_string_equal(err.msg, "bucket: empty object name");
	assert_int_equal(bucket_put_bytes(b, ".hidden", "x", 1, &err), -EINVAL);
	assert_string_equal(err.msg, "bucket: object name '.hidden' starts with '.'");
	assert_int_equal(bucket_put_bytes(b, "a/b", "x", 1, &err), -EINVAL);
	assert_string_equal(err.msg, "bucket: object name 'a/b' has a byte outside [A-Za-z0-9._-] at offset 1");

	memset(name, 'n', 200);
	name[200] = '\0';
	assert_int_equal(bucket_put_bytes(b, name, "x", 1, &err), 0);
	name[200] = 'n';
	name[201] = '\0';
	assert_int_equal(bucket_put_bytes(b, name, "x", 1, &err), -EINVAL);
	assert_string_equal(err.msg, "bucket: object name longer than 200 bytes");
	assert_int_equal(bucket_put_bytes(b, "ownership-challenge-0123abcd.txt", "x", 1, &err), 0);
	assert_int_equal(bucket_put_bytes(b, "pcap_ABC_agent-1.v2.pcap", "x", 1, &err), 0);
	assert_int_equal(count_temps(dir), 0);
	bucket_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_check),
		cmocka_unit_test(test_uri_check_bounds),
		cmocka_unit_test(test_uri_normalize),
		cmocka_unit_test_setup_teardown(test_open_creates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_and_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
