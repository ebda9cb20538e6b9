/* SPDX-License-Identifier: MIT */
/*
 * The Azure Network Watcher dialect: the handlers behind /subscriptions/…
 * (README, "The Azure dialect"). They parse (parse.c), call the service
 * layer and render (render.c; ARM's answers in arm.c, long-running
 * operations in ops.c).
 *
 *   …/resourceGroups/{group}/providers/Microsoft.Network/networkWatchers/
 *       {watcher}/packetCaptures                     GET list
 *       {watcher}/packetCaptures/{name}              PUT create, GET, DELETE
 *       {watcher}/packetCaptures/{name}/queryStatus  POST
 *       {watcher}/packetCaptures/{name}/stop         POST
 *   …/providers/Microsoft.Network/locations/{location}/
 *       operations/{op}, operationResults/{op}       GET (ops.c)
 *
 * Path segments compare without regard to case, as ARM's do (the SDK
 * percent-encodes names; the HTTP layer has decoded them). Every request goes
 * through the same checks in this order, so that what a client learns never
 * depends on what it may not see: route (404 InvalidResourceType) → method
 * (405, Allow) → subscription id (400 InvalidSubscriptionId) → credentials
 * (401, 403 AuthorizationFailed: the subscription is the token's account) →
 * api-version (400) → names in the path (400 InvalidResourceName) → body.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "api/azure/azure-int.h"

#define SEGMENTS_MAX 11
#define SEGMENT_MAX 255
#define LIST_PAGE 100
#define REQUEST_ID_MAX 128

typedef enum AzRoute {
	AZ_R_CAPTURES,  /* GET list */
	AZ_R_CAPTURE,   /* PUT, GET, DELETE */
	AZ_R_QUERY,     /* POST queryStatus */
	AZ_R_STOP,      /* POST stop */
	AZ_R_OPERATION, /* GET operations/{op} */
	AZ_R_OP_RESULT, /* GET operationResults/{op} */
	AZ_R_NONE,
} AzRoute;

static const char *const route_allow[] = {
	[AZ_R_CAPTURES] = "GET",  [AZ_R_CAPTURE] = "GET, PUT, DELETE",
	[AZ_R_QUERY] = "POST",    [AZ_R_STOP] = "POST",
	[AZ_R_OPERATION] = "GET", [AZ_R_OP_RESULT] = "GET",
};

/* The route's segments: [0] subscription, then names at fixed places. */
typedef struct AzPath {
	char seg[SEGMENTS_MAX][SEGMENT_MAX + 1];
	int n;
} AzPath;

/* Splits rest ("/a/b/…") into segments; false for an empty or overlong one
 * or too many. */
static bool split(const char *rest, AzPath *p)
{
	const char *s = rest;

	p->n = 0;
	if (*s != '/')
		return false;
	while (*s == '/') {
		const char *end = strchr(s + 1, '/');
		size_t len = end ? (size_t)(end - s - 1) : strlen(s + 1);

		if (len == 0 || len > SEGMENT_MAX || p->n == SEGMENTS_MAX)
			return false;
		memcpy(p->seg[p->n], s + 1, len);
		p->seg[p->n][len] = '\0';
		p->n++;
		s += len + 1;
	}
	return *s == '\0';
}

static bool is(const AzPath *p, int i, const char *word)
{
	return i < p->n && strcasecmp(p->seg[i], word) == 0;
}

static AzRoute route_of(const AzPath *p)
{
	/* {sub}/providers/Microsoft.Network/locations/{loc}/operations|operationResults/{op} */
	if (p->n == 7 && is(p, 1, "providers") && is(p, 2, "Microsoft.Network") && is(p, 3, "locations")) {
		if (is(p, 5, "operations"))
			return AZ_R_OPERATION;
		if (is(p, 5, "operationResults"))
			return AZ_R_OP_RESULT;
		return AZ_R_NONE;
	}
	/* {sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/packetCaptures[/{name}[/x]] */
	if (p->n < 8 || !is(p, 1, "resourceGroups") || !is(p, 3, "providers") || !is(p, 4, "Microsoft.Network") ||
	    !is(p, 5, "networkWatchers") || !is(p, 7, "packetCaptures"))
		return AZ_R_NONE;
	if (p->n == 8)
		return AZ_R_CAPTURES;
	if (p->n == 9)
		return AZ_R_CAPTURE;
	if (p->n == 10 && is(p, 9, "queryStatus"))
		return AZ_R_QUERY;
	if (p->n == 10 && is(p, 9, "stop"))
		return AZ_R_STOP;
	return AZ_R_NONE;
}

