/* SPDX-License-Identifier: MIT */
/*
 * Controller service: its life cycle, credentials, job creation, reads and
 * stopping, and housekeeping (see service.h; agents in agents.c, buckets in
 * buckets.c, downloads in download.c, sample answers in samples.c, several
 * controllers in fleet.c). Job state changes are each one database
 * transaction holding the job's row (db_job_modify) around read →
 * part_apply/part_lose → job_aggregate → write, so that two agents reporting
 * on the same job, through one controller or two, cannot lose each other's
 * update.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "bucket/bucket_uri.h"
#include "common/timefmt.h"
#include "controller/service-int.h"

#define DEFAULT_AGENT_TIMEOUT_NS (15 * (int64_t)NSEC_PER_SEC)
#define DEFAULT_GRACE_NS (30 * (int64_t)NSEC_PER_SEC)
#define DEFAULT_SAMPLE_DEADLINE_NS (5 * (int64_t)NSEC_PER_SEC)
#define HOUSEKEEPING_MS 100
#define LOSS_SCAN_NS ((int64_t)NSEC_PER_SEC)

uint64_t service_jobs_generation(Service *s)
{
	/* Another controller's change reaches this one only as a notice, a
	 * moment after its commit: over a shared database every read is new. */
	if (s->shared)
		return atomic_fetch_add(&s->jobs_gen, 1) + 1;
	return atomic_load(&s->jobs_gen);
}

static int64_t mono(void)
{
	return (int64_t)now_monotonic_ns();
}

static int64_t real(void)
{
	return (int64_t)now_realtime_ns();
}

Db *service_db(Service *s)
{
	return s->cfg.db;
}

int service_data_path(Service *s, const char *sub, char *ret, size_t cap, ErrBuf *err)
{
	int n = snprintf(ret, cap, "%s/%s", s->cfg.data_dir, sub);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "%s/%s: path too long", s->cfg.data_dir, sub);
	if (mkdir(ret, 0700) < 0 && errno != EEXIST)
		return errbuf_errno(err, "cannot create %s", ret);
	return 0;
}

const BucketConfig *service_buckets(Service *s)
{
	return &s->cfg.buckets;
}

void service_jobs_changed(Service *s)
{
	atomic_fetch_add(&s->jobs_gen, 1);
}

int service_internal(ApiError *e, int r, const ErrBuf *err)
{
	apierror_set(e, API_ERR_INTERNAL, NULL, "%s", err->msg[0] ? err->msg : "unexpected failure");
	return r < 0 ? r : -EIO;
}

int service_credential_find(Service *s, const uint8_t hash[32], const char *email, char *ret_account,
			    TokenScope *ret_scope, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_credential_find(s->cfg.db, hash, email, ret_account, ret_scope, &err);

	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, NULL, "no such credential");
	return r < 0 ? service_internal(e, r, &err) : 0;
}

typedef struct Modify {
	PartsFn fn;
	void *arg;
	bool changed;
} Modify;

/* Inside db_job_modify's transaction. */
static bool modify(Job *j, JobPart *parts, size_t n, void *arg)
{
	Modify *m = arg;

	m->changed = m->fn(j, parts, n, m->arg);
	m->changed |= job_aggregate(j, parts, n, real());
	return m->changed;
}

int service_update_job(Service *s, const char *account, const char *id, PartsFn fn, void *arg, Job *ret_job,
		       ErrBuf *err)
{
	Modify m = {.fn = fn, .arg = arg};
	int r = db_job_modify(s->cfg.db, account, id, modify, &m, ret_job, err);

	if (r == 0 && m.changed)
		atomic_fetch_add(&s->jobs_gen, 1);
	return r;
}

/* ---- housekeeping ---- */

static bool lose_silent(Job *j, JobPart *parts, size_t n, void *arg)
{
	Service *s = arg;
	int64_t now = mono();
	bool changed = false;

	(void)j;
	for (size_t i = 0; i < n; i++) {
		char why[160];

		if (part_state_terminal(parts[i].state) ||
		    registry_online(s->reg, parts[i].agent, now, s->cfg.agent_timeout_ns))
			continue;
		snprintf(why, sizeof(why), "stopped reporting (no report for %lld s)",
			 (long long)(s->cfg.agent_timeout_ns / (int64_t)NSEC_PER_SEC));
		changed |= part_lose(&parts[i], why, real());
	}
	return changed;
}

