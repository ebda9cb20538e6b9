/* SPDX-License-Identifier: MIT */
/*
 * Controller service: job creation and stopping, agent reports and polls, and
 * housekeeping (see service.h). Job state changes all take `jobs_lock` around
 * read → part_apply/part_lose → job_aggregate → write, so that two agents
 * reporting on the same job cannot lose each other's update.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/timefmt.h"
#include "controller/registry.h"
#include "controller/service-int.h"

#define DEFAULT_AGENT_TIMEOUT_NS (15 * (int64_t)NSEC_PER_SEC)
#define DEFAULT_GRACE_NS (30 * (int64_t)NSEC_PER_SEC)
#define DEFAULT_SAMPLE_DEADLINE_NS (5 * (int64_t)NSEC_PER_SEC)
#define HOUSEKEEPING_MS 100
#define LOSS_SCAN_NS ((int64_t)NSEC_PER_SEC)

struct Service {
	ServiceConfig cfg;
	Registry *reg;
	pthread_mutex_t jobs_lock;
	pthread_mutex_t hk_lock;
	pthread_cond_t hk_cond;
	pthread_t hk;
	bool hk_running, stopping;
	int64_t started_mono;
	atomic_uint samples_pending;   /* sample jobs that may still wait for answers */
	atomic_uint_fast64_t jobs_gen; /* service_jobs_generation() */
};

