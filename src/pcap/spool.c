/* SPDX-License-Identifier: MIT */
/*
 * Spool: job buffers filled by the producer, written in order by one writer
 * thread.
 *
 * Why (measured with perf on the project's 2-core VM, 1514-byte frames at
 * ~700 kpps, ~1.05 GB/s; the numbers are in bench/RESULTS.md): the writer used
 * to write each batch itself, synchronously, from the capture thread. The
 * capture thread then spent ~80 % of its time blocked in writev() (one write
 * in flight, ~665 KB each because a batch ends at IOV_MAX iovecs), and every
 * direct write began on the page that the previous flush had written through
 * the page cache, so the kernel first wrote that page back and waited for it
 * (kiocb_invalidate_pages -> filemap_write_and_wait_range: half of the
 * virtio-blk kicks in the profile) before the direct write could start.
 *
 * So:
 *  - the producer copies into a job buffer (a fast user-space copy from the
 *    ring) and returns; the writer thread writes whole jobs (4 MiB) while the
 *    next ones fill. Large writes at queue depth one already reach the disk's
 *    own rate here (dd oflag=direct bs=4M; more writes in flight only helped
 *    writes of 256 KiB and less), and one writer keeps the file a prefix of the
 *    stream at every moment (several writes in flight would complete out of
 *    order and could leave a hole before the end);
 *  - a page is written either directly or through the page cache, never both:
 *    the page holding a job's ragged end goes through the page cache (so the
 *    file ends at the commit point), and the next job, which starts on that
 *    same page (its bytes are carried over), writes that first page through
 *    the page cache again and its aligned middle directly. No direct write ever
 *    covers a cached page, so none waits for a writeback; the cached pages
 *    (one per job) are written back by the kernel in the background;
 *  - O_DIRECT lives on a second descriptor (reopened through /proc/self/fd),
 *    so the two kinds of write never toggle flags on one shared description;
 *  - the file is preallocated ahead of the writes (fallocate KEEP_SIZE, 64 MiB
 *    steps) so that ext4 finds the blocks allocated instead of allocating at
 *    each extending write; the file's size is untouched by it, and the unused
 *    rest is given back at the end (ftruncate to the end frees blocks past it);
 *  - memory-backed file systems (tmpfs, ramfs) get neither: there fallocate
 *    allocates and zeroes the pages (52 ms per 64 MiB step here, more than the
 *    writes themselves), and tmpfs takes O_DIRECT only to do a buffered copy;
 *  - nor do they get the writer thread or the job buffers: a "write" there is
 *    the kernel's copy into the file's pages, not a wait for a device, so a
 *    thread overlaps nothing, and the copy into a job buffer only doubled the
 *    bytes copied (the kernel then read them back from a 4 MiB buffer long
 *    out of cache). The producer writes each append itself (pwritev of the
 *    caller's vectors, straight from the capture ring), in order, so the file
 *    is still a prefix of the stream; a commit only records the commit point.
 *    Measured A/B on 3 M 1514-byte frames to /dev/shm, alternated on a loaded
 *    2-core VM (bench/RESULTS.md, "tmpfs"): CPU per packet 0.57 µs against
 *    0.75 µs, fewer drops.
 *
 * Job states: jobs[head % depth] is the producer's (filling); jobs in
 * [tail, head) are queued, oldest first; the writer takes jobs[tail % depth]
 * and advances tail when it is written. The producer hands a job over only
 * when the next buffer is free (head + 1 - tail < depth), so a buffer is
 * never filled while queued. lock guards head, tail, stop flags and the error;
 * the buffers themselves are handed over by those indices.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#define SPOOL_MIN_JOB (64u * 1024)
#define SPOOL_MAX_JOB (1u << 30)
#define SPOOL_MAX_DEPTH 64u
#define NO_PAGE UINT64_MAX

typedef struct Job {
	uint8_t *buf;   /* SPOOL_ALIGN-aligned, job_bytes */
	size_t len;     /* bytes in buf */
	uint64_t start; /* stream offset of buf[0]; aligned in direct mode */
	bool commit;    /* the job ends at a commit point */
} Job;

struct Spool {
	int fd;  /* the caller's: buffered writes, truncation, fsync */
	int dfd; /* O_DIRECT description of the same file, or -1 */
	const IoOps *io;
	uint64_t base;
	size_t job_bytes;
	unsigned depth;
	uint64_t prealloc_step; /* 0 = none */
	bool memory_fs;         /* tmpfs or ramfs: written inline by the producer (no thread, no job
				 * buffers), no O_DIRECT, no preallocation */
	Job *jobs;

