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

#include <jansson.h>

#include "agent/jobstore.h"

#define RECORD_MAX (64u * 1024) /* bytes of one job record; ours are under 1 KiB */
#define UPLOAD_MAX (1u << 20)   /* bytes of an upload's progress: 10000 ETags of < 100 bytes */
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
	static const char *const suffixes[] = {".upload", ".json"}; /* the record last */
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (path_join(path, sizeof(path), s->jobs, id, suffixes[i]) < 0)
			return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->jobs);
		r = s->io->unlink(s->io, path);
		if (r < 0 && r != -ENOENT)
			return errbuf_set(err, r, "cannot remove %s: %s", path, strerror(-r));
	}
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

typedef struct ClearCtx {
	const IoOps *io;
	const char *const *keep;
	size_t n_keep;
} ClearCtx;

static int clear_one(void *ctx, const char *dir, const char *name)
{
	ClearCtx *c = ctx;

	for (size_t i = 0; i < c->n_keep; i++) {
		size_t n = strlen(c->keep[i]);

		if (strncmp(name, c->keep[i], n) == 0 && name[n] == '.')
			return 0;
	}
	return unlink_one((void *)c->io, dir, name);
}

int jobstore_clear_spool(JobStore *s, const char *const *keep, size_t n_keep, ErrBuf *err)
{
	ClearCtx c = {.io = s->io, .keep = keep, .n_keep = n_keep};

	return for_each_file(s->spool, clear_one, &c, err);
}

int jobstore_save_upload(JobStore *s, const char *id, const JobUpload *u, ErrBuf *err)
{
	char path[PATH_MAX], *text = NULL;
	json_t *o, *etags;
	struct iovec iov;
	int r = 0;

	if (path_join(path, sizeof(path), s->jobs, id, ".upload") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->jobs);
	o = json_object();
	etags = json_array();
	if (!o || !etags || json_object_set_new(o, "attempt", json_integer(u->attempt)) < 0 ||
	    json_object_set_new(o, "target", json_string(u->target ? u->target : "")) < 0 ||
	    json_object_set_new(o, "object", json_string(u->object)) < 0 ||
	    json_object_set_new(o, "upload_id", json_string(u->upload_id)) < 0 ||
	    json_object_set_new(o, "sent", json_integer(u->sent)) < 0)
		r = -ENOMEM;
	for (uint32_t i = 0; r == 0 && u->etags && i < u->sent; i++)
		if (json_array_append_new(etags, json_string(u->etags[i] ? u->etags[i] : "")) < 0)
			r = -ENOMEM;
	if (r == 0 && json_object_set(o, "etags", etags) < 0)
		r = -ENOMEM;
	if (r == 0 && !(text = json_dumps(o, JSON_COMPACT)))
		r = -ENOMEM;
	json_decref(etags);
	json_decref(o);
	if (r < 0)
		return errbuf_set(err, r, "job %s: cannot encode its upload's progress", id);
	iov = (struct iovec){.iov_base = text, .iov_len = strlen(text)};
	r = io_publish(s->io, path, &iov, 1, 0600, err);
	free(text);
	return r;
}

void jobstore_upload_done(JobUpload *u)
{
	if (!u)
		return;
	for (uint32_t i = 0; u->etags && i < u->sent; i++)
		free(u->etags[i]);
	free(u->etags);
	free(u->target);
	*u = (JobUpload){0};
}

/* The string member key of o into out[cap]: -EINVAL naming it. */
static int member_text(json_t *o, const char *key, char *out, size_t cap, const char *path, ErrBuf *err)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (!v || strlen(v) >= cap)
		return errbuf_set(err, -EINVAL, "%s: %s: missing, not a string or too long", path, key);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

int jobstore_load_upload(JobStore *s, const char *id, JobUpload *ret, ErrBuf *err)
{
	char path[PATH_MAX], *buf;
	JobUpload u = {0};
	json_t *o = NULL, *etags;
	json_error_t je;
	json_int_t attempt, sent;
	size_t n = 0;
	int r;

	if (path_join(path, sizeof(path), s->jobs, id, ".upload") < 0)
		return errbuf_set(err, -ENAMETOOLONG, "%s: path too long", s->jobs);
	buf = malloc(UPLOAD_MAX);
	if (!buf)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = read_small(path, buf, UPLOAD_MAX, &n);
	if (r == -ENOENT) {
		free(buf);
		return r; /* none: not an error worth words */
	}
	if (r < 0)
		r = errbuf_set(err, r, "%s: %s", path, strerror(-r));
	if (r == 0 && !(o = json_loadb(buf, n, 0, &je)))
		r = errbuf_set(err, -EINVAL, "%s: %s", path, je.text);
	free(buf);
	if (r < 0)
		return r;
	attempt = json_integer_value(json_object_get(o, "attempt"));
	sent = json_integer_value(json_object_get(o, "sent"));
	etags = json_object_get(o, "etags");
	if (!json_is_integer(json_object_get(o, "attempt")) || attempt < 0 || attempt > UINT32_MAX)
		r = errbuf_set(err, -EINVAL, "%s: attempt: not a count", path);
	else if (!json_is_integer(json_object_get(o, "sent")) || sent < 0 || sent > 10000)
		r = errbuf_set(err, -EINVAL, "%s: sent: not a count of parts (0..10000)", path);
	else if (!json_is_array(etags) || (json_array_size(etags) != 0 && json_array_size(etags) != (size_t)sent))
		r = errbuf_set(err, -EINVAL, "%s: etags: not one per part sent", path);
	if (r == 0)
		r = member_text(o, "object", u.object, sizeof(u.object), path, err);
	if (r == 0)
		r = member_text(o, "upload_id", u.upload_id, sizeof(u.upload_id), path, err);
	if (r == 0 && !json_is_string(json_object_get(o, "target")))
		r = errbuf_set(err, -EINVAL, "%s: target: missing or not a string", path);
	if (r == 0 && !(u.target = strdup(json_string_value(json_object_get(o, "target")))))
		r = errbuf_set(err, -ENOMEM, "out of memory");
	if (r == 0) {
		u.attempt = (uint32_t)attempt;
		u.sent = (uint32_t)sent;
	}
	if (r == 0 && json_array_size(etags) > 0) {
		u.etags = calloc(u.sent, sizeof(*u.etags));
		if (!u.etags)
			r = errbuf_set(err, -ENOMEM, "out of memory");
		for (uint32_t i = 0; r == 0 && i < u.sent; i++) {
			const char *e = json_string_value(json_array_get(etags, i));

			if (!e || !e[0] || strlen(e) > 256)
				r = errbuf_set(err, -EINVAL, "%s: etags[%u]: not an ETag", path, i);
			else if (!(u.etags[i] = strdup(e)))
				r = errbuf_set(err, -ENOMEM, "out of memory");
		}
	}
	json_decref(o);
	if (r < 0) {
		jobstore_upload_done(&u);
		return r;
	}
	*ret = u;
	return 0;
}