/* ---- handlers ---- */

static void fail(AzCall *c, const ApiError *e)
{
	const char *target = NULL;

	/* The model's field names in ARM's words. */
	if (strcmp(e->field, "target") == 0)
		target = "properties.target";
	else if (strcmp(e->field, "destination") == 0 || strcmp(e->field, "outputs") == 0)
		target = "properties.storageLocation.storagePath"; /* the only bucket output here */
	else if (strcmp(e->field, "name") == 0 || strcmp(e->field, "id") == 0)
		target = "packetCaptureName";
	arm_error(c->req, e, NULL, target);
}

static JobName path_name(AzCall *c)
{
	return (JobName){c->group, c->watcher, c->name};
}

static void answer_capture(AzCall *c, unsigned status, const Job *j, const JobPart *parts, size_t n)
{
	arm_json(c->req, status, azure_render_capture(j, parts, n));
}

/* A blob output needs the storage account's key on this controller
 * (--azure-storage); the parser checked the rest. */
static int check_blob(AzCall *c, const AzCreate *more, ApiError *e)
{
	if (more->has_blob && !service_azure_storage_known(c->svc, more->blob.account))
		return apierror_set(e, API_ERR_INVALID, "properties.storageLocation.storagePath",
				    "this controller does not hold the key of storage account %s: start it with "
				    "--azure-storage %s=KEY[@BLOB_ENDPOINT], or use filePath",
				    more->blob.account, more->blob.account);
	return 0;
}

static void capture_put(AzCall *c)
{
	JobName key = path_name(c);
	ErrBuf err = {{0}};
	AzCreate more = {0};
	Job j = {0}, old = {0};
	json_t *body;
	ApiError e;
	int r;

	body = api_request_json(c->req, API_MAX_BODY, &e);
	if (!body) {
		arm_error(c->req, &e, NULL, NULL); /* target: body */
		return;
	}
	r = azure_parse_create(body, c->account, &j, &more, &err);
	if (r < 0) {
		json_decref(body);
		arm_invalid(c->req, r, &err);
		return;
	}
	r = check_blob(c, &more, &e);
	json_decref(body);
	if (r < 0) {
		arm_error(c->req, &e, NULL, NULL);
		goto out;
	}
	memcpy(j.account, c->account, sizeof(j.account));
	if (job_name_set(&j.name, c->group, c->watcher, c->name) < 0) {
		apierror_set(&e, API_ERR_INTERNAL, NULL, "out of memory");
		fail(c, &e);
		goto out;
	}
	/* PUT is idempotent by name: the same request again (a retry after a
	 * connection reset, say) gets the capture it made; another one is a
	 * conflict, since a capture cannot be changed. */
	r = service_job_find_named(c->svc, c->account, &key, &old, NULL, NULL, &e);
	if (r == 0) {
		if (old.request && strcmp(old.request, j.request) == 0) {
			azure_op_headers(c, AZ_OP_CREATE, old.id);
			answer_capture(c, 200, &old, NULL, 0);
		} else {
			apierror_set(&e, API_ERR_CONFLICT, NULL,
				     "a packet capture named %s exists with other properties; captures cannot be "
				     "changed: delete it first",
				     c->name);
			arm_error(c->req, &e, "PacketCaptureAlreadyExists", "packetCaptureName");
		}
		goto out;
	}
	if (e.kind != API_ERR_NOT_FOUND) {
		fail(c, &e);
		goto out;
	}
	r = service_job_create(c->svc, &j, &e);
	if (r < 0 && e.kind == API_ERR_NO_TARGET) {
		ApiError az;

		/* The service's words (which agents are online) after Azure's. */
		apierror_set(&az, e.kind, e.field,
			     "The %s '%s' has no running pcapd agent (pcapd's AzureNetworkWatcherExtension): %s",
			     j.target_kind == JOB_TARGET_COLO ? "virtual machine scale set" : "virtual machine",
			     j.colo_name, e.msg);
		arm_error(c->req, &az, NULL, "properties.target");
	} else if (r < 0 && e.kind == API_ERR_CONFLICT) {
		arm_error(c->req, &e, "PacketCaptureAlreadyExists", "packetCaptureName");
	} else if (r < 0) {
		fail(c, &e);
	} else {
		azure_op_headers(c, AZ_OP_CREATE, j.id);
		answer_capture(c, 201, &j, NULL, 0);
	}
out:
	job_done(&old);
	job_done(&j);
}

