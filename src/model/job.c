/* SPDX-License-Identifier: MIT */
/*
 * The capture model's status machine (see job.h for the diagram). The job's
 * status is derived from its parts by job_aggregate(); parts move forward only
 * (part_apply, part_lose). Both rules together make every update idempotent and
 * order-insensitive: a report repeated after a controller restart, or arriving
 * late, can never move a job backwards.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "model/job.h"

static const char *const type_names[] = {"simple", "full"};
static const char *const status_names[] = {"pending", "running", "conversion_pending", "conversion_running",
					   "success", "failed"};
static const char *const stop_names[] = {"none", "time",       "packets", "bytes",
					 "user", "agent_lost", "error",   "agent_shutdown"};
static const char *const part_names[] = {"assigned", "running", "captured", "uploading",
					 "done",     "failed",  "lost",     "upload_failed"};
static const char *const failure_names[] = {"none", "capture", "file", "storage", "internal"};

const char *job_type_to_string(JobType t)
{
	return (unsigned)t < ARRAY_SIZE(type_names) ? type_names[t] : "unknown";
}

void job_describe(const Job *j, char *buf, size_t cap)
{
	snprintf(buf, cap, "pcapd %s capture %s; colo %s; filter %.700s; snaplen %u%s", job_type_to_string(j->type),
		 j->id, j->colo_name ? j->colo_name : "any",
		 j->filter_json && strcmp(j->filter_json, "{}") != 0 ? j->filter_json : "none", j->snaplen,
		 j->snaplen ? "" : " (whole packets)");
}

const char *job_status_to_string(JobStatus s)
{
	return (unsigned)s < ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

const char *job_stop_to_string(JobStop s)
{
	return (unsigned)s < ARRAY_SIZE(stop_names) ? stop_names[s] : "none";
}

const char *part_state_to_string(PartState s)
{
	return (unsigned)s < ARRAY_SIZE(part_names) ? part_names[s] : "unknown";
}

static int lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -EINVAL;
}

int part_state_from_string(const char *s, PartState *ret)
{
	int i = lookup(part_names, ARRAY_SIZE(part_names), s);

	if (i < 0)
		return i;
	*ret = (PartState)i;
	return 0;
}

const char *part_failure_to_string(PartFailure f)
{
	return (unsigned)f < ARRAY_SIZE(failure_names) ? failure_names[f] : "none";
}

int part_failure_from_string(const char *s, PartFailure *ret)
{
	int i = lookup(failure_names, ARRAY_SIZE(failure_names), s);

	if (i < 0)
		return i;
	*ret = (PartFailure)i;
	return 0;
}

int job_stop_from_string(const char *s, JobStop *ret)
{
	int i = lookup(stop_names, ARRAY_SIZE(stop_names), s);

	if (i < 0)
		return i;
	*ret = (JobStop)i;
	return 0;
}

bool job_status_terminal(JobStatus s)
{
	return s == JOB_SUCCESS || s == JOB_FAILED;
}

bool part_state_terminal(PartState s)
{
	return s == PART_DONE || s == PART_FAILED || s == PART_LOST || s == PART_UPLOAD_FAILED;
}

int job_new_id(char ret[JOB_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[JOB_ID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		ret[2 * i] = hex[raw[i] >> 4];
		ret[2 * i + 1] = hex[raw[i] & 15];
	}
	ret[JOB_ID_LEN] = '\0';
	return 0;
}

void job_id_lower(const char *s, char out[JOB_ID_LEN + 1])
{
	for (size_t i = 0; i < JOB_ID_LEN; i++)
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
	out[JOB_ID_LEN] = '\0';
}

bool job_id_valid(const char *s, size_t n)
{
	if (!s || n != JOB_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* Replaces *slot with a copy of s (NULL clears). Returns true if it changed. */
static bool set_str(char **slot, const char *s)
{
	char *copy;

	if ((!*slot && !s) || (*slot && s && strcmp(*slot, s) == 0))
		return false;
	copy = s ? strdup(s) : NULL;
	if (s && !copy)
		return false; /* out of memory: keep the old text rather than lose the update's state */
	free(*slot);
	*slot = copy;
	return true;
}

