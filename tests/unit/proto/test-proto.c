/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/proto, the agent protocol's one home: what each side
 * writes, the other reads back unchanged (reports, report answers, starts
 * and poll answers); malformed input is refused with its field named; every
 * bound holds.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/agentproto.h"

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"

/* ---- proto: reports ---- */

static void test_report_build(void **state)
{
	const char *ifs[] = {"eth0", "lo"};
	AgentIdent who = {.name = "web01", .colo = "ord02", .version = "0.1.0", .ifaces = ifs, .n_ifaces = 2};
	AgentJobReport jobs[2] = {0};
	json_t *root, *j;
	char *text = NULL;
	ErrBuf err = {{0}};

	(void)state;
	memcpy(jobs[0].id, ID1, sizeof(jobs[0].id));
	jobs[0].state = PART_RUNNING;
	jobs[0].packets = 12;
	jobs[0].bytes = 3400;
	jobs[0].drops = 1;
	memcpy(jobs[1].id, ID2, sizeof(jobs[1].id));
	jobs[1].state = PART_FAILED;
	jobs[1].stop_reason = JOB_STOP_ERROR;
	strcpy(jobs[1].error, "interface eth9: \"no\" such device\n");
	strcpy(jobs[1].object, "pcap_x.pcap");
	assert_int_equal(agentproto_report_build(&who, true, NULL, jobs, 2, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "name")), "web01");
	assert_string_equal(json_string_value(json_object_get(root, "colo")), "ord02");
	assert_string_equal(json_string_value(json_object_get(root, "version")), "0.1.0");
	assert_true(json_is_true(json_object_get(root, "hello")));
	assert_int_equal(json_array_size(json_object_get(root, "interfaces")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(root, "interfaces"), 1)), "lo");
	j = json_array_get(json_object_get(root, "jobs"), 0);
	assert_string_equal(json_string_value(json_object_get(j, "id")), ID1);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(j, "packets")), 12);
	assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 3400);
	assert_int_equal(json_integer_value(json_object_get(j, "drops")), 1);
	assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "none");
	assert_null(json_object_get(j, "object")); /* optional fields absent when empty */
	assert_null(json_object_get(j, "error"));
	j = json_array_get(json_object_get(root, "jobs"), 1);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "failed");
	assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "error");
	assert_string_equal(json_string_value(json_object_get(j, "error")), "interface eth9: \"no\" such device\n");
	assert_string_equal(json_string_value(json_object_get(j, "object")), "pcap_x.pcap");
	json_decref(root);
	free(text);

	/* No job, no hello: an empty list, hello false. */
	assert_int_equal(agentproto_report_build(&who, false, NULL, NULL, 0, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	assert_true(json_is_false(json_object_get(root, "hello")));
	assert_int_equal(json_array_size(json_object_get(root, "jobs")), 0);
	json_decref(root);
	free(text);
}

static void test_report_build_non_utf8_error(void **state)
{
	AgentIdent who = {.name = "a", .colo = "b", .version = "v"};
	AgentJobReport job = {0};
	json_t *root;
	char *text = NULL;
	ErrBuf err = {{0}};

	(void)state;
	memcpy(job.id, ID1, sizeof(job.id));
	job.state = PART_FAILED;
	strcpy(job.error, "bad \xff byte");
	assert_int_equal(agentproto_report_build(&who, false, NULL, &job, 1, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(json_object_get(root, "jobs"), 0), "error")),
		"bad ? byte");
	json_decref(root);
	free(text);
}

