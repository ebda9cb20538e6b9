/* SPDX-License-Identifier: MIT */
/*
 * One full capture into a bucket on this agent, and a file on this machine
 * beside it if asked (samples: samplerun.c; files alone and continuous mode:
 * outputs.c): its configuration
 * (capsetup.c) → capture into DATA/spool/<id>.pcap (snaplen bytes per packet,
 * whole ones by default; pcap, or pcapng when the interfaces' link types
 * differ) → the bucket → final report. An object store gets the capture
 * while it is written (storeup_stream_*: parts go out as the file grows, the
 * rest and complete after its end); a file:// bucket after it. What this
 * agent cannot do yet (several buckets) fails the job at once with the reason
 * (job_supported). Phases and locking in agent-int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/capsetup.h"
#include "agent/storeup.h"
#include "bucket/bucket.h"
#include "bucket/bucket_uri.h"
#include "common/log.h"

JobStop jobrun_stop_reason(StopReason why, sig_atomic_t flag)
{
	switch (why) {
	case STOP_REASON_NONE:
		return JOB_STOP_NONE;
	case STOP_REASON_PACKETS:
		return JOB_STOP_PACKETS;
	case STOP_REASON_BYTES:
		return JOB_STOP_BYTES;
	case STOP_REASON_SECONDS:
		return JOB_STOP_TIME;
	case STOP_REASON_SIGNAL: /* the job's stop flag */
		return flag == JOB_STOP_FLAG_SHUTDOWN ? JOB_STOP_SHUTDOWN : JOB_STOP_USER;
	case STOP_REASON_ERROR:
	default:
		return JOB_STOP_ERROR;
	}
}

static void copy_text(char *out, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);

	memcpy(out, s, n);
	out[n] = '\0';
}

