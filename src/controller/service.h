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
 * mutations are serialised by one lock (reports are about one per second per
 * running job); reads go straight to the database.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bucket/bucket.h"
#include "common/util.h"
#include "db/db.h"
#include "model/job.h"

typedef struct ServiceConfig {
	Db *db;                     /* borrowed */
	const char *data_dir;       /* download cache lives in DATA/downloads */
	BucketConfig buckets;       /* where file:// buckets may live */
	JobLimits limits;           /* per-account limits on creation */
	int64_t agent_timeout_ns;   /* silence after which an agent is offline; 0 = 15 s */
	int64_t grace_ns;           /* after start, before unreported parts are lost; 0 = 30 s */
	unsigned heartbeat_ms;      /* told to agents; 0 = min(5000, agent_timeout / 3) */
	int64_t sample_deadline_ns; /* agents answer a sample within this; 0 = 5 s */
	size_t max_buckets;         /* buckets registered per account; 0 = no limit */
} ServiceConfig;

typedef struct Service Service;

int service_start(const ServiceConfig *cfg, Service **ret, ErrBuf *err);
/* Stops housekeeping and forgets every parked poll without waking it (the HTTP
 * server resumes them as it stops); later polls do not park. Call before
 * http_server_stop(), then service_free(). */
void service_shutdown(Service *s);
void service_free(Service *s); /* NULL is fine */
Db *service_db(Service *s);
/* DATA/<sub>, created (mode 0700) if missing, written into ret[cap]. */
int service_data_path(Service *s, const char *sub, char *ret, size_t cap, ErrBuf *err);
const BucketConfig *service_buckets(Service *s);
size_t service_max_buckets(Service *s); /* ServiceConfig.max_buckets */

/* ---- jobs (any dialect) ---- */

/* j holds a validated request (type, account, filter_json, limits, colo_name,
 * destination_conf, offset_time_ns); this fills id, submitted_ns and status,
 * assigns parts and stores it, then wakes the agents.
 *  -ENODEV: a full job whose colo_name matches no online agent (err lists the
 *           online agents);
 *  -EBUSY:  a per-account limit (err says which);
 *  -EIO:    storage. */
int service_job_create(Service *s, Job *j, ErrBuf *err);

/* Sets stop_requested (once) on a non-terminal full job and tells its agents.
 * ret gets the job after the change. -ENOENT, -EALREADY (terminal; ret still
 * written), -EINVAL (not a full job). */
int service_job_stop(Service *s, const char *account, const char *id, Job *ret, ErrBuf *err);

/* One Wireshark-ready file for a successful job: the parts' objects merged by
 * time (cached in DATA/downloads). Returns an open fd (O_RDONLY|O_CLOEXEC at
 * offset 0) and its length. -EAGAIN: not finished (ret_status says what it is);
 * -ENOENT: no such job; -ENODATA: failed job. */
int service_job_download(Service *s, const char *account, const char *id, int *ret_fd, uint64_t *ret_len,
			 JobStatus *ret_status, ErrBuf *err);

/* A number that changes whenever any job changes (created, updated by an
 * agent's report, stopped, lost): a rendered list is still right while it
 * stays the same. Only this controller's changes count (with several
 * controllers over one database, a cache keyed on it must not be used). */
uint64_t service_jobs_generation(Service *s);

/* ---- agents ---- */

typedef struct AgentJobReport {
	const char *id;
	PartState state; /* running, uploading, done, failed */
	uint64_t packets, bytes, drops;
	JobStop stop_reason;
	const char *object; /* may be NULL */
	const char *error;  /* may be NULL */
} AgentJobReport;

typedef struct AgentReport {
	const char *name, *colo, *version, *interfaces; /* interfaces comma-joined */
	bool hello;
	json_t *history; /* the recorder's status object, or NULL (borrowed) */
	const AgentJobReport *jobs;
	size_t n_jobs;
} AgentReport;

/* Records a report (registration, heartbeat, progress). ret_acks: a JSON array
 * of the ids whose terminal state is stored (caller owns it). */
int service_agent_report(Service *s, const AgentReport *r, json_t **ret_acks, ErrBuf *err);
unsigned service_heartbeat_ms(Service *s);

/* A long-poll. If the agent has undelivered work, *ret_work is set to
 * {"start":[...],"stop":[...]} and 1 is returned. Else, if park is not NULL
 * and the deadline (monotonic ns) is in the future, park(arg) is called under
 * the registry lock (it suspends the request) and 0 is returned; wake(arg) is
 * called later, once, from another thread, when work arrives, the deadline
 * passes or the service stops. With no park or a past deadline: 1 with empty
 * lists. -ENOENT: the agent never reported (it must report first). */
int service_agent_poll(Service *s, const char *name, int64_t deadline_mono_ns, void (*park)(void *arg),
		       void (*wake)(void *arg), void *arg, json_t **ret_work, ErrBuf *err);

/* An agent's answer to a sample job: a classic pcap of at most the job's
 * packet_limit records, stored as DATA/samples/<id>/<agent>.pcap (temporary
 * name, fsync, rename) and the agent's part marked done. -ENOENT: no such job
 * or no part for this agent; -EALREADY: the part is already final (answered,
 * or too late); -EINVAL: not a pcap or too many records (err says). */
int service_sample_store(Service *s, const char *agent, const char *id, const uint8_t *pcap, size_t n, ErrBuf *err);

/* Agents as a JSON array [{name, colo, interfaces, version, last_seen,
 * online, history}]. */
json_t *service_agents_json(Service *s);