static void test_report_history(void **state)
{
	AgentIdent who = {.name = "a", .colo = "b", .version = "v"};
	AgentHistory h = {.recording = true,
			  .packets = 1200,
			  .bytes = 190000,
			  .segments = 3,
			  .drops = 2,
			  .oldest_ns = 1640021360641845000ull,
			  .newest_ns = 1640021420000001999ull,
			  .sample_rate = 100};
	json_t *root, *o;
	char *text = NULL;
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(agentproto_report_build(&who, false, &h, NULL, 0, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	o = json_object_get(root, "history");
	assert_true(json_is_object(o));
	assert_true(json_object_size(o) <= 16); /* what the controller accepts */
	assert_true(json_is_true(json_object_get(o, "recording")));
	assert_true(json_is_null(json_object_get(o, "error")));
	assert_int_equal(json_integer_value(json_object_get(o, "packets")), 1200);
	assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 190000);
	assert_int_equal(json_integer_value(json_object_get(o, "segments")), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "drops")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "oldest")), "2021-12-20T17:29:20.641845Z");
	assert_string_equal(json_string_value(json_object_get(o, "newest")), "2021-12-20T17:30:20.000001Z");
	assert_int_equal(json_integer_value(json_object_get(o, "sample_rate")), 100);
	json_decref(root);
	free(text);

	/* Empty history, recording suspended: times null, the reason given
	 * (bytes that are not UTF-8 replaced). */
	h = (AgentHistory){.sample_rate = 1};
	strcpy(h.error, "history /d: write: No space left on device \xff");
	assert_int_equal(agentproto_report_build(&who, false, &h, NULL, 0, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	o = json_object_get(root, "history");
	assert_true(json_is_false(json_object_get(o, "recording")));
	assert_string_equal(json_string_value(json_object_get(o, "error")),
			    "history /d: write: No space left on device ?");
	assert_true(json_is_null(json_object_get(o, "oldest")));
	assert_true(json_is_null(json_object_get(o, "newest")));
	assert_int_equal(json_integer_value(json_object_get(o, "packets")), 0);
	json_decref(root);
	free(text);

	/* Recorder off: three members only. */
	h = (AgentHistory){0};
	strcpy(h.error, "recorder off (--sample-rate 0)");
	assert_int_equal(agentproto_report_build(&who, false, &h, NULL, 0, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	o = json_object_get(root, "history");
	assert_int_equal(json_object_size(o), 3);
	assert_true(json_is_false(json_object_get(o, "recording")));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "recorder off (--sample-rate 0)");
	assert_int_equal(json_integer_value(json_object_get(o, "sample_rate")), 0);
	json_decref(root);
	free(text);

	/* No history given: no member. */
	assert_int_equal(agentproto_report_build(&who, false, NULL, NULL, 0, &text, &err), 0);
	root = json_loads(text, 0, NULL);
	assert_null(json_object_get(root, "history"));
	json_decref(root);
	free(text);
}

static void test_report_answer(void **state)
{
	AgentReportAnswer a = {0};
	ErrBuf err = {{0}};
	const char *ok = "{\"ack\":[\"" ID1 "\",\"nothex\",\"FEDCBA9876543210FEDCBA9876543210\"],"
			 "\"heartbeat_ms\":5000,\"poll_timeout_ms\":99,\"future\":1}";

	(void)state;
	assert_int_equal(agentproto_report_answer_parse(ok, strlen(ok), &a, &err), 0);
	assert_int_equal(a.n_ack, 2); /* the bad id is skipped; ids are lowercased */
	assert_string_equal(a.ack[0], ID1);
	assert_string_equal(a.ack[1], ID2);
	assert_int_equal(a.heartbeat_ms, 5000);
	assert_int_equal(a.poll_timeout_ms, 1000); /* clamped */
	agentproto_report_answer_done(&a);

	assert_int_equal(agentproto_report_answer_parse("{}", 2, &a, &err), 0);
	assert_int_equal(a.n_ack, 0);
	assert_int_equal(a.heartbeat_ms, 0);
	agentproto_report_answer_done(&a);

	assert_int_equal(agentproto_report_answer_parse("[]", 2, &a, &err), -EBADMSG);
	assert_int_equal(agentproto_report_answer_parse("{\"ack\":5}", 9, &a, &err), -EBADMSG);
	assert_string_equal(err.msg, "ack: not an array");
	assert_int_equal(agentproto_report_answer_parse("{", 1, &a, &err), -EBADMSG);
	assert_int_equal(agentproto_report_answer_parse("{\"a\":1,\"a\":2}", 13, &a, &err), -EBADMSG);
}

/* ---- proto: poll ---- */

static void test_poll_parse(void **state)
{
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};
	const char *text =
		"{\"start\":[{\"id\":\"" ID1 "\",\"type\":\"full\","
		"\"filter\":{\"clauses\":[{\"src\":[\"192.0.2.1\"],\"dport\":[\"80\"],\"proto\":6}]},"
		"\"snaplen\":96,\"time_limit\":60,\"packet_limit\":1000,\"byte_limit\":0,"
		"\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///var/b1\","
		"\"object\":\"pcap_" ID1 "_web01.pcap\"},{\"kind\":\"file\",\"target\":\"/var/captures/a.cap\"}]},"
		"{\"id\":\"" ID2 "\",\"type\":\"simple\",\"outputs\":[]},"
		"{\"id\":\"short\"},"
		"{\"id\":\"" ID2 "\",\"time_limit\":60.5,"
		"\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\"}]}],"
		"\"stop\":[\"" ID2 "\",7]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_int_equal(a.n_start, 3);
	assert_int_equal(a.n_skipped, 2); /* the short id and the 7 */
	assert_string_equal(a.start[0].id, ID1);
	assert_string_equal(a.start[0].filter,
			    "{\"clauses\":[{\"src\":[\"192.0.2.1\"],\"dport\":[\"80\"],\"proto\":6}]}");
	assert_int_equal(a.start[0].time_limit_s, 60);
	assert_int_equal(a.start[0].packet_limit, 1000);
	assert_int_equal(a.start[0].byte_limit, 0);
	assert_int_equal(a.start[0].snaplen, 96);
	assert_int_equal(a.start[0].n_outputs, 2);
	assert_int_equal(a.start[0].outputs[0].kind, JOB_OUTPUT_BUCKET);
	assert_string_equal(a.start[0].outputs[0].target, "file:///var/b1");
	assert_string_equal(a.start[0].outputs[0].object, "pcap_" ID1 "_web01.pcap");
	assert_int_equal(a.start[0].outputs[1].kind, JOB_OUTPUT_FILE);
	assert_string_equal(a.start[0].outputs[1].target, "/var/captures/a.cap");
	assert_false(a.start[0].continuous.on);
	assert_string_equal(a.start[0].error, "");
	/* A usable id with a bad field is kept, to be reported failed. */
	assert_true(a.start[1].sample);
	assert_string_equal(a.start[1].error, "from_ns: missing");
	assert_string_equal(a.start[2].error, "time_limit: not a whole number");
	assert_int_equal(a.n_stop, 1);
	assert_string_equal(a.stop[0], ID2);
	agentproto_poll_done(&a);

	/* Empty answers. */
	assert_int_equal(agentproto_poll_parse("{\"start\":[],\"stop\":[]}", 22, &a, &err), 0);
	assert_int_equal(a.n_start + a.n_stop + a.n_skipped, 0);
	agentproto_poll_done(&a);
	assert_int_equal(agentproto_poll_parse("{}", 2, &a, &err), 0);
	agentproto_poll_done(&a);
	assert_int_equal(agentproto_poll_parse("{\"start\":{}}", 12, &a, &err), -EBADMSG);
	assert_string_equal(err.msg, "poll: start: not an array");
}

static const char *spec_error(const char *entry)
{
	static char msg[256];
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};
	char text[1024];

	snprintf(text, sizeof(text), "{\"start\":[{\"id\":\"" ID1 "\",%s}]}", entry);
	if (agentproto_poll_parse(text, strlen(text), &a, &err) < 0 || a.n_start != 1)
		return "PARSE FAILED";
	snprintf(msg, sizeof(msg), "%s", a.start[0].error);
	agentproto_poll_done(&a);
	return msg;
}

static void test_poll_spec_fields(void **state)
{
	(void)state;
#define O "\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\"}]"
	assert_string_equal(spec_error(O), "");
	assert_string_equal(spec_error("\"type\":\"full\""), "outputs: a full capture needs an array of 1..4 outputs");
	assert_string_equal(spec_error("\"outputs\":[]"), "outputs: a full capture needs an array of 1..4 outputs");
	assert_string_equal(spec_error("\"outputs\":[{\"kind\":\"bucket\",\"target\":\"\"}]"),
			    "outputs[0].target: not a string of 1..2048 bytes");
	assert_string_equal(spec_error("\"outputs\":[{\"kind\":\"tape\",\"target\":\"x\"}]"),
			    "outputs[0].kind: 'tape' is not an output this agent knows");
	assert_string_equal(spec_error("\"outputs\":[7]"), "outputs[0]: not an object");
	assert_string_equal(spec_error(O ",\"time_limit\":-1"), "time_limit: outside 0..18000");
	assert_string_equal(spec_error(O ",\"time_limit\":18001"), "time_limit: outside 0..18000");
	assert_string_equal(spec_error(O ",\"time_limit\":30.0"), "");
	assert_string_equal(spec_error(O ",\"snaplen\":4294967296"), "snaplen: outside 0..4294967295");
	assert_string_equal(spec_error(O ",\"packet_limit\":\"5\""), "packet_limit: not a whole number");
	assert_string_equal(spec_error(O ",\"byte_limit\":1e300"), "byte_limit: outside 0..9223372036854775807");
	assert_string_equal(spec_error(O ",\"filter\":[1]"), "filter: not an object");
	assert_string_equal(spec_error(O ",\"filter\":null"), "");
	assert_string_equal(
		spec_error("\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\",\"object\":\"../etc/passwd\"}]"),
		"outputs[0].object: not 1..200 bytes of [A-Za-z0-9._-] that do not start with '.'");
	assert_string_equal(
		spec_error("\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\",\"object\":\".hidden\"}]"),
		"outputs[0].object: not 1..200 bytes of [A-Za-z0-9._-] that do not start with '.'");
	/* "" = not given: the agent names the object. */
	assert_string_equal(spec_error("\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\",\"object\":\"\"}]"),
			    "");
	assert_string_equal(spec_error(O ",\"type\":5"), "type: not a string");
	/* continuous settings */
	assert_string_equal(spec_error(O ",\"continuous\":{\"ring\":true,\"file_count\":10,\"file_size\":100,"
					 "\"session_limit\":604800}"),
			    "");
	assert_string_equal(spec_error(O ",\"continuous\":{\"session_limit\":604801}"),
			    "session_limit: outside 0..604800");
	assert_string_equal(spec_error(O ",\"continuous\":{\"file_count\":10001}"), "file_count: outside 0..10000");
	assert_string_equal(spec_error(O ",\"continuous\":{\"ring\":1}"), "continuous.ring: not true or false");
	assert_string_equal(spec_error(O ",\"continuous\":5"), "continuous: not an object");
#undef O
}

