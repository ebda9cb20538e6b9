/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent ↔ controller protocol (docs/AGENT-PROTOCOL.md), both sides, as
 * pure functions over bytes and JSON: no socket or file here, so everything
 * can be tested and fuzzed in memory. The agent builds reports and parses
 * poll answers; the controller parses reports and builds poll answers; each
 * message has one struct that both sides use.
 *
 *   agent                                   controller
 *   agentproto_report_build()   ── report ──► agentproto_report_parse()
 *   agentproto_report_answer_parse() ◄─ 200 ── agentproto_report_answer_build()
 *   agentproto_poll_parse()     ◄── poll ──── agentproto_spec_from_job(),
 *                                             agentproto_poll_build()
 *
 * The same job object serves the report and the agent's own record of a job
 * on disk (DATA/jobs/<id>.json), so a restarted agent reports exactly what it
 * would have reported before.
 *
 * Parsing is strict about what the reader relies on (ids, types, bounds) and
 * ignores members it does not know, so that either side can add some without
 * breaking the other. A start whose id is valid but whose other fields are
 * not is kept with its error set, so that the agent reports it failed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/util.h"
#include "model/job.h"

/* ---- the bounds, for both sides ---- */

#define AGENTPROTO_MAX_BODY (20u << 20)        /* a poll or report answer (256 starts of the largest filter) */
#define AGENTPROTO_MAX_REPORT_BODY (1u << 20)  /* a report (the controller's body limit) */
#define AGENTPROTO_MAX_SAMPLE_BODY (64u << 20) /* an answer to a sample (a pcap) */
#define AGENTPROTO_MAX_STARTS 256u             /* starts per poll answer */
#define AGENTPROTO_MAX_IDS 4096u               /* ids per list (stops, acks) */
#define AGENTPROTO_MAX_REPORT_JOBS 1024u       /* jobs per report */
#define AGENTPROTO_FIELD_MAX 512u              /* bytes of a report's strings (version, error, ...) */
#define AGENTPROTO_IFACES_MAX 4096u            /* bytes of a report's interface names, comma-joined */
#define AGENTPROTO_IFACE_NAME_MAX 64u          /* bytes of one interface name */
#define AGENTPROTO_HISTORY_MEMBERS 16u         /* members of a report's "history" */
#define AGENTPROTO_HISTORY_TEXT 512u           /* bytes of a history member's name or string */
#define AGENTPROTO_OBJECT_MAX 200u             /* bytes of an object name (bucket.h) */
#define AGENTPROTO_DEFAULT_POLL_MS 25000u
#define AGENTPROTO_MAX_POLL_MS 60000u
#define AGENTPROTO_MIN_INTERVAL_MS 1000u /* heartbeat and poll hold, as the agent clamps them */
#define AGENTPROTO_MAX_INTERVAL_MS 60000u
#define AGENTPROTO_MAX_SAMPLE_PACKETS 1000000u      /* packet_limit of a sample (HIST_MAX_QUERY_PACKETS) */
#define AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS 5000u /* when a sample start gives none */
#define AGENTPROTO_MAX_SAMPLE_DEADLINE_MS 3600000u  /* longer ones are clamped */
#define AGENTPROTO_URL_MAX 4096u                    /* bytes of a signed URL */
#define AGENTPROTO_UPLOAD_ID_MAX 1024u              /* bytes of a store's upload id */
#define AGENTPROTO_MAX_GRANT_PARTS 64u              /* part URLs per grant */
#define AGENTPROTO_MAX_ATTEMPT 1000000u             /* retries of one upload */
#define AGENTPROTO_MAX_STREAMS 64u                  /* stream orders per poll answer */
#define AGENTPROTO_STREAM_CHUNK_MAX (512u << 10)    /* bytes of one stream chunk (a POST body) */
#define AGENTPROTO_STREAM_TAP_LEN 16u               /* hex digits of a tap id */
#define AGENTPROTO_STREAM_IDLE_MS 250u              /* an idle agent's empty chunk, this often */
#define AGENTPROTO_STREAM_SLACK_MS                                                                                     \
	500u /* watermark: the file's end is vouched for up to                                                         \
		this long before the moment it was read */

/* ---- reports ---- */

/* What the agent says about one job. */
typedef struct AgentJobReport {
	char id[JOB_ID_LEN + 1];                /* lowercase hex */
	PartState state;                        /* PART_RUNNING, _CAPTURED, _UPLOADING, _DONE or _FAILED */
	uint64_t packets, bytes, drops;         /* drops: kernel drops for lack of ring space */
	JobStop stop_reason;                    /* JOB_STOP_NONE while running */
	char object[AGENTPROTO_OBJECT_MAX + 1]; /* "" = none; informational (the controller names objects) */
	char error[sizeof(((ErrBuf *)0)->msg)]; /* "" = none; why the job failed */
	uint32_t attempt;                       /* the upload's attempt this report is about (model/job.h) */
	PartFailure failure;                    /* PART_FAILED: what failed ("failure"; absent = none) */
} AgentJobReport;

