/* SPDX-License-Identifier: MIT */
/*
 * Captures into files on this machine: a file output (Azure's filePath, a
 * classic capture in one file) and continuous mode (localPath: rotating
 * files). The controller names a file below JOB_FILE_ROOT (/var/captures);
 * this agent writes it below its own --local-root DIR (default
 * /var/captures), so /var/captures/a/ring1.cap is DIR/a/ring1.cap.
 *
 * Files (capture/rotate.h does the capture and the rotation):
 *   classic      DIR/…/x.cap
 *   continuous   DIR/…/x_1.cap, x_2.cap, … (the given name's base, _N, its
 *                extension); a ring (continuous true) keeps the newest
 *                file_count of them, removing the oldest as each new one is
 *                published; false keeps them all.
 * Each file is written as DIR/…/.<name>.<job id>.part and published when it
 * is finished: fsync, rename without replacing (a file of that name is never
 * overwritten: the capture fails instead, naming it), fsync of the directory.
 * A user reading the directory sees only whole files, so the last minutes of
 * a week-long session can be read while it runs. A capture that fails keeps
 * what it published and publishes the file it was writing if that holds a
 * packet (whole records only, as the writer guarantees); an empty one is
 * dropped. A capture that saw nothing publishes its one empty file.
 *
 * Safety: the path is checked again here (no empty, "." or ".." segment) and
 * every directory below DIR is created and entered with O_NOFOLLOW, so a
 * symbolic link under DIR cannot lead a capture elsewhere. Where the file
 * being written lives is kept in DATA/spool/<id>.outputs until the capture
 * ends: after a crash, start-up recovery removes the unpublished file.
 *
 * Failures say what failed (the report's "failure"): the files (file), the
 * capture itself (capture), or a start this agent cannot do (internal).
 *
 * A continuous capture with an object store (Azure's storagePath, with or
 * without localPath) publishes each finished file there too, at once, in
 * its own thread (ringup.h): the store holds the same files as the disk
 * (a ring's newest file_count). Without a file output the files are written
 * into the spool as DATA/spool/<id>_N.cap and removed once uploaded. The
 * share ends upload_failed when some file did not reach the store (its
 * report named each one as it failed, while the capture went on).
 *
 * A classic capture with a bucket too (Azure's filePath and storagePath) is
 * jobrun.c's: one capture into the spool, then its file here (outputs_file_*:
 * planned before the capture, so that a name that is taken fails it at once;
 * published from the spool copy after it, with the same .part, fsync and
 * rename), then the bucket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/capsetup.h"
#include "agent/ringup.h"
#include "common/io.h"
#include "common/log.h"

#define OUTPUTS_SPOOL_MIN (64ull << 20) /* files this large or larger use the writer's spool */

typedef struct Outputs {
	AgentJob *job;
	int dirfd;               /* the file's directory, entered without following links */
	char dir[PATH_MAX];      /* its path, for messages and recovery */
	char stem[NAME_MAX + 1]; /* the given name without its extension: "ring1" */
	char ext[NAME_MAX + 1];  /* its extension with the dot: ".cap" */
	bool rotating;           /* continuous: stem_N.ext; else stem.ext */
	bool ring;               /* keep only the newest keep files */
	uint32_t keep;
	char part[NAME_MAX + 1];   /* the file being written */
	PartFailure failure;       /* what failed, for the report */
	const AgentOutput *bucket; /* continuous: the object store its files go to too, or NULL */
	bool spooled;              /* continuous, no file output: the files are in the spool */
	char base[NAME_MAX + 1];   /* stem and ext: the name the files are numbered from */
	RingUp *up;                /* with bucket: the uploads */
} Outputs;

bool outputs_local(const AgentJobSpec *spec)
{
	bool file = false;

	if (spec->continuous.on)
		return true;
	for (size_t i = 0; i < spec->n_outputs; i++) {
		if (spec->outputs[i].kind == JOB_OUTPUT_BUCKET)
			return false; /* jobrun.c's, with its file if any */
		file = true;
	}
	return file;
}