static void test_poll_sample(void **state)
{
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};
	const char *text = "{\"start\":[{\"id\":\"" ID1 "\",\"type\":\"simple\","
			   "\"filter\":{\"destination_port\":53,\"protocol\":17},"
			   "\"from_ns\":1795470790071828621,\"to_ns\":1795471090071828621,"
			   "\"packet_limit\":10000,\"deadline_ms\":4908},"
			   "{\"id\":\"" ID2 "\",\"type\":\"simple\",\"from_ns\":5,\"to_ns\":5,\"packet_limit\":1}]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_int_equal(a.n_start, 2);
	assert_true(a.start[0].sample);
	assert_string_equal(a.start[0].error, "");
	assert_string_equal(a.start[0].filter, "{\"destination_port\":53,\"protocol\":17}");
	assert_int_equal(a.start[0].from_ns, 1795470790071828621ull);
	assert_int_equal(a.start[0].to_ns, 1795471090071828621ull);
	assert_int_equal(a.start[0].packet_limit, 10000);
	assert_int_equal(a.start[0].deadline_ms, 4908);
	assert_int_equal(a.start[0].n_outputs, 0); /* a sample needs no bucket */
	/* One instant; no filter; deadline not given: the default. */
	assert_string_equal(a.start[1].error, "");
	assert_string_equal(a.start[1].filter, "{}");
	assert_int_equal(a.start[1].from_ns, 5);
	assert_int_equal(a.start[1].to_ns, 5);
	assert_int_equal(a.start[1].deadline_ms, AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS);
	agentproto_poll_done(&a);

	/* A full start is not a sample. */
	assert_int_equal(agentproto_poll_parse("{\"start\":[{\"id\":\"" ID1 "\"}]}",
					       strlen("{\"start\":[{\"id\":\"" ID1 "\"}]}"), &a, &err),
			 0);
	assert_false(a.start[0].sample);
	agentproto_poll_done(&a);
}

static void test_poll_sample_fields(void **state)
{
	(void)state;
#define S "\"type\":\"simple\","
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":3"), "");
	assert_string_equal(spec_error(S "\"to_ns\":2,\"packet_limit\":3"), "from_ns: missing");
	assert_string_equal(spec_error(S "\"from_ns\":null,\"to_ns\":2,\"packet_limit\":3"), "from_ns: missing");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"packet_limit\":3"), "to_ns: missing");
	assert_string_equal(spec_error(S "\"from_ns\":3,\"to_ns\":2,\"packet_limit\":3"), "from_ns: after to_ns");
	assert_string_equal(spec_error(S "\"from_ns\":-1,\"to_ns\":2,\"packet_limit\":3"),
			    "from_ns: outside 0..9223372036854775807");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":\"2\",\"packet_limit\":3"),
			    "to_ns: not a whole number");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2"), "packet_limit: a sample needs 1..1000000");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":0"),
			    "packet_limit: a sample needs 1..1000000");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":1000001"),
			    "packet_limit: outside 0..1000000");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":3,\"deadline_ms\":-5"),
			    "deadline_ms: outside 0..18446744073709551615");
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":3,\"filter\":7"),
			    "filter: not an object");
	/* Full-capture fields do not matter to a sample. */
	assert_string_equal(spec_error(S "\"from_ns\":1,\"to_ns\":2,\"packet_limit\":3,\"time_limit\":-1,"
					 "\"object\":\"../x\""),
			    "");
	assert_string_equal(spec_error("\"type\":\"azure\""), "type: 'azure' captures are not supported by this agent");
#undef S
}

static void test_poll_sample_deadline_clamped(void **state)
{
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};
	const char *text = "{\"start\":[{\"id\":\"" ID1 "\",\"type\":\"simple\",\"from_ns\":1,\"to_ns\":2,"
			   "\"packet_limit\":1,\"deadline_ms\":99999999999}]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_string_equal(a.start[0].error, "");
	assert_int_equal(a.start[0].deadline_ms, AGENTPROTO_MAX_SAMPLE_DEADLINE_MS);
	agentproto_poll_done(&a);
}

static void test_poll_filter_default(void **state)
{
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};
	const char *text =
		"{\"start\":[{\"id\":\"" ID1 "\",\"outputs\":[{\"kind\":\"bucket\",\"target\":\"file:///b\"}]}]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_string_equal(a.start[0].error, "");
	assert_string_equal(a.start[0].filter, "{}");
	assert_int_equal(a.start[0].time_limit_s, 0);
	assert_int_equal(a.start[0].snaplen, 0);
	assert_string_equal(a.start[0].outputs[0].object, "");
	agentproto_poll_done(&a);
}

static void test_body_bound(void **state)
{
	AgentPollAnswer a = {0};
	ErrBuf err = {{0}};

	(void)state;
	assert_int_equal(agentproto_poll_parse("{}", AGENTPROTO_MAX_BODY + 1, &a, &err), -EMSGSIZE);
}

/* ---- proto: job records ---- */

