/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol (docs/AGENT-PROTOCOL.md): POST /agent/v1/enroll (an
 * enrolment token exchanged for the agent's own key), POST /agent/v1/report,
 * the long-poll GET /agent/v1/poll, POST /agent/v1/sample, the live streams'
 * chunks, POST /agent/v1/stream, and POST /agent/v1/upload (signed requests
 * to an object store). Every route but enroll takes an agent's key, and only
 * for that agent's name: a report, poll, sample answer, stream chunk or
 * upload grant under another name is 403. Validation is strict and bounded;
 * the service does the rest. Errors are answered in Cloudflare's envelope,
 * which agents read (agentproto_error_message()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "api/auth.h"
#include "api/cloudflare/envelope.h"
#include "proto/agentproto.h"

/* A JSON text (malloc'd, taken) as the 200 answer. */
static void agentapi_reply_text(HttpRequest *req, char *text)
{
	http_respond(req, 200, "application/json", text, strlen(text));
	free(text);
}

/* Answers e; ErrBuf messages name their field first. */
static void agentapi_fail(HttpRequest *req, ApiErrorKind kind, const char *msg)
{
	ApiError e;

	apierror_from_msg(&e, kind, msg);
	envelope_error(req, &e);
}

/* 403 unless name is the key's own. */
static int own_name(const AgentKey *k, const char *name, ApiError *e)
{
	if (strcmp(k->name, name) == 0)
		return 0;
	return apierror_set(e, API_ERR_FORBIDDEN, NULL, "Forbidden: this key is agent %s's; it cannot act as '%s'",
			    k->name, name);
}

static void handle_report(Api *a, HttpRequest *req, const AgentKey *k)
{
	AgentReportAnswer ans = {0};
	AgentReport rep = {0};
	ErrBuf err = {{0}};
	char *text = NULL;
	json_t *body;
	ApiError e;
	int r;

	body = api_request_json(req, AGENTPROTO_MAX_REPORT_BODY, &e);
	if (!body) {
		envelope_error(req, &e);
		return;
	}
	r = agentproto_report_parse(body, &rep, &err);
	json_decref(body);
	if (r < 0) {
		agentapi_fail(req, r == -ENOMEM ? API_ERR_INTERNAL : API_ERR_INVALID, err.msg);
		return;
	}
	if (own_name(k, rep.name, &e) < 0 ||
	    (k->colo[0] && strcmp(k->colo, rep.colo) != 0 &&
	     apierror_set(&e, API_ERR_FORBIDDEN, "colo", "agent %s was enrolled for colo %s only", k->name, k->colo) <
		     0) ||
	    service_agent_report(api_service(a), k, &rep, &ans, &e) < 0) {
		envelope_error(req, &e);
		goto out;
	}
	ans.poll_timeout_ms = AGENTPROTO_DEFAULT_POLL_MS;
	if (agentproto_report_answer_build(&ans, &text, &err) < 0)
		agentapi_fail(req, API_ERR_INTERNAL, err.msg);
	else
		agentapi_reply_text(req, text);
out:
	agentproto_report_answer_done(&ans);
	agentproto_report_done(&rep);
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

static void handle_poll(Api *a, HttpRequest *req, const AgentKey *k)
{
	PollState *ps = http_req_get_data(req);
	bool resumed = ps != NULL;
	AgentPollAnswer work = {0};
	ErrBuf err = {{0}};
	char *text = NULL;
	ApiError e;
	int r;

	if (http_req_shutting_down(req)) {
		apierror_set(&e, API_ERR_UNAVAILABLE, NULL, "the controller is shutting down; poll again");
		envelope_error(req, &e);
		return;
	}
	if (!ps) {
		const char *name = http_req_query(req, "name");
		const char *t = http_req_query(req, "timeout_ms");
		uint64_t ms = AGENTPROTO_DEFAULT_POLL_MS;

		if (!agentproto_name_valid(name)) {
			apierror_set(&e, API_ERR_INVALID, "name", "1..%u characters of A-Z a-z 0-9 . _ -",
				     AGENT_NAME_MAX);
			envelope_error(req, &e);
			return;
		}
		if (own_name(k, name, &e) < 0) {
			envelope_error(req, &e);
			return;
		}
		if (t && parse_u64(t, strlen(t), 0, AGENTPROTO_MAX_POLL_MS, &ms) < 0) {
			apierror_set(&e, API_ERR_INVALID, "timeout_ms", "must be a whole number 0..%u",
				     AGENTPROTO_MAX_POLL_MS);
			envelope_error(req, &e);
			return;
		}
		ps = calloc(1, sizeof(*ps));
		if (!ps) {
			agentapi_fail(req, API_ERR_INTERNAL, "out of memory");
			return;
		}
		snprintf(ps->name, sizeof(ps->name), "%s", name);
		ps->deadline = (int64_t)now_monotonic_ns() + (int64_t)ms * 1000000;
		http_req_set_data(req, ps, free);
	}
	/* Park only on the first call: once woken (work, deadline, or displaced
	 * by a newer poll of the same agent) the request answers, possibly with
	 * empty lists, so two polls of one agent can never keep waking each other. */
	r = service_agent_poll(api_service(a), ps->name, ps->deadline, resumed ? NULL : park, wake, req, &work, &e);
	if (r == 0)
		return; /* parked; wake() calls us again */
	if (r < 0) {
		envelope_error(req, &e);
		return;
	}
	if (agentproto_poll_build(&work, &text, &err) < 0)
		agentapi_fail(req, API_ERR_INTERNAL, err.msg);
	else
		agentapi_reply_text(req, text);
	agentproto_poll_done(&work);
}

static size_t agentapi_body_limit(const char *method, const char *rest)
{
	if (strcmp(method, "POST") == 0 && strcmp(rest, "/sample") == 0)
		return AGENTPROTO_MAX_SAMPLE_BODY;
	if (strcmp(method, "POST") == 0 && strcmp(rest, "/report") == 0)
		return AGENTPROTO_MAX_REPORT_BODY;
	if (strcmp(method, "POST") == 0 && strcmp(rest, "/stream") == 0)
		return AGENTPROTO_STREAM_CHUNK_MAX;
	return API_MAX_BODY;
}

/* The name and id of a request about one job; false: answered 400. */
static bool name_and_id_valid(HttpRequest *req, const AgentKey *k, const char *name, const char *id)
{
	ApiError e;

	if (!agentproto_name_valid(name)) {
		apierror_set(&e, API_ERR_INVALID, "name", "1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
		envelope_error(req, &e);
		return false;
	}
	if (own_name(k, name, &e) < 0) {
		envelope_error(req, &e);
		return false;
	}
	if (!id || !job_id_valid(id, strlen(id))) {
		apierror_set(&e, API_ERR_INVALID, "id", "must be 32 hex digits");
		envelope_error(req, &e);
		return false;
	}
	return true;
}

/* POST /agent/v1/sample?name=NAME&id=ID, body: the answer as a pcap. */
static void handle_sample(Api *a, HttpRequest *req, const AgentKey *k)
{
	const char *name = http_req_query(req, "name"), *id = http_req_query(req, "id");
	const uint8_t *body;
	size_t n;
	ApiError e;

	if (http_req_body_too_large(req)) {
		apierror_set(&e, API_ERR_TOO_LARGE, "body", "larger than %u bytes", AGENTPROTO_MAX_SAMPLE_BODY);
		envelope_error(req, &e);
		return;
	}
	if (!name_and_id_valid(req, k, name, id))
		return;
	body = http_req_body(req, &n);
	if (service_sample_store(api_service(a), name, id, body, n, &e) < 0)
		envelope_error(req, &e);
	else
		http_respond(req, 200, "application/json", "{\"stored\":true}", 15);
}

/* POST /agent/v1/upload?name=NAME&id=ID, body: AgentUploadRequest; the
 * answer: the grant (signed requests to the store). */
static void handle_upload(Api *a, HttpRequest *req, const AgentKey *k)
{
	const char *name = http_req_query(req, "name"), *id = http_req_query(req, "id");
	AgentUploadRequest q;
	AgentUploadGrant g = {0};
	ErrBuf err = {{0}};
	char *text = NULL;
	json_t *body;
	const uint8_t *p;
	size_t n;
	ApiError e;

	if (!name_and_id_valid(req, k, name, id))
		return;
	p = http_req_body(req, &n);
	body = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
	if (agentproto_upload_request_parse(body, &q, &err) < 0) {
		json_decref(body);
		apierror_from_msg(&e, API_ERR_INVALID, err.msg);
		envelope_error(req, &e);
		return;
	}
	json_decref(body);
	if (service_upload_grant(api_service(a), name, id, &q, &g, &e) < 0) {
		envelope_error(req, &e);
		return;
	}
	if (agentproto_grant_build(&g, &text, &err) < 0)
		agentapi_fail(req, API_ERR_INTERNAL, err.msg);
	else
		agentapi_reply_text(req, text);
	agentproto_grant_done(&g);
}

static const char *query_of(void *req, const char *key)
{
	return http_req_query(req, key);
}

/* POST /agent/v1/stream?name=…&id=…&tap=…&offset=…, body: whole items of
 * the agent's capture file from that offset. */
static void handle_stream(Api *a, HttpRequest *req, const AgentKey *k)
{
	AgentStreamAnswer ans = {0};
	AgentStreamChunk c;
	ErrBuf err = {{0}};
	const uint8_t *body;
	char *text = NULL;
	size_t n;
	ApiError e;

	if (http_req_body_too_large(req)) {
		apierror_set(&e, API_ERR_TOO_LARGE, "body", "larger than %u bytes", AGENTPROTO_STREAM_CHUNK_MAX);
		envelope_error(req, &e);
		return;
	}
	if (agentproto_stream_parse(query_of, req, &c, &err) < 0) {
		agentapi_fail(req, API_ERR_INVALID, err.msg);
		return;
	}
	if (own_name(k, c.name, &e) < 0) {
		envelope_error(req, &e);
		return;
	}
	body = http_req_body(req, &n);
	service_tap_chunk(api_service(a), &c, body, n, &ans);
	if (agentproto_stream_answer_build(&ans, &text, &err) < 0)
		agentapi_fail(req, API_ERR_INTERNAL, err.msg);
	else
		agentapi_reply_text(req, text);
}

/* POST /agent/v1/enroll {"name", "colo"} with an enrolment token: the
 * agent's own key, {"name", "secret"}, shown this once. */
static void handle_enroll(Api *a, HttpRequest *req)
{
	const char *name = NULL, *colo = NULL;
	char secret[64];
	uint8_t hash[32];
	EnrollToken t;
	json_t *body, *o;
	char *text;
	ApiError e;
	int r;

	if (auth_enroll(api_service(a), req, &t, &e) < 0) {
		envelope_error(req, &e);
		return;
	}
	body = api_request_json(req, API_MAX_BODY, &e);
	if (!body) {
		envelope_error(req, &e);
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	colo = json_string_value(json_object_get(body, "colo"));
	if (!agentproto_name_valid(name))
		apierror_set(&e, API_ERR_INVALID, "name", "1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
	else if (!agentproto_name_valid(colo))
		apierror_set(&e, API_ERR_INVALID, "colo", "1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
	else if ((r = auth_new_secret(secret)) < 0)
		apierror_set(&e, API_ERR_INTERNAL, NULL, "cannot draw a random secret: %s", strerror(-r));
	else
		goto draw;
	envelope_error(req, &e);
	json_decref(body);
	return;
draw:
	auth_hash(secret, strlen(secret), hash);
	if (service_agent_enroll(api_service(a), &t, name, colo, hash, &e) < 0) {
		envelope_error(req, &e);
	} else {
		o = json_pack("{s:s, s:s}", "name", name, "secret", secret);
		text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (text)
			agentapi_reply_text(req, text);
		else
			agentapi_fail(req, API_ERR_INTERNAL, "out of memory");
		json_decref(o);
	}
	explicit_bzero(secret, sizeof(secret));
	json_decref(body);
}

static void agentapi_method(HttpRequest *req, const char *method, const char *allow)
{
	ApiError e;

	apierror_set(&e, API_ERR_METHOD, NULL, "method %s not allowed; use %s", method, allow);
	e.allow = allow;
	envelope_error(req, &e);
}

/* The routes whose body needs an agent's key checked on the headers
 * (agentapi_before_body), which keeps it for the handler. */
static bool keyed_body_route(const char *rest)
{
	return strcmp(rest, "/report") == 0 || strcmp(rest, "/sample") == 0 || strcmp(rest, "/stream") == 0 ||
	       strcmp(rest, "/upload") == 0;
}

static void agentapi_handle(Api *a, HttpRequest *req, const char *sub)
{
	const char *method = http_req_method(req);
	const AgentKey *checked = keyed_body_route(sub) ? http_req_get_data(req) : NULL;
	bool resumed = strcmp(sub, "/poll") == 0 && http_req_get_data(req) != NULL;
	AgentKey k = {0};
	ApiError e;

	if (strcmp(sub, "/report") != 0 && strcmp(sub, "/poll") != 0 && strcmp(sub, "/sample") != 0 &&
	    strcmp(sub, "/stream") != 0 && strcmp(sub, "/enroll") != 0 && strcmp(sub, "/upload") != 0) {
		apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI");
		envelope_error(req, &e);
		return;
	}
	if (strcmp(sub, "/poll") != 0 && strcmp(method, "POST") != 0) {
		agentapi_method(req, method, "POST");
		return;
	}
	if (strcmp(sub, "/poll") == 0 && strcmp(method, "GET") != 0) {
		agentapi_method(req, method, "GET");
		return;
	}
	if (strcmp(sub, "/enroll") == 0) {
		handle_enroll(a, req);
		return;
	}
	/* A resumed poll was authenticated (and its name checked) on its first
	 * call; a body's key on the request's headers, moments ago. */
	if (checked) {
		k = *checked;
		http_req_trust(req);
	} else if (!resumed && auth_agent(api_service(a), req, &k, &e) < 0) {
		envelope_error(req, &e);
		return;
	}
	if (strcmp(sub, "/report") == 0)
		handle_report(a, req, &k);
	else if (strcmp(sub, "/sample") == 0)
		handle_sample(a, req, &k);
	else if (strcmp(sub, "/stream") == 0)
		handle_stream(a, req, &k);
	else if (strcmp(sub, "/upload") == 0)
		handle_upload(a, req, &k);
	else
		handle_poll(a, req, &k);
}

/* Every route with a body needs an agent's key (enroll: an enrolment token);
 * a sample answer or stream chunk, whose name is in the query, only for the
 * key's own name. A sample answer is a pcap, a stream chunk a run of
 * capture-file bytes. */
static ApiBody agentapi_before_body(Api *a, HttpRequest *req, const char *method, const char *rest)
{
	const char *name = http_req_query(req, "name");
	EnrollToken t;
	AgentKey k, *keep;
	ApiError e;

	(void)method;
	if (strcmp(rest, "/enroll") == 0)
		return auth_enroll(api_service(a), req, &t, &e) < 0 ? API_BODY_REFUSED : API_BODY_JSON;
	if (auth_agent(api_service(a), req, &k, &e) < 0)
		return API_BODY_REFUSED;
	/* The handler takes the key from here: one lookup per report, not two
	 * (without memory, it looks the key up again). */
	if (keyed_body_route(rest) && (keep = malloc(sizeof(*keep))) != NULL) {
		*keep = k;
		http_req_set_data(req, keep, free);
	}
	if (strcmp(rest, "/sample") != 0 && strcmp(rest, "/stream") != 0)
		return API_BODY_JSON;
	return name && strcmp(name, k.name) != 0 ? API_BODY_REFUSED : API_BODY_RAW;
}

const ApiDialect agentapi_dialect = {
	.name = "agent",
	.handle = agentapi_handle,
	.render_error = envelope_error,
	.body_limit = agentapi_body_limit,
	.before_body = agentapi_before_body,
};
