/* SPDX-License-Identifier: MIT */
/*
 * Agent protocol codec (docs/AGENT-PROTOCOL.md). Parsing is strict about what
 * the agent relies on (ids, types, bounds) and ignores fields it does not
 * know, so that a newer controller can add some without breaking older
 * agents.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "proto/agentproto.h"
#include "common/timefmt.h"
#include "model/filterjson.h"

#define MIN_INTERVAL_MS 1000u
#define MAX_INTERVAL_MS 60000u

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

static bool charset_valid(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (n >= max || !name_char(s[n]))
			return false;
	return n > 0;
}

bool agentproto_name_valid(const char *s)
{
	return charset_valid(s, AGENT_NAME_MAX);
}

bool agentproto_object_valid(const char *s)
{
	return charset_valid(s, AGENTPROTO_OBJECT_MAX) && s[0] != '.';
}

/* Copies a valid id, lowercased; false if s is not 32 hex digits. */
static bool take_id(const char *s, char out[JOB_ID_LEN + 1])
{
	if (!s || !job_id_valid(s, strlen(s)))
		return false;
	for (size_t i = 0; i < JOB_ID_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[JOB_ID_LEN] = '\0';
	return true;
}

/* Copies s into out[cap]; -ENAMETOOLONG if it does not fit. */
static int copy_str(char *out, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, s, n + 1);
	return 0;
}

/* A text for JSON: invalid UTF-8 (a message quoting outside bytes) gets its
 * non-ASCII bytes replaced, so that the text is never lost. */
