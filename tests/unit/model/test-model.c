/* SPDX-License-Identifier: MIT */
/* Unit tests for src/model (the job status machine, its invariants and
 * outputs, filter JSON, the filter model's neutral form, the neutral API
 * error) and src/common/timefmt (RFC 3339). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/timefmt.h"
#include "model/apierror.h"
#include "model/filterjson.h"
#include "model/filtermodel.h"
#include "model/job.h"

static JobPart part(const char *agent, PartState st, uint64_t packets)
{
	JobPart p = {0};

	memcpy(p.job_id, "0123456789abcdef0123456789abcdef", JOB_ID_LEN + 1);
	snprintf(p.agent, sizeof(p.agent), "%s", agent);
	p.state = st;
	p.packets = packets;
	return p;
}

static void test_aggregate_lifecycle(void **state)
{
	Job j = {.type = JOB_FULL, .status = JOB_PENDING};
	JobPart p[2] = {part("a", PART_ASSIGNED, 0), part("b", PART_ASSIGNED, 0)};

	(void)state;
	assert_false(job_aggregate(&j, p, 2, 1));
	assert_int_equal(j.status, JOB_PENDING);

	assert_true(part_apply(&p[0], PART_RUNNING, 5, 500, 1, JOB_STOP_NONE, NULL, NULL, 2));
	assert_true(job_aggregate(&j, p, 2, 2));
	assert_int_equal(j.status, JOB_RUNNING);
	assert_int_equal(j.packets, 5);
	assert_int_equal(j.drops, 1);

	/* one captured, one still running: running */
	assert_true(part_apply(&p[1], PART_RUNNING, 1, 10, 0, JOB_STOP_NONE, NULL, NULL, 3));
	assert_true(part_apply(&p[0], PART_CAPTURED, 7, 700, 1, JOB_STOP_TIME, NULL, NULL, 3));
	job_aggregate(&j, p, 2, 3);
	assert_int_equal(j.status, JOB_RUNNING);
	/* both captured: conversion pending */
	assert_true(part_apply(&p[1], PART_CAPTURED, 2, 20, 0, JOB_STOP_TIME, NULL, NULL, 4));
	assert_true(job_aggregate(&j, p, 2, 4));
	assert_int_equal(j.status, JOB_CONVERSION_PENDING);
	assert_string_equal(job_status_to_string(j.status), "conversion_pending");
	/* one uploading: conversion running, and it stays so while the other
	 * waits, then uploads, then is done */
	assert_true(part_apply(&p[0], PART_UPLOADING, 7, 700, 1, JOB_STOP_TIME, NULL, NULL, 5));
	assert_true(job_aggregate(&j, p, 2, 5));
	assert_int_equal(j.status, JOB_CONVERSION_RUNNING);
	part_apply(&p[0], PART_DONE, 7, 700, 1, JOB_STOP_TIME, "pcap_x_a.pcap", NULL, 5);
	job_aggregate(&j, p, 2, 5);
	assert_int_equal(j.status, JOB_CONVERSION_RUNNING); /* never back to conversion_pending */
	assert_true(part_apply(&p[1], PART_UPLOADING, 2, 20, 0, JOB_STOP_TIME, NULL, NULL, 5));
	job_aggregate(&j, p, 2, 5);
	assert_int_equal(j.status, JOB_CONVERSION_RUNNING);
	assert_int_equal(j.finished_ns, 0);
	/* both done: success, finished stamped, counters summed */
	part_apply(&p[1], PART_DONE, 2, 20, 0, JOB_STOP_TIME, "pcap_x_b.pcap", NULL, 5);
	assert_true(job_aggregate(&j, p, 2, 5));
	assert_int_equal(j.status, JOB_SUCCESS);
	assert_int_equal(j.packets, 9);
	assert_int_equal(j.bytes, 720);
	assert_int_equal(j.stop_reason, JOB_STOP_TIME);
	assert_int_equal(j.finished_ns, 5);
	assert_null(j.error_message);
	/* terminal: nothing moves it */
	p[0].state = PART_FAILED;
	assert_false(job_aggregate(&j, p, 2, 6));
	assert_int_equal(j.status, JOB_SUCCESS);
	job_done(&j);
	part_done(&p[0]);
	part_done(&p[1]);
}

static void test_part_never_backwards(void **state)
{
	JobPart p = part("a", PART_ASSIGNED, 0);

	(void)state;
	assert_true(part_apply(&p, PART_UPLOADING, 10, 100, 2, JOB_STOP_NONE, NULL, NULL, 1));
	/* a late "running" report with smaller counters changes nothing */
	assert_false(part_apply(&p, PART_RUNNING, 3, 30, 0, JOB_STOP_NONE, NULL, NULL, 2));
	assert_int_equal(p.state, PART_UPLOADING);
	assert_int_equal(p.packets, 10);
	assert_true(part_apply(&p, PART_DONE, 10, 100, 2, JOB_STOP_PACKETS, "o.pcap", NULL, 3));
	/* terminal parts ignore everything, including loss */
	assert_false(part_apply(&p, PART_FAILED, 99, 99, 9, JOB_STOP_ERROR, NULL, "boom", 4));
	assert_false(part_lose(&p, "gone", 5));
	assert_int_equal(p.state, PART_DONE);
	assert_string_equal(p.object, "o.pcap");
	assert_null(p.error);
	part_done(&p);
}

