/* SPDX-License-Identifier: MIT */
/*
 * The objects the Azure SDK reads (azure.h), from the capture model: one
 * function per object, so that create, get, list and the status query never
 * disagree on a field.
 *
 * The model's status as Azure shows it:
 *
 *   model status             provisioningState     packetCaptureStatus
 *   pending                  Updating              NotStarted
 *   running, conversion_*    Succeeded             Running (the capture is over
 *                                                  on the agents but the
 *                                                  files are not delivered)
 *   success                  Succeeded             Stopped (+ stopReason)
 *   failed, every part done  Succeeded             Stopped (+ stopReason)
 *   failed otherwise         Failed if no agent    Error (+ packetCaptureError)
 *                            ever started, else
 *                            Succeeded
 *
 * A share's state in packetCaptureError: failed by what failed (the
 * capture: CaptureFailed, its file: LocalFileFailed, its bucket:
 * StorageFailed), lost: AgentStopped, upload_failed (captured and kept on
 * the agent, but the blob was not written): StorageFailed. captured and
 * uploading are still Running: the capture is not delivered yet. A share
 * still running (or uploading) with an error is a continuous capture one of
 * whose files did not reach its blob: StorageFailed while the capture goes
 * on (the share's error names the file; the agent reports no other error
 * before its share ends).
 *
 * "failed, every part done" is a capture that saw no packet: Cloudflare calls
 * that a failure; for Azure it is a session that stopped empty.
 *
 * Beyond the schema, "pcapd" in properties (and in the status) carries the
 * capture's id in pcapd (what pcapctl and the Cloudflare dialect call it),
 * the model's status, counters with kernel drops and, where the parts were
 * read, each agent's share. The SDK drops unknown members, so they are for
 * REST users and people.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/azure/azure.h"
#include "api/jsonval.h"
#include "common/timefmt.h"

/* Each setter takes a new reference; true on failure. */
static bool set(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v) < 0;
}

static bool set_u64(json_t *o, const char *key, uint64_t v)
{
	return set(o, key, json_integer((json_int_t)(v > INT64_MAX ? INT64_MAX : v)));
}

/* ISO 8601 UTC with milliseconds, as Azure writes times. */
static json_t *time_string(int64_t ns)
{
	char buf[TIMEFMT_MAX];

	timefmt_rfc3339(ns, buf);
	/* "2021-12-20T17:29:20.641845Z" → "2021-12-20T17:29:20.641Z" */
	if (strlen(buf) == 27 && buf[19] == '.') {
		buf[23] = 'Z';
		buf[24] = '\0';
	}
	return json_string(buf);
}

static bool every_part_done(const JobPart *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (parts[i].state != PART_DONE)
			return false;
	return n > 0;
}

const char *azure_provisioning_state(const Job *j)
{
	if (j->started_ns)
		return "Succeeded";
	if (j->status == JOB_FAILED)
		return "Failed";
	return j->status == JOB_SUCCESS ? "Succeeded" : "Updating";
}

char *azure_capture_id(const Job *j)
{
	char sub[AZ_SUBSCRIPTION_LEN + 1];
	char *out;
	int n;

	if (!job_named(j))
		return NULL;
	azure_subscription_of(j->account, sub);
	n = asprintf(&out,
		     "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s/"
		     "packetCaptures/%s",
		     sub, j->name.group, j->name.watcher, j->name.name);
	return n < 0 ? NULL : out;
}

/* W/"<uuid>": the SHA-256 of what the resource shows that can change. */
static json_t *etag(const Job *j)
{
	char text[128], tag[64];
	uint8_t h[32];
	size_t k = 0;
	int n = snprintf(text, sizeof(text), "%s/%s/%d", j->id, azure_provisioning_state(j), (int)j->status);

	auth_hash(text, n > 0 ? (size_t)n : 0, h);
	k = (size_t)snprintf(tag, sizeof(tag), "W/\"");
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			tag[k++] = '-';
		k += (size_t)snprintf(tag + k, sizeof(tag) - k, "%02x", h[i]);
	}
	snprintf(tag + k, sizeof(tag) - k, "\"");
	return json_string(tag);
}

