/* SPDX-License-Identifier: MIT */
/*
 * The controller's side of the agent protocol (see service.h): reports
 * update the registry and the jobs' parts; polls hand out starts and stops
 * (proto/agentproto.h turns them into the wire format). Each start and stop is
 * delivered once per agent session (registry.h); what does not fit in one
 * answer stays undelivered and goes with the next poll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket/bucket_uri.h"
#include "controller/service-int.h"

static int64_t now_mono(void)
{
	return (int64_t)now_monotonic_ns();
}

static int64_t now_real(void)
{
	return (int64_t)now_realtime_ns();
}

json_t *service_agents_json(Service *s, const char *account)
{
	return registry_json(s->reg, account, now_mono(), s->cfg.agent_timeout_ns);
}

int service_agent_stats(Service *s, const char *account, AgentStats **ret, size_t *ret_n, ApiError *e)
{
	if (registry_stats(s->reg, account, now_mono(), s->cfg.agent_timeout_ns, ret, ret_n) < 0)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
	return 0;
}

int service_job_counts(Service *s, const char *account, JobStatusCount **ret, size_t *ret_n, ApiError *e)
{
	ErrBuf err = {{0}};
	int r = db_job_count_by_status(s->cfg.db, account, ret, ret_n, &err);

	return r < 0 ? service_internal(e, r, &err) : 0;
}

/* ---- reports ---- */

typedef struct ReportArg {
	const char *agent;
	const AgentJobReport *rep;
	bool known;     /* this agent has a part in the job */
	bool terminal;  /* that part is terminal after the update */
	uint64_t drops; /* by how much the part's kernel drops grew */
	bool failed;    /* the part became failed */
} ReportArg;

static bool apply_report(Job *j, JobPart *parts, size_t n, void *arg)
{
	ReportArg *a = arg;

	for (size_t i = 0; i < n; i++) {
		uint64_t packets, bytes;
		bool changed = false;

		if (strcmp(parts[i].agent, a->agent) != 0)
			continue;
		a->known = true;
		/* A report about an earlier attempt of the upload is stale. */
		if (j->type == JOB_FULL && a->rep->attempt != parts[i].attempt) {
			a->terminal = true; /* acknowledged, changes nothing */
			return false;
		}
		/* A sample's part is done only when its answer is stored
		 * (service_sample_store); a report can only say it failed. */
		if (j->type == JOB_SIMPLE && a->rep->state != PART_FAILED) {
			a->terminal = part_state_terminal(parts[i].state);
			return false;
		}
		/* The object's name is the controller's (assigned at creation; the
		 * download reads it): an agent's report never renames it. */
		a->drops = parts[i].drops;
		a->failed = parts[i].state == PART_FAILED;
		/* Counters never pass what the job allows: a report (a bug, a
		 * damaged agent) cannot push a capture past its limits. */
		packets = a->rep->packets;
		bytes = a->rep->bytes;
		if (j->packet_limit && packets > j->packet_limit)
			packets = j->packet_limit;
		if (j->byte_limit && bytes > j->byte_limit)
			bytes = j->byte_limit;
		changed = part_apply(&parts[i], a->rep->state, packets, bytes, a->rep->drops, a->rep->stop_reason, NULL,
				     a->rep->error, now_real());
		/* What failed, once: with the failed state it arrived with. */
		if (changed && parts[i].state == PART_FAILED && parts[i].failure == PART_FAIL_NONE)
			parts[i].failure = a->rep->failure != PART_FAIL_NONE ? a->rep->failure : PART_FAIL_INTERNAL;
		a->terminal = part_state_terminal(parts[i].state);
		a->drops = parts[i].drops - a->drops; /* part_apply never lowers it */
		a->failed = !a->failed && parts[i].state == PART_FAILED;
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
		if (strcmp(parts[i].agent, a->agent) == 0 && parts[i].state != PART_ASSIGNED &&
		    !part_state_terminal(parts[i].state) && !listed(a->rep, j->id))
			changed |= part_lose(&parts[i],
					     parts[i].state == PART_RUNNING
						     ? "agent restarted during the capture"
						     : "agent restarted before delivering the capture",
					     now_real());
	return changed;
}

/* Appends id to the answer's acknowledgements (room for every job of the
 * report was made). */
static void ack(AgentReportAnswer *a, const char *id)
{
	memcpy(a->ack[a->n_ack++], id, JOB_ID_LEN + 1);
}

/* Whether job id is a sample (false when it cannot be read: the report then
 * takes the usual way, which says why). */
static bool is_sample(Service *s, const char *id)
{
	ErrBuf err = {{0}};
	Job j = {0};
	bool yes = db_job_get(s->cfg.db, NULL, id, &j, &err) == 0 && j.type == JOB_SIMPLE;

	job_done(&j);
	return yes;
}

int service_agent_report(Service *s, const AgentKey *k, const AgentReport *rep, AgentReportAnswer *ret, ApiError *e)
{
	AgentReportAnswer ans = {0};
	ErrBuf err = {{0}};
	int r;

	ans.ack = calloc(rep->n_jobs + 1, sizeof(*ans.ack));
	if (!ans.ack)
		return apierror_set(e, API_ERR_INTERNAL, NULL, "out of memory");
	r = registry_seen(s->reg, rep->name, k->account, rep->colo, rep->interfaces, rep->version, rep->hello,
			  now_mono());
	if (r < 0) {
		errbuf_set(&err, r, "name: cannot register agent: %s", strerror(-r));
		goto fail;
	}
	registry_set_history(s->reg, rep->name, rep->history);
	/* Registration is stored; heartbeats only every few seconds (no write
	 * per report), enough for other controllers to see the agent online. */
	r = service_agent_persist(s, k, rep, &err);
	if (r < 0 && rep->hello)
		goto fail;

	for (size_t i = 0; i < rep->n_jobs; i++) {
		ReportArg a = {.agent = rep->name, .rep = &rep->jobs[i]};

		/* A sample reported done: its answer completed the part already,
		 * so the report is acknowledged and changes nothing, without
		 * reading every part of a sample of 1,000 agents. */
		if (rep->jobs[i].state == PART_DONE && is_sample(s, rep->jobs[i].id)) {
			ack(&ans, rep->jobs[i].id);
			continue;
		}
		r = service_update_job(s, NULL, rep->jobs[i].id, apply_report, &a, NULL, &err);
		if (r >= 0)
			registry_count(s->reg, rep->name, a.drops, a.failed);
		if (r == -ENOENT || (r >= 0 && (!a.known || a.terminal))) {
			/* Final state stored, or nothing to store it in: the agent may
			 * forget the job. A running part is never acknowledged, so it
			 * is reported again until it ends. */
			ack(&ans, rep->jobs[i].id);
		} else if (r < 0) {
			goto fail;
		}
	}

	if (rep->hello) {
		JobPart *parts = NULL;
		size_t n = 0;

		r = db_part_list_for_agent(s->cfg.db, rep->name, &parts, &n, &err);
		if (r < 0)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			HelloArg h = {.agent = rep->name, .rep = rep};

			if (!listed(rep, parts[i].job_id))
				service_update_job(s, NULL, parts[i].job_id, reconcile_hello, &h, NULL, &err);
		}
		parts_free(parts, n);
	}
	/* Every counter of this report is stored: a status query waiting for
	 * fresh counters (service_job_gathered) may answer now. */
	registry_reported(s->reg, rep->name);
	ans.heartbeat_ms = s->cfg.heartbeat_ms;
	*ret = ans;
	return 0;
fail:
	agentproto_report_answer_done(&ans);
	return service_internal(e, r, &err);
}

