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
 * Parts in flight: up to STOREUP_PARTS_IN_FLIGHT parts (blocks) go out at
 * once, each from a worker thread with a connection of its own (every part's
 * request is independent of the others'), in the order of their numbers but
 * confirmed in any order. A part is sent only while it is within 2 *
 * STOREUP_PARTS_IN_FLIGHT of the parts confirmed contiguously from 1; the
 * progress reported (StoreProgress.sent, the resume file) is that contiguous
 * prefix only, so a restart sends again every part past it (at most that
 * window of them), never skips one. Complete lists every part in order with
 * its ETag (Azure: its block id).
 *
 * Two ways: storeup_file() uploads a finished file (a retried upload, a
 * rotated file); storeup_stream_*() uploads a capture file while it is
 * written. Then a part goes out as soon as the writer reports it whole (its
 * own count, capfile_whole(): never the file's size, which a preallocating or
 * O_DIRECT writer makes meaningless): when the store keeps up, at most the
 * STOREUP_PARTS_IN_FLIGHT parts in flight and the part filling are
 * unconfirmed behind the writer, so a long capture is mostly in the store
 * when it ends and only its tail is left to send (a burst capture that ends
 * within a second or so is uploaded mostly after its end, at that many parts
 * at once). The writer never waits for the upload: a slow store makes the
 * upload lag (the file stays whole on disk for a retry), never the capture.
 * Complete only at the end; a capture that fails aborts the upload, and a
 * part that fails for good ends the other parts in flight at once.
 *
 * Retries: a request that fails for a reason that may pass (the store or the
 * controller unreachable, reset or timed out, HTTP 429 or 5xx, an expired
 * URL) is sent again after an exponential backoff with jitter (250 ms doubling
 * to 10 s, each delay drawn from [d/2, d]), with URLs asked anew when they are
 * older than half their validity or refused once with 403 (a part's worker
 * sends its own copy of its URL: new grants may come meanwhile, from the
 * first unconfirmed part on). Each worker backs off on its own. The budget:
 * the upload gives up when it has made no progress (no request of any worker
 * succeeded) for
 * budget_s seconds, counted from the capture's end at the earliest (while a
 * capture runs its upload keeps trying: the file grows and stays on disk).
 * Any other refusal ends it at once. Either way the message
 * names the object and the store's (or controller's) answer, and a begun S3
 * upload is aborted (best effort) so that nothing is left half-made.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/ctlclient.h"
#include "common/util.h"
#include "proto/agentproto.h"

#define STOREUP_DEFAULT_BUDGET_S 300u
#define STOREUP_PARTS_IN_FLIGHT 4u /* parts (blocks) sent at once, each on a connection of its own */

/* What the store has confirmed of an upload: enough to resume it after an
 * agent restart (the same attempt, the same object). */
typedef struct StoreProgress {
	const char *upload_id; /* S3's UploadId ("" before create); "" for Azure (its grants name the blocks) */
	uint32_t sent;         /* parts 1..sent confirmed by the store */
	char *const *etags;    /* S3: their ETags, sent of them; Azure: NULL */
} StoreProgress;

/* Called after create and whenever the parts confirmed contiguously from 1
 * grew, to keep p where a restarted agent finds it: from the upload's own
 * threads (the driver's or a part's worker), one call at a time. */
typedef void (*StoreProgressFn)(void *ctx, const StoreProgress *p);

typedef struct StoreUpload {
	CtlClient *ctl;              /* to ask for grants (POST /agent/v1/upload) */
	const char *agent;           /* this agent's name */
	const char *job_id;          /* the capture */
	uint32_t attempt;            /* the upload's attempt (the start's) */
	const char *target;          /* the bucket URI as the start gave it (REDACTED), for messages */
	const char *object;          /* the object's name, for messages */
	AgentUploadGrant *grant;     /* the start's grant, or NULL: asked for first; taken over */
	uint32_t budget_s;           /* 0 = STOREUP_DEFAULT_BUDGET_S */
	const char *cafile;          /* CA bundle for an https store; NULL = the system's */
	const StoreProgress *resume; /* an earlier run's progress of this attempt's upload, or NULL */
	StoreProgressFn progress;    /* NULL = none */
	void *progress_ctx;
	uint64_t file; /* a continuous capture's file N (its own object); 0 = the share's object */
} StoreUpload;

/* One round trip for a grant (POST /agent/v1/upload?name=agent&id=job_id
 * with q): 0 with *ret (free with agentproto_grant_done); -EAGAIN when
 * another try may succeed (the controller unreachable, 429, 5xx), -EACCES
 * when it refused (its message in err), -EPROTO for an answer that is not a
 * grant, -ENOMEM. */
int storeup_grant_request(CtlClient *ctl, const char *agent, const char *job_id, const AgentUploadRequest *q,
			  AgentUploadGrant *ret, ErrBuf *err);

/* Uploads the file at path. 0, or -errno with err ("upload to
 * s3://bucket/prefix: PUT host/bucket/prefix/OBJECT: HTTP 503 SlowDown: ..."). */
int storeup_file(const StoreUpload *u, const char *path, ErrBuf *err);

/* Aborts the S3 upload an earlier run began (u->resume names its UploadId;
 * no grant needed, none in u): once, no retry. 0 when the store took it or
 * there is nothing to abort (Azure's uncommitted blocks expire), else -errno
 * with err naming the bucket and the answer. */
int storeup_abort(const StoreUpload *u, ErrBuf *err);

/* ---- upload while capturing ---- */

/* Bytes from the file's start that are whole and stay so (capfile_whole()).
 * Called from the upload's thread until storeup_stream_end() or
 * storeup_stream_wait() returns. */
typedef uint64_t (*StoreWholeFn)(void *ctx);

typedef struct StoreStream StoreStream;

/* Starts the upload of the file at path as it grows (whole(ctx) bytes of it
 * readable now) on a thread of its own; the first request (the grant, S3's
 * create) goes out at once. u and what it points to stay the caller's and
 * valid until storeup_stream_wait(); its grant is taken over. -errno when the
 * file cannot be read or the thread not started. */
int storeup_stream_start(const StoreUpload *u, const char *path, StoreWholeFn whole, void *ctx, StoreStream **ret,
			 ErrBuf *err);
/* The file is finished at size bytes: the rest goes out, then complete.
 * Returns at once; whole() is not called any more. */
void storeup_stream_end(StoreStream *s, uint64_t size);
/* Waits for the upload's end and frees s: 0 when the object is complete, or
 * -errno with err as storeup_file(). abort (the capture failed; also without
 * storeup_stream_end()): stops at once and aborts the upload, -ECANCELED. */
int storeup_stream_wait(StoreStream *s, bool abort, ErrBuf *err);
