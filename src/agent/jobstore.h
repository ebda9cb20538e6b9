/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's files under its data directory:
 *
 *   DATA/jobs/<id>.json   the job's last report (agentproto_job_to_json), kept
 *                         from the moment it starts until the controller
 *                         acknowledges its terminal state. Published
 *                         atomically: <id>.json.tmp, fsync, rename, fsync dir.
 *   DATA/spool/<id>.pcap  the capture being written, until it is in the bucket.
 *   DATA/spool/<id>.sample.pcap  a sample's answer, until the controller has it.
 *   DATA/spool/<id>.outputs  where a capture into local files writes the file
 *                         it has not published yet (outputs.c), so that a
 *                         restart can remove it.
 *
 * Recovery at start-up: leftover *.tmp files (a crash between write and
 * rename) are removed; jobs/ is read back by the caller (jobstore_load), which
 * decides what a job that was running means; spool files of a previous run
 * are removed (jobstore_clear_spool), since no capture survives a restart.
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
/* Removes every file in DATA/spool. */
int jobstore_clear_spool(JobStore *s, ErrBuf *err);
