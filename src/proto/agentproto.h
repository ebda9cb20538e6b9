/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's side of the agent ↔ controller protocol (docs/AGENT-PROTOCOL.md),
 * as pure functions: reports built into JSON text, the controller's answers
 * parsed from bytes. No socket or file here, so everything can be tested and
 * fuzzed in memory.
 *
 * The same job object serves the report and the agent's own record of a job
 * on disk (DATA/jobs/<id>.json), so a restarted agent reports exactly what it
 * would have reported before.
 *
 * Bounds on what the controller sends: AGENTPROTO_MAX_BODY bytes per answer,
 * AGENTPROTO_MAX_STARTS starts and AGENTPROTO_MAX_IDS ids per list.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "model/job.h"

#define AGENTPROTO_MAX_BODY (4u << 20)
#define AGENTPROTO_MAX_STARTS 256u
#define AGENTPROTO_MAX_IDS 4096u
#define AGENTPROTO_OBJECT_MAX 200u   /* bytes of an object name (bucket.h) */
#define AGENTPROTO_MAX_TIME_S 86400u /* longest time_limit an agent accepts */
#define AGENTPROTO_DEFAULT_POLL_MS 25000u
#define AGENTPROTO_MAX_POLL_MS 60000u
#define AGENTPROTO_MAX_SAMPLE_PACKETS 1000000u      /* packet_limit of a sample (HIST_MAX_QUERY_PACKETS) */
#define AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS 5000u /* when a sample start gives none */
#define AGENTPROTO_MAX_SAMPLE_DEADLINE_MS 3600000u  /* longer ones are clamped */
#define AGENTPROTO_MAX_SAMPLE_BODY (64u << 20)      /* the controller takes answers up to 64 MiB */

/* What the agent says about one job. */
typedef struct AgentJobReport {
	char id[JOB_ID_LEN + 1];                /* lowercase hex */
	PartState state;                        /* PART_RUNNING, PART_UPLOADING, PART_DONE or PART_FAILED */
	uint64_t packets, bytes, drops;         /* drops: kernel drops for lack of ring space */
	JobStop stop_reason;                    /* JOB_STOP_NONE while running */
	char object[AGENTPROTO_OBJECT_MAX + 1]; /* "" = none */
	char error[sizeof(((ErrBuf *)0)->msg)]; /* "" = none; why the job failed */
} AgentJobReport;

/* Who the agent is (the constant part of every report). */
typedef struct AgentIdent {
	const char *name;
	const char *colo;
	const char *version;
	const char *const *ifaces;
	size_t n_ifaces;
} AgentIdent;

/* The recorder's state, the report's "history" member. sample_rate 0 means
 * the recorder is off: then only recording (false), error and sample_rate are
 * sent. */
typedef struct AgentHistory {
	bool recording;                         /* packets are being recorded now */
	char error[sizeof(((ErrBuf *)0)->msg)]; /* "" = none; why not recording */
	uint64_t packets, bytes;                /* in the history (bytes: captured lengths) */
	uint64_t segments;                      /* segment files, the open ones included */
	uint64_t drops;                         /* sampled but not recorded: ring overflow, write errors */
	uint64_t oldest_ns, newest_ns;          /* time span, ns since the epoch; 0 = empty */
	uint32_t sample_rate;                   /* 1-in-N; 0 = recorder off */
} AgentHistory;

/* A start from a poll answer. A start whose id is valid but whose other fields
 * are not is kept, with error set, so that the agent reports it failed.
 * A full capture uses time_limit_s, byte_limit, destination_conf and object;
 * a sample (type "simple") from_ns, to_ns and deadline_ms; both filter and
 * packet_limit. */
typedef struct AgentJobSpec {
	char id[JOB_ID_LEN + 1];                /* lowercased */
	bool sample;                            /* type "simple": answered from the history */
	char *filter;                           /* owned: compact JSON text of "filter", "{}" when absent/null */
	uint64_t time_limit_s;                  /* 0 = none */
	uint64_t packet_limit;                  /* 0 = none (full); 1..AGENTPROTO_MAX_SAMPLE_PACKETS (sample) */
	uint64_t byte_limit;                    /* 0 = none */
	uint64_t from_ns, to_ns;                /* sample window, both ends included, from_ns <= to_ns */
	uint32_t deadline_ms;                   /* sample: the controller waits this long from its answer */
	char *destination_conf;                 /* owned, or NULL (always NULL for a sample) */
	char object[AGENTPROTO_OBJECT_MAX + 1]; /* "" = the agent chooses */
	char error[sizeof(((ErrBuf *)0)->msg)]; /* "" = the spec is usable */
} AgentJobSpec;

typedef struct AgentPollAnswer {
	AgentJobSpec *start; /* owned */
	size_t n_start;
	char (*stop)[JOB_ID_LEN + 1]; /* owned; lowercased */
	size_t n_stop;
	size_t n_skipped; /* starts or stops without a usable id (ignored) */
} AgentPollAnswer;

typedef struct AgentReportAnswer {
	char (*ack)[JOB_ID_LEN + 1]; /* owned; lowercased */
	size_t n_ack;
	uint32_t heartbeat_ms;    /* 0 = not given; else clamped to 1000..60000 */
	uint32_t poll_timeout_ms; /* 0 = not given; else clamped to 1000..60000 */
} AgentReportAnswer;

/* 1..63 bytes of [A-Za-z0-9._-] (agent names and colos). */
bool agentproto_name_valid(const char *s);
/* 1..200 bytes of [A-Za-z0-9._-], not starting with '.' (bucket object names). */
bool agentproto_object_valid(const char *s);

/* The body of POST /agent/v1/report, malloc'd and NUL-terminated. hist NULL:
 * no "history" member. */
int agentproto_report_build(const AgentIdent *who, bool hello, const AgentHistory *hist, const AgentJobReport *jobs,
			    size_t n, char **ret, ErrBuf *err);
/* The 200 answer to a report. */
int agentproto_report_answer_parse(const char *p, size_t n, AgentReportAnswer *ret, ErrBuf *err);
void agentproto_report_answer_done(AgentReportAnswer *a); /* NULL is fine */

/* The 200 answer to GET /agent/v1/poll. */
int agentproto_poll_parse(const char *p, size_t n, AgentPollAnswer *ret, ErrBuf *err);
void agentproto_poll_done(AgentPollAnswer *a); /* NULL is fine */
void agentproto_spec_done(AgentJobSpec *s);    /* NULL is fine */

/* One job as a JSON object text (the report's job entry), malloc'd. */
int agentproto_job_to_json(const AgentJobReport *r, char **ret, ErrBuf *err);
/* The reverse, strict: what agentproto_job_to_json() wrote. */
int agentproto_job_from_json(const char *p, size_t n, AgentJobReport *ret, ErrBuf *err);

/* The message of an error answer ({"errors":[{"code":..,"message":..}]}) in
 * ret[cap], or "" when the body holds none. */
void agentproto_error_message(const char *p, size_t n, char *ret, size_t cap);
