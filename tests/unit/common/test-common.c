/* SPDX-License-Identifier: MIT */
/* Unit tests for src/common: number parsing, ErrBuf, the I/O seam. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/io.h"
#include "common/util.h"

static void test_parse_u64(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(parse_u64("0", 1, 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", 20, 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	/* one past UINT64_MAX overflows */
	assert_int_equal(parse_u64("18446744073709551616", 20, 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("65536", 5, 0, 65535, &v), -ERANGE);
	assert_int_equal(parse_u64("0", 1, 1, 10, &v), -ERANGE);
	assert_int_equal(parse_u64("", 0, 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("-1", 2, 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", 2, 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("1x", 2, 0, 10, &v), -EINVAL);
	/* the span ends where n says, whatever follows */
	assert_int_equal(parse_u64("12345", 2, 0, 100, &v), 0);
	assert_int_equal(v, 12);
	/* failures leave the out-parameter alone */
	v = 99;
	assert_int_equal(parse_u64("abc", 3, 0, 10, &v), -EINVAL);
	assert_int_equal(v, 99);
}

static void test_parse_size(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_size("4M", 2, 1, UINT64_MAX, &v), 0);
	assert_int_equal(v, 4u << 20);
	assert_int_equal(parse_size("64k", 3, 1, UINT64_MAX, &v), 0);
	assert_int_equal(v, 64u << 10);
	assert_int_equal(parse_size("2G", 2, 1, UINT64_MAX, &v), 0);
	assert_true(v == 2ull << 30);
	assert_int_equal(parse_size("512", 3, 1, UINT64_MAX, &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size("M", 1, 1, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(parse_size("17179869184G", 12, 1, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_size("2G", 2, 1, 1u << 30, &v), -ERANGE);
}

static void test_errbuf(void **state)
{
	ErrBuf err;
	char big[600];

	(void)state;
	assert_int_equal(errbuf_set(&err, -EINVAL, "field %s: %d", "x", 5), -EINVAL);
	assert_string_equal(err.msg, "field x: 5");
	assert_int_equal(errbuf_set(NULL, -ENOENT, "ignored"), -ENOENT);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errbuf_set(&err, -E2BIG, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	assert_string_equal(err.msg + sizeof(err.msg) - 4, "...");
}

/* A writev (or pwritev) that accepts at most `limit` bytes per call, then
 * fails with `fail_errno` once `fail_after` calls have been made. */
typedef struct ShortWrites {
	size_t limit;
	int calls;
	int fail_after;
	int fail_errno;
} ShortWrites;

/* At the file's offset when off < 0. */
static ssize_t short_write(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	ShortWrites *s = self->state;
	struct iovec cut[64];
	size_t want = 0;

	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	if (s->fail_after >= 0 && s->calls >= s->fail_after)
		return -s->fail_errno;
	s->calls++;
	if (want > s->limit) {
		/* write only the first `limit` bytes, possibly splitting an entry */
		size_t left = s->limit;
		int n = 0;

		for (int i = 0; i < iovcnt && left > 0 && n < 64; i++, n++) {
			cut[n] = iov[i];
			if (cut[n].iov_len > left)
				cut[n].iov_len = left;
			left -= cut[n].iov_len;
		}
		iov = cut;
		iovcnt = n;
	}
	return off < 0 ? io_posix.writev(&io_posix, fd, iov, iovcnt)
		       : io_posix.pwritev(&io_posix, fd, iov, iovcnt, off);
}

static ssize_t short_writev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt)
{
	return short_write(self, fd, iov, iovcnt, -1);
}

static ssize_t short_pwritev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	return short_write(self, fd, iov, iovcnt, off);
}

static int read_back(int fd, char *buf, size_t n)
{
	ssize_t got = pread(fd, buf, n, 0);

	return got < 0 ? -errno : (int)got;
}

static void test_writev_all_short_writes(void **state)
{
	ShortWrites s = {.limit = 3, .fail_after = -1};
	IoOps ops = io_posix;
	char path[] = "/tmp/pcapd-test-io-XXXXXX";
	struct iovec iov[3] = {
		{.iov_base = (void *)"hello ", .iov_len = 6},
		{.iov_base = (void *)"", .iov_len = 0},
		{.iov_base = (void *)"world", .iov_len = 5},
	};
	char buf[32];
	size_t written = 0;
	int fd;

	(void)state;
	ops.writev = short_writev;
	ops.state = &s;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(io_writev_all(&ops, fd, iov, 3, &written), 0);
	assert_int_equal(written, 11);
	assert_int_equal(s.calls, 4); /* 3 + 3 + 3 + 2 */
	assert_int_equal(read_back(fd, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "hello world", 11);
	close(fd);
}

static void test_writev_all_failure_reports_progress(void **state)
{
	ShortWrites s = {.limit = 4, .fail_after = 2, .fail_errno = ENOSPC};
	IoOps ops = io_posix;
	char path[] = "/tmp/pcapd-test-io-XXXXXX";
	struct iovec iov[1] = {{.iov_base = (void *)"0123456789", .iov_len = 10}};
	size_t written = 0;
	int fd;

	(void)state;
	ops.writev = short_writev;
	ops.state = &s;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(io_writev_all(&ops, fd, iov, 1, &written), -ENOSPC);
	assert_int_equal(written, 8);
	close(fd);
}

/* At an offset, after short writes that split vectors; the vectors are
 * left as they were; a failure reports what was written. */
static void test_pwritev_all(void **state)
{
	ShortWrites s = {.limit = 3, .fail_after = -1};
	IoOps ops = io_posix;
	char path[] = "/tmp/pcapd-test-io-XXXXXX";
	const struct iovec iov[3] = {
		{.iov_base = (void *)"hello ", .iov_len = 6},
		{.iov_base = (void *)"", .iov_len = 0},
		{.iov_base = (void *)"world", .iov_len = 5},
	};
	struct iovec copy[3];
	char buf[32];
	size_t written = 0;
	int fd;

	(void)state;
	memcpy(copy, iov, sizeof(copy));
	ops.pwritev = short_pwritev;
	ops.state = &s;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, "12345", 5, 0), 5);
	assert_int_equal(io_pwritev_all(&ops, fd, iov, 3, 5, &written), 0);
	assert_int_equal(written, 11);
	assert_memory_equal(iov, copy, sizeof(copy));
	assert_int_equal(read_back(fd, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, "12345hello world", 16);

	s = (ShortWrites){.limit = 4, .fail_after = 2, .fail_errno = ENOSPC};
	assert_int_equal(io_pwritev_all(&ops, fd, iov, 3, 0, &written), -ENOSPC);
	assert_int_equal(written, 6); /* 4, the vector's last 2, then the failure */
	assert_int_equal(read_back(fd, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, "hello ello world", 16);
	close(fd);
}

static void test_fsync_parent_dir(void **state)
{
	(void)state;
	assert_int_equal(io_fsync_parent_dir(&io_posix, "/tmp/whatever"), 0);
	assert_int_equal(io_fsync_parent_dir(&io_posix, "relative-name"), 0);
	assert_int_equal(io_fsync_parent_dir(&io_posix, "/no-such-dir-pcapd/x"), -ENOENT);
}

static void test_publish(void **state)
{
	ShortWrites s = {.limit = 1 << 20, .fail_after = 0, .fail_errno = ENOSPC};
	IoOps ops = io_posix;
	char dir[] = "/tmp/pcapd-test-pub-XXXXXX", path[64], buf[32];
	struct iovec iov[2];
	ErrBuf err = {{0}};
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f.json", dir);
	iov[0] = (struct iovec){.iov_base = (void *)"old", .iov_len = 3};
	assert_int_equal(io_publish(&io_posix, path, iov, 1, 0600, &err), 0);
	/* a failed write leaves the old content and no temporary file */
	ops.writev = short_writev;
	ops.state = &s;
	iov[0] = (struct iovec){.iov_base = (void *)"new", .iov_len = 3};
	iov[1] = (struct iovec){.iov_base = (void *)"\n", .iov_len = 1};
	assert_int_equal(io_publish(&ops, path, iov, 2, 0600, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "f.json."));
	assert_non_null(strstr(err.msg, ".tmp"));
	/* nothing but the published file is left in the directory */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int files = 0;

		assert_non_null(d);
		while ((e = readdir(d)))
			files += e->d_name[0] != '.';
		closedir(d);
		assert_int_equal(files, 1);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read_back(fd, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "old", 3);
	close(fd);
	/* a missing directory is named */
	assert_int_equal(io_publish(&io_posix, "/no-such-dir-pcapd/x", iov, 1, 0600, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/no-such-dir-pcapd/x."));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_errbuf),
		cmocka_unit_test(test_writev_all_short_writes),
		cmocka_unit_test(test_writev_all_failure_reports_progress),
		cmocka_unit_test(test_pwritev_all),
		cmocka_unit_test(test_fsync_parent_dir),
		cmocka_unit_test(test_publish),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