	/* producer only */
	uint64_t appended;  /* stream bytes appended */
	uint64_t committed; /* last commit point */
	bool finished;

	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t work; /* the writer: a job queued, or stop */
	pthread_cond_t room; /* the producer: a job written, or failure */
	uint64_t head, tail;
	bool stop;      /* the writer exits once the queue is empty */
	int error;      /* first failure (-errno); nothing more is written */
	ErrBuf err;     /* its message */
	uint64_t whole; /* last commit point the file holds */
	bool direct;    /* dfd in use (cleared if a direct write is refused) */

	/* writer thread only */
	uint64_t cached_page; /* stream offset of the page last written through the page cache */
	uint64_t prealloc_end;
	pthread_t thread;
	bool thread_started;
};

/* Allocates ahead of a job that ends at stream offset end. A refusal only
 * ends preallocation: the writes themselves report a full disk. */
static void preallocate(Spool *s, uint64_t end)
{
	uint64_t want;

	if (!s->prealloc_step || !s->io->fallocate || end <= s->prealloc_end)
		return;
	want = end + s->prealloc_step;
	if (s->io->fallocate(s->io, s->fd, FALLOC_FL_KEEP_SIZE, (off_t)(s->base + s->prealloc_end),
			     (off_t)(want - s->prealloc_end)) < 0) {
		s->prealloc_step = 0;
		return;
	}
	s->prealloc_end = want;
}

/* A direct write refused as such (EINVAL before any byte: the file system
 * took the O_DIRECT open but not the write): buffered from here on. */
static bool refused_direct(Spool *s, int r)
{
	bool direct;

	if (r != -EINVAL)
		return false;
	direct = __atomic_exchange_n(&s->direct, false, __ATOMIC_RELAXED);
	return direct;
}

static int write_job(Spool *s, const Job *j)
{
	uint64_t a = j->start, end = j->start + j->len, m;
	int r;

	preallocate(s, end);
	if (!__atomic_load_n(&s->direct, __ATOMIC_RELAXED))
		return io_pwrite_all(s->io, s->fd, j->buf, j->len, s->base + j->start);
	/* The first page was written through the page cache by the job before
	 * (its ragged end): through the page cache again. */
	if (a == s->cached_page) {
		size_t n = j->len < SPOOL_ALIGN ? j->len : SPOOL_ALIGN;

		r = io_pwrite_all(s->io, s->fd, j->buf, n, s->base + a);
		if (r < 0)
			return r;
		a += n;
	}
	m = end & ~(uint64_t)(SPOOL_ALIGN - 1);
	if (m > a) {
		r = io_pwrite_all(s->io, s->dfd, j->buf + (a - j->start), m - a, s->base + a);
		if (r < 0 && refused_direct(s, r))
			r = io_pwrite_all(s->io, s->fd, j->buf + (a - j->start), m - a, s->base + a);
		if (r < 0)
			return r;
		a = m;
	}
	if (end > a) {
		r = io_pwrite_all(s->io, s->fd, j->buf + (a - j->start), end - a, s->base + a);
		if (r < 0)
			return r;
		s->cached_page = a;
	}
	return 0;
}

/* After a failed write, under lock: the file back to the last commit point it
 * holds whole. */
static void fail_locked(Spool *s, int r)
{
	int t = s->io->ftruncate(s->io, s->fd, (off_t)(s->base + s->whole));

	s->error = r;
	if (t < 0)
		errbuf_set(&s->err, r, "write failed (%s) and truncating back to whole records failed (%s)",
			   strerror(-r), strerror(-t));
	else
		errbuf_set(&s->err, r, "write failed: %s", strerror(-r));
}

static void *writer_main(void *arg)
{
	Spool *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		const Job *j;
		int r;

		while (s->tail == s->head && !s->stop)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->tail == s->head || s->error)
			break;
		j = &s->jobs[s->tail % s->depth];
		pthread_mutex_unlock(&s->lock);
		r = write_job(s, j);
		pthread_mutex_lock(&s->lock);
		if (r < 0) {
			fail_locked(s, r);
			pthread_cond_broadcast(&s->room);
			break;
		}
		if (j->commit)
			s->whole = j->start + j->len;
		s->tail++;
		pthread_cond_broadcast(&s->room);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int error_locked(const Spool *s, ErrBuf *err)
{
	if (err)
		*err = s->err;
	return s->error;
}

/* Hands the producer's job to the writer and prepares the next buffer: in
 * direct mode it starts at the job's last aligned offset, with the bytes past
 * it carried over. */