static void test_aggregate_failures(void **state)
{
	Job j = {.type = JOB_FULL, .status = JOB_RUNNING};
	JobPart p[2] = {part("a", PART_RUNNING, 3), part("b", PART_RUNNING, 0)};

	(void)state;
	assert_true(part_lose(&p[1], "stopped reporting", 1));
	job_aggregate(&j, p, 2, 1);
	assert_int_equal(j.status, JOB_RUNNING); /* a still runs */
	part_apply(&p[0], PART_DONE, 3, 30, 0, JOB_STOP_TIME, "x", NULL, 2);
	job_aggregate(&j, p, 2, 2);
	assert_int_equal(j.status, JOB_FAILED);
	assert_int_equal(j.stop_reason, JOB_STOP_LOST);
	assert_non_null(strstr(j.error_message, "agent b: stopped reporting"));
	job_done(&j);
	part_done(&p[0]);
	part_done(&p[1]);

	/* The zero-packet rule: a full capture that saw nothing fails with
	 * Cloudflare's message when its time ran out ... */
	Job k = {.type = JOB_FULL, .status = JOB_RUNNING};
	JobPart q = part("a", PART_DONE, 0);

	q.stop_reason = JOB_STOP_TIME;
	job_aggregate(&k, &q, 1, 3);
	assert_int_equal(k.status, JOB_FAILED);
	assert_string_equal(k.error_message, "No packets matched the filter in the time limit given. "
					     "Please modify the filter or try again.");
	assert_int_equal(k.stop_reason, JOB_STOP_TIME);
	assert_int_equal(k.finished_ns, 3);
	job_done(&k);

	/* ... and the same when the user stopped it */
	Job u = {.type = JOB_FULL, .status = JOB_RUNNING, .stop_requested_ns = 9};

	job_aggregate(&u, &q, 1, 3);
	assert_int_equal(u.status, JOB_FAILED);
	assert_int_equal(u.stop_reason, JOB_STOP_USER);
	assert_string_equal(u.error_message, "No packets matched the filter before the capture was stopped. "
					     "Please modify the filter or try again.");
	job_done(&u);

	/* ... and when its agent was shut down (agent_shutdown) */
	Job w = {.type = JOB_FULL, .status = JOB_RUNNING};

	q.stop_reason = JOB_STOP_SHUTDOWN;
	job_aggregate(&w, &q, 1, 3);
	assert_int_equal(w.status, JOB_FAILED);
	assert_int_equal(w.stop_reason, JOB_STOP_SHUTDOWN);
	assert_string_equal(w.error_message, "No packets matched the filter before the agent was stopped. "
					     "Please modify the filter or try again.");
	assert_string_equal(job_stop_to_string(w.stop_reason), "agent_shutdown");
	job_done(&w);

	/* one packet is enough */
	Job v = {.type = JOB_FULL, .status = JOB_RUNNING, .stop_requested_ns = 9};

	q.packets = 1;
	job_aggregate(&v, &q, 1, 3);
	assert_int_equal(v.status, JOB_SUCCESS);
	assert_null(v.error_message);
	job_done(&v);
}

/* An upload that ran out of its budget fails the job, keeps the capture
 * retryable; a retry reopens the job and only forward moves follow. */
static void test_upload_failed_and_retry(void **state)
{
	Job j = {.type = JOB_FULL, .status = JOB_RUNNING};
	JobPart p[2] = {part("a", PART_UPLOADING, 3), part("b", PART_UPLOADING, 4)};
	ErrBuf err = {{0}};

	(void)state;
	assert_string_equal(part_state_to_string(PART_UPLOAD_FAILED), "upload_failed");
	assert_true(part_state_terminal(PART_UPLOAD_FAILED));
	/* not failed yet: nothing to retry */
	assert_int_equal(job_retry_uploads(&j, p, 2, 1, &err), -EALREADY);
	assert_true(part_apply(&p[0], PART_DONE, 3, 30, 0, JOB_STOP_PACKETS, NULL, NULL, 2));
	assert_true(part_apply(&p[1], PART_UPLOAD_FAILED, 4, 40, 0, JOB_STOP_PACKETS, NULL,
			       "upload of pcap_x_b.pcap to s3://b: HTTP 503 SlowDown", 2));
	job_aggregate(&j, p, 2, 2);
	assert_int_equal(j.status, JOB_FAILED);
	assert_int_equal(j.stop_reason, JOB_STOP_ERROR);
	assert_non_null(strstr(j.error_message, "agent b: upload of pcap_x_b.pcap to s3://b: HTTP 503 SlowDown"));
	assert_int_equal(j.finished_ns, 2);
	/* terminal as failed is: a late report changes nothing */
	assert_false(part_apply(&p[1], PART_DONE, 4, 40, 0, JOB_STOP_PACKETS, NULL, NULL, 3));

	assert_int_equal(job_retry_uploads(&j, p, 2, 4, &err), 0);
	assert_int_equal(j.status, JOB_CONVERSION_RUNNING);
	assert_null(j.error_message);
	assert_int_equal(j.finished_ns, 0);
	assert_int_equal(p[0].state, PART_DONE);
	assert_int_equal(p[0].attempt, 0);
	assert_int_equal(p[1].state, PART_UPLOADING);
	assert_int_equal(p[1].attempt, 1);
	assert_null(p[1].error);
	job_aggregate(&j, p, 2, 4);
	assert_int_equal(j.status, JOB_CONVERSION_RUNNING);
	assert_true(part_apply(&p[1], PART_DONE, 4, 40, 0, JOB_STOP_PACKETS, NULL, NULL, 5));
	job_aggregate(&j, p, 2, 5);
	assert_int_equal(j.status, JOB_SUCCESS);
	assert_int_equal(j.finished_ns, 5);
	/* success: nothing to retry */
	assert_int_equal(job_retry_uploads(&j, p, 2, 6, &err), -EALREADY);
	job_done(&j);
	part_done(&p[0]);
	part_done(&p[1]);

	/* a job failed for another reason as well is not retried */
	{
		Job k = {.type = JOB_FULL, .status = JOB_FAILED, .error_message = strdup("agent a: lost")};
		JobPart q[2] = {part("a", PART_LOST, 0), part("b", PART_UPLOAD_FAILED, 4)};

		assert_int_equal(job_retry_uploads(&k, q, 2, 1, &err), -EALREADY);
		assert_non_null(strstr(err.msg, "agent a's share lost"));
		assert_int_equal(q[1].state, PART_UPLOAD_FAILED);
		assert_int_equal(k.status, JOB_FAILED);
		q[0].state = PART_DONE;
		q[1].state = PART_DONE;
		assert_int_equal(job_retry_uploads(&k, q, 2, 1, &err), -EALREADY);
		assert_string_equal(err.msg, "capture failed before any upload: agent a: lost");
		/* a continuous capture's files had their uploads one by one */
		q[1].state = PART_UPLOAD_FAILED;
		k.continuous.on = true;
		assert_int_equal(job_retry_uploads(&k, q, 2, 1, &err), -EALREADY);
		assert_non_null(strstr(err.msg, "continuous capture's files are not uploaded again"));
		assert_int_equal(q[1].state, PART_UPLOAD_FAILED);
		k.continuous.on = false;
		q[1].state = PART_DONE;
		k.type = JOB_SIMPLE;
		assert_int_equal(job_retry_uploads(&k, q, 2, 1, &err), -EINVAL);
		job_done(&k);
		part_done(&q[0]);
		part_done(&q[1]);
	}
}

