/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The controller's service layer: what every API dialect calls. It owns the
 * job lifecycle on the controller side (create → assign parts to agents →
 * apply agent reports → aggregate, see model/job.h), the in-memory registry of
 * online agents with their parked long-polls, and a housekeeping thread that
 * ends parked polls at their deadline and marks parts lost when their agent
 * stops reporting.
 *
 * Losing a part: a non-terminal part whose agent has not reported for
 * agent_timeout is lost — but never within `grace` of the controller's start,
 * so that agents which kept capturing while the controller was down can
 * reconnect and reconcile their jobs first.
 *
 * Threads: every function may be called from any HTTP worker thread. Job
 * mutations are database transactions that hold the job's row (reports are
 * about one per second per running job); reads go straight to the database.
 *
 * Several controllers may share one PostgreSQL database (fleet.c): any of
 * them answers any request; the housekeeping runs on the one that holds the
 * lease.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bucket/bucket.h"
#include "common/util.h"
#include "db/db.h"
#include "model/apierror.h"
#include "model/job.h"
#include "proto/agentproto.h"

#define SERVICE_STREAM_MEMORY (512u << 20)
#define SERVICE_STREAM_MEMORY_PER_AGENT (1u << 20) /* what each agent of a live stream reserves of it */

typedef struct ServiceConfig {
	Db *db;                     /* borrowed */
	const char *data_dir;       /* DATA: the SQLite database's directory */
	BucketConfig buckets;       /* where file:// buckets may live */
	JobLimits limits;           /* per-account limits on creation */
	int64_t agent_timeout_ns;   /* silence after which an agent is offline; 0 = 15 s */
	int64_t grace_ns;           /* after start, before unreported parts are lost; 0 = 30 s */
	unsigned heartbeat_ms;      /* told to agents; 0 = min(5000, agent_timeout / 3) */
	int64_t sample_deadline_ns; /* agents answer a sample within this; 0 = 5 s */
	size_t max_buckets;         /* buckets registered per account; 0 = no limit */
	size_t max_agents;          /* agents enrolled per account (operators' not counted); 0 = no limit */
	size_t stream_memory;       /* bytes live streams queue, all together; 0 = SERVICE_STREAM_MEMORY */
} ServiceConfig;

typedef struct Service Service;

int service_start(const ServiceConfig *cfg, Service **ret, ErrBuf *err);
/* Stops housekeeping and forgets every parked poll without waking it (the HTTP
 * server resumes them as it stops); later polls do not park. Call before
 * http_server_stop(), then service_free(). */
void service_shutdown(Service *s);
void service_free(Service *s); /* NULL is fine */
/* DATA/<sub>, created (mode 0700) if missing, written into ret[cap]. */
int service_data_path(Service *s, const char *sub, char *ret, size_t cap, ErrBuf *err);

/*
 * Every function below that takes an ApiError returns 0 (or a count) on
 * success and, on failure, the -errno of the kind it filled in
 * (model/apierror.h). Fields are named in the model's words: "id" (the
 * capture or bucket an operation is about), "target" (which agents),
 * "destination" (a bucket URI), "challenge" (an ownership proof); dialects
 * map them to their own. Messages never repeat the field.
 */

/* ---- credentials ---- */

/* The credential whose secret hashes to hash (with email for a legacy
 * X-Auth-Key; NULL for a bearer token). -ENOENT (API_ERR_NOT_FOUND) when there
 * is none. ret_account holds JOB_ID_LEN + 1 bytes. */
int service_credential_find(Service *s, const uint8_t hash[32], const char *email, char *ret_account,
			    TokenScope *ret_scope, ApiError *e);

/* ---- agent identity (docs/SECURITY.md) ---- */

/* The agent key or enrolment token whose secret hashes to hash;
 * API_ERR_NOT_FOUND when there is none. */
int service_agent_key_find(Service *s, const uint8_t hash[32], AgentKey *ret, ApiError *e);
int service_enroll_token_find(Service *s, const uint8_t hash[32], EnrollToken *ret, ApiError *e);

/* Enrols agent name (colo) with token t: stores a key (hash: SHA-256 of the
 * secret the caller hands the agent) bound to the name, to t's account and
 * to t's colo. API_ERR_FORBIDDEN: t expired, name does not match t's pattern
 * ("name"), colo is not t's ("colo"); API_ERR_CONFLICT ("name"): enrolled
 * already (revoke first); API_ERR_INVALID ("name"): the account has
 * max_agents agents. */