void jobrun_finish(AgentJob *job, PartState state, JobStop reason, const char *error)
{
	Agent *a = job->agent;
	AgentJobReport rep;
	ErrBuf err = {{0}};

	pthread_mutex_lock(&a->lock);
	rep = job->rep;
	pthread_mutex_unlock(&a->lock);
	rep.state = state;
	rep.stop_reason = reason;
	copy_text(rep.error, sizeof(rep.error), error ? error : "");
	/* The record first: an acknowledgement of this state may come as soon as
	 * it is published, and it removes the record. */
	if (jobstore_save(a->store, &rep, &err) < 0)
		log_error("job %s: cannot save its final state (an agent restart would report it failed): %s", rep.id,
			  err.msg);
	if (state == PART_UPLOAD_FAILED)
		log_warning("job %s: upload failed, the capture is kept in the spool: %s", rep.id, rep.error);
	else if (state == PART_FAILED)
		log_warning("%s %s failed: %s", job->spec.sample ? "sample" : "job", rep.id, rep.error);
	else if (job->spec.sample)
		log_info("sample %s answered: %llu packets, %llu bytes", rep.id, (unsigned long long)rep.packets,
			 (unsigned long long)rep.bytes);
	else
		log_info("job %s done: %llu packets, %llu bytes, %llu dropped by the kernel, stop reason %s, "
			 "object %s",
			 rep.id, (unsigned long long)rep.packets, (unsigned long long)rep.bytes,
			 (unsigned long long)rep.drops, job_stop_to_string(rep.stop_reason), rep.object);
	pthread_mutex_lock(&a->lock);
	job->rep = rep;
	if (job->phase != JOB_PHASE_FINISHED) {
		job->phase = JOB_PHASE_FINISHED;
		a->n_active--;
		if (job->spec.sample)
			a->n_samples--;
	}
	a->report_due = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void jobrun_save_state(AgentJob *job)
{
	Agent *a = job->agent;
	AgentJobReport rep;
	ErrBuf err = {{0}};

	pthread_mutex_lock(&a->lock);
	rep = job->rep;
	pthread_mutex_unlock(&a->lock);
	if (jobstore_save(a->store, &rep, &err) < 0)
		log_warning("job %s: cannot save its state: %s", rep.id, err.msg);
}

/* Moves the job on; st (may be NULL) carries the capture's final counters
 * and why it stopped. */
static void set_phase(AgentJob *job, JobPhase phase, CapFile *cf, const CaptureStats *st, StopReason why)
{
	Agent *a = job->agent;

	pthread_mutex_lock(&a->lock);
	job->phase = phase;
	job->cf = cf;
	if (st) {
		job->rep.packets = st->packets;
		job->rep.bytes = st->bytes;
		job->rep.drops = st->kernel_drops;
		job->rep.stop_reason = jobrun_stop_reason(why, job->stop);
	}
	job->rep.state = phase == JOB_PHASE_UPLOADING  ? PART_UPLOADING
			 : phase == JOB_PHASE_CAPTURED ? PART_CAPTURED
						       : PART_RUNNING;
	if (phase == JOB_PHASE_CAPTURED || phase == JOB_PHASE_UPLOADING)
		a->report_due = true; /* starting and capturing both read "running": no change to report */
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static uint64_t capture_whole(void *ctx)
{
	return capfile_whole(ctx);
}

/* Capture into the spool file; counters in *st. Returns 0 with the reason.
 * With up (an object store), the upload runs while capturing: *ret_stream is
 * then the upload, told the file's end, for the caller to wait for; a capture
 * that fails aborts it here. */
static int capture_to_spool(AgentJob *job, const char *spool, const StoreUpload *up, StoreStream **ret_stream,
			    CaptureStats *st, StopReason *why, ErrBuf *err)
{
	CapFileConfig fc = {0};
	CapSetup *setup;
	CapFile *cf = NULL;
	StoreStream *stream = NULL;
	uint64_t size = 0;
	int fd = -1, r;

	setup = calloc(1, sizeof(*setup));
	if (!setup)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = capsetup_init(job->agent->cfg, &job->spec, setup, err);
	if (r < 0)
		goto out;
	fc.capture = setup->capture;
	fc.format = setup->format;
	fc.direct = true;
	r = capfile_open(&fc, &cf, err);
	if (r < 0)
		goto out;
	fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = errbuf_errno(err, "cannot write %s", spool);
		goto out;
	}
	r = capfile_start(cf, fd, err);
	if (r < 0)
		goto out;
	if (up) {
		r = storeup_stream_start(up, spool, capture_whole, cf, &stream, err);
		if (r < 0)
			goto out;
	}
	set_phase(job, JOB_PHASE_CAPTURING, cf, NULL, STOP_REASON_NONE);
	/* "running" on disk, so that the next start reports the job failed if
	 * the agent dies now. After the sockets are bound, off the path from the
	 * controller's order to the first packet: the ring holds what arrives. */
	jobrun_save_state(job);
	r = capfile_run(cf, &job->stop, why, err);
	capfile_stats(cf, st);
	if (r == 0)
		r = capfile_finish(cf, true, &size, err); /* fsync: the upload reads it back */
	if (r == 0 && stream)
		storeup_stream_end(stream, size);
	/* Counters stay with the job; cf goes away below. */
	set_phase(job, r == 0 ? JOB_PHASE_CAPTURED : JOB_PHASE_CAPTURING, NULL, st, *why);
out:
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = errbuf_errno(err, "closing %s", spool);
	if (stream && r < 0)
		storeup_stream_wait(stream, true, NULL); /* aborted: before cf goes */
	else if (stream)
		*ret_stream = stream;
	capfile_free(cf);
	capsetup_done(setup);
	free(setup);
	return r;
}

/* What this pipeline does of a start: one bucket output (*ret_out) and at
 * most one file on this machine beside it (outputs_file_*). Files alone and
 * continuous mode are outputs.c's. */
static int job_supported(const AgentJobSpec *spec, const AgentOutput **ret_out, ErrBuf *err)
{
	const AgentOutput *bucket = NULL;
	size_t files = 0;

	for (size_t i = 0; i < spec->n_outputs; i++) {
		const AgentOutput *o = &spec->outputs[i];

		if (o->kind == JOB_OUTPUT_FILE && files++ == 0)
			continue;
		if (o->kind == JOB_OUTPUT_FILE)
			return errbuf_set(err, -EOPNOTSUPP,
					  "outputs[%zu]: this agent writes a capture to one file here, not several", i);
		if (bucket)
			return errbuf_set(err, -EOPNOTSUPP,
					  "outputs[%zu]: this agent writes a capture to one bucket, not several", i);
		bucket = o;
	}
	if (!bucket)
		return errbuf_set(err, -EINVAL, "outputs: none");
	*ret_out = bucket;
	return 0;
}

/* Fails the job with what failed (the report's failure). */
static void finish_failed(AgentJob *job, PartFailure failure, const char *error)
{
	pthread_mutex_lock(&job->agent->lock);
	job->rep.failure = failure;
	pthread_mutex_unlock(&job->agent->lock);
	jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, error);
}

/* The job's bucket, opened before the capture: a destination this agent
 * cannot write fails the job at once, not after the capture. */
