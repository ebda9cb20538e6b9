/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An agent's upload of a capture file to an object store, without any key of
 * the store: every request is one the controller signed (a grant,
 * docs/AGENT-PROTOCOL.md). S3 and its kin: create the multipart upload, put
 * the parts, complete with their ETags (abort when the upload fails); Azure:
 * put the blocks, commit the block list. The object appears only when the
 * upload completes.
 *
 * Retries: a request that fails for a reason that may pass (the store or the
 * controller unreachable, reset or timed out, HTTP 429 or 5xx, an expired
 * URL) is sent again after an exponential backoff with jitter (250 ms doubling
 * to 10 s, each delay drawn from [d/2, d]), with URLs asked anew when they are
 * older than half their validity or refused once with 403. The budget: the
 * upload gives up when it has made no progress (no request succeeded) for
 * budget_s seconds. Any other refusal ends it at once. Either way the message
 * names the object and the store's (or controller's) answer, and a begun S3
 * upload is aborted (best effort) so that nothing is left half-made.
 */

#include <stdint.h>

#include "agent/ctlclient.h"
#include "common/util.h"
#include "proto/agentproto.h"

#define STOREUP_DEFAULT_BUDGET_S 300u

typedef struct StoreUpload {
	CtlClient *ctl;          /* to ask for grants (POST /agent/v1/upload) */
	const char *agent;       /* this agent's name */
	const char *job_id;      /* the capture */
	uint32_t attempt;        /* the upload's attempt (the start's) */
	const char *target;      /* the bucket URI as the start gave it (REDACTED), for messages */
	const char *object;      /* the object's name, for messages */
	AgentUploadGrant *grant; /* the start's grant, or NULL: asked for first; taken over */
	uint32_t budget_s;       /* 0 = STOREUP_DEFAULT_BUDGET_S */
	const char *cafile;      /* CA bundle for an https store; NULL = the system's */
	uint64_t file;           /* a continuous capture's file N (its own object); 0 = the share's object */
} StoreUpload;

/* Uploads the file at path. 0, or -errno with err ("upload to
 * s3://bucket/prefix: PUT host/bucket/prefix/OBJECT: HTTP 503 SlowDown: ..."). */
int storeup_file(const StoreUpload *u, const char *path, ErrBuf *err);
