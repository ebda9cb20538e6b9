/* SPDX-License-Identifier: MIT */
/*
 * The Cloudflare PCAPs dialect (api-contract.md §1): the handlers behind
 * /accounts/{account}/pcaps…, calling the service layer and rendering with
 * cloudflare_render.c.
 *
 * Every request goes through the same checks, in this order, so that what a
 * client learns from an error never depends on what it is not allowed to see:
 *   1. route: unknown path → 404 (7003); known path, other method → 405 (7001)
 *      with Allow;
 *   2. credentials: 401 / 403 (10000) — account and scope;
 *   3. ids in the path: not 32 hex → 404 (1003), the same answer as an id of
 *      another account or one that never existed;
 *   4. the body: 400 / 413.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/cloudflare.h"
#include "api/envelope.h"
#include "bucket/bucket.h"
#include "common/timefmt.h"

#define PCAP_TYPE "application/vnd.tcpdump.pcap"
#define CHALLENGE_PREFIX "ownership-challenge-"
#define RETRY_SIMPLE_S "60" /* one sample per minute per account */
#define RETRY_FULL_S "5"

typedef enum Route {
	R_PCAPS,              /* ""                    GET list, POST create */
	R_PCAP,               /* "/{id}"               GET */
	R_DOWNLOAD,           /* "/{id}/download"      GET */
	R_STOP,               /* "/{id}/stop"          PUT */
	R_OWNERSHIPS,         /* "/ownership"          GET list, POST create */
	R_OWNERSHIP,          /* "/ownership/{id}"     DELETE */
	R_OWNERSHIP_VALIDATE, /* "/ownership/validate" POST */
	R_AGENTS,             /* "/agents"             GET (pcapd extension) */
	R_NONE,
} Route;

/* What one request is about, once routed and authenticated. */
typedef struct Call {
	Api *api;
	HttpRequest *req;
	Db *db;
	char account[JOB_ID_LEN + 1]; /* the credential's account, as stored */
	char id[JOB_ID_LEN + 1];      /* the path id, lowercased (when the route has one) */
} Call;

/* ---- routing ---- */

/* Splits sub ("" or "/a[/b]") into at most two non-empty segments. */
static Route route_of(const char *sub, const char **ret_id, size_t *ret_id_len)
{
	const char *seg[2];
	size_t len[2];
	size_t n = 0;
	const char *p = sub;

	if (*p == '\0')
		return R_PCAPS;
	while (*p) {
		const char *end;

		if (*p != '/' || n == 2)
			return R_NONE;
		p++;
		end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		if (end == p)
			return R_NONE; /* "//" or a trailing '/' */
		seg[n] = p;
		len[n] = (size_t)(end - p);
		n++;
		p = end;
	}
	if (len[0] == 9 && memcmp(seg[0], "ownership", 9) == 0) {
		if (n == 1)
			return R_OWNERSHIPS;
		/* The literal wins over an id, as on Cloudflare. */
		if (len[1] == 8 && memcmp(seg[1], "validate", 8) == 0)
			return R_OWNERSHIP_VALIDATE;
		*ret_id = seg[1];
		*ret_id_len = len[1];
		return R_OWNERSHIP;
	}
	if (n == 1 && len[0] == 6 && memcmp(seg[0], "agents", 6) == 0)
		return R_AGENTS;
	*ret_id = seg[0];
	*ret_id_len = len[0];
	if (n == 1)
		return R_PCAP;
	if (len[1] == 8 && memcmp(seg[1], "download", 8) == 0)
		return R_DOWNLOAD;
	if (len[1] == 4 && memcmp(seg[1], "stop", 4) == 0)
		return R_STOP;
	return R_NONE;
}

static const char *const route_allow[] = {
	[R_PCAPS] = "GET, POST",
	[R_PCAP] = "GET",
	[R_DOWNLOAD] = "GET",
	[R_STOP] = "PUT",
	[R_OWNERSHIPS] = "GET, POST",
	[R_OWNERSHIP] = "DELETE",
	[R_OWNERSHIP_VALIDATE] = "POST",
	[R_AGENTS] = "GET",
};