static int open_bucket(AgentJob *job, const char *uri, Bucket **ret, ErrBuf *err)
{
	const AgentConfig *cfg = job->agent->cfg;
	BucketConfig bc = {.root = cfg->bucket_root};
	char shown[BUCKET_URI_MAX + 1];
	ErrBuf e = {{0}};
	int r;

	/* Messages end in error_message and logs: the URI's secrets REDACTED. */
	bucket_uri_redact(uri, shown, sizeof(shown));
	if (!cfg->bucket_root && strncmp(uri, "file://", 7) == 0)
		return errbuf_set(err, -EPERM,
				  "destination_conf %s: agent %s takes no file:// bucket (no --bucket-root)", shown,
				  cfg->name);
	r = bucket_open(uri, &bc, ret, &e);
	if (r < 0)
		return errbuf_set(err, r, "bucket %s: %s", shown, e.msg);
	return 0;
}

static int upload(Bucket *b, const char *uri, const char *spool, const char *object, ErrBuf *err)
{
	char shown[BUCKET_URI_MAX + 1];
	ErrBuf e = {{0}};
	int r;

	r = bucket_put_file(b, object, spool, &e);
	if (r < 0) {
		bucket_uri_redact(uri, shown, sizeof(shown));
		return errbuf_set(err, r, "upload to %s: %s", shown, e.msg);
	}
	return 0;
}

/* Where an upload's progress is kept (DATA/jobs/<id>.upload) for a restart. */
typedef struct Keeper {
	AgentJob *job;
	const char *target; /* REDACTED */
	const char *object;
} Keeper;

static void keep_progress(void *ctx, const StoreProgress *p)
{
	Keeper *k = ctx;
	AgentJob *job = k->job;
	JobUpload ju = {.attempt = job->spec.attempt,
			.target = (char *)k->target, /* read only */
			.sent = p->sent,
			.etags = (char **)p->etags};
	ErrBuf err = {{0}};

	snprintf(ju.object, sizeof(ju.object), "%s", k->object);
	snprintf(ju.upload_id, sizeof(ju.upload_id), "%s", p->upload_id);
	if (jobstore_save_upload(job->agent->store, job->spec.id, &ju, &err) < 0)
		log_warning("job %s: %s (a restart would not resume this upload)", job->spec.id, err.msg);
}

/* The upload of the capture to an object store, with the start's grant and
 * its progress kept by *k; u->ctl is the caller's to free (ctlclient_free). */
static int store_upload_init(AgentJob *job, const AgentOutput *out, const char *object, Keeper *k, StoreUpload *u,
			     ErrBuf *err)
{
	Agent *a = job->agent;

	*k = (Keeper){.job = job, .target = out->target, .object = object};
	*u = (StoreUpload){.agent = a->cfg->name,
			   .job_id = job->spec.id,
			   .attempt = job->spec.attempt,
			   .target = out->target,
			   .object = object,
			   .grant = out->upload,
			   .budget_s = a->cfg->upload_budget_s,
			   .progress = keep_progress,
			   .progress_ctx = k};
	return ctlclient_new(&a->client_cfg, &u->ctl, err);
}

/* The upload of the finished capture (a retry, or resumed after a restart
 * from what the store confirmed). */
static int upload_to_store(AgentJob *job, const AgentOutput *out, const char *spool, const char *object,
			   const StoreProgress *resume, ErrBuf *err)
{
	StoreUpload u;
	Keeper k;
	int r;

	r = store_upload_init(job, out, object, &k, &u, err);
	if (r < 0)
		return r;
	u.resume = resume;
	r = storeup_file(&u, spool, err);
	ctlclient_free(u.ctl);
	return r;
}

/* The end of the upload of a kept capture (r from upload_to_store): done,
 * and the spool goes; or upload_failed, and it stays for a retry. */
static void upload_finished(AgentJob *job, int r, JobStop reason, const ErrBuf *err)
{
	ErrBuf e = {{0}};

	if (r < 0) {
		jobrun_finish(job, PART_UPLOAD_FAILED, reason, err->msg);
		return;
	}
	if (jobstore_remove_spool(job->agent->store, job->spec.id, &e) < 0)
		log_warning("job %s: %s", job->spec.id, e.msg);
	jobrun_finish(job, PART_DONE, reason, NULL);
}

