/* SPDX-License-Identifier: MIT */
/*
 * file:// buckets: a directory below the configured root.
 *
 * Opening resolves the URI's path lexically ("." and ".." collapsed) and
 * refuses it unless it lies within the root (as configured, or as realpath()
 * gives it). The directories below the root are then created one at a time
 * (mode 0750), and after each step the path so far is resolved with
 * realpath() and must still lie within realpath(root): a symlink inside the
 * root that points outside is refused before anything is created beyond it.
 * (Whoever can write inside the root can race this; the root is the trust
 * boundary, not its contents.)
 *
 * Objects are plain files named by the object name (checked by bucket.c: no
 * '/', never starting with '.'). A put writes ".tmp-<name>-<random>" in the
 * same directory (O_EXCL), fsyncs it, renames it over the name and fsyncs the
 * directory, so a reader sees the old object or the whole new one, and a crash
 * leaves at most a dot-file that no valid object name can collide with.
 * Writes go through an IoOps table (io_posix; tests inject faults).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucket/bucket_int.h"

#define DIR_MODE 0750
#define OBJECT_MODE 0640
#define COPY_CHUNK (1u << 20)

typedef struct FileBucket {
	Bucket base;     /* first: a Bucket * is a FileBucket * */
	char *dir;       /* realpath of the bucket directory */
	const IoOps *io; /* writes, renames, unlinks, fsyncs */
} FileBucket;

static const BucketOps file_ops;

static FileBucket *fb_of(Bucket *b)
{
	return (FileBucket *)b;
}

/* ---- opening ---- */

/* Appends "/comp" to buf (holding len bytes). */
static int path_push(char *buf, size_t *len, size_t cap, const char *comp, size_t n)
{
	bool root = *len == 1 && buf[0] == '/';

	if (*len + (root ? 0 : 1) + n + 1 > cap)
		return -ENAMETOOLONG;
	if (!root)
		buf[(*len)++] = '/';
	memcpy(buf + *len, comp, n);
	*len += n;
	buf[*len] = '\0';
	return 0;
}

/* Drops the last component of an absolute path ("/" stays "/"). */
static void path_pop(char *buf, size_t *len)
{
	while (*len > 1 && buf[*len - 1] != '/')
		(*len)--;
	if (*len > 1)
		(*len)--;
	buf[*len] = '\0';
}

/* Lexical normal form of path (relative paths are taken from the working
 * directory): no "." or ".." components, no repeated or trailing '/'. */
