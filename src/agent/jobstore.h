/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's files under its data directory:
 *
 *   DATA/jobs/<id>.json   the job's last report (agentproto_job_to_json), kept
 *                         from the moment it starts until the controller
 *                         acknowledges its terminal state. Published
 *                         atomically: <id>.json.tmp, fsync, rename, fsync dir.
 *   DATA/jobs/<id>.upload an upload to an object store as far as the store
 *                         confirmed it (JobUpload: attempt, bucket, object,
 *                         S3's UploadId, the confirmed parts' ETags),
 *                         published the same way after each confirmed part
 *                         and removed with the record: a restarted agent
 *                         resumes the upload of a finished capture from it.
 *   DATA/spool/<id>.pcap  the capture being written, until it is in the bucket.
 *   DATA/spool/<id>.sample.pcap  a sample's answer, until the controller has it.
 *   DATA/spool/<id>.outputs  where a capture into local files writes the file
 *                         it has not published yet (outputs.c), so that a
 *                         restart can remove it.
 *
 * Recovery at start-up: leftover *.tmp files (a crash between write and
 * rename) are removed; jobs/ is read back by the caller (jobstore_load), which
 * decides what a job that was running means; spool files of a previous run
 * are removed (jobstore_clear_spool), since no capture survives a restart,
 * but those of finished captures whose upload resumes.
 */

#include <stddef.h>

#include "proto/agentproto.h"
#include "common/io.h"
#include "common/util.h"

typedef struct JobStore JobStore;

/* Creates DATA (and missing parents), DATA/jobs and DATA/spool (mode 0700) and
 * removes leftover temporary files. io NULL = io_posix. */
int jobstore_open(const char *data_dir, const IoOps *io, JobStore **ret, ErrBuf *err);
void jobstore_free(JobStore *s); /* NULL is fine */

/* Publishes r as DATA/jobs/<r->id>.json, durably. */
int jobstore_save(JobStore *s, const AgentJobReport *r, ErrBuf *err);
/* Removes the job's record and spool file (absent ones are fine). */
int jobstore_remove(JobStore *s, const char *id, ErrBuf *err);
/* Removes only the record of a job (absent is fine): an upload that failed
 * keeps its spool file for a retry. */
int jobstore_remove_record(JobStore *s, const char *id, ErrBuf *err);
/* Removes only the spool file of a job (absent is fine). */
int jobstore_remove_spool(JobStore *s, const char *id, ErrBuf *err);
/* DATA/spool/<id>.pcap into ret[cap]. */
int jobstore_spool_path(const JobStore *s, const char *id, char *ret, size_t cap);
/* DATA/spool/<id>.outputs into ret[cap]. */
int jobstore_outputs_path(const JobStore *s, const char *id, char *ret, size_t cap);
/* DATA/spool/<id>.sample.pcap into ret[cap]. */
int jobstore_sample_path(const JobStore *s, const char *id, char *ret, size_t cap);

/* Every record in DATA/jobs, malloc'd array (NULL when none). Files that do not
 * parse are left in place, counted in *ret_bad, and the first one's problem is
 * in err. */
int jobstore_load(JobStore *s, AgentJobReport **ret, size_t *ret_n, size_t *ret_bad, ErrBuf *err);
/* Removes every file in DATA/spool but those of the jobs keep[0..n_keep)
 * names. */
int jobstore_clear_spool(JobStore *s, const char *const *keep, size_t n_keep, ErrBuf *err);

/* An upload's progress (DATA/jobs/<id>.upload). */
typedef struct JobUpload {
	uint32_t attempt;                             /* the upload's attempt */
	char *target;                                 /* the bucket URI (secrets REDACTED), malloc'd */
	char object[AGENTPROTO_OBJECT_MAX + 1];       /* the object's name */
	char upload_id[AGENTPROTO_UPLOAD_ID_MAX + 1]; /* S3's UploadId; "" before create, and for Azure */
	uint32_t sent;                                /* parts 1..sent confirmed by the store */
	char **etags;                                 /* S3: sent ETags, malloc'd; Azure: NULL */
} JobUpload;

/* Publishes u as the job's upload progress, durably. */
int jobstore_save_upload(JobStore *s, const char *id, const JobUpload *u, ErrBuf *err);
/* The job's upload progress into *ret (jobstore_upload_done() frees it);
 * -ENOENT when there is none, -EINVAL naming what does not parse. */
int jobstore_load_upload(JobStore *s, const char *id, JobUpload *ret, ErrBuf *err);
void jobstore_upload_done(JobUpload *u); /* frees what u holds; NULL is fine */