/* A retried upload: the capture kept in the spool goes up again. */
static void *retry_upload(AgentJob *job, const AgentOutput *out, const char *spool, const char *object)
{
	Agent *a = job->agent;
	ErrBuf err = {{0}};

	if (access(spool, R_OK) < 0) {
		errbuf_errno(&err, "retry of the upload: the capture is not kept on agent %s (%s)", a->cfg->name,
			     spool);
		jobrun_finish(job, PART_FAILED, JOB_STOP_NONE, err.msg);
		return NULL;
	}
	pthread_mutex_lock(&a->lock);
	copy_text(job->rep.object, sizeof(job->rep.object), object);
	pthread_mutex_unlock(&a->lock);
	log_info("job %s: upload attempt %u of %s", job->spec.id, job->spec.attempt, object);
	upload_finished(job, upload_to_store(job, out, spool, object, NULL, &err), JOB_STOP_NONE, &err);
	return NULL;
}

/* After a restart: the upload of a finished capture goes on from what the
 * store had confirmed (job->resume), in the same attempt. */
static void *resume_main(void *arg)
{
	AgentJob *job = arg;
	Agent *a = job->agent;
	const JobUpload *ju = job->resume;
	StoreProgress p = {.upload_id = ju->upload_id, .sent = ju->sent, .etags = ju->etags};
	AgentOutput out = {.kind = JOB_OUTPUT_BUCKET, .target = ju->target};
	char spool[PATH_MAX];
	ErrBuf err = {{0}};
	JobStop reason;

	pthread_mutex_lock(&a->lock);
	reason = job->rep.stop_reason;
	pthread_mutex_unlock(&a->lock);
	if (jobstore_spool_path(a->store, job->spec.id, spool, sizeof(spool)) < 0) {
		jobrun_finish(job, PART_FAILED, reason, "spool path too long");
		return NULL;
	}
	log_info("job %s: resuming the upload of %s (attempt %u) after %u confirmed parts", job->spec.id, ju->object,
		 ju->attempt, ju->sent);
	upload_finished(job, upload_to_store(job, &out, spool, ju->object, &p, &err), reason, &err);
	return NULL;
}

/* After a restart: a capture cut short by the agent's death fails, but the
 * S3 upload it had begun (job->resume) is aborted first, so that nothing
 * half-made stays in the store. */
static void *abort_main(void *arg)
{
	AgentJob *job = arg;
	Agent *a = job->agent;
	const JobUpload *ju = job->resume;
	StoreProgress p = {.upload_id = ju->upload_id, .sent = ju->sent, .etags = ju->etags};
	StoreUpload u = {.agent = a->cfg->name,
			 .job_id = job->spec.id,
			 .attempt = ju->attempt,
			 .target = ju->target,
			 .object = ju->object,
			 .resume = &p};
	ErrBuf err = {{0}};

	if (ctlclient_new(&a->client_cfg, &u.ctl, &err) == 0 && storeup_abort(&u, &err) == 0)
		log_info("job %s: the upload of %s its capture had begun is aborted", job->spec.id, ju->object);
	else
		log_warning("job %s: %s (parts may stay in the store)", job->spec.id, err.msg);
	ctlclient_free(u.ctl);
	finish_failed(job, PART_FAIL_INTERNAL, "agent restarted during the capture");
	return NULL;
}

int jobrun_resume(AgentJob *job, bool abort, ErrBuf *err)
{
	Agent *a = job->agent;
	int r;

	pthread_mutex_lock(&a->lock);
	r = -pthread_create(&job->thread, NULL, abort ? abort_main : resume_main, job);
	if (r == 0)
		job->has_thread = true;
	pthread_mutex_unlock(&a->lock);
	if (r < 0)
		return errbuf_set(err, r, "cannot start an upload thread: %s", strerror(-r));
	return 0;
}

