/* SPDX-License-Identifier: MIT */
/*
 * Spool: the stream reaches the file exactly and in order; no page is written
 * both directly and through the page cache; O_DIRECT refused at open or at the
 * first write falls back to buffered writes; a failed write cuts the file back
 * to the last commit point and every later call reports it; preallocation is
 * given back on every exit path (finish, free without finish, failure); on
 * tmpfs the producer's own writes (short ones resumed) keep all of that.
 * Everything seen through the IoOps seam.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
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

#include "pcap/spool.h"

#define MAX_PAGES 4096u

typedef struct Seen {
	pthread_mutex_t lock;
	unsigned writes;     /* pwritev calls */
	unsigned fail_write; /* 1-based call that fails with fail_errno */
	int fail_errno;
	bool refuse_direct_open;  /* open(O_DIRECT) is -EINVAL */
	bool refuse_direct_write; /* pwritev on an O_DIRECT descriptor is -EINVAL */
	bool short_writes;        /* pwritev writes the first vector and half the second */
	unsigned direct_writes, cached_writes, fallocates, truncates;
	uint8_t page_mode[MAX_PAGES]; /* 0 untouched, 1 direct, 2 page cache, 3 both */
	bool misaligned;              /* a direct write not on 4 KiB boundaries */
} Seen;

static Seen *seen_of(const IoOps *self)
{
	return self->state;
}

static int s_open(const IoOps *self, const char *path, int flags, mode_t mode)
{
	if ((flags & O_DIRECT) && seen_of(self)->refuse_direct_open)
		return -EINVAL;
	return io_posix.open(self, path, flags, mode);
}

static ssize_t s_pwritev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	Seen *s = seen_of(self);
	bool direct = (fcntl(fd, F_GETFL) & O_DIRECT) != 0;
	size_t len = 0;
	ssize_t k;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	pthread_mutex_lock(&s->lock);
	s->writes++;
	if (s->fail_write && s->writes == s->fail_write) {
		pthread_mutex_unlock(&s->lock);
		return -s->fail_errno;
	}
	if (direct && s->refuse_direct_write) {
		pthread_mutex_unlock(&s->lock);
		return -EINVAL;
	}
	if (direct) {
		s->direct_writes++;
		if (off % 4096 || len % 4096)
			s->misaligned = true;
	} else {
		s->cached_writes++;
	}
	for (uint64_t p = (uint64_t)off / 4096; len && p <= ((uint64_t)off + len - 1) / 4096 && p < MAX_PAGES; p++)
		s->page_mode[p] |= direct ? 1 : 2;
	pthread_mutex_unlock(&s->lock);
	if (s->short_writes && len > 1) {
		struct iovec part[2] = {iov[0], iovcnt > 1 ? iov[1] : iov[0]};

		if (iovcnt > 1) {
			part[1].iov_len /= 2;
		} else {
			part[0].iov_len /= 2;
			part[1].iov_len = 0;
		}
		k = pwritev(fd, part, 2, off);
	} else {
		k = pwritev(fd, iov, iovcnt, off);
	}
	return k < 0 ? -errno : k;
}

static int s_fallocate(const IoOps *self, int fd, int mode, off_t off, off_t len)
{
	Seen *s = seen_of(self);

	pthread_mutex_lock(&s->lock);
	s->fallocates++;
	pthread_mutex_unlock(&s->lock);
	assert_true(mode & FALLOC_FL_KEEP_SIZE); /* never visible in the size */
	return io_posix.fallocate(self, fd, mode, off, len);
}

static int s_ftruncate(const IoOps *self, int fd, off_t len)
{
	Seen *s = seen_of(self);

	pthread_mutex_lock(&s->lock);
	s->truncates++;
	pthread_mutex_unlock(&s->lock);
	return io_posix.ftruncate(self, fd, len);
}

static IoOps seen_ops(Seen *s)
{
	IoOps ops = io_posix;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	ops.open = s_open;
	ops.pwritev = s_pwritev;
	ops.fallocate = s_fallocate;
	ops.ftruncate = s_ftruncate;
	ops.state = s;
	return ops;
}

