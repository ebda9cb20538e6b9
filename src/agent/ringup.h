/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A continuous capture's files published to an object store one by one
 * (outputs.c rotates them; storeup.c uploads each one). One thread per
 * capture, beside the capture's own, so that a slow or absent store never
 * holds the capture up:
 *
 *   ringup_start()   the thread, waiting for files
 *   ringup_add()     file N is published on this machine (the capture's
 *                    thread, in order: 1, 2, …)
 *   ringup_finish()  no more files: the queue is drained, the thread joined
 *
 * File N is the object job_file_object(share's object, N), uploaded through
 * grants for that file (docs/AGENT-PROTOCOL.md, "file"). In a ring (keep
 * the newest `keep`), once file N is in the store, the object of file
 * N - keep (which left the ring on this machine) is deleted through a grant
 * too, so the store holds the newest `keep` files, as the disk does. A file
 * that left the ring before its turn came is not uploaded at all.
 *
 * Failures: a file whose upload fails (after storeup.c's retries and
 * budget), or an object that cannot be deleted, does not stop the capture
 * nor the next files. The share's report says so at once (error naming the
 * file, failure "storage": Azure's StorageFailed while the capture goes on),
 * and ringup_finish() counts them: the share then ends upload_failed. The
 * file stays on this machine: in its local file output, or, without one, in
 * the spool (DATA/spool/<id>_N.cap) until it leaves the ring or the agent
 * restarts. Files uploaded from the spool are removed from it at once.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

typedef struct AgentJob AgentJob;
typedef struct AgentOutput AgentOutput;
typedef struct RingUp RingUp;

typedef struct RingUpConfig {
	AgentJob *job;
	const AgentOutput *out; /* the bucket: its target (REDACTED) and the share's object */
	int dirfd;              /* the files' directory (kept open by the caller until ringup_finish) */
	const char *dir;        /* its path, for messages */
	const char *base;       /* file N is job_file_object(base, N) in dir: "ring1.cap" → ring1_N.cap */
	bool ring;              /* keep only the newest keep files in the store */
	uint32_t keep;
	bool spooled; /* the files are only the upload's: removed once uploaded */
} RingUpConfig;

/* Starts the thread (cfg's strings must stay valid until ringup_finish). */
int ringup_start(const RingUpConfig *cfg, RingUp **ret, ErrBuf *err);

/* File index (1, 2, …, in order) is published in dir: upload it. */
void ringup_add(RingUp *u, uint64_t index);

/* Uploads what is queued, stops the thread and frees u. Returns the number
 * of files that did not reach the store (or whose object a ring could not
 * delete), with err naming the last of them; 0 when all did. NULL is fine. */
int ringup_finish(RingUp *u, ErrBuf *err);
