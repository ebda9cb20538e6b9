/* SPDX-License-Identifier: MIT */
/*
 * Downloads, streamed. A full capture: Cloudflare only points at the bucket;
 * pcapd also serves one Wireshark-ready file, the agents' objects merged by
 * time. A sample: the agents' answers merged by time, the newest
 * packet_limit of them kept. Nothing is cached: every download merges again,
 * straight from the bucket, and the first byte goes out as soon as every
 * input's first record is in.
 *
 * Threads of one download (none of them an HTTP worker):
 *
 *   feeder (one per object)  ranged GETs of the object (bucket_reader_copy,
 *                            FEED_RANGE bytes each) written into a pipe
 *   merger                   pcapmerge over the pipes' read ends
 *                            (/dev/fd/N: the pcap reader reads pipes as
 *                            streams) into one more pipe
 *   main                     opens everything, tells the caller the
 *                            outcome (ready), then pumps that last pipe
 *                            into the caller's writer
 *
 * Memory is bounded by the number of inputs (a pipe, the reader's chunk and
 * curl's buffer each: about 2 MiB per object), never by their size; pipes
 * carry the back-pressure of a slow client all the way to the store.
 *
 * Errors the caller hears before any byte (ready): a part without its
 * object ("agent X: object … is not in …", 409), a store that cannot be read
 * (503), an object that is not a capture (409). After the first byte a
 * failure can only cut the stream (end(ctx, false)): a feeder's error is
 * seen by the pump, which stops at once rather than let the merge go on with
 * an input ended early.
 *
 * pcapng (on request): the annotated merge, every agent's interfaces named
 * AGENT or AGENT/IFACE, described with the capture's colo, filter and
 * snaplen, with the agent's counters as an Interface Statistics Block.
 *
 * Earlier versions kept merged files in DATA/downloads; the controller
 * removes that directory when it starts (service_downloads_clean).
 *
 * file:// objects are read like a store's, through the bucket's reader:
 * opened once without following a symlink, and that descriptor read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bucket/bucket_uri.h"
#include "controller/service-int.h"
#include "pcap/merge.h"
#include "pcap/writer.h"

#define FEED_RANGE (8ull << 20)   /* bytes per ranged GET */
#define PIPE_BYTES (1 << 20)      /* asked of each pipe (F_SETPIPE_SZ; best effort) */
#define PUMP_CHUNK (256u << 10)   /* what the pump moves at a time */
#define THREAD_STACK (256u << 10) /* feeders and the merger need little */
#define DOWNLOADS_MAX 8u          /* at once per controller */
#define DOWNLOAD_RETRY_S 5

/* What the pcapng says of one agent's file: its name, the capture's colo,
 * filter and snaplen, and the agent's counters (interface 0's statistics). */
typedef struct AgentNote {
	char desc[PCAPWR_MAX_IFDESC];
	PcapIfStats stats;
} AgentNote;

typedef struct Feed {
	Download *d;
	const char *agent;  /* the part's agent (messages) */
	const char *object; /* its object */
	Bucket *bucket;     /* its own handle: a bucket is used by one thread */
	BucketReader *rd;
	int wfd;       /* the pipe's write end, the feeder's */
	int rfd;       /* its read end, until the merge has opened it */
	char path[32]; /* "/dev/fd/<rfd>" */
	pthread_t thread;
	bool started;
	int err; /* the feeder's result */
	ErrBuf msg;
} Feed;

struct Download {
	Service *svc;
	Job job;
	JobPart *parts;
	size_t n_parts;
	void (*ready)(void *ctx);
	void *ready_ctx;
	char label[BUCKET_URI_MAX + 1]; /* the bucket, REDACTED, for messages */
	bool pcapng;                    /* the annotated pcapng, else classic pcap where it can */

	Feed *feeds;
	size_t n_feeds;
	int *sample_fds; /* a sample's answers (service_sample_open), until the merge has opened them */
	size_t n_sample_fds;
	const char **inputs; /* what the merge opens */
	AgentNote *notes;    /* pcapng: what it says of each input */
	MergeInput *annotations;
	size_t n_inputs;
	PcapMerge *merge;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int outcome; /* after ready: 0 or the error's -errno */
	ApiError error;
	bool decided;  /* the caller chose: stream or release */
	bool released; /* the caller let go */
	int (*write)(void *ctx, const void *p, size_t n);
	void (*end)(void *ctx, bool ok);
	void *write_ctx;
	bool feed_failed; /* under lock: a feeder failed (the pump stops) */
	pthread_t thread;
};