static void test_job_json_roundtrip(void **state)
{
	AgentJobReport r = {0}, back = {{0}};
	ErrBuf err = {{0}};
	char *text = NULL;

	(void)state;
	memcpy(r.id, ID1, sizeof(r.id));
	r.state = PART_DONE;
	r.packets = 1ull << 40;
	r.bytes = 5;
	r.drops = 2;
	r.stop_reason = JOB_STOP_PACKETS;
	strcpy(r.object, "pcap_a.pcap");
	assert_int_equal(agentproto_job_to_json(&r, &text, &err), 0);
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(text);
	/* a failure says what failed; a kind this side does not know is still one */
	r.state = PART_FAILED;
	r.failure = PART_FAIL_FILE;
	strcpy(r.error, "/var/captures/x.cap: Permission denied");
	assert_int_equal(agentproto_job_to_json(&r, &text, &err), 0);
	assert_non_null(strstr(text, "\"failure\":\"file\""));
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(text);
	text = "{\"id\":\"" ID1 "\",\"state\":\"failed\",\"stop_reason\":\"error\",\"failure\":\"cosmic\"}";
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), 0);
	assert_int_equal(back.failure, PART_FAIL_INTERNAL);

	assert_int_equal(agentproto_job_from_json("{\"id\":\"x\"}", 10, &back, &err), -EINVAL);
	assert_string_equal(err.msg, "job: id: must be 32 hex digits");
	text = "{\"id\":\"" ID1 "\",\"state\":\"sleeping\",\"stop_reason\":\"none\"}";
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), -EINVAL);
	assert_string_equal(err.msg, "job: state: must be running, captured, uploading, done, failed or upload_failed");
	text = "{\"id\":\"" ID1 "\",\"state\":\"done\",\"stop_reason\":\"none\",\"packets\":-3}";
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), -EINVAL);
	text = "{\"id\":\"" ID1 "\",\"state\":\"done\",\"stop_reason\":\"none\",\"object\":\"a/b\"}";
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), -EINVAL);
}

static void test_error_message(void **state)
{
	char msg[32];
	const char *body = "{\"success\":false,\"errors\":[{\"code\":10000,\"message\":\"token: not valid\"}]}";

	(void)state;
	agentproto_error_message(body, strlen(body), msg, sizeof(msg));
	assert_string_equal(msg, "token: not valid");
	agentproto_error_message("<html>", 6, msg, sizeof(msg));
	assert_string_equal(msg, "");
	body = "{\"errors\":[{\"message\":\"0123456789012345678901234567890123456789\"}]}";
	agentproto_error_message(body, strlen(body), msg, sizeof(msg));
	assert_string_equal(msg, "0123456789012345678901234567890"); /* cut to fit */
}

static void test_names(void **state)
{
	char long_name[80];

	(void)state;
	assert_true(agentproto_name_valid("web01"));
	assert_true(agentproto_name_valid("ORD_02.b-1"));
	assert_false(agentproto_name_valid(""));
	assert_false(agentproto_name_valid(NULL));
	assert_false(agentproto_name_valid("web 01"));
	assert_false(agentproto_name_valid("web/01"));
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	assert_true(agentproto_name_valid(long_name));
	long_name[63] = 'a';
	long_name[64] = '\0';
	assert_false(agentproto_name_valid(long_name));
	assert_true(agentproto_object_valid("pcap_x.pcap"));
	assert_false(agentproto_object_valid(".x"));
	assert_false(agentproto_object_valid("a/b"));
}

/* ---- the controller's side ---- */

/* The controller's reading of a report body (text); the error or "". */
static const char *report_error(const char *text, AgentReport *ret)
{
	static char msg[256];
	AgentReport rep = {0};
	ErrBuf err = {{0}};
	json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	int r;

	assert_non_null(body);
	r = agentproto_report_parse(body, &rep, &err);
	json_decref(body);
	snprintf(msg, sizeof(msg), "%s", r < 0 ? err.msg : "");
	if (r == 0 && ret)
		*ret = rep;
	else
		agentproto_report_done(&rep);
	return msg;
}

static void test_report_parse(void **state)
{
	AgentReport rep = {0};
	char long_error[700];

	(void)state;
	assert_string_equal(report_error("{\"name\":\"web01\",\"colo\":\"ord02\",\"version\":\"0.1.0\","
					 "\"interfaces\":[\"eth0\",\"lo\"],\"hello\":true,"
					 "\"history\":{\"recording\":true},"
					 "\"jobs\":[{\"id\":\"" ID1 "\",\"state\":\"running\",\"packets\":3},"
					 "{\"id\":\"" ID2 "\",\"state\":\"done\",\"stop_reason\":\"time\","
					 "\"object\":\"../../etc/passwd\",\"error\":\"x\"}]}",
					 &rep),
			    "");
	assert_string_equal(rep.name, "web01");
	assert_string_equal(rep.colo, "ord02");
	assert_string_equal(rep.version, "0.1.0");
	assert_string_equal(rep.interfaces, "eth0,lo");
	assert_true(rep.hello);
	assert_true(json_is_true(json_object_get(rep.history, "recording")));
	assert_int_equal(rep.n_jobs, 2);
	assert_int_equal(rep.jobs[0].state, PART_RUNNING);
	assert_int_equal(rep.jobs[0].packets, 3);
	assert_int_equal(rep.jobs[0].stop_reason, JOB_STOP_NONE);
	assert_int_equal(rep.jobs[1].stop_reason, JOB_STOP_TIME);
	/* The controller names objects itself: one that is no object name is dropped. */
	assert_string_equal(rep.jobs[1].object, "");
	assert_string_equal(rep.jobs[1].error, "x");
	agentproto_report_done(&rep);

	assert_string_equal(report_error("{}", NULL), "name: 1..63 characters of A-Z a-z 0-9 . _ -");
	assert_string_equal(report_error("{\"name\":\"a b\"}", NULL), "name: 1..63 characters of A-Z a-z 0-9 . _ -");
	assert_string_equal(report_error("{\"name\":\"a\",\"colo\":\"x/y\"}", NULL),
			    "colo: 1..63 characters of A-Z a-z 0-9 . _ -");
	assert_string_equal(report_error("{\"name\":\"a\",\"hello\":1}", NULL), "hello: must be true or false");
	assert_string_equal(report_error("{\"name\":\"a\",\"interfaces\":\"eth0\"}", NULL),
			    "interfaces: must be an array of names");
	assert_string_equal(report_error("{\"name\":\"a\",\"interfaces\":[3]}", NULL),
			    "interfaces[0]: must be an interface name");
	assert_string_equal(report_error("{\"name\":\"a\",\"history\":[]}", NULL),
			    "history: must be an object of at most 16 members");
	/* Kept for every agent and shown to users: scalars, short strings. */
	assert_string_equal(report_error("{\"name\":\"a\",\"history\":{\"x\":{\"y\":1}}}", NULL),
			    "history: members must be numbers, booleans, null or strings of at most 512 bytes");
	memset(long_error, 'e', sizeof(long_error) - 1);
	long_error[sizeof(long_error) - 1] = '\0';
	{
		char body[800];

		snprintf(body, sizeof(body), "{\"name\":\"a\",\"history\":{\"error\":\"%s\"}}", long_error);
		assert_string_equal(report_error(body, NULL), "history: members must be numbers, booleans, null or "
							      "strings of at most 512 bytes");
	}
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":{}}", NULL),
			    "jobs: must be an array of at most 1024 reports");
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":[5]}", NULL), "jobs[0]: must be an object");
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":[{\"id\":\"x\",\"state\":\"done\"}]}", NULL),
			    "jobs[0].id: must be 32 hex digits");
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":[{\"id\":\"" ID1 "\",\"state\":\"lost\"}]}", NULL),
			    "jobs[0].state: must be running, captured, uploading, done, failed or upload_failed");
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":[{\"id\":\"" ID1 "\",\"state\":\"done\","
					 "\"packets\":-1}]}",
					 NULL),
			    "jobs[0].packets: outside 0..9223372036854775807");
	assert_string_equal(report_error("{\"name\":\"a\",\"jobs\":[{\"id\":\"" ID1 "\",\"state\":\"done\","
					 "\"stop_reason\":\"tired\"}]}",
					 NULL),
			    "jobs[0].stop_reason: must be none, time, packets, bytes, user, agent_shutdown or error");
	memset(long_error, 'e', sizeof(long_error));
	memcpy(long_error, "{\"name\":\"a\",\"version\":\"", 23);
	memcpy(long_error + sizeof(long_error) - 4, "\"}", 3);
	assert_string_equal(report_error(long_error, NULL), "version: must be a string of at most 512 bytes");
}

