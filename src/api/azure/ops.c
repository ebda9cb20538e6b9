/* SPDX-License-Identifier: MIT */
/*
 * Long-running operations. ARM clients poll a URL the first answer gives:
 * Azure-AsyncOperation for a create ({"status": …} bodies), Location for
 * queryStatus, stop and delete (the HTTP status says "not yet": 202). The
 * URLs are absolute, built from the request's Host (what the client used and
 * its certificate matched), under the same subscription:
 *
 *   …/subscriptions/{sub}/providers/Microsoft.Network/locations/pcapd/
 *       operations/create-{id}              InProgress → Succeeded | Failed
 *       operationResults/query-{id}-{ms}    202 while gathering → 200 + the status
 *       operationResults/stop-{id}          202 until the capture ended → 200
 *       operationResults/delete-{id}        202 until the capture ended → 204
 *
 * An operation is its capture's state, read when polled: nothing is stored
 * for it, so a controller restart or a second controller answers the same.
 * "Gathering" a status means waiting (at most AZ_GATHER_MAX_MS from the
 * query) until every agent capturing for it has reported since the query,
 * so that the counters answered are no older than the question. Poll
 * answers carry no Retry-After: the SDK would take a non-zero one as its
 * interval for the rest of the operation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/azure/azure-int.h"
#include "common/timefmt.h"

#define AZ_LOCATION "pcapd"
#define AZ_GATHER_MAX_MS 5000
#define URL_MAX 1024

static const char *const kind_names[] = {
	[AZ_OP_CREATE] = "create",
	[AZ_OP_QUERY] = "query",
	[AZ_OP_STOP] = "stop",
	[AZ_OP_DELETE] = "delete",
};

static int64_t now_ms(void)
{
	return (int64_t)(now_realtime_ns() / 1000000u);
}

void azure_op_headers(AzCall *c, AzOpKind kind, const char *id)
{
	char base[300], op[AZ_OP_MAX + 1], url[URL_MAX];
	int n;

	arm_base_url(c->req, base, sizeof(base));
	if (kind == AZ_OP_QUERY)
		snprintf(op, sizeof(op), "query-%s-%lld", id, (long long)now_ms());
	else
		snprintf(op, sizeof(op), "%s-%s", kind_names[kind], id);
	n = snprintf(url, sizeof(url),
		     "%s/subscriptions/%s/providers/Microsoft.Network/locations/%s/%s/%s?api-version=%s", base, c->sub,
		     AZ_LOCATION, kind == AZ_OP_CREATE ? "operations" : "operationResults", op, c->version);
	if (n > 0 && (size_t)n < sizeof(url))
		http_add_header(c->req, kind == AZ_OP_CREATE ? "Azure-AsyncOperation" : "Location", url);
	http_add_header(c->req, "Retry-After", "1");
}

/* "<kind>-<32 hex>[-<ms>]" into its parts; false when it is not one. */
static bool parse_op(const char *op, bool async, AzOpKind *ret_kind, char id[JOB_ID_LEN + 1], int64_t *ret_ms)
{
	const char *dash = strchr(op, '-');
	size_t klen = dash ? (size_t)(dash - op) : 0;
	size_t k;

	for (k = 0; k < ARRAY_SIZE(kind_names); k++)
		if (klen == strlen(kind_names[k]) && strncmp(op, kind_names[k], klen) == 0)
			break;
	if (k == ARRAY_SIZE(kind_names) || (k == AZ_OP_CREATE) != async)
		return false;
	op = dash + 1;
	if (strlen(op) < JOB_ID_LEN || !job_id_valid(op, JOB_ID_LEN))
		return false;
	job_id_lower(op, id);
	op += JOB_ID_LEN;
	*ret_ms = 0;
	if (k == AZ_OP_QUERY) {
		uint64_t ms;

		if (op[0] != '-' || parse_u64(op + 1, strlen(op + 1), 0, INT64_MAX / 1000000, &ms) < 0)
			return false;
		*ret_ms = (int64_t)ms;
	} else if (op[0]) {
		return false;
	}
	*ret_kind = (AzOpKind)k;
	return true;
}