/* The failure message: which parts failed and why, bounded. */
static void failure_message(const JobPart *parts, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	unsigned shown = 0, failed = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state != PART_FAILED && parts[i].state != PART_LOST &&
		    parts[i].state != PART_UPLOAD_FAILED)
			continue;
		failed++;
		if (shown < 4) {
			int r = snprintf(out + o, cap - o, "%sagent %s: %s", shown ? "; " : "", parts[i].agent,
					 parts[i].error ? parts[i].error
							: (parts[i].state == PART_LOST ? "lost" : "failed"));

			if (r < 0 || (size_t)r >= cap - o) {
				o = strlen(out);
				break;
			}
			o += (size_t)r;
			shown++;
		}
	}
	if (failed > shown && o + 32 < cap)
		snprintf(out + o, cap - o, "; and %u more", failed - shown);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* The zero-packet rule (job.h): what a capture that matched nothing says. */
static const char *no_packets_message(const Job *j, JobStop reason)
{
	if (j->type == JOB_SIMPLE)
		return "No packets matched the filter in the time window queried. "
		       "Please modify the filter or try again.";
	if (j->stop_requested_ns)
		return "No packets matched the filter before the capture was stopped. "
		       "Please modify the filter or try again.";
	if (reason == JOB_STOP_SHUTDOWN)
		return "No packets matched the filter before the agent was stopped. "
		       "Please modify the filter or try again.";
	/* Cloudflare's own words for a capture that saw nothing in its time. */
	return "No packets matched the filter in the time limit given. Please modify the filter or try again.";
}

static uint64_t tally_terminal(const PartTally *t)
{
	return t->in[PART_DONE] + t->in[PART_FAILED] + t->in[PART_LOST] + t->in[PART_UPLOAD_FAILED];
}

static uint64_t tally_failed(const PartTally *t)
{
	return t->in[PART_FAILED] + t->in[PART_LOST] + t->in[PART_UPLOAD_FAILED];
}

static JobStatus status_of(const Job *j, const PartTally *t)
{
	uint64_t started = t->n - t->in[PART_ASSIGNED];

	if (t->n > 0 && tally_terminal(t) == t->n) {
		/* A sample is answered by whoever answered in time; the agents
		 * that did not are listed on the capture, not hidden. */
		if (j->type == JOB_SIMPLE)
			return tally_failed(t) == t->n ? JOB_FAILED : JOB_SUCCESS;
		return tally_failed(t) ? JOB_FAILED : JOB_SUCCESS;
	}
	if (t->in[PART_RUNNING])
		return JOB_RUNNING;
	if (t->in[PART_ASSIGNED])
		/* Some ended before the rest started: the capture still goes on. */
		return started ? JOB_RUNNING : JOB_PENDING;
	if (t->in[PART_UPLOADING])
		return JOB_CONVERSION_RUNNING;
	if (t->in[PART_CAPTURED])
		return JOB_CONVERSION_PENDING;
	return JOB_PENDING; /* no parts (a sample nobody was asked) */
}

void part_tally_add(PartTally *t, const JobPart *p)
{
	/* Saturating: counters come from agents, and a sum that wrapped
	 * would show a tiny capture as the result of a huge one. */
	t->packets = sat_add(t->packets, p->packets);
	t->bytes = sat_add(t->bytes, p->bytes);
	t->drops = sat_add(t->drops, p->drops);
	if ((unsigned)p->state <= PART_UPLOAD_FAILED)
		t->in[p->state]++;
	t->n++;
}

/* job_aggregate's second half, from the tally and the stop reason the
 * parts give; parts (NULL for a tally alone) are read only for a terminal
 * status. */