static int hand_over(Spool *s, bool commit, ErrBuf *err)
{
	Job *j = &s->jobs[s->head % s->depth], *next;
	size_t keep;
	int r = 0;

	j->commit = commit;
	pthread_mutex_lock(&s->lock);
	while (!s->error && s->head + 1 - s->tail >= s->depth)
		pthread_cond_wait(&s->room, &s->lock);
	if (s->error) {
		r = error_locked(s, err);
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	s->head++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	next = &s->jobs[s->head % s->depth];
	keep = s->dfd >= 0 ? j->len & ~(size_t)(SPOOL_ALIGN - 1) : j->len;
	next->start = j->start + keep;
	next->len = j->len - keep;
	memcpy(next->buf, j->buf + keep, next->len); /* j is only read by the writer meanwhile */
	return 0;
}

static int check_error(Spool *s, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->error ? error_locked(s, err) : 0;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Memory-backed file system: iov[0..iovcnt) written at the stream's end by
 * the producer itself, straight from the caller's memory (no job buffer, no
 * thread). A failure stops the spool as a failed job does; only the producer
 * sets the error in this mode, so it reads it without the lock. */
static int write_inline(Spool *s, const struct iovec *iov, int iovcnt, ErrBuf *err)
{
	size_t written = 0;
	int r = io_pwritev_all(s->io, s->fd, iov, iovcnt, s->base + s->appended, &written);

	s->appended += written;
	if (r < 0) {
		pthread_mutex_lock(&s->lock);
		fail_locked(s, r);
		r = error_locked(s, err);
		pthread_mutex_unlock(&s->lock);
	}
	return r;
}

/* Errors show at the next hand-over or commit: no lock per call (on a
 * memory-backed file system, at once). */
static int append(Spool *s, const uint8_t *src, size_t n, ErrBuf *err)
{
	int r;

	while (n > 0) {
		Job *j = &s->jobs[s->head % s->depth];
		size_t room = s->job_bytes - j->len, k = n < room ? n : room;

		if (room == 0) {
			r = hand_over(s, false, err);
			if (r < 0)
				return r;
			continue;
		}
		memcpy(j->buf + j->len, src, k);
		j->len += k;
		src += k;
		n -= k;
		s->appended += k;
	}
	return 0;
}

int spool_append(Spool *s, const void *p, size_t n, ErrBuf *err)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = n};

	return spool_appendv(s, &v, 1, err);
}

int spool_appendv(Spool *s, const struct iovec *iov, int iovcnt, ErrBuf *err)
{
	if (s->finished)
		return errbuf_set(err, -EINVAL, "spool already finished");
	if (s->memory_fs)
		return s->error ? check_error(s, err) : write_inline(s, iov, iovcnt, err);
	for (int i = 0; i < iovcnt; i++) {
		int r = append(s, iov[i].iov_base, iov[i].iov_len, err);

		if (r < 0)
			return r;
	}
	return 0;
}

int spool_commit(Spool *s, ErrBuf *err)
{
	int r;

	if (s->finished)
		return errbuf_set(err, -EINVAL, "spool already finished");
	if (s->appended == s->committed)
		return check_error(s, err);
	if (s->memory_fs) {
		pthread_mutex_lock(&s->lock);
		r = s->error ? error_locked(s, err) : 0;
		if (r == 0)
			s->whole = s->appended;
		pthread_mutex_unlock(&s->lock);
		if (r == 0)
			s->committed = s->appended;
		return r;
	}
	r = hand_over(s, true, err);
	if (r == 0)
		s->committed = s->appended;
	return r;
}