/* A sample's deadline has passed: whoever has not answered is listed as such. */
static bool lose_unanswered(Job *j, JobPart *parts, size_t n, void *arg)
{
	Service *s = arg;
	bool changed = false;
	char why[96];

	(void)j;
	snprintf(why, sizeof(why), "did not answer within %lld ms", (long long)(s->cfg.sample_deadline_ns / 1000000));
	for (size_t i = 0; i < n; i++)
		changed |= part_lose(&parts[i], why, real());
	return changed;
}

/* all: also the full jobs' silent agents (once a second, after the grace);
 * else only samples past their deadline (every tick while any is pending). */
static void scan_lost(Service *s, bool all)
{
	Job *jobs = NULL;
	size_t n = 0;
	unsigned pending = 0;
	ErrBuf err;

	if (db_job_list_active(s->cfg.db, &jobs, &n, &err) < 0)
		return; /* tried again at the next tick */
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].type == JOB_SIMPLE) {
			if (real() - jobs[i].submitted_ns >= s->cfg.sample_deadline_ns)
				service_update_job(s, NULL, jobs[i].id, lose_unanswered, s, NULL, &err);
			else
				pending++;
		} else if (all) {
			service_update_job(s, NULL, jobs[i].id, lose_silent, s, NULL, &err);
		}
	}
	atomic_store(&s->samples_pending, pending);
	jobs_free(jobs, n);
}

static void *housekeeping(void *arg)
{
	Service *s = arg;
	int64_t last_scan = 0;

	pthread_mutex_lock(&s->hk_lock);
	while (!s->stopping) {
		struct timespec ts;
		int64_t now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += HOUSEKEEPING_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->hk_cond, &s->hk_lock, &ts);
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->hk_lock);
		now = mono();
		registry_expire(s->reg, now);
		/* Losses and deadlines are the lease holder's: one controller
		 * decides them (fleet.c), whichever holds it now. */
		if (!atomic_load(&s->leader)) {
			last_scan = 0;
		} else if (now - s->started_mono >= s->cfg.grace_ns && now - last_scan >= LOSS_SCAN_NS) {
			scan_lost(s, true);
			last_scan = now;
		} else if (atomic_load(&s->samples_pending)) {
			scan_lost(s, false);
		}
		pthread_mutex_lock(&s->hk_lock);
	}
	pthread_mutex_unlock(&s->hk_lock);
	return NULL;
}

int service_start(const ServiceConfig *cfg, Service **ret, ErrBuf *err)
{
	pthread_condattr_t ca;
	Service *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, -ENOMEM, "out of memory");
	s->cfg = *cfg;
	if (!s->cfg.agent_timeout_ns)
		s->cfg.agent_timeout_ns = DEFAULT_AGENT_TIMEOUT_NS;
	if (!s->cfg.grace_ns)
		s->cfg.grace_ns = DEFAULT_GRACE_NS;
	if (!s->cfg.sample_deadline_ns)
		s->cfg.sample_deadline_ns = DEFAULT_SAMPLE_DEADLINE_NS;
	if (!s->cfg.heartbeat_ms) {
		/* Three heartbeats per time-out, so one lost report never makes
		 * an agent look offline. */
		int64_t third_ms = s->cfg.agent_timeout_ns / 3 / 1000000;

		s->cfg.heartbeat_ms = third_ms < 5000 ? (unsigned)(third_ms > 100 ? third_ms : 100) : 5000;
	}
	if (!s->cfg.stream_memory)
		s->cfg.stream_memory = SERVICE_STREAM_MEMORY;
	r = registry_new(&s->reg);
	if (r < 0) {
		free(s);
		return errbuf_set(err, r, "out of memory");
	}
	pthread_mutex_init(&s->taps_lock, NULL);
	pthread_mutex_init(&s->beats_lock, NULL);
	pthread_mutex_init(&s->hk_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->hk_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->started_mono = mono();
	service_downloads_clean(s);
	r = service_fleet_start(s, err);
	if (r < 0) {
		service_free(s);
		return r;
	}
	r = -pthread_create(&s->hk, NULL, housekeeping, s);
	if (r < 0) {
		errbuf_set(err, r, "cannot start the housekeeping thread: %s", strerror(-r));
		service_free(s);
		return r;
	}
	s->hk_running = true;
	*ret = s;
	return 0;
}