int service_agent_enroll(Service *s, const EnrollToken *t, const char *name, const char *colo, const uint8_t hash[32],
			 ApiError *e);

/* Revokes agent name's key and forgets it: account NULL (the operator) any
 * agent; else only an agent that account enrolled (API_ERR_NOT_FOUND "name"
 * otherwise; an operator's agent is API_ERR_FORBIDDEN). */
int service_agent_revoke(Service *s, const char *account, const char *name, ApiError *e);

/* ---- jobs (any dialect) ---- */

/* Whether this controller holds the key of Azure storage account account
 * (--azure-storage): a blob output there needs no registration. */
bool service_azure_storage_known(Service *s, const char *account);

/* j holds a validated request (type, account, filter_json, limits, colo_name,
 * outputs, offset_time_ns); this checks that the account owns every bucket
 * output (a registered, validated bucket, under any spelling of its identity:
 * API_ERR_UNVERIFIED) and makes the output the URI as registered — a held
 * output (JobOutput.held) instead must be an azblob:// URI without keys of an
 * account service_azure_storage_known() (API_ERR_INVALID) —, names each
 * agent's object (job_part_object; API_ERR_INVALID when too long), fills id,
 * submitted_ns and status, assigns parts and stores it, then wakes the
 * agents. Other failures: API_ERR_NO_TARGET (a full job whose colo_name
 * matches no online agent; the message lists the online agents),
 * API_ERR_BUSY (a per-account limit; retry_after_s set), API_ERR_INTERNAL. */
int service_job_create(Service *s, Job *j, ApiError *e);

/* One job of the account, and (ret_parts not NULL) its parts ordered by agent
 * (free with parts_free). API_ERR_NOT_FOUND ("id"). */
int service_job_get(Service *s, const char *account, const char *id, Job *ret, JobPart **ret_parts, size_t *ret_n,
		    ApiError *e);

/* A page of the account's jobs, newest first: `limit` of them after the
 * newest `offset` (free with jobs_free); *ret_total gets how many the account
 * has in all, counted with the page. */
int service_job_list(Service *s, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n,
		     uint64_t *ret_total, ApiError *e);

/* Sets stop_requested (once) on a non-terminal full job and tells its agents;
 * ret gets the job after the change. API_ERR_NOT_FOUND, API_ERR_CONFLICT
 * (not a full job; already finished). */
int service_job_stop(Service *s, const char *account, const char *id, Job *ret, ApiError *e);
/* POST …/pcaps/{id}/retry-upload (pcapd extension): a failed full capture
 * whose every share is done or upload_failed goes back to
 * conversion_running; the agents holding the captures upload them again
 * (job_retry_uploads: each such share's attempt grows by one). ret gets the
 * job. API_ERR_NOT_FOUND, API_ERR_CONFLICT naming why nothing can be retried. */
int service_job_retry_upload(Service *s, const char *account, const char *id, Job *ret, ApiError *e);

/* One Wireshark-ready file for a successful job, streamed: the parts'
 * objects (full: read from the bucket with ranged GETs; simple: the agents'
 * answers) merged by time, nothing cached (download.c). pcapng: the
 * annotated merge, one interface per agent and input interface (if_name
 * AGENT or AGENT/IFACE, if_description with the capture's colo, filter and
 * snaplen) and the agent's packets and kernel drops as an Interface
 * Statistics Block of its first interface; else classic pcap where the link
 * types allow. The checks that need
 * no input are made here: API_ERR_NOT_FOUND; API_ERR_CONFLICT when the job
 * is not finished ("capture is pending; …") or failed ("capture failed: …");
 * API_ERR_BUSY when DOWNLOADS_MAX run already. Then a thread of the
 * download's own opens every input up to its first record and calls
 * ready(ctx) once (not if the caller released it first), after which
 * service_download_outcome() tells whether the file can stream:
 * API_ERR_CONFLICT naming the agent whose object is missing from the bucket
 * or is not a capture, API_ERR_UNAVAILABLE when the store cannot be read.
 * The caller then either streams it (service_download_stream) or not, and
 * releases it exactly once (service_download_release) in both cases. */