static void capture_get(AzCall *c)
{
	JobName key = path_name(c);
	JobPart *parts = NULL;
	size_t n = 0;
	ApiError e;
	Job j = {0};

	if (service_job_find_named(c->svc, c->account, &key, &j, &parts, &n, &e) < 0) {
		fail(c, &e);
		return;
	}
	answer_capture(c, 200, &j, parts, n);
	parts_free(parts, n);
	job_done(&j);
}

/* $skiptoken: "<submitted_ns>.<id>" of the last capture of the page before. */
static bool parse_skiptoken(const char *t, JobCursor *ret)
{
	const char *dot = t ? strchr(t, '.') : NULL;
	uint64_t ns;

	if (!dot || parse_u64(t, (size_t)(dot - t), 0, INT64_MAX, &ns) < 0 || !job_id_valid(dot + 1, strlen(dot + 1)))
		return false;
	ret->submitted_ns = (int64_t)ns;
	job_id_lower(dot + 1, ret->id);
	return true;
}

static json_t *next_link(AzCall *c, const Job *last)
{
	char base[300], url[1024];
	int n;

	arm_base_url(c->req, base, sizeof(base));
	n = snprintf(url, sizeof(url),
		     "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s/"
		     "packetCaptures?api-version=%s&$skiptoken=%lld.%s",
		     base, c->sub, c->group, c->watcher, c->version, (long long)last->submitted_ns, last->id);
	return n > 0 && (size_t)n < sizeof(url) ? json_string(url) : NULL;
}