void service_shutdown(Service *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->hk_lock);
	s->stopping = true;
	pthread_cond_signal(&s->hk_cond);
	pthread_mutex_unlock(&s->hk_lock);
	if (s->hk_running) {
		pthread_join(s->hk, NULL);
		s->hk_running = false;
	}
	service_fleet_stop(s);
	registry_shutdown(s->reg);
	service_taps_stop(s);
}

void service_free(Service *s)
{
	if (!s)
		return;
	service_shutdown(s);
	service_taps_free(s);
	pthread_mutex_destroy(&s->taps_lock);
	pthread_mutex_destroy(&s->beats_lock);
	keycache_free(s->keys);
	registry_free(s->reg);
	pthread_cond_destroy(&s->hk_cond);
	pthread_mutex_destroy(&s->hk_lock);
	free(s);
}

/* ---- jobs ---- */

/* When to try again after the full-capture limit when no active capture has
 * a time limit to wait for (an open-ended capture of another dialect). */
#define RETRY_UNKNOWN_S 60

/* Every bucket a full job writes to must be one the account registered and
 * validated (service_bucket_*), named by any spelling of its identity
 * (with or without keys, or REDACTED). The output then holds the URI as
 * registered: its keys are what the controller signs with. */
static int check_bucket(Service *s, const char *account, JobOutput *o, ApiError *e)
{
	BucketRow b = {0};
	char *uri;
	int r;

	r = service_bucket_find(s, account, o->target, &b, e);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_UNVERIFIED, "destination",
				    "bucket is not registered; add it with POST …/pcaps/ownership and validate it");
	if (r < 0)
		return r;
	if (b.status == BUCKET_PENDING)
		r = apierror_set(e, API_ERR_UNVERIFIED, "destination",
				 "bucket is pending validation; validate it with POST …/pcaps/ownership/validate");
	else if (b.status != BUCKET_SUCCESS)
		r = apierror_set(e, API_ERR_UNVERIFIED, "destination",
				 "bucket failed validation; delete it and add it again");
	if (r == 0) {
		uri = strdup(b.destination_conf);
		if (!uri) {
			r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
		} else {
			free(o->target);
			o->target = uri;
		}
	}
	bucket_row_done(&b);
	return r;
}

/* A store the controller holds the key of: an Azure account of
 * --azure-storage, named by an azblob:// URI without keys. */
static int check_held(Service *s, const JobOutput *o, ApiError *e)
{
	BucketUri u = {0};
	ErrBuf err = {{0}};
	int r;

	r = bucket_uri_parse(o->target, strlen(o->target), &u, &err);
	if (r < 0)
		return apierror_from_msg(e, API_ERR_INVALID, err.msg);
	if (u.scheme != BUCKET_SCHEME_AZURE || u.key || u.sas || u.endpoint)
		r = apierror_set(e, API_ERR_INVALID, "destination",
				 "only an Azure storage account of --azure-storage is written without registration");
	else if (!service_azure_storage_known(s, u.account))
		r = apierror_set(e, API_ERR_INVALID, "destination",
				 "this controller has no key of Azure storage account %s (pcapd controller "
				 "--azure-storage %s=KEY[@BLOB_ENDPOINT])",
				 u.account, u.account);
	bucket_uri_done(&u);
	return r;
}

bool service_azure_storage_known(Service *s, const char *account)
{
	const BucketConfig *c = &s->cfg.buckets;

	for (size_t i = 0; i < c->n_azure; i++)
		if (strcmp(c->azure[i].account, account) == 0)
			return true;
	return false;
}

/* The model's invariants, then the ownership of every bucket output (its URI
 * kept in the one spelling it was registered in). */