/* What the agent writes, the controller reads. */
static void test_report_roundtrip(void **state)
{
	const char *ifaces[] = {"eth0", "eth1"};
	AgentIdent who = {.name = "web01", .colo = "ord02", .version = "1.2", .ifaces = ifaces, .n_ifaces = 2};
	AgentHistory h = {.recording = true, .packets = 7, .sample_rate = 100};
	AgentJobReport jobs[1] = {{.id = ID1,
				   .state = PART_FAILED,
				   .packets = 9,
				   .stop_reason = JOB_STOP_ERROR,
				   .object = "pcap_x.pcap",
				   .error = "filter: bad"}};
	AgentReport rep = {0};
	char *text = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(agentproto_report_build(&who, true, &h, jobs, 1, &text, &err), 0);
	assert_string_equal(report_error(text, &rep), "");
	free(text);
	assert_string_equal(rep.name, "web01");
	assert_string_equal(rep.interfaces, "eth0,eth1");
	assert_true(rep.hello);
	assert_int_equal(json_integer_value(json_object_get(rep.history, "packets")), 7);
	assert_int_equal(rep.n_jobs, 1);
	assert_memory_equal(&rep.jobs[0], &jobs[0], sizeof(jobs[0]));
	agentproto_report_done(&rep);
}

static void test_report_answer_build(void **state)
{
	char ids[2][JOB_ID_LEN + 1] = {ID1, ID2};
	AgentReportAnswer a = {.ack = ids, .n_ack = 2, .heartbeat_ms = 5000, .poll_timeout_ms = 25000}, back = {0};
	char *text = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(agentproto_report_answer_build(&a, &text, &err), 0);
	assert_string_equal(text,
			    "{\"ack\":[\"" ID1 "\",\"" ID2 "\"],\"heartbeat_ms\":5000,\"poll_timeout_ms\":25000}");
	assert_int_equal(agentproto_report_answer_parse(text, strlen(text), &back, &err), 0);
	assert_int_equal(back.n_ack, 2);
	assert_string_equal(back.ack[1], ID2);
	assert_int_equal(back.heartbeat_ms, 5000);
	assert_int_equal(back.poll_timeout_ms, 25000);
	agentproto_report_answer_done(&back);
	free(text);
}

/* A job's part → start → poll answer text → what the agent reads. */
static void test_spec_roundtrip(void **state)
{
	Job full = {.id = ID1,
		    .type = JOB_FULL,
		    .filter_model = "{\"clauses\":[{\"src\":[\"192.0.2.1\"],\"both\":true}]}",
		    .snaplen = 128,
		    .time_limit_s = 18000,
		    .packet_limit = 5,
		    .byte_limit = 4294967295u,
		    .colo_name = "web01",
		    .outputs = {{JOB_OUTPUT_BUCKET, "file:///srv/b"}, {JOB_OUTPUT_FILE, "/var/captures/a.cap"}},
		    .n_outputs = 2,
		    .continuous = {
			    .on = true, .ring = true, .file_count = 10, .file_size = 1000, .session_limit_s = 604800}};
	Job sample = {.id = ID2,
		      .type = JOB_SIMPLE,
		      .time_limit_s = 300,
		      .packet_limit = 100,
		      .offset_time_ns = 1000 * (int64_t)NSEC_PER_SEC};
	JobPart part = {.job_id = ID1, .agent = "web01", .object = "pcap_" ID1 "_web01.pcap"};
	JobPart spart = {.job_id = ID2, .agent = "web01", .object = "web01.pcap"};
	AgentJobSpec specs[2];
	char stops[1][JOB_ID_LEN + 1] = {ID2};
	AgentPollAnswer out = {.start = specs, .n_start = 2, .stop = stops, .n_stop = 1}, in = {0};
	const AgentJobSpec *f, *s;
	char *text = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(agentproto_spec_from_job(&full, &part, 0, &specs[0], &err), 0);
	assert_int_equal(agentproto_spec_from_job(&sample, &spart, 4000, &specs[1], &err), 0);
	assert_int_equal(agentproto_poll_build(&out, &text, &err), 0);
	agentproto_spec_done(&specs[0]);
	agentproto_spec_done(&specs[1]);
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &in, &err), 0);
	free(text);
	assert_int_equal(in.n_start, 2);
	assert_int_equal(in.n_stop, 1);
	assert_string_equal(in.stop[0], ID2);
	f = &in.start[0];
	assert_string_equal(f->error, "");
	assert_false(f->sample);
	assert_string_equal(f->filter, full.filter_model);
	assert_int_equal(f->snaplen, 128);
	assert_int_equal(f->time_limit_s, 18000);
	assert_int_equal(f->packet_limit, 5);
	assert_int_equal(f->byte_limit, 4294967295u);
	assert_int_equal(f->n_outputs, 2);
	assert_int_equal(f->outputs[0].kind, JOB_OUTPUT_BUCKET);
	assert_string_equal(f->outputs[0].target, "file:///srv/b");
	assert_string_equal(f->outputs[0].object, "pcap_" ID1 "_web01.pcap");
	assert_int_equal(f->outputs[1].kind, JOB_OUTPUT_FILE);
	assert_string_equal(f->outputs[1].target, "/var/captures/a.cap");
	assert_string_equal(f->outputs[1].object, "");
	assert_true(f->continuous.on);
	assert_true(f->continuous.ring);
	assert_int_equal(f->continuous.file_count, 10);
	assert_int_equal(f->continuous.file_size, 1000);
	assert_int_equal(f->continuous.session_limit_s, 604800);
	s = &in.start[1];
	assert_string_equal(s->error, "");
	assert_true(s->sample);
	assert_string_equal(s->filter, "{}");
	assert_int_equal(s->from_ns, 700 * NSEC_PER_SEC);
	assert_int_equal(s->to_ns, 1000 * NSEC_PER_SEC);
	assert_int_equal(s->packet_limit, 100);
	assert_int_equal(s->deadline_ms, 4000);
	assert_int_equal(s->n_outputs, 0);
	agentproto_poll_done(&in);
}

