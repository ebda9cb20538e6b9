/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol's reports (docs/AGENT-PROTOCOL.md), both sides: the
 * agent builds a report and its job records and reads the answer; the
 * controller reads the report and builds the answer. Starts and poll answers
 * are in agentwork.c; the helpers both files use are defined here
 * (proto-int.h).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "proto/proto-int.h"

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
bool proto_take_id(const char *s, char out[JOB_ID_LEN + 1])
{
	if (!s || !job_id_valid(s, strlen(s)))
		return false;
	for (size_t i = 0; i < JOB_ID_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[JOB_ID_LEN] = '\0';
	return true;
}

/* Copies s into out[cap]; -ENAMETOOLONG if it does not fit. */
int proto_copy_str(char *out, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, s, n + 1);
	return 0;
}

/* A text for JSON: invalid UTF-8 (a message quoting outside bytes) gets its
 * non-ASCII bytes replaced, so that the text is never lost. */
json_t *proto_safe_string(const char *text)
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

	e = h->error[0] ? proto_safe_string(h->error) : json_null();
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
	if (r->attempt && json_object_set_new(o, "attempt", json_integer((json_int_t)r->attempt)) < 0)
		goto fail;
	/* json_string() refuses invalid UTF-8: system error texts are ASCII, but a
	 * message quoting outside bytes may not be (safe_string). */
	if (r->error[0] && json_object_set_new(o, "error", proto_safe_string(r->error)) < 0)
		goto fail;
	if (r->failure != PART_FAIL_NONE &&
	    json_object_set_new(o, "failure", json_string(part_failure_to_string(r->failure))) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

int proto_dump(json_t *v, char **ret, ErrBuf *err)
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
	r = proto_dump(root, ret, err);
	goto out;
oom:
	r = errbuf_set(err, -ENOMEM, "out of memory");
out:
	json_decref(root);
	return r;
}

int proto_load(const char *p, size_t n, const char *what, json_t **ret, ErrBuf *err)
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
int proto_get_u64(const json_t *o, const char *key, uint64_t max, uint64_t *ret, ErrBuf *err)
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
	if (v < AGENTPROTO_MIN_INTERVAL_MS)
		return AGENTPROTO_MIN_INTERVAL_MS;
	return v > AGENTPROTO_MAX_INTERVAL_MS ? AGENTPROTO_MAX_INTERVAL_MS : (uint32_t)v;
}