/* Who the agent is (the constant part of every report it builds). */
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

/* A report as the controller reads it. */
typedef struct AgentReport {
	char name[AGENT_NAME_MAX + 1];
	char colo[AGENT_NAME_MAX + 1];              /* "" = none */
	char version[AGENTPROTO_FIELD_MAX + 1];     /* "" = not given */
	char interfaces[AGENTPROTO_IFACES_MAX + 1]; /* comma-joined */
	bool hello;                                 /* a new session (docs/AGENT-PROTOCOL.md) */
	json_t *history;                            /* owned: the recorder's object as sent, or NULL */
	AgentJobReport *jobs;                       /* owned */
	size_t n_jobs;
} AgentReport;

/* The controller's 200 answer to a report. */
typedef struct AgentReportAnswer {
	char (*ack)[JOB_ID_LEN + 1]; /* owned; lowercased */
	size_t n_ack;
	uint32_t heartbeat_ms;    /* parsed: 0 = not given, else clamped to the intervals above */
	uint32_t poll_timeout_ms; /* same */
} AgentReportAnswer;

/* ---- uploads to object stores: signed URLs ----
 *
 * An agent holds no key of a store. For each object the controller signs
 * the requests of its upload in parts (S3 multipart: create, upload part,
 * complete, abort; Azure: put block, put block list, with a SAS) and hands
 * them over in the start and, while the upload goes on, in the answers to
 * POST /agent/v1/upload (docs/AGENT-PROTOCOL.md). */

/* A request an agent may send to a store as it is: method, signed URL and
 * at most one header the signature needs. */
typedef struct AgentSignedRequest {
	char method[8];  /* "GET", "PUT", "POST", "DELETE"; "" = not granted */
	char *url;       /* owned; http:// or https:// */
	char header[64]; /* "Name: value" to send, or "" */
} AgentSignedRequest;

typedef enum AgentStore {
	AGENT_STORE_S3,    /* S3, R2, GCS (XML API), radosgw: multipart uploads */
	AGENT_STORE_AZURE, /* Azure Blob: blocks and a block list */
} AgentStore;

/* Signed requests for one object's upload (the start's outputs[].upload,
 * and the answer to POST /agent/v1/upload). */
typedef struct AgentUploadGrant {
	AgentStore store;
	uint32_t expires_in_s; /* the URLs' validity, counted from when the agent got them */
	uint64_t part_size;    /* size of the parts but the last (the first 1000; then doubled per 1000) */
	/* S3: "" until the agent created the upload; Azure: the controller's block-id prefix */
	char upload_id[AGENTPROTO_UPLOAD_ID_MAX + 1];
	AgentSignedRequest create;   /* S3: POST …?uploads (its answer names the UploadId) */
	AgentSignedRequest complete; /* S3: POST …?uploadId (ETags); Azure: PUT …?comp=blocklist */
	AgentSignedRequest abort;    /* S3: DELETE …?uploadId */
	AgentSignedRequest check;    /* GET the object (with a Range): is it there, how big */
	AgentSignedRequest remove;   /* DELETE the object: a continuous ring's file that left the ring */
	uint32_t first_part;         /* parts[i] uploads part first_part + i */
	AgentSignedRequest *parts;   /* owned */
	size_t n_parts;
} AgentUploadGrant;

/* What an agent asks of POST /agent/v1/upload?name=NAME&id=ID. */
typedef struct AgentUploadRequest {
	uint32_t attempt;                             /* the upload's attempt (the start's) */
	char upload_id[AGENTPROTO_UPLOAD_ID_MAX + 1]; /* S3: the UploadId, "" before create */
	uint32_t first_part, n_parts;                 /* part URLs wanted; n_parts <= AGENTPROTO_MAX_GRANT_PARTS */
	bool create, complete, abort, check;          /* which other requests */
	bool remove;                                  /* DELETE of the object ("delete"; a file's only) */
	uint64_t file; /* a continuous capture's file 1, 2, … (job_file_object); 0 = the share's object */
} AgentUploadRequest;

/* The agent: the request's body, malloc'd. */
int agentproto_upload_request_build(const AgentUploadRequest *q, char **ret, ErrBuf *err);
/* The controller: a request body (parsed JSON) into *ret; -EINVAL naming the
 * member. */
int agentproto_upload_request_parse(const json_t *body, AgentUploadRequest *ret, ErrBuf *err);
/* The controller: the grant as the endpoint's answer, malloc'd. */
int agentproto_grant_build(const AgentUploadGrant *g, char **ret, ErrBuf *err);
/* The agent: the endpoint's answer; every URL checked (http(s), bounded, no
 * blank or control byte). */