static json_t *safe_string(const char *text)
{
	char safe[sizeof(((ErrBuf *)0)->msg)];
	json_t *e = json_string(text);
	size_t i;

	if (e)
		return e;
	for (i = 0; text[i] && i + 1 < sizeof(safe); i++)
		safe[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
	safe[i] = '\0';
	return json_string(safe);
}

static json_int_t clamp_i64(uint64_t v)
{
	return (json_int_t)(v > INT64_MAX ? INT64_MAX : v);
}

/* RFC 3339 text, or null for 0 (no packet). */
static json_t *time_or_null(uint64_t ns)
{
	char text[TIMEFMT_MAX];

	if (ns == 0 || ns > INT64_MAX)
		return json_null();
	timefmt_rfc3339((int64_t)ns, text);
	return json_string(text);
}

/* The report's "history" member (docs/AGENT-PROTOCOL.md): at most 16
 * members, which the controller shows as they are. */
static json_t *history_object(const AgentHistory *h)
{
	json_t *e;

	e = h->error[0] ? safe_string(h->error) : json_null();
	if (!e)
		return NULL;
	if (h->sample_rate == 0)
		return json_pack("{s:b, s:o, s:i}", "recording", 0, "error", e, "sample_rate", 0);
	return json_pack("{s:b, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:I}", "recording", h->recording, "error", e,
			 "packets", clamp_i64(h->packets), "bytes", clamp_i64(h->bytes), "segments",
			 clamp_i64(h->segments), "drops", clamp_i64(h->drops), "oldest", time_or_null(h->oldest_ns),
			 "newest", time_or_null(h->newest_ns), "sample_rate", (json_int_t)h->sample_rate);
}

static json_t *job_object(const AgentJobReport *r)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "id", r->id, "state", part_state_to_string(r->state), "packets",
		      (json_int_t)(r->packets > INT64_MAX ? INT64_MAX : r->packets), "bytes",
		      (json_int_t)(r->bytes > INT64_MAX ? INT64_MAX : r->bytes), "drops",
		      (json_int_t)(r->drops > INT64_MAX ? INT64_MAX : r->drops), "stop_reason",
		      job_stop_to_string(r->stop_reason));
	if (!o)
		return NULL;
	if (r->object[0] && json_object_set_new(o, "object", json_string(r->object)) < 0)
		goto fail;
	/* json_string() refuses invalid UTF-8: system error texts are ASCII, but a
	 * message quoting outside bytes may not be (safe_string). */
	if (r->error[0] && json_object_set_new(o, "error", safe_string(r->error)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static int dump(json_t *v, char **ret, ErrBuf *err)
{
	char *text = json_dumps(v, JSON_COMPACT);

	if (!text)
		return errbuf_set(err, -ENOMEM, "out of memory");
	*ret = text;
	return 0;
}

int agentproto_report_build(const AgentIdent *who, bool hello, const AgentHistory *hist, const AgentJobReport *jobs,
			    size_t n, char **ret, ErrBuf *err)
{
	json_t *root = NULL, *ifaces, *list;
	int r = -ENOMEM;

	ifaces = json_array();
	list = json_array();
	if (!ifaces || !list) {
		json_decref(ifaces);
		json_decref(list);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	root = json_pack("{s:s, s:s, s:s, s:o, s:b, s:o}", "name", who->name, "colo", who->colo, "version",
			 who->version, "interfaces", ifaces, "hello", hello, "jobs", list);
	if (!root) /* json_pack consumed the arrays ("o") even on failure */
		return errbuf_set(err, -EINVAL, "report: agent name, colo or version is not UTF-8");
	for (size_t i = 0; i < who->n_ifaces; i++) {
		json_t *s = json_string(who->ifaces[i]);

		if (!s) {
			r = errbuf_set(err, -EINVAL, "report: interface name is not UTF-8");
			goto out;
		}
		if (json_array_append_new(ifaces, s) < 0)
			goto oom;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = job_object(&jobs[i]);

		if (!o || json_array_append_new(list, o) < 0)
			goto oom;
	}
	if (hist && json_object_set_new(root, "history", history_object(hist)) < 0)
		goto oom;
	r = dump(root, ret, err);
	goto out;
oom:
	r = errbuf_set(err, -ENOMEM, "out of memory");
out:
	json_decref(root);
	return r;
}

static int load(const char *p, size_t n, const char *what, json_t **ret, ErrBuf *err)
{
	json_error_t jerr;
	json_t *root;

	if (n > AGENTPROTO_MAX_BODY)
		return errbuf_set(err, -EMSGSIZE, "%s: answer of %zu bytes is over %u", what, n, AGENTPROTO_MAX_BODY);
	root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return errbuf_set(err, -EBADMSG, "%s: not JSON: %s (byte %d)", what, jerr.text, jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return errbuf_set(err, -EBADMSG, "%s: answer is not a JSON object", what);
	}
	*ret = root;
	return 0;
}

/* A non-negative integral number at most max: integer, or real without a
 * fraction. Absent or null: *ret untouched, returns 0. */
static int get_u64(const json_t *o, const char *key, uint64_t max, uint64_t *ret, ErrBuf *err)
{
	const json_t *v = json_object_get(o, key);
	double d;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0 || (uint64_t)i > max)
			goto range;
		*ret = (uint64_t)i;
		return 0;
	}
	if (!json_is_real(v))
		goto type;
	d = json_real_value(v);
	if (d < 0 || d >= 18446744073709551616.0) /* 2^64: the cast below would be undefined */
		goto range;
	if ((double)(uint64_t)d != d)
		goto type;
	if ((uint64_t)d > max)
		goto range;
	*ret = (uint64_t)d;
	return 0;
type:
	return errbuf_set(err, -EINVAL, "%s: not a whole number", key);
range:
	return errbuf_set(err, -ERANGE, "%s: outside 0..%llu", key, (unsigned long long)max);
}

static uint32_t clamp_interval(uint64_t v)
{
	if (v == 0)
		return 0;
	if (v < MIN_INTERVAL_MS)
		return MIN_INTERVAL_MS;
	return v > MAX_INTERVAL_MS ? MAX_INTERVAL_MS : (uint32_t)v;
}

/* An array of ids; entries that are not ids are counted in *skipped. */
static int get_ids(const json_t *o, const char *key, char (**ret)[JOB_ID_LEN + 1], size_t *ret_n, size_t *skipped,
		   ErrBuf *err)
{
	const json_t *arr = json_object_get(o, key), *v;
	char(*ids)[JOB_ID_LEN + 1];
	size_t i, n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return errbuf_set(err, -EBADMSG, "%s: not an array", key);
	if (json_array_size(arr) > AGENTPROTO_MAX_IDS)
		return errbuf_set(err, -EMSGSIZE, "%s: %zu ids, over %u", key, json_array_size(arr),
				  AGENTPROTO_MAX_IDS);
	if (json_array_size(arr) == 0)
		return 0;
	ids = calloc(json_array_size(arr), sizeof(*ids));
	if (!ids)
		return errbuf_set(err, -ENOMEM, "out of memory");
	json_array_foreach(arr, i, v)
	{
		if (take_id(json_string_value(v), ids[n]))
			n++;
		else if (skipped)
			(*skipped)++;
	}
	*ret = ids;
	*ret_n = n;
	return 0;
}

int agentproto_report_answer_parse(const char *p, size_t n, AgentReportAnswer *ret, ErrBuf *err)
{
	AgentReportAnswer a = {0};
	json_t *root;
	ErrBuf ignored;
	uint64_t v;
	int r;

	r = load(p, n, "report", &root, err);
	if (r < 0)
		return r;
	r = get_ids(root, "ack", &a.ack, &a.n_ack, NULL, err);
	if (r < 0)
		goto out;
	v = 0;
	if (get_u64(root, "heartbeat_ms", UINT32_MAX, &v, &ignored) == 0)
		a.heartbeat_ms = clamp_interval(v);
	v = 0;
	if (get_u64(root, "poll_timeout_ms", UINT32_MAX, &v, &ignored) == 0)
		a.poll_timeout_ms = clamp_interval(v);
	*ret = a;
	a.ack = NULL;
out:
	free(a.ack);
	json_decref(root);
	return r;
}

void agentproto_report_answer_done(AgentReportAnswer *a)
{
	if (!a)
		return;
	free(a->ack);
	*a = (AgentReportAnswer){0};
}

void agentproto_spec_done(AgentJobSpec *s)
{
	if (!s)
		return;
	free(s->filter);
	free(s->destination_conf);
	*s = (AgentJobSpec){0};
}

/* A sample's own fields (s->sample set, filter and error so far in bad/e). */
static int parse_sample_fields(const json_t *o, AgentJobSpec *s, ErrBuf *e)
{
	uint64_t deadline = AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS;
	int r;

	if (!json_object_get(o, "from_ns") || json_is_null(json_object_get(o, "from_ns")))
		return errbuf_set(e, -EINVAL, "from_ns: missing");
	if (!json_object_get(o, "to_ns") || json_is_null(json_object_get(o, "to_ns")))
		return errbuf_set(e, -EINVAL, "to_ns: missing");
	r = get_u64(o, "from_ns", INT64_MAX, &s->from_ns, e);
	if (r == 0)
		r = get_u64(o, "to_ns", INT64_MAX, &s->to_ns, e);
	if (r == 0 && s->from_ns > s->to_ns)
		r = errbuf_set(e, -EINVAL, "from_ns: after to_ns");
	if (r == 0)
		r = get_u64(o, "packet_limit", AGENTPROTO_MAX_SAMPLE_PACKETS, &s->packet_limit, e);
	if (r == 0 && s->packet_limit == 0)
		r = errbuf_set(e, -EINVAL, "packet_limit: a sample needs 1..%u", AGENTPROTO_MAX_SAMPLE_PACKETS);
	if (r == 0)
		r = get_u64(o, "deadline_ms", UINT64_MAX, &deadline, e);
	if (r < 0)
		return r;
	s->deadline_ms =
		deadline > AGENTPROTO_MAX_SAMPLE_DEADLINE_MS ? AGENTPROTO_MAX_SAMPLE_DEADLINE_MS : (uint32_t)deadline;
	return 0;
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
	if (!bad && strlen(s->filter) > FILTERJSON_MAX)
		bad = errbuf_set(&e, -E2BIG, "filter: over %u bytes", FILTERJSON_MAX);
	if (s->sample) {
		/* No bucket, no object: the answer goes back to the controller. */
		if (!bad)
			bad = parse_sample_fields(o, s, &e);
		if (bad)
			memcpy(s->error, e.msg, sizeof(s->error));
		return 0;
	}
	if (!bad)
		bad = get_u64(o, "time_limit", AGENTPROTO_MAX_TIME_S, &s->time_limit_s, &e);
	if (!bad)
		bad = get_u64(o, "packet_limit", UINT64_MAX, &s->packet_limit, &e);
	if (!bad)
		bad = get_u64(o, "byte_limit", UINT64_MAX, &s->byte_limit, &e);
	v = json_object_get(o, "destination_conf");
	if (!v || json_is_null(v)) {
		if (!bad)
			bad = errbuf_set(&e, -EINVAL, "destination_conf: missing");
	} else if (!json_is_string(v) || json_string_length(v) == 0) {
		if (!bad)
			bad = errbuf_set(&e, -EINVAL, "destination_conf: not a non-empty string");
	} else {
		s->destination_conf = strdup(json_string_value(v));
		if (!s->destination_conf)
			return -ENOMEM;
	}
	v = json_object_get(o, "object");
	if (json_is_string(v) && json_string_length(v) == 0)
		v = NULL; /* "" = none given: the agent names the object */
	if (v && !json_is_null(v) && !bad) {
		if (!json_is_string(v) || !agentproto_object_valid(json_string_value(v)))
			bad = errbuf_set(&e, -EINVAL,
					 "object: not 1..%u bytes of [A-Za-z0-9._-] that do not start with '.'",
					 AGENTPROTO_OBJECT_MAX);
		else
			copy_str(s->object, sizeof(s->object), json_string_value(v));
	}
	if (bad)
		memcpy(s->error, e.msg, sizeof(s->error));
	return 0;
}

int agentproto_poll_parse(const char *p, size_t n, AgentPollAnswer *ret, ErrBuf *err)
{
	AgentPollAnswer a = {0};
	const json_t *arr, *v;
	json_t *root;
	size_t i;
	int r;

	r = load(p, n, "poll", &root, err);
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

			if (!json_is_object(v) || !take_id(json_string_value(json_object_get(v, "id")), s->id)) {
				a.n_skipped++;
				continue;
			}
			a.n_start++;
			if (parse_spec(v, s) < 0)
				goto oom;
		}
	}
	r = get_ids(root, "stop", &a.stop, &a.n_stop, &a.n_skipped, err);
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
	*a = (AgentPollAnswer){0};
}