static bool aggregate(Job *j, const PartTally *t, JobStop reason, const JobPart *parts, size_t n, int64_t now_ns)
{
	uint64_t packets = t->packets;
	JobStatus status;
	bool changed = false;

	if (j->type == JOB_SIMPLE) {
		/* The download keeps the newest packet_limit of all answers: that
		 * many is what the sample holds, and then the limit ended it. */
		reason = JOB_STOP_NONE;
		if (j->packet_limit && packets >= j->packet_limit) {
			packets = j->packet_limit;
			reason = JOB_STOP_PACKETS;
		}
	}
	if (j->stop_requested_ns && reason != JOB_STOP_LOST && reason != JOB_STOP_ERROR)
		reason = JOB_STOP_USER;

	status = status_of(j, t);
	/* Never backwards: a late "assigned" part cannot undo running. */
	if (status < j->status)
		status = j->status;

	if (status == JOB_FAILED) {
		char msg[512];

		failure_message(parts, n, msg, sizeof(msg));
		changed |= set_str(&j->error_message, msg);
	} else if (status == JOB_SUCCESS && packets == 0) {
		/* The zero-packet rule, for every kind of capture (job.h); a
		 * sample names the agents that did not answer as well. */
		char msg[768], lost[512];

		failure_message(parts, n, lost, sizeof(lost));
		snprintf(msg, sizeof(msg), "%s%s%s", no_packets_message(j, reason), lost[0] ? " Not answered: " : "",
			 lost);
		status = JOB_FAILED;
		changed |= set_str(&j->error_message, msg);
	}
	if (status != j->status) {
		j->status = status;
		changed = true;
	}
	/* Started: some agent captured (or is capturing). A part that failed
	 * before it ever ran does not count. */
	if (!j->started_ns &&
	    (t->in[PART_RUNNING] || t->in[PART_CAPTURED] || t->in[PART_UPLOADING] || t->in[PART_DONE])) {
		j->started_ns = now_ns;
		changed = true;
	}
	if (job_status_terminal(status) && !j->finished_ns) {
		j->finished_ns = now_ns;
		changed = true;
	}
	if (packets != j->packets || t->bytes != j->bytes || t->drops != j->drops || reason != j->stop_reason) {
		j->packets = packets;
		j->bytes = t->bytes;
		j->drops = t->drops;
		j->stop_reason = reason;
		changed = true;
	}
	return changed;
}

bool job_aggregate(Job *j, const JobPart *parts, size_t n, int64_t now_ns)
{
	PartTally t = {0};
	JobStop reason = JOB_STOP_NONE;

	if (job_status_terminal(j->status))
		return false;
	for (size_t i = 0; i < n; i++) {
		const JobPart *p = &parts[i];

		part_tally_add(&t, p);
		if (p->state == PART_FAILED || p->state == PART_LOST || p->state == PART_UPLOAD_FAILED)
			reason = p->state == PART_LOST ? JOB_STOP_LOST : JOB_STOP_ERROR;
		else if (reason == JOB_STOP_NONE && p->stop_reason != JOB_STOP_NONE)
			reason = p->stop_reason;
	}
	return aggregate(j, &t, reason, parts, n, now_ns);
}

int job_aggregate_tally(Job *j, const PartTally *t, int64_t now_ns)
{
	if (job_status_terminal(j->status))
		return 0;
	if (j->type != JOB_SIMPLE || (t->n > 0 && tally_terminal(t) == t->n))
		return -EAGAIN;
	return aggregate(j, t, JOB_STOP_NONE, NULL, 0, now_ns) ? 1 : 0;
}

bool part_apply(JobPart *p, PartState state, uint64_t packets, uint64_t bytes, uint64_t drops, JobStop reason,
		const char *object, const char *error, int64_t now_ns)
{
	bool changed = false;

	if (part_state_terminal(p->state))
		return false;
	if (state > p->state) {
		p->state = state;
		changed = true;
	}
	if (packets > p->packets) {
		p->packets = packets;
		changed = true;
	}
	if (bytes > p->bytes) {
		p->bytes = bytes;
		changed = true;
	}
	if (drops > p->drops) {
		p->drops = drops;
		changed = true;
	}
	if (reason != JOB_STOP_NONE && reason != p->stop_reason) {
		p->stop_reason = reason;
		changed = true;
	}
	if (object && *object)
		changed |= set_str(&p->object, object);
	if (error && *error)
		changed |= set_str(&p->error, error);
	if (changed)
		p->updated_ns = now_ns;
	return changed;
}

