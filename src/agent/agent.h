/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent (`pcapd agent`): dials out to the controller, takes full captures
 * on this machine's interfaces and writes them to buckets, records a sampled
 * history of the same interfaces and answers sample captures from it
 * (docs/AGENT-PROTOCOL.md). agent_run() is the whole daemon; it logs (log.h)
 * what an operator needs to see: registration, a lost and regained
 * controller (once per outage), jobs that failed, the recorder's trouble
 * (once per episode) and its recovery.
 *
 * Threads:
 *   caller    supervises: watches the stop flag, shuts down in order
 *   reporter  POST /agent/v1/report: hello, every second while a job is
 *             active, every heartbeat otherwise, at once on a state change
 *   poller    GET /agent/v1/poll (long-poll): starts and stops jobs
 *   recorder  (and its capture thread) sampled packets → DATA/history,
 *             unless sample_rate is 0 (recorder.h)
 *   one per full capture: capture → DATA/spool/<id>.pcap → bucket
 *   one per sample: history query → DATA/spool/<id>.sample.pcap →
 *             POST /agent/v1/sample
 *
 * Samples are counted apart from full captures (AGENT_MAX_SAMPLES at once),
 * so that long captures never keep the agent from answering one.
 *
 * Jobs survive the controller: a capture runs to its end while the controller
 * is away, and its final report waits on disk (DATA/jobs/<id>.json) until the
 * controller acknowledges it, across agent restarts too. A job that was
 * running when the agent died is reported failed at the next start.
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define AGENT_MAX_RUNNING 16u /* captures at once; more are refused (reported failed) */
#define AGENT_MAX_SAMPLES 8u  /* sample answers at once, besides the captures; more are refused */
#define AGENT_MAX_STREAMS 8u  /* live streams at once (readers of running captures); more are refused */
#define AGENT_DEFAULT_HEARTBEAT_MS 5000u
#define AGENT_DEFAULT_SAMPLE_RATE 100u                      /* recorder: 1 in 100 packets */
#define AGENT_DEFAULT_SAMPLE_SNAPLEN 160u                   /* bytes kept per recorded packet */
#define AGENT_DEFAULT_HISTORY_BYTES (1024ull * 1024 * 1024) /* retention by size */
#define AGENT_MIN_HISTORY_BYTES (256ull * 1024)             /* four of the store's smallest segments */
#define AGENT_DEFAULT_HISTORY_AGE_S 86400u                  /* retention by age */
#define AGENT_MAX_HISTORY_AGE_S (366u * 86400u)

typedef struct AgentConfig {
	const char *controller;    /* base URL: http://host:port or https://host:port[/prefix] */
	const char *const *urls;   /* several controllers over one database (urls[0] == controller), or NULL */
	size_t n_urls;             /* 0..CTL_MAX_URLS: the agent moves to the next one on failure */
	const char *name;          /* 1..63 bytes of [A-Za-z0-9._-] */
	const char *colo;          /* same charset */
	const char *const *ifaces; /* interfaces for every capture (1..CAPTURE_MAX_IFACES) */
	size_t n_ifaces;           /* 0 with all_ifaces */
	bool all_ifaces;           /* every interface that is up, looked up at each capture */
	const char *token;         /* the agent's own key (agentkey.h) */
	const char *data_dir;      /* DATA: jobs/ and spool/ (created if missing) */
	const char *bucket_root;   /* file:// buckets must lie below it; NULL = file:// refused */
	const char *local_root;    /* file outputs: /var/captures/X is written as local_root/X; NULL = /var/captures */
	const char *cafile;        /* CA bundle for an https controller; NULL = system CAs */
	bool insecure;             /* https without certificate verification */
	uint32_t heartbeat_ms;     /* report interval without active jobs; 0 = 5000 (the controller may change it) */
	uint32_t ring_blocks;      /* per capture socket; 0 = 8 */
	uint32_t block_size;       /* bytes per ring block, a power of two; 0 = 2 MiB */
	uint32_t sample_rate;      /* recorder: 1 in N packets into DATA/history; 0 = no recorder */
	uint32_t sample_snaplen;   /* recorder: bytes kept per packet, 1..262144; 0 = 160 */
	uint64_t history_bytes;    /* recorder: retention by size, >= 256 KiB; 0 = 1 GiB */
	uint64_t history_age_s;    /* recorder: retention by age, up to 366 days; 0 = 86400 */
	uint32_t upload_budget_s;  /* an upload to a store gives up after this long without progress; 0 = 300 */
} AgentConfig;

/* Checks cfg alone (no I/O): -EINVAL with a message naming the setting. */
int agent_config_check(const AgentConfig *cfg, ErrBuf *err);

/* Runs until *stop becomes non-zero (a signal handler sets it; it is read at
 * least every 100 ms), then stops running captures (stop reason "user"),
 * uploads and reports them, lets running samples finish, stops the recorder
 * and seals its history, and returns 0. The recorder's problems are never
 * fatal (they show in the reports). Fatal errors (bad configuration,
 * an unusable data directory, the controller refusing the agent's token or
 * name at registration) return -errno with err. The caller restricts the
 * process' capabilities first (agentcaps_restrict) if it wants to. */
int agent_run(const AgentConfig *cfg, const volatile sig_atomic_t *stop, ErrBuf *err);