/* ---- feeders ---- */

static int pipe_write(void *ctx, const void *p, size_t n)
{
	Feed *f = ctx;
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t k = write(f->wfd, b, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno; /* EPIPE: the merge stopped reading */
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static void *feed_main(void *arg)
{
	Feed *f = arg;
	uint64_t size = bucket_reader_size(f->rd), off = 0;
	int r = 0;

	while (r == 0 && off < size) {
		uint64_t n = size - off < FEED_RANGE ? size - off : FEED_RANGE;

		r = bucket_reader_copy(f->rd, off, n, pipe_write, f, &f->msg);
		off += n;
	}
	close(f->wfd);
	f->wfd = -1;
	f->err = r;
	if (r < 0 && r != -EPIPE) {
		pthread_mutex_lock(&f->d->lock);
		f->d->feed_failed = true;
		pthread_mutex_unlock(&f->d->lock);
	}
	return NULL;
}

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t at;
	sigset_t all, old;
	int r;

	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, THREAD_STACK);
	/* Signals stay with the daemon's own thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(t, &at, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	return r;
}

/* ---- opening ---- */

/* Sets the outcome from the error just filled in. */
static void failed(Download *d)
{
	d->outcome = apierror_errno(d->error.kind);
}

/* The part's object in the bucket, opened for reading, with its pipe and
 * feeder. */
static int open_feed(Download *d, Feed *f, const JobPart *p)
{
	const BucketConfig *cfg = service_buckets(d->svc);
	ErrBuf err = {{0}};
	int fds[2], r;

	f->d = d;
	f->agent = p->agent;
	f->object = p->object;
	f->wfd = f->rfd = -1;
	r = bucket_open(job_bucket(&d->job), cfg, &f->bucket, &err);
	if (r == 0)
		r = bucket_reader_open(f->bucket, p->object, &f->rd, &err);
	if (r == -ENOENT) {
		apierror_set(&d->error, API_ERR_CONFLICT, "id", "agent %s: its object %s is not in %s", p->agent,
			     p->object, d->label);
		failed(d);
		return -1;
	}
	if (r < 0) {
		apierror_set(&d->error, r == -ENOMEM ? API_ERR_INTERNAL : API_ERR_UNAVAILABLE, "id",
			     "agent %s: its object %s in %s cannot be read: %s", p->agent, p->object, d->label,
			     err.msg);
		failed(d);
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		apierror_set(&d->error, API_ERR_INTERNAL, NULL, "cannot make a pipe: %s", strerror(errno));
		failed(d);
		return -1;
	}
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* fewer wake-ups; the default works too */
	f->rfd = fds[0];
	f->wfd = fds[1];
	snprintf(f->path, sizeof(f->path), "/dev/fd/%d", f->rfd);
	return 0;
}

/* Which input a merge error is about, named by its agent. */
static void merge_fail(Download *d, int r, const ErrBuf *err)
{
	for (size_t i = 0; i < d->n_feeds; i++) {
		Feed *f = &d->feeds[i];

		if (f->err < 0 && f->err != -EPIPE) {
			apierror_set(&d->error, API_ERR_UNAVAILABLE, "id",
				     "agent %s: reading its object %s from %s: %s", f->agent, f->object, d->label,
				     f->msg.msg);
			failed(d);
			return;
		}
	}
	for (size_t i = 0; i < d->n_feeds; i++) {
		const char *at = strstr(err->msg, d->feeds[i].path);
		size_t pl = strlen(d->feeds[i].path);

		/* "/dev/fd/1" must not match inside "/dev/fd/12". */
		if (at && (at[pl] < '0' || at[pl] > '9')) {
			apierror_set(&d->error, API_ERR_CONFLICT, "id", "agent %s: its object %s is not a capture: %s",
				     d->feeds[i].agent, d->feeds[i].object, err->msg);
			failed(d);
			return;
		}
	}
	apierror_set(&d->error, r == -ENOMEM ? API_ERR_INTERNAL : API_ERR_CONFLICT, "id", "cannot merge: %s", err->msg);
	failed(d);
}

static void note_part(const Job *j, const JobPart *p, AgentNote *n, MergeInput *m)
{
	job_describe(j, n->desc, sizeof(n->desc));
	n->stats = (PcapIfStats){
		.have = PCAP_STAT_IFRECV | PCAP_STAT_IFDROP, .ifrecv = p->packets + p->drops, .ifdrop = p->drops};
	*m = (MergeInput){.name = p->agent, .description = n->desc, .stats = &n->stats, .n_stats = 1};
}

static void close_samples(Download *d)
{
	for (size_t i = 0; i < d->n_sample_fds; i++)
		close(d->sample_fds[i]);
	d->n_sample_fds = 0;
}

/* Everything up to the first record of every input; d->outcome says how it
 * went. */
static void open_inputs(Download *d)
{
	ErrBuf err = {{0}};
	MergeOptions opt = {.format = d->pcapng ? PCAP_FORMAT_PCAPNG : -1, .out_name = "the download"};
	uint64_t total = 0;
	bool full = d->job.type == JOB_FULL;
	int r;

	d->feeds = calloc(d->n_parts ? d->n_parts : 1, sizeof(*d->feeds));
	d->inputs = calloc(d->n_parts ? d->n_parts : 1, sizeof(*d->inputs));
	d->notes = calloc(d->n_parts ? d->n_parts : 1, sizeof(*d->notes));
	d->annotations = calloc(d->n_parts ? d->n_parts : 1, sizeof(*d->annotations));
	if (!d->feeds || !d->inputs || !d->notes || !d->annotations) {
		apierror_set(&d->error, API_ERR_INTERNAL, NULL, "out of memory");
		failed(d);
		return;
	}
	d->sample_fds = calloc(d->n_parts ? d->n_parts : 1, sizeof(*d->sample_fds));
	if (!d->sample_fds) {
		apierror_set(&d->error, API_ERR_INTERNAL, NULL, "out of memory");
		failed(d);
		return;
	}
	for (size_t i = 0; i < d->n_parts; i++) {
		const JobPart *p = &d->parts[i];

		if (p->state != PART_DONE || !p->object)
			continue;
		total += p->packets;
		note_part(&d->job, p, &d->notes[d->n_inputs], &d->annotations[d->n_inputs]);
		if (full) {
			Feed *f = &d->feeds[d->n_feeds++];

			if (open_feed(d, f, p) < 0)
				return;
			d->inputs[d->n_inputs++] = f->path;
		} else {
			/* The answer service_sample_store() kept in the database
			 * (any controller's), as a file of its own. */
			char *path = NULL;
			int fd = -1;

			r = service_sample_open(d->svc, d->job.id, p->agent, &fd, &err);
			if (r < 0) {
				apierror_set(&d->error, r == -ENOENT ? API_ERR_CONFLICT : API_ERR_INTERNAL, "id", "%s",
					     err.msg);
				failed(d);
				return;
			}
			d->sample_fds[d->n_sample_fds++] = fd;
			if (asprintf(&path, "/dev/fd/%d", fd) < 0) {
				apierror_set(&d->error, API_ERR_INTERNAL, NULL, "out of memory");
				failed(d);
				return;
			}
			d->inputs[d->n_inputs++] = path;
		}
	}
	if (d->n_inputs == 0) {
		apierror_set(&d->error, API_ERR_CONFLICT, "id", "capture failed: no agent delivered a file");
		failed(d);
		return;
	}
	for (size_t i = 0; i < d->n_feeds; i++) {
		r = start_thread(&d->feeds[i].thread, feed_main, &d->feeds[i]);
		if (r < 0) {
			apierror_set(&d->error, API_ERR_INTERNAL, NULL, "cannot start a thread: %s", strerror(-r));
			failed(d);
			return;
		}
		d->feeds[i].started = true;
	}
	/* A sample keeps the newest packet_limit of all answers: each agent sent
	 * its newest packet_limit and the part holds its count. */
	if (d->job.type == JOB_SIMPLE && total > d->job.packet_limit)
		opt.skip_first = total - d->job.packet_limit;
	if (d->pcapng)
		opt.annotations = d->annotations;
	r = pcapmerge_open(d->inputs, d->n_inputs, &opt, &d->merge, &err);
	/* The merge has its own descriptors now (or failed): ours go, so that a
	 * feeder whose reader is gone gets EPIPE and stops. */
	for (size_t i = 0; i < d->n_feeds; i++) {
		close(d->feeds[i].rfd);
		d->feeds[i].rfd = -1;
	}
	close_samples(d);
	if (r < 0) {
		/* A feeder's failure explains a broken input best: wait for them. */
		for (size_t i = 0; i < d->n_feeds; i++)
			if (d->feeds[i].started) {
				pthread_join(d->feeds[i].thread, NULL);
				d->feeds[i].started = false;
			}
		merge_fail(d, r, &err);
	}
}

/* ---- streaming ---- */

typedef struct Merger {
	PcapMerge *m;
	int fd;
	int r;
	ErrBuf err;
	pthread_t thread;
} Merger;

static void *merger_main(void *arg)
{
	Merger *mg = arg;
	MergeStats st;

	mg->r = pcapmerge_write(mg->m, mg->fd, &st, &mg->err);
	close(mg->fd);
	mg->fd = -1;
	return NULL;
}

/* Runs the merge into the caller's writer; true if all of it got there. */
static bool pump(Download *d)
{
	Merger mg = {.m = d->merge, .fd = -1};
	uint8_t *buf = malloc(PUMP_CHUNK);
	bool ok = false, feed_failed = false;
	int fds[2] = {-1, -1}, r = 0;

	if (!buf || pipe2(fds, O_CLOEXEC) < 0)
		goto out;
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES);
	mg.fd = fds[1];
	if (start_thread(&mg.thread, merger_main, &mg) < 0) {
		close(fds[1]);
		goto out;
	}
	for (;;) {
		ssize_t k = read(fds[0], buf, PUMP_CHUNK);

		if (k < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&d->lock);
		feed_failed = d->feed_failed;
		pthread_mutex_unlock(&d->lock);
		if (k <= 0 || feed_failed)
			break;
		r = d->write(d->write_ctx, buf, (size_t)k);
		if (r < 0)
			break; /* the client went away */
	}
	close(fds[0]); /* a merge still writing gets EPIPE and ends */
	fds[0] = -1;
	pthread_join(mg.thread, NULL);
	ok = mg.r >= 0 && !feed_failed && r >= 0;
out:
	if (fds[0] >= 0)
		close(fds[0]);
	free(buf);
	return ok;
}