static void test_aggregate_simple(void **state)
{
	Job j = {.type = JOB_SIMPLE, .status = JOB_PENDING};
	JobPart p[2] = {part("a", PART_ASSIGNED, 0), part("b", PART_ASSIGNED, 0)};

	(void)state;
	/* one answers with nothing, the other never does: the zero-packet rule,
	 * naming the agent that did not answer */
	part_apply(&p[0], PART_DONE, 0, 0, 0, JOB_STOP_NONE, "a.pcap", NULL, 1);
	job_aggregate(&j, p, 2, 1);
	assert_int_equal(j.status, JOB_RUNNING); /* answers are coming in */
	part_lose(&p[1], "did not answer within 5000 ms", 2);
	job_aggregate(&j, p, 2, 2);
	assert_int_equal(j.status, JOB_FAILED);
	assert_int_equal(j.packets, 0);
	assert_string_equal(j.error_message, "No packets matched the filter in the time window queried. "
					     "Please modify the filter or try again. "
					     "Not answered: agent b: did not answer within 5000 ms");
	assert_int_equal(j.stop_reason, JOB_STOP_NONE);
	job_done(&j);
	part_done(&p[0]);
	part_done(&p[1]);

	/* answers under the limit: success, every packet, no stop reason */
	Job m = {.type = JOB_SIMPLE, .status = JOB_PENDING, .packet_limit = 10};
	JobPart r[2] = {part("a", PART_DONE, 4), part("b", PART_DONE, 5)};

	job_aggregate(&m, r, 2, 1);
	assert_int_equal(m.status, JOB_SUCCESS);
	assert_int_equal(m.packets, 9);
	assert_int_equal(m.stop_reason, JOB_STOP_NONE);
	assert_null(m.error_message);
	job_done(&m);
	/* answers over the limit: the sample holds packet_limit, and says why */
	Job o = {.type = JOB_SIMPLE, .status = JOB_PENDING, .packet_limit = 7};

	job_aggregate(&o, r, 2, 1);
	assert_int_equal(o.status, JOB_SUCCESS);
	assert_int_equal(o.packets, 7);
	assert_int_equal(o.stop_reason, JOB_STOP_PACKETS);
	job_done(&o);
	/* exactly packet_limit: the limit is reached */
	Job e = {.type = JOB_SIMPLE, .status = JOB_PENDING, .packet_limit = 9};

	job_aggregate(&e, r, 2, 1);
	assert_int_equal(e.packets, 9);
	assert_int_equal(e.stop_reason, JOB_STOP_PACKETS);
	job_done(&e);

	/* nobody answers: failed, naming them */
	Job k = {.type = JOB_SIMPLE, .status = JOB_PENDING};
	JobPart q = part("c", PART_ASSIGNED, 0);

	part_lose(&q, "did not answer within 5000 ms", 3);
	job_aggregate(&k, &q, 1, 3);
	assert_int_equal(k.status, JOB_FAILED);
	assert_non_null(strstr(k.error_message, "agent c: did not answer"));
	job_done(&k);
	part_done(&q);
}

static void test_ids_and_names(void **state)
{
	char id[JOB_ID_LEN + 1], id2[JOB_ID_LEN + 1];
	PartState ps;
	JobStop js;

	(void)state;
	assert_int_equal(job_new_id(id), 0);
	assert_int_equal(job_new_id(id2), 0);
	assert_true(job_id_valid(id, strlen(id)));
	assert_string_not_equal(id, id2);
	assert_false(job_id_valid("0123456789abcdef0123456789abcde", 31));
	assert_false(job_id_valid("0123456789abcdef0123456789abcdeg", 32));
	assert_string_equal(job_status_to_string(JOB_CONVERSION_RUNNING), "conversion_running");
	assert_int_equal(part_state_from_string("uploading", &ps), 0);
	assert_int_equal(ps, PART_UPLOADING);
	assert_int_equal(part_state_from_string("Uploading", &ps), -EINVAL);
	assert_int_equal(part_state_from_string("captured", &ps), 0);
	assert_int_equal(ps, PART_CAPTURED);
	assert_string_equal(part_state_to_string(PART_CAPTURED), "captured");
	assert_string_equal(part_state_to_string(PART_LOST), "lost");
	assert_int_equal(job_stop_from_string("user", &js), 0);
	assert_int_equal(js, JOB_STOP_USER);
}

/* 4097 bytes of "tcp or " repeated, as a string literal */
#define BPF_16 "tcp or tcp or tc"
#define BPF_256                                                                                                        \
	BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16 BPF_16
#define BPF_4097                                                                                                       \
	BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256 BPF_256        \
		BPF_256 BPF_256 BPF_256 "p"