typedef struct Download Download;
int service_job_download(Service *s, const char *account, const char *id, bool pcapng, void (*ready)(void *ctx),
			 void *ctx, Download **ret, ApiError *e);
/* After ready: 0 when the merged file can stream, else the error (e). */
int service_download_outcome(Download *d, ApiError *e);
/* Streams the merged file from the download's thread: write(ctx, p, n)
 * (blocking; 0, or -errno to stop) as it is made, then end(ctx, ok) once,
 * ok false when the file is incomplete (a store failed part way, the
 * client left). */
void service_download_stream(Download *d, int (*write)(void *ctx, const void *p, size_t n),
			     void (*end)(void *ctx, bool ok), void *ctx);
/* The caller is done with d: a download not streamed stops; a streaming one
 * goes on to its end. d is freed by its thread. */
void service_download_release(Download *d);

/* ---- named jobs (the Azure dialect's resources; model/job.h JobName) ---- */

/* The account's job named n (compared without regard to case) and
 * (ret_parts not NULL) its parts. API_ERR_NOT_FOUND ("name"). */
int service_job_find_named(Service *s, const char *account, const JobName *n, Job *ret, JobPart **ret_parts,
			   size_t *ret_n, ApiError *e);

/* The account's named jobs of one group and watcher, newest first: at most
 * limit after the cursor (NULL: from the newest). Free with jobs_free. */
int service_job_list_named(Service *s, const char *account, const char *group, const char *watcher,
			   const JobCursor *after, size_t limit, Job **ret, size_t *ret_n, ApiError *e);

/* Deletes the resource named n: stops its job if it is not finished (as
 * service_job_stop), then takes the name away; the job, its counters and its
 * files stay. ret gets the job. API_ERR_NOT_FOUND ("name") when the account
 * has no such name. */
int service_job_delete_named(Service *s, const char *account, const JobName *n, Job *ret, ApiError *e);

/* Whether the job's state as stored now reflects what its agents knew at
 * since_real_ns (CLOCK_REALTIME): every agent with a capturing or
 * delivering part (running, captured, uploading) has reported since, or is offline (its part will be
 * lost). A final job is always gathered. ret gets the job and (ret_parts not NULL) its parts.
 * API_ERR_NOT_FOUND ("id"). */
int service_job_gathered(Service *s, const char *account, const char *id, int64_t since_real_ns, bool *ret_gathered,
			 Job *ret, JobPart **ret_parts, size_t *ret_n, ApiError *e);

/* A number that changes whenever any job changes (created, updated by an
 * agent's report, stopped, lost): a rendered list is still right while it
 * stays the same. Over a shared database (PostgreSQL, where other
 * controllers may write) it changes at every call: no cache is kept. */
uint64_t service_jobs_generation(Service *s);

/* ---- live streams (pcapd extension) ----
 *
 * A reader of a running full capture opens a tap; the capture's agents are
 * told with their next poll answer and send their growing capture files in
 * chunks (service_tap_chunk); a thread of the tap merges them by time with a
 * reorder window of 2 s (pcap/livemerge.h) and writes one pcapng to the
 * reader's sink: an interface per agent (if_name AGENT, or AGENT/IFACE),
 * Enhanced Packet Blocks, and at the end each agent's counters as Interface
 * Statistics Blocks. While no packet flows, the sink is asked each second
 * whether its reader is still there, and (pcapng) an Interface Statistics
 * Block without options goes out. At most 16 MiB of one agent wait for a
 * reader, and at most stream_memory of all streams' agents (each agent of a
 * stream reserves 1 MiB of it when the stream opens); a chunk beyond that is
 * not taken and comes again (the stream lags); a reader that takes nothing
 * for 10 s while so much waits is cut off. Captures never wait for a
 * reader. */

typedef struct Tap Tap;

/* Where a tap writes: write() may block (a slow reader) and fails with
 * -EPIPE once the reader left; end() comes once, last, from the tap's
 * thread: ok = the stream ended well, how = "complete" (with notes: ";
 * agent X sent no end ...") or "cut: <why>". */