int agentproto_grant_parse(const char *p, size_t n, AgentUploadGrant *ret, ErrBuf *err);
void agentproto_grant_done(AgentUploadGrant *g); /* NULL is fine; frees what it holds, not g */
/* Moves src's contents into dst (dst's are freed first): a refresh. */
void agentproto_grant_move(AgentUploadGrant *dst, AgentUploadGrant *src);

/* ---- work: starts and stops ---- */

/* One output of a start: a bucket with the object this agent writes, or a
 * file on the agent's disk. */
typedef struct AgentOutput {
	JobOutputKind kind;
	char *target;                           /* owned: the bucket URI (secrets REDACTED), or the file's path */
	char object[AGENTPROTO_OBJECT_MAX + 1]; /* bucket: the object name; "" = the agent chooses */
	AgentUploadGrant *upload;               /* owned: a store's signed URLs; NULL for file:// */
} AgentOutput;

/* A start. A full capture uses snaplen, the limits, outputs and continuous;
 * a sample (type "simple") from_ns, to_ns and deadline_ms; both filter and
 * packet_limit. */
typedef struct AgentJobSpec {
	char id[JOB_ID_LEN + 1];              /* lowercased */
	bool sample;                          /* type "simple": answered from the history */
	char *filter;                         /* owned: the filter model's JSON text (model/filtermodel.h), "{}" */
	uint32_t snaplen;                     /* bytes kept per packet; 0 = whole packets */
	uint64_t time_limit_s;                /* 0 = none; at most JOB_MAX_TIME_S */
	uint64_t packet_limit;                /* 0 = none (full); 1..AGENTPROTO_MAX_SAMPLE_PACKETS (sample) */
	uint64_t byte_limit;                  /* 0 = none */
	AgentOutput outputs[JOB_MAX_OUTPUTS]; /* full: 1..JOB_MAX_OUTPUTS */
	size_t n_outputs;
	JobContinuous continuous;               /* full: continuous (rotating files) mode */
	uint64_t from_ns, to_ns;                /* sample window, both ends included, from_ns <= to_ns */
	uint32_t deadline_ms;                   /* sample: the controller waits this long from its answer */
	uint32_t attempt;                       /* full: 0 = capture; > 0 = retry the upload of the capture kept */
	char error[sizeof(((ErrBuf *)0)->msg)]; /* "" = the spec is usable */
} AgentJobSpec;

/* A stream order: send job id's capture file, from its first byte, to the
 * controller's tap (docs/AGENT-PROTOCOL.md, "Live streams"). */
typedef struct AgentStreamOrder {
	char id[JOB_ID_LEN + 1];                 /* lowercased */
	char tap[AGENTPROTO_STREAM_TAP_LEN + 1]; /* lowercased hex */
} AgentStreamOrder;

/* A poll answer: the controller builds it, the agent parses it. */
typedef struct AgentPollAnswer {
	AgentJobSpec *start; /* owned; at most AGENTPROTO_MAX_STARTS */
	size_t n_start;
	char (*stop)[JOB_ID_LEN + 1]; /* owned; lowercased; at most AGENTPROTO_MAX_IDS */
	size_t n_stop;
	AgentStreamOrder *streams; /* owned; at most AGENTPROTO_MAX_STREAMS */
	size_t n_streams;
	size_t n_skipped; /* parsed: starts, stops or stream orders without a usable id (ignored) */
} AgentPollAnswer;

/* 1..63 bytes of [A-Za-z0-9._-] (agent names and colos). */
bool agentproto_name_valid(const char *s);
/* 1..200 bytes of [A-Za-z0-9._-], not starting with '.' (bucket object names). */
bool agentproto_object_valid(const char *s);

/* ---- the agent's side ---- */

/* The body of POST /agent/v1/report, malloc'd and NUL-terminated. hist NULL:
 * no "history" member. */
int agentproto_report_build(const AgentIdent *who, bool hello, const AgentHistory *hist, const AgentJobReport *jobs,
			    size_t n, char **ret, ErrBuf *err);
/* The 200 answer to a report. */
int agentproto_report_answer_parse(const char *p, size_t n, AgentReportAnswer *ret, ErrBuf *err);
/* The 200 answer to GET /agent/v1/poll. */
int agentproto_poll_parse(const char *p, size_t n, AgentPollAnswer *ret, ErrBuf *err);

/* One job as a JSON object text (the report's job entry, the agent's record),
 * malloc'd. */
int agentproto_job_to_json(const AgentJobReport *r, char **ret, ErrBuf *err);
/* The reverse, strict: what agentproto_job_to_json() wrote. */
int agentproto_job_from_json(const char *p, size_t n, AgentJobReport *ret, ErrBuf *err);