static void test_filterjson(void **state)
{
	static const struct {
		const char *json;
		const char *error; /* NULL = accepted */
	} cases[] = {
		{"{}", NULL},
		{"null", NULL},
		{"{\"source_address\":\"192.0.2.1\",\"destination_port\":80,\"protocol\":6}", NULL},
		{"{\"destination_address\":\"2001:db8::/32\",\"source_port\":\"1024-2048\",\"protocol\":\"udp\"}",
		 NULL},
		{"{\"bpf\":\"tcp port 80\"}", NULL},
		{"{\"source_address\":null}", NULL},
		{"{\"inner\":true,\"destination_address\":\"192.0.2.1\"}", NULL},
		{"{\"inner\":1}", "filter_v1.inner: must be true or false"},
		{"{\"destination_port\":70000}", "filter_v1.destination_port: 70000 is outside 0..65535"},
		{"{\"destination_port\":true}", "filter_v1.destination_port: must be a number"},
		{"{\"source_address\":\"300.1.1.1\"}", "filter_v1.source_address"},
		{"{\"source_address\":7}", "filter_v1.source_address: must be a string"},
		{"{\"protocol\":256}", "filter_v1.protocol"},
		{"{\"colour\":1}", "filter_v1.colour: unknown field"},
		{"[1]", "filter_v1: must be an object"},
		{"{\"bpf\":7}", "filter_v1.bpf: must be a string"},
		{"{\"bpf\":\"" BPF_4097 "\"}", "filter_v1.bpf: 4097 bytes, at most 4096"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
		Filter f;
		char *canon = NULL;
		ErrBuf err = {{0}};
		int r;

		assert_non_null(o);
		r = filterjson_parse(o, "filter_v1", &f, &canon, &err);
		if (!cases[i].error) {
			if (r != 0)
				fail_msg("%s: %s", cases[i].json, err.msg);
			assert_non_null(canon);
			filter_done(&f);
		} else {
			assert_int_equal(r, -EINVAL);
			if (strncmp(err.msg, cases[i].error, strlen(cases[i].error)) != 0)
				fail_msg("%s: got '%s', want prefix '%s'", cases[i].json, err.msg, cases[i].error);
		}
		free(canon);
		json_decref(o);
	}
}

/* "" is no condition, as null is: what a form sends for a field left blank. */
static void test_filterjson_empty_strings(void **state)
{
	json_t *o = json_loads("{\"source_address\":\"\",\"destination_address\":\"\",\"source_port\":\"\","
			       "\"destination_port\":80,\"protocol\":\"\",\"bpf\":\"\"}",
			       0, NULL);
	Filter f;
	char *canon = NULL;
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(filterjson_parse(o, "filter_v1", &f, &canon, &err), 0);
	assert_string_equal(canon, "{\"destination_port\":80}");
	assert_int_equal(f.n_clauses, 1);
	assert_int_equal(f.clauses[0].src.n, 0);
	assert_int_equal(f.clauses[0].dst.n, 0);
	assert_int_equal(f.clauses[0].sport.n, 0);
	assert_int_equal(f.clauses[0].proto, FILTER_PROTO_ANY);
	assert_null(f.bpf_expr);
	filter_done(&f);
	free(canon);
	json_decref(o);
	/* every field empty: no clause at all, everything is captured */
	o = json_loads("{\"source_address\":\"\",\"protocol\":\"\",\"bpf\":\"\"}", 0, NULL);
	assert_int_equal(filterjson_parse(o, "filter_v1", &f, &canon, &err), 0);
	assert_string_equal(canon, "{}");
	assert_int_equal(f.n_clauses, 0);
	filter_done(&f);
	free(canon);
	json_decref(o);
	/* a blank is not empty: still refused, naming the field */
	o = json_loads("{\"source_address\":\" \"}", 0, NULL);
	assert_int_equal(filterjson_parse(o, "filter_v1", &f, &canon, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "filter_v1.source_address"));
	json_decref(o);
}

static void test_filterjson_canonical_roundtrip(void **state)
{
	json_t *o = json_loads("{\"protocol\":6,\"source_address\":\"192.0.2.1\",\"bpf\":\"tcp\"}", 0, NULL);
	Filter f, g;
	char *canon = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(filterjson_parse(o, "filter_v1", &f, &canon, &err), 0);
	assert_string_equal(canon, "{\"protocol\":6,\"source_address\":\"192.0.2.1\",\"bpf\":\"tcp\"}");
	assert_int_equal(f.n_clauses, 1);
	assert_int_equal(f.clauses[0].proto, 6);
	assert_string_equal(f.bpf_expr, "tcp");
	assert_int_equal(filterjson_parse_text(canon, &g, &err), 0);
	assert_int_equal(g.n_clauses, 1);
	assert_int_equal(g.clauses[0].src.n, 1);
	assert_int_equal(filterjson_parse_text("{bad", &g, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "invalid JSON"));
	filter_done(&f);
	filter_done(&g);
	free(canon);
	json_decref(o);
}

/* "inner" reaches the clause, and survives the canonical text. */
static void test_filterjson_inner(void **state)
{
	Filter f, g;
	ErrBuf err;
	char *text = NULL;

	(void)state;
	assert_int_equal(filterjson_parse_text("{\"inner\":true,\"destination_port\":53}", &f, &err), 0);
	assert_int_equal(f.n_clauses, 1);
	assert_true(f.clauses[0].inner);
	/* and on to the agents in the neutral form */
	assert_int_equal(filtermodel_to_text(&f, &text, &err), 0);
	assert_string_equal(text, "{\"clauses\":[{\"dport\":[\"53\"],\"inner\":true}]}");
	free(text);
	assert_int_equal(filterjson_parse_text("{\"inner\":false,\"destination_port\":53}", &g, &err), 0);
	assert_false(g.clauses[0].inner);
	filter_done(&f);
	filter_done(&g);
}

/* The neutral form: exact, canonical (written again it is the same text),
 * and what filter_v1 meant. */
static void test_filtermodel_roundtrip(void **state)
{
	static const char *const texts[] = {
		"{}",
		"{\"clauses\":[{\"src\":[\"192.0.2.0-192.0.2.255\",\"198.51.100.7\"],\"dport\":[\"80\",\"443\"],"
		"\"proto\":6}]}",
		"{\"clauses\":[{\"dst\":[\"198.51.100.9\"],\"inner\":true}]}",
		"{\"clauses\":[{\"src\":[\"2001:db8::-2001:db8::ffff\"],\"sport\":[\"1024-65535\"],\"both\":true},"
		"{\"dst\":[\"203.0.113.9\"],\"proto\":17}],\"bpf\":\"tcp[13] & 2 != 0\"}",
	};
	json_t *o = json_loads("{\"source_address\":\"192.0.2.0/24;198.51.100.7\",\"destination_port\":\"80;443\","
			       "\"protocol\":\"tcp\"}",
			       0, NULL);
	Filter f;
	char *text = NULL;
	ErrBuf err;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		assert_int_equal(filtermodel_parse(texts[i], strlen(texts[i]), &f, &err), 0);
		assert_int_equal(filtermodel_to_text(&f, &text, &err), 0);
		assert_string_equal(text, texts[i]);
		free(text);
		filter_done(&f);
	}
	/* filter_v1 in its words, the model in neutral ones */
	assert_int_equal(filterjson_parse(o, "filter_v1", &f, NULL, &err), 0);
	assert_int_equal(filtermodel_to_text(&f, &text, &err), 0);
	assert_string_equal(text, texts[1]);
	free(text);
	filter_done(&f);
	json_decref(o);
}