static int path_normalize(const char *path, char *out, size_t cap)
{
	size_t len = 1;
	const char *p = path;

	if (cap < 2)
		return -ENAMETOOLONG;
	out[0] = '/';
	out[1] = '\0';
	if (path[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if (strlen(cwd) >= cap)
			return -ENAMETOOLONG;
		len = strlen(cwd);
		memcpy(out, cwd, len + 1);
	}
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		int r;

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			path_pop(out, &len);
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			r = path_push(out, &len, cap, p, n);
			if (r < 0)
				return r;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* If path is root or below it, the rest (without leading '/'), else NULL. */
static const char *path_below(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return path + 1;
	if (strncmp(path, root, n) != 0)
		return NULL;
	if (path[n] == '\0')
		return path + n;
	if (path[n] == '/')
		return path + n + 1;
	return NULL;
}

int bucket_file_open(const char *path, const BucketConfig *cfg, Bucket **ret, ErrBuf *err)
{
	char want[PATH_MAX], root_lex[PATH_MAX], cur[PATH_MAX];
	char *root_real = NULL, *resolved = NULL;
	const char *rest;
	FileBucket *fb;
	struct stat st;
	size_t len;
	int r;

	if (!cfg || !cfg->root)
		return errbuf_set(err, -EPERM, "destination_conf: file:// buckets are not enabled here");
	root_real = realpath(cfg->root, NULL);
	if (!root_real)
		return errbuf_errno(err, "bucket: the bucket root %s", cfg->root);
	if (path_normalize(path, want, sizeof(want)) < 0 || path_normalize(cfg->root, root_lex, sizeof(root_lex)) < 0) {
		r = errbuf_set(err, -ENAMETOOLONG, "destination_conf: path too long");
		goto out;
	}
	rest = path_below(want, root_lex);
	if (!rest)
		rest = path_below(want, root_real);
	if (!rest) {
		r = errbuf_set(err, -EPERM, "destination_conf: %s is outside the bucket root %s", want, root_real);
		goto out;
	}

	/* Walk down from the real root, creating and re-resolving each step. */
	len = strlen(root_real);
	if (len >= sizeof(cur)) {
		r = errbuf_set(err, -ENAMETOOLONG, "destination_conf: path too long");
		goto out;
	}
	memcpy(cur, root_real, len + 1);
	while (*rest) {
		const char *end = strchrnul(rest, '/');

		if (path_push(cur, &len, sizeof(cur), rest, (size_t)(end - rest)) < 0) {
			r = errbuf_set(err, -ENAMETOOLONG, "destination_conf: path too long");
			goto out;
		}
		if (mkdir(cur, DIR_MODE) < 0 && errno != EEXIST) {
			r = errbuf_errno(err, "bucket: creating %s", cur);
			goto out;
		}
		free(resolved);
		resolved = realpath(cur, NULL);
		if (!resolved) {
			r = errbuf_errno(err, "bucket: resolving %s", cur);
			goto out;
		}
		if (!path_below(resolved, root_real)) {
			r = errbuf_set(err, -EPERM, "destination_conf: %s leads outside the bucket root %s (symlink)",
				       want, root_real);
			goto out;
		}
		len = strlen(resolved);
		if (len >= sizeof(cur)) {
			r = errbuf_set(err, -ENAMETOOLONG, "destination_conf: path too long");
			goto out;
		}
		memcpy(cur, resolved, len + 1);
		rest = *end ? end + 1 : end;
	}
	if (stat(cur, &st) < 0) {
		r = errbuf_errno(err, "bucket: %s", cur);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		r = errbuf_set(err, -ENOTDIR, "destination_conf: %s is not a directory", want);
		goto out;
	}

	fb = calloc(1, sizeof(*fb));
	if (!fb || !(fb->dir = strdup(cur))) {
		free(fb);
		r = errbuf_set(err, -ENOMEM, "bucket: out of memory");
		goto out;
	}
	fb->base.ops = &file_ops;
	fb->io = &io_posix;
	*ret = &fb->base;
	r = 0;
out:
	free(resolved);
	free(root_real);
	return r;
}

void bucket_file_set_io(Bucket *b, const IoOps *io)
{
	if (b && b->ops == &file_ops)
		fb_of(b)->io = io;
}

static void file_free(Bucket *b)
{
	FileBucket *fb = fb_of(b);

	free(fb->dir);
	free(fb);
}

/* ---- objects ---- */

static int object_path(const FileBucket *fb, const char *name, char *out, size_t cap, ErrBuf *err)
{
	int n = snprintf(out, cap, "%s/%s", fb->dir, name);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "bucket: path of object %s too long", name);
	return 0;
}

/* Creates the temporary file of a put: ".tmp-<name>-<16 hex>" beside it. */
static int temp_create(const FileBucket *fb, const char *name, char *out, size_t cap, ErrBuf *err)
{
	uint8_t rnd[8];
	char hex[2 * sizeof(rnd) + 1];
	int fd, n;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errbuf_errno(err, "bucket: getrandom");
	for (size_t i = 0; i < sizeof(rnd); i++) {
		hex[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
	}
	hex[sizeof(hex) - 1] = '\0';
	n = snprintf(out, cap, "%s/.tmp-%s-%s", fb->dir, name, hex);
	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "bucket: path of object %s too long", name);
	fd = fb->io->open(fb->io, out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, OBJECT_MODE);
	if (fd < 0)
		return errbuf_set(err, fd, "bucket: creating %s: %s", out, strerror(-fd));
	return fd;
}

/* Makes a written temporary file the object: fsync, close, rename, fsync dir.
 * Closes fd in every case; the caller removes tmp on failure. */
static int temp_publish(const FileBucket *fb, int fd, const char *tmp, const char *name, ErrBuf *err)
{
	char final[PATH_MAX];
	int r;

	r = fb->io->fsync(fb->io, fd);
	if (r < 0) {
		fb->io->close(fb->io, fd);
		return errbuf_set(err, r, "bucket: fsync of object %s: %s", name, strerror(-r));
	}
	r = fb->io->close(fb->io, fd);
	if (r < 0)
		return errbuf_set(err, r, "bucket: closing object %s: %s", name, strerror(-r));
	r = object_path(fb, name, final, sizeof(final), err);
	if (r < 0)
		return r;
	r = fb->io->rename(fb->io, tmp, final);
	if (r < 0)
		return errbuf_set(err, r, "bucket: publishing object %s: %s", name, strerror(-r));
	/* Renamed: the object exists; a failed directory fsync only means the
	 * rename may not survive a power cut, and is reported as such. */
	r = io_fsync_parent_dir(fb->io, final);
	if (r < 0)
		return errbuf_set(err, r, "bucket: fsync of the directory of object %s: %s", name, strerror(-r));
	return 0;
}

static int file_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err)
{
	FileBucket *fb = fb_of(b);
	char tmp[PATH_MAX];
	struct iovec iov = {.iov_base = (void *)data, .iov_len = n};
	size_t written;
	int fd, r;

	fd = temp_create(fb, name, tmp, sizeof(tmp), err);
	if (fd < 0)
		return fd;
	r = io_writev_all(fb->io, fd, &iov, n ? 1 : 0, &written);
	if (r < 0) {
		fb->io->close(fb->io, fd);
		errbuf_set(err, r, "bucket: writing object %s: %s", name, strerror(-r));
		goto fail;
	}
	r = temp_publish(fb, fd, tmp, name, err);
	if (r < 0)
		goto fail;
	return 0;

fail:
	fb->io->unlink(fb->io, tmp); /* ENOENT once the rename happened: fine */
	return r;
}

