/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one capture model (DESIGN.md): a Job is what a user asked for, in any API
 * dialect; its JobParts are the shares of the agents that carry it out. Nothing
 * here knows HTTP or a dialect; handlers translate to and from these structs.
 *
 * Status machine of a job (this file and job.c own it):
 *
 *     pending ──► running ──► conversion_running ──► success
 *        │           │               │
 *        └───────────┴───────────────┴──────────────► failed
 *
 *  - pending: stored, parts assigned, no agent has started yet.
 *  - running: at least one part is running.
 *  - conversion_running: no part is running any more and at least one is
 *    uploading its file to the bucket (Cloudflare's "conversion").
 *  - success: every part is done (its object is in the bucket, or its sample
 *    answer is with the controller) and at least one packet was captured.
 *  - failed: some part failed or was lost, or no packet matched; error_message
 *    says which agents and why.
 *  A simple (sample) job succeeds when every part is terminal and at least one
 *  agent answered (done); the others stay listed with their reason. It fails
 *  only if no agent answered. Zero matching packets is a valid answer.
 *  (conversion_pending is in Cloudflare's enum but is never entered.)
 * Terminal statuses (success, failed) never change again. The status is a pure
 * function of the parts (job_aggregate), so a controller restart, or agents
 * reporting late, can only move a job forward.
 *
 * Part states: assigned → running → uploading → done | failed | lost.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define JOB_ID_LEN 32 /* lowercase hex, as Cloudflare's ids */
#define AGENT_NAME_MAX 63
#define JOB_MAX_PARTS 1024u

typedef enum JobType {
	JOB_SIMPLE, /* "simple": answered from the agents' sampled history */
	JOB_FULL,   /* "full": live capture on the agents of one colo, into a bucket */
} JobType;

typedef enum JobStatus {
	JOB_PENDING,
	JOB_RUNNING,
	JOB_CONVERSION_PENDING, /* never entered; kept so every Cloudflare value has a code */
	JOB_CONVERSION_RUNNING,
	JOB_SUCCESS,
	JOB_FAILED,
} JobStatus;

typedef enum JobStop {
	JOB_STOP_NONE,
	JOB_STOP_TIME,     /* time_limit reached */
	JOB_STOP_PACKETS,  /* packet_limit reached */
	JOB_STOP_BYTES,    /* byte_limit reached */
	JOB_STOP_USER,     /* stop requested through the API */
	JOB_STOP_LOST,     /* an agent stopped answering */
	JOB_STOP_ERROR,    /* an agent failed */
	JOB_STOP_SHUTDOWN, /* the agent was stopped (SIGTERM) and uploaded what it had */
} JobStop;

typedef enum PartState {
	PART_ASSIGNED,
	PART_RUNNING,
	PART_UPLOADING,
	PART_DONE,
	PART_FAILED,
	PART_LOST,
} PartState;

typedef struct Job {
	char id[JOB_ID_LEN + 1];
	char account[JOB_ID_LEN + 1];
	JobType type;
	JobStatus status;
	char *filter_json;         /* owned: canonical filter object (filter_v1 + pcapd extensions), "{}" = all */
	uint32_t time_limit_s;     /* 1..300 */
	uint32_t packet_limit;     /* 0 = none (full only) */
	uint64_t byte_limit;       /* 0 = none */
	char *colo_name;           /* owned; full only, else NULL */
	char *destination_conf;    /* owned; full only, else NULL */
	int64_t offset_time_ns;    /* simple: the instant queried backwards from */
	int64_t submitted_ns;      /* creation, ns since the epoch */
	int64_t stop_requested_ns; /* 0 = never */
	JobStop stop_reason;       /* the first part's reason, or USER/LOST/ERROR */
	char *error_message;       /* owned; NULL unless failed */
	uint64_t packets;          /* sum over parts */
	uint64_t bytes;            /* sum over parts */
	uint64_t drops;            /* sum of kernel drops over parts */
	int64_t finished_ns;       /* when it became terminal, 0 before */
} Job;

typedef struct JobPart {
	char job_id[JOB_ID_LEN + 1];
	char agent[AGENT_NAME_MAX + 1];
	PartState state;
	uint64_t packets, bytes, drops;
	JobStop stop_reason;
	char *object; /* owned: object name in the bucket (full) or in the controller's store (simple) */
	char *error;  /* owned: why the part failed or was lost */
	int64_t updated_ns;
} JobPart;

const char *job_type_to_string(JobType t);     /* "simple", "full" */
const char *job_status_to_string(JobStatus s); /* Cloudflare's words */
const char *job_stop_to_string(JobStop s);     /* "none", "time", "packets", "bytes", "user", "agent_lost", "error",
						  "agent_shutdown" */
const char *part_state_to_string(PartState s); /* "assigned", "running", ... */
int part_state_from_string(const char *s, PartState *ret); /* -EINVAL */
int job_stop_from_string(const char *s, JobStop *ret);     /* -EINVAL */
bool job_status_terminal(JobStatus s);
bool part_state_terminal(PartState s);

/* Fresh random 32-hex id (getrandom). */
int job_new_id(char ret[JOB_ID_LEN + 1]);
/* true if s[0..n) is exactly 32 lowercase or uppercase hex digits. */
bool job_id_valid(const char *s, size_t n);

/* Recomputes j's status, counters, stop reason, error message and finished
 * time from its parts, at time now. A terminal job is left alone. Returns true
 * if anything changed (the caller stores it). */
bool job_aggregate(Job *j, const JobPart *parts, size_t n, int64_t now_ns);

/* Applies an agent's report to a part: counters only grow, a terminal part
 * never changes, and the state only moves forward. Returns true if changed. */
bool part_apply(JobPart *p, PartState state, uint64_t packets, uint64_t bytes, uint64_t drops, JobStop reason,
		const char *object, const char *error, int64_t now_ns);

/* Marks a non-terminal part lost with a reason. Returns true if changed. */
bool part_lose(JobPart *p, const char *why, int64_t now_ns);

void job_done(Job *j);      /* frees owned strings, leaves zeros; NULL is fine */
void part_done(JobPart *p); /* same */
void jobs_free(Job *v, size_t n);
void parts_free(JobPart *v, size_t n);
/* Deep copy; -ENOMEM. */
int job_copy(const Job *src, Job *ret);
