/* SPDX-License-Identifier: MIT */
/*
 * The objects the Cloudflare SDK reads (a PCAP, an Ownership). One
 * function per object, used by every endpoint that returns it, so that
 * create, get, list and stop can never disagree on a field.
 *
 * Fields beyond the schema (bytes_captured, kernel_drops, stop_reason,
 * packets_captured of a sample, packet_limit and packets_remaining, which the
 * docs' examples show, and, for get, agents) are pcapd's: the SDK
 * passes unknown fields through untouched. A full capture asked with the
 * docs' "colo" is answered with "colo" beside the schema's colo_name.
 *
 * A capture another dialect created is shown where Cloudflare's object can
 * say it (README, "One capture, two dialects"): a full capture with its
 * target in colo_name and its first bucket (or "") in destination_conf; what
 * filter_v1 cannot hold goes into pcapd's fields: "filter" (the filter model,
 * instead of filter_v1), "outputs" (when a file on the agents is one of
 * them), "continuous" and "azure" (the resource's name).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/cloudflare/cloudflare.h"
#include "api/cloudflare/envelope.h"
#include "bucket/bucket_uri.h"
#include "common/timefmt.h"

/* Each setter takes a new reference and reports failure; the renderers chain
 * them with || and free the half-built object on the first failure. */
static bool set(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v) < 0;
}

static bool set_str(json_t *o, const char *key, const char *s)
{
	return set(o, key, envelope_string(s ? s : ""));
}

/* A destination_conf as every answer shows it: secrets REDACTED. */
static bool set_conf(json_t *o, const char *key, const char *conf)
{
	char *shown = bucket_uri_redact_dup(conf ? conf : "");
	bool failed = !shown || set_str(o, key, shown);

	free(shown);
	return failed;
}

static bool set_u64(json_t *o, const char *key, uint64_t v)
{
	/* JSON numbers the SDK reads are doubles; counters stay far below 2^53. */
	return set(o, key, json_integer((json_int_t)v));
}

static bool set_time(json_t *o, const char *key, int64_t ns)
{
	char buf[TIMEFMT_MAX];

	timefmt_rfc3339(ns, buf);
	return set(o, key, json_string(buf));
}

/* A stored JSON object; {} when none (or unreadable, which would be a bug
 * elsewhere: the object is still well formed). */
static json_t *filter_object(const char *text)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	if (v && json_is_object(v))
		return v;
	json_decref(v);
	return json_object();
}

static bool has_file_output(const Job *j)
{
	for (size_t i = 0; i < j->n_outputs; i++)
		if (j->outputs[i].kind == JOB_OUTPUT_FILE)
			return true;
	return false;
}

static json_t *render_outputs(const Job *j)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < j->n_outputs; i++)
		if (json_array_append_new(arr,
					  json_pack("{s:s, s:o}", "kind", job_output_kind_to_string(j->outputs[i].kind),
						    "target", envelope_string(j->outputs[i].target))) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	return arr;
}

/* pcapd's fields for what filter_v1, destination_conf and time_limit cannot
 * say of a capture another dialect made. true on failure. */
static bool set_foreign(json_t *o, const Job *j)
{
	const JobContinuous *c = &j->continuous;

	if (!j->filter_json && j->filter_model && set(o, "filter", filter_object(j->filter_model)))
		return true;
	if (has_file_output(j) && set(o, "outputs", render_outputs(j)))
		return true;
	if (c->on &&
	    set(o, "continuous",
		json_pack("{s:b, s:I, s:I, s:I}", "ring", c->ring, "file_count", (json_int_t)c->file_count, "file_size",
			  (json_int_t)c->file_size, "session_limit", (json_int_t)c->session_limit_s)))
		return true;
	if (job_named(j) &&
	    set(o, "azure",
		json_pack("{s:o, s:o, s:o}", "resource_group", envelope_string(j->name.group), "network_watcher",
			  envelope_string(j->name.watcher), "name", envelope_string(j->name.name))))
		return true;
	return false;
}