/* Copies src to dst with plain reads and writes (when copy_file_range cannot:
 * another file system on old kernels, special files). */
static int copy_rw(const FileBucket *fb, int src, int dst)
{
	uint8_t *buf = malloc(COPY_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(src, buf, COPY_CHUNK);
		struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
		size_t written;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		r = io_writev_all(fb->io, dst, &iov, 1, &written);
		if (r < 0)
			break;
	}
	free(buf);
	return r;
}

/* copy_file_range from the current offsets to the end of src; falls back to
 * read/write when the kernel refuses before the first byte. */
static int copy_all(const FileBucket *fb, int src, int dst)
{
	bool copied = false;

	for (;;) {
		ssize_t n = copy_file_range(src, NULL, dst, NULL, COPY_CHUNK * 64, 0);

		if (n > 0) {
			copied = true;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (!copied && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
			return copy_rw(fb, src, dst);
		return -errno;
	}
}

static int file_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err)
{
	FileBucket *fb = fb_of(b);
	char tmp[PATH_MAX];
	struct stat st;
	int src, fd, r;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return errbuf_errno(err, "bucket: reading %s for object %s", path, name);
	if (fstat(src, &st) < 0) {
		r = errbuf_errno(err, "bucket: %s", path);
		close(src);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(src);
		return errbuf_set(err, -EINVAL, "bucket: %s is not a regular file", path);
	}
	fd = temp_create(fb, name, tmp, sizeof(tmp), err);
	if (fd < 0) {
		close(src);
		return fd;
	}
	r = copy_all(fb, src, fd);
	close(src);
	if (r < 0) {
		fb->io->close(fb->io, fd);
		errbuf_set(err, r, "bucket: copying %s to object %s: %s", path, name, strerror(-r));
		goto fail;
	}
	r = temp_publish(fb, fd, tmp, name, err);
	if (r < 0)
		goto fail;
	return 0;

fail:
	fb->io->unlink(fb->io, tmp);
	return r;
}

/* Opens an object for reading; a symlink planted in the bucket is refused. */
static int object_open(const FileBucket *fb, const char *name, struct stat *ret_st, ErrBuf *err)
{
	char path[PATH_MAX];
	int fd, r;

	r = object_path(fb, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return errbuf_set(err, -ENOENT, "bucket: no object %s", name);
		return errbuf_errno(err, "bucket: opening object %s", name);
	}
	if (fstat(fd, ret_st) < 0) {
		r = errbuf_errno(err, "bucket: object %s", name);
		close(fd);
		return r;
	}
	if (!S_ISREG(ret_st->st_mode)) {
		close(fd);
		return errbuf_set(err, -EINVAL, "bucket: object %s is not a regular file", name);
	}
	return fd;
}

static int file_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	FileBucket *fb = fb_of(b);
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap, n = 0, limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
	int fd, r;

	fd = object_open(fb, name, &st, err);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > max) {
		r = errbuf_set(err, -EFBIG, "bucket: object %s has %lld bytes, more than %zu", name,
			       (long long)st.st_size, max);
		goto out;
	}
	/* One byte more than the size, to notice a file that grew meanwhile. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		r = errbuf_set(err, -ENOMEM, "bucket: out of memory for object %s", name);
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf + n, cap - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = errbuf_errno(err, "bucket: reading object %s", name);
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n == cap) {
			size_t ncap = cap <= limit / 2 ? cap * 2 : limit;
			uint8_t *nb;

			if (n > max || ncap == cap) {
				r = errbuf_set(err, -EFBIG, "bucket: object %s has more than %zu bytes", name, max);
				goto out;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				r = errbuf_set(err, -ENOMEM, "bucket: out of memory for object %s", name);
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
	}
	*ret = buf;
	*ret_n = n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int file_remove(Bucket *b, const char *name, ErrBuf *err)
{
	FileBucket *fb = fb_of(b);
	char path[PATH_MAX];
	int r;

	r = object_path(fb, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	r = fb->io->unlink(fb->io, path);
	if (r == -ENOENT)
		return errbuf_set(err, r, "bucket: no object %s", name);
	if (r < 0)
		return errbuf_set(err, r, "bucket: removing object %s: %s", name, strerror(-r));
	r = io_fsync_parent_dir(fb->io, path);
	if (r < 0)
		return errbuf_set(err, r, "bucket: fsync of the directory of object %s: %s", name, strerror(-r));
	return 0;
}

/* ---- readers ---- */