static json_t *render_agents(const JobPart *parts, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		const JobPart *p = &parts[i];
		json_t *o = json_object();

		if (!o || set(o, "name", json_string(p->agent)) ||
		    set(o, "status", json_string(part_state_to_string(p->state))) ||
		    set_u64(o, "packets", p->packets) || set_u64(o, "bytes", p->bytes) ||
		    set_u64(o, "kernelDrops", p->drops) ||
		    set(o, "stopReason", json_string(job_stop_to_string(p->stop_reason))) ||
		    (p->state == PART_FAILED && set(o, "failure", json_string(part_failure_to_string(p->failure)))) ||
		    set(o, "error", p->error ? jsonval_string(p->error) : json_null()) ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(o);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* The "pcapd" extension: the capture in pcapd's words. */
static json_t *extension(const Job *j, const JobPart *parts, size_t n)
{
	json_t *o = json_object();

	if (!o || set(o, "id", json_string(j->id)) || set(o, "status", json_string(job_status_to_string(j->status))) ||
	    set_u64(o, "packets", j->packets) || set_u64(o, "bytes", j->bytes) || set_u64(o, "kernelDrops", j->drops) ||
	    set(o, "stopReason", json_string(job_stop_to_string(j->stop_reason))) ||
	    set(o, "error", j->error_message ? jsonval_string(j->error_message) : json_null()) ||
	    (parts && set(o, "agents", render_agents(parts, n)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *azure_render_capture(const Job *j, const JobPart *parts, size_t n_parts)
{
	json_t *o = json_object(), *props = j->request ? json_loads(j->request, 0, NULL) : NULL;
	char *id = azure_capture_id(j);

	if (!props || !json_is_object(props)) {
		json_decref(props);
		props = json_object(); /* a request that did not survive would be a bug elsewhere */
	}
	if (!o || !props || !id || set(props, "provisioningState", json_string(azure_provisioning_state(j))) ||
	    set(props, "pcapd", extension(j, parts, n_parts)) || set(o, "name", json_string(j->name.name)) ||
	    set(o, "id", json_string(id)) || set(o, "etag", etag(j))) {
		json_decref(props);
		json_decref(o);
		free(id);
		return NULL;
	}
	free(id);
	if (set(o, "properties", props)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *capture_status(const Job *j, const JobPart *parts, size_t n)
{
	switch (j->status) {
	case JOB_PENDING:
		return "NotStarted";
	case JOB_SUCCESS:
		return "Stopped";
	case JOB_FAILED:
		return every_part_done(parts, n) ? "Stopped" : "Error";
	default:
		return "Running";
	}
}

static const char *stop_reason(JobStop s)
{
	switch (s) {
	case JOB_STOP_TIME:
		return "TimeExceeded";
	case JOB_STOP_BYTES:
		return "TotalBytesExceeded";
	case JOB_STOP_PACKETS:
		return "PacketsExceeded";
	case JOB_STOP_USER:
		return "StoppedByUser";
	case JOB_STOP_SHUTDOWN:
		return "AgentStopped"; /* the agent was shut down and kept what it had captured */
	default:
		return "";
	}
}

static const char *part_error(const JobPart *p)
{
	static const char *const by_failure[] = {
		[PART_FAIL_NONE] = "InternalError",     [PART_FAIL_CAPTURE] = "CaptureFailed",
		[PART_FAIL_FILE] = "LocalFileFailed",   [PART_FAIL_STORAGE] = "StorageFailed",
		[PART_FAIL_INTERNAL] = "InternalError",
	};

	if (p->state == PART_LOST)
		return "AgentStopped";
	if (p->state == PART_UPLOAD_FAILED)
		return "StorageFailed"; /* captured, kept on the agent, not in the blob (retry-upload) */
	if (!part_state_terminal(p->state) && p->error && p->error[0])
		return "StorageFailed"; /* a continuous capture's file that did not reach its blob */
	if (p->state != PART_FAILED)
		return NULL;
	return (unsigned)p->failure < ARRAY_SIZE(by_failure) ? by_failure[p->failure] : "InternalError";
}

/* packetCaptureError: each kind once, in the order the parts show them. */
static json_t *capture_errors(const JobPart *parts, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		const char *e = part_error(&parts[i]);
		bool dup = false;
		size_t k;
		json_t *v;

		if (!e)
			continue;
		json_array_foreach(arr, k, v)
		{
			dup = dup || strcmp(json_string_value(v), e) == 0;
		}
		if (!dup && json_array_append_new(arr, json_string(e)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *azure_render_status(const Job *j, const JobPart *parts, size_t n_parts)
{
	const char *status = capture_status(j, parts, n_parts);
	json_t *o = json_object();
	char *id = azure_capture_id(j);
	bool stopped = strcmp(status, "Stopped") == 0;

	if (!o || !id || set(o, "name", json_string(j->name.name)) || set(o, "id", json_string(id)) ||
	    (j->started_ns && set(o, "captureStartTime", time_string(j->started_ns))) ||
	    set(o, "packetCaptureStatus", json_string(status)) ||
	    set(o, "stopReason", json_string(stopped ? stop_reason(j->stop_reason) : "")) ||
	    set(o, "packetCaptureError", capture_errors(parts, n_parts)) ||
	    set(o, "pcapd", extension(j, parts, n_parts))) {
		json_decref(o);
		free(id);
		return NULL;
	}
	free(id);
	return o;
}