typedef struct TapSink {
	int (*write)(void *ctx, const void *p, size_t n);
	/* Makes a write waiting for the reader (and every later one) fail with
	 * -ECANCELED: the stream was cut. Any thread, until end. */
	void (*cancel)(void *ctx);
	/* 0 while the reader is there, -EPIPE once it left: asked each second
	 * while nothing is written (an idle reader's leaving is seen only so). */
	int (*check)(void *ctx);
	void (*end)(void *ctx, bool ok, const char *how);
	void *ctx;
} TapSink;

/* A tap on the account's capture id, written as pcapng (an interface per
 * agent and interface, statistics at the end, a keep-alive block each
 * second while no packet flows) or, pcapng false, as classic pcap
 * (nanosecond timestamps): one link type, the first agent's; an agent whose
 * packets have another ends its part of the stream with a note saying so.
 * API_ERR_NOT_FOUND ("id"), API_ERR_CONFLICT (a sample, or a capture that
 * is not pending or running, or whose agents all finished), API_ERR_BUSY
 * (32 taps open, or 1 MiB per agent not left of stream_memory). Nothing is
 * sent to agents before service_tap_start(). */
int service_tap_open(Service *s, const char *account, const char *id, bool pcapng, Tap **ret, ApiError *e);
/* Starts its thread writing to sink and tells the agents; t belongs to the
 * service from then on (also on failure: freed). */
int service_tap_start(Service *s, Tap *t, const TapSink *sink, ErrBuf *err);
/* Drops a tap that was not started. */
void service_tap_cancel(Service *s, Tap *t);
/* Taps of the account's captures (NULL: every account's) whose merge still
 * runs, on this controller. */
size_t service_tap_count(Service *s, const char *account);
/* Bytes of stream_memory those taps hold (reserved or grown into). */
size_t service_tap_memory(Service *s, const char *account);
/* An agent's chunk for a tap (its query c, body[0..n)): *ret says whether to
 * send on and from which offset, or why to stop. Always 0. */
int service_tap_chunk(Service *s, const AgentStreamChunk *c, const uint8_t *body, size_t n, AgentStreamAnswer *ret);

/* ---- buckets: proving ownership of a destination ---- */

/* Registers uri for the account: opens the bucket (a URI this controller
 * cannot use is API_ERR_INVALID "destination"), writes a challenge file named
 * ownership-challenge-<id>.txt holding a random token into it, under the
 * URI's prefix (a store that refuses is API_ERR_INVALID with the store's
 * answer: HTTP status and error code; nothing is stored), and stores the
 * bucket pending. ret gets the row, with uri in its one spelling
 * (bucket_uri_normalize: "file:///r/./b1/" is "file:///r/b1"; keys included:
 * render it REDACTED). API_ERR_FORBIDDEN ("destination") when another
 * account validated the same bucket (its identity, bucket_uri_match_key: a
 * bucket serves one account, and those its owner shares it with:
 * service_bucket_share). API_ERR_INVALID when the account already
 * registered the same bucket under any spelling, or has max_buckets buckets
 * (checked before the challenge is written, and again in the insert). */
int service_bucket_register(Service *s, const char *account, const char *uri, BucketRow *ret, ApiError *e);

/* The account's buckets, newest first as its captures are (free with
 * bucket_rows_free). */
int service_bucket_list(Service *s, const char *account, BucketRow **ret, size_t *ret_n, ApiError *e);

/* Validates the account's bucket uri (any spelling of the registered one:
 * with or without keys, REDACTED) with the proof given (see
 * service_challenge_matches), then reads the challenge file back from the
 * bucket: API_ERR_NOT_FOUND ("destination"), API_ERR_FORBIDDEN
 * ("destination": another account validated it first), API_ERR_MISMATCH
 * ("challenge": the proof, or a file that no longer holds the token),
 * API_ERR_INVALID ("destination": the store's answer when it cannot be
 * read). Validating again keeps the first validation time. ret gets the
 * row. */
int service_bucket_validate(Service *s, const char *account, const char *uri, const char *challenge, BucketRow *ret,
			    ApiError *e);

/* Lets account `other` use the account's validated bucket uri too (register
 * and validate it with its own challenge). API_ERR_NOT_FOUND
 * ("destination"), API_ERR_CONFLICT (not validated yet), API_ERR_INVALID
 * ("account": this account, or no such account). ret gets the row. */
int service_bucket_share(Service *s, const char *account, const char *uri, const char *other, BucketRow *ret,
			 ApiError *e);

