/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol's work (docs/AGENT-PROTOCOL.md), both sides: the
 * controller turns a job's part into a start (agentproto_spec_from_job) and
 * writes poll answers; the agent reads them. A start is written from the same
 * struct the agent reads it into, so the two can only disagree where one side
 * is older than the other.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/filtermodel.h"
#include "proto/proto-int.h"

void agentproto_spec_done(AgentJobSpec *s)
{
	if (!s)
		return;
	free(s->filter);
	for (size_t i = 0; i < s->n_outputs && i < JOB_MAX_OUTPUTS; i++) {
		free(s->outputs[i].target);
		agentproto_grant_done(s->outputs[i].upload);
		free(s->outputs[i].upload);
	}
	*s = (AgentJobSpec){0};
}

/* ---- the controller's side ---- */

int agentproto_spec_from_job(const Job *j, const JobPart *p, uint32_t deadline_ms, AgentJobSpec *ret, ErrBuf *err)
{
	AgentJobSpec s = {0};

	memcpy(s.id, j->id, sizeof(s.id));
	s.sample = j->type == JOB_SIMPLE;
	s.filter = strdup(j->filter_model ? j->filter_model : "{}");
	if (!s.filter)
		goto oom;
	s.packet_limit = j->packet_limit;
	if (s.sample) {
		/* The window [offset_time - time_limit, offset_time]. */
		int64_t from = j->offset_time_ns - (int64_t)j->time_limit_s * (int64_t)NSEC_PER_SEC;

		s.from_ns = from > 0 ? (uint64_t)from : 0;
		s.to_ns = j->offset_time_ns > 0 ? (uint64_t)j->offset_time_ns : 0;
		s.deadline_ms = deadline_ms;
		*ret = s;
		return 0;
	}
	s.snaplen = j->snaplen;
	s.attempt = p->attempt;
	s.time_limit_s = j->time_limit_s;
	s.byte_limit = j->byte_limit;
	s.continuous = j->continuous;
	for (size_t i = 0; i < j->n_outputs && i < JOB_MAX_OUTPUTS; i++) {
		AgentOutput *o = &s.outputs[s.n_outputs];

		o->kind = j->outputs[i].kind;
		o->target = strdup(j->outputs[i].target ? j->outputs[i].target : "");
		if (!o->target)
			goto oom;
		s.n_outputs++;
		/* The object is the part's: one per agent, named by the controller. */
		if (o->kind == JOB_OUTPUT_BUCKET && p->object)
			proto_copy_str(o->object, sizeof(o->object), p->object);
	}
	*ret = s;
	return 0;
oom:
	agentproto_spec_done(&s);
	return errbuf_set(err, -ENOMEM, "out of memory");
}