/* A grant, in a start and as the upload endpoint's answer, reads back as it
 * was written; URLs and headers that could not go into a request line as
 * they are, or a request out of bounds, are refused naming the member. */
static void test_upload_grant(void **state)
{
	AgentSignedRequest parts[2] = {
		{.method = "PUT", .url = "http://127.0.0.1:7480/b/pcap_x?partNumber=3&uploadId=U&X-Amz-Signature=a"},
		{.method = "PUT", .url = "http://127.0.0.1:7480/b/pcap_x?partNumber=4&uploadId=U&X-Amz-Signature=b"},
	};
	AgentUploadGrant g = {.store = AGENT_STORE_S3,
			      .expires_in_s = 900,
			      .part_size = 8u << 20,
			      .upload_id = "U",
			      .complete = {.method = "POST", .url = "https://h/b/o?uploadId=U&sig=1"},
			      .abort = {.method = "DELETE", .url = "https://h/b/o?uploadId=U&sig=2"},
			      .check = {.method = "GET", .url = "https://h/b/o?sig=3"},
			      .first_part = 3,
			      .parts = parts,
			      .n_parts = 2},
			 in = {0};
	AgentUploadRequest q = {.attempt = 2, .upload_id = "U", .first_part = 3, .n_parts = 2, .complete = true}, qin;
	char *text = NULL;
	json_t *body;
	ErrBuf err;

	(void)state;
	assert_int_equal(agentproto_grant_build(&g, &text, &err), 0);
	assert_int_equal(agentproto_grant_parse(text, strlen(text), &in, &err), 0);
	free(text);
	assert_int_equal(in.store, AGENT_STORE_S3);
	assert_int_equal(in.expires_in_s, 900);
	assert_int_equal(in.part_size, 8u << 20);
	assert_string_equal(in.upload_id, "U");
	assert_string_equal(in.create.method, "");
	assert_null(in.create.url);
	assert_string_equal(in.complete.method, "POST");
	assert_string_equal(in.complete.url, g.complete.url);
	assert_string_equal(in.abort.url, g.abort.url);
	assert_string_equal(in.check.method, "GET");
	assert_int_equal(in.first_part, 3);
	assert_int_equal(in.n_parts, 2);
	assert_string_equal(in.parts[1].url, parts[1].url);
	agentproto_grant_done(&in);

	/* Azure: a header goes with the complete request */
	{
		AgentUploadGrant az = {.store = AGENT_STORE_AZURE,
				       .expires_in_s = 60,
				       .part_size = 8u << 20,
				       .upload_id = "0123456789abcdef",
				       .complete = {.method = "PUT",
						    .url = "http://127.0.0.1:10000/a/c/o?comp=blocklist&sig=x",
						    .header = "x-ms-blob-type: BlockBlob"}};

		assert_int_equal(agentproto_grant_build(&az, &text, &err), 0);
		assert_int_equal(agentproto_grant_parse(text, strlen(text), &in, &err), 0);
		free(text);
		assert_int_equal(in.store, AGENT_STORE_AZURE);
		assert_string_equal(in.complete.header, "x-ms-blob-type: BlockBlob");
		assert_null(in.remove.url);
		agentproto_grant_done(&in);
		/* a ring's file that left the ring: its DELETE */
		az.complete = (AgentSignedRequest){0};
		az.remove = (AgentSignedRequest){.method = "DELETE", .url = "http://127.0.0.1:10000/a/c/o_1.cap?sig=d"};
		assert_int_equal(agentproto_grant_build(&az, &text, &err), 0);
		assert_non_null(strstr(text, "\"delete\""));
		assert_int_equal(agentproto_grant_parse(text, strlen(text), &in, &err), 0);
		free(text);
		assert_string_equal(in.remove.method, "DELETE");
		assert_string_equal(in.remove.url, az.remove.url);
		assert_null(in.complete.url);
		agentproto_grant_done(&in);
	}

	/* refusals */
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"{\"store\":\"gcs\",\"expires_in\":1,\"part_size\":8388608}", "grant.store: not s3 or azure"},
		{"{\"store\":\"s3\",\"expires_in\":0,\"part_size\":8388608}",
		 "grant: expires_in and part_size (>= 5 MiB) are needed"},
		{"{\"store\":\"s3\",\"expires_in\":1,\"part_size\":8388608,\"check\":{\"method\":\"GET\","
		 "\"url\":\"file:///etc/passwd\"}}",
		 "grant.check.url: not an http(s) URL of at most 4096 bytes without blanks"},
		{"{\"store\":\"s3\",\"expires_in\":1,\"part_size\":8388608,\"check\":{\"method\":\"GET\","
		 "\"url\":\"http://h/a b\"}}",
		 "grant.check.url: not an http(s) URL of at most 4096 bytes without blanks"},
		{"{\"store\":\"s3\",\"expires_in\":1,\"part_size\":8388608,\"abort\":{\"method\":\"PATCH\","
		 "\"url\":\"http://h/\"}}",
		 "grant.abort.method: not GET, PUT, POST or DELETE"},
		{"{\"store\":\"s3\",\"expires_in\":1,\"part_size\":8388608,\"complete\":{\"method\":\"PUT\","
		 "\"url\":\"http://h/\",\"header\":\"x\\r\\nEvil: 1\"}}",
		 "grant.complete.header: a control or non-ASCII byte"},
		{"{\"store\":\"s3\",\"expires_in\":1,\"part_size\":8388608,\"first_part\":0,\"parts\":[{"
		 "\"method\":\"PUT\",\"url\":\"http://h/\"}]}",
		 "grant.first_part: parts are numbered from 1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (agentproto_grant_parse(bad[i].text, strlen(bad[i].text), &in, &err) != -EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		assert_string_equal(err.msg, bad[i].msg);
	}

	/* the request */
	assert_int_equal(agentproto_upload_request_build(&q, &text, &err), 0);
	body = json_loads(text, 0, NULL);
	free(text);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), 0);
	json_decref(body);
	assert_int_equal(qin.attempt, 2);
	assert_string_equal(qin.upload_id, "U");
	assert_int_equal(qin.first_part, 3);
	assert_int_equal(qin.n_parts, 2);
	assert_true(qin.complete);
	assert_false(qin.create || qin.abort || qin.check || qin.remove);
	assert_int_equal(qin.file, 0);
	/* a continuous capture's file, and its delete */
	q = (AgentUploadRequest){.attempt = 0, .file = 7, .remove = true};
	assert_int_equal(agentproto_upload_request_build(&q, &text, &err), 0);
	body = json_loads(text, 0, NULL);
	free(text);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), 0);
	json_decref(body);
	assert_int_equal(qin.file, 7);
	assert_true(qin.remove);
	assert_false(qin.create || qin.complete);
	body = json_loads("{\"delete\":true}", 0, NULL);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), -EINVAL);
	assert_string_equal(err.msg, "delete: only of a continuous capture's file (give file)");
	json_decref(body);
	body = json_loads("{\"file\":-1}", 0, NULL);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), -ERANGE);
	json_decref(body);
	body = json_loads("{\"first_part\":10000,\"parts\":2}", 0, NULL);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), -EINVAL);
	assert_string_equal(err.msg, "first_part: parts are numbered 1..10000");
	json_decref(body);
	body = json_loads("{\"parts\":65}", 0, NULL);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), -ERANGE);
	json_decref(body);
	body = json_loads("{\"upload_id\":\"a b\"}", 0, NULL);
	assert_int_equal(agentproto_upload_request_parse(body, &qin, &err), -EINVAL);
	json_decref(body);
}

