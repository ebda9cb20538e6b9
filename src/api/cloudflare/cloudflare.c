/* SPDX-License-Identifier: MIT */
/*
 * The Cloudflare PCAPs dialect: the handlers behind /accounts/{account}/pcaps…
 * They parse (validate.c), call the service layer and render (render.c, and
 * envelope.c for errors); the service's neutral errors get Cloudflare's names
 * for the model's fields here (cf_fail).
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "api/auth.h"
#include "api/cloudflare/cloudflare.h"
#include "api/cloudflare/envelope.h"
#include "api/cloudflare/tokens.h"
#include "common/log.h"
#include "common/timefmt.h"

#define PCAP_TYPE "application/vnd.tcpdump.pcap"
#define PCAPNG_TYPE "application/x-pcapng"
#define STREAM_TRAILER "Pcapd-Stream-End" /* how a live stream ended */
#define STREAM_BUFFER (1u << 20)          /* bytes between the tap and a reader */
#define ACCOUNT_SEGMENT_MAX 128           /* longer cannot be an account; still answered by auth */

typedef enum Route {
	R_PCAPS,              /* ""                    GET list, POST create */
	R_PCAP,               /* "/{id}"               GET */
	R_DOWNLOAD,           /* "/{id}/download"      GET */
	R_STOP,               /* "/{id}/stop"          PUT */
	R_RETRY,              /* "/{id}/retry-upload"  POST (pcapd extension) */
	R_STREAM,             /* "/{id}/stream"        GET (pcapd extension) */
	R_OWNERSHIPS,         /* "/ownership"          GET list, POST create */
	R_OWNERSHIP,          /* "/ownership/{id}"     DELETE */
	R_OWNERSHIP_VALIDATE, /* "/ownership/validate" POST */
	R_OWNERSHIP_SHARE,    /* "/ownership/share"    POST (pcapd extension) */
	R_AGENTS,             /* "/agents"             GET (pcapd extension) */
	R_AGENT,              /* "/agents/{name}"      DELETE: revoke (pcapd extension) */
	R_NONE,
} Route;

/* What one request is about, once routed and authenticated. */
typedef struct Call {
	Api *api;
	Service *svc;
	HttpRequest *req;
	const char *id_field;           /* Cloudflare's name of the path id: "pcap_id", "ownership_id" */
	const char *target_field;       /* the body's name of the model's "target": "colo" when asked so */
	char account[JOB_ID_LEN + 1];   /* the credential's account, as stored */
	char id[JOB_ID_LEN + 1];        /* the path id, lowercased (when the route has one) */
	char agent[AGENT_NAME_MAX + 1]; /* R_AGENT: the agent's name */
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
		if (len[1] == 5 && memcmp(seg[1], "share", 5) == 0)
			return R_OWNERSHIP_SHARE;
		*ret_id = seg[1];
		*ret_id_len = len[1];
		return R_OWNERSHIP;
	}
	if (len[0] == 6 && memcmp(seg[0], "agents", 6) == 0) {
		if (n == 1)
			return R_AGENTS;
		*ret_id = seg[1];
		*ret_id_len = len[1];
		return R_AGENT;
	}
	*ret_id = seg[0];
	*ret_id_len = len[0];
	if (n == 1)
		return R_PCAP;
	if (len[1] == 8 && memcmp(seg[1], "download", 8) == 0)
		return R_DOWNLOAD;
	if (len[1] == 4 && memcmp(seg[1], "stop", 4) == 0)
		return R_STOP;
	if (len[1] == 6 && memcmp(seg[1], "stream", 6) == 0)
		return R_STREAM;
	if (len[1] == 12 && memcmp(seg[1], "retry-upload", 12) == 0)
		return R_RETRY;
	return R_NONE;
}

static const char *const route_allow[] = {
	[R_PCAPS] = "GET, POST",
	[R_PCAP] = "GET",
	[R_DOWNLOAD] = "GET",
	[R_STOP] = "PUT",
	[R_RETRY] = "POST",
	[R_STREAM] = "GET",
	[R_OWNERSHIPS] = "GET, POST",
	[R_OWNERSHIP] = "DELETE",
	[R_OWNERSHIP_VALIDATE] = "POST",
	[R_OWNERSHIP_SHARE] = "POST",
	[R_AGENTS] = "GET",
	[R_AGENT] = "DELETE",
};