/* A file on a disk file system, removed at once. */
static int disk_file(void)
{
	char path[] = "/var/tmp/pcapd-spool-test-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static uint8_t byte_at(uint64_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

/* Appends bytes [from, to) of the test stream in pieces of varied size. */
static int append_range(Spool *sp, uint64_t from, uint64_t to, ErrBuf *err)
{
	static uint8_t buf[70000];

	while (from < to) {
		size_t n = (size_t)((to - from) < (from % 69997) + 1 ? to - from : (from % 69997) + 1);
		int r;

		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(from + i);
		r = spool_append(sp, buf, n, err);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

/* The file holds exactly bytes [0, len) of the stream, from offset base. */
static void check_file(int fd, uint64_t base, uint64_t len)
{
	struct stat st;
	uint8_t *buf = malloc(len + 1);
	ssize_t k;

	assert_non_null(buf);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, base + len);
	k = pread(fd, buf, len, (off_t)base);
	assert_int_equal(k, (ssize_t)len);
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != byte_at(i))
			fail_msg("byte %llu differs", (unsigned long long)i);
	free(buf);
}

static void check_no_page_both_ways(const Seen *s)
{
	assert_false(s->misaligned);
	for (unsigned p = 0; p < MAX_PAGES; p++)
		if (s->page_mode[p] == 3)
			fail_msg("page %u written both directly and through the page cache", p);
}

/* Commits of every size (within a page, across job buffers, aligned, not):
 * after each sync the file is exactly the committed stream; direct writes
 * are aligned and never touch a page also written through the page cache. */
static void test_stream_exact_after_each_commit(void **state)
{
	static const uint64_t steps[] = {24, 100, 4072, 4096, 5000, 65536, 65537, 300000, 1, 8191, 200000, 3};
	SpoolConfig cfg = {.job_bytes = 64 * 1024, .depth = 3, .direct = true, .prealloc_step = 256 * 1024};
	Seen s;
	IoOps ops = seen_ops(&s);
	Spool *sp;
	ErrBuf err;
	uint64_t at = 0, end = 0;
	int fd = disk_file();
	struct stat st;

	(void)state;
	cfg.io = &ops;
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
	print_message("# O_DIRECT %s\n", spool_direct(sp) ? "on" : "refused here");
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		assert_int_equal(append_range(sp, at, at + steps[i], &err), 0);
		at += steps[i];
		assert_int_equal(spool_commit(sp, &err), 0);
		assert_int_equal(spool_sync(sp, &err), 0);
		assert_int_equal(spool_whole(sp), at);
		check_file(fd, 0, at);
	}
	assert_int_equal(spool_finish(sp, true, &end, &err), 0);
	assert_int_equal(end, at);
	check_file(fd, 0, at);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 <= (at + 4095) / 4096 * 4096 + 4096); /* preallocation given back */
	if (spool_direct(sp))
		assert_true(s.direct_writes > 0);
	assert_true(s.fallocates > 0);
	check_no_page_both_ways(&s);
	assert_int_equal(spool_commit(sp, &err), -EINVAL); /* finished */
	spool_free(sp);
	close(fd);
}

/* A file system that refuses O_DIRECT at open (older tmpfs) or at the first
 * write: everything goes through the page cache, exactly. */
static void test_direct_refused_falls_back(void **state)
{
	for (int how = 0; how < 2; how++) {
		SpoolConfig cfg = {.job_bytes = 64 * 1024, .direct = true};
		Seen s;
		IoOps ops = seen_ops(&s);
		Spool *sp;
		ErrBuf err;
		uint64_t end = 0;
		int fd = disk_file();

		(void)state;
		if (how == 0)
			s.refuse_direct_open = true;
		else
			s.refuse_direct_write = true;
		cfg.io = &ops;
		assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
		if (how == 0)
			assert_false(spool_direct(sp));
		assert_int_equal(append_range(sp, 0, 1000000, &err), 0);
		assert_int_equal(spool_commit(sp, &err), 0);
		assert_int_equal(append_range(sp, 1000000, 1000777, &err), 0);
		assert_int_equal(spool_finish(sp, false, &end, &err), 0);
		assert_false(spool_direct(sp));
		assert_int_equal(end, 1000777);
		assert_int_equal(s.direct_writes, 0);
		check_file(fd, 0, end);
		spool_free(sp);
		close(fd);
	}
}

/* Up to ten pieces of 50,000+ bytes appended and committed in turn, until a
 * call fails; commits[0..*nc) receives 0 and every commit point reached.
 * Returns the failure, or 0. */
static int append_commits(Spool *sp, uint64_t *commits, unsigned *nc, ErrBuf *err)
{
	uint64_t at = 0;
	int r = 0;

	commits[(*nc)++] = 0;
	for (unsigned i = 0; i < 10 && r == 0; i++) {
		r = append_range(sp, at, at + 50000 + i * 777, err);
		if (r == 0) {
			at += 50000 + i * 777;
			r = spool_commit(sp, err);
		}
		if (r == 0)
			commits[(*nc)++] = at;
	}
	return r;
}