/* packets_remaining, in the docs' examples: how many packets the capture may
 * still take before its packet_limit, packet_limit − packets_captured floored
 * at 0 (packets_captured sums every agent's share, each of which stops at
 * packet_limit on its own); null without a packet_limit. */
static bool set_remaining(json_t *o, const Job *j)
{
	if (!j->packet_limit)
		return set(o, "packets_remaining", json_null());
	return set_u64(o, "packets_remaining", j->packets < j->packet_limit ? j->packet_limit - j->packets : 0);
}

/* What the request spelt its own way (validate.c keeps it in echo_json: a
 * "colo" asked with the docs' key), added where no field of the same name is
 * set. An unreadable text (a bug elsewhere) adds nothing. */
static bool set_echo(json_t *o, const char *text)
{
	json_t *echo = text ? json_loads(text, 0, NULL) : NULL;
	const char *key;
	json_t *v;
	bool failed = false;

	json_object_foreach(echo, key, v)
	{
		if (!json_object_get(o, key) && json_object_set(o, key, v) < 0)
			failed = true;
	}
	json_decref(echo);
	return failed;
}

static json_t *render_parts(const JobPart *parts, size_t n)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const JobPart *p = &parts[i];
		json_t *o = json_object();

		if (!o || set_str(o, "name", p->agent) || set_str(o, "status", part_state_to_string(p->state)) ||
		    set_u64(o, "packets", p->packets) || set_u64(o, "bytes", p->bytes) ||
		    set_u64(o, "kernel_drops", p->drops) ||
		    set(o, "object", p->object ? envelope_string(p->object) : json_null()) ||
		    set(o, "error", p->error ? envelope_string(p->error) : json_null()) ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(o);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *cloudflare_render_pcap(const Job *j, bool with_agents, const JobPart *parts, size_t n_parts)
{
	bool full = j->type == JOB_FULL;
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (set_str(o, "id", j->id) || set_str(o, "type", job_type_to_string(j->type)) ||
	    set_str(o, "system", "magic-transit") || set_str(o, "status", job_status_to_string(j->status)) ||
	    set_time(o, "submitted", j->submitted_ns) || set_u64(o, "time_limit", j->time_limit_s) ||
	    ((j->filter_json || !j->filter_model) && set(o, "filter_v1", filter_object(j->filter_json))) ||
	    set_foreign(o, j))
		goto fail;
	if (!full && set_time(o, "offset_time", j->offset_time_ns))
		goto fail;
	if (j->packet_limit && set_u64(o, "packet_limit", j->packet_limit))
		goto fail;
	if (!full && (set_u64(o, "packets_captured", j->packets) || set_remaining(o, j)))
		goto fail;
	if (full) {
		if ((j->byte_limit && set_u64(o, "byte_limit", j->byte_limit)) ||
		    set_str(o, "colo_name", j->colo_name) || set_conf(o, "destination_conf", job_bucket(j)) ||
		    set_u64(o, "packets_captured", j->packets) || set_remaining(o, j))
			goto fail;
		if (j->stop_requested_ns && set_time(o, "stop_requested", j->stop_requested_ns))
			goto fail;
	}
	if (set_echo(o, j->echo_json))
		goto fail;
	if (j->error_message && set_str(o, "error_message", j->error_message))
		goto fail;
	if (set_u64(o, "bytes_captured", j->bytes) || set_u64(o, "kernel_drops", j->drops) ||
	    set_str(o, "stop_reason", job_stop_to_string(j->stop_reason)))
		goto fail;
	if (with_agents && set(o, "agents", render_parts(parts, n_parts)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *cloudflare_render_ownership(const BucketRow *b)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (set_str(o, "id", b->id) || set_conf(o, "destination_conf", b->destination_conf) ||
	    set_str(o, "filename", b->filename) || set_str(o, "status", bucket_status_to_string(b->status)) ||
	    set_time(o, "submitted", b->submitted_ns) ||
	    /* The docs show "" for a bucket not validated yet. */
	    (b->validated_ns ? set_time(o, "validated", b->validated_ns) : set_str(o, "validated", ""))) {
		json_decref(o);
		return NULL;
	}
	return o;
}