/* File index's published name into out: stem.ext, or stem_index.ext. */
static int final_name(const Outputs *o, uint64_t index, char *out, size_t cap)
{
	int n = o->rotating ? snprintf(out, cap, "%s_%llu%s", o->stem, (unsigned long long)index, o->ext)
			    : snprintf(out, cap, "%s%s", o->stem, o->ext);

	return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

static int fail(Outputs *o, PartFailure f, ErrBuf *err, int r, const char *fmt, ...) PCAPD_PRINTF(5, 6);

static int fail(Outputs *o, PartFailure f, ErrBuf *err, int r, const char *fmt, ...)
{
	va_list ap;

	o->failure = f;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return r < 0 ? r : -EIO;
}

/* A continuous capture into an object store alone: its files are written
 * into the spool, DATA/spool/<id>_N.cap, until they are uploaded. */
static int plan_spool(Outputs *o, ErrBuf *err)
{
	const char *id = o->job->spec.id;
	char path[PATH_MAX], *slash;

	if (jobstore_spool_path(o->job->agent->store, id, path, sizeof(path)) < 0 || !(slash = strrchr(path, '/')))
		return fail(o, PART_FAIL_INTERNAL, err, -ENAMETOOLONG, "spool path too long");
	*slash = '\0';
	snprintf(o->dir, sizeof(o->dir), "%s", path);
	snprintf(o->stem, sizeof(o->stem), "%s", id);
	snprintf(o->ext, sizeof(o->ext), ".cap");
	snprintf(o->base, sizeof(o->base), "%s.cap", id);
	o->spooled = true;
	o->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0)
		return fail(o, PART_FAIL_INTERNAL, err, -errno, "%s: %s", o->dir, strerror(errno));
	return 0;
}

/* The one file output of the start, its name split, its directory entered
 * (created as needed). beside_bucket: the start's bucket is jobrun.c's. */