static void test_filtermodel_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"[]", "filter: must be an object"},
		{"{\"x\":1}", "filter.x: unknown field"},
		{"{\"clauses\":{}}", "filter.clauses: must be an array"},
		{"{\"clauses\":[5]}", "filter.clauses[0]: must be an object"},
		{"{\"clauses\":[{\"src\":\"192.0.2.1\"}]}", "filter.clauses[0].src: must be an array of strings"},
		{"{\"clauses\":[{\"src\":[\"\"]}]}", "filter.clauses[0].src[0]: must be a non-empty string"},
		{"{\"clauses\":[{\"dport\":[\"80\",\"70000\"]}]}", "filter.clauses[0].dport[1]: *"},
		{"{\"clauses\":[{\"proto\":256}]}", "filter.clauses[0].proto: *"},
		{"{\"clauses\":[{\"proto\":\"tcp\"}]}", "filter.clauses[0].proto: must be a whole number 0..255"},
		{"{\"clauses\":[{\"both\":1}]}", "filter.clauses[0].both: must be true or false"},
		{"{\"clauses\":[{\"inner\":\"yes\"}]}", "filter.clauses[0].inner: must be true or false"},
		{"{\"clauses\":[{\"sport\":[\"1\"],\"colour\":1}]}", "filter.clauses[0].colour: unknown field"},
		{"{\"bpf\":7}", "filter.bpf: must be a string"},
		{"{\"bpf\":\"a\",\"bpf\":\"b\"}", "filter: invalid JSON*"},
	};
	Filter f;
	ErrBuf err;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t n = strcspn(cases[i].msg, "*");

		err.msg[0] = '\0';
		if (filtermodel_parse(cases[i].text, strlen(cases[i].text), &f, &err) == 0)
			fail_msg("%s: accepted", cases[i].text);
		if (strncmp(err.msg, cases[i].msg, n) != 0 || (!cases[i].msg[n] && err.msg[n]))
			fail_msg("%s: \"%s\", want \"%s\"", cases[i].text, err.msg, cases[i].msg);
	}
}

/* A bucket output whose object is named (Azure's blob): stored with its
 * name, checked, and each agent's share named after it. */
static void test_named_objects(void)
{
	Job j = {0}, back = {0}, copy = {0};
	ErrBuf err = {{0}};
	char obj[64], *text = NULL;

	memcpy(j.id, "0123456789abcdef0123456789abcdef", JOB_ID_LEN + 1);
	assert_int_equal(job_part_object(&j, "a1", obj, sizeof(obj)), 0);
	assert_string_equal(obj, "pcap_0123456789abcdef0123456789abcdef_a1.pcap");
	assert_int_equal(job_add_named_object(&j, "azblob://acct/caps/dir/", "pc1.cap", true), 0);
	assert_true(j.outputs[0].held);
	j.target_kind = JOB_TARGET_AGENT;
	assert_int_equal(job_part_object(&j, "vm1", obj, sizeof(obj)), 0);
	assert_string_equal(obj, "pc1.cap");
	j.target_kind = JOB_TARGET_COLO;
	assert_int_equal(job_part_object(&j, "vm1", obj, sizeof(obj)), 0);
	assert_string_equal(obj, "pc1_vm1.cap");
	assert_int_equal(job_part_object(&j, "vm1", obj, 8), -ENAMETOOLONG);
	/* a continuous capture's files: the share's object with _N before its extension */
	assert_int_equal(job_file_object("pc1.cap", 1, obj, sizeof(obj)), 0);
	assert_string_equal(obj, "pc1_1.cap");
	assert_int_equal(job_file_object("pc1_vm1.cap", 12, obj, sizeof(obj)), 0);
	assert_string_equal(obj, "pc1_vm1_12.cap");
	assert_int_equal(job_file_object(".hidden", 2, obj, sizeof(obj)), 0);
	assert_string_equal(obj, ".hidden_2");
	assert_int_equal(job_file_object("a.b.cap", UINT64_MAX, obj, sizeof(obj)), 0);
	assert_string_equal(obj, "a.b_18446744073709551615.cap");
	assert_int_equal(strlen(obj) - strlen("a.b.cap"), JOB_FILE_SUFFIX_MAX);
	assert_int_equal(job_file_object("pc1.cap", 10, obj, 10), -ENAMETOOLONG);
	free(j.outputs[0].object);
	j.outputs[0].object = strdup("noext");
	assert_int_equal(job_part_object(&j, "vm1", obj, sizeof(obj)), 0);
	assert_string_equal(obj, "noext_vm1");
	free(j.outputs[0].object);
	j.outputs[0].object = strdup("a.b.cap");
	assert_int_equal(job_part_object(&j, "vm1", obj, sizeof(obj)), 0);
	assert_string_equal(obj, "a.b_vm1.cap");

	/* stored with its object; held is not stored */
	free(j.outputs[0].object);
	j.outputs[0].object = strdup("pc1.cap");
	assert_int_equal(job_outputs_to_text(&j, &text), 0);
	assert_string_equal(text,
			    "[{\"kind\":\"bucket\",\"target\":\"azblob://acct/caps/dir/\",\"object\":\"pc1.cap\"}]");
	assert_int_equal(job_outputs_from_text(text, &back), 0);
	assert_string_equal(back.outputs[0].object, "pc1.cap");
	assert_false(back.outputs[0].held);
	assert_int_equal(job_copy(&back, &copy), 0);
	assert_string_equal(copy.outputs[0].object, "pc1.cap");
	assert_ptr_not_equal(copy.outputs[0].object, back.outputs[0].object);
	free(text);
	job_done(&back);
	job_done(&copy);

	/* checked: an object's name, on a bucket output only */
	j.type = JOB_FULL;
	j.colo_name = strdup("ss1");
	assert_int_equal(job_check(&j, &err), 0);
	free(j.outputs[0].object);
	j.outputs[0].object = strdup("a/b.cap");
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "outputs[0].object: a bucket's object, 1..200 bytes of [A-Za-z0-9._-] not "
				     "starting with '.'");
	job_done(&j);
}