bool part_lose(JobPart *p, const char *why, int64_t now_ns)
{
	if (part_state_terminal(p->state))
		return false;
	p->state = PART_LOST;
	p->stop_reason = JOB_STOP_LOST;
	set_str(&p->error, why);
	p->updated_ns = now_ns;
	return true;
}

int job_retry_uploads(Job *j, JobPart *parts, size_t n, int64_t now_ns, ErrBuf *err)
{
	size_t held = 0;

	if (j->type != JOB_FULL)
		return errbuf_set(err, -EINVAL, "a sample has no upload to retry");
	if (j->status != JOB_FAILED)
		return errbuf_set(err, -EALREADY, "capture is %s; only a failed capture's uploads can be retried",
				  job_status_to_string(j->status));
	if (j->continuous.on)
		return errbuf_set(err, -EALREADY,
				  "a continuous capture's files are not uploaded again: each one had its upload "
				  "(and its retries) when it was finished, and a ring has moved on since; the files "
				  "that failed are kept on their agents (the error names them)");
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state == PART_UPLOAD_FAILED)
			held++;
		else if (parts[i].state != PART_DONE)
			return errbuf_set(err, -EALREADY, "agent %s's share %s (%s): no upload to retry",
					  parts[i].agent, part_state_to_string(parts[i].state),
					  parts[i].error ? parts[i].error : "no reason given");
	}
	if (held == 0)
		return errbuf_set(err, -EALREADY, "capture failed before any upload: %s",
				  j->error_message ? j->error_message : "no reason given");
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state != PART_UPLOAD_FAILED)
			continue;
		parts[i].state = PART_UPLOADING;
		parts[i].attempt++;
		set_str(&parts[i].error, NULL);
		parts[i].updated_ns = now_ns;
	}
	j->status = JOB_CONVERSION_RUNNING;
	set_str(&j->error_message, NULL);
	j->finished_ns = 0;
	return 0;
}

void job_done(Job *j)
{
	if (!j)
		return;
	free(j->filter_json);
	free(j->filter_model);
	free(j->echo_json);
	free(j->colo_name);
	for (size_t i = 0; i < j->n_outputs && i < JOB_MAX_OUTPUTS; i++) {
		free(j->outputs[i].target);
		free(j->outputs[i].object);
	}
	free(j->error_message);
	free(j->name.group);
	free(j->name.watcher);
	free(j->name.name);
	free(j->request);
	free(j->target_include);
	free(j->target_exclude);
	memset(j, 0, sizeof(*j));
}

void part_done(JobPart *p)
{
	if (!p)
		return;
	free(p->object);
	free(p->error);
	memset(p, 0, sizeof(*p));
}

void jobs_free(Job *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		job_done(&v[i]);
	free(v);
}

void parts_free(JobPart *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		part_done(&v[i]);
	free(v);
}