/* An array of ids; entries that are not ids are counted in *skipped. */
int proto_get_ids(const json_t *o, const char *key, char (**ret)[JOB_ID_LEN + 1], size_t *ret_n, size_t *skipped,
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
		if (proto_take_id(json_string_value(v), ids[n]))
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

	r = proto_load(p, n, "report", &root, err);
	if (r < 0)
		return r;
	r = proto_get_ids(root, "ack", &a.ack, &a.n_ack, NULL, err);
	if (r < 0)
		goto out;
	v = 0;
	if (proto_get_u64(root, "heartbeat_ms", UINT32_MAX, &v, &ignored) == 0)
		a.heartbeat_ms = clamp_interval(v);
	v = 0;
	if (proto_get_u64(root, "poll_timeout_ms", UINT32_MAX, &v, &ignored) == 0)
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

int agentproto_job_to_json(const AgentJobReport *r, char **ret, ErrBuf *err)
{
	json_t *o = job_object(r);
	int rc;

	if (!o)
		return errbuf_set(err, -ENOMEM, "out of memory");
	rc = proto_dump(o, ret, err);
	json_decref(o);
	return rc;
}

json_t *proto_ids_json(const char (*ids)[JOB_ID_LEN + 1], size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(ids[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

/* A string member of at most max bytes without a NUL: *ret = its text, or
 * NULL when absent or null. */
static int get_string(const json_t *o, const char *key, const char *where, size_t max, const char **ret, ErrBuf *err)
{
	const json_t *v = json_object_get(o, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return errbuf_set(err, -EINVAL, "%s%s: must be a string of at most %zu bytes", where, key, max);
	*ret = json_string_value(v);
	return 0;
}

/* Copies s (may be NULL) into out[cap], cut at cap - 1 bytes. */
static void copy_cut(char *out, size_t cap, const char *s)
{
	size_t n = s ? strnlen(s, cap - 1) : 0;

	memcpy(out, s ? s : "", n);
	out[n] = '\0';
}

/* One job object: a report's entry (record false: stop_reason may be left
 * out, an object name that is not valid is dropped) or the agent's record of
 * a job (record true: strict). Messages start with where. */
static int parse_job(const json_t *o, const char *where, bool record, AgentJobReport *ret, ErrBuf *err)
{
	AgentJobReport rep = {0};
	const char *id, *state, *stop, *object, *error, *failure;
	ErrBuf e = {{0}};
	int r;

	if (!json_is_object(o)) {
		size_t n = strlen(where);

		while (n > 0 && (where[n - 1] == '.' || where[n - 1] == ':' || where[n - 1] == ' '))
			n--;
		return errbuf_set(err, -EINVAL, "%.*s: must be an object", (int)n, where);
	}
	if ((r = get_string(o, "id", where, AGENTPROTO_FIELD_MAX, &id, err)) < 0 ||
	    (r = get_string(o, "state", where, AGENTPROTO_FIELD_MAX, &state, err)) < 0 ||
	    (r = get_string(o, "stop_reason", where, AGENTPROTO_FIELD_MAX, &stop, err)) < 0 ||
	    (r = get_string(o, "object", where, AGENTPROTO_FIELD_MAX, &object, err)) < 0 ||
	    (r = get_string(o, "error", where, AGENTPROTO_FIELD_MAX, &error, err)) < 0 ||
	    (r = get_string(o, "failure", where, AGENTPROTO_FIELD_MAX, &failure, err)) < 0)
		return r;
	if (!proto_take_id(id, rep.id))
		return errbuf_set(err, -EINVAL, "%sid: must be 32 hex digits", where);
	if (!state || part_state_from_string(state, &rep.state) < 0 || rep.state == PART_ASSIGNED ||
	    rep.state == PART_LOST)
		return errbuf_set(err, -EINVAL,
				  "%sstate: must be running, captured, uploading, done, failed or upload_failed",
				  where);
	rep.stop_reason = JOB_STOP_NONE;
	if ((record && !stop) || (stop && job_stop_from_string(stop, &rep.stop_reason) < 0))
		return errbuf_set(err, -EINVAL,
				  "%sstop_reason: must be none, time, packets, bytes, user, agent_shutdown or error",
				  where);
	{
		uint64_t attempt = 0;

		if (proto_get_u64(o, "packets", INT64_MAX, &rep.packets, &e) < 0 ||
		    proto_get_u64(o, "bytes", INT64_MAX, &rep.bytes, &e) < 0 ||
		    proto_get_u64(o, "drops", INT64_MAX, &rep.drops, &e) < 0 ||
		    proto_get_u64(o, "attempt", AGENTPROTO_MAX_ATTEMPT, &attempt, &e) < 0)
			return errbuf_set(err, -EINVAL, "%s%s", where, e.msg);
		rep.attempt = (uint32_t)attempt;
	}
	if (object && agentproto_object_valid(object))
		copy_cut(rep.object, sizeof(rep.object), object);
	else if (object && object[0] && record)
		return errbuf_set(err, -EINVAL, "%sobject: not a valid object name", where);
	/* A longer text (from another version): keep its start. */
	copy_cut(rep.error, sizeof(rep.error), error);
	/* A kind this side does not know (a newer agent's) is still a failure. */
	if (failure && part_failure_from_string(failure, &rep.failure) < 0)
		rep.failure = PART_FAIL_INTERNAL;
	*ret = rep;
	return 0;
}

int agentproto_job_from_json(const char *p, size_t n, AgentJobReport *ret, ErrBuf *err)
{
	json_t *root;
	int r;

	r = proto_load(p, n, "job", &root, err);
	if (r < 0)
		return r;
	r = parse_job(root, "job: ", true, ret, err);
	json_decref(root);
	return r;
}

void agentproto_report_done(AgentReport *r)
{
	if (!r)
		return;
	json_decref(r->history);
	free(r->jobs);
	memset(r, 0, sizeof(*r));
}

/* "interfaces": an array of names, joined with ',' into out. */
static int parse_ifaces(const json_t *v, char *out, size_t cap, ErrBuf *err)
{
	const json_t *it;
	size_t i, o = 0;

	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return errbuf_set(err, -EINVAL, "interfaces: must be an array of names");
	json_array_foreach(v, i, it)
	{
		const char *s = json_string_value(it);
		int n;

		if (!s || strlen(s) > AGENTPROTO_IFACE_NAME_MAX)
			return errbuf_set(err, -EINVAL, "interfaces[%zu]: must be an interface name", i);
		n = snprintf(out + o, cap - o, "%s%s", o ? "," : "", s);
		if (n < 0 || (size_t)n >= cap - o)
			return errbuf_set(err, -E2BIG, "interfaces: more than %u bytes of names",
					  AGENTPROTO_IFACES_MAX);
		o += (size_t)n;
	}
	return 0;
}

static int parse_jobs(const json_t *v, AgentReport *rep, ErrBuf *err)
{
	const json_t *it;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > AGENTPROTO_MAX_REPORT_JOBS)
		return errbuf_set(err, -EINVAL, "jobs: must be an array of at most %u reports",
				  AGENTPROTO_MAX_REPORT_JOBS);
	rep->jobs = calloc(json_array_size(v) + 1, sizeof(*rep->jobs));
	if (!rep->jobs)
		return errbuf_set(err, -ENOMEM, "out of memory");
	json_array_foreach(v, i, it)
	{
		char where[48];
		int r;

		snprintf(where, sizeof(where), "jobs[%zu].", i);
		r = parse_job(it, where, false, &rep->jobs[i], err);
		if (r < 0)
			return r;
		rep->n_jobs++;
	}
	return 0;
}

int agentproto_report_parse(const json_t *body, AgentReport *ret, ErrBuf *err)
{
	const char *name, *colo, *version;
	AgentReport rep = {0};
	const json_t *v;
	int r;

	if (!json_is_object(body))
		return errbuf_set(err, -EINVAL, "body: must be a JSON object");
	if ((r = get_string(body, "name", "", AGENTPROTO_FIELD_MAX, &name, err)) < 0 ||
	    (r = get_string(body, "colo", "", AGENTPROTO_FIELD_MAX, &colo, err)) < 0 ||
	    (r = get_string(body, "version", "", AGENTPROTO_FIELD_MAX, &version, err)) < 0)
		return r;
	if (!agentproto_name_valid(name))
		return errbuf_set(err, -EINVAL, "name: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
	if (colo && *colo && !agentproto_name_valid(colo))
		return errbuf_set(err, -EINVAL, "colo: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
	copy_cut(rep.name, sizeof(rep.name), name);
	copy_cut(rep.colo, sizeof(rep.colo), colo);
	copy_cut(rep.version, sizeof(rep.version), version);
	v = json_object_get(body, "hello");
	if (v && !json_is_boolean(v))
		return errbuf_set(err, -EINVAL, "hello: must be true or false");
	rep.hello = v && json_is_true(v);
	r = parse_ifaces(json_object_get(body, "interfaces"), rep.interfaces, sizeof(rep.interfaces), err);
	if (r < 0)
		return r;
	v = json_object_get(body, "history");
	if (v && !json_is_null(v)) {
		/* Shown to users as the agent sent it: an object of at most a few
		 * small members. */
		const char *k;
		json_t *m;

		if (!json_is_object(v) || json_object_size(v) > AGENTPROTO_HISTORY_MEMBERS)
			return errbuf_set(err, -EINVAL, "history: must be an object of at most %u members",
					  AGENTPROTO_HISTORY_MEMBERS);
		/* Kept in the registry for every agent: scalars only, short. */
		json_object_foreach((json_t *)v, k, m)
		{
			if (strlen(k) > AGENTPROTO_HISTORY_TEXT || json_is_object(m) || json_is_array(m) ||
			    (json_is_string(m) && json_string_length(m) > AGENTPROTO_HISTORY_TEXT))
				return errbuf_set(err, -EINVAL,
						  "history: members must be numbers, booleans, null or strings of at "
						  "most %u bytes",
						  AGENTPROTO_HISTORY_TEXT);
		}
		rep.history = json_incref((json_t *)v);
	}
	r = parse_jobs(json_object_get(body, "jobs"), &rep, err);
	if (r < 0) {
		agentproto_report_done(&rep);
		return r;
	}
	*ret = rep;
	return 0;
}

int agentproto_report_answer_build(const AgentReportAnswer *a, char **ret, ErrBuf *err)
{
	json_t *o = json_object(), *ack = proto_ids_json((const char(*)[JOB_ID_LEN + 1]) a->ack, a->n_ack);
	int r = -ENOMEM;

	if (!o || !ack || json_object_set_new(o, "ack", ack) < 0) {
		json_decref(ack);
		goto out;
	}
	if ((a->heartbeat_ms && json_object_set_new(o, "heartbeat_ms", json_integer(a->heartbeat_ms)) < 0) ||
	    (a->poll_timeout_ms && json_object_set_new(o, "poll_timeout_ms", json_integer(a->poll_timeout_ms)) < 0))
		goto out;
	r = proto_dump(o, ret, err);
out:
	json_decref(o);
	return r == -ENOMEM ? errbuf_set(err, r, "out of memory") : r;
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
	if (msg && proto_copy_str(ret, cap, msg) < 0) {
		memcpy(ret, msg, cap - 1);
		ret[cap - 1] = '\0';
	}
	json_decref(root);
}
