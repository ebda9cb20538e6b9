/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The decision of a live k-way merge by timestamp: inputs whose records
 * arrive while the merge runs (agents streaming their growing capture files
 * to the controller), so that an input with nothing queued may still send a
 * record older than the ones the others have queued. Pure: the caller owns
 * the queues and the clock, and asks, each time, which input's next record
 * goes out now, or until when to wait.
 *
 * The rule (the bounded reorder window):
 *  - the candidate is the queued head with the smallest timestamp (ties: the
 *    lower input index, as pcapmerge keeps input order), so with every input
 *    present the output order is pcapmerge's;
 *  - it goes out once every other input that has not ended either has a
 *    head (never older, by the choice), or vouches with its watermark that
 *    nothing older than the candidate will still come from it;
 *  - an input that holds the candidate back for `window` is passed over
 *    until it sends something (a record or a watermark past the candidate):
 *    a dead, old or stuck input delays the stream by the window once, not
 *    forever. Records it sends later that are older than records already out
 *    go out as they come, out of order: the one case where the output is not
 *    in time order, and only for an input more than `window` behind.
 * Records of one input keep their order (input order is never changed).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct LiveInput {
	bool ended;             /* nothing more will come from it */
	bool has_head;          /* head_ts is the timestamp of its next record */
	uint64_t head_ts;       /* ns since the epoch */
	uint64_t watermark_ns;  /* it vouches that no record older than this will still come; 0 = none */
	int64_t blocking_since; /* the merge's own (monotonic ns): since when it holds the candidate back;
				   0 = it does not; start with 0 */
} LiveInput;

typedef enum LiveMergeStep {
	LIVEMERGE_EMIT, /* *ret_input's head goes out now */
	LIVEMERGE_WAIT, /* wait for a record, a watermark, an end, or until *ret_until (INT64_MAX: no time) */
	LIVEMERGE_DONE, /* every input ended with nothing queued */
} LiveMergeStep;

/* The next step at monotonic time now, with the reorder window window_ns.
 * Updates each input's blocking_since. */
LiveMergeStep livemerge_step(LiveInput *in, size_t n, int64_t now, int64_t window_ns, size_t *ret_input,
			     int64_t *ret_until);