/* ---- shared answers ---- */

/* The model's field names in Cloudflare's words. */
static const char *cf_field(const char *field, const char *id_field, const char *target_field)
{
	static const char *const names[][2] = {
		{"destination", "destination_conf"},
		{"challenge", "ownership_challenge"},
		{"account", "account_id"},
	};

	if (id_field && strcmp(field, "id") == 0)
		return id_field;
	if (strcmp(field, "target") == 0)
		return target_field ? target_field : "colo_name";
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(field, names[i][0]) == 0)
			return names[i][1];
	return field;
}

/* The JSON pointer (RFC 6901) of a field of the request body, its path
 * written "filter_v1.source_port" or "outputs[1].target", into out; false
 * for what is no member of the body (no field, the body as a whole, path
 * ids, query parameters). */
static bool body_pointer(const char *field, char *out, size_t cap)
{
	static const char *const not_body[] = {"", "body", "id", "pcap_id", "ownership_id", "page", "per_page"};
	size_t o = 0;

	for (size_t i = 0; i < ARRAY_SIZE(not_body); i++)
		if (strcmp(field, not_body[i]) == 0)
			return false;
	for (const char *p = field; *p; p++) {
		const char *add = *p == '.' || *p == '[' ? "/"
				  : *p == ']'            ? ""
				  : *p == '~'            ? "~0"
				  : *p == '/'            ? "~1"
							 : NULL;
		char one[2] = {*p, '\0'};

		if (p == field && *p != '[' && o + 1 < cap)
			out[o++] = '/';
		for (const char *q = add ? add : one; *q; q++) {
			if (o + 1 >= cap)
				return false;
			out[o++] = *q;
		}
	}
	out[o] = '\0';
	return true;
}

static void cf_error(HttpRequest *req, const ApiError *e, const char *id_field, const char *target_field)
{
	char pointer[APIERROR_FIELD_MAX * 2 + 2];
	ApiError cf = *e;

	snprintf(cf.field, sizeof(cf.field), "%s", cf_field(e->field, id_field, target_field));
	envelope_error_at(req, &cf, body_pointer(cf.field, pointer, sizeof(pointer)) ? pointer : NULL);
}

static void cf_render_error(HttpRequest *req, const ApiError *e)
{
	cf_error(req, e, NULL, NULL);
}

static void cf_fail(Call *c, const ApiError *e)
{
	cf_error(c->req, e, c->id_field, c->target_field);
}

static void out_of_memory(Call *c)
{
	ApiError e;

	apierror_set(&e, API_ERR_INTERNAL, NULL, "out of memory");
	cf_fail(c, &e);
}

static void answer_pcap(Call *c, const Job *j, bool with_agents, const JobPart *parts, size_t n)
{
	json_t *o = cloudflare_render_pcap(j, with_agents, parts, n);

	if (!o) {
		out_of_memory(c);
		return;
	}
	envelope_ok(c->req, 200, o, NULL);
}

static void answer_ownership(Call *c, const BucketRow *b)
{
	json_t *o = cloudflare_render_ownership(b);

	if (!o) {
		out_of_memory(c);
		return;
	}
	envelope_ok(c->req, 200, o, NULL);
}

/* The body as a JSON object, or NULL (answered). */
static json_t *body_object(Call *c)
{
	ApiError e;
	json_t *body = api_request_json(c->req, API_MAX_BODY, &e);

	if (!body)
		cf_fail(c, &e);
	return body;
}

/* Members of a body that its parser ignores (the schema does not name them),
 * in the controller's debug log (pcapd controller --log-level debug). */
static void log_unknown(Call *c, const json_t *body, CfRequest kind)
{
	char names[512];
	size_t n = cloudflare_unknown_fields(body, kind, names, sizeof(names));

	if (n)
		log_debug("cloudflare: %s %s: ignored %zu unknown field%s: %s", http_req_method(c->req),
			  http_req_path(c->req), n, n == 1 ? "" : "s", names);
}