/* Waits for the feeders; true if every one delivered its whole object. */
static bool join_feeds(Download *d)
{
	bool ok = true;

	pcapmerge_free(d->merge); /* closes the merge's read ends: feeders still writing get EPIPE */
	d->merge = NULL;
	for (size_t i = 0; i < d->n_feeds; i++) {
		Feed *f = &d->feeds[i];

		if (f->rfd >= 0)
			close(f->rfd);
		f->rfd = -1;
		if (f->started)
			pthread_join(f->thread, NULL);
		f->started = false;
		ok = ok && f->err == 0;
	}
	return ok;
}

static void release_inputs(Download *d)
{
	join_feeds(d);
	for (size_t i = 0; i < d->n_feeds; i++) {
		Feed *f = &d->feeds[i];

		if (f->wfd >= 0)
			close(f->wfd);
		f->wfd = -1;
		bucket_reader_close(f->rd);
		bucket_free(f->bucket);
	}
	close_samples(d);
	free(d->sample_fds);
	d->sample_fds = NULL;
	if (d->job.type != JOB_FULL)
		for (size_t i = 0; i < d->n_inputs; i++)
			free((char *)d->inputs[i]);
	free(d->inputs);
	free(d->annotations);
	free(d->notes);
	free(d->feeds);
	d->inputs = NULL;
	d->annotations = NULL;
	d->notes = NULL;
	d->feeds = NULL;
	d->n_inputs = d->n_feeds = 0;
}