/* The code of a failure the capture's parts show (Failed create). */
static const char *failure_code(const JobPart *parts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (parts[i].state == PART_LOST)
			return "AgentStopped";
		if (parts[i].state != PART_FAILED)
			continue;
		switch (parts[i].failure) {
		case PART_FAIL_CAPTURE:
			return "CaptureFailed";
		case PART_FAIL_FILE:
			return "LocalFileFailed";
		case PART_FAIL_STORAGE:
			return "StorageFailed";
		default:
			return "InternalError";
		}
	}
	return "InternalError";
}

static json_t *time_json(int64_t ns)
{
	char buf[TIMEFMT_MAX];

	timefmt_rfc3339(ns, buf);
	return json_string(buf);
}

/* The Azure-AsyncOperation resource of a create. */
static void answer_create(AzCall *c, const Job *j, const JobPart *parts, size_t n)
{
	const char *state = azure_provisioning_state(j);
	const char *status = strcmp(state, "Updating") == 0 ? "InProgress" : state;
	char id[URL_MAX];
	json_t *o;

	snprintf(id, sizeof(id), "/subscriptions/%s/providers/Microsoft.Network/locations/%s/operations/%s", c->sub,
		 AZ_LOCATION, c->op);
	o = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "name", c->op, "status", status, "startTime",
		      time_json(j->submitted_ns));
	if (o && strcmp(status, "InProgress") != 0 &&
	    json_object_set_new(o, "endTime", time_json(j->started_ns ? j->started_ns : j->finished_ns)) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (o && strcmp(status, "Failed") == 0 &&
	    json_object_set_new(o, "error",
				json_pack("{s:s, s:s}", "code", failure_code(parts, n), "message",
					  j->error_message ? j->error_message : "the capture failed")) < 0) {
		json_decref(o);
		o = NULL;
	}
	arm_json(c->req, 200, o);
}

void azure_op_answer(AzCall *c, bool async)
{
	char id[JOB_ID_LEN + 1];
	JobPart *parts = NULL;
	bool gathered = true;
	AzOpKind kind;
	size_t n = 0;
	int64_t ms;
	ApiError e;
	Job j = {0};
	int r;

	if (!parse_op(c->op, async, &kind, id, &ms)) {
		apierror_set(&e, API_ERR_NOT_FOUND, NULL, "no operation %.100s", c->op);
		arm_error(c->req, &e, "NotFound", "");
		return;
	}
	if (kind == AZ_OP_QUERY && now_ms() - ms < AZ_GATHER_MAX_MS)
		r = service_job_gathered(c->svc, c->account, id, ms * 1000000, &gathered, &j, &parts, &n, &e);
	else
		r = service_job_get(c->svc, c->account, id, &j, &parts, &n, &e);
	if (r < 0) {
		arm_error(c->req, &e, e.kind == API_ERR_NOT_FOUND ? "NotFound" : NULL, "");
		return;
	}
	switch (kind) {
	case AZ_OP_CREATE:
		answer_create(c, &j, parts, n);
		break;
	case AZ_OP_QUERY:
		if (!job_named(&j)) {
			apierror_set(&e, API_ERR_NOT_FOUND, NULL, "the packet capture was deleted");
			arm_error(c->req, &e, NULL, "");
		} else if (!gathered) {
			http_respond(c->req, 202, NULL, NULL, 0);
		} else {
			arm_json(c->req, 200, azure_render_status(&j, parts, n));
		}
		break;
	case AZ_OP_STOP:
	case AZ_OP_DELETE:
		if (!job_status_terminal(j.status))
			http_respond(c->req, 202, NULL, NULL, 0);
		else
			http_respond(c->req, kind == AZ_OP_STOP ? 200 : 204, NULL, NULL, 0);
		break;
	}
	parts_free(parts, n);
	job_done(&j);
}