/* A start carries its grant and attempt; a report its attempt and the
 * state upload_failed. */
static void test_start_with_upload(void **state)
{
	Job full = {.id = ID1,
		    .type = JOB_FULL,
		    .outputs = {{JOB_OUTPUT_BUCKET, "s3://b/p?secret-access-key=REDACTED"}},
		    .n_outputs = 1};
	JobPart part = {.job_id = ID1, .agent = "web01", .object = "pcap_" ID1 "_web01.pcap", .attempt = 3};
	AgentJobSpec spec;
	AgentPollAnswer out = {.start = &spec, .n_start = 1}, in = {0};
	AgentJobReport rep = {.id = ID1, .state = PART_UPLOAD_FAILED, .stop_reason = JOB_STOP_PACKETS, .attempt = 3},
		       back;
	char *text = NULL;
	ErrBuf err;

	(void)state;
	assert_int_equal(agentproto_spec_from_job(&full, &part, 0, &spec, &err), 0);
	assert_int_equal(spec.attempt, 3);
	spec.outputs[0].upload = calloc(1, sizeof(*spec.outputs[0].upload));
	*spec.outputs[0].upload = (AgentUploadGrant){.store = AGENT_STORE_S3, .expires_in_s = 5, .part_size = 8 << 20};
	spec.outputs[0].upload->create =
		(AgentSignedRequest){.method = "POST", .url = strdup("http://h/b/p/o?uploads")};
	assert_int_equal(agentproto_poll_build(&out, &text, &err), 0);
	agentproto_spec_done(&spec);
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &in, &err), 0);
	free(text);
	assert_int_equal(in.n_start, 1);
	assert_string_equal(in.start[0].error, "");
	assert_int_equal(in.start[0].attempt, 3);
	assert_non_null(in.start[0].outputs[0].upload);
	assert_string_equal(in.start[0].outputs[0].upload->create.url, "http://h/b/p/o?uploads");
	agentproto_poll_done(&in);

	assert_int_equal(agentproto_job_to_json(&rep, &text, &err), 0);
	assert_non_null(strstr(text, "\"state\":\"upload_failed\""));
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), 0);
	free(text);
	assert_int_equal(back.state, PART_UPLOAD_FAILED);
	assert_int_equal(back.attempt, 3);
}

/* ---- live streams ---- */

#define TAP1 "00112233445566ff"

static void test_poll_streams(void **state)
{
	AgentStreamOrder orders[2] = {{ID1, TAP1}, {ID2, "abcdefabcdefabcd"}};
	AgentPollAnswer out = {.streams = orders, .n_streams = 2}, in = {0};
	ErrBuf err = {{0}};
	char *text = NULL;
	const char *bad = "{\"streams\":[{\"id\":\"" ID1 "\",\"tap\":\"00112233445566FF\"},"
			  "{\"id\":\"" ID1 "\",\"tap\":\"0011\"},{\"id\":\"x\",\"tap\":\"" TAP1 "\"},7]}";

	(void)state;
	assert_int_equal(agentproto_poll_build(&out, &text, &err), 0);
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &in, &err), 0);
	free(text);
	assert_int_equal(in.n_streams, 2);
	assert_string_equal(in.streams[0].id, ID1);
	assert_string_equal(in.streams[0].tap, TAP1);
	assert_string_equal(in.streams[1].tap, "abcdefabcdefabcd");
	agentproto_poll_done(&in);

	/* No member at all without orders: what older agents know. */
	out.n_streams = 0;
	assert_int_equal(agentproto_poll_build(&out, &text, &err), 0);
	assert_null(strstr(text, "streams"));
	free(text);

	/* Bad entries are skipped and counted; taps are lowercased. */
	assert_int_equal(agentproto_poll_parse(bad, strlen(bad), &in, &err), 0);
	assert_int_equal(in.n_streams, 1);
	assert_int_equal(in.n_skipped, 3);
	assert_string_equal(in.streams[0].tap, TAP1);
	agentproto_poll_done(&in);
	assert_int_equal(agentproto_poll_parse("{\"streams\":{}}", 14, &in, &err), -EBADMSG);
	assert_string_equal(err.msg, "poll: streams: not an array");
}

static void test_poll_streams_bound(void **state)
{
	char text[AGENTPROTO_MAX_STREAMS * 80 + 64];
	AgentPollAnswer in = {0};
	ErrBuf err = {{0}};
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"streams\":[");
	for (unsigned i = 0; i <= AGENTPROTO_MAX_STREAMS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{\"id\":\"" ID1 "\",\"tap\":\"" TAP1 "\"}",
				      i ? "," : "");
	snprintf(text + n, sizeof(text) - n, "]}");
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &in, &err), -EMSGSIZE);
	assert_string_equal(err.msg, "poll: 65 stream orders, over 64");
}

typedef struct Query {
	const char *keys[8];
	const char *values[8];
} Query;

static const char *query_get(void *ctx, const char *key)
{
	Query *q = ctx;

	for (size_t i = 0; i < 8 && q->keys[i]; i++)
		if (strcmp(q->keys[i], key) == 0)
			return q->values[i];
	return NULL;
}

/* The path's query as the controller's HTTP layer hands it over. */
static void split_query(char *path, Query *q)
{
	char *p = strchr(path, '?');
	size_t i = 0;

	assert_non_null(p);
	*p++ = '\0';
	while (p && *p && i < 8) {
		char *amp = strchr(p, '&'), *eq;

		if (amp)
			*amp = '\0';
		eq = strchr(p, '=');
		assert_non_null(eq);
		*eq = '\0';
		q->keys[i] = p;
		q->values[i++] = eq + 1;
		p = amp ? amp + 1 : NULL;
	}
}