uint64_t service_jobs_generation(Service *s)
{
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

size_t service_max_buckets(Service *s)
{
	return s->cfg.max_buckets;
}

unsigned service_heartbeat_ms(Service *s)
{
	return s->cfg.heartbeat_ms;
}

json_t *service_agents_json(Service *s)
{
	return registry_json(s->reg, mono(), s->cfg.agent_timeout_ns);
}

int update_job(Service *s, const char *account, const char *id, PartsFn fn, void *arg, Job *ret_job, ErrBuf *err)
{
	JobPart *parts = NULL;
	size_t n = 0;
	Job j = {0};
	bool changed;
	int r;

	pthread_mutex_lock(&s->jobs_lock);
	r = db_job_get(s->cfg.db, account, id, &j, err);
	if (r < 0)
		goto out;
	r = db_part_list(s->cfg.db, id, &parts, &n, err);
	if (r < 0)
		goto out;
	changed = fn(&j, parts, n, arg);
	changed |= job_aggregate(&j, parts, n, real());
	if (changed) {
		r = db_job_update_with_parts(s->cfg.db, &j, parts, n, err);
		atomic_fetch_add(&s->jobs_gen, 1);
	}
	if (r >= 0 && ret_job) {
		*ret_job = j;
		memset(&j, 0, sizeof(j));
	}
out:
	pthread_mutex_unlock(&s->jobs_lock);
	parts_free(parts, n);
	job_done(&j);
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
				update_job(s, NULL, jobs[i].id, lose_unanswered, s, NULL, &err);
			else
				pending++;
		} else if (all) {
			update_job(s, NULL, jobs[i].id, lose_silent, s, NULL, &err);
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
		if (now - s->started_mono >= s->cfg.grace_ns && now - last_scan >= LOSS_SCAN_NS) {
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
	r = registry_new(&s->reg);
	if (r < 0) {
		free(s);
		return errbuf_set(err, r, "out of memory");
	}
	pthread_mutex_init(&s->jobs_lock, NULL);
	pthread_mutex_init(&s->hk_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->hk_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->started_mono = mono();
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
	registry_shutdown(s->reg);
}

void service_free(Service *s)
{
	if (!s)
		return;
	service_shutdown(s);
	registry_free(s->reg);
	pthread_cond_destroy(&s->hk_cond);
	pthread_mutex_destroy(&s->hk_lock);
	pthread_mutex_destroy(&s->jobs_lock);
	free(s);
}

/* ---- jobs ---- */

int service_job_create(Service *s, Job *j, ErrBuf *err)
{
	char(*agents)[AGENT_NAME_MAX + 1] = NULL;
	JobPart *parts = NULL;
	size_t n = 0;
	int r;

	r = job_new_id(j->id);
	if (r < 0)
		return errbuf_set(err, r, "cannot draw a random id: %s", strerror(-r));
	j->submitted_ns = real();
	j->status = JOB_PENDING;
	agents = calloc(JOB_MAX_PARTS, sizeof(*agents));
	if (!agents)
		return errbuf_set(err, -ENOMEM, "out of memory");
	/* A sample asks every online agent; a full capture those of its colo. */
	n = registry_match(s->reg, j->type == JOB_SIMPLE ? NULL : j->colo_name, mono(), s->cfg.agent_timeout_ns, agents,
			   JOB_MAX_PARTS);
	if (n == 0 && j->type == JOB_SIMPLE) {
		/* Stored (it counts against the sample limit) and failed at once. */
		j->status = JOB_FAILED;
		j->finished_ns = j->submitted_ns;
		free(j->error_message);
		j->error_message = strdup("no agent is online to answer the sample");
		r = db_job_insert(s->cfg.db, j, NULL, 0, &s->cfg.limits, err);
		atomic_fetch_add(&s->jobs_gen, 1);
		goto out;
	}
	if (n == 0) {
		char online[512];

		registry_describe(s->reg, mono(), s->cfg.agent_timeout_ns, online, sizeof(online));
		r = errbuf_set(err, -ENODEV, "colo_name: no online agent is named or in colo '%s' (online agents: %s)",
			       j->colo_name, online);
		goto out;
	}
	parts = calloc(n, sizeof(*parts));
	if (!parts) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char object[JOB_ID_LEN + AGENT_NAME_MAX + 16];

		memcpy(parts[i].job_id, j->id, sizeof(parts[i].job_id));
		snprintf(parts[i].agent, sizeof(parts[i].agent), "%s", agents[i]);
		parts[i].state = PART_ASSIGNED;
		parts[i].updated_ns = j->submitted_ns;
		if (j->type == JOB_SIMPLE)
			snprintf(object, sizeof(object), "%s.pcap", agents[i]);
		else
			snprintf(object, sizeof(object), "pcap_%s_%s.pcap", j->id, agents[i]);
		parts[i].object = strdup(object);
		if (!parts[i].object) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	r = db_job_insert(s->cfg.db, j, parts, n, &s->cfg.limits, err);
	atomic_fetch_add(&s->jobs_gen, 1);
	if (r < 0)
		goto out;
	if (j->type == JOB_SIMPLE)
		atomic_fetch_add(&s->samples_pending, 1);
	for (size_t i = 0; i < n; i++)
		registry_wake(s->reg, agents[i]);
out:
	parts_free(parts, n);
	free(agents);
	return r;
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

int service_job_stop(Service *s, const char *account, const char *id, Job *ret, ErrBuf *err)
{
	StopArg a = {0};
	JobPart *parts = NULL;
	size_t n = 0;
	Job j = {0};
	int r;

	r = update_job(s, account, id, request_stop, &a, &j, err);
	if (r < 0)
		return r;
	if (a.result == 0 && db_part_list(s->cfg.db, id, &parts, &n, err) >= 0) {
		for (size_t i = 0; i < n; i++)
			registry_wake(s->reg, parts[i].agent);
		parts_free(parts, n);
	}
	*ret = j;
	return a.result;
}

/* ---- agents ---- */

typedef struct ReportArg {
	const char *agent;
	const AgentJobReport *rep;
	bool known;    /* this agent has a part in the job */
	bool terminal; /* that part is terminal after the update */
} ReportArg;

static bool apply_report(Job *j, JobPart *parts, size_t n, void *arg)
{
	ReportArg *a = arg;

	for (size_t i = 0; i < n; i++) {
		bool changed = false;

		if (strcmp(parts[i].agent, a->agent) != 0)
			continue;
		a->known = true;
		/* A sample's part is done only when its answer is stored
		 * (service_sample_store); a report can only say it failed. */
		if (j->type == JOB_SIMPLE && a->rep->state != PART_FAILED) {
			a->terminal = part_state_terminal(parts[i].state);
			return false;
		}
		/* The object's name is the controller's (assigned at creation; the
		 * download reads it): an agent's report never renames it. */
		changed = part_apply(&parts[i], a->rep->state, a->rep->packets, a->rep->bytes, a->rep->drops,
				     a->rep->stop_reason, NULL, a->rep->error, real());
		a->terminal = part_state_terminal(parts[i].state);
		return changed;
	}
	return false;
}

typedef struct HelloArg {
	const char *agent;
	const AgentReport *rep;
} HelloArg;

static bool listed(const AgentReport *rep, const char *id)
{
	for (size_t i = 0; i < rep->n_jobs; i++)
		if (strcmp(rep->jobs[i].id, id) == 0)
			return true;
	return false;
}

/* After an agent restart: parts it was running but no longer knows are lost. */
static bool reconcile_hello(Job *j, JobPart *parts, size_t n, void *arg)
{
	HelloArg *a = arg;
	bool changed = false;

	for (size_t i = 0; i < n; i++)
		if (strcmp(parts[i].agent, a->agent) == 0 &&
		    (parts[i].state == PART_RUNNING || parts[i].state == PART_UPLOADING) && !listed(a->rep, j->id))
			changed |= part_lose(&parts[i], "agent restarted during the capture", real());
	return changed;
}

int service_agent_report(Service *s, const AgentReport *rep, json_t **ret_acks, ErrBuf *err)
{
	json_t *acks = json_array();
	AgentRow row = {0};
	int r;

	if (!acks)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = registry_seen(s->reg, rep->name, rep->colo, rep->interfaces, rep->version, rep->hello, mono());
	if (r < 0) {
		errbuf_set(err, r, "name: cannot register agent: %s", strerror(-r));
		goto fail;
	}
	registry_set_history(s->reg, rep->name, rep->history);
	snprintf(row.name, sizeof(row.name), "%s", rep->name);
	snprintf(row.colo, sizeof(row.colo), "%s", rep->colo ? rep->colo : "");
	row.interfaces = (char *)(rep->interfaces ? rep->interfaces : "");
	row.version = (char *)(rep->version ? rep->version : "");
	row.first_seen_ns = row.last_seen_ns = real();
	if (rep->hello) {
		/* Registration is stored; heartbeats stay in memory (no write per second). */
		r = db_agent_upsert(s->cfg.db, &row, err);
		if (r < 0)
			goto fail;
	}

	for (size_t i = 0; i < rep->n_jobs; i++) {
		ReportArg a = {.agent = rep->name, .rep = &rep->jobs[i]};

		r = update_job(s, NULL, rep->jobs[i].id, apply_report, &a, NULL, err);
		if (r == -ENOENT || (r >= 0 && (!a.known || a.terminal))) {
			/* Final state stored, or nothing to store it in: the agent may
			 * forget the job. A running part is never acknowledged, so it
			 * is reported again until it ends. */
			json_array_append_new(acks, json_string(rep->jobs[i].id));
		} else if (r < 0) {
			goto fail;
		}
	}

	if (rep->hello) {
		JobPart *parts = NULL;
		size_t n = 0;

		r = db_part_list_for_agent(s->cfg.db, rep->name, &parts, &n, err);
		if (r < 0)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			HelloArg h = {.agent = rep->name, .rep = rep};

			if (!listed(rep, parts[i].job_id))
				update_job(s, NULL, parts[i].job_id, reconcile_hello, &h, NULL, err);
		}
		parts_free(parts, n);
	}
	*ret_acks = acks;
	return 0;
fail:
	json_decref(acks);
	return r;
}

/* The start order for one part: what the agent needs, nothing more. */
static json_t *start_json(Service *s, const Job *j, const JobPart *p)
{
	json_error_t jerr;
	json_t *filter = json_loads(j->filter_json ? j->filter_json : "{}", 0, &jerr);
	int64_t left_ms;

	if (!filter)
		filter = json_object();
	if (j->type == JOB_SIMPLE) {
		/* The window [offset_time - time_limit, offset_time], and how long
		 * the controller still waits for the answer. */
		left_ms = (j->submitted_ns + s->cfg.sample_deadline_ns - real()) / 1000000;
		return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I}", "id", j->id, "type", "simple", "filter", filter,
				 "from_ns",
				 (json_int_t)(j->offset_time_ns - (int64_t)j->time_limit_s * (int64_t)NSEC_PER_SEC),
				 "to_ns", (json_int_t)j->offset_time_ns, "packet_limit", (json_int_t)j->packet_limit,
				 "deadline_ms", (json_int_t)(left_ms > 0 ? left_ms : 0));
	}
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:s}", "id", j->id, "type", job_type_to_string(j->type),
			 "filter", filter, "time_limit", (json_int_t)j->time_limit_s, "packet_limit",
			 (json_int_t)j->packet_limit, "byte_limit", (json_int_t)j->byte_limit, "destination_conf",
			 j->destination_conf ? j->destination_conf : "", "object", p->object ? p->object : "");
}