/* The Nth write fails: the file is cut back to the last commit point it
 * holds, the failure is returned by the next calls with the writer's words,
 * and nothing more is written. */
static void test_failed_write_cuts_back_to_commit(void **state)
{
	for (unsigned n = 1; n <= 12; n++) {
		SpoolConfig cfg = {.job_bytes = 64 * 1024, .depth = 2, .direct = true};
		Seen s;
		IoOps ops = seen_ops(&s);
		Spool *sp;
		ErrBuf err = {0};
		uint64_t commits[16];
		unsigned nc = 0, writes;
		int fd = disk_file(), r;
		struct stat st;

		(void)state;
		s.fail_write = n;
		s.fail_errno = ENOSPC;
		cfg.io = &ops;
		assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
		r = append_commits(sp, commits, &nc, &err);
		if (r == 0)
			r = spool_sync(sp, &err);
		assert_int_equal(r, -ENOSPC);
		assert_non_null(strstr(err.msg, "write failed: No space left on device"));
		/* the file ends at a commit point and holds the stream up to it */
		assert_int_equal(fstat(fd, &st), 0);
		bool at_commit = false;
		for (unsigned i = 0; i < nc; i++)
			at_commit |= (uint64_t)st.st_size == commits[i];
		assert_true(at_commit);
		assert_int_equal(spool_whole(sp), (uint64_t)st.st_size);
		check_file(fd, 0, (uint64_t)st.st_size);
		writes = s.writes;
		memset(&err, 0, sizeof(err));
		assert_int_equal(spool_append(sp, "x", 1, &err), 0); /* copied; noticed at the commit */
		assert_int_equal(spool_commit(sp, &err), -ENOSPC);
		assert_non_null(strstr(err.msg, "No space left"));
		assert_int_equal(spool_finish(sp, false, NULL, &err), -ENOSPC);
		assert_int_equal(s.writes, writes);
		spool_free(sp);
		close(fd);
	}
}

/* Preallocation is given back when the spool is freed without finishing
 * (an error path of the caller): the file ends at the last commit point, and
 * no block stays allocated past it. */
static void test_free_without_finish_trims(void **state)
{
	SpoolConfig cfg = {.job_bytes = 64 * 1024, .direct = true, .prealloc_step = 8 << 20};
	Seen s;
	IoOps ops = seen_ops(&s);
	Spool *sp;
	ErrBuf err;
	int fd = disk_file();
	struct stat st;

	(void)state;
	cfg.io = &ops;
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
	assert_int_equal(append_range(sp, 0, 300000, &err), 0);
	assert_int_equal(spool_commit(sp, &err), 0);
	assert_int_equal(append_range(sp, 300000, 450000, &err), 0); /* not committed: dropped */
	assert_int_equal(spool_sync(sp, &err), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 >= 8u << 20); /* preallocated */
	spool_free(sp);
	assert_true(s.truncates >= 1);
	check_file(fd, 0, 300000);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 <= 300000 + 8192);
	close(fd);
}

/* Bytes before base are kept; direct mode needs an aligned base (else the
 * spool writes through the page cache); bad geometry is refused. */
static void test_base_and_config(void **state)
{
	SpoolConfig cfg = {.direct = true};
	Spool *sp;
	ErrBuf err;
	uint64_t end;
	int fd = disk_file();

	(void)state;
	assert_int_equal(pwrite(fd, "0123456789", 10, 0), 10);
	assert_int_equal(spool_new(fd, 10, &cfg, &sp, &err), 0);
	assert_false(spool_direct(sp));
	assert_int_equal(append_range(sp, 0, 123456, &err), 0);
	assert_int_equal(spool_finish(sp, false, &end, &err), 0);
	spool_free(sp);
	check_file(fd, 10, 123456);
	char head[10];
	assert_int_equal(pread(fd, head, 10, 0), 10);
	assert_memory_equal(head, "0123456789", 10);

	cfg.job_bytes = 5000;
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "job_bytes 5000"));
	cfg.job_bytes = 0;
	cfg.depth = 1;
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "depth 1 is outside 2..64"));
	close(fd);
}

/* tmpfs: neither O_DIRECT nor preallocation (both only cost there), and the
 * stream still lands exactly. */