static int check_request(Service *s, Job *j, ApiError *e)
{
	ErrBuf err = {{0}};
	int r;

	if (job_check(j, &err) < 0)
		return apierror_from_msg(e, API_ERR_INVALID, err.msg);
	for (size_t i = 0; i < j->n_outputs; i++) {
		if (j->outputs[i].kind != JOB_OUTPUT_BUCKET)
			continue;
		r = j->outputs[i].held ? check_held(s, &j->outputs[i], e)
				       : check_bucket(s, j->account, &j->outputs[i], e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Stores j with its parts (n may be 0); a limit is API_ERR_BUSY, whose
 * retry_after_s is the real wait and whose message says the same number: the
 * rest of the sample interval, or until the soonest active full capture
 * reaches its time limit (it may end sooner: stopped, or by another limit). */
static int insert_job(Service *s, const Job *j, const JobPart *parts, size_t n, ApiError *e)
{
	ErrBuf err = {{0}};
	int64_t after_ns = 0, wait_ns;
	uint32_t wait_s;
	int r;

	r = db_job_insert(s->cfg.db, j, parts, n, &s->cfg.limits, &after_ns, &err);
	service_jobs_changed(s);
	if (r == -EEXIST && job_named(j))
		return apierror_set(e, API_ERR_CONFLICT, "name", "the name %s is taken in %s/%s", j->name.name,
				    j->name.group, j->name.watcher);
	if (r != -EBUSY)
		return r < 0 ? service_internal(e, r, &err) : 0;
	wait_ns = after_ns - j->submitted_ns;
	/* Whole seconds, rounded up (never before the slot), at least 1. */
	wait_s = wait_ns > 0 ? (uint32_t)((wait_ns + (int64_t)NSEC_PER_SEC - 1) / (int64_t)NSEC_PER_SEC) : 1;
	if (j->type == JOB_SIMPLE)
		apierror_set(e, API_ERR_BUSY, NULL, "%s; next allowed in %u s", err.msg, wait_s);
	else if (!after_ns)
		apierror_set(e, API_ERR_BUSY, NULL, "%s; try again in %u s", err.msg, wait_s = RETRY_UNKNOWN_S);
	else if (wait_ns > 0)
		apierror_set(e, API_ERR_BUSY, NULL, "%s; the soonest reaches its time limit in %u s", err.msg, wait_s);
	else
		apierror_set(e, API_ERR_BUSY, NULL, "%s; the soonest is delivering its files: try again in %u s",
			     err.msg, wait_s);
	e->retry_after_s = wait_s;
	return r;
}

/* Whether name is one of the comma-separated list's (ASCII case-insensitive). */
static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncasecmp(p, name, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

static bool among(char (*agents)[AGENT_NAME_MAX + 1], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(agents[i], name) == 0)
			return true;
	return false;
}

static int no_target(Service *s, const Job *j, ApiError *e)
{
	static const char *const what[] = {
		[JOB_TARGET_ANY] = "is named or in colo",
		[JOB_TARGET_AGENT] = "is named",
		[JOB_TARGET_COLO] = "is in colo",
	};
	char online[512];

	registry_describe(s->reg, j->account, mono(), s->cfg.agent_timeout_ns, online, sizeof(online));
	return apierror_set(e, API_ERR_NO_TARGET, "target", "no online agent %s '%s'%s (online agents: %s)",
			    what[j->target_kind], j->colo_name,
			    j->target_include || j->target_exclude ? " and kept by its include and exclude lists" : "",
			    online);
}

/* The online agents a full job targets (kind, colo_name, include and exclude
 * lists) into agents[JOB_MAX_PARTS]; a sample asks every online agent. An
 * included agent that is not online in the colo is API_ERR_NO_TARGET naming
 * it: a capture never runs on fewer machines than the user listed. */
static int match_target(Service *s, const Job *j, char (*agents)[AGENT_NAME_MAX + 1], size_t *ret_n, ApiError *e)
{
	bool sample = j->type == JOB_SIMPLE;
	size_t n, k = 0;

	n = registry_match(s->reg, j->account, sample ? JOB_TARGET_ANY : j->target_kind, sample ? NULL : j->colo_name,
			   mono(), s->cfg.agent_timeout_ns, agents, JOB_MAX_PARTS);
	for (const char *p = sample ? NULL : j->target_include; p && *p;) {
		const char *end = strchr(p, ',');
		char name[AGENT_NAME_MAX + 1];
		size_t len = end ? (size_t)(end - p) : strlen(p);

		snprintf(name, sizeof(name), "%.*s", (int)(len > AGENT_NAME_MAX ? AGENT_NAME_MAX : len), p);
		if (!among(agents, n, name)) {
			char online[512];

			registry_describe(s->reg, j->account, mono(), s->cfg.agent_timeout_ns, online, sizeof(online));
			return apierror_set(e, API_ERR_NO_TARGET, "target",
					    "agent '%s' is not online in colo '%s' (online agents: %s)", name,
					    j->colo_name, online);
		}
		p = end ? end + 1 : NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!sample && j->target_include && !in_list(j->target_include, agents[i]))
			continue;
		if (!sample && j->target_exclude && in_list(j->target_exclude, agents[i]))
			continue;
		if (k != i)
			memcpy(agents[k], agents[i], sizeof(agents[k]));
		k++;
	}
	if (k == 0 && !sample)
		return no_target(s, j, e);
	*ret_n = k;
	return 0;
}

int service_job_create(Service *s, Job *j, ApiError *e)
{
	char(*agents)[AGENT_NAME_MAX + 1] = NULL;
	JobPart *parts = NULL;
	WakeBatch wake;
	size_t n = 0;
	int r;

	r = check_request(s, j, e);
	if (r < 0)
		return r;
	r = job_new_id(j->id);
	if (r < 0)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "cannot draw a random id: %s", strerror(-r));
	j->submitted_ns = real();
	j->status = JOB_PENDING;
	agents = calloc(JOB_MAX_PARTS, sizeof(*agents));
	if (!agents)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
	r = match_target(s, j, agents, &n, e);
	if (r < 0)
		goto out;
	if (n == 0) {
		/* A sample nobody can answer: stored (it counts against the
		 * sample limit) and failed at once. */
		j->status = JOB_FAILED;
		j->finished_ns = j->submitted_ns;
		free(j->error_message);
		j->error_message = strdup("no agent is online to answer the sample");
		r = insert_job(s, j, NULL, 0, e);
		goto out;
	}
	parts = calloc(n, sizeof(*parts));
	if (!parts) {
		r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char object[AGENTPROTO_OBJECT_MAX + 2];

		memcpy(parts[i].job_id, j->id, sizeof(parts[i].job_id));
		snprintf(parts[i].agent, sizeof(parts[i].agent), "%s", agents[i]);
		parts[i].state = PART_ASSIGNED;
		parts[i].updated_ns = j->submitted_ns;
		/* Only a bucket output has an object the controller names (and
		 * reads back); files on the agents' disks are theirs. */
		if (j->type == JOB_SIMPLE) {
			snprintf(object, sizeof(object), "%s.pcap", agents[i]);
		} else if (!job_bucket(j)) {
			continue;
		} else if (job_part_object(j, agents[i], object, sizeof(object)) < 0 ||
			   !agentproto_object_valid(object) ||
			   (j->continuous.on && strlen(object) + JOB_FILE_SUFFIX_MAX > AGENTPROTO_OBJECT_MAX)) {
			/* A continuous share's files are its object with _N (job_file_object). */
			r = apierror_set(e, API_ERR_INVALID, "outputs",
					 "the object of agent %s's share would be longer than %u bytes%s", agents[i],
					 AGENTPROTO_OBJECT_MAX,
					 j->continuous.on ? " with a file's number (up to 21 bytes)" : "");
			goto out;
		}
		parts[i].object = strdup(object);
		if (!parts[i].object) {
			r = apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
			goto out;
		}
	}
	r = insert_job(s, j, parts, n, e);
	if (r < 0)
		goto out;
	if (j->type == JOB_SIMPLE)
		atomic_fetch_add(&s->samples_pending, 1);
	service_wake_begin(s, &wake);
	for (size_t i = 0; i < n; i++)
		service_wake_add(&wake, agents[i]);
	service_wake_end(&wake);
out:
	parts_free(parts, n);
	free(agents);
	return r;
}

int service_job_get(Service *s, const char *account, const char *id, Job *ret, JobPart **ret_parts, size_t *ret_n,
		    ApiError *e)
{
	ErrBuf err = {{0}};
	JobPart *parts = NULL;
	size_t n = 0;
	Job j = {0};
	int r;

	r = db_job_get(s->cfg.db, account, id, &j, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "id", "no capture with id %s", id);
	if (r < 0)
		return service_internal(e, r, &err);
	if (ret_parts) {
		r = db_part_list(s->cfg.db, id, &parts, &n, &err);
		if (r < 0) {
			job_done(&j);
			return service_internal(e, r, &err);
		}
		*ret_parts = parts;
		*ret_n = n;
	}
	*ret = j;
	return 0;
}

int service_job_list(Service *s, const char *account, size_t offset, size_t limit, Job **ret, size_t *ret_n,
		     uint64_t *ret_total, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_job_list(s->cfg.db, account, offset, limit, ret, ret_n, ret_total, &err);

	return r < 0 ? service_internal(e, r, &err) : 0;
}

/* The parked polls of job id's agents answer now (a stop, a start). */
static void wake_agents(Service *s, const char *id)
{
	JobPart *parts = NULL;
	ErrBuf err = {{0}};
	WakeBatch wake;
	size_t n = 0;

	if (db_part_list(s->cfg.db, id, &parts, &n, &err) < 0)
		return;
	service_wake_begin(s, &wake);
	for (size_t i = 0; i < n; i++)
		service_wake_add(&wake, parts[i].agent);
	service_wake_end(&wake);
	parts_free(parts, n);
}

typedef struct StopArg {
	int result; /* -EINVAL, -EALREADY or 0 */
} StopArg;

static bool request_stop(Job *j, JobPart *parts, size_t n, void *arg)
{
	StopArg *a = arg;

	(void)parts;
	(void)n;
	if (j->type != JOB_FULL) {
		a->result = -EINVAL;
		return false;
	}
	if (job_status_terminal(j->status)) {
		a->result = -EALREADY;
		return false;
	}
	if (j->stop_requested_ns)
		return false;
	j->stop_requested_ns = real();
	return true;
}

int service_job_stop(Service *s, const char *account, const char *id, Job *ret, ApiError *e)
{
	StopArg a = {0};
	ErrBuf err = {{0}};
	Job j = {0};
	int r;

	r = service_update_job(s, account, id, request_stop, &a, &j, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "id", "no capture with id %s", id);
	if (r < 0)
		return service_internal(e, r, &err);
	if (a.result == -EINVAL) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "only full captures can be stopped");
	} else if (a.result == -EALREADY) {
		r = apierror_set(e, API_ERR_CONFLICT, "id", "capture already finished (%s)",
				 job_status_to_string(j.status));
	} else {
		wake_agents(s, id);
		*ret = j;
		return 0;
	}
	job_done(&j);
	return r;
}

typedef struct RetryArg {
	int result; /* job_retry_uploads' */
	ErrBuf err;
} RetryArg;

static bool retry_uploads(Job *j, JobPart *parts, size_t n, void *arg)
{
	RetryArg *a = arg;

	a->result = job_retry_uploads(j, parts, n, real(), &a->err);
	return a->result == 0;
}

int service_job_retry_upload(Service *s, const char *account, const char *id, Job *ret, ApiError *e)
{
	RetryArg a = {0};
	ErrBuf err = {{0}};
	Job j = {0};
	int r;

	r = service_update_job(s, account, id, retry_uploads, &a, &j, &err);
	if (r == -ENOENT)
		return apierror_set(e, API_ERR_NOT_FOUND, "id", "no capture with id %s", id);
	if (r < 0)
		return service_internal(e, r, &err);
	if (a.result < 0) {
		job_done(&j);
		return apierror_set(e, API_ERR_CONFLICT, "id", "%s", a.err.msg);
	}
	wake_agents(s, id); /* those holding the captures get a start with the new attempt */
	*ret = j;
	return 0;
}