/* The model's invariants and the outputs' storage form. */
static void test_job_check_and_outputs(void **state)
{
	Job j = {.type = JOB_FULL, .colo_name = (char *)"web01", .time_limit_s = JOB_MAX_TIME_S};
	Job back = {0};
	char *text = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "outputs: a full capture needs 1..4");
	assert_int_equal(job_add_output(&j, JOB_OUTPUT_BUCKET, "file:///srv/b"), 0);
	assert_int_equal(job_check(&j, &err), 0);
	assert_string_equal(job_bucket(&j), "file:///srv/b");
	assert_int_equal(job_add_output(&j, JOB_OUTPUT_FILE, "captures/x.cap"), 0);
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "outputs[1].target: a file's path must lie below /var/captures");
	free(j.outputs[1].target);
	j.outputs[1].target = strdup("/var/captures/x.cap");
	assert_int_equal(job_check(&j, &err), 0);
	j.time_limit_s = JOB_MAX_TIME_S + 1;
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "time_limit: 18001 is outside 0..18000");
	j.time_limit_s = 0;
	j.continuous = (JobContinuous){.on = true, .session_limit_s = JOB_MAX_SESSION_S + 1};
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "continuous.session_limit: 604801 is outside 0..604800");
	j.continuous.session_limit_s = JOB_MAX_SESSION_S;
	assert_int_equal(job_check(&j, &err), 0);
	j.continuous = (JobContinuous){.file_count = 3};
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "continuous: settings without continuous mode");
	j.continuous = (JobContinuous){0};
	/* echo_json is the dialect's; the model bounds it, and copies it */
	j.echo_json = calloc(1, JOB_ECHO_MAX + 2);
	assert_non_null(j.echo_json);
	memset(j.echo_json, 'x', JOB_ECHO_MAX + 1);
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "echo: longer than 1024 bytes");
	j.echo_json[JOB_ECHO_MAX] = '\0';
	assert_int_equal(job_check(&j, &err), 0);
	{
		Job copy = {0};

		assert_int_equal(job_copy(&j, &copy), 0);
		assert_string_equal(copy.echo_json, j.echo_json);
		assert_ptr_not_equal(copy.echo_json, j.echo_json);
		job_done(&copy);
	}

	assert_int_equal(job_outputs_to_text(&j, &text), 0);
	assert_string_equal(text, "[{\"kind\":\"bucket\",\"target\":\"file:///srv/b\"},"
				  "{\"kind\":\"file\",\"target\":\"/var/captures/x.cap\"}]");
	assert_int_equal(job_outputs_from_text(text, &back), 0);
	assert_int_equal(back.n_outputs, 2);
	assert_int_equal(back.outputs[1].kind, JOB_OUTPUT_FILE);
	assert_string_equal(back.outputs[1].target, "/var/captures/x.cap");
	assert_int_equal(job_outputs_from_text("[{\"kind\":\"tape\",\"target\":\"x\"}]", &back), -EINVAL);
	assert_int_equal(job_outputs_from_text("[{\"kind\":\"file\",\"target\":\"x\",\"object\":\"o\"}]", &back),
			 -EINVAL);
	free(text);
	j.colo_name = NULL;
	job_done(&j);
	job_done(&back);
	test_named_objects();

	/* a sample has no outputs */
	j = (Job){.type = JOB_SIMPLE};
	assert_int_equal(job_check(&j, &err), 0);
	assert_int_equal(job_add_output(&j, JOB_OUTPUT_BUCKET, "file:///x"), 0);
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "outputs: only for full captures");
	job_done(&j);
}