static void test_memory_fs_plain(void **state)
{
	char path[] = "/dev/shm/pcapd-spool-test-XXXXXX";
	SpoolConfig cfg = {.job_bytes = 64 * 1024, .direct = true};
	Seen s;
	IoOps ops = seen_ops(&s);
	Spool *sp;
	ErrBuf err;
	uint64_t end;
	int fd = mkostemp(path, O_CLOEXEC);

	(void)state;
	if (fd < 0)
		skip(); /* no /dev/shm here */
	unlink(path);
	cfg.io = &ops;
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
	assert_false(spool_direct(sp));
	assert_int_equal(append_range(sp, 0, 700001, &err), 0);
	assert_int_equal(spool_finish(sp, false, &end, &err), 0);
	assert_int_equal(s.fallocates, 0);
	assert_int_equal(s.direct_writes, 0);
	check_file(fd, 0, end);
	spool_free(sp);
	close(fd);
}

/* A file on /dev/shm (tmpfs), removed at once; -1 when there is none. */
static int shm_file(void)
{
	char path[] = "/dev/shm/pcapd-spool-test-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	if (fd >= 0)
		unlink(path);
	return fd;
}

/* tmpfs: the producer writes straight from its own memory (no job copy).
 * Vectors of every size, every write cut short by the file system: after
 * each commit the file is exactly the committed stream and spool_whole()
 * says so; bytes appended after the last commit are cut off by spool_free(). */
static void test_memory_fs_inline_vectors(void **state)
{
	SpoolConfig cfg = {.job_bytes = 64 * 1024, .direct = true};
	Seen s;
	IoOps ops = seen_ops(&s);
	Spool *sp;
	ErrBuf err;
	static uint8_t buf[300000];
	uint64_t at = 0;
	int fd = shm_file();

	(void)state;
	if (fd < 0)
		skip(); /* no /dev/shm here */
	s.short_writes = true;
	cfg.io = &ops;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = byte_at(i);
	assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
	for (unsigned i = 1; i <= 12; i++) {
		struct iovec iov[5];
		size_t n = i * 4999 % 5000 + 1; /* 12 rounds stay within buf */

		for (unsigned v = 0; v < 5; v++) {
			iov[v].iov_base = buf + at;
			iov[v].iov_len = v == 2 ? 0 : n + v;
			at += iov[v].iov_len;
		}
		assert_int_equal(spool_appendv(sp, iov, 5, &err), 0);
		assert_int_equal(spool_commit(sp, &err), 0);
		assert_int_equal(spool_sync(sp, &err), 0);
		assert_int_equal(spool_whole(sp), at);
		check_file(fd, 0, at);
	}
	assert_int_equal(spool_append(sp, buf + at, 777, &err), 0); /* not committed: cut off */
	spool_free(sp);
	check_file(fd, 0, at);
	assert_int_equal(s.fallocates, 0);
	assert_int_equal(s.direct_writes, 0);
	close(fd);
}

/* tmpfs: the Nth write fails: the call that wrote returns it with the
 * writer's words, the file is cut back to the last commit point, and every
 * later call returns the failure without writing. */
static void test_memory_fs_failed_write(void **state)
{
	for (unsigned n = 1; n <= 8; n++) {
		SpoolConfig cfg = {.direct = true};
		Seen s;
		IoOps ops = seen_ops(&s);
		Spool *sp;
		ErrBuf err = {0};
		uint64_t commits[16], committed;
		unsigned nc = 0, writes;
		int fd = shm_file();
		struct stat st;

		(void)state;
		if (fd < 0)
			skip(); /* no /dev/shm here */
		s.fail_write = n;
		s.fail_errno = ENOSPC;
		cfg.io = &ops;
		assert_int_equal(spool_new(fd, 0, &cfg, &sp, &err), 0);
		assert_int_equal(append_commits(sp, commits, &nc, &err), -ENOSPC);
		committed = commits[nc - 1];
		assert_non_null(strstr(err.msg, "write failed: No space left on device"));
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, committed);
		assert_int_equal(spool_whole(sp), committed);
		check_file(fd, 0, committed);
		writes = s.writes;
		memset(&err, 0, sizeof(err));
		assert_int_equal(spool_append(sp, "x", 1, &err), -ENOSPC);
		assert_non_null(strstr(err.msg, "No space left"));
		assert_int_equal(spool_commit(sp, &err), -ENOSPC);
		assert_int_equal(spool_finish(sp, false, NULL, &err), -ENOSPC);
		assert_int_equal(s.writes, writes);
		spool_free(sp);
		close(fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_exact_after_each_commit),
		cmocka_unit_test(test_direct_refused_falls_back),
		cmocka_unit_test(test_failed_write_cuts_back_to_commit),
		cmocka_unit_test(test_free_without_finish_trims),
		cmocka_unit_test(test_base_and_config),
		cmocka_unit_test(test_memory_fs_plain),
		cmocka_unit_test(test_memory_fs_inline_vectors),
		cmocka_unit_test(test_memory_fs_failed_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
