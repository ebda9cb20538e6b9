/* SPDX-License-Identifier: MIT */
#include "faultio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static FaultIo *self_of(const IoOps *ops)
{
	return ops->state;
}

/* Counts the call; returns 0 to go ahead, or the error to return. */
static int gate_op(FaultIo *f, const char *op)
{
	f->calls++;
	if (f->crashed)
		return -EIO;
	if (f->fail_at && f->calls == f->fail_at) {
		f->failed_op = op;
		if (f->crash) {
			f->crashed = true;
			return -EIO;
		}
		return f->fail_error;
	}
	return 0;
}

#define gate(f) gate_op((f), __func__ + 2)

static FaultFile *file_by_fd(FaultIo *f, int fd)
{
	for (int i = 0; i < FAULT_MAX_FILES; i++)
		if (f->files[i].used && f->files[i].fd == fd)
			return &f->files[i];
	return NULL;
}

static FaultFile *file_by_path(FaultIo *f, const char *path)
{
	for (int i = 0; i < FAULT_MAX_FILES; i++)
		if (f->files[i].used && strcmp(f->files[i].path, path) == 0)
			return &f->files[i];
	return NULL;
}

static int f_open(const IoOps *ops, const char *path, int flags, mode_t mode)
{
	FaultIo *f = self_of(ops);
	int r = gate(f), fd;

	if (r < 0)
		return r;
	fd = io_posix.open(&io_posix, path, flags, mode);
	if (fd < 0)
		return fd;
	/* Descriptors the store closed without us (plain close()) are stale. */
	for (int i = 0; i < FAULT_MAX_FILES; i++)
		if (f->files[i].used && f->files[i].fd == fd)
			f->files[i].fd = -1;
	if (flags & (O_WRONLY | O_RDWR)) {
		FaultFile *ff = file_by_path(f, path);

		for (int i = 0; i < FAULT_MAX_FILES && !ff; i++)
			if (!f->files[i].used) {
				ff = &f->files[i];
				*ff = (FaultFile){.used = true, .synced = 0};
				snprintf(ff->path, sizeof(ff->path), "%s", path);
			}
		if (ff) {
			ff->fd = fd;
			if (flags & O_TRUNC)
				ff->synced = 0;
		}
	}
	return fd;
}

static ssize_t f_writev(const IoOps *ops, int fd, const struct iovec *iov, int n)
{
	FaultIo *f = self_of(ops);
	int r = gate(f);

	if (r < 0)
		return r;
	if (f->full)
		return -ENOSPC;
	return io_posix.writev(&io_posix, fd, iov, n);
}

static ssize_t f_pwritev(const IoOps *ops, int fd, const struct iovec *iov, int n, off_t off)
{
	FaultIo *f = self_of(ops);
	int r = gate(f);

	if (r < 0)
		return r;
	if (f->full) {
		/* A full disk may take part of a write: keep half of the first
		 * piece, so that the caller's cut back is exercised too. */
		if (n > 0 && iov[0].iov_len > 1) {
			struct iovec half = {.iov_base = iov[0].iov_base, .iov_len = iov[0].iov_len / 2};

			(void)io_posix.pwritev(&io_posix, fd, &half, 1, off);
		}
		return -ENOSPC;
	}
	return io_posix.pwritev(&io_posix, fd, iov, n, off);
}

static int f_fsync(const IoOps *ops, int fd)
{
	FaultIo *f = self_of(ops);
	FaultFile *ff;
	struct stat st;
	int r = gate(f);

	if (r < 0)
		return r;
	if (f->full)
		return -ENOSPC;
	r = io_posix.fsync(&io_posix, fd);
	ff = file_by_fd(f, fd);
	if (r == 0 && ff && fstat(fd, &st) == 0)
		ff->synced = st.st_size;
	return r;
}

static int f_ftruncate(const IoOps *ops, int fd, off_t len)
{
	FaultIo *f = self_of(ops);
	int r = gate(f);

	return r < 0 ? r : io_posix.ftruncate(&io_posix, fd, len);
}

static int f_rename(const IoOps *ops, const char *from, const char *to)
{
	FaultIo *f = self_of(ops);
	FaultFile *ff, *old;
	int r = gate(f);

	if (r < 0)
		return r;
	r = io_posix.rename(&io_posix, from, to);
	if (r == 0) {
		old = file_by_path(f, to);
		if (old)
			old->used = false;
		ff = file_by_path(f, from);
		if (ff) {
			snprintf(ff->path, sizeof(ff->path), "%s", to);
		}
	}
	return r;
}

static int f_unlink(const IoOps *ops, const char *path)
{
	FaultIo *f = self_of(ops);
	FaultFile *ff;
	int r = gate(f);

	if (r < 0)
		return r;
	r = io_posix.unlink(&io_posix, path);
	ff = file_by_path(f, path);
	if (r == 0 && ff)
		ff->used = false;
	return r;
}

static int f_close(const IoOps *ops, int fd)
{
	FaultIo *f = self_of(ops);
	FaultFile *ff = file_by_fd(f, fd);

	if (ff)
		ff->fd = -1;
	return io_posix.close(&io_posix, fd);
}

void fault_init(FaultIo *f)
{
	memset(f, 0, sizeof(*f));
	f->ops = (IoOps){
		.open = f_open,
		.writev = f_writev,
		.pwritev = f_pwritev,
		.fsync = f_fsync,
		.ftruncate = f_ftruncate,
		.rename = f_rename,
		.unlink = f_unlink,
		.close = f_close,
		.state = f,
	};
	for (int i = 0; i < FAULT_MAX_FILES; i++)
		f->files[i].fd = -1;
}

void fault_power_cut(FaultIo *f)
{
	for (int i = 0; i < FAULT_MAX_FILES; i++) {
		if (!f->files[i].used)
			continue;
		if (truncate(f->files[i].path, f->files[i].synced) < 0 && errno != ENOENT)
			continue;
	}
}