static int plan(Outputs *o, const AgentConfig *cfg, const AgentJobSpec *spec, bool beside_bucket, ErrBuf *err)
{
	static const char root[] = JOB_FILE_ROOT "/";
	const char *local = cfg->local_root ? cfg->local_root : JOB_FILE_ROOT;
	const AgentOutput *file = NULL;
	const char *rel, *base, *dot;
	char path[NAME_MAX + 1];
	size_t dl;
	int fd, r;

	for (size_t i = 0; i < spec->n_outputs; i++) {
		const AgentOutput *out = &spec->outputs[i];

		if (out->kind != JOB_OUTPUT_FILE && beside_bucket)
			continue;
		if (out->kind != JOB_OUTPUT_FILE && !o->bucket && strncmp(out->target, "file://", 7) != 0) {
			o->bucket = out; /* each file goes up as it is finished (ringup.h) */
			continue;
		}
		if (out->kind != JOB_OUTPUT_FILE)
			return fail(o, PART_FAIL_INTERNAL, err, -EOPNOTSUPP,
				    "outputs[%zu]: a continuous capture publishes its files to one object store "
				    "(not a file:// bucket) and at most one file here",
				    i);
		if (file)
			return fail(o, PART_FAIL_INTERNAL, err, -EOPNOTSUPP,
				    "outputs[%zu]: this agent writes a capture to one file here, not several", i);
		file = out;
	}
	o->rotating = spec->continuous.on;
	o->ring = spec->continuous.on && spec->continuous.ring;
	o->keep = spec->continuous.file_count;
	if (o->ring && o->keep == 0)
		return fail(o, PART_FAIL_INTERNAL, err, -EINVAL, "continuous.file_count: a ring keeps 1 file or more");
	if (!file && o->bucket)
		return plan_spool(o, err);
	if (!file)
		return fail(o, PART_FAIL_INTERNAL, err, -EOPNOTSUPP,
			    "outputs: a continuous capture needs a file on this machine or an object store");
	if (strncmp(file->target, root, sizeof(root) - 1) != 0)
		return fail(o, PART_FAIL_FILE, err, -EINVAL, "%.200s: not below " JOB_FILE_ROOT, file->target);
	rel = file->target + sizeof(root) - 1;
	base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
		return fail(o, PART_FAIL_FILE, err, -EINVAL, "%.200s: not a file's name", file->target);
	dot = strrchr(base, '.');
	if (!dot || dot == base)
		dot = base + strlen(base);
	if (strlen(base) > NAME_MAX - 64 || (size_t)(dot - base) >= sizeof(o->stem))
		return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%.200s: the file's name is too long", file->target);
	snprintf(o->stem, sizeof(o->stem), "%.*s", (int)(dot - base), base);
	snprintf(o->ext, sizeof(o->ext), "%s", dot);
	snprintf(o->base, sizeof(o->base), "%s", base);

	/* The local root (made if missing), then each directory below it. */
	fd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && mkdir(local, 0750) == 0)
		fd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(o, PART_FAIL_FILE, err, -errno, "%s (--local-root for %s): %s", local, JOB_FILE_ROOT,
			    strerror(errno));
	snprintf(o->dir, sizeof(o->dir), "%s", local);
	for (const char *p = rel; p < base;) {
		const char *slash = strchr(p, '/');
		size_t len = (size_t)(slash - p);
		int next;

		if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && !strncmp(p, "..", 2))) {
			close(fd);
			return fail(o, PART_FAIL_FILE, err, -EINVAL,
				    "%.200s: empty, '.' and '..' segments are not "
				    "allowed",
				    file->target);
		}
		snprintf(path, sizeof(path), "%.*s", (int)len, p);
		if (mkdirat(fd, path, 0750) < 0 && errno != EEXIST)
			r = -errno;
		else
			r = 0;
		next = r < 0 ? -1 : openat(fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			r = r < 0 ? r : -errno;
			close(fd);
			return fail(o, PART_FAIL_FILE, err, r, "%s/%s: %s", o->dir, path, strerror(-r));
		}
		close(fd);
		fd = next;
		dl = strlen(o->dir);
		if (dl + 1 + len >= sizeof(o->dir)) {
			close(fd);
			return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%.200s: path too long", file->target);
		}
		o->dir[dl] = '/';
		memcpy(o->dir + dl + 1, path, len + 1);
		p = slash + 1;
	}
	o->dirfd = fd;
	return 0;
}