/* ---- polls ---- */

/* Candidates from the database: every start and stop this agent should have. */
static int candidates(Service *s, const char *name, JobPart **ret_parts, Job **ret_jobs, Delivery **ret_d,
		      size_t *ret_n, ErrBuf *err)
{
	JobPart *parts = NULL;
	Job *jobs = NULL;
	Delivery *d = NULL;
	size_t n = 0, k = 0, starts = 0, stops = 0;
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
		/* What one answer can carry; the rest waits for the next poll. */
		if (starts == AGENTPROTO_MAX_STARTS || stops == AGENTPROTO_MAX_IDS)
			break;
		r = db_job_get(s->cfg.db, NULL, parts[i].job_id, &jobs[i], err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto fail;
		/* A retried upload (attempt > 0) is a start again, with its attempt. */
		if (parts[i].state == PART_ASSIGNED || (parts[i].state == PART_UPLOADING && parts[i].attempt > 0)) {
			memcpy(d[k].id, parts[i].job_id, sizeof(d[k].id));
			d[k++].kind = DELIVER_START;
			starts++;
		}
		if (jobs[i].stop_requested_ns && (parts[i].state == PART_ASSIGNED || parts[i].state == PART_RUNNING)) {
			memcpy(d[k].id, parts[i].job_id, sizeof(d[k].id));
			d[k++].kind = DELIVER_STOP;
			stops++;
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

/* A full capture's store outputs go out without keys: the target REDACTED
 * and the first signed requests of the upload (S3: create; Azure: none yet,
 * its block ids). The agent asks for the rest (POST /agent/v1/upload). */
static int grant_outputs(Service *s, const Job *j, const JobPart *p, AgentJobSpec *spec, ErrBuf *err)
{
	AgentUploadRequest q = {.attempt = p->attempt, .create = true};

	for (size_t i = 0; i < spec->n_outputs; i++) {
		AgentOutput *o = &spec->outputs[i];
		AgentUploadGrant g = {0};
		ErrBuf e = {{0}};
		char *shown;
		int r;

		if (spec->sample || o->kind != JOB_OUTPUT_BUCKET)
			continue;
		r = service_grant_sign(s, j, p, &q, &g, &e);
		if (r == -EOPNOTSUPP)
			continue; /* file://: the agent writes it under its bucket root */
		shown = bucket_uri_redact_dup(o->target);
		if (!shown) {
			agentproto_grant_done(&g);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
		free(o->target);
		o->target = shown;
		if (r < 0)
			continue; /* the agent asks again and gets the reason (POST /agent/v1/upload) */
		o->upload = malloc(sizeof(*o->upload));
		if (!o->upload) {
			agentproto_grant_done(&g);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
		*o->upload = g;
	}
	return 0;
}

/* The taken deliveries d[0..k) as a poll answer. */
static int build_work(Service *s, const JobPart *parts, const Job *jobs, size_t n, const Delivery *d, size_t k,
		      AgentPollAnswer *ret, ErrBuf *err)
{
	AgentPollAnswer a = {0};
	int r = 0;

	if (k) {
		a.start = calloc(k, sizeof(*a.start));
		a.stop = calloc(k, sizeof(*a.stop));
		if (!a.start || !a.stop) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < k && r == 0; i++) {
		if (!d[i].take)
			continue;
		if (d[i].kind == DELIVER_STOP) {
			memcpy(a.stop[a.n_stop++], d[i].id, sizeof(a.stop[0]));
			continue;
		}
		for (size_t p = 0; p < n; p++)
			if (strcmp(parts[p].job_id, d[i].id) == 0 && jobs[p].id[0]) {
				/* A sample: how long the controller still waits for the answer. */
				int64_t left_ms =
					(jobs[p].submitted_ns + s->cfg.sample_deadline_ns - now_real()) / 1000000;

				r = agentproto_spec_from_job(&jobs[p], &parts[p], left_ms > 0 ? (uint32_t)left_ms : 0,
							     &a.start[a.n_start], err);
				if (r == 0)
					a.n_start++;
				if (r == 0)
					r = grant_outputs(s, &jobs[p], &parts[p], &a.start[a.n_start - 1], err);
				break;
			}
	}
out:
	if (r < 0) {
		agentproto_poll_done(&a);
		return r;
	}
	*ret = a;
	return 0;
}

/* The stream orders not yet given to the agent (taps.c). */
static int add_stream_orders(Service *s, const char *name, AgentPollAnswer *a, ErrBuf *err)
{
	if (!service_tap_pending(s, name))
		return 0;
	a->streams = calloc(AGENTPROTO_MAX_STREAMS, sizeof(*a->streams));
	if (!a->streams) {
		agentproto_poll_done(a);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	a->n_streams = service_tap_orders(s, name, a->streams, AGENTPROTO_MAX_STREAMS);
	return 0;
}

int service_agent_poll(Service *s, const char *name, int64_t deadline_mono_ns, void (*park)(void *arg),
		       void (*wake)(void *arg), void *arg, AgentPollAnswer *ret_work, ApiError *e)
{
	ErrBuf err = {{0}};
	uint64_t gen;
	int r;

	/* A poll is a sign of life too: an agent waiting on its poll is online. */
	r = registry_touch(s->reg, name, now_mono());
	if (r >= 0)
		r = registry_generation(s->reg, name, &gen);
	if (r < 0)
		return apierror_set(e, API_ERR_NOT_FOUND, "name",
				    "agent '%s' has not reported yet; send a report first", name);
	for (unsigned round = 0; round < 100; round++) {
		JobPart *parts = NULL;
		Job *jobs = NULL;
		Delivery *d = NULL;
		size_t n = 0;
		int k;

		k = candidates(s, name, &parts, &jobs, &d, &n, &err);
		if (k < 0)
			return service_internal(e, k, &err);
		r = registry_take(s->reg, name, gen, d, (size_t)k);
		if (r > 0 || (r == 0 && (!park || deadline_mono_ns <= now_mono() || service_tap_pending(s, name))))
			r = build_work(s, parts, jobs, n, d, (size_t)k, ret_work, &err) < 0 ||
					    add_stream_orders(s, name, ret_work, &err) < 0
				    ? -ENOMEM
				    : 1;
		else if (r == 0)
			r = registry_park(s->reg, name, gen, deadline_mono_ns, park, wake, arg);
		parts_free(parts, n);
		jobs_free(jobs, n);
		free(d);
		if (r == -EAGAIN) {
			registry_generation(s->reg, name, &gen);
			continue;
		}
		if (r == -ESHUTDOWN)
			return apierror_set(e, API_ERR_UNAVAILABLE, NULL, "the controller is shutting down");
		if (r < 0)
			return service_internal(e, r, &err);
		return r;
	}
	return apierror_set(e, API_ERR_INTERNAL, NULL, "work for agent '%s' keeps changing; poll again", name);
}