static void test_stream_query(void **state)
{
	AgentStreamChunk c = {.name = "web01", .id = ID1, .tap = TAP1, .offset = 524312, .watermark_ns = 17};
	AgentStreamChunk back;
	ErrBuf err = {{0}};
	char path[256];
	Query q = {{0}};

	(void)state;
	assert_int_equal(agentproto_stream_path(&c, path, sizeof(path)), 0);
	assert_string_equal(path, "/agent/v1/stream?name=web01&id=" ID1 "&tap=" TAP1 "&offset=524312&watermark_ns=17");
	split_query(path, &q);
	assert_string_equal(path, "/agent/v1/stream");
	assert_int_equal(agentproto_stream_parse(query_get, &q, &back, &err), 0);
	assert_memory_equal(&back, &c, sizeof(c));

	c = (AgentStreamChunk){.name = "a", .id = ID2, .tap = TAP1, .end = true};
	assert_int_equal(agentproto_stream_path(&c, path, sizeof(path)), 0);
	assert_string_equal(path, "/agent/v1/stream?name=a&id=" ID2 "&tap=" TAP1 "&offset=0&end=1");
	c.error = AGENT_STREAM_GONE;
	assert_int_equal(agentproto_stream_path(&c, path, sizeof(path)), 0);
	assert_string_equal(path, "/agent/v1/stream?name=a&id=" ID2 "&tap=" TAP1 "&offset=0&end=1&error=gone");
	memset(&q, 0, sizeof(q));
	split_query(path, &q);
	assert_int_equal(agentproto_stream_parse(query_get, &q, &back, &err), 0);
	assert_int_equal(back.error, AGENT_STREAM_GONE);
	assert_true(back.end);
	assert_int_equal(agentproto_stream_path(&c, path, 40), -ENAMETOOLONG);
	/* No watermark and no end: a buffer the path just fits is enough. */
	c = (AgentStreamChunk){.name = "a", .id = ID2, .tap = TAP1};
	assert_int_equal(agentproto_stream_path(&c, path, sizeof(path)), 0);
	assert_int_equal(agentproto_stream_path(&c, path, strlen(path) + 1), 0);
	assert_int_equal(agentproto_stream_path(&c, path, strlen(path)), -ENAMETOOLONG);
}

static const char *stream_query_error(const char *query)
{
	static char msg[256];
	char path[256];
	AgentStreamChunk c;
	ErrBuf err = {{0}};
	Query q = {{0}};

	snprintf(path, sizeof(path), "/agent/v1/stream?%s", query);
	split_query(path, &q);
	if (agentproto_stream_parse(query_get, &q, &c, &err) != -EINVAL)
		return "ACCEPTED";
	snprintf(msg, sizeof(msg), "%s", err.msg);
	return msg;
}

static void test_stream_query_errors(void **state)
{
	(void)state;
	assert_string_equal(stream_query_error("id=" ID1 "&tap=" TAP1 "&offset=0"),
			    "name: 1..63 characters of A-Z a-z 0-9 . _ -");
	assert_string_equal(stream_query_error("name=a/b&id=" ID1 "&tap=" TAP1 "&offset=0"),
			    "name: 1..63 characters of A-Z a-z 0-9 . _ -");
	assert_string_equal(stream_query_error("name=a&id=12&tap=" TAP1 "&offset=0"), "id: must be 32 hex digits");
	assert_string_equal(stream_query_error("name=a&id=" ID1 "&tap=0011223344556677x&offset=0"),
			    "tap: must be 16 hex digits");
	assert_string_equal(stream_query_error("name=a&id=" ID1 "&tap=" TAP1), "offset: missing");
	assert_string_equal(stream_query_error("name=a&id=" ID1 "&tap=" TAP1 "&offset=-1"),
			    "offset: must be a whole number 0..9223372036854775807");
	assert_string_equal(stream_query_error("name=a&id=" ID1 "&tap=" TAP1 "&offset=0&end=2"),
			    "end: must be a whole number 0..1");
	assert_string_equal(stream_query_error("name=a&id=" ID1 "&tap=" TAP1 "&offset=0&error=ok"),
			    "error: must be unknown, gone, busy or read");
}

static void test_stream_answer(void **state)
{
	AgentStreamAnswer a = {.more = true, .offset = 1u << 20}, b;
	ErrBuf err = {{0}};
	char *text = NULL;

	(void)state;
	assert_int_equal(agentproto_stream_answer_build(&a, &text, &err), 0);
	assert_string_equal(text, "{\"more\":true,\"offset\":1048576}");
	assert_int_equal(agentproto_stream_answer_parse(text, strlen(text), &b, &err), 0);
	free(text);
	assert_true(b.more);
	assert_int_equal(b.offset, 1u << 20);
	a = (AgentStreamAnswer){.more = false, .reason = "the reader left"};
	assert_int_equal(agentproto_stream_answer_build(&a, &text, &err), 0);
	assert_int_equal(agentproto_stream_answer_parse(text, strlen(text), &b, &err), 0);
	free(text);
	assert_false(b.more);
	assert_string_equal(b.reason, "the reader left");
	assert_int_equal(agentproto_stream_answer_parse("{\"more\":1}", 10, &b, &err), -EBADMSG);
	assert_string_equal(err.msg, "stream answer: more: not a boolean");
	assert_int_equal(agentproto_stream_answer_parse("{\"more\":true}", 13, &b, &err), -EBADMSG);
	assert_string_equal(err.msg, "stream answer: offset: missing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_build),
		cmocka_unit_test(test_report_build_non_utf8_error),
		cmocka_unit_test(test_report_history),
		cmocka_unit_test(test_report_answer),
		cmocka_unit_test(test_poll_parse),
		cmocka_unit_test(test_poll_spec_fields),
		cmocka_unit_test(test_poll_sample),
		cmocka_unit_test(test_poll_sample_fields),
		cmocka_unit_test(test_poll_sample_deadline_clamped),
		cmocka_unit_test(test_poll_filter_default),
		cmocka_unit_test(test_body_bound),
		cmocka_unit_test(test_job_json_roundtrip),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_report_parse),
		cmocka_unit_test(test_report_roundtrip),
		cmocka_unit_test(test_report_answer_build),
		cmocka_unit_test(test_spec_roundtrip),
		cmocka_unit_test(test_upload_grant),
		cmocka_unit_test(test_start_with_upload),
		cmocka_unit_test(test_poll_streams),
		cmocka_unit_test(test_poll_streams_bound),
		cmocka_unit_test(test_stream_query),
		cmocka_unit_test(test_stream_query_errors),
		cmocka_unit_test(test_stream_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