static void capture_list(AzCall *c)
{
	const char *token = http_req_query(c->req, "$skiptoken");
	JobCursor cur = {0};
	Job *jobs = NULL;
	size_t n = 0;
	json_t *arr, *doc;
	ApiError e;

	if (token && !parse_skiptoken(token, &cur)) {
		apierror_set(&e, API_ERR_INVALID, "$skiptoken", "not a token this list gave");
		arm_error(c->req, &e, "InvalidSkipToken", NULL);
		return;
	}
	if (service_job_list_named(c->svc, c->account, c->group, c->watcher, token ? &cur : NULL, LIST_PAGE, &jobs, &n,
				   &e) < 0) {
		fail(c, &e);
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, azure_render_capture(&jobs[i], NULL, 0)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	doc = arr ? json_pack("{s:o}", "value", arr) : NULL;
	/* A full page may have more after it. */
	if (doc && n == LIST_PAGE && json_object_set_new(doc, "nextLink", next_link(c, &jobs[n - 1])) < 0) {
		json_decref(doc);
		doc = NULL;
	}
	jobs_free(jobs, n);
	arm_json(c->req, 200, doc);
}

static void capture_query(AzCall *c)
{
	JobName key = path_name(c);
	ApiError e;
	Job j = {0};

	if (service_job_find_named(c->svc, c->account, &key, &j, NULL, NULL, &e) < 0) {
		fail(c, &e);
		return;
	}
	azure_op_headers(c, AZ_OP_QUERY, j.id);
	http_respond(c->req, 202, NULL, NULL, 0);
	job_done(&j);
}

static void capture_stop(AzCall *c)
{
	JobName key = path_name(c);
	Job j = {0}, stopped = {0};
	ApiError e;

	if (service_job_find_named(c->svc, c->account, &key, &j, NULL, NULL, &e) < 0) {
		fail(c, &e);
		return;
	}
	/* Stopping a capture that has ended is no error: the stop's outcome,
	 * a capture that is not running, holds. */
	if (service_job_stop(c->svc, c->account, j.id, &stopped, &e) < 0 && e.kind != API_ERR_CONFLICT) {
		fail(c, &e);
	} else {
		azure_op_headers(c, AZ_OP_STOP, j.id);
		http_respond(c->req, 202, NULL, NULL, 0);
	}
	job_done(&stopped);
	job_done(&j);
}

static void capture_delete(AzCall *c)
{
	JobName key = path_name(c);
	ApiError e;
	Job j = {0};

	if (service_job_delete_named(c->svc, c->account, &key, &j, &e) < 0) {
		/* ARM: deleting what does not exist succeeds, at once. */
		if (e.kind == API_ERR_NOT_FOUND)
			http_respond(c->req, 204, NULL, NULL, 0);
		else
			fail(c, &e);
		return;
	}
	azure_op_headers(c, AZ_OP_DELETE, j.id);
	http_respond(c->req, 202, NULL, NULL, 0);
	job_done(&j);
}

static void operation_get(AzCall *c)
{
	azure_op_answer(c, true);
}

static void operation_result_get(AzCall *c)
{
	azure_op_answer(c, false);
}

/* ---- dispatch ---- */

typedef struct AzOp {
	AzRoute route;
	const char *method;
	TokenScope scope;
	const char *name; /* in a 403 for too small a scope */
	void (*fn)(AzCall *c);
} AzOp;

static const AzOp ops[] = {
	{AZ_R_CAPTURES, "GET", SCOPE_READ, "list", capture_list},
	{AZ_R_CAPTURE, "PUT", SCOPE_WRITE, "create", capture_put},
	{AZ_R_CAPTURE, "GET", SCOPE_READ, "get", capture_get},
	{AZ_R_CAPTURE, "DELETE", SCOPE_WRITE, "delete", capture_delete},
	{AZ_R_QUERY, "POST", SCOPE_READ, "queryStatus", capture_query},
	{AZ_R_STOP, "POST", SCOPE_WRITE, "stop", capture_stop},
	{AZ_R_OPERATION, "GET", SCOPE_READ, "operation status", operation_get},
	{AZ_R_OP_RESULT, "GET", SCOPE_READ, "operation result", operation_result_get},
};

static void no_route(HttpRequest *req)
{
	ApiError e;

	apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI: no such resource type in Microsoft.Network");
	arm_error(req, &e, NULL, "");
}

/* The names in the path: 400 InvalidResourceName naming the bad one. */
static int take_names(AzCall *c, const AzPath *p, AzRoute route, ApiError *e)
{
	if (route == AZ_R_OPERATION || route == AZ_R_OP_RESULT) {
		if (strlen(p->seg[6]) > AZ_OP_MAX)
			return apierror_set(e, API_ERR_NOT_FOUND, "", "no operation %.100s", p->seg[6]);
		snprintf(c->op, sizeof(c->op), "%.*s", AZ_OP_MAX, p->seg[6]);
		return 0;
	}
	if (!azure_group_valid(p->seg[2]))
		return apierror_set(e, API_ERR_INVALID, "resourceGroupName",
				    "'%.100s' is not a resource group name (1..%u of letters, digits, '_', '-', '.', "
				    "'(', ')', not ending in '.')",
				    p->seg[2], AZ_GROUP_MAX);
	if (!azure_name_valid(p->seg[6]))
		return apierror_set(e, API_ERR_INVALID, "networkWatcherName",
				    "'%.100s' is not a resource name (1..%u of letters, digits, '_', '-', '.', "
				    "starting with a letter or digit, not ending in '.')",
				    p->seg[6], AZ_NAME_MAX);
	if (p->n > 8 && !azure_name_valid(p->seg[8]))
		return apierror_set(e, API_ERR_INVALID, "packetCaptureName",
				    "'%.100s' is not a resource name (1..%u of letters, digits, '_', '-', '.', "
				    "starting with a letter or digit, not ending in '.')",
				    p->seg[8], AZ_NAME_MAX);
	/* Lengths checked above. */
	snprintf(c->group, sizeof(c->group), "%.*s", (int)AZ_GROUP_MAX, p->seg[2]);
	snprintf(c->watcher, sizeof(c->watcher), "%.*s", (int)AZ_NAME_MAX, p->seg[6]);
	snprintf(c->name, sizeof(c->name), "%.*s", (int)AZ_NAME_MAX, p->n > 8 ? p->seg[8] : "");
	return 0;
}

static int check_version(AzCall *c, ApiError *e, const char **ret_code)
{
	const char *v = http_req_query(c->req, "api-version");
	int r = azure_api_version_check(v);

	*ret_code = NULL;
	if (r == -ENOENT) {
		*ret_code = "MissingApiVersionParameter";
		return apierror_set(e, API_ERR_INVALID, "",
				    "The api-version query parameter (?api-version=) is required for all requests.");
	}
	if (r == -EINVAL) {
		*ret_code = "InvalidApiVersionParameter";
		return apierror_set(e, API_ERR_INVALID, "", "The api-version '%.40s' is invalid: expected YYYY-MM-DD.",
				    v);
	}
	if (r < 0) {
		*ret_code = "NoRegisteredProviderFound";
		return apierror_set(e, API_ERR_INVALID, "",
				    "No registered resource provider found for API version '%.40s' and type "
				    "'networkWatchers/packetCaptures'. The supported api-versions are "
				    "'" AZ_API_VERSION_MIN "' and later.",
				    v);
	}
	c->version = v;
	return 0;
}

/* An x-ms-client-request-id of printable bytes is echoed, as ARM does. */
static void echo_request_id(HttpRequest *req)
{
	const char *id = http_req_header(req, "x-ms-client-request-id");
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > REQUEST_ID_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return;
	http_add_header(req, "x-ms-client-request-id", id);
}

/* rest = "/{sub}/…" (what follows "/subscriptions"). */
static void azure_handle(Api *a, HttpRequest *req, const char *rest)
{
	AzCall c = {.api = a, .svc = api_service(a), .req = req};
	const char *method = http_req_method(req), *code;
	const AzOp *op = NULL;
	AzPath *p;
	AzRoute route;
	ApiError e;

	p = malloc(sizeof(*p));
	if (!p) {
		apierror_set(&e, API_ERR_INTERNAL, NULL, "out of memory");
		arm_error(req, &e, NULL, "");
		return;
	}
	echo_request_id(req);
	route = split(rest, p) ? route_of(p) : AZ_R_NONE;
	if (route == AZ_R_NONE) {
		no_route(req);
		goto out;
	}
	/* HEAD is GET without the body (libmicrohttpd drops it). */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (ops[i].route == route && strcmp(ops[i].method, method) == 0)
			op = &ops[i];
	if (!op) {
		apierror_set(&e, API_ERR_METHOD, NULL,
			     "The requested resource does not support http method '%.16s'; "
			     "it takes %s.",
			     method, route_allow[route]);
		e.allow = route_allow[route];
		arm_error(req, &e, NULL, "");
		goto out;
	}
	if (!azure_account_of(p->seg[0], strlen(p->seg[0]), c.account)) {
		apierror_set(&e, API_ERR_INVALID, "",
			     "The provided subscription identifier '%.64s' is malformed or "
			     "invalid.",
			     p->seg[0]);
		arm_error(req, &e, "InvalidSubscriptionId", "");
		goto out;
	}
	azure_subscription_of(c.account, c.sub);
	if (auth_check(c.svc, req, c.account, op->scope, op->name, NULL, &e) < 0) {
		/* A token was sent but is not one: ARM says so in its own code. */
		arm_error(req, &e,
			  e.kind == API_ERR_UNAUTHENTICATED && http_req_header(req, "Authorization")
				  ? "InvalidAuthenticationToken"
				  : NULL,
			  "");
		goto out;
	}
	if (check_version(&c, &e, &code) < 0) {
		arm_error(req, &e, code, "");
		goto out;
	}
	if (take_names(&c, p, route, &e) < 0) {
		arm_error(req, &e, e.kind == API_ERR_INVALID ? "InvalidResourceName" : "NotFound", NULL);
		goto out;
	}
	op->fn(&c);
out:
	free(p);
}

static void azure_render_error(HttpRequest *req, const ApiError *e)
{
	arm_error(req, e, NULL, NULL);
}

/* Before any byte of a body is read (api.h): the body is JSON, and read only
 * when the request's credentials are good for its operation (the route's own
 * scope on the path's subscription); else handle() answers in its usual
 * order (404, 405, 400, 401, 403), without the body. */
static ApiBody azure_before_body(Api *a, HttpRequest *req, const char *method, const char *rest)
{
	char account[JOB_ID_LEN + 1];
	ApiBody kind = API_BODY_REFUSED;
	const AzOp *op = NULL;
	AzRoute route;
	ApiError e;
	AzPath *p;

	p = malloc(sizeof(*p));
	if (!p)
		return API_BODY_REFUSED; /* handle() says out of memory */
	route = split(rest, p) ? route_of(p) : AZ_R_NONE;
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; route != AZ_R_NONE && i < ARRAY_SIZE(ops); i++)
		if (ops[i].route == route && strcmp(ops[i].method, method) == 0)
			op = &ops[i];
	if (op && azure_account_of(p->seg[0], strlen(p->seg[0]), account) &&
	    auth_check(api_service(a), req, account, op->scope, op->name, NULL, &e) == 0)
		kind = API_BODY_JSON;
	free(p);
	return kind;
}

const ApiDialect azure_dialect = {
	.name = "azure",
	.handle = azure_handle,
	.render_error = azure_render_error,
	.before_body = azure_before_body,
};