/* The message of an error answer ({"errors":[{"code":..,"message":..}]}) in
 * ret[cap], or "" when the body holds none. */
void agentproto_error_message(const char *p, size_t n, char *ret, size_t cap);

/* ---- the controller's side ---- */

/* A report body (a JSON object, already parsed from at most
 * AGENTPROTO_MAX_REPORT_BODY bytes) into *ret (free with agentproto_report_done).
 * -EINVAL (or -E2BIG) with err naming the member ("jobs[2].state: must be
 * running, captured, uploading, done or failed"); -ENOMEM. A job's object name, which
 * the controller never uses, is kept only when it is a valid one. */
int agentproto_report_parse(const json_t *body, AgentReport *ret, ErrBuf *err);
void agentproto_report_done(AgentReport *r); /* NULL is fine */

/* The 200 answer to a report, malloc'd: ack, heartbeat_ms and poll_timeout_ms
 * (0: left out). */
int agentproto_report_answer_build(const AgentReportAnswer *a, char **ret, ErrBuf *err);

/* The start of part p of job j, into *ret (free with agentproto_spec_done):
 * the job's filter model, limits, outputs (a bucket's object is the part's;
 * targets as they are: the caller REDACTS them and adds the grants) and
 * continuous settings, the part's attempt; for a sample its window
 * [offset_time - time_limit, offset_time] and deadline_ms (how long the
 * controller still waits). */
int agentproto_spec_from_job(const Job *j, const JobPart *p, uint32_t deadline_ms, AgentJobSpec *ret, ErrBuf *err);

/* The 200 answer to a poll, malloc'd: {"start":[...],"stop":[...]}. */
int agentproto_poll_build(const AgentPollAnswer *a, char **ret, ErrBuf *err);

/* ---- live streams: POST /agent/v1/stream ---- */

/* Why an agent cannot stream a capture (the chunk's "error"). */
typedef enum AgentStreamError {
	AGENT_STREAM_OK,
	AGENT_STREAM_UNKNOWN, /* "unknown": the agent has no such capture */
	AGENT_STREAM_GONE,    /* "gone": its file was delivered and removed before the order came */
	AGENT_STREAM_BUSY,    /* "busy": the agent streams as many taps as it may */
	AGENT_STREAM_READ,    /* "read": reading its own file failed */
} AgentStreamError;

/* A chunk's query: who sends which bytes of which capture to which tap. The
 * body is the bytes [offset, offset + length) of the agent's capture file,
 * whole items only (the file header, records, pcapng blocks). */
typedef struct AgentStreamChunk {
	char name[AGENT_NAME_MAX + 1];
	char id[JOB_ID_LEN + 1];
	char tap[AGENTPROTO_STREAM_TAP_LEN + 1];
	uint64_t offset;        /* of the body's first byte in the file */
	uint64_t watermark_ns;  /* every packet stamped before this is in the file up to the body's end; 0 = no claim */
	bool end;               /* the body ends the file: the capture is over */
	AgentStreamError error; /* not OK: nothing to stream (implies end) */
} AgentStreamChunk;

/* The controller's 200 answer to a chunk. */
typedef struct AgentStreamAnswer {
	bool more;                             /* send on, from offset; false: the tap is over, stop */
	uint64_t offset;                       /* the next byte the controller wants */
	char reason[AGENTPROTO_FIELD_MAX + 1]; /* !more: why ("the reader left") */
} AgentStreamAnswer;

/* "unknown", "gone", "busy", "read" ("" for OK). */
const char *agentproto_stream_error_to_string(AgentStreamError e);
/* 16 hex digits, copied lowercased into out; false otherwise. */
bool agentproto_tap_valid(const char *s, char out[AGENTPROTO_STREAM_TAP_LEN + 1]);
/* The path and query of the chunk's POST ("/agent/v1/stream?name=…") into
 * ret[cap]; -ENAMETOOLONG. */
int agentproto_stream_path(const AgentStreamChunk *c, char *ret, size_t cap);
/* The query back, each value got through get(ctx, key) (NULL: absent):
 * -EINVAL naming the parameter. */
int agentproto_stream_parse(const char *(*get)(void *ctx, const char *key), void *ctx, AgentStreamChunk *ret,
			    ErrBuf *err);
/* The 200 answer, malloc'd; and the agent's reading of it. */
int agentproto_stream_answer_build(const AgentStreamAnswer *a, char **ret, ErrBuf *err);
int agentproto_stream_answer_parse(const char *p, size_t n, AgentStreamAnswer *ret, ErrBuf *err);

/* ---- both ---- */

void agentproto_report_answer_done(AgentReportAnswer *a); /* NULL is fine */
void agentproto_poll_done(AgentPollAnswer *a);            /* NULL is fine */
void agentproto_spec_done(AgentJobSpec *s);               /* NULL is fine */
