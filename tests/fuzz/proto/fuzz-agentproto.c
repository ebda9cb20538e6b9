/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for src/proto (and the filter model's neutral form it carries).
 * Byte 0 picks the reader, the rest is its input:
 *   0 poll answer (agent), 1 report answer (agent), 2 job record (agent),
 *   3 report (controller), 4 filter model, 5 stream answer (agent),
 *   6 upload grant (agent), 7 upload request (controller).
 * Every reader must refuse or accept without crashing; what the agent reads
 * from a poll answer, written again by the controller's side, must read back
 * the same (starts without an error); an accepted filter model or upload
 * grant, written again, must read back the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/filtermodel.h"
#include "proto/agentproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_request(const AgentSignedRequest *a, const AgentSignedRequest *b)
{
	if (strcmp(a->method, b->method) != 0 || strcmp(a->header, b->header) != 0 || !a->url != !b->url ||
	    (a->url && strcmp(a->url, b->url) != 0))
		abort();
}

static void same_grant(const AgentUploadGrant *a, const AgentUploadGrant *b)
{
	if (a->store != b->store || a->expires_in_s != b->expires_in_s || a->part_size != b->part_size ||
	    strcmp(a->upload_id, b->upload_id) != 0 || a->first_part != b->first_part || a->n_parts != b->n_parts)
		abort();
	same_request(&a->create, &b->create);
	same_request(&a->complete, &b->complete);
	same_request(&a->abort, &b->abort);
	same_request(&a->check, &b->check);
	for (size_t i = 0; i < a->n_parts; i++)
		same_request(&a->parts[i], &b->parts[i]);
}

static void grant_roundtrip(const char *p, size_t n)
{
	AgentUploadGrant g = {0}, back = {0};
	char *text = NULL;
	ErrBuf err;

	if (agentproto_grant_parse(p, n, &g, &err) < 0)
		return;
	if (agentproto_grant_build(&g, &text, &err) == 0) {
		if (agentproto_grant_parse(text, strlen(text), &back, &err) < 0)
			abort();
		same_grant(&g, &back);
	}
	free(text);
	agentproto_grant_done(&g);
	agentproto_grant_done(&back);
}

static void same_spec(const AgentJobSpec *a, const AgentJobSpec *b)
{
	if (strcmp(a->id, b->id) != 0 || a->sample != b->sample || strcmp(a->filter, b->filter) != 0 ||
	    a->packet_limit != b->packet_limit || a->n_outputs != b->n_outputs || b->error[0])
		abort();
	if (a->sample) {
		if (a->from_ns != b->from_ns || a->to_ns != b->to_ns || a->deadline_ms != b->deadline_ms)
			abort();
		return;
	}
	if (a->snaplen != b->snaplen || a->time_limit_s != b->time_limit_s || a->byte_limit != b->byte_limit ||
	    a->attempt != b->attempt || memcmp(&a->continuous, &b->continuous, sizeof(a->continuous)) != 0)
		abort();
	for (size_t i = 0; i < a->n_outputs; i++) {
		if (a->outputs[i].kind != b->outputs[i].kind ||
		    strcmp(a->outputs[i].target, b->outputs[i].target) != 0 ||
		    strcmp(a->outputs[i].object, b->outputs[i].object) != 0 ||
		    (a->outputs[i].upload == NULL) != (b->outputs[i].upload == NULL))
			abort();
		if (a->outputs[i].upload)
			same_grant(a->outputs[i].upload, b->outputs[i].upload);
	}
}

static void poll_roundtrip(const char *p, size_t n)
{
	AgentPollAnswer a = {0}, again = {0}, back = {0};
	char *text = NULL;
	ErrBuf err;

	if (agentproto_poll_parse(p, n, &a, &err) < 0)
		return;
	/* The starts the agent could use, as the controller would write them. */
	again.start = calloc(a.n_start + 1, sizeof(*again.start));
	if (!again.start)
		goto out;
	for (size_t i = 0; i < a.n_start; i++)
		if (!a.start[i].error[0])
			again.start[again.n_start++] = a.start[i];
	again.stop = a.stop;
	again.n_stop = a.n_stop;
	again.streams = a.streams;
	again.n_streams = a.n_streams;
	if (agentproto_poll_build(&again, &text, &err) == 0) {
		if (agentproto_poll_parse(text, strlen(text), &back, &err) < 0 || back.n_start != again.n_start ||
		    back.n_stop != again.n_stop || back.n_streams != again.n_streams)
			abort();
		for (size_t i = 0; i < back.n_streams; i++)
			if (memcmp(&back.streams[i], &again.streams[i], sizeof(back.streams[i])) != 0)
				abort();
		for (size_t i = 0; i < back.n_start; i++)
			same_spec(&again.start[i], &back.start[i]);
	}
	agentproto_poll_done(&back);
	free(text);
	free(again.start);
out:
	agentproto_poll_done(&a);
}

static void filter_roundtrip(const char *p, size_t n)
{
	Filter f = {0}, g = {0};
	char *text = NULL, *again = NULL;
	ErrBuf err;

	if (filtermodel_parse(p, n, &f, &err) < 0)
		return;
	if (filtermodel_to_text(&f, &text, &err) == 0) {
		if (filtermodel_parse(text, strlen(text), &g, &err) < 0 || filtermodel_to_text(&g, &again, &err) < 0 ||
		    strcmp(text, again) != 0)
			abort();
	}
	free(text);
	free(again);
	filter_done(&f);
	filter_done(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	ErrBuf err;

	if (size == 0)
		return 0;
	switch (data[0] % 8) {
	case 0:
		poll_roundtrip(p, n);
		break;
	case 1: {
		AgentReportAnswer a = {0};

		if (agentproto_report_answer_parse(p, n, &a, &err) == 0)
			agentproto_report_answer_done(&a);
		break;
	}
	case 2: {
		AgentJobReport r;

		(void)agentproto_job_from_json(p, n, &r, &err);
		break;
	}
	case 3: {
		json_t *body = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
		AgentReport rep = {0};

		if (body && agentproto_report_parse(body, &rep, &err) == 0)
			agentproto_report_done(&rep);
		json_decref(body);
		break;
	}
	case 6:
		grant_roundtrip(p, n);
		break;
	case 7: {
		json_t *body = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
		AgentUploadRequest q;

		if (body)
			(void)agentproto_upload_request_parse(body, &q, &err);
		json_decref(body);
		break;
	}
	case 4:
		filter_roundtrip(p, n);
		break;
	default: {
		AgentStreamAnswer a, b;
		char *text = NULL;

		/* What the agent reads, written again by the controller's side. */
		if (agentproto_stream_answer_parse(p, n, &a, &err) == 0 &&
		    agentproto_stream_answer_build(&a, &text, &err) == 0 &&
		    (agentproto_stream_answer_parse(text, strlen(text), &b, &err) < 0 || b.more != a.more ||
		     (a.more && b.offset != a.offset)))
			abort();
		free(text);
		break;
	}
	}
	return 0;
}
