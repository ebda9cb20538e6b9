/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one capture model (docs/ARCHITECTURE.md): a Job is what a user asked for, in any API
 * dialect; its JobParts are the shares of the agents that carry it out. Nothing
 * here knows HTTP or a dialect; handlers translate to and from these structs.
 *
 * Status machine of a job (this file and job.c own it; the words are
 * Cloudflare's, and every dialect renders these six states in its own):
 *
 *     pending ──► running ──► conversion_pending ──► conversion_running ──► success
 *        │           │                │                      │
 *        └───────────┴────────────────┴──────────────────────┴────────────► failed
 *
 *  - pending: stored, its parts assigned; no agent has started its share yet
 *    (a sample: no agent has answered yet).
 *  - running: packets are being captured: some part is running, or some
 *    parts have ended while others have not started yet (a sample: some
 *    agents answered, others not yet).
 *  - conversion_pending: the capture is over on every agent (no part is
 *    assigned or running), and at least one share is captured — its file is
 *    complete on its agent — but is not being delivered yet; none is
 *    uploading.
 *  - conversion_running: the capture is over on every agent and at least
 *    one share is being delivered to its output (uploading).
 *  - success: every part is terminal, at least one share was delivered (its
 *    object is in the bucket, or its sample answer is with the controller),
 *    none failed (a sample: at least one agent answered), and the capture
 *    holds at least one packet.
 *  - failed: error_message says why: a part failed or was lost (a sample:
 *    every part), or — the zero-packet rule, one rule for every kind of
 *    capture — no packet matched: a full capture that ended by its time
 *    limit or by a stop with no packet, and a sample whose window held
 *    none, all fail with a message asking to check the filter (Cloudflare's
 *    "No packets matched the filter in the time limit given. Please modify
 *    the filter or try again.", worded for each case).
 * A state may be skipped (a share delivered at once goes from running to
 * done between two looks), never revisited. Terminal statuses (success,
 * failed) never change again, with one exception asked for by a user:
 * retrying the uploads that ran out of their retry budget
 * (job_retry_uploads) moves a failed job whose every part is done or
 * upload_failed back to conversion_running. Otherwise the status is a pure
 * function of the parts (job_aggregate), so a controller restart, or agents
 * reporting late, can only move a job forward.
 *
 * Part states (an agent's share), in the only order they move in:
 *
 *     assigned ──► running ──► captured ──► uploading ──► done
 *        └────────────┴────────────┴────────────┼────────► failed | lost
 *                                               └────────► upload_failed
 *                   (job_retry_uploads: upload_failed ──► uploading, attempt + 1)
 *
 *  - assigned: given to the agent; it may not have received it yet.
 *  - running: the agent took it and captures.
 *  - captured: the capture ended (its stop_reason is set); the file is
 *    complete on the agent's disk and waits to be delivered.
 *  - uploading: the file is being written to its output (with an object
 *    store: its parts go up and the object is completed). A store that
 *    retries a failed upload stays here while it retries.
 *  - upload_failed: the capture is whole on the agent but the store did not
 *    take it within the retry budget; the agent keeps it (its spool) and
 *    the object is not made. Terminal, like failed, until a retry.
 *  - done: delivered (full: the object is in the bucket; sample: the
 *    controller stored the answer). failed: the agent says why (error).
 *    lost: the agent stopped reporting, restarted, or did not answer a
 *    sample in time.
 * A part's attempt counts those retries (0 for the first upload): a report
 * about an earlier attempt is stale and changes nothing (part_apply's
 * caller checks it), so a retry is never undone by a late report.
 * An agent may skip captured and uploading (it reports its state when it
 * changes, and a fast share changes twice between reports). A sample's part
 * goes from assigned to done (its answer stored) or to failed or lost.
 *
 * Counters: a full capture's packets, bytes and drops are the sums over its
 * parts (each agent applies the limits to its own share). A sample's packets
 * are those its download holds: the newest packet_limit of every answer
 * (bytes stays the sum of the answers). Stop reasons: a full capture's is
 * its first part's (time, packets, bytes, agent_shutdown when its agent was
 * stopped and delivered what it had), user when a stop was requested,
 * agent_lost or error when a part was lost or failed; a sample's is packets
 * when it holds packet_limit packets (the limit cut or filled it), else none.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define JOB_ID_LEN 32 /* lowercase hex, as Cloudflare's ids */
#define AGENT_NAME_MAX 63
#define JOB_MAX_PARTS 1024u

/* The model's own bounds: every dialect's bounds fit inside them (Cloudflare:
 * 300 s, 10,000 packets, 1e9 bytes; Azure: 18,000 s, 4,294,967,295 bytes,
 * continuous sessions of 7 days). A dialect checks its own, tighter ones. */
#define JOB_MAX_TIME_S 18000u         /* a classic capture: 5 h */
#define JOB_MAX_SESSION_S 604800u     /* a continuous session: 7 days */
#define JOB_MAX_OUTPUTS 4u            /* outputs of one capture */
#define JOB_MAX_FILE_COUNT 10000u     /* files of a continuous capture */
#define JOB_OUTPUT_TARGET_MAX 2048u   /* bytes of an output's URI or path */
#define JOB_OBJECT_MAX 200u           /* bytes of an object's name (bucket.h's object names) */
#define JOB_FILE_ROOT "/var/captures" /* file outputs lie below it; each agent maps it to its --local-root */
#define JOB_NAME_MAX 90u              /* bytes of each part of a resource name (Azure's resource groups) */
#define JOB_REQUEST_MAX (64u * 1024u) /* bytes of a dialect's stored request */
#define JOB_ECHO_MAX 1024u            /* bytes of echo_json */

typedef enum JobType {
	JOB_SIMPLE, /* "simple": answered from the agents' sampled history */
	JOB_FULL,   /* "full": live capture on the agents of one colo, into a bucket */
} JobType;

/* In the order a job moves through them (job_aggregate never lowers it). */
typedef enum JobStatus {
	JOB_PENDING,
	JOB_RUNNING,
	JOB_CONVERSION_PENDING,
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

/* In the order a part moves through them (part_apply never lowers it). The
 * values are stored (src/db/migrations.c spells the terminal ones out). */
typedef enum PartState {
	PART_ASSIGNED,
	PART_RUNNING,
	PART_CAPTURED,
	PART_UPLOADING,
	PART_DONE,
	PART_FAILED,
	PART_LOST,
	PART_UPLOAD_FAILED, /* the store did not take the capture in time; kept on the agent (see above) */
} PartState;

typedef enum JobOutputKind {
	JOB_OUTPUT_BUCKET, /* an object in a bucket the account owns (Cloudflare destination_conf, a blob URL) */
	JOB_OUTPUT_FILE,   /* a file on the agent's own disk (Azure filePath, localPath) */
} JobOutputKind;

/* Where a full capture's packets go; a capture has one or more. */
typedef struct JobOutput {
	JobOutputKind kind;
	char *target; /* owned: the bucket's URI, or the file's path below JOB_FILE_ROOT on the agent */
	char *object; /* owned, bucket only, or NULL: the object the capture is named as in the
		       * request (Azure's blob, after the bucket's prefix; see job_part_object) */
	bool held;    /* create only, never stored: a store whose key the controller holds
		       * (--azure-storage), which needs no ownership registration */
} JobOutput;

/* Which agents a full capture runs on. Used when it is created (the parts
 * are the result, and only they are stored). */
typedef enum JobTargetKind {
	JOB_TARGET_ANY,   /* colo_name: an agent's name or a colo (Cloudflare's colo_name) */
	JOB_TARGET_AGENT, /* colo_name: exactly one agent, by name (Azure virtualMachines/{name}) */
	JOB_TARGET_COLO,  /* colo_name: the agents of that colo, narrowed by the include and exclude
			   * lists (Azure virtualMachineScaleSets/{name}, scope) */
} JobTargetKind;

/* The name of a capture in a dialect whose captures are named resources:
 * Azure's …/resourceGroups/{group}/…/networkWatchers/{watcher}/packetCaptures/{name}.
 * All NULL for a capture known by its id only. A name is unique among the
 * account's named captures of one group and watcher, compared without regard
 * to case; deleting the resource takes the name away, never the capture. */
typedef struct JobName {
	char *group;   /* owned */
	char *watcher; /* owned */
	char *name;    /* owned */
} JobName;

/* Why a part failed, as far as the agent could tell (a lost part is
 * PART_LOST, whatever this says). */
typedef enum PartFailure {
	PART_FAIL_NONE,
	PART_FAIL_CAPTURE,  /* the capture itself: interfaces, filter, the engine */
	PART_FAIL_FILE,     /* a file output on the agent's disk */
	PART_FAIL_STORAGE,  /* a bucket output */
	PART_FAIL_INTERNAL, /* anything else: refused, out of resources, restarted */
} PartFailure;

/* Continuous (ring-buffer) capture: the packets go into a set of rotating
 * files rather than one, each published as soon as it is finished. */
typedef struct JobContinuous {
	bool on;                  /* false: one file (a classic capture) */
	bool ring;                /* keep only the newest file_count files; false keeps them all */
	uint32_t file_count;      /* 0..JOB_MAX_FILE_COUNT */
	uint64_t file_size;       /* bytes per file before the next one starts; 0 = no bound */
	uint32_t session_limit_s; /* 0..JOB_MAX_SESSION_S; 0 = none */
} JobContinuous;

typedef struct Job {
	char id[JOB_ID_LEN + 1];
	char account[JOB_ID_LEN + 1];
	JobType type;
	JobStatus status;
	char *filter_json;     /* owned: the filter as the creating dialect took it, canonical, to echo back
				* (Cloudflare: filter_v1 + pcapd extensions), "{}" = all */
	char *filter_model;    /* owned: the same filter as the one filter model in its neutral JSON form
				* (model/filtermodel.h): what agents compile; NULL = everything */
	char *echo_json;       /* owned: a JSON object the creating dialect keeps to render the capture as
				* it was asked (spellings the model does not carry, e.g. Cloudflare's
				* "colo" for colo_name); the model never reads it; NULL = nothing */
	uint32_t snaplen;      /* bytes kept per packet; 0 = the whole packet */
	uint32_t time_limit_s; /* 0..JOB_MAX_TIME_S; a sample: its window; 0 = none */
	uint32_t packet_limit; /* 0 = none (full only) */
	uint64_t byte_limit;   /* 0 = none */
	char *colo_name;       /* owned; full only, else NULL: the agent or colo name the capture runs on */
	JobOutput outputs[JOB_MAX_OUTPUTS]; /* full only: where the packets go */
	size_t n_outputs;                   /* full: 1..JOB_MAX_OUTPUTS; simple: 0 */
	JobContinuous continuous;           /* full only */
	int64_t offset_time_ns;             /* simple: the instant queried backwards from */
	int64_t submitted_ns;               /* creation, ns since the epoch */
	int64_t stop_requested_ns;          /* 0 = never */
	JobStop stop_reason;                /* see "Counters" above */
	char *error_message;                /* owned; NULL unless failed */
	uint64_t packets;                   /* full: sum over parts; sample: what its download holds */
	uint64_t bytes;                     /* sum over parts */
	uint64_t drops;                     /* sum of kernel drops over parts */
	int64_t finished_ns;                /* when it became terminal, 0 before */
	int64_t started_ns;                 /* when the first agent was capturing (job_aggregate), 0 before */
	JobName name;                       /* a named resource's name (Azure), or NULLs */
	char *request;                      /* owned: the creating dialect's own request, canonical, to echo back
					     * (Azure: the PacketCapture properties), or NULL */
	JobTargetKind target_kind;          /* creation only (not stored): how colo_name picks agents */
	char *target_include;               /* owned, creation only: JOB_TARGET_COLO keeps only these agents
					     * (comma-separated names); NULL = every agent of the colo */
	char *target_exclude;               /* owned, creation only: and leaves these out; NULL = none */
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
	uint32_t attempt;    /* the upload's attempt: 0, then one more per job_retry_uploads */
	PartFailure failure; /* PART_FAILED: what failed */
} JobPart;

const char *job_type_to_string(JobType t); /* "simple", "full" */
/* How a capture's pcapng interfaces are described (if_description): its type
 * and id, colo, filter and snaplen, cut to fit cap (at least 1 byte). */
void job_describe(const Job *j, char *buf, size_t cap);
const char *job_status_to_string(JobStatus s); /* Cloudflare's words */
const char *job_stop_to_string(JobStop s);     /* "none", "time", "packets", "bytes", "user", "agent_lost", "error",
						  "agent_shutdown" */
const char *part_state_to_string(PartState s); /* "assigned", "running", "captured", ... */
int part_state_from_string(const char *s, PartState *ret);     /* -EINVAL */
int job_stop_from_string(const char *s, JobStop *ret);         /* -EINVAL */
const char *part_failure_to_string(PartFailure f);             /* "none", "capture", "file", "storage", "internal" */
int part_failure_from_string(const char *s, PartFailure *ret); /* -EINVAL */
bool job_status_terminal(JobStatus s);
bool part_state_terminal(PartState s);

/* The first bucket output's URI, or NULL. */
const char *job_bucket(const Job *j);
/* Appends an output (target copied). -E2BIG past JOB_MAX_OUTPUTS, -ENOMEM. */
int job_add_output(Job *j, JobOutputKind kind, const char *target);
/* Appends a bucket output whose object is named (object copied; see
 * JobOutput). -E2BIG, -ENOMEM. */
int job_add_named_object(Job *j, const char *bucket, const char *object, bool held);
/* The object agent's share of a full capture is written as, into out[cap]:
 * pcap_<id>_<agent>.pcap; with a named object, that name for a capture on
 * one agent (JOB_TARGET_AGENT), else the name with "_<agent>" before its
 * extension (the last '.' not at its start): pc1.cap → pc1_vm1.cap. 0, or
 * -ENAMETOOLONG. */
int job_part_object(const Job *j, const char *agent, char *out, size_t cap);
/* File index (1, 2, …) of a continuous capture as an object, from its
 * share's object (job_part_object), into out[cap]: "_<index>" before the
 * extension, as the agent names its files: ring1.cap → ring1_3.cap,
 * ring1_vm1.cap → ring1_vm1_3.cap. 0, or -ENAMETOOLONG. */
int job_file_object(const char *object, uint64_t index, char *out, size_t cap);
#define JOB_FILE_SUFFIX_MAX 21u /* bytes job_file_object adds at most: '_' and a uint64's 20 digits */
const char *job_output_kind_to_string(JobOutputKind k);             /* "bucket", "file" */
int job_output_kind_from_string(const char *s, JobOutputKind *ret); /* -EINVAL */

/* The outputs as JSON text, [{"kind":"bucket","target":"file:///…"[,"object":"…"]}, …]
 * (malloc'd into *ret; NULL when there are none), for storage. -ENOMEM. */
int job_outputs_to_text(const Job *j, char **ret);
/* The reverse, appending to j->outputs. -EINVAL for a text that
 * job_outputs_to_text() did not write; -ENOMEM. */
int job_outputs_from_text(const char *text, Job *j);

/* The model's invariants on a request (any dialect), checked before it is
 * stored: limits within the model's bounds, outputs (full: 1..JOB_MAX_OUTPUTS,
 * each with a target; files below JOB_FILE_ROOT), continuous settings (full
 * only), the target's kind (include and exclude only for a colo), a name
 * (all three parts or none, each 1..JOB_NAME_MAX printable bytes without '/'),
 * the request's size and echo_json's. -EINVAL with err naming the model's
 * field first ("time_limit: …", "outputs[1].target: …",
 * "continuous.session_limit: …", "name: …"). */
int job_check(const Job *j, ErrBuf *err);

/* Fresh random 32-hex id (getrandom). */
int job_new_id(char ret[JOB_ID_LEN + 1]);
/* true if s[0..n) is exactly 32 lowercase or uppercase hex digits. */
bool job_id_valid(const char *s, size_t n);
/* The id s[0..JOB_ID_LEN) (already checked by job_id_valid()) as stored:
 * lowercase, NUL-terminated in out. */
void job_id_lower(const char *s, char out[JOB_ID_LEN + 1]);

/* Sets *n to copies of group, watcher and name (all three, or all NULL).
 * -ENOMEM. */
int job_name_set(JobName *n, const char *group, const char *watcher, const char *name);
bool job_named(const Job *j); /* the capture has a resource name */

/* Recomputes j's status, counters, stop reason, error message, start and
 * finished times from its parts, at time now. A terminal job is left alone. Returns true
 * if anything changed (the caller stores it). */
bool job_aggregate(Job *j, const JobPart *parts, size_t n, int64_t now_ns);

/* A job's parts counted rather than listed: what job_aggregate needs of a
 * sample while some of its agents have not answered yet (its status,
 * counters and start depend on how many parts are in each state and on
 * their sums, not on which part is which). A database reads it with one
 * aggregate query instead of every part (db_part_modify). */
typedef struct PartTally {
	uint64_t n;                          /* parts */
	uint64_t in[PART_UPLOAD_FAILED + 1]; /* parts in each state */
	uint64_t packets, bytes, drops;      /* their sums, saturating */
} PartTally;

void part_tally_add(PartTally *t, const JobPart *p);
/* job_aggregate from a tally: the same result as job_aggregate over the
 * parts the tally counts, true if anything changed. -EAGAIN, with j as it
 * was, where a tally does not suffice: j is not a sample (a full capture's
 * stop reason depends on which part says what), or every part has ended
 * (the final status names the parts that failed); then job_aggregate with
 * the parts. */
int job_aggregate_tally(Job *j, const PartTally *t, int64_t now_ns);

/* Applies an agent's report to a part: counters only grow, a terminal part
 * never changes, and the state only moves forward. Returns true if changed. */
bool part_apply(JobPart *p, PartState state, uint64_t packets, uint64_t bytes, uint64_t drops, JobStop reason,
		const char *object, const char *error, int64_t now_ns);

/* Marks a non-terminal part lost with a reason. Returns true if changed. */
bool part_lose(JobPart *p, const char *why, int64_t now_ns);

/* A user's retry of the uploads that failed: allowed when j is a failed full
 * job whose every part is done or upload_failed, at least one the latter.
 * Those parts go back to uploading with their attempt one higher and their
 * error cleared; the job to conversion_running without its error message or
 * finished time. -EINVAL (a sample, or not failed), -EALREADY (not failed
 * yet, or failed for another reason: err says which agent and why; nothing
 * to retry; a continuous capture, whose files each had their upload and
 * whose ring may have moved on) with err saying why; nothing changes then. */
int job_retry_uploads(Job *j, JobPart *parts, size_t n, int64_t now_ns, ErrBuf *err);

/* Whether a and b differ in anything a part stores (state, counters, stop
 * reason, object, error, time, attempt, failure): which parts an update
 * changed, so that only those are written. */
bool part_differs(const JobPart *a, const JobPart *b);
/* Deep copy of v[0..n) into *ret (free with parts_free); -ENOMEM. */
int parts_copy(const JobPart *v, size_t n, JobPart **ret);
/* Moves the parts that differ from their copy in before[] (parts_copy
 * before the change) to the front of parts[], before[] alike; returns how
 * many: one agent's report to a job of 1,000 agents writes one row. */
size_t parts_changed_first(JobPart *parts, JobPart *before, size_t n);

void job_done(Job *j);      /* frees owned strings, leaves zeros; NULL is fine */
void part_done(JobPart *p); /* same */
void jobs_free(Job *v, size_t n);
void parts_free(JobPart *v, size_t n);
/* Deep copy; -ENOMEM. */
int job_copy(const Job *src, Job *ret);