static int dup_opt(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

bool part_differs(const JobPart *a, const JobPart *b)
{
	return strcmp(a->job_id, b->job_id) != 0 || strcmp(a->agent, b->agent) != 0 || a->state != b->state ||
	       a->packets != b->packets || a->bytes != b->bytes || a->drops != b->drops ||
	       a->stop_reason != b->stop_reason || str_differs(a->object, b->object) ||
	       str_differs(a->error, b->error) || a->updated_ns != b->updated_ns || a->attempt != b->attempt ||
	       a->failure != b->failure;
}

int parts_copy(const JobPart *v, size_t n, JobPart **ret)
{
	JobPart *c = calloc(n ? n : 1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = v[i];
		c[i].object = c[i].error = NULL;
		if (dup_opt(v[i].object, &c[i].object) < 0 || dup_opt(v[i].error, &c[i].error) < 0) {
			parts_free(c, i + 1);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

size_t parts_changed_first(JobPart *parts, JobPart *before, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		JobPart t;

		if (!part_differs(&parts[i], &before[i]))
			continue;
		t = parts[k];
		parts[k] = parts[i];
		parts[i] = t;
		t = before[k];
		before[k] = before[i];
		before[i] = t;
		k++;
	}
	return k;
}

int job_copy(const Job *src, Job *ret)
{
	Job j = *src;
	bool ok;

	j.filter_json = j.filter_model = j.echo_json = j.colo_name = j.error_message = NULL;
	j.name = (JobName){0};
	j.request = j.target_include = j.target_exclude = NULL;
	for (size_t i = 0; i < JOB_MAX_OUTPUTS; i++)
		j.outputs[i].target = j.outputs[i].object = NULL;
	ok = dup_opt(src->filter_json, &j.filter_json) == 0 && dup_opt(src->filter_model, &j.filter_model) == 0 &&
	     dup_opt(src->echo_json, &j.echo_json) == 0 && dup_opt(src->colo_name, &j.colo_name) == 0 &&
	     dup_opt(src->error_message, &j.error_message) == 0 && dup_opt(src->name.group, &j.name.group) == 0 &&
	     dup_opt(src->name.watcher, &j.name.watcher) == 0 && dup_opt(src->name.name, &j.name.name) == 0 &&
	     dup_opt(src->request, &j.request) == 0 && dup_opt(src->target_include, &j.target_include) == 0 &&
	     dup_opt(src->target_exclude, &j.target_exclude) == 0;
	for (size_t i = 0; ok && i < src->n_outputs; i++)
		ok = dup_opt(src->outputs[i].target, &j.outputs[i].target) == 0 &&
		     dup_opt(src->outputs[i].object, &j.outputs[i].object) == 0;
	if (!ok) {
		job_done(&j);
		return -ENOMEM;
	}
	*ret = j;
	return 0;
}

int job_name_set(JobName *n, const char *group, const char *watcher, const char *name)
{
	JobName v = {0};

	if (dup_opt(group, &v.group) < 0 || dup_opt(watcher, &v.watcher) < 0 || dup_opt(name, &v.name) < 0) {
		free(v.group);
		free(v.watcher);
		free(v.name);
		return -ENOMEM;
	}
	free(n->group);
	free(n->watcher);
	free(n->name);
	*n = v;
	return 0;
}

bool job_named(const Job *j)
{
	return j->name.name != NULL;
}

static const char *const output_names[] = {"bucket", "file"};

const char *job_output_kind_to_string(JobOutputKind k)
{
	return (unsigned)k < ARRAY_SIZE(output_names) ? output_names[k] : "unknown";
}

int job_output_kind_from_string(const char *s, JobOutputKind *ret)
{
	int i = lookup(output_names, ARRAY_SIZE(output_names), s);

	if (i < 0)
		return i;
	*ret = (JobOutputKind)i;
	return 0;
}

const char *job_bucket(const Job *j)
{
	for (size_t i = 0; i < j->n_outputs; i++)
		if (j->outputs[i].kind == JOB_OUTPUT_BUCKET)
			return j->outputs[i].target;
	return NULL;
}

int job_add_output(Job *j, JobOutputKind kind, const char *target)
{
	char *copy;

	if (j->n_outputs >= JOB_MAX_OUTPUTS)
		return -E2BIG;
	copy = strdup(target);
	if (!copy)
		return -ENOMEM;
	j->outputs[j->n_outputs].kind = kind;
	j->outputs[j->n_outputs].target = copy;
	j->outputs[j->n_outputs].object = NULL;
	j->outputs[j->n_outputs].held = false;
	j->n_outputs++;
	return 0;
}

int job_add_named_object(Job *j, const char *bucket, const char *object, bool held)
{
	char *copy = strdup(object);
	int r;

	if (!copy)
		return -ENOMEM;
	r = job_add_output(j, JOB_OUTPUT_BUCKET, bucket);
	if (r < 0) {
		free(copy);
		return r;
	}
	j->outputs[j->n_outputs - 1].object = copy;
	j->outputs[j->n_outputs - 1].held = held;
	return 0;
}

int job_part_object(const Job *j, const char *agent, char *out, size_t cap)
{
	const char *named = NULL, *dot;
	int n;

	for (size_t i = 0; i < j->n_outputs && !named; i++)
		if (j->outputs[i].kind == JOB_OUTPUT_BUCKET)
			named = j->outputs[i].object;
	if (!named)
		n = snprintf(out, cap, "pcap_%s_%s.pcap", j->id, agent);
	else if (j->target_kind == JOB_TARGET_AGENT)
		n = snprintf(out, cap, "%s", named);
	else {
		dot = strrchr(named, '.');
		if (!dot || dot == named)
			dot = named + strlen(named);
		n = snprintf(out, cap, "%.*s_%s%s", (int)(dot - named), named, agent, dot);
	}
	return n >= 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

int job_file_object(const char *object, uint64_t index, char *out, size_t cap)
{
	const char *dot = strrchr(object, '.');
	int n;

	if (!dot || dot == object)
		dot = object + strlen(object);
	n = snprintf(out, cap, "%.*s_%llu%s", (int)(dot - object), object, (unsigned long long)index, dot);
	return n >= 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

int job_outputs_to_text(const Job *j, char **ret)
{
	json_t *arr;
	char *text;

	*ret = NULL;
	if (j->n_outputs == 0)
		return 0;
	arr = json_array();
	for (size_t i = 0; arr && i < j->n_outputs; i++) {
		const JobOutput *o = &j->outputs[i];
		json_t *v = json_pack("{s:s, s:s}", "kind", job_output_kind_to_string(o->kind), "target",
				      o->target ? o->target : "");

		if (v && o->object && json_object_set_new(v, "object", json_string(o->object)) < 0) {
			json_decref(v);
			v = NULL;
		}
		if (json_array_append_new(arr, v) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	text = arr ? json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(arr);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

int job_outputs_from_text(const char *text, Job *j)
{
	json_t *arr = json_loads(text, 0, NULL), *v;
	size_t i;
	int r = 0;

	if (!json_is_array(arr)) {
		json_decref(arr);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v)
	{
		const char *target = json_string_value(json_object_get(v, "target"));
		const json_t *object = json_object_get(v, "object");
		JobOutputKind kind;

		r = job_output_kind_from_string(json_string_value(json_object_get(v, "kind")), &kind);
		if (r == 0 && (!target || (object && (!json_is_string(object) || kind != JOB_OUTPUT_BUCKET))))
			r = -EINVAL;
		if (r == 0)
			r = object ? job_add_named_object(j, target, json_string_value(object), false)
				   : job_add_output(j, kind, target);
		if (r < 0)
			break;
	}
	json_decref(arr);
	return r;
}

static bool object_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > JOB_OBJECT_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static int check_outputs(const Job *j, ErrBuf *err)
{
	if (j->type != JOB_FULL) {
		if (j->n_outputs)
			return errbuf_set(err, -EINVAL, "outputs: only for full captures");
		return 0;
	}
	if (j->n_outputs == 0 || j->n_outputs > JOB_MAX_OUTPUTS)
		return errbuf_set(err, -EINVAL, "outputs: a full capture needs 1..%u", JOB_MAX_OUTPUTS);
	for (size_t i = 0; i < j->n_outputs; i++) {
		const JobOutput *o = &j->outputs[i];
		size_t n = o->target ? strlen(o->target) : 0;

		if ((unsigned)o->kind >= ARRAY_SIZE(output_names))
			return errbuf_set(err, -EINVAL, "outputs[%zu].kind: must be bucket or file", i);
		if (n == 0 || n > JOB_OUTPUT_TARGET_MAX)
			return errbuf_set(err, -EINVAL, "outputs[%zu].target: must be 1..%u bytes", i,
					  JOB_OUTPUT_TARGET_MAX);
		if (o->kind == JOB_OUTPUT_FILE && (strncmp(o->target, JOB_FILE_ROOT "/", sizeof(JOB_FILE_ROOT)) != 0 ||
						   !o->target[sizeof(JOB_FILE_ROOT)]))
			return errbuf_set(err, -EINVAL,
					  "outputs[%zu].target: a file's path must lie below " JOB_FILE_ROOT, i);
		if (o->object && (o->kind != JOB_OUTPUT_BUCKET || !object_name_valid(o->object)))
			return errbuf_set(err, -EINVAL,
					  "outputs[%zu].object: a bucket's object, 1..%u bytes of [A-Za-z0-9._-] not "
					  "starting with '.'",
					  i, JOB_OBJECT_MAX);
	}
	return 0;
}

static int check_continuous(const Job *j, ErrBuf *err)
{
	const JobContinuous *c = &j->continuous;

	if (!c->on) {
		if (c->ring || c->file_count || c->file_size || c->session_limit_s)
			return errbuf_set(err, -EINVAL, "continuous: settings without continuous mode");
		return 0;
	}
	if (j->type != JOB_FULL)
		return errbuf_set(err, -EINVAL, "continuous: only for full captures");
	if (c->file_count > JOB_MAX_FILE_COUNT)
		return errbuf_set(err, -EINVAL, "continuous.file_count: %u is outside 0..%u", c->file_count,
				  JOB_MAX_FILE_COUNT);
	if (c->session_limit_s > JOB_MAX_SESSION_S)
		return errbuf_set(err, -EINVAL, "continuous.session_limit: %u is outside 0..%u", c->session_limit_s,
				  JOB_MAX_SESSION_S);
	return 0;
}

/* A part of a resource name: 1..JOB_NAME_MAX printable ASCII bytes, no '/'. */
static bool name_part_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > JOB_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '/')
			return false;
	return true;
}

static int check_name(const Job *j, ErrBuf *err)
{
	const JobName *n = &j->name;

	if (!n->group && !n->watcher && !n->name)
		return 0;
	if (j->type != JOB_FULL)
		return errbuf_set(err, -EINVAL, "name: only full captures are named");
	if (!name_part_valid(n->group) || !name_part_valid(n->watcher) || !name_part_valid(n->name))
		return errbuf_set(err, -EINVAL,
				  "name: group, watcher and name must each be 1..%u printable bytes without '/'",
				  JOB_NAME_MAX);
	return 0;
}

static int check_target(const Job *j, ErrBuf *err)
{
	if ((unsigned)j->target_kind > JOB_TARGET_COLO)
		return errbuf_set(err, -EINVAL, "target: unknown kind %d", (int)j->target_kind);
	if ((j->target_include || j->target_exclude) && j->target_kind != JOB_TARGET_COLO)
		return errbuf_set(err, -EINVAL, "target: include and exclude lists are only for a colo");
	if (j->request && strlen(j->request) > JOB_REQUEST_MAX)
		return errbuf_set(err, -EINVAL, "request: more than %u bytes", JOB_REQUEST_MAX);
	return 0;
}

int job_check(const Job *j, ErrBuf *err)
{
	int r;

	if (j->type != JOB_SIMPLE && j->type != JOB_FULL)
		return errbuf_set(err, -EINVAL, "type: must be simple or full");
	if (j->time_limit_s > JOB_MAX_TIME_S)
		return errbuf_set(err, -EINVAL, "time_limit: %u is outside 0..%u", j->time_limit_s, JOB_MAX_TIME_S);
	if (j->type == JOB_FULL && (!j->colo_name || !j->colo_name[0]))
		return errbuf_set(err, -EINVAL, "target: a full capture needs an agent or colo name");
	if (j->echo_json && strlen(j->echo_json) > JOB_ECHO_MAX)
		return errbuf_set(err, -EINVAL, "echo: longer than %u bytes", JOB_ECHO_MAX);
	r = check_outputs(j, err);
	if (r == 0)
		r = check_continuous(j, err);
	if (r == 0)
		r = check_target(j, err);
	if (r == 0)
		r = check_name(j, err);
	return r;
}