/* ---- shared answers ---- */

static void internal_error(HttpRequest *req, const ErrBuf *err)
{
	envelope_error(req, 500, API_E_INTERNAL, "internal error: %s", err->msg[0] ? err->msg : "unexpected failure");
}

static void answer_pcap(Call *c, const Job *j, bool with_agents, const JobPart *parts, size_t n)
{
	json_t *o = cloudflare_render_pcap(j, with_agents, parts, n);

	if (!o) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	envelope_ok(c->req, 200, o, NULL);
}

static void answer_ownership(Call *c, const BucketRow *b)
{
	json_t *o = cloudflare_render_ownership(b);

	if (!o) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	envelope_ok(c->req, 200, o, NULL);
}

static void no_capture(Call *c)
{
	envelope_error(c->req, 404, API_E_NOT_FOUND, "pcap_id: no capture with id %s", c->id);
}

/* The one spelling of a destination_conf (bucket_uri_normalize), so that
 * "file:///r/b1" and "file:///r/./b1/" are one bucket. Answers 400 on failure. */
static int normal_conf(Call *c, const char *conf, char out[BUCKET_URI_MAX + 1])
{
	ErrBuf err = {{0}};
	int r = bucket_uri_normalize(conf, out, BUCKET_URI_MAX + 1, &err);

	if (r < 0)
		envelope_error(c->req, 400, API_E_FIELD, "%s", err.msg);
	return r;
}

/* ---- captures ---- */

static void pcaps_create(Call *c)
{
	Service *svc = api_service(c->api);
	ErrBuf err = {{0}};
	BucketRow bucket = {0};
	Job j = {0};
	json_t *body;
	int r;

	body = request_json_object(c->req);
	if (!body)
		return;
	r = cloudflare_parse_create(body, (int64_t)now_realtime_ns(), &j, &err);
	json_decref(body);
	if (r < 0) {
		if (r == -ENOMEM)
			internal_error(c->req, &err);
		else
			envelope_error(c->req, 400, API_E_FIELD, "%s", err.msg);
		return;
	}
	memcpy(j.account, c->account, sizeof(j.account));

	if (j.type == JOB_FULL) {
		char norm[BUCKET_URI_MAX + 1], *copy;

		if (normal_conf(c, j.destination_conf, norm) < 0)
			goto done;
		copy = strdup(norm);
		if (!copy) {
			envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
			goto done;
		}
		free(j.destination_conf);
		j.destination_conf = copy;
		r = db_bucket_find(c->db, c->account, j.destination_conf, &bucket, &err);
		if (r == -ENOENT) {
			envelope_error(c->req, 400, API_E_BUCKET,
				       "destination_conf: bucket is not registered; add it with POST "
				       "…/pcaps/ownership and validate it");
			goto done;
		}
		if (r < 0) {
			internal_error(c->req, &err);
			goto done;
		}
		if (bucket.status == BUCKET_PENDING) {
			envelope_error(c->req, 400, API_E_BUCKET,
				       "destination_conf: bucket is pending validation; validate it with POST "
				       "…/pcaps/ownership/validate");
			goto done;
		}
		if (bucket.status != BUCKET_SUCCESS) {
			envelope_error(c->req, 400, API_E_BUCKET,
				       "destination_conf: bucket failed validation; delete it and add it again");
			goto done;
		}
	}

	r = service_job_create(svc, &j, &err);
	if (r == -ENODEV) {
		envelope_error(c->req, 400, API_E_NO_AGENT, "%s", err.msg);
	} else if (r == -EBUSY) {
		http_add_header(c->req, "retry-after", j.type == JOB_SIMPLE ? RETRY_SIMPLE_S : RETRY_FULL_S);
		envelope_error(c->req, 429, API_E_LIMIT, "%s", err.msg);
	} else if (r < 0) {
		internal_error(c->req, &err);
	} else {
		answer_pcap(c, &j, false, NULL, 0);
	}
done:
	bucket_row_done(&bucket);
	job_done(&j);
}