typedef struct FileReader {
	BucketReader base; /* first */
	int fd;
} FileReader;

static ssize_t file_reader_pread(BucketReader *r, void *buf, size_t n, uint64_t off, ErrBuf *err)
{
	FileReader *fr = (FileReader *)r;
	size_t got = 0;

	while (got < n) {
		ssize_t k = pread(fr->fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errbuf_errno(err, "bucket: reading an object at %llu", (unsigned long long)(off + got));
		if (k == 0)
			break; /* shrank under us: a short read */
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static void file_reader_close(BucketReader *r)
{
	FileReader *fr = (FileReader *)r;

	close(fr->fd);
	free(fr);
}

static const BucketReaderOps file_reader_ops = {.pread = file_reader_pread, .close = file_reader_close};

static int file_reader_open(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err)
{
	FileReader *fr;
	struct stat st;
	int fd = object_open(fb_of(b), name, &st, err);

	if (fd < 0)
		return fd;
	fr = calloc(1, sizeof(*fr));
	if (!fr) {
		close(fd);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	fr->base = (BucketReader){.ops = &file_reader_ops, .size = (uint64_t)st.st_size};
	fr->fd = fd;
	*ret = &fr->base;
	return 0;
}

/* ---- uploads in parts: a temporary file, published at complete ---- */

typedef struct FileUpload {
	BucketUpload base; /* first */
	FileBucket *fb;
	char *name;
	char tmp[PATH_MAX];
	int fd;
	uint64_t end;      /* bytes written */
	uint64_t last_off; /* where the last part began (a retry rewrites it) */
} FileUpload;

static int file_upload_part(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err)
{
	FileUpload *fu = (FileUpload *)u;
	uint64_t off = part == u->parts ? fu->last_off : fu->end;
	size_t done = 0;

	while (done < n) {
		ssize_t k = pwrite(fu->fd, (const uint8_t *)data + done, n - done, (off_t)(off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errbuf_errno(err, "bucket: writing part %u of object %s", part, fu->name);
		done += (size_t)k;
	}
	if (ftruncate(fu->fd, (off_t)(off + n)) < 0)
		return errbuf_errno(err, "bucket: writing part %u of object %s", part, fu->name);
	fu->last_off = off;
	fu->end = off + n;
	return 0;
}

static int file_upload_complete(BucketUpload *u, unsigned parts, ErrBuf *err)
{
	FileUpload *fu = (FileUpload *)u;
	int r, fd = fu->fd;

	(void)parts;
	fu->fd = -1;
	r = temp_publish(fu->fb, fd, fu->tmp, fu->name, err);
	if (r < 0)
		fu->fb->io->unlink(fu->fb->io, fu->tmp);
	return r;
}

static int file_upload_abort(BucketUpload *u, ErrBuf *err)
{
	FileUpload *fu = (FileUpload *)u;
	int r;

	if (fu->fd >= 0)
		fu->fb->io->close(fu->fb->io, fu->fd);
	fu->fd = -1;
	r = fu->fb->io->unlink(fu->fb->io, fu->tmp);
	if (r < 0 && r != -ENOENT)
		return errbuf_set(err, r, "bucket: removing %s: %s", fu->tmp, strerror(-r));
	return 0;
}

static void file_upload_free(BucketUpload *u)
{
	FileUpload *fu = (FileUpload *)u;

	if (fu->fd >= 0)
		fu->fb->io->close(fu->fb->io, fu->fd);
	free(fu->name);
	free(u->id);
	free(fu);
}

static const BucketUploadOps file_upload_ops = {
	.part = file_upload_part,
	.complete = file_upload_complete,
	.abort = file_upload_abort,
	.free = file_upload_free,
};

static int file_upload_begin(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err)
{
	FileUpload *fu = calloc(1, sizeof(*fu));
	const char *base;
	int fd;

	if (!fu)
		return errbuf_set(err, -ENOMEM, "out of memory");
	fu->fb = fb_of(b);
	fu->fd = -1;
	fd = temp_create(fu->fb, name, fu->tmp, sizeof(fu->tmp), err);
	if (fd < 0) {
		free(fu);
		return fd;
	}
	fu->fd = fd;
	base = strrchr(fu->tmp, '/');
	fu->name = strdup(name);
	fu->base.id = strdup(base ? base + 1 : fu->tmp);
	fu->base.ops = &file_upload_ops;
	if (!fu->name || !fu->base.id) {
		fu->fb->io->unlink(fu->fb->io, fu->tmp);
		file_upload_free(&fu->base);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	*ret = &fu->base;
	return 0;
}

static const BucketOps file_ops = {
	.kind = BUCKET_KIND_FILE,
	.reader_open = file_reader_open,
	.upload_begin = file_upload_begin,
	.put_bytes = file_put_bytes,
	.put_file = file_put_file,
	.get_bytes = file_get_bytes,
	.remove = file_remove,
	.free = file_free,
};