static json_t *outputs_json(const AgentJobSpec *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < s->n_outputs; i++) {
		const AgentOutput *o = &s->outputs[i];
		json_t *v = json_pack("{s:s, s:s}", "kind", job_output_kind_to_string(o->kind), "target", o->target);

		if (v && o->object[0] && json_object_set_new(v, "object", json_string(o->object)) < 0) {
			json_decref(v);
			v = NULL;
		}
		if (v && o->upload && json_object_set_new(v, "upload", proto_grant_json(o->upload)) < 0) {
			json_decref(v);
			v = NULL;
		}
		if (json_array_append_new(arr, v) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *continuous_json(const JobContinuous *c)
{
	return json_pack("{s:b, s:I, s:I, s:I}", "ring", c->ring, "file_count", (json_int_t)c->file_count, "file_size",
			 (json_int_t)c->file_size, "session_limit", (json_int_t)c->session_limit_s);
}

static json_t *spec_json(const AgentJobSpec *s)
{
	json_t *filter = json_loads(s->filter ? s->filter : "{}", 0, NULL), *o;

	if (!filter)
		filter = json_object();
	if (s->sample)
		return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I}", "id", s->id, "type", "simple", "filter", filter,
				 "from_ns", (json_int_t)s->from_ns, "to_ns", (json_int_t)s->to_ns, "packet_limit",
				 (json_int_t)s->packet_limit, "deadline_ms", (json_int_t)s->deadline_ms);
	o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:o}", "id", s->id, "type", "full", "filter", filter,
		      "snaplen", (json_int_t)s->snaplen, "time_limit", (json_int_t)s->time_limit_s, "packet_limit",
		      (json_int_t)s->packet_limit, "byte_limit", (json_int_t)s->byte_limit, "outputs", outputs_json(s));
	if (o && s->continuous.on && json_object_set_new(o, "continuous", continuous_json(&s->continuous)) < 0) {
		json_decref(o);
		return NULL;
	}
	if (o && s->attempt && json_object_set_new(o, "attempt", json_integer((json_int_t)s->attempt)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int agentproto_poll_build(const AgentPollAnswer *a, char **ret, ErrBuf *err)
{
	json_t *start = json_array(), *stop = proto_ids_json((const char(*)[JOB_ID_LEN + 1]) a->stop, a->n_stop);
	json_t *root = NULL;
	int r;

	for (size_t i = 0; start && i < a->n_start; i++)
		if (json_array_append_new(start, spec_json(&a->start[i])) < 0)
			goto oom;
	if (!start || !stop)
		goto oom;
	root = json_pack("{s:o, s:o}", "start", start, "stop", stop);
	start = stop = NULL; /* json_pack took them */
	if (!root)
		goto oom;
	/* Only when there are some: older agents see the answer they know. */
	if (a->n_streams) {
		json_t *streams = json_array();

		for (size_t i = 0; streams && i < a->n_streams; i++)
			if (json_array_append_new(streams, json_pack("{s:s, s:s}", "id", a->streams[i].id, "tap",
								     a->streams[i].tap)) < 0) {
				json_decref(streams);
				streams = NULL;
			}
		if (!streams || json_object_set_new(root, "streams", streams) < 0) {
			json_decref(root);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
	}
	r = proto_dump(root, ret, err);
	json_decref(root);
	return r;
oom:
	json_decref(start);
	json_decref(stop);
	return errbuf_set(err, -ENOMEM, "out of memory");
}

/* ---- the agent's side ---- */

/* A sample's own fields (s->sample set). */
static int parse_sample_fields(const json_t *o, AgentJobSpec *s, ErrBuf *e)
{
	uint64_t deadline = AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS;
	int r;

	if (!json_object_get(o, "from_ns") || json_is_null(json_object_get(o, "from_ns")))
		return errbuf_set(e, -EINVAL, "from_ns: missing");
	if (!json_object_get(o, "to_ns") || json_is_null(json_object_get(o, "to_ns")))
		return errbuf_set(e, -EINVAL, "to_ns: missing");
	r = proto_get_u64(o, "from_ns", INT64_MAX, &s->from_ns, e);
	if (r == 0)
		r = proto_get_u64(o, "to_ns", INT64_MAX, &s->to_ns, e);
	if (r == 0 && s->from_ns > s->to_ns)
		r = errbuf_set(e, -EINVAL, "from_ns: after to_ns");
	if (r == 0)
		r = proto_get_u64(o, "packet_limit", AGENTPROTO_MAX_SAMPLE_PACKETS, &s->packet_limit, e);
	if (r == 0 && s->packet_limit == 0)
		r = errbuf_set(e, -EINVAL, "packet_limit: a sample needs 1..%u", AGENTPROTO_MAX_SAMPLE_PACKETS);
	if (r == 0)
		r = proto_get_u64(o, "deadline_ms", UINT64_MAX, &deadline, e);
	if (r < 0)
		return r;
	s->deadline_ms =
		deadline > AGENTPROTO_MAX_SAMPLE_DEADLINE_MS ? AGENTPROTO_MAX_SAMPLE_DEADLINE_MS : (uint32_t)deadline;
	return 0;
}

/* One entry of "outputs" into s->outputs[s->n_outputs]. -ENOMEM is the only
 * failure that is not the spec's (e). */
static int parse_output(const json_t *v, size_t i, AgentJobSpec *s, ErrBuf *e)
{
	AgentOutput *o = &s->outputs[s->n_outputs];
	const char *kind = json_string_value(json_object_get(v, "kind"));
	const json_t *target = json_object_get(v, "target"), *object = json_object_get(v, "object");
	const json_t *upload = json_object_get(v, "upload");

	if (!json_is_object(v))
		return errbuf_set(e, -EINVAL, "outputs[%zu]: not an object", i);
	if (!kind || job_output_kind_from_string(kind, &o->kind) < 0)
		return errbuf_set(e, -EOPNOTSUPP, "outputs[%zu].kind: '%.40s' is not an output this agent knows", i,
				  kind ? kind : "");
	if (!json_is_string(target) || json_string_length(target) == 0 ||
	    json_string_length(target) > JOB_OUTPUT_TARGET_MAX ||
	    strlen(json_string_value(target)) != json_string_length(target))
		return errbuf_set(e, -EINVAL, "outputs[%zu].target: not a string of 1..%u bytes", i,
				  JOB_OUTPUT_TARGET_MAX);
	if (json_is_string(object) && json_string_length(object) == 0)
		object = NULL; /* "" = none given: the agent names the object */
	if (object && !json_is_null(object)) {
		if (!json_is_string(object) || !agentproto_object_valid(json_string_value(object)))
			return errbuf_set(e, -EINVAL,
					  "outputs[%zu].object: not 1..%u bytes of [A-Za-z0-9._-] that do not start "
					  "with '.'",
					  i, AGENTPROTO_OBJECT_MAX);
		proto_copy_str(o->object, sizeof(o->object), json_string_value(object));
	}
	if (upload && !json_is_null(upload)) {
		char where[48];
		int r;

		snprintf(where, sizeof(where), "outputs[%zu].upload", i);
		o->upload = calloc(1, sizeof(*o->upload));
		if (!o->upload)
			return -ENOMEM;
		r = proto_grant_from_json(upload, where, o->upload, e);
		if (r < 0) {
			free(o->upload);
			o->upload = NULL;
			return r;
		}
	}
	o->target = strdup(json_string_value(target));
	s->n_outputs++; /* from here on agentproto_spec_done() frees what it holds */
	if (!o->target)
		return -ENOMEM;
	return 0;
}

static int parse_outputs(const json_t *o, AgentJobSpec *s, ErrBuf *e)
{
	const json_t *arr = json_object_get(o, "outputs"), *v;
	size_t i;
	int r;

	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > JOB_MAX_OUTPUTS)
		return errbuf_set(e, -EINVAL, "outputs: a full capture needs an array of 1..%u outputs",
				  JOB_MAX_OUTPUTS);
	json_array_foreach(arr, i, v)
	{
		r = parse_output(v, i, s, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_continuous(const json_t *o, JobContinuous *c, ErrBuf *e)
{
	const json_t *v = json_object_get(o, "continuous"), *ring;
	uint64_t count = 0, size = 0, limit = 0;
	int r;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return errbuf_set(e, -EINVAL, "continuous: not an object");
	ring = json_object_get(v, "ring");
	if (ring && !json_is_boolean(ring))
		return errbuf_set(e, -EINVAL, "continuous.ring: not true or false");
	r = proto_get_u64(v, "file_count", JOB_MAX_FILE_COUNT, &count, e);
	if (r == 0)
		r = proto_get_u64(v, "file_size", INT64_MAX, &size, e);
	if (r == 0)
		r = proto_get_u64(v, "session_limit", JOB_MAX_SESSION_S, &limit, e);
	if (r < 0)
		return r;
	*c = (JobContinuous){.on = true,
			     .ring = json_is_true(ring),
			     .file_count = (uint32_t)count,
			     .file_size = size,
			     .session_limit_s = (uint32_t)limit};
	return 0;
}

/* A full capture's fields (after type and filter). */
static int parse_full_fields(const json_t *o, AgentJobSpec *s, ErrBuf *e)
{
	uint64_t snaplen = 0;
	int r;

	uint64_t attempt = 0;

	r = proto_get_u64(o, "snaplen", UINT32_MAX, &snaplen, e);
	if (r == 0)
		r = proto_get_u64(o, "attempt", AGENTPROTO_MAX_ATTEMPT, &attempt, e);
	s->attempt = (uint32_t)attempt;
	if (r == 0)
		r = proto_get_u64(o, "time_limit", JOB_MAX_TIME_S, &s->time_limit_s, e);
	if (r == 0)
		r = proto_get_u64(o, "packet_limit", INT64_MAX, &s->packet_limit, e);
	if (r == 0)
		r = proto_get_u64(o, "byte_limit", INT64_MAX, &s->byte_limit, e);
	if (r == 0)
		r = parse_continuous(o, &s->continuous, e);
	if (r == 0)
		r = parse_outputs(o, s, e);
	s->snaplen = (uint32_t)snaplen;
	return r;
}

/* Fills s from one start entry (s->id already set). The first field error
 * goes to s->error; only running out of memory fails. */
static int parse_spec(const json_t *o, AgentJobSpec *s)
{
	ErrBuf e = {{0}};
	const json_t *v;
	int bad = 0;

	v = json_object_get(o, "type");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			bad = errbuf_set(&e, -EINVAL, "type: not a string");
		else if (strcmp(json_string_value(v), "simple") == 0)
			s->sample = true;
		else if (strcmp(json_string_value(v), "full") != 0)
			bad = errbuf_set(&e, -EOPNOTSUPP, "type: '%.40s' captures are not supported by this agent",
					 json_string_value(v));
	}
	v = json_object_get(o, "filter");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		if (!bad)
			bad = errbuf_set(&e, -EINVAL, "filter: not an object");
		v = NULL;
	}
	s->filter = v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("{}");
	if (!s->filter)
		return -ENOMEM;
	if (!bad && strlen(s->filter) > FILTERMODEL_MAX)
		bad = errbuf_set(&e, -E2BIG, "filter: over %u bytes", FILTERMODEL_MAX);
	/* A sample has no outputs: the answer goes back to the controller. */
	if (!bad)
		bad = s->sample ? parse_sample_fields(o, s, &e) : parse_full_fields(o, s, &e);
	if (bad == -ENOMEM)
		return bad;
	if (bad)
		memcpy(s->error, e.msg, sizeof(s->error));
	return 0;
}

/* "streams": [{id, tap}], at most AGENTPROTO_MAX_STREAMS; entries without a
 * valid id and tap are counted as skipped. */
static int parse_streams(const json_t *root, AgentPollAnswer *a, ErrBuf *err)
{
	const json_t *arr = json_object_get(root, "streams"), *v;
	size_t i;

	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return errbuf_set(err, -EBADMSG, "poll: streams: not an array");
	if (json_array_size(arr) > AGENTPROTO_MAX_STREAMS)
		return errbuf_set(err, -EMSGSIZE, "poll: %zu stream orders, over %u", json_array_size(arr),
				  AGENTPROTO_MAX_STREAMS);
	if (json_array_size(arr) == 0)
		return 0;
	a->streams = calloc(json_array_size(arr), sizeof(*a->streams));
	if (!a->streams)
		return errbuf_set(err, -ENOMEM, "out of memory");
	json_array_foreach(arr, i, v)
	{
		AgentStreamOrder *o = &a->streams[a->n_streams];

		if (json_is_object(v) && proto_take_id(json_string_value(json_object_get(v, "id")), o->id) &&
		    agentproto_tap_valid(json_string_value(json_object_get(v, "tap")), o->tap))
			a->n_streams++;
		else
			a->n_skipped++;
	}
	return 0;
}

int agentproto_poll_parse(const char *p, size_t n, AgentPollAnswer *ret, ErrBuf *err)
{
	AgentPollAnswer a = {0};
	const json_t *arr, *v;
	json_t *root;
	size_t i;
	int r;

	r = proto_load(p, n, "poll", &root, err);
	if (r < 0)
		return r;
	arr = json_object_get(root, "start");
	if (arr && !json_is_null(arr)) {
		if (!json_is_array(arr)) {
			r = errbuf_set(err, -EBADMSG, "poll: start: not an array");
			goto fail;
		}
		if (json_array_size(arr) > AGENTPROTO_MAX_STARTS) {
			r = errbuf_set(err, -EMSGSIZE, "poll: %zu starts, over %u", json_array_size(arr),
				       AGENTPROTO_MAX_STARTS);
			goto fail;
		}
		if (json_array_size(arr) > 0) {
			a.start = calloc(json_array_size(arr), sizeof(*a.start));
			if (!a.start)
				goto oom;
		}
		json_array_foreach(arr, i, v)
		{
			AgentJobSpec *s = &a.start[a.n_start];

			if (!json_is_object(v) || !proto_take_id(json_string_value(json_object_get(v, "id")), s->id)) {
				a.n_skipped++;
				continue;
			}
			a.n_start++;
			if (parse_spec(v, s) < 0)
				goto oom;
		}
	}
	r = proto_get_ids(root, "stop", &a.stop, &a.n_stop, &a.n_skipped, err);
	if (r < 0)
		goto fail;
	r = parse_streams(root, &a, err);
	if (r < 0)
		goto fail;
	json_decref(root);
	*ret = a;
	return 0;
oom:
	r = errbuf_set(err, -ENOMEM, "out of memory");
fail:
	agentproto_poll_done(&a);
	json_decref(root);
	return r;
}

void agentproto_poll_done(AgentPollAnswer *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_start; i++)
		agentproto_spec_done(&a->start[i]);
	free(a->start);
	free(a->stop);
	free(a->streams);
	*a = (AgentPollAnswer){0};
}
