/* SPDX-License-Identifier: MIT */
/* The agent's job records and spool files; layout and recovery in jobstore.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/jobstore.h"

#define RECORD_MAX (64u * 1024) /* bytes of one job record; ours are under 1 KiB */
#define DIR_MODE 0700

struct JobStore {
	const IoOps *io;
	char jobs[PATH_MAX];  /* DATA/jobs */
	char spool[PATH_MAX]; /* DATA/spool */
};

static int path_join(char *out, size_t cap, const char *dir, const char *name, const char *suffix)
{
	int n = snprintf(out, cap, "%s/%s%s", dir, name, suffix);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* mkdir -p: creates path and its missing parents. */
static int mkdir_p(const char *path, ErrBuf *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return errbuf_set(err, -ENAMETOOLONG, "data directory '%s': empty or too long", path);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, DIR_MODE) < 0 && errno != EEXIST)
			return errbuf_errno(err, "cannot create %s", buf);
		buf[i] = path[i];
	}
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Calls fn for every regular entry of dir (not "." and ".."). */
static int for_each_file(const char *dir, int (*fn)(void *ctx, const char *dir, const char *name), void *ctx,
			 ErrBuf *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errbuf_errno(err, "cannot read %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = fn(ctx, dir, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		errbuf_set(err, r, "%s: %s", dir, strerror(-r));
	return r;
}

static int unlink_one(void *ctx, const char *dir, const char *name)
{
	const IoOps *io = ctx;
	char path[PATH_MAX];
	int r;

	if (path_join(path, sizeof(path), dir, name, "") < 0)
		return 0; /* cannot be ours */
	r = io->unlink(io, path);
	return r == -ENOENT ? 0 : r;
}

static int unlink_tmp(void *ctx, const char *dir, const char *name)
{
	return has_suffix(name, ".tmp") ? unlink_one(ctx, dir, name) : 0;
}

int jobstore_open(const char *data_dir, const IoOps *io, JobStore **ret, ErrBuf *err)
{
	JobStore *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	s->io = io ? io : &io_posix;
	if (path_join(s->jobs, sizeof(s->jobs), data_dir, "jobs", "") < 0 ||
	    path_join(s->spool, sizeof(s->spool), data_dir, "spool", "") < 0) {
		r = errbuf_set(err, -ENAMETOOLONG, "data directory '%s': path too long", data_dir);
		goto fail;
	}
	r = mkdir_p(s->jobs, err);
	if (r < 0)
		goto fail;
	r = mkdir_p(s->spool, err);
	if (r < 0)
		goto fail;
	r = for_each_file(s->jobs, unlink_tmp, (void *)s->io, err);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	free(s);
	return r;
}

void jobstore_free(JobStore *s)
{
	free(s);
}

int jobstore_save(JobStore *s, const AgentJobReport *r, ErrBuf *err)
{
	char path[PATH_MAX];
	struct iovec iov[2];
	char *text = NULL;
	int rc;

	if (path_join(path, sizeof(path), s->jobs, r->id, ".json") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->jobs);
	rc = agentproto_job_to_json(r, &text, err);
	if (rc < 0)
		return rc;
	iov[0] = (struct iovec){.iov_base = text, .iov_len = strlen(text)};
	iov[1] = (struct iovec){.iov_base = (void *)"\n", .iov_len = 1};
	rc = io_publish(s->io, path, iov, 2, 0600, err);
	free(text);
	return rc;
}

int jobstore_spool_path(const JobStore *s, const char *id, char *ret, size_t cap)
{
	return path_join(ret, cap, s->spool, id, ".pcap");
}

int jobstore_outputs_path(const JobStore *s, const char *id, char *ret, size_t cap)
{
	return path_join(ret, cap, s->spool, id, ".outputs");
}

int jobstore_sample_path(const JobStore *s, const char *id, char *ret, size_t cap)
{
	return path_join(ret, cap, s->spool, id, ".sample.pcap");
}

int jobstore_remove_spool(JobStore *s, const char *id, ErrBuf *err)
{
	char path[PATH_MAX];
	int r;

	if (jobstore_spool_path(s, id, path, sizeof(path)) < 0)
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->spool);
	r = s->io->unlink(s->io, path);
	if (r < 0 && r != -ENOENT)
		return errbuf_set(err, r, "cannot remove %s: %s", path, strerror(-r));
	return 0;
}

int jobstore_remove(JobStore *s, const char *id, ErrBuf *err)
{
	int r = jobstore_remove_spool(s, id, err);

	return r < 0 ? r : jobstore_remove_record(s, id, err);
}

int jobstore_remove_record(JobStore *s, const char *id, ErrBuf *err)
{
	char path[PATH_MAX];
	int r;

	if (path_join(path, sizeof(path), s->jobs, id, ".json") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->jobs);
	r = s->io->unlink(s->io, path);
	if (r < 0 && r != -ENOENT)
		return errbuf_set(err, r, "cannot remove %s: %s", path, strerror(-r));
	return 0;
}

typedef struct LoadCtx {
	AgentJobReport *v;
	size_t n, cap, bad;
	ErrBuf *err;
} LoadCtx;

static int read_small(const char *path, char *buf, size_t cap, size_t *ret_n)
{
	size_t n = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (n < cap) {
		ssize_t k = read(fd, buf + n, cap - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	if (r == 0 && n == cap)
		r = -EFBIG;
	if (r == 0)
		*ret_n = n;
	return r;
}

static int load_one(void *ctx, const char *dir, const char *name)
{
	LoadCtx *l = ctx;
	char path[PATH_MAX], *buf;
	AgentJobReport rep;
	ErrBuf e = {{0}};
	size_t n = 0;
	int r;

	if (!has_suffix(name, ".json") || path_join(path, sizeof(path), dir, name, "") < 0)
		return 0;
	buf = malloc(RECORD_MAX);
	if (!buf)
		return -ENOMEM;
	r = read_small(path, buf, RECORD_MAX, &n);
	if (r == 0)
		r = agentproto_job_from_json(buf, n, &rep, &e);
	else
		errbuf_set(&e, r, "%s", strerror(-r));
	free(buf);
	/* The file name is the id: a record that claims another is not ours. */
	if (r == 0 && (strlen(name) != JOB_ID_LEN + 5 || strncmp(name, rep.id, JOB_ID_LEN) != 0))
		r = errbuf_set(&e, -EINVAL, "id %s does not match the file name", rep.id);
	if (r < 0) {
		if (l->bad++ == 0)
			errbuf_set(l->err, r, "%s: %s", path, e.msg);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		AgentJobReport *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = rep;
	return 0;
}

int jobstore_load(JobStore *s, AgentJobReport **ret, size_t *ret_n, size_t *ret_bad, ErrBuf *err)
{
	LoadCtx l = {.err = err};
	int r;

	r = for_each_file(s->jobs, load_one, &l, err);
	if (r < 0) {
		free(l.v);
		return r;
	}
	*ret = l.v;
	*ret_n = l.n;
	*ret_bad = l.bad;
	return 0;
}

int jobstore_clear_spool(JobStore *s, ErrBuf *err)
{
	return for_each_file(s->spool, unlink_one, (void *)s->io, err);
}