static void test_names_targets_started(void **state)
{
	Job j = {.type = JOB_FULL, .status = JOB_PENDING, .colo_name = strdup("lab")}, copy = {0};
	JobPart p[2] = {part("a", PART_ASSIGNED, 0), part("b", PART_ASSIGNED, 0)};
	PartFailure f;
	ErrBuf err;

	(void)state;
	assert_int_equal(job_add_output(&j, JOB_OUTPUT_FILE, "/var/captures/x.cap"), 0);
	/* a name is all three parts or none */
	assert_int_equal(job_name_set(&j.name, "rg1", NULL, "pc1"), 0);
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "name: group, watcher and name must each be 1..90 printable bytes without '/'");
	assert_int_equal(job_name_set(&j.name, "rg1", "nw/1", "pc1"), 0);
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_int_equal(job_name_set(&j.name, "rg1", "nw1", "pc1"), 0);
	assert_int_equal(job_check(&j, &err), 0);
	assert_true(job_named(&j));
	/* include and exclude lists only narrow a colo */
	j.target_include = strdup("a,b");
	assert_int_equal(job_check(&j, &err), -EINVAL);
	assert_string_equal(err.msg, "target: include and exclude lists are only for a colo");
	j.target_kind = JOB_TARGET_COLO;
	assert_int_equal(job_check(&j, &err), 0);
	j.request = strdup("{}");
	assert_int_equal(job_copy(&j, &copy), 0);
	assert_string_equal(copy.name.watcher, "nw1");
	assert_string_equal(copy.target_include, "a,b");
	assert_string_equal(copy.request, "{}");
	assert_ptr_not_equal(copy.request, j.request);
	job_done(&copy);

	/* started: once some agent captured; a part failing at its start does not count */
	part_apply(&p[0], PART_FAILED, 0, 0, 0, JOB_STOP_ERROR, NULL, "refused", 5);
	job_aggregate(&j, p, 2, 5);
	assert_int_equal(j.started_ns, 0);
	part_apply(&p[1], PART_RUNNING, 1, 10, 0, JOB_STOP_NONE, NULL, NULL, 6);
	assert_true(job_aggregate(&j, p, 2, 6));
	assert_int_equal(j.started_ns, 6);
	part_apply(&p[1], PART_DONE, 2, 20, 0, JOB_STOP_TIME, NULL, NULL, 7);
	job_aggregate(&j, p, 2, 7);
	assert_int_equal(j.started_ns, 6);
	assert_int_equal(j.status, JOB_FAILED);

	/* a share first seen captured (its running state fell between two
	 * reports) started the capture too */
	Job k = {.type = JOB_FULL, .status = JOB_PENDING};
	JobPart q = part("c", PART_ASSIGNED, 0);

	part_apply(&q, PART_CAPTURED, 3, 30, 0, JOB_STOP_TIME, NULL, NULL, 8);
	assert_true(job_aggregate(&k, &q, 1, 8));
	assert_int_equal(k.status, JOB_CONVERSION_PENDING);
	assert_int_equal(k.started_ns, 8);
	part_done(&q);
	job_done(&k);

	assert_string_equal(part_failure_to_string(PART_FAIL_FILE), "file");
	assert_int_equal(part_failure_from_string("storage", &f), 0);
	assert_int_equal(f, PART_FAIL_STORAGE);
	assert_int_equal(part_failure_from_string("disk", &f), -EINVAL);
	for (size_t i = 0; i < 2; i++)
		part_done(&p[i]);
	job_done(&j);
}

/* part_differs tells exactly which parts an update changed; parts_copy is
 * deep (a change to the original's strings leaves the copy alone). */
/* job_aggregate_tally gives what job_aggregate gives over the parts it
 * counts, for samples whose parts have not all ended (random states,
 * counters and limits, seeded), and declines the rest. */
static void test_aggregate_tally(void **state)
{
	unsigned seed = 4242;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		JobPart p[6];
		PartTally t = {0};
		size_t n = 1 + (size_t)(rand_r(&seed) % 6);
		Job a = {.type = JOB_SIMPLE, .status = (JobStatus)(rand_r(&seed) % 2 ? JOB_PENDING : JOB_RUNNING)};
		Job b;
		int r;

		a.packet_limit = rand_r(&seed) % 3 ? 0 : 1 + (uint32_t)(rand_r(&seed) % 40);
		a.stop_requested_ns = rand_r(&seed) % 4 ? 0 : 7;
		b = a;
		for (size_t i = 0; i < n; i++) {
			char name[8];

			snprintf(name, sizeof(name), "a%u", (unsigned)i % 100u);
			p[i] = part(name, (PartState)(rand_r(&seed) % (PART_UPLOAD_FAILED + 1)), rand_r(&seed) % 20);
			p[i].bytes = rand_r(&seed) % 2000;
			p[i].drops = rand_r(&seed) % 3;
			part_tally_add(&t, &p[i]);
		}
		r = job_aggregate_tally(&b, &t, 9);
		if (r == -EAGAIN) {
			bool all_ended = true;

			for (size_t i = 0; i < n; i++)
				all_ended &= part_state_terminal(p[i].state);
			assert_true(all_ended);
			assert_int_equal(b.status, a.status); /* j as it was */
			continue;
		}
		assert_int_equal(r, job_aggregate(&a, p, n, 9) ? 1 : 0);
		assert_int_equal(b.status, a.status);
		assert_int_equal(b.packets, a.packets);
		assert_int_equal(b.bytes, a.bytes);
		assert_int_equal(b.drops, a.drops);
		assert_int_equal(b.stop_reason, a.stop_reason);
		assert_int_equal(b.started_ns, a.started_ns);
		assert_int_equal(b.finished_ns, a.finished_ns);
		assert_null(b.error_message);
		assert_null(a.error_message);
	}
	/* A full capture's reason depends on which part says what: declined. */
	{
		Job j = {.type = JOB_FULL, .status = JOB_RUNNING};
		JobPart q = part("a", PART_RUNNING, 1);
		PartTally t = {0};

		part_tally_add(&t, &q);
		assert_int_equal(job_aggregate_tally(&j, &t, 1), -EAGAIN);
		assert_int_equal(j.status, JOB_RUNNING);
	}
}