/* The first file's name must be free: a capture never overwrites a file. */
static int check_free(Outputs *o, ErrBuf *err)
{
	char name[NAME_MAX + 1];
	struct stat st;

	if (final_name(o, 1, name, sizeof(name)) < 0)
		return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%s: file name too long", o->dir);
	if (fstatat(o->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return fail(o, PART_FAIL_FILE, err, -EEXIST,
			    "%s/%s exists already; a capture never replaces a file (remove it or choose another "
			    "name)",
			    o->dir, name);
	return 0;
}

/* DATA/spool/<id>.outputs: the directory of the file being written. */
static int remember(Outputs *o, ErrBuf *err)
{
	Agent *a = o->job->agent;
	char path[PATH_MAX];
	struct iovec iov[2] = {{o->dir, strlen(o->dir)}, {(void *)"\n", 1}};
	int r;

	if (jobstore_outputs_path(a->store, o->job->spec.id, path, sizeof(path)) < 0)
		return fail(o, PART_FAIL_INTERNAL, err, -ENAMETOOLONG, "spool path too long");
	r = io_publish(&io_posix, path, iov, 2, 0640, err);
	if (r < 0)
		o->failure = PART_FAIL_INTERNAL;
	return r;
}

static void forget(Outputs *o)
{
	char path[PATH_MAX];

	if (jobstore_outputs_path(o->job->agent->store, o->job->spec.id, path, sizeof(path)) == 0)
		unlink(path);
}

/* ---- the files (CapRotateOps) ---- */

static int file_open(void *ctx, uint64_t index, int *ret_fd, ErrBuf *err)
{
	Outputs *o = ctx;
	char name[NAME_MAX + 1];
	int n, fd;

	if (final_name(o, index, name, sizeof(name)) < 0)
		return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%s: file name too long", o->dir);
	n = snprintf(o->part, sizeof(o->part), ".%s.%s.part", name, o->job->spec.id);
	if (n < 0 || (size_t)n >= sizeof(o->part))
		return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%s: file name too long", o->dir);
	fd = openat(o->dirfd, o->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return fail(o, PART_FAIL_FILE, err, -errno, "%s/%s: %s", o->dir, o->part, strerror(errno));
	*ret_fd = fd;
	return 0;
}

/* Publishes the finished file f (or drops it: empty and failed); a ring then
 * loses its oldest file. */
static int file_close(void *ctx, int fd, const CapRotateFile *f, ErrBuf *err)
{
	Outputs *o = ctx;
	char name[NAME_MAX + 1];
	bool drop = f->packets == 0 && (f->index > 1 || !f->complete);

	if (close(fd) < 0 && f->complete)
		return fail(o, PART_FAIL_FILE, err, -errno, "%s/%s: %s", o->dir, o->part, strerror(errno));
	if (drop) {
		unlinkat(o->dirfd, o->part, 0);
		return 0;
	}
	if (final_name(o, f->index, name, sizeof(name)) < 0)
		return fail(o, PART_FAIL_FILE, err, -ENAMETOOLONG, "%s: file name too long", o->dir);
	if (renameat2(o->dirfd, o->part, o->dirfd, name, RENAME_NOREPLACE) < 0) {
		int r = -errno;

		unlinkat(o->dirfd, o->part, 0);
		return fail(o, PART_FAIL_FILE, err, r, "%s/%s: %s%s", o->dir, name, strerror(-r),
			    r == -EEXIST ? " (a capture never replaces a file)" : "");
	}
	if (o->ring && f->index > o->keep) {
		char old[NAME_MAX + 1];

		if (final_name(o, f->index - o->keep, old, sizeof(old)) == 0 && unlinkat(o->dirfd, old, 0) < 0 &&
		    errno != ENOENT)
			log_warning("job %s: cannot remove %s/%s from the ring: %s", o->job->spec.id, o->dir, old,
				    strerror(errno));
	}
	if (fsync(o->dirfd) < 0)
		return fail(o, PART_FAIL_FILE, err, -errno, "%s: fsync: %s", o->dir, strerror(errno));
	if (o->up)
		ringup_add(o->up, f->index);
	return 0;
}

static const CapRotateOps file_ops = {.open = file_open, .close = file_close};

/* ---- the job ---- */

static void set_rot(AgentJob *job, CapRotate *rot, const CaptureStats *st, StopReason why)
{
	Agent *a = job->agent;

	pthread_mutex_lock(&a->lock);
	job->phase = JOB_PHASE_CAPTURING;
	job->rot = rot;
	job->rep.state = PART_RUNNING;
	if (st) {
		job->rep.packets = st->packets;
		job->rep.bytes = st->bytes;
		job->rep.drops = st->kernel_drops;
		job->rep.stop_reason = jobrun_stop_reason(why, job->stop);
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static void finish(AgentJob *job, PartFailure failure, const char *error)
{
	Agent *a = job->agent;

	pthread_mutex_lock(&a->lock);
	job->rep.failure = failure;
	pthread_mutex_unlock(&a->lock);
	jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, error);
}

static int capture(Outputs *o, CapSetup *setup, ErrBuf *err)
{
	AgentJob *job = o->job;
	CapRotateConfig rc = {0};
	StopReason why = STOP_REASON_ERROR;
	CaptureStats st = {0};
	CapRotate *rot = NULL;
	int r;

	o->failure = PART_FAIL_CAPTURE; /* until the files are being written */
	r = capsetup_init(job->agent->cfg, &job->spec, setup, err);
	if (r < 0)
		return r;
	rc.capture = setup->capture;
	rc.format = setup->format;
	rc.file_size = job->spec.continuous.on ? job->spec.continuous.file_size : 0;
	/* The writer's spool (a thread, 16 MiB of buffers, preallocation in
	 * 64 MiB steps) pays for itself on large files; a ring of small ones is
	 * written plainly. */
	rc.direct = rc.file_size == 0 || rc.file_size >= OUTPUTS_SPOOL_MIN;
	rc.ops = &file_ops;
	rc.ctx = o;
	r = caprot_open(&rc, &rot, err);
	if (r < 0)
		return r;
	set_rot(job, rot, NULL, STOP_REASON_NONE);
	/* "running" on disk, so that the next start reports the job failed if
	 * the agent dies now; after the sockets are bound. */
	jobrun_save_state(job);
	o->failure = PART_FAIL_NONE;
	r = caprot_run(rot, &job->stop, &why, err);
	caprot_stats(rot, &st, NULL);
	/* The files' own failures said so (fail()); the writer's are the files' too. */
	if (r < 0 && o->failure == PART_FAIL_NONE)
		o->failure = caprot_sink_failed(rot) ? PART_FAIL_FILE : PART_FAIL_CAPTURE;
	set_rot(job, NULL, &st, why);
	caprot_free(rot);
	return r < 0 ? r : (int)why;
}

/* The capture is over; what it published still goes up (the report says
 * "uploading" meanwhile). The number of files that did not, with up_err. */
static int finish_uploads(Outputs *o, ErrBuf *up_err)
{
	Agent *a = o->job->agent;

	if (!o->up)
		return 0;
	pthread_mutex_lock(&a->lock);
	o->job->phase = JOB_PHASE_UPLOADING;
	o->job->rep.state = PART_UPLOADING;
	a->report_due = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return ringup_finish(o->up, up_err);
}

void *outputs_main(void *arg)
{
	AgentJob *job = arg;
	Outputs o = {.job = job, .dirfd = -1};
	ErrBuf err = {{0}}, up_err = {{0}};
	CapSetup *setup = NULL;
	int r, failed;

	if (job->spec.error[0]) {
		finish(job, PART_FAIL_INTERNAL, job->spec.error);
		return NULL;
	}
	r = plan(&o, job->agent->cfg, &job->spec, false, &err);
	if (r == 0)
		r = check_free(&o, &err);
	if (r == 0)
		r = remember(&o, &err);
	if (r == 0 && o.bucket) {
		RingUpConfig uc = {.job = job,
				   .out = o.bucket,
				   .dirfd = o.dirfd,
				   .dir = o.dir,
				   .base = o.base,
				   .ring = o.ring,
				   .keep = o.keep,
				   .spooled = o.spooled};

		r = ringup_start(&uc, &o.up, &err);
		if (r < 0)
			o.failure = PART_FAIL_INTERNAL;
	}
	if (r == 0) {
		setup = calloc(1, sizeof(*setup));
		r = setup ? capture(&o, setup, &err) : fail(&o, PART_FAIL_INTERNAL, &err, -ENOMEM, "out of memory");
	}
	failed = finish_uploads(&o, &up_err);
	if (r < 0)
		finish(job, o.failure ? o.failure : PART_FAIL_INTERNAL, err.msg);
	else if (failed > 0)
		/* The capture is whole; some files are only on this machine. */
		jobrun_finish(job, PART_UPLOAD_FAILED, jobrun_stop_reason((StopReason)r, job->stop), up_err.msg);
	else
		jobrun_finish(job, PART_DONE, jobrun_stop_reason((StopReason)r, job->stop), NULL);
	forget(&o);
	capsetup_done(setup);
	free(setup);
	if (o.dirfd >= 0)
		close(o.dirfd);
	return NULL;
}

/* ---- a file beside a bucket (jobrun.c) ---- */

int outputs_file_plan(AgentJob *job, Outputs **ret, PartFailure *ret_failure, ErrBuf *err)
{
	Outputs *o;
	bool any = false;
	int r;

	*ret = NULL;
	for (size_t i = 0; i < job->spec.n_outputs; i++)
		any = any || job->spec.outputs[i].kind == JOB_OUTPUT_FILE;
	if (!any)
		return 0;
	o = calloc(1, sizeof(*o));
	if (!o) {
		*ret_failure = PART_FAIL_INTERNAL;
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	o->job = job;
	o->dirfd = -1;
	r = plan(o, job->agent->cfg, &job->spec, true, err);
	if (r == 0)
		r = check_free(o, err);
	if (r == 0)
		r = remember(o, err);
	if (r < 0) {
		*ret_failure = o->failure ? o->failure : PART_FAIL_INTERNAL;
		outputs_file_free(o);
		return r;
	}
	*ret = o;
	return 0;
}

/* Copies the open file in to out (copy_file_range, else read and write). */
static int copy_fd(int in, int out)
{
	static const size_t chunk = 1u << 20;
	char *buf = NULL;
	ssize_t n;

	for (;;) {
		n = copy_file_range(in, NULL, out, NULL, chunk, 0);
		if (n == 0)
			return 0;
		if (n < 0)
			break;
	}
	if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	while ((n = read(in, buf, chunk)) > 0) {
		size_t done = 0;

		while (done < (size_t)n) {
			ssize_t w = write(out, buf + done, (size_t)n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				free(buf);
				return -errno;
			}
			done += (size_t)w;
		}
	}
	free(buf);
	return n < 0 ? -errno : 0;
}

int outputs_file_publish(Outputs *o, const char *spool, PartFailure *ret_failure, ErrBuf *err)
{
	CapRotateFile f = {.index = 1, .complete = true, .packets = 1}; /* the one file, kept even empty */
	int in, out = -1, r;

	in = open(spool, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(o, PART_FAIL_FILE, err, -errno, "%s: %s", spool, strerror(errno));
	r = file_open(o, 1, &out, err);
	if (r == 0) {
		r = copy_fd(in, out);
		if (r == 0 && fsync(out) < 0)
			r = -errno;
		if (r < 0) {
			fail(o, PART_FAIL_FILE, err, r, "%s/%s: %s", o->dir, o->part, strerror(-r));
			close(out);
			unlinkat(o->dirfd, o->part, 0);
		} else {
			r = file_close(o, out, &f, err);
		}
	}
	close(in);
	if (r < 0)
		*ret_failure = o->failure ? o->failure : PART_FAIL_FILE;
	return r;
}

void outputs_file_free(Outputs *o)
{
	if (!o)
		return;
	forget(o);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o);
}

void outputs_recover(Agent *a, const char *id)
{
	char path[PATH_MAX], dir[PATH_MAX], suffix[JOB_ID_LEN + 8];
	size_t n, sl;
	FILE *f;
	DIR *d;
	struct dirent *e;
	int dfd;

	if (jobstore_outputs_path(a->store, id, path, sizeof(path)) < 0)
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(dir, sizeof(dir), f)) {
		fclose(f);
		return;
	}
	fclose(f);
	n = strlen(dir);
	if (n && dir[n - 1] == '\n')
		dir[--n] = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	snprintf(suffix, sizeof(suffix), ".%s.part", id);
	sl = strlen(suffix);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' && len > sl && strcmp(e->d_name + len - sl, suffix) == 0) {
			if (unlinkat(dirfd(d), e->d_name, 0) == 0)
				log_info("job %s: removed %s/%s, which the capture had not finished", id, dir,
					 e->d_name);
		}
	}
	closedir(d);
}