/* Candidates from the database: every start and stop this agent should have. */
static int candidates(Service *s, const char *name, JobPart **ret_parts, Job **ret_jobs, Delivery **ret_d,
		      size_t *ret_n, ErrBuf *err)
{
	JobPart *parts = NULL;
	Job *jobs = NULL;
	Delivery *d = NULL;
	size_t n = 0, k = 0;
	int r;

	r = db_part_list_for_agent(s->cfg.db, name, &parts, &n, err);
	if (r < 0)
		return r;
	if (n) {
		jobs = calloc(n, sizeof(*jobs));
		d = calloc(2 * n, sizeof(*d));
		if (!jobs || !d) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	for (size_t i = 0; i < n; i++) {
		r = db_job_get(s->cfg.db, NULL, parts[i].job_id, &jobs[i], err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto fail;
		if (parts[i].state == PART_ASSIGNED) {
			memcpy(d[k].id, parts[i].job_id, sizeof(d[k].id));
			d[k++].kind = DELIVER_START;
		}
		if (jobs[i].stop_requested_ns && (parts[i].state == PART_ASSIGNED || parts[i].state == PART_RUNNING)) {
			memcpy(d[k].id, parts[i].job_id, sizeof(d[k].id));
			d[k++].kind = DELIVER_STOP;
		}
	}
	*ret_parts = parts;
	*ret_jobs = jobs;
	*ret_d = d;
	*ret_n = n;
	return (int)k;
fail:
	parts_free(parts, n);
	jobs_free(jobs, n);
	free(d);
	return r;
}

static int build_work(Service *s, const JobPart *parts, const Job *jobs, size_t n, const Delivery *d, size_t k,
		      json_t **ret)
{
	json_t *start = json_array(), *stop = json_array();

	if (!start || !stop)
		goto nomem;
	for (size_t i = 0; i < k; i++) {
		if (!d[i].take)
			continue;
		if (d[i].kind == DELIVER_STOP) {
			json_array_append_new(stop, json_string(d[i].id));
			continue;
		}
		for (size_t p = 0; p < n; p++)
			if (strcmp(parts[p].job_id, d[i].id) == 0 && jobs[p].id[0]) {
				json_array_append_new(start, start_json(s, &jobs[p], &parts[p]));
				break;
			}
	}
	*ret = json_pack("{s:o, s:o}", "start", start, "stop", stop);
	return *ret ? 0 : -ENOMEM;
nomem:
	json_decref(start);
	json_decref(stop);
	return -ENOMEM;
}

int service_agent_poll(Service *s, const char *name, int64_t deadline_mono_ns, void (*park)(void *arg),
		       void (*wake)(void *arg), void *arg, json_t **ret_work, ErrBuf *err)
{
	uint64_t gen;
	int r;

	/* A poll is a sign of life too: an agent waiting on its poll is online. */
	r = registry_touch(s->reg, name, mono());
	if (r >= 0)
		r = registry_generation(s->reg, name, &gen);
	if (r < 0)
		return errbuf_set(err, r, "name: agent '%s' has not reported yet; send a report first", name);
	for (unsigned round = 0; round < 100; round++) {
		JobPart *parts = NULL;
		Job *jobs = NULL;
		Delivery *d = NULL;
		size_t n = 0;
		int k;

		k = candidates(s, name, &parts, &jobs, &d, &n, err);
		if (k < 0)
			return k;
		r = registry_take(s->reg, name, gen, d, (size_t)k);
		if (r > 0 || (r == 0 && (!park || deadline_mono_ns <= mono())))
			r = build_work(s, parts, jobs, n, d, (size_t)k, ret_work) < 0 ? -ENOMEM : 1;
		else if (r == 0)
			r = registry_park(s->reg, name, gen, deadline_mono_ns, park, wake, arg);
		parts_free(parts, n);
		jobs_free(jobs, n);
		free(d);
		if (r == -EAGAIN) {
			registry_generation(s->reg, name, &gen);
			continue;
		}
		if (r == -ENOMEM)
			return errbuf_set(err, r, "out of memory");
		if (r == -ESHUTDOWN)
			return errbuf_set(err, r, "the controller is shutting down");
		return r;
	}
	return errbuf_set(err, -EBUSY, "work for agent '%s' keeps changing; poll again", name);
}