static void test_part_differs_and_copy(void **state)
{
	JobPart p[3] = {part("a", PART_ASSIGNED, 0), part("b", PART_RUNNING, 3), part("c", PART_DONE, 9)};
	JobPart *c = NULL;

	(void)state;
	p[2].object = strdup("c.pcap");
	assert_int_equal(parts_copy(p, 3, &c), 0);
	for (size_t i = 0; i < 3; i++)
		assert_false(part_differs(&p[i], &c[i]));
	assert_ptr_not_equal(p[2].object, c[2].object);
	assert_string_equal(c[2].object, "c.pcap");
	/* Each stored field counts. */
	assert_true(part_apply(&p[0], PART_RUNNING, 0, 0, 0, JOB_STOP_NONE, NULL, NULL, 7));
	assert_true(part_differs(&p[0], &c[0]));
	assert_false(part_differs(&p[1], &c[1]));
	p[1].attempt = 1;
	assert_true(part_differs(&p[1], &c[1]));
	p[1].attempt = 0;
	p[1].failure = PART_FAIL_STORAGE;
	assert_true(part_differs(&p[1], &c[1]));
	p[1].failure = c[1].failure;
	assert_true(part_lose(&p[1], "gone", 8));
	assert_true(part_differs(&p[1], &c[1]));
	/* Same text in another string is no change; other text, or none, is. */
	free(p[2].object);
	p[2].object = strdup("c.pcap");
	assert_false(part_differs(&p[2], &c[2]));
	free(p[2].object);
	p[2].object = strdup("d.pcap");
	assert_true(part_differs(&p[2], &c[2]));
	free(p[2].object);
	p[2].object = NULL;
	assert_true(part_differs(&p[2], &c[2]));
	assert_true(part_differs(&c[2], &p[2]));
	for (size_t i = 0; i < 3; i++)
		part_done(&p[i]);
	parts_free(c, 3);
}

static void test_apierror(void **state)
{
	ApiError e;

	(void)state;
	assert_int_equal(apierror_set(&e, API_ERR_NOT_FOUND, "id", "no capture with id %s", "x"), -ENOENT);
	assert_string_equal(e.field, "id");
	assert_string_equal(e.msg, "no capture with id x");
	assert_int_equal(apierror_from_msg(&e, API_ERR_INVALID, "filter_v1.source_port: 70000 is outside 0..65535"),
			 -EINVAL);
	assert_string_equal(e.field, "filter_v1.source_port");
	assert_string_equal(e.msg, "70000 is outside 0..65535");
	/* not a field path: the whole text is the message */
	apierror_from_msg(&e, API_ERR_INVALID, "Authentication error: no credentials");
	assert_string_equal(e.field, "");
	assert_string_equal(e.msg, "Authentication error: no credentials");
	apierror_with_field(&e, API_ERR_INVALID, "destination", "destination_conf", "destination_conf: not a URI");
	assert_string_equal(e.field, "destination");
	assert_string_equal(e.msg, "not a URI");
	apierror_with_field(&e, API_ERR_INVALID, "destination", "destination_conf", "bucket: the bucket root /x");
	assert_string_equal(e.msg, "bucket: the bucket root /x");
	assert_int_equal(apierror_set(NULL, API_ERR_BUSY, NULL, "x"), -EBUSY);
	assert_string_equal(apierror_kind_name(API_ERR_UNSUPPORTED_MEDIA), "unsupported_media");
}

static void test_timefmt(void **state)
{
	char buf[TIMEFMT_MAX];
	int64_t ns;

	(void)state;
	timefmt_rfc3339(1640021360641845000LL, buf);
	assert_string_equal(buf, "2021-12-20T17:29:20.641845Z");
	assert_int_equal(timefmt_parse_rfc3339(buf, strlen(buf), &ns), 0);
	assert_true(ns == 1640021360641845000LL);
	assert_int_equal(timefmt_parse_rfc3339("2021-12-20T18:29:20+01:00", 25, &ns), 0);
	assert_true(ns == 1640021360000000000LL);
	assert_int_equal(timefmt_parse_rfc3339("2024-02-29T00:00:00Z", 20, &ns), 0);
	assert_int_equal(timefmt_parse_rfc3339("2023-02-29T00:00:00Z", 20, &ns), -ERANGE);
	assert_int_equal(timefmt_parse_rfc3339("2021-12-20T17:29:20", 19, &ns), -EINVAL); /* no zone */
	assert_int_equal(timefmt_parse_rfc3339("2021-12-20T17:29:20.Z", 21, &ns), -EINVAL);
	assert_int_equal(timefmt_parse_rfc3339("2021-13-20T17:29:20Z", 20, &ns), -ERANGE);
	assert_int_equal(timefmt_parse_rfc3339("yesterday", 9, &ns), -EINVAL);
	assert_int_equal(timefmt_parse_rfc3339("2021-12-20T17:29:20Zjunk", 24, &ns), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aggregate_lifecycle),
		cmocka_unit_test(test_part_never_backwards),
		cmocka_unit_test(test_aggregate_failures),
		cmocka_unit_test(test_upload_failed_and_retry),
		cmocka_unit_test(test_aggregate_simple),
		cmocka_unit_test(test_ids_and_names),
		cmocka_unit_test(test_filterjson),
		cmocka_unit_test(test_filterjson_empty_strings),
		cmocka_unit_test(test_filterjson_canonical_roundtrip),
		cmocka_unit_test(test_filterjson_inner),
		cmocka_unit_test(test_filtermodel_roundtrip),
		cmocka_unit_test(test_filtermodel_errors),
		cmocka_unit_test(test_job_check_and_outputs),
		cmocka_unit_test(test_names_targets_started),
		cmocka_unit_test(test_aggregate_tally),
		cmocka_unit_test(test_part_differs_and_copy),
		cmocka_unit_test(test_apierror),
		cmocka_unit_test(test_timefmt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