static void download_free(Download *d)
{
	release_inputs(d);
	job_done(&d->job);
	parts_free(d->parts, d->n_parts);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	atomic_fetch_sub(&d->svc->downloads, 1);
	free(d);
}

static void *download_main(void *arg)
{
	Download *d = arg;
	bool ok;

	open_inputs(d);
	pthread_mutex_lock(&d->lock);
	/* Under the lock: a caller that released first is not called back. */
	if (!d->released)
		d->ready(d->ready_ctx);
	while (!d->decided)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
	if (d->write && d->outcome == 0) {
		ok = pump(d);
		/* A feeder that failed after the merge ended early is a broken file too. */
		ok = join_feeds(d) && ok;
		d->end(d->write_ctx, ok);
	}
	pthread_mutex_lock(&d->lock);
	while (!d->released)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
	download_free(d);
	return NULL;
}

/* ---- the service's face ---- */

void service_downloads_clean(Service *s)
{
	char dir[4096], path[4400];
	struct dirent *de;
	DIR *dh;
	int n = snprintf(dir, sizeof(dir), "%s/downloads", s->cfg.data_dir);

	if (n < 0 || (size_t)n >= sizeof(dir) || !(dh = opendir(dir)))
		return;
	while ((de = readdir(dh)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
	closedir(dh);
	rmdir(dir);
}

int service_job_download(Service *s, const char *account, const char *id, bool pcapng, void (*ready)(void *ctx),
			 void *ctx, Download **ret, ApiError *e)
{
	ErrBuf err = {{0}};
	Download *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
	r = service_job_get(s, account, id, &d->job, NULL, NULL, e);
	if (r < 0) {
		free(d);
		return r;
	}
	if (d->job.status == JOB_FAILED) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "capture failed: %s",
				 d->job.error_message ? d->job.error_message : "failed");
		goto fail;
	}
	if (d->job.status != JOB_SUCCESS) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "capture is %s; it can be downloaded once its status is success",
				 job_status_to_string(d->job.status));
		goto fail;
	}
	if (d->job.type == JOB_FULL && !job_bucket(&d->job)) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "capture has no bucket output to download from; it wrote %s on each agent",
				 d->job.n_outputs ? d->job.outputs[0].target : "nothing");
		goto fail;
	}
	if (d->job.continuous.on) {
		r = apierror_set(e, API_ERR_CONFLICT, "id",
				 "a continuous capture is a series of files, each its own object in the bucket "
				 "(<name>_1, <name>_2, …): read them there");
		goto fail;
	}
	r = db_part_list(service_db(s), d->job.id, &d->parts, &d->n_parts, &err);
	if (r < 0) {
		r = service_internal(e, r, &err);
		goto fail;
	}
	if (atomic_fetch_add(&s->downloads, 1) >= DOWNLOADS_MAX) {
		atomic_fetch_sub(&s->downloads, 1);
		r = apierror_set(e, API_ERR_BUSY, NULL, "%u downloads run already; try again shortly", DOWNLOADS_MAX);
		e->retry_after_s = DOWNLOAD_RETRY_S;
		goto fail;
	}
	if (d->job.type == JOB_FULL)
		bucket_uri_redact(job_bucket(&d->job), d->label, sizeof(d->label));
	d->svc = s;
	d->pcapng = pcapng;
	d->ready = ready;
	d->ready_ctx = ctx;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	r = start_thread(&d->thread, download_main, d);
	if (r < 0) {
		atomic_fetch_sub(&s->downloads, 1);
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "cannot start a thread: %s", strerror(-r));
		goto fail;
	}
	pthread_detach(d->thread);
	*ret = d;
	return 0;
fail:
	job_done(&d->job);
	parts_free(d->parts, d->n_parts);
	free(d);
	return r;
}

int service_download_outcome(Download *d, ApiError *e)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = d->outcome;
	if (r < 0 && e)
		*e = d->error;
	pthread_mutex_unlock(&d->lock);
	return r;
}

void service_download_stream(Download *d, int (*write)(void *ctx, const void *p, size_t n),
			     void (*end)(void *ctx, bool ok), void *ctx)
{
	pthread_mutex_lock(&d->lock);
	d->write = write;
	d->end = end;
	d->write_ctx = ctx;
	d->decided = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void service_download_release(Download *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->decided = true;
	d->released = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}