static void *job_main(void *arg)
{
	AgentJob *job = arg;
	Agent *a = job->agent;
	char spool[PATH_MAX], object[AGENTPROTO_OBJECT_MAX + 1];
	const AgentOutput *out = NULL;
	CaptureStats st = {0};
	StopReason why = STOP_REASON_ERROR;
	ErrBuf err = {{0}}, file_err = {{0}};
	PartFailure failure = PART_FAIL_NONE;
	Bucket *bucket = NULL;
	Outputs *file = NULL;
	StoreUpload up = {0};
	StoreStream *stream = NULL;
	Keeper keeper;
	bool store;
	int r, n;

	if (job->spec.error[0]) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, job->spec.error);
		return NULL;
	}
	if (job_supported(&job->spec, &out, &err) < 0) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, err.msg);
		return NULL;
	}
	if (jobstore_spool_path(a->store, job->spec.id, spool, sizeof(spool)) < 0) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, "spool path too long");
		return NULL;
	}
	if (out->object[0])
		n = snprintf(object, sizeof(object), "%s", out->object);
	else
		n = snprintf(object, sizeof(object), "pcap_%s_%s.pcap", job->spec.id, a->cfg->name);
	if (n < 0 || (size_t)n >= sizeof(object)) {
		jobrun_finish(job, PART_FAILED, JOB_STOP_ERROR, "object name too long");
		return NULL;
	}
	/* A store is written through the controller's grants; file:// here. A
	 * retry is of the upload only: the file here was published before it. */
	store = strncmp(out->target, "file://", 7) != 0;
	if (store && job->spec.attempt > 0)
		return retry_upload(job, out, spool, object);
	r = store ? store_upload_init(job, out, object, &keeper, &up, &err)
		  : open_bucket(job, out->target, &bucket, &err);
	failure = r < 0 ? (store ? PART_FAIL_INTERNAL : PART_FAIL_STORAGE) : PART_FAIL_NONE;
	if (r == 0)
		r = outputs_file_plan(job, &file, &failure, &err);
	if (r == 0 && (r = capture_to_spool(job, spool, store ? &up : NULL, &stream, &st, &why, &err)) < 0)
		failure = PART_FAIL_CAPTURE;
	if (r < 0) {
		finish_failed(job, failure, err.msg);
		jobstore_remove_spool(a->store, job->spec.id, &err);
		outputs_file_free(file);
		bucket_free(bucket);
		ctlclient_free(up.ctl);
		return NULL;
	}
	/* The file here first (a local copy), then the bucket, which may retry
	 * for long: a file that fails still lets the bucket have the capture. */
	if (file && outputs_file_publish(file, spool, &failure, &file_err) < 0)
		log_warning("job %s: %s", job->spec.id, file_err.msg);
	outputs_file_free(file);
	pthread_mutex_lock(&a->lock);
	copy_text(job->rep.object, sizeof(job->rep.object), object);
	pthread_mutex_unlock(&a->lock);
	jobrun_save_state(job);
	set_phase(job, JOB_PHASE_UPLOADING, NULL, NULL, STOP_REASON_NONE);
	if (store) {
		r = storeup_stream_wait(stream, false, &err); /* the parts sent while capturing, the rest */
		ctlclient_free(up.ctl);
		if (r < 0 && failure == PART_FAIL_NONE) {
			/* The capture is whole: it stays here for a later retry. */
			jobrun_finish(job, PART_UPLOAD_FAILED, jobrun_stop_reason(why, job->stop), err.msg);
			return NULL;
		}
	} else {
		r = upload(bucket, out->target, spool, object, &err);
		bucket_free(bucket);
		if (r < 0 && failure == PART_FAIL_NONE) {
			finish_failed(job, PART_FAIL_STORAGE, err.msg);
			return NULL;
		}
	}
	if (failure != PART_FAIL_NONE) {
		/* The file failed: that is the share's failure (with the bucket's, if
		 * it failed too); a retry has no file to make again. */
		if (r < 0) {
			size_t used = strlen(file_err.msg);

			snprintf(file_err.msg + used, sizeof(file_err.msg) - used, "; and %s", err.msg);
		}
		jobstore_remove_spool(a->store, job->spec.id, &err);
		finish_failed(job, failure, file_err.msg);
		return NULL;
	}
	/* The object is in the bucket: the spool copy is not needed any more. */
	if (jobstore_remove_spool(a->store, job->spec.id, &err) < 0)
		log_warning("job %s: %s", job->spec.id, err.msg);
	jobrun_finish(job, PART_DONE, jobrun_stop_reason(why, job->stop), NULL);
	return NULL;
}

int jobrun_start(AgentJob *job, ErrBuf *err)
{
	Agent *a = job->agent;
	int r;

	/* has_thread is set under the lock, which the thread needs before it can
	 * finish: an ack cannot reach the job before its thread is known. */
	pthread_mutex_lock(&a->lock);
	r = -pthread_create(&job->thread, NULL,
			    job->spec.sample            ? samplerun_main
			    : outputs_local(&job->spec) ? outputs_main
							: job_main,
			    job);
	if (r == 0)
		job->has_thread = true;
	pthread_mutex_unlock(&a->lock);
	if (r < 0)
		return errbuf_set(err, r, "cannot start a %s thread: %s", job->spec.sample ? "sample" : "capture",
				  strerror(-r));
	return 0;
}

void jobrun_free(AgentJob *job)
{
	if (!job)
		return;
	agentproto_spec_done(&job->spec);
	jobstore_upload_done(job->resume);
	free(job->resume);
	free(job);
}
