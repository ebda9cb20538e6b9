/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A spool: an ordered byte stream written to a regular file by a writer thread,
 * so that the producer (a capture thread) copies its bytes and goes on while
 * the disk works. Made for capture files at disk speed; see spool.c for the
 * measurements behind each choice.
 *
 *   producer:  spool_append() ... spool_commit() ... spool_append() ... spool_finish()
 *   writer:    jobs written in order: aligned middles with O_DIRECT, the pages
 *              holding a job's ragged ends through the page cache (tmpfs and
 *              ramfs: no writer, each append written by the producer's call)
 *
 * Invariants:
 *  - bytes reach the file in the order they were appended, and only from the
 *    writer thread; the producer never waits for the disk unless every job
 *    buffer is queued (back-pressure, bounded memory: depth * job_bytes).
 *    On a memory-backed file system (tmpfs, ramfs) there is no writer thread
 *    and no job buffer: each append is written by the producer's own call,
 *    straight from its memory (a copy into pages, no device to wait for), and
 *    a failed write is returned by that call;
 *  - a commit point is where the stream holds whole records. When the writer
 *    has finished the job that ends at a commit point, the file ends exactly
 *    there (nothing past it, nothing missing before it): killed at any moment
 *    after that, even with SIGKILL, the file reads cleanly. While a job is being
 *    written the file's end may lie inside a record for the length of that
 *    write;
 *  - a failed write stops the spool: the file is cut back to the last commit
 *    point it fully holds, and every later call returns the error;
 *  - preallocation (fallocate KEEP_SIZE, ahead of the writes) never shows in
 *    the file's size; spool_finish() and spool_free() give back what was not
 *    used (ftruncate to the end). A SIGKILL leaves it allocated past the end,
 *    invisible to readers, until the file is truncated or removed;
 *  - the caller's descriptor keeps its flags and its offset is not used:
 *    writes are positional (base + stream offset). O_DIRECT goes through a
 *    second descriptor of the same file (reopened through /proc/self/fd).
 *
 * Threads: one producer (the caller serialises its calls); spool_whole() and
 * spool_direct() from any thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/io.h"
#include "common/util.h"

#define SPOOL_ALIGN 4096u                    /* O_DIRECT offset, length and buffer alignment */
#define SPOOL_DEFAULT_JOB_BYTES (4u << 20)   /* bytes per job buffer */
#define SPOOL_DEFAULT_DEPTH 4u               /* job buffers */
#define SPOOL_DEFAULT_PREALLOC (64ull << 20) /* fallocate step ahead of the writes */

typedef struct Spool Spool;

typedef struct SpoolConfig {
	const IoOps *io;        /* NULL = io_posix */
	size_t job_bytes;       /* a multiple of SPOOL_ALIGN, 64 KiB..1 GiB; 0 = default */
	unsigned depth;         /* job buffers, 2..64; 0 = default */
	bool direct;            /* write aligned parts with O_DIRECT when the file system takes it */
	uint64_t prealloc_step; /* preallocate this far ahead (KEEP_SIZE); 0 = default; UINT64_MAX = never */
} SpoolConfig;

/* Starts a spool on fd (a regular file, written from offset base on; bytes
 * before base are kept). In direct mode base must be SPOOL_ALIGN-aligned, else
 * the spool writes through the page cache. A file system that refuses O_DIRECT
 * (or a /proc that cannot reopen fd) means buffered mode too: spool_direct()
 * tells which. The descriptor stays the caller's and must stay open until
 * spool_free(). */
int spool_new(int fd, uint64_t base, const SpoolConfig *cfg, Spool **ret, ErrBuf *err);

/* Copies n bytes behind the stream. Waits only when every job buffer is
 * queued. Returns 0, or the writer's error (-errno, message in err) once a
 * write failed (noticed when a buffer is handed over, and at every commit).
 * On tmpfs and ramfs it writes them itself and a failure shows at once. */
int spool_append(Spool *s, const void *p, size_t n, ErrBuf *err);

/* spool_append() for each of iov[0..iovcnt) in turn. */
int spool_appendv(Spool *s, const struct iovec *iov, int iovcnt, ErrBuf *err);

/* The bytes appended so far end whole records: queues them for writing. */
int spool_commit(Spool *s, ErrBuf *err);

/* Waits until every committed byte is in the file. */
int spool_sync(Spool *s, ErrBuf *err);

/* Commits and writes what is left, stops the writer thread, gives back unused
 * preallocation (ftruncate to base + the stream's length) and fsyncs if asked.
 * ret_end (may be NULL) receives the stream's length. The spool is then done:
 * only spool_free() is left. */
int spool_finish(Spool *s, bool fsync, uint64_t *ret_end, ErrBuf *err);

/* Stops the writer thread (after the job it is writing), cuts the file back
 * to the last commit point written and gives back unused preallocation,
 * closes the second descriptor, frees. NULL is fine. */
void spool_free(Spool *s);

/* Whether aligned parts go out with O_DIRECT. */
bool spool_direct(const Spool *s);

/* Bytes (from base) of whole records in the file: the last commit point the
 * writer completed, or after a failure, where the file was cut back to. */
uint64_t spool_whole(const Spool *s);