/* Forgets the account's bucket id and (best effort) removes its challenge
 * file. API_ERR_NOT_FOUND ("id"). */
int service_bucket_delete(Service *s, const char *account, const char *id, ApiError *e);

/* Whether what a user sent back proves ownership of b: the token written in
 * the challenge file (what Cloudflare's documentation tells users to copy),
 * blanks around it ignored. Not the file's name (what Cloudflare's OpenAPI
 * schema describes): create answers that name to anyone, so it proves
 * nothing (issue 8). Pure. */
bool service_challenge_matches(const BucketRow *b, const char *given, size_t n);

/* ---- agents (the agent protocol: proto/agentproto.h) ---- */

/* Records a report of the agent key k (rep->name is k's name: the caller
 * checked) (registration, heartbeat, progress) and fills ret: the ids
 * whose terminal state is stored (acknowledged: the agent may forget them)
 * and the heartbeat interval (free with agentproto_report_answer_done).
 * API_ERR_INTERNAL. */
int service_agent_report(Service *s, const AgentKey *k, const AgentReport *r, AgentReportAnswer *ret, ApiError *e);

/* A long-poll. If the agent has undelivered work, *ret_work gets it (at most
 * AGENTPROTO_MAX_STARTS starts and AGENTPROTO_MAX_IDS stops; the rest comes
 * with the next poll; free with agentproto_poll_done) and 1 is returned.
 * Else, if park is not NULL and the deadline (monotonic ns) is in the future,
 * park(arg) is called under the registry lock (it suspends the request) and 0
 * is returned; wake(arg) is called later, once, from another thread, when
 * work arrives, the deadline passes or the service stops. With no park or a
 * past deadline: 1 with empty lists. API_ERR_NOT_FOUND ("name"): the agent
 * never reported (it must report first); API_ERR_UNAVAILABLE: shutting down. */
int service_agent_poll(Service *s, const char *name, int64_t deadline_mono_ns, void (*park)(void *arg),
		       void (*wake)(void *arg), void *arg, AgentPollAnswer *ret_work, ApiError *e);

/* An agent's answer to a sample job: a classic pcap of at most the job's
 * packet_limit records, stored in the database (db_sample_put) in the one
 * transaction that marks the agent's part done. API_ERR_NOT_FOUND
 * ("id": no such job, or no part for this agent), API_ERR_CONFLICT (the part
 * is already final: answered, or too late), API_ERR_INVALID ("body": not a
 * pcap, too many records). */
int service_sample_store(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ApiError *e);

/* POST /agent/v1/upload: the signed requests agent asks for to upload its
 * share of full capture id to the capture's object store (q: which ones;
 * its attempt must be the share's). API_ERR_NOT_FOUND ("id": no such capture
 * or no share of this agent), API_ERR_CONFLICT (the share is final, or
 * another attempt), API_ERR_INVALID (a file:// bucket: no grants). */
int service_upload_grant(Service *s, const char *agent, const char *id, const AgentUploadRequest *q,
			 AgentUploadGrant *ret, ApiError *e);

/* ---- metrics ---- */

/* What the controller knows of one agent since it started (counters restart
 * with the controller). */
typedef struct AgentStats {
	char name[AGENT_NAME_MAX + 1];
	bool online;            /* reported or polled within agent_timeout */
	uint64_t kernel_drops;  /* packets the kernel dropped in its captures (increase of the parts' counts) */
	uint64_t parts_failed;  /* parts of captures it reported failed (capture or upload) */
	bool history_known;     /* it sent its recorder's state */
	bool history_recording; /* its recorder is recording now */
	uint64_t history_drops; /* sampled packets its recorder could not record, as it reported */
} AgentStats;

/* Every agent known since the controller started that serves account (NULL:
 * every agent; an account's metrics name no other account's agents); free
 * with free(). */
int service_agent_stats(Service *s, const char *account, AgentStats **ret, size_t *ret_n, ApiError *e);
/* Captures by account and status (account NULL: every account; free with
 * free()): db_job_count_by_status. */
int service_job_counts(Service *s, const char *account, JobStatusCount **ret, size_t *ret_n, ApiError *e);

/* The agents that serve account (NULL: every agent) as a JSON array [{name,
 * colo, interfaces, version, last_seen, online, history}]. */
json_t *service_agents_json(Service *s, const char *account);