/* A validator's ErrBuf (its message names the field first) as the answer. */
static void invalid(Call *c, int r, const ErrBuf *err)
{
	ApiError e;

	apierror_from_msg(&e, r == -ENOMEM ? API_ERR_INTERNAL : API_ERR_INVALID, err->msg);
	cf_fail(c, &e);
}

/* ---- captures ---- */

static void pcaps_create(Call *c)
{
	ErrBuf err = {{0}};
	ApiError e;
	Job j = {0};
	json_t *body;
	int r;

	body = body_object(c);
	if (!body)
		return;
	log_unknown(c, body, CF_REQ_CREATE);
	r = cloudflare_parse_create(body, (int64_t)now_realtime_ns(), &j, &err);
	/* Errors about the target name the key the request used. */
	if (json_object_get(body, "colo") && !json_object_get(body, "colo_name"))
		c->target_field = "colo";
	json_decref(body);
	if (r < 0) {
		invalid(c, r, &err);
		return;
	}
	memcpy(j.account, c->account, sizeof(j.account));
	if (service_job_create(c->svc, &j, &e) < 0)
		cf_fail(c, &e);
	else
		answer_pcap(c, &j, false, NULL, 0);
	job_done(&j);
}

/* A list page's result_info, as Cloudflare's paged lists carry it. */
static json_t *page_info(const CfPage *p, size_t count, uint64_t total)
{
	uint64_t pages = total / p->per_page + (total % p->per_page != 0);

	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "page", (json_int_t)p->page, "per_page", (json_int_t)p->per_page,
			 "count", (json_int_t)count, "total_count", (json_int_t)total, "total_pages",
			 (json_int_t)pages);
}

