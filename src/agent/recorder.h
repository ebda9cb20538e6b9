/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's recorder: 1-in-N sampled packets of the agent's interfaces,
 * truncated to a snaplen, kept in the history store DATA/history
 * (src/history/hist.h), from which sample jobs are answered.
 *
 * Sampling happens in the kernel: each interface's socket gets the program
 * filter_sample(NULL, N, snaplen), so an unsampled packet is dropped before
 * it is queued and never reaches user space.
 *
 * Threads (both its own):
 *   recorder  opens the store (start-up recovery) and the capture, calls
 *             hist_tick() every RECORDER_TICK_MS, restarts a capture that
 *             failed (every RECORDER_RETRY_MS), and at the end stops the
 *             capture and seals the store (hist_close);
 *   capture   capture_run() with a sink that hands every packet to
 *             hist_add().
 * Opening happens in the recorder thread, so that a long recovery does not
 * hold up the agent's registration; until the store is open, queries fail
 * with -EAGAIN and the status says "starting".
 *
 * Failures never stop the agent. A store that cannot be opened is retried
 * every RECORDER_RETRY_MS; so is a capture that cannot be opened or stops
 * with an error. A write error (ENOSPC, EIO) suspends recording: the store
 * drops packets and retries by itself (hist_tick), and the recorder logs the
 * first error of such an episode and the moment recording is back (once
 * blocks are written again, or after RECORDER_CLEAR_MS without an error).
 * recorder_status() says which of these holds.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/agentproto.h"
#include "common/util.h"
#include "history/hist.h"

#define RECORDER_TICK_MS 250u    /* hist_tick: partial blocks become visible within 1 s + this */
#define RECORDER_RETRY_MS 5000u  /* a store or capture that failed is tried again after this */
#define RECORDER_CLEAR_MS 10000u /* a write-error episode ends after this long without an error */

typedef struct Recorder Recorder;

typedef struct RecorderConfig {
	const char *dir;           /* the store's directory (created one level deep if missing) */
	const char *const *ifaces; /* interfaces to record (1..CAPTURE_MAX_IFACES) */
	size_t n_ifaces;           /* 0 with all_ifaces */
	bool all_ifaces;           /* every interface up when the capture opens */
	uint32_t sample_rate;      /* 1-in-N, >= 1 */
	uint32_t snaplen;          /* bytes kept per packet, 1..PCAP_MAX_SNAPLEN */
	uint64_t max_bytes;        /* retention by size, >= 256 KiB */
	uint64_t max_age_ns;       /* retention by age, > 0 */
	/* Called (from the recorder thread, no lock held) when what
	 * recorder_status() says about recording or its error changed: the
	 * agent reports it at once rather than at the next heartbeat. */
	void (*on_change)(void *ctx);
	void *ctx;
} RecorderConfig;

/* Starts the recorder's thread (which opens the store and the capture). The
 * strings in cfg must outlive the recorder. -errno only when the thread
 * cannot start. */
int recorder_start(const RecorderConfig *cfg, Recorder **ret, ErrBuf *err);
/* Stops the capture, waits for running queries, seals and closes the store,
 * frees. NULL is fine. */
void recorder_free(Recorder *r);

/* The report's "history" member. Thread-safe. */
void recorder_status(Recorder *r, AgentHistory *ret);

/* hist_query() on the store; any number of threads at once. -EAGAIN while
 * the store is being opened, -ENODATA when it could not be opened (err says
 * why), else what hist_query() returns. */
int recorder_query(Recorder *r, const HistQuery *q, int fd, HistQueryResult *ret, ErrBuf *err);