static void pcaps_list(Call *c)
{
	size_t limit = api_list_limit(c->api), len;
	/* Read before the database: a change during rendering makes the cached
	 * copy stale at once rather than hiding the change. */
	uint64_t gen = service_jobs_generation(api_service(c->api));
	ErrBuf err = {{0}};
	Job *jobs = NULL;
	size_t n = 0;
	json_t *arr, *info;
	char *body;
	int r;

	if (api_list_cached(c->api, c->req, c->account, gen))
		return;
	r = db_job_list(c->db, c->account, limit, &jobs, &n, &err);
	if (r < 0) {
		internal_error(c->req, &err);
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, cloudflare_render_pcap(&jobs[i], false, NULL, 0)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	jobs_free(jobs, n);
	/* Cloudflare documents "up to 50" and no paging: one page, all of it. */
	info = json_pack("{s:i, s:I, s:I, s:I}", "page", 1, "per_page", (json_int_t)limit, "count", (json_int_t)n,
			 "total_count", (json_int_t)n);
	if (!arr || !info) {
		json_decref(arr);
		json_decref(info);
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	body = envelope_ok_text(arr, info, &len);
	if (!body) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	http_respond(c->req, 200, "application/json", body, len);
	api_list_store(c->api, c->account, gen, body, len);
}

static void pcaps_get(Call *c)
{
	ErrBuf err = {{0}};
	JobPart *parts = NULL;
	size_t n = 0;
	Job j = {0};
	int r;

	r = db_job_get(c->db, c->account, c->id, &j, &err);
	if (r == -ENOENT) {
		no_capture(c);
		return;
	}
	if (r < 0) {
		internal_error(c->req, &err);
		return;
	}
	r = db_part_list(c->db, c->id, &parts, &n, &err);
	if (r < 0)
		internal_error(c->req, &err);
	else
		answer_pcap(c, &j, true, parts, n);
	parts_free(parts, n);
	job_done(&j);
}

static void pcaps_download(Call *c)
{
	char disposition[128];
	JobStatus status = JOB_PENDING;
	ErrBuf err = {{0}};
	uint64_t len = 0;
	int fd = -1;
	int r;

	r = service_job_download(api_service(c->api), c->account, c->id, &fd, &len, &status, &err);
	if (r == -ENOENT) {
		no_capture(c);
		return;
	}
	if (r == -EAGAIN) {
		envelope_error(c->req, 409, API_E_STATE,
			       "pcap_id: capture is %s; it can be downloaded once its status is success",
			       job_status_to_string(status));
		return;
	}
	if (r == -ENODATA) {
		Job j = {0};
		ErrBuf jerr = {{0}};

		if (db_job_get(c->db, c->account, c->id, &j, &jerr) == 0 && j.error_message)
			envelope_error(c->req, 409, API_E_STATE, "pcap_id: capture failed: %s", j.error_message);
		else
			envelope_error(c->req, 409, API_E_STATE, "pcap_id: capture failed: %s",
				       err.msg[0] ? err.msg : "no packets");
		job_done(&j);
		return;
	}
	if (r < 0) {
		internal_error(c->req, &err);
		return;
	}
	r = snprintf(disposition, sizeof(disposition), "attachment; filename=\"pcap_%s.pcap\"", c->id);
	if (r > 0 && (size_t)r < sizeof(disposition))
		http_add_header(c->req, "Content-Disposition", disposition);
	http_respond_fd(c->req, 200, PCAP_TYPE, fd, len);
}

static void pcaps_stop(Call *c)
{
	ErrBuf err = {{0}};
	Job j = {0};
	int r;

	/* The SDK sends no body; anything sent is ignored. */
	r = service_job_stop(api_service(c->api), c->account, c->id, &j, &err);
	if (r == -ENOENT)
		no_capture(c);
	else if (r == -EINVAL)
		envelope_error(c->req, 409, API_E_STATE, "pcap_id: only full captures can be stopped");
	else if (r == -EALREADY)
		envelope_error(c->req, 409, API_E_STATE, "pcap_id: capture already finished (%s)",
			       job_status_to_string(j.status));
	else if (r < 0)
		internal_error(c->req, &err);
	else
		answer_pcap(c, &j, false, NULL, 0);
	job_done(&j);
}

/* ---- buckets ("ownership") ---- */

/* Opens the bucket at uri; a failure is the client's (a path outside the
 * bucket root, an unwritable directory), so the message names the field. */
static int open_bucket(Call *c, const char *uri, Bucket **ret)
{
	ErrBuf err = {{0}};
	int r;

	r = bucket_open(uri, service_buckets(api_service(c->api)), ret, &err);
	if (r < 0) {
		if (strncmp(err.msg, "destination_conf", 16) == 0)
			envelope_error(c->req, 400, API_E_FIELD, "%s", err.msg);
		else
			envelope_error(c->req, 400, API_E_FIELD, "destination_conf: %s", err.msg);
	}
	return r;
}

static void ownership_create(Call *c)
{
	BucketRow b = {0}, old = {0}, *rows = NULL;
	ErrBuf err = {{0}};
	Bucket *bucket = NULL;
	const char *conf;
	char norm[BUCKET_URI_MAX + 1];
	size_t max = service_max_buckets(api_service(c->api)), n = 0;
	char token[JOB_ID_LEN + 2];
	char filename[sizeof(CHALLENGE_PREFIX) + JOB_ID_LEN + 4];
	json_t *body;
	int r;

	body = request_json_object(c->req);
	if (!body)
		return;
	r = cloudflare_parse_ownership(body, &conf, &err);
	if (r < 0) {
		envelope_error(c->req, 400, API_E_FIELD, "%s", err.msg);
		goto done;
	}
	if (normal_conf(c, conf, norm) < 0)
		goto done;
	conf = norm;
	r = db_bucket_find(c->db, c->account, conf, &old, &err);
	if (r == 0) {
		envelope_error(c->req, 400, API_E_FIELD,
			       "destination_conf: already registered (id %s); delete it first to register again",
			       old.id);
		goto done;
	}
	if (r != -ENOENT) {
		internal_error(c->req, &err);
		goto done;
	}
	/* Bounded before anything is created in the bucket; the insert
	 * checks again, atomically, for two creates at once. */
	if (max && (r = db_bucket_list(c->db, c->account, &rows, &n, &err)) < 0) {
		internal_error(c->req, &err);
		goto done;
	}
	if (max && n >= max) {
		envelope_error(c->req, 400, API_E_FIELD,
			       "destination_conf: this account has %zu buckets registered, the most allowed; delete "
			       "one first",
			       n);
		goto done;
	}
	if (open_bucket(c, conf, &bucket) < 0)
		goto done;

	/* The file name carries the bucket's id (as in Cloudflare's example);
	 * the token inside is a second, independent random value. */
	if (job_new_id(b.id) < 0 || job_new_id(token) < 0) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: no random numbers");
		goto done;
	}
	r = snprintf(filename, sizeof(filename), CHALLENGE_PREFIX "%s.txt", b.id);
	if (r < 0 || (size_t)r >= sizeof(filename)) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: challenge name");
		goto done;
	}
	memcpy(b.account, c->account, sizeof(b.account));
	b.destination_conf = strdup(conf);
	b.filename = strdup(filename);
	b.challenge = strdup(token);
	if (!b.destination_conf || !b.filename || !b.challenge) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		goto done;
	}
	b.status = BUCKET_PENDING;
	b.submitted_ns = (int64_t)now_realtime_ns();

	token[JOB_ID_LEN] = '\n';
	r = bucket_put_bytes(bucket, filename, token, JOB_ID_LEN + 1, &err);
	token[JOB_ID_LEN] = '\0';
	if (r < 0) {
		envelope_error(c->req, 400, API_E_FIELD, "destination_conf: cannot write the challenge file: %s",
			       err.msg);
		goto done;
	}
	r = db_bucket_insert(c->db, &b, max, &err);
	if (r < 0) {
		ErrBuf rerr;

		bucket_remove(bucket, filename, &rerr); /* best effort: the row is what counts */
		if (r == -EDQUOT)
			envelope_error(c->req, 400, API_E_FIELD,
				       "destination_conf: this account has %zu buckets registered, the most "
				       "allowed; delete one first",
				       max);
		else if (r == -EEXIST && db_bucket_find(c->db, c->account, conf, &old, &rerr) == 0)
			envelope_error(c->req, 400, API_E_FIELD,
				       "destination_conf: already registered (id %s); delete it first to register "
				       "again",
				       old.id);
		else
			internal_error(c->req, &err);
		goto done;
	}
	answer_ownership(c, &b);
