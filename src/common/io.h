/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The file-I/O seam. Every module that writes files does so through an IoOps
 * table, so that tests can fail the Nth write or fsync, or stop between a write
 * and a rename (SQLite's VFS idea, reduced to what pcapd does).
 *
 * Every operation returns what the system call would, as -errno on failure;
 * errno itself is never the channel. `self` is the table, so a fault-injecting
 * table can keep its counters behind `state`.
 */

#include <stddef.h>

#include "common/util.h"
#include <sys/types.h>
#include <sys/uio.h>

typedef struct IoOps IoOps;
struct IoOps {
	int (*open)(const IoOps *self, const char *path, int flags, mode_t mode); /* fd or -errno; O_CLOEXEC is added */
	ssize_t (*writev)(const IoOps *self, int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*pwritev)(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t offset);
	int (*fsync)(const IoOps *self, int fd);
	int (*ftruncate)(const IoOps *self, int fd, off_t len);
	int (*fallocate)(const IoOps *self, int fd, int mode, off_t offset, off_t len); /* NULL: none */
	int (*rename)(const IoOps *self, const char *from, const char *to);
	int (*unlink)(const IoOps *self, const char *path);
	int (*close)(const IoOps *self, int fd);
	void *state; /* owned by whoever built the table; unused by io_posix */
};

/* The real thing: thin wrappers over the system calls. */
extern const IoOps io_posix;

/* Writes every byte of iov[0..iovcnt), continuing after short writes and EINTR.
 * iov is consumed (entries are advanced in place). *ret_written receives the
 * bytes written even when the call fails part way, so that the caller can undo
 * a partial record. Returns 0 or -errno (-ENOSPC, -EPIPE, ...). */
int io_writev_all(const IoOps *ops, int fd, struct iovec *iov, int iovcnt, size_t *ret_written);

/* Writes all of buf[0..len) at file offset off (pwritev, continuing after
 * short writes and EINTR). 0 or -errno; a write of 0 bytes is -EIO. */
int io_pwrite_all(const IoOps *ops, int fd, const void *buf, size_t len, uint64_t off);

/* Writes every byte of iov[0..iovcnt) at file offset off (pwritev in
 * IOV_MAX steps, continuing after short writes and EINTR); iov is left as it
 * was. *ret_written receives the bytes written, also when the call fails part
 * way. 0 or -errno; a write of 0 bytes is -EIO. */
int io_pwritev_all(const IoOps *ops, int fd, const struct iovec *iov, int iovcnt, uint64_t off, size_t *ret_written);

/* fsync()s the directory that contains path, making a rename in it durable. */
int io_fsync_parent_dir(const IoOps *ops, const char *path);

/* Publishes a small file atomically: writes iov[0..iovcnt) to a new file
 * "<path>.<random>.tmp" (O_EXCL, mode), fsyncs it, renames it over path and fsyncs the directory. On failure
 * the temporary file is removed and path is left as it was; err names the
 * file and the step. 0 or -errno. iov is consumed as by io_writev_all. */
int io_publish(const IoOps *ops, const char *path, struct iovec *iov, int iovcnt, mode_t mode, ErrBuf *err);
