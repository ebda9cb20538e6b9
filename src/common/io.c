/* SPDX-License-Identifier: MIT */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int posix_open(const IoOps *self, const char *path, int flags, mode_t mode)
{
	int fd;

	(void)self;
	fd = open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

static ssize_t posix_writev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	(void)self;
	n = writev(fd, iov, iovcnt);
	return n < 0 ? -errno : n;
}

static ssize_t posix_pwritev(const IoOps *self, int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	ssize_t n;

	(void)self;
	n = pwritev(fd, iov, iovcnt, offset);
	return n < 0 ? -errno : n;
}

static int posix_fsync(const IoOps *self, int fd)
{
	(void)self;
	return fsync(fd) < 0 ? -errno : 0;
}

static int posix_ftruncate(const IoOps *self, int fd, off_t len)
{
	(void)self;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int posix_falloc(const IoOps *self, int fd, int mode, off_t offset, off_t len)
{
	(void)self;
	return fallocate(fd, mode, offset, len) < 0 ? -errno : 0;
}

static int posix_rename(const IoOps *self, const char *from, const char *to)
{
	(void)self;
	return rename(from, to) < 0 ? -errno : 0;
}

static int posix_unlink(const IoOps *self, const char *path)
{
	(void)self;
	return unlink(path) < 0 ? -errno : 0;
}

static int posix_close(const IoOps *self, int fd)
{
	(void)self;
	/* Linux releases the descriptor even when close() fails; never retry. */
	return close(fd) < 0 ? -errno : 0;
}

const IoOps io_posix = {
	.open = posix_open,
	.writev = posix_writev,
	.pwritev = posix_pwritev,
	.fsync = posix_fsync,
	.ftruncate = posix_ftruncate,
	.fallocate = posix_falloc,
	.rename = posix_rename,
	.unlink = posix_unlink,
	.close = posix_close,
	.state = NULL,
};

int io_writev_all(const IoOps *ops, int fd, struct iovec *iov, int iovcnt, size_t *ret_written)
{
	size_t total = 0;

	while (iovcnt > 0) {
		int chunk = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
		ssize_t n = ops->writev(ops, fd, iov, chunk);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			*ret_written = total;
			return (int)n;
		}
		if (n == 0) {
			*ret_written = total;
			return -EIO;
		}
		total += (size_t)n;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
		/* Skip empty entries so that a trailing zero-length iovec ends the loop. */
		while (iovcnt > 0 && iov->iov_len == 0) {
			iov++;
			iovcnt--;
		}
	}
	*ret_written = total;
	return 0;
}

int io_pwrite_all(const IoOps *ops, int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
		ssize_t n = ops->pwritev(ops, fd, &iov, 1, (off_t)off);

		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int io_pwritev_all(const IoOps *ops, int fd, const struct iovec *iov, int iovcnt, uint64_t off, size_t *ret_written)
{
	size_t total = 0;
	int r = 0;

	while (iovcnt > 0 && r == 0) {
		int chunk = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
		ssize_t n = ops->pwritev(ops, fd, iov, chunk, (off_t)(off + total));

		if (n == -EINTR)
			continue;
		if (n < 0) {
			r = (int)n;
			break;
		}
		/* What a short write left: the rest of each vector in turn. */
		for (; chunk > 0 && r == 0; iov++, iovcnt--, chunk--) {
			size_t done = (size_t)n < iov->iov_len ? (size_t)n : iov->iov_len;

			n -= (ssize_t)done;
			total += done;
			if (done < iov->iov_len) {
				r = io_pwrite_all(ops, fd, (const uint8_t *)iov->iov_base + done, iov->iov_len - done,
						  off + total);
				if (r == 0)
					total += iov->iov_len - done;
			}
		}
	}
	*ret_written = total;
	return r;
}

int io_fsync_parent_dir(const IoOps *ops, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd, r;

	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else {
		len = slash == path ? 1 : (size_t)(slash - path);
		if (len >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, len);
		dir[len] = '\0';
	}
	fd = ops->open(ops, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	r = ops->fsync(ops, fd);
	ops->close(ops, fd);
	return r;
}

int io_publish(const IoOps *ops, const char *path, struct iovec *iov, int iovcnt, mode_t mode, ErrBuf *err)
{
	char tmp[4096];
	uint32_t nonce;
	size_t written;
	int fd, rc;

	/* A fresh name of our own (O_EXCL): two writers of one path never share
	 * a temporary file, and a leftover never lends it its mode. */
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		return errbuf_errno(err, "getrandom");
	rc = snprintf(tmp, sizeof(tmp), "%s.%08x.tmp", path, nonce);
	if (rc < 0 || (size_t)rc >= sizeof(tmp))
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", path);
	fd = ops->open(ops, tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
	if (fd < 0)
		return errbuf_set(err, fd, "cannot create %s: %s", tmp, strerror(-fd));
	rc = io_writev_all(ops, fd, iov, iovcnt, &written);
	if (rc == 0)
		rc = ops->fsync(ops, fd);
	if (rc < 0) {
		errbuf_set(err, rc, "cannot write %s: %s", tmp, strerror(-rc));
		ops->close(ops, fd);
		goto fail;
	}
	rc = ops->close(ops, fd);
	if (rc == 0)
		rc = ops->rename(ops, tmp, path);
	if (rc == 0)
		rc = io_fsync_parent_dir(ops, path);
	if (rc < 0) {
		errbuf_set(err, rc, "cannot publish %s: %s", path, strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	ops->unlink(ops, tmp); /* -ENOENT once renamed: fine */
	return rc;
}
