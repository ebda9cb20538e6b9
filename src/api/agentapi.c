/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol (docs/AGENT-PROTOCOL.md): POST /agent/v1/report and the
 * long-poll GET /agent/v1/poll. Validation is strict and bounded; the service
 * does the rest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/envelope.h"

#define POLL_DEFAULT_MS 25000
#define POLL_MAX_MS 60000
#define REPORT_MAX_JOBS 1024u
#define FIELD_MAX 512u
#define IFACES_MAX 4096u

static bool name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > AGENT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Optional string member, bounded. -EINVAL with a message on a bad type/length. */
static int opt_string(const json_t *o, const char *key, const char *where, const char **ret, ErrBuf *err)
{
	const json_t *v = json_object_get(o, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > FIELD_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return errbuf_set(err, -EINVAL, "%s%s: must be a string of at most %u bytes", where, key, FIELD_MAX);
	*ret = json_string_value(v);
	return 0;
}

static int counter(const json_t *o, const char *key, const char *where, uint64_t *ret, ErrBuf *err)
{
	const json_t *v = json_object_get(o, key);

	*ret = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return errbuf_set(err, -EINVAL, "%s%s: must be a whole number >= 0", where, key);
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_job(const json_t *o, size_t i, AgentJobReport *ret, ErrBuf *err)
{
	char where[48];
	const char *id, *state, *reason;
	int r;

	snprintf(where, sizeof(where), "jobs[%zu].", i);
	if (!json_is_object(o))
		return errbuf_set(err, -EINVAL, "jobs[%zu]: must be an object", i);
	if ((r = opt_string(o, "id", where, &id, err)) < 0 || (r = opt_string(o, "state", where, &state, err)) < 0 ||
	    (r = opt_string(o, "stop_reason", where, &reason, err)) < 0 ||
	    (r = opt_string(o, "object", where, &ret->object, err)) < 0 ||
	    (r = opt_string(o, "error", where, &ret->error, err)) < 0 ||
	    (r = counter(o, "packets", where, &ret->packets, err)) < 0 ||
	    (r = counter(o, "bytes", where, &ret->bytes, err)) < 0 ||
	    (r = counter(o, "drops", where, &ret->drops, err)) < 0)
		return r;
	if (!id || !job_id_valid(id, strlen(id)))
		return errbuf_set(err, -EINVAL, "%sid: must be 32 hex digits", where);
	ret->id = id;
	if (!state || part_state_from_string(state, &ret->state) < 0 || ret->state == PART_ASSIGNED ||
	    ret->state == PART_LOST)
		return errbuf_set(err, -EINVAL, "%sstate: must be running, uploading, done or failed", where);
	ret->stop_reason = JOB_STOP_NONE;
	if (reason && job_stop_from_string(reason, &ret->stop_reason) < 0)
		return errbuf_set(err, -EINVAL,
				  "%sstop_reason: must be none, time, packets, bytes, user, agent_shutdown or error",
				  where);
	return 0;
}

static void handle_report(Api *a, HttpRequest *req)
{
	AgentJobReport *jobs = NULL;
	AgentReport rep = {0};
	json_t *body, *acks = NULL, *v;
	char ifaces[IFACES_MAX + 1] = "";
	size_t o = 0, i;
	ErrBuf err = {{0}};
	int r;

	body = request_json_object(req);
	if (!body)
		return;
	if ((r = opt_string(body, "name", "", &rep.name, &err)) < 0 ||
	    (r = opt_string(body, "colo", "", &rep.colo, &err)) < 0 ||
	    (r = opt_string(body, "version", "", &rep.version, &err)) < 0)
		goto bad;
	if (!name_valid(rep.name)) {
		errbuf_set(&err, -EINVAL, "name: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
		goto bad;
	}
	if (rep.colo && *rep.colo && !name_valid(rep.colo)) {
		errbuf_set(&err, -EINVAL, "colo: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
		goto bad;
	}
	v = json_object_get(body, "hello");
	if (v && !json_is_boolean(v)) {
		errbuf_set(&err, -EINVAL, "hello: must be true or false");
		goto bad;
	}
	rep.hello = v && json_is_true(v);
	v = json_object_get(body, "history");
	if (v && !json_is_null(v)) {
		/* Shown to users as the agent sent it: an object of at most a few
		 * small members (docs/AGENT-PROTOCOL.md). */
		if (!json_is_object(v) || json_object_size(v) > 16) {
			errbuf_set(&err, -EINVAL, "history: must be an object of at most 16 members");
			goto bad;
		}
		rep.history = v;
	}
	v = json_object_get(body, "interfaces");
	if (v && !json_is_null(v)) {
		json_t *it;

		if (!json_is_array(v)) {
			errbuf_set(&err, -EINVAL, "interfaces: must be an array of names");
			goto bad;
		}
		json_array_foreach(v, i, it)
		{
			const char *s = json_string_value(it);
			int n;

			if (!s || strlen(s) > 64) {
				errbuf_set(&err, -EINVAL, "interfaces[%zu]: must be an interface name", i);
				goto bad;
			}
			n = snprintf(ifaces + o, sizeof(ifaces) - o, "%s%s", o ? "," : "", s);
			if (n < 0 || (size_t)n >= sizeof(ifaces) - o) {
				errbuf_set(&err, -E2BIG, "interfaces: more than %u bytes of names", IFACES_MAX);
				goto bad;
			}
			o += (size_t)n;
		}
	}
	rep.interfaces = ifaces;
	v = json_object_get(body, "jobs");
	if (v && !json_is_null(v)) {
		json_t *it;

		if (!json_is_array(v) || json_array_size(v) > REPORT_MAX_JOBS) {
			errbuf_set(&err, -EINVAL, "jobs: must be an array of at most %u reports", REPORT_MAX_JOBS);
			goto bad;
		}
		jobs = calloc(json_array_size(v) + 1, sizeof(*jobs));
		if (!jobs)
			goto internal;
		json_array_foreach(v, i, it)
		{
			if (parse_job(it, i, &jobs[i], &err) < 0)
				goto bad;
		}
		rep.jobs = jobs;
		rep.n_jobs = json_array_size(v);
	}
	r = service_agent_report(api_service(a), &rep, &acks, &err);
	if (r < 0)
		goto internal;
	reply_json(req, 200,
		   json_pack("{s:o, s:I, s:I}", "ack", acks, "heartbeat_ms",
			     (json_int_t)service_heartbeat_ms(api_service(a)), "poll_timeout_ms",
			     (json_int_t)POLL_DEFAULT_MS));
	goto out;
bad:
	envelope_error(req, 400, API_E_FIELD, "%s", err.msg);
	goto out;
internal:
	envelope_error(req, 500, API_E_INTERNAL, "%s", err.msg[0] ? err.msg : "out of memory");
out:
	free(jobs);
	json_decref(body);
}

typedef struct PollState {
	int64_t deadline; /* monotonic ns */
	char name[AGENT_NAME_MAX + 1];
} PollState;

static void park(void *arg)
{
	http_suspend(arg);
}

static void wake(void *arg)
{
	http_resume(arg);
}

static void handle_poll(Api *a, HttpRequest *req)
{
	PollState *ps = http_req_get_data(req);
	bool resumed = ps != NULL;
	json_t *work = NULL;
	ErrBuf err = {{0}};
	int r;

	if (http_req_shutting_down(req)) {
		envelope_error(req, 503, API_E_INTERNAL, "the controller is shutting down; poll again");
		return;
	}
	if (!ps) {
		const char *name = http_req_query(req, "name");
		const char *t = http_req_query(req, "timeout_ms");
		uint64_t ms = POLL_DEFAULT_MS;

		if (!name_valid(name)) {
			envelope_error(req, 400, API_E_FIELD, "name: 1..%u characters of A-Z a-z 0-9 . _ -",
				       AGENT_NAME_MAX);
			return;
		}
		if (t && parse_u64(t, strlen(t), 0, POLL_MAX_MS, &ms) < 0) {
			envelope_error(req, 400, API_E_FIELD, "timeout_ms: must be a whole number 0..%u", POLL_MAX_MS);
			return;
		}
		ps = calloc(1, sizeof(*ps));
		if (!ps) {
			envelope_error(req, 500, API_E_INTERNAL, "out of memory");
			return;
		}
		snprintf(ps->name, sizeof(ps->name), "%s", name);
		ps->deadline = (int64_t)now_monotonic_ns() + (int64_t)ms * 1000000;
		http_req_set_data(req, ps, free);
	}
	/* Park only on the first call: once woken (work, deadline, or displaced
	 * by a newer poll of the same agent) the request answers, possibly with
	 * empty lists, so two polls of one agent can never keep waking each other. */
	r = service_agent_poll(api_service(a), ps->name, ps->deadline, resumed ? NULL : park, wake, req, &work, &err);
	if (r == 0)
		return; /* parked; wake() calls us again */
	if (r == 1) {
		reply_json(req, 200, work);
		return;
	}
	if (r == -ENOENT)
		envelope_error(req, 404, API_E_NOT_FOUND, "%s", err.msg);
	else if (r == -ESHUTDOWN)
		envelope_error(req, 503, API_E_INTERNAL, "%s", err.msg);
	else
		envelope_error(req, 500, API_E_INTERNAL, "%s", err.msg);
}

size_t api_body_limit(void *ctx, const char *method, const char *path)
{
	(void)ctx;
	if (strcmp(method, "POST") == 0 && strcmp(path, "/agent/v1/sample") == 0)
		return API_MAX_SAMPLE_BODY;
	return API_MAX_BODY;
}

/* POST /agent/v1/sample?name=NAME&id=ID, body: the answer as a pcap. */
static void handle_sample(Api *a, HttpRequest *req)
{
	const char *name = http_req_query(req, "name"), *id = http_req_query(req, "id");
	const uint8_t *body;
	size_t n;
	ErrBuf err = {{0}};
	int r;

	if (http_req_body_too_large(req)) {
		envelope_error(req, 413, API_E_TOO_LARGE, "body: larger than %u bytes", API_MAX_SAMPLE_BODY);
		return;
	}
	if (!name_valid(name)) {
		envelope_error(req, 400, API_E_FIELD, "name: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
		return;
	}
	if (!id || !job_id_valid(id, strlen(id))) {
		envelope_error(req, 400, API_E_FIELD, "id: must be 32 hex digits");
		return;
	}
	body = http_req_body(req, &n);
	r = service_sample_store(api_service(a), name, id, body, n, &err);
	if (r == -ENOENT)
		envelope_error(req, 404, API_E_NOT_FOUND, "%s", err.msg);
	else if (r == -EALREADY)
		envelope_error(req, 409, API_E_STATE, "%s", err.msg);
	else if (r == -EINVAL)
		envelope_error(req, 400, API_E_FIELD, "%s", err.msg);
	else if (r < 0)
		envelope_error(req, 500, API_E_INTERNAL, "%s", err.msg);
	else
		reply_json(req, 200, json_pack("{s:b}", "stored", 1));
}

void agentapi_handle(Api *a, HttpRequest *req, const char *sub)
{
	const char *method = http_req_method(req);
	bool resumed = http_req_get_data(req) != NULL;

	if (strcmp(sub, "/report") != 0 && strcmp(sub, "/poll") != 0 && strcmp(sub, "/sample") != 0) {
		envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
		return;
	}
	if (strcmp(sub, "/poll") != 0 && strcmp(method, "POST") != 0) {
		http_add_header(req, "Allow", "POST");
		envelope_error(req, 405, API_E_METHOD, "method %s not allowed; use POST", method);
		return;
	}
	if (strcmp(sub, "/poll") == 0 && strcmp(method, "GET") != 0) {
		http_add_header(req, "Allow", "GET");
		envelope_error(req, 405, API_E_METHOD, "method %s not allowed; use GET", method);
		return;
	}
	/* A resumed poll was authenticated on its first call. */
	if (!resumed && auth_check(service_db(api_service(a)), req, NULL, SCOPE_AGENT, NULL) < 0)
		return;
	if (strcmp(sub, "/report") == 0)
		handle_report(a, req);
	else if (strcmp(sub, "/sample") == 0)
		handle_sample(a, req);
	else
		handle_poll(a, req);
}