/* Waits for the queue to empty (or a failure). */
static int drain(Spool *s, ErrBuf *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	while (!s->error && s->tail != s->head)
		pthread_cond_wait(&s->room, &s->lock);
	r = s->error ? error_locked(s, err) : 0;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int spool_sync(Spool *s, ErrBuf *err)
{
	return drain(s, err);
}

static void stop_thread(Spool *s)
{
	if (!s->thread_started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->thread_started = false;
}

int spool_finish(Spool *s, bool fsync, uint64_t *ret_end, ErrBuf *err)
{
	int r;

	if (s->finished)
		return errbuf_set(err, -EINVAL, "spool already finished");
	r = spool_commit(s, err);
	if (r == 0)
		r = drain(s, err);
	stop_thread(s);
	s->finished = true;
	if (r < 0)
		return r;
	/* The file ends at the stream's end; blocks preallocated past it are
	 * freed (ext4 frees blocks past the end on a truncate to the same size). */
	if (s->prealloc_end > s->appended) {
		r = s->io->ftruncate(s->io, s->fd, (off_t)(s->base + s->appended));
		if (r < 0)
			return errbuf_set(err, r, "giving back preallocated space: %s", strerror(-r));
		s->prealloc_end = 0;
	}
	if (fsync) {
		r = s->io->fsync(s->io, s->fd);
		if (r < 0)
			return errbuf_set(err, r, "fsync failed: %s", strerror(-r));
	}
	if (ret_end)
		*ret_end = s->appended;
	return 0;
}

int spool_new(int fd, uint64_t base, const SpoolConfig *cfg, Spool **ret, ErrBuf *err)
{
	size_t job = cfg->job_bytes ? cfg->job_bytes : SPOOL_DEFAULT_JOB_BYTES;
	unsigned depth = cfg->depth ? cfg->depth : SPOOL_DEFAULT_DEPTH;
	Spool *s;
	int r;

	if (job < SPOOL_MIN_JOB || job > SPOOL_MAX_JOB || job % SPOOL_ALIGN)
		return errbuf_set(err, -EINVAL, "job_bytes %zu is not a multiple of %u in %u..%u", job, SPOOL_ALIGN,
				  SPOOL_MIN_JOB, SPOOL_MAX_JOB);
	if (depth < 2 || depth > SPOOL_MAX_DEPTH)
		return errbuf_set(err, -EINVAL, "depth %u is outside 2..%u", depth, SPOOL_MAX_DEPTH);
	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	s->fd = fd;
	s->dfd = -1;
	s->io = cfg->io ? cfg->io : &io_posix;
	s->base = base;
	s->job_bytes = job;
	s->depth = depth;
	s->prealloc_step = cfg->prealloc_step == UINT64_MAX ? 0
			   : cfg->prealloc_step             ? cfg->prealloc_step
							    : SPOOL_DEFAULT_PREALLOC;
	s->cached_page = NO_PAGE;
	{
		struct statfs sf;

		if (fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC))
			s->memory_fs = true;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->room, NULL);
	if (s->memory_fs) {
		/* Written inline: no jobs, no thread, no preallocation. */
		s->prealloc_step = 0;
		*ret = s;
		return 0;
	}
	s->jobs = calloc(depth, sizeof(*s->jobs));
	if (!s->jobs) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < depth; i++) {
		void *p;

		if (posix_memalign(&p, SPOOL_ALIGN, job) != 0) {
			r = errbuf_set(err, -ENOMEM, "out of memory for %u buffers of %zu bytes", depth, job);
			goto fail;
		}
		s->jobs[i].buf = p;
	}
	if (cfg->direct && base % SPOOL_ALIGN == 0) {
		char path[64];
		int n = snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

		if (n > 0 && (size_t)n < sizeof(path)) {
			int d = s->io->open(s->io, path, O_WRONLY | O_DIRECT, 0);

			if (d >= 0) {
				s->dfd = d;
				s->direct = true;
			}
		}
	}
	{
		sigset_t all, old;

		/* Signals go to the caller's threads (a capture's stop flag),
		 * not to the writer: it inherits a full mask. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = pthread_create(&s->thread, NULL, writer_main, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (r != 0) {
		r = errbuf_set(err, -r, "starting the writer thread: %s", strerror(r));
		goto fail;
	}
	s->thread_started = true;
	*ret = s;
	return 0;
fail:
	spool_free(s);
	return r;
}

void spool_free(Spool *s)
{
	if (!s)
		return;
	if (!s->finished && (s->thread_started || s->memory_fs)) {
		/* What was committed is written; then the file ends at the last
		 * commit point it holds, preallocation given back. */
		(void)drain(s, NULL);
		stop_thread(s);
		(void)s->io->ftruncate(s->io, s->fd, (off_t)(s->base + s->whole));
	}
	stop_thread(s);
	if (s->dfd >= 0)
		s->io->close(s->io, s->dfd);
	if (s->jobs)
		for (unsigned i = 0; i < s->depth; i++)
			free(s->jobs[i].buf);
	free(s->jobs);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

bool spool_direct(const Spool *s)
{
	return __atomic_load_n(&s->direct, __ATOMIC_RELAXED);
}

uint64_t spool_whole(const Spool *s)
{
	Spool *m = (Spool *)s;
	uint64_t w;

	pthread_mutex_lock(&m->lock);
	w = m->whole;
	pthread_mutex_unlock(&m->lock);
	return w;
}