int agentproto_job_to_json(const AgentJobReport *r, char **ret, ErrBuf *err)
{
	json_t *o = job_object(r);
	int rc;

	if (!o)
		return errbuf_set(err, -ENOMEM, "out of memory");
	rc = dump(o, ret, err);
	json_decref(o);
	return rc;
}

static int get_str(const json_t *o, const char *key, bool required, const char **ret)
{
	const json_t *v = json_object_get(o, key);

	if (!v) {
		*ret = "";
		return required ? -EINVAL : 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	*ret = json_string_value(v);
	return 0;
}

int agentproto_job_from_json(const char *p, size_t n, AgentJobReport *ret, ErrBuf *err)
{
	AgentJobReport rep = {0};
	const char *id, *state, *stop, *object, *error;
	ErrBuf e = {{0}};
	json_t *root;
	int r;

	r = load(p, n, "job", &root, err);
	if (r < 0)
		return r;
	r = -EINVAL;
	if (get_str(root, "id", true, &id) < 0 || !take_id(id, rep.id)) {
		errbuf_set(err, r, "job: id: not 32 hex digits");
		goto out;
	}
	if (get_str(root, "state", true, &state) < 0 || part_state_from_string(state, &rep.state) < 0) {
		errbuf_set(err, r, "job: state: unknown");
		goto out;
	}
	if (get_str(root, "stop_reason", true, &stop) < 0 || job_stop_from_string(stop, &rep.stop_reason) < 0) {
		errbuf_set(err, r, "job: stop_reason: unknown");
		goto out;
	}
	if (get_u64(root, "packets", INT64_MAX, &rep.packets, &e) < 0 ||
	    get_u64(root, "bytes", INT64_MAX, &rep.bytes, &e) < 0 ||
	    get_u64(root, "drops", INT64_MAX, &rep.drops, &e) < 0) {
		errbuf_set(err, r, "job: %s", e.msg);
		goto out;
	}
	if (get_str(root, "object", false, &object) < 0 || (object[0] && !agentproto_object_valid(object))) {
		errbuf_set(err, r, "job: object: not a valid object name");
		goto out;
	}
	if (get_str(root, "error", false, &error) < 0) {
		errbuf_set(err, r, "job: error: not a string");
		goto out;
	}
	copy_str(rep.object, sizeof(rep.object), object);
	if (copy_str(rep.error, sizeof(rep.error), error) < 0) {
		/* A longer text (from another version): keep its start. */
		memcpy(rep.error, error, sizeof(rep.error) - 1);
		rep.error[sizeof(rep.error) - 1] = '\0';
	}
	*ret = rep;
	r = 0;
out:
	json_decref(root);
	return r;
}

void agentproto_error_message(const char *p, size_t n, char *ret, size_t cap)
{
	json_t *root = NULL;
	const char *msg = NULL;

	if (cap == 0)
		return;
	ret[0] = '\0';
	if (n > AGENTPROTO_MAX_BODY)
		return;
	root = json_loadb(p, n, 0, NULL);
	if (json_is_object(root)) {
		const json_t *errs = json_object_get(root, "errors");

		msg = json_string_value(json_object_get(json_array_get(errs, 0), "message"));
	}
	if (msg && copy_str(ret, cap, msg) < 0) {
		memcpy(ret, msg, cap - 1);
		ret[cap - 1] = '\0';
	}
	json_decref(root);
}