static void pcaps_list(Call *c)
{
	/* Read before the database: a change during rendering makes the cached
	 * copy stale at once rather than hiding the change. */
	uint64_t gen = service_jobs_generation(c->svc), total = 0;
	char key[API_LIST_KEY_MAX + 1];
	ErrBuf err = {{0}};
	size_t n = 0, len;
	Job *jobs = NULL;
	json_t *arr, *info;
	char *body;
	ApiError e;
	CfPage p;
	int r;

	r = cloudflare_parse_page(http_req_query(c->req, "page"), http_req_query(c->req, "per_page"),
				  (uint32_t)api_list_limit(c->api), &p, &err);
	if (r < 0) {
		invalid(c, r, &err);
		return;
	}
	/* The page is part of what was rendered. */
	snprintf(key, sizeof(key), "%s/%u/%u", c->account, p.page, p.per_page);
	if (api_list_cached(c->api, &cloudflare_dialect, c->req, key, gen))
		return;
	if (service_job_list(c->svc, c->account, (size_t)(p.page - 1) * p.per_page, p.per_page, &jobs, &n, &total, &e) <
	    0) {
		cf_fail(c, &e);
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
	info = page_info(&p, n, total);
	if (!arr || !info) {
		json_decref(arr);
		json_decref(info);
		out_of_memory(c);
		return;
	}
	body = envelope_ok_text(arr, info, &len);
	if (!body) {
		out_of_memory(c);
		return;
	}
	http_respond(c->req, 200, "application/json", body, len);
	api_list_store(c->api, &cloudflare_dialect, key, gen, body, len);
}

static void pcaps_get(Call *c)
{
	JobPart *parts = NULL;
	size_t n = 0;
	ApiError e;
	Job j = {0};

	if (service_job_get(c->svc, c->account, c->id, &j, &parts, &n, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	answer_pcap(c, &j, true, parts, n);
	parts_free(parts, n);
	job_done(&j);
}

/* A download in progress, kept with its request across the wait for the
 * download's first records (service_job_download). */
typedef struct DownloadCall {
	pthread_mutex_t lock;
	HttpRequest *req;
	Download *d;
	bool ready;    /* under lock: the outcome is known */
	bool parked;   /* under lock: the request waits for it */
	bool released; /* service_download_release() was called */
} DownloadCall;

/* From the download's thread: the outcome is known; wake the request. */
static void download_ready(void *ctx)
{
	DownloadCall *dc = ctx;

	pthread_mutex_lock(&dc->lock);
	dc->ready = true;
	if (dc->parked) {
		dc->parked = false;
		http_resume(dc->req);
	}
	pthread_mutex_unlock(&dc->lock);
}

static void download_call_free(void *p)
{
	DownloadCall *dc = p;

	if (!dc->released)
		service_download_release(dc->d); /* after this, download_ready is not called */
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

static int download_write(void *ctx, const void *p, size_t n)
{
	return http_stream_write(ctx, p, n);
}

static void download_end(void *ctx, bool ok)
{
	http_stream_end(ctx, ok);
}

/* pcapd extension ?format=pcap|pcapng (absent: dflt_pcapng): false after
 * answering 400 for anything else. */
static bool query_format(Call *c, bool dflt_pcapng, bool *ret_pcapng)
{
	const char *format = http_req_query(c->req, "format");
	ApiError e;

	if (!format) {
		*ret_pcapng = dflt_pcapng;
		return true;
	}
	if (strcmp(format, "pcapng") != 0 && strcmp(format, "pcap") != 0) {
		apierror_set(&e, API_ERR_INVALID, "format", "must be pcap or pcapng");
		cf_fail(c, &e);
		return false;
	}
	*ret_pcapng = format[4] != '\0';
	return true;
}

/* Streamed: the handler starts the download and parks the request until its
 * inputs are open (no HTTP worker waits on a store); then the answer's
 * body is the merge as it is made. */
static void pcaps_download(Call *c)
{
	DownloadCall *dc = http_req_get_data(c->req);
	char disposition[128];
	HttpStream *st = NULL;
	bool pcapng;
	ApiError e;
	int r;

	/* ?format=pcapng: the annotated merge. */
	if (!query_format(c, false, &pcapng))
		return;
	if (!dc) {
		dc = calloc(1, sizeof(*dc));
		if (!dc) {
			out_of_memory(c);
			return;
		}
		pthread_mutex_init(&dc->lock, NULL);
		dc->req = c->req;
		if (service_job_download(c->svc, c->account, c->id, pcapng, download_ready, dc, &dc->d, &e) < 0) {
			pthread_mutex_destroy(&dc->lock);
			free(dc);
			cf_fail(c, &e);
			return;
		}
		http_req_set_data(c->req, dc, download_call_free);
		pthread_mutex_lock(&dc->lock);
		if (!dc->ready && http_suspend(c->req) == 0) {
			dc->parked = true;
			pthread_mutex_unlock(&dc->lock);
			return;
		}
		pthread_mutex_unlock(&dc->lock);
	}
	pthread_mutex_lock(&dc->lock);
	r = dc->ready;
	pthread_mutex_unlock(&dc->lock);
	if (!r) { /* resumed by the server's shutdown */
		apierror_set(&e, API_ERR_UNAVAILABLE, NULL, "the controller is shutting down");
		cf_fail(c, &e);
		return;
	}
	if (service_download_outcome(dc->d, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	r = snprintf(disposition, sizeof(disposition), "attachment; filename=\"pcap_%s.%s\"", c->id,
		     pcapng ? "pcapng" : "pcap");
	if (r > 0 && (size_t)r < sizeof(disposition))
		http_add_header(c->req, "Content-Disposition", disposition);
	if (http_respond_stream(c->req, 200, pcapng ? PCAPNG_TYPE : PCAP_TYPE, 0, &st) < 0)
		return; /* answered 500 for us */
	service_download_stream(dc->d, download_write, download_end, st);
	service_download_release(dc->d);
	dc->released = true;
}

static void stream_cancel(void *ctx)
{
	http_stream_cancel(ctx);
}

static int stream_check(void *ctx)
{
	return http_stream_check(ctx);
}

static void stream_end(void *ctx, bool ok, const char *how)
{
	(void)http_stream_trailer(ctx, STREAM_TRAILER, how);
	http_stream_end(ctx, ok);
}

/* pcapd extension: the running capture as one pcapng (or ?format=pcap),
 * live, until it ends; how it ended in the trailer. */
static void pcaps_stream(Call *c)
{
	char disposition[128];
	HttpStream *hs = NULL;
	const char *type;
	TapSink sink;
	ErrBuf err = {{0}};
	bool pcapng;
	ApiError e;
	Tap *t = NULL;
	int r;

	/* pcapng unless ?format=pcap (one link type). */
	if (!query_format(c, true, &pcapng))
		return;
	type = pcapng ? PCAPNG_TYPE : PCAP_TYPE;
	if (service_tap_open(c->svc, c->account, c->id, pcapng, &t, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	/* HEAD: what a GET would answer, without telling any agent. */
	if (strcmp(http_req_method(c->req), "HEAD") == 0) {
		service_tap_cancel(c->svc, t);
		http_respond(c->req, 200, type, NULL, 0);
		return;
	}
	r = snprintf(disposition, sizeof(disposition), "inline; filename=\"pcap_%s.%s\"", c->id,
		     pcapng ? "pcapng" : "pcap");
	if (r > 0 && (size_t)r < sizeof(disposition))
		http_add_header(c->req, "Content-Disposition", disposition);
	http_add_header(c->req, "Cache-Control", "no-store");
	http_add_header(c->req, "Trailer", STREAM_TRAILER);
	r = http_respond_stream(c->req, 200, type, STREAM_BUFFER, &hs);
	if (r < 0) {
		service_tap_cancel(c->svc, t);
		apierror_set(&e, API_ERR_INTERNAL, NULL, "cannot answer: %s", strerror(-r));
		cf_fail(c, &e);
		return;
	}
	sink = (TapSink){
		.write = download_write, .cancel = stream_cancel, .check = stream_check, .end = stream_end, .ctx = hs};
	if (service_tap_start(c->svc, t, &sink, &err) < 0)
		stream_end(hs, false, err.msg);
}

static void pcaps_stop(Call *c)
{
	ApiError e;
	Job j = {0};

	/* The SDK sends no body; anything sent is ignored. */
	if (service_job_stop(c->svc, c->account, c->id, &j, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	answer_pcap(c, &j, false, NULL, 0);
	job_done(&j);
}

static void pcaps_retry_upload(Call *c)
{
	ApiError e;
	Job j = {0};

	if (service_job_retry_upload(c->svc, c->account, c->id, &j, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	answer_pcap(c, &j, false, NULL, 0);
	job_done(&j);
}

/* ---- buckets ("ownership") ---- */

static void ownership_create(Call *c)
{
	BucketRow b = {0};
	ErrBuf err = {{0}};
	const char *conf;
	ApiError e;
	json_t *body;

	body = body_object(c);
	if (!body)
		return;
	log_unknown(c, body, CF_REQ_OWNERSHIP);
	if (cloudflare_parse_ownership(body, &conf, &err) < 0)
		invalid(c, -EINVAL, &err);
	else if (service_bucket_register(c->svc, c->account, conf, &b, &e) < 0)
		cf_fail(c, &e);
	else
		answer_ownership(c, &b);
	bucket_row_done(&b);
	json_decref(body);
}

static void ownership_list(Call *c)
{
	BucketRow *rows = NULL;
	size_t n = 0;
	ApiError e;
	json_t *arr;

	if (service_bucket_list(c->svc, c->account, &rows, &n, &e) < 0) {
		cf_fail(c, &e);
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
		out_of_memory(c);
		return;
	}
	envelope_ok(c->req, 200, arr, NULL);
}

static void ownership_validate(Call *c)
{
	const char *conf, *challenge;
	ErrBuf err = {{0}};
	BucketRow b = {0};
	ApiError e;
	json_t *body;

	body = body_object(c);
	if (!body)
		return;
	log_unknown(c, body, CF_REQ_VALIDATE);
	if (cloudflare_parse_validate(body, &conf, &challenge, &err) < 0)
		invalid(c, -EINVAL, &err);
	else if (service_bucket_validate(c->svc, c->account, conf, challenge, &b, &e) < 0)
		cf_fail(c, &e);
	else
		answer_ownership(c, &b);
	bucket_row_done(&b);
	json_decref(body);
}

/* pcapd extension: {"destination_conf", "account_id"} lets another account
 * use this account's validated bucket (it registers and validates it too). */
static void ownership_share(Call *c)
{
	const char *conf, *other;
	char acct[JOB_ID_LEN + 1];
	ErrBuf err = {{0}};
	BucketRow b = {0};
	ApiError e;
	json_t *body;

	body = body_object(c);
	if (!body)
		return;
	conf = json_string_value(json_object_get(body, "destination_conf"));
	other = json_string_value(json_object_get(body, "account_id"));
	if (!conf) {
		errbuf_set(&err, -EINVAL, "destination_conf: required, a string");
		invalid(c, -EINVAL, &err);
	} else if (!other || !job_id_valid(other, strlen(other))) {
		errbuf_set(&err, -EINVAL, "account_id: required, 32 hex digits");
		invalid(c, -EINVAL, &err);
	} else {
		job_id_lower(other, acct);
		if (service_bucket_share(c->svc, c->account, conf, acct, &b, &e) < 0)
			cf_fail(c, &e);
		else
			answer_ownership(c, &b);
	}
	bucket_row_done(&b);
	json_decref(body);
}

static void ownership_delete(Call *c)
{
	ApiError e;

	if (service_bucket_delete(c->svc, c->account, c->id, &e) < 0)
		cf_fail(c, &e);
	else
		http_respond(c->req, 204, NULL, NULL, 0);
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
	json_t *arr = service_agents_json(c->svc, c->account);

	if (!arr) {
		out_of_memory(c);
		return;
	}
	envelope_ok(c->req, 200, arr, NULL);
}

/* pcapd extension: revokes an agent the account enrolled (its key stops
 * working; the name may be enrolled again). */
static void agent_revoke(Call *c)
{
	ApiError e;
	json_t *o;

	if (service_agent_revoke(c->svc, c->account, c->agent, &e) < 0) {
		cf_fail(c, &e);
		return;
	}
	o = json_pack("{s:s, s:b}", "name", c->agent, "revoked", 1);
	if (!o) {
		out_of_memory(c);
		return;
	}
	envelope_ok(c->req, 200, o, NULL);
}

static const Op ops[] = {
	{R_PCAPS, "GET", SCOPE_READ, "list", pcaps_list},
	{R_PCAPS, "POST", SCOPE_WRITE, "create", pcaps_create},
	{R_PCAP, "GET", SCOPE_READ, "get", pcaps_get},
	{R_DOWNLOAD, "GET", SCOPE_READ, "download", pcaps_download},
	{R_STOP, "PUT", SCOPE_WRITE, "stop", pcaps_stop},
	{R_RETRY, "POST", SCOPE_WRITE, "retry upload", pcaps_retry_upload},
	{R_STREAM, "GET", SCOPE_READ, "stream", pcaps_stream},
	{R_OWNERSHIPS, "GET", SCOPE_READ, "ownership list", ownership_list},
	{R_OWNERSHIPS, "POST", SCOPE_WRITE, "ownership create", ownership_create},
	{R_OWNERSHIP, "DELETE", SCOPE_WRITE, "ownership delete", ownership_delete},
	{R_OWNERSHIP_VALIDATE, "POST", SCOPE_WRITE, "ownership validate", ownership_validate},
	{R_OWNERSHIP_SHARE, "POST", SCOPE_WRITE, "ownership share", ownership_share},
	{R_AGENTS, "GET", SCOPE_READ, "agent list", agents_list},
	{R_AGENT, "DELETE", SCOPE_WRITE, "agent revoke", agent_revoke},
};

/* The path below /accounts/{account}/pcaps; sub is what follows "/pcaps". */
static void handle_pcaps(Api *a, HttpRequest *req, const char *account, const char *sub)
{
	const char *method = http_req_method(req);
	const char *id = NULL;
	size_t id_len = 0;
	const Op *op = NULL;
	Call c = {.api = a, .svc = api_service(a), .req = req};
	ApiError e;
	Route route;

	route = route_of(sub, &id, &id_len);
	if (route == R_NONE) {
		apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI");
		cf_fail(&c, &e);
		return;
	}
	/* HEAD is GET without the body (libmicrohttpd drops it). */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (ops[i].route == route && strcmp(ops[i].method, method) == 0)
			op = &ops[i];
	if (!op) {
		apierror_set(&e, API_ERR_METHOD, NULL, "Method not allowed: %s takes %s", method, route_allow[route]);
		e.allow = route_allow[route];
		cf_fail(&c, &e);
		return;
	}
	if (auth_check(c.svc, req, account, op->scope, op->name, c.account, &e) < 0) {
		cf_fail(&c, &e);
		return;
	}
	if (route == R_AGENT) {
		char name[AGENT_NAME_MAX + 1];

		snprintf(name, sizeof(name), "%.*s", (int)(id_len > AGENT_NAME_MAX ? AGENT_NAME_MAX : id_len), id);
		if (id_len > AGENT_NAME_MAX || !agentproto_name_valid(name)) {
			apierror_set(&e, API_ERR_NOT_FOUND, "name", "no agent '%s'", name);
			cf_fail(&c, &e);
			return;
		}
		memcpy(c.agent, name, sizeof(name));
	} else if (id) {
		c.id_field = route == R_OWNERSHIP ? "ownership_id" : "pcap_id";
		if (!job_id_valid(id, id_len)) {
			apierror_set(&e, API_ERR_NOT_FOUND, "id", "no %s with id %.*s",
				     route == R_OWNERSHIP ? "bucket" : "capture", (int)(id_len > 64 ? 64 : id_len), id);
			cf_fail(&c, &e);
			return;
		}
		/* Ids are stored lowercase; accept what a user copied in capitals. */
		job_id_lower(id, c.id);
	}
	op->fn(&c);
}

/* If path starts with the segment prefix (followed by '/' or its end),
 * returns what follows; else NULL. */
static const char *after_segment(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return path + n;
}

/* rest = "/{account}/pcaps[...]" or "/{account}/tokens[...]" (what follows
 * "/accounts"): fills account and returns what follows "/pcaps" or
 * "/tokens" (*ret_tokens says which), or NULL when there is no such route. */
static const char *account_of(const char *rest, char account[ACCOUNT_SEGMENT_MAX + 1], bool *ret_tokens)
{
	const char *slash, *sub = NULL;
	bool tokens = false;
	size_t n;

	if (rest[0] == '/' && (slash = strchr(rest + 1, '/')) && slash != rest + 1) {
		sub = after_segment(slash, "/pcaps");
		if (!sub) {
			sub = after_segment(slash, "/tokens");
			tokens = sub != NULL;
		}
	}
	if (!sub)
		return NULL;
	n = (size_t)(slash - (rest + 1));
	if (n > ACCOUNT_SEGMENT_MAX)
		n = ACCOUNT_SEGMENT_MAX; /* cut: it is no account either way, auth says so */
	memcpy(account, rest + 1, n);
	account[n] = '\0';
	if (ret_tokens)
		*ret_tokens = tokens;
	return sub;
}

static void cloudflare_handle(Api *a, HttpRequest *req, const char *rest)
{
	char account[ACCOUNT_SEGMENT_MAX + 1];
	bool tokens;
	const char *sub = account_of(rest, account, &tokens);
	ApiError e;

	if (!sub) {
		apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI");
		cf_render_error(req, &e);
		return;
	}
	if (tokens)
		cloudflare_tokens(a, req, account, sub);
	else
		handle_pcaps(a, req, account, sub);
}

/* Every route here that reads a body needs write on the path's account (a
 * GET with a body: read); the body is JSON. */
static ApiBody cloudflare_before_body(Api *a, HttpRequest *req, const char *method, const char *rest)
{
	char account[ACCOUNT_SEGMENT_MAX + 1];
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	ApiError e;

	if (!account_of(rest, account, NULL) ||
	    auth_check(api_service(a), req, account, get ? SCOPE_READ : SCOPE_WRITE, NULL, NULL, &e) < 0)
		return API_BODY_REFUSED;
	return API_BODY_JSON;
}

const ApiDialect cloudflare_dialect = {
	.name = "cloudflare",
	.handle = cloudflare_handle,
	.render_error = cf_render_error,
	.before_body = cloudflare_before_body,
};