done:
	bucket_rows_free(rows, n);
	bucket_free(bucket);
	bucket_row_done(&old);
	bucket_row_done(&b);
	json_decref(body);
}

static void ownership_list(Call *c)
{
	ErrBuf err = {{0}};
	BucketRow *rows = NULL;
	size_t n = 0;
	json_t *arr;
	int r;

	r = db_bucket_list(c->db, c->account, &rows, &n, &err);
	if (r < 0) {
		internal_error(c->req, &err);
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, cloudflare_render_ownership(&rows[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bucket_rows_free(rows, n);
	if (!arr) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	envelope_ok(c->req, 200, arr, NULL);
}

static void ownership_validate(Call *c)
{
	const char *conf, *challenge;
	char norm[BUCKET_URI_MAX + 1];
	ErrBuf err = {{0}};
	BucketRow b = {0};
	json_t *body;
	int r;

	body = request_json_object(c->req);
	if (!body)
		return;
	r = cloudflare_parse_validate(body, &conf, &challenge, &err);
	if (r < 0) {
		envelope_error(c->req, 400, API_E_FIELD, "%s", err.msg);
		goto done;
	}
	if (normal_conf(c, conf, norm) < 0)
		goto done;
	conf = norm;
	r = db_bucket_find(c->db, c->account, conf, &b, &err);
	if (r == -ENOENT) {
		envelope_error(c->req, 404, API_E_NOT_FOUND, "destination_conf: no bucket registered with this URI");
		goto done;
	}
	if (r < 0) {
		internal_error(c->req, &err);
		goto done;
	}
	if (!cloudflare_challenge_matches(&b, challenge, strlen(challenge))) {
		envelope_error(c->req, 400, API_E_CHALLENGE, "ownership_challenge: does not match the token in %s",
			       b.filename ? b.filename : "the challenge file");
		goto done;
	}
	/* Validating again is harmless and keeps the first validation time. */
	if (b.status != BUCKET_SUCCESS || !b.validated_ns) {
		b.status = BUCKET_SUCCESS;
		b.validated_ns = (int64_t)now_realtime_ns();
		r = db_bucket_update(c->db, &b, &err);
		if (r < 0) {
			internal_error(c->req, &err);
			goto done;
		}
	}
	answer_ownership(c, &b);
done:
	bucket_row_done(&b);
	json_decref(body);
}

static void ownership_delete(Call *c)
{
	ErrBuf err = {{0}};
	BucketRow b = {0};
	Bucket *bucket = NULL;
	int r;

	r = db_bucket_get(c->db, c->account, c->id, &b, &err);
	if (r == -ENOENT) {
		envelope_error(c->req, 404, API_E_NOT_FOUND, "ownership_id: no bucket with id %s", c->id);
		return;
	}
	if (r < 0) {
		internal_error(c->req, &err);
		return;
	}
	r = db_bucket_delete(c->db, c->account, c->id, &err);
	if (r == -ENOENT) {
		envelope_error(c->req, 404, API_E_NOT_FOUND, "ownership_id: no bucket with id %s", c->id);
		goto done;
	}
	if (r < 0) {
		internal_error(c->req, &err);
		goto done;
	}
	/* The challenge file is ours to tidy, but a bucket that has gone away
	 * must not keep its row alive: best effort, after the delete. */
	if (b.filename && bucket_open(b.destination_conf, service_buckets(api_service(c->api)), &bucket, &err) == 0)
		bucket_remove(bucket, b.filename, &err);
	http_respond(c->req, 204, NULL, NULL, 0);
done:
	bucket_free(bucket);
	bucket_row_done(&b);
}

/* ---- dispatch ---- */

typedef struct Op {
	Route route;
	const char *method;
	TokenScope scope;
	const char *name; /* in a 403 for too small a scope */
	void (*fn)(Call *c);
} Op;

/* pcapd extension: the fleet as the controller sees it (online, last report,
 * the recorder's state), so a full disk or a stopped recorder is visible. */
static void agents_list(Call *c)
{
	json_t *arr = service_agents_json(api_service(c->api));

	if (!arr) {
		envelope_error(c->req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	envelope_ok(c->req, 200, arr, NULL);
}

static const Op ops[] = {
	{R_PCAPS, "GET", SCOPE_READ, "list", pcaps_list},
	{R_PCAPS, "POST", SCOPE_WRITE, "create", pcaps_create},
	{R_PCAP, "GET", SCOPE_READ, "get", pcaps_get},
	{R_DOWNLOAD, "GET", SCOPE_READ, "download", pcaps_download},
	{R_STOP, "PUT", SCOPE_WRITE, "stop", pcaps_stop},
	{R_OWNERSHIPS, "GET", SCOPE_READ, "ownership list", ownership_list},
	{R_OWNERSHIPS, "POST", SCOPE_WRITE, "ownership create", ownership_create},
	{R_OWNERSHIP, "DELETE", SCOPE_WRITE, "ownership delete", ownership_delete},
	{R_OWNERSHIP_VALIDATE, "POST", SCOPE_WRITE, "ownership validate", ownership_validate},
	{R_AGENTS, "GET", SCOPE_READ, "agent list", agents_list},
};

void cloudflare_handle(Api *a, HttpRequest *req, const char *account, const char *sub)
{
	const char *method = http_req_method(req);
	const char *id = NULL;
	size_t id_len = 0;
	const Op *op = NULL;
	Call c = {.api = a, .req = req};
	Route route;

	route = route_of(sub, &id, &id_len);
	if (route == R_NONE) {
		envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
		return;
	}
	/* HEAD is GET without the body (libmicrohttpd drops it). */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (ops[i].route == route && strcmp(ops[i].method, method) == 0)
			op = &ops[i];
	if (!op) {
		http_add_header(req, "Allow", route_allow[route]);
		envelope_error(req, 405, API_E_METHOD, "Method not allowed: %s takes %s", method, route_allow[route]);
		return;
	}
	c.db = service_db(api_service(a));
	if (auth_check_op(c.db, req, account, op->scope, op->name, c.account) < 0)
		return;
	if (id) {
		if (!job_id_valid(id, id_len)) {
			if (route == R_OWNERSHIP)
				envelope_error(req, 404, API_E_NOT_FOUND, "ownership_id: no bucket with id %.*s",
					       (int)(id_len > 64 ? 64 : id_len), id);
			else
				envelope_error(req, 404, API_E_NOT_FOUND, "pcap_id: no capture with id %.*s",
					       (int)(id_len > 64 ? 64 : id_len), id);
			return;
		}
		/* Ids are stored lowercase; accept what a user copied in capitals. */
		for (size_t i = 0; i < JOB_ID_LEN; i++)
			c.id[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] - 'A' + 'a' : id[i]);
		c.id[JOB_ID_LEN] = '\0';
	}
	op->fn(&c);
}
