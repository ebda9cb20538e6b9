/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/agent's pure parts: the protocol codec (reports built,
 * answers parsed, malformed input refused with its field named), backoff, the
 * job table's deduplication, the job records on disk (atomic, recovered,
 * faults injected through the I/O seam) and the configuration check; and the
 * controller client's upload against a raw server that drops a kept-alive
 * connection as it is reused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/backoff.h"
#include "agent/ctlclient.h"
#include "agent/jobstore.h"
#include "agent/jobtable.h"
#include "agent/proto.h"

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
	const char *text = "{\"start\":[{\"id\":\"" ID1 "\",\"type\":\"full\","
			   "\"filter\":{\"source_address\":\"192.0.2.1\",\"destination_port\":80,\"protocol\":6},"
			   "\"time_limit\":60,\"packet_limit\":1000,\"byte_limit\":0,"
			   "\"destination_conf\":\"file:///var/b1\",\"object\":\"pcap_" ID1 "_web01.pcap\"},"
			   "{\"id\":\"" ID2 "\",\"type\":\"simple\",\"destination_conf\":\"file:///x\"},"
			   "{\"id\":\"short\"},"
			   "{\"id\":\"" ID2 "\",\"time_limit\":60.5,\"destination_conf\":\"file:///x\"}],"
			   "\"stop\":[\"" ID2 "\",7]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_int_equal(a.n_start, 3);
	assert_int_equal(a.n_skipped, 2); /* the short id and the 7 */
	assert_string_equal(a.start[0].id, ID1);
	assert_string_equal(a.start[0].filter,
			    "{\"source_address\":\"192.0.2.1\",\"destination_port\":80,\"protocol\":6}");
	assert_int_equal(a.start[0].time_limit_s, 60);
	assert_int_equal(a.start[0].packet_limit, 1000);
	assert_int_equal(a.start[0].byte_limit, 0);
	assert_string_equal(a.start[0].destination_conf, "file:///var/b1");
	assert_string_equal(a.start[0].object, "pcap_" ID1 "_web01.pcap");
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
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\""), "");
	assert_string_equal(spec_error("\"type\":\"full\""), "destination_conf: missing");
	assert_string_equal(spec_error("\"destination_conf\":\"\""), "destination_conf: not a non-empty string");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"time_limit\":-1"),
			    "time_limit: outside 0..86400");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"time_limit\":86401"),
			    "time_limit: outside 0..86400");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"time_limit\":30.0"), "");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"packet_limit\":\"5\""),
			    "packet_limit: not a whole number");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"byte_limit\":1e300"),
			    "byte_limit: outside 0..18446744073709551615");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"filter\":[1]"), "filter: not an object");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"filter\":null"), "");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"object\":\"../etc/passwd\""),
			    "object: not 1..200 bytes of [A-Za-z0-9._-] that do not start with '.'");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"object\":\".hidden\""),
			    "object: not 1..200 bytes of [A-Za-z0-9._-] that do not start with '.'");
	/* "" = not given: the agent names the object. */
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"object\":\"\""), "");
	assert_string_equal(spec_error("\"destination_conf\":\"file:///b\",\"type\":5"), "type: not a string");
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
	assert_null(a.start[0].destination_conf); /* a sample needs no bucket */
	/* One instant; no filter; deadline not given: the default. */
	assert_string_equal(a.start[1].error, "");
	assert_string_equal(a.start[1].filter, "{}");
	assert_int_equal(a.start[1].from_ns, 5);
	assert_int_equal(a.start[1].to_ns, 5);
	assert_int_equal(a.start[1].deadline_ms, AGENTPROTO_DEFAULT_SAMPLE_DEADLINE_MS);
	agentproto_poll_done(&a);

	/* A full start is not a sample. */
	assert_int_equal(agentproto_poll_parse("{\"start\":[{\"id\":\"" ID1 "\",\"destination_conf\":\"x\"}]}",
					       strlen("{\"start\":[{\"id\":\"" ID1 "\",\"destination_conf\":\"x\"}]}"),
					       &a, &err),
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
	const char *text = "{\"start\":[{\"id\":\"" ID1 "\",\"destination_conf\":\"file:///b\"}]}";

	(void)state;
	assert_int_equal(agentproto_poll_parse(text, strlen(text), &a, &err), 0);
	assert_string_equal(a.start[0].filter, "{}");
	assert_int_equal(a.start[0].time_limit_s, 0);
	assert_string_equal(a.start[0].object, "");
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

	assert_int_equal(agentproto_job_from_json("{\"id\":\"x\"}", 10, &back, &err), -EINVAL);
	assert_string_equal(err.msg, "job: id: not 32 hex digits");
	text = "{\"id\":\"" ID1 "\",\"state\":\"sleeping\",\"stop_reason\":\"none\"}";
	assert_int_equal(agentproto_job_from_json(text, strlen(text), &back, &err), -EINVAL);
	assert_string_equal(err.msg, "job: state: unknown");
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

/* ---- backoff ---- */

static void test_backoff(void **state)
{
	const uint32_t nominal[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
	Backoff b;

	(void)state;
	backoff_init(&b, 100, 5000);
	for (size_t i = 0; i < sizeof(nominal) / sizeof(nominal[0]); i++) {
		Backoff lo = b, hi = b;
		uint32_t d_lo = backoff_next(&lo, 0), d_hi = backoff_next(&hi, UINT32_MAX);
		uint32_t d = backoff_next(&b, 12345u * (uint32_t)i);

		/* Equal jitter: every delay in [nominal/2, nominal]. */
		assert_int_equal(d_lo, nominal[i] - nominal[i] / 2);
		assert_true(d_hi <= nominal[i] && d_hi >= nominal[i] - nominal[i] / 2);
		assert_true(d >= nominal[i] - nominal[i] / 2 && d <= nominal[i]);
	}
	/* Reaching the nominal maximum exactly. */
	{
		Backoff c;
		uint32_t top = 0;

		backoff_init(&c, 100, 5000);
		for (int i = 0; i < 20; i++)
			top = backoff_next(&c, 2500); /* 2500 % 2501 = 2500: the top of the range */
		assert_int_equal(top, 5000);
	}
	backoff_reset(&b);
	assert_true(backoff_next(&b, 0) == 50);
	/* Degenerate settings stay sane. */
	backoff_init(&b, 0, 0);
	assert_true(backoff_next(&b, 7) <= 1);
}

/* ---- job table ---- */

static void test_jobtable(void **state)
{
	JobTable *t = malloc(sizeof(*t));
	int a = 1, b = 2;
	char id[JOB_ID_LEN + 1];

	(void)state;
	jobtable_init(t);
	assert_int_equal(jobtable_add(t, ID1, &a), 0);
	assert_int_equal(jobtable_add(t, ID1, &b), -EEXIST); /* the same start twice */
	assert_ptr_equal(jobtable_get(t, ID1), &a);
	assert_null(jobtable_get(t, ID2));
	assert_int_equal(jobtable_add(t, ID2, &b), 0);
	assert_int_equal(jobtable_add(t, "short", &b), -EINVAL);
	assert_ptr_equal(jobtable_take(t, ID1), &a);
	assert_null(jobtable_take(t, ID1));
	assert_true(jobtable_recent(t, ID1));
	assert_int_equal(jobtable_add(t, ID1, &a), -EALREADY); /* acknowledged: never again */
	assert_ptr_equal(jobtable_get(t, ID2), &b);
	assert_int_equal(t->n, 1);

	/* Full table. */
	jobtable_init(t);
	for (unsigned i = 0; i < JOBTABLE_MAX; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		assert_int_equal(jobtable_add(t, id, &a), 0);
	}
	assert_int_equal(jobtable_add(t, ID1, &a), -ENOSPC);
	/* The memory of acknowledged ids is bounded: the oldest goes first. */
	for (unsigned i = 0; i < JOBTABLE_MAX; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		assert_non_null(jobtable_take(t, id));
	}
	for (unsigned i = 0; i < JOBTABLE_RECENT; i++) {
		snprintf(id, sizeof(id), "%032x", 100000 + i);
		assert_int_equal(jobtable_add(t, id, &a), 0);
		assert_non_null(jobtable_take(t, id));
	}
	snprintf(id, sizeof(id), "%032x", 0);
	assert_false(jobtable_recent(t, id));
	snprintf(id, sizeof(id), "%032x", 100000 + JOBTABLE_RECENT - 1);
	assert_true(jobtable_recent(t, id));
	free(t);
}

/* ---- job store ---- */

typedef struct FaultState {
	int fail_fsync; /* fail the Nth fsync (1-based); 0 never */
	int fsyncs;
} FaultState;

static int faulty_fsync(const IoOps *self, int fd)
{
	FaultState *s = self->state;

	if (++s->fsyncs == s->fail_fsync)
		return -EIO;
	return io_posix.fsync(&io_posix, fd);
}

static void rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static bool exists(const char *dir, const char *name)
{
	char path[2 * PATH_MAX];
	struct stat st;

	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
	return stat(path, &st) == 0;
}

static void touch(const char *dir, const char *name)
{
	char path[2 * PATH_MAX];
	int fd;

	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static void test_jobstore(void **state)
{
	char tmpl[] = "/tmp/pcapd-test-agent-XXXXXX", data[PATH_MAX], path[2 * PATH_MAX];
	AgentJobReport r = {0}, *v = NULL;
	size_t n = 0, bad = 0;
	JobStore *s = NULL;
	ErrBuf err = {{0}};

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_true(snprintf(data, sizeof(data), "%s/a/b", tmpl) < (int)sizeof(data)); /* parents are created */
	assert_int_equal(jobstore_open(data, NULL, &s, &err), 0);
	memcpy(r.id, ID1, sizeof(r.id));
	r.state = PART_RUNNING;
	assert_int_equal(jobstore_save(s, &r, &err), 0);
	r.state = PART_DONE;
	r.packets = 9;
	assert_int_equal(jobstore_save(s, &r, &err), 0); /* replaces */
	assert_true(snprintf(path, sizeof(path), "%s/jobs", data) < (int)sizeof(path));
	assert_true(exists(path, ID1 ".json"));
	assert_false(exists(path, ID1 ".json.tmp"));
	assert_int_equal(jobstore_spool_path(s, ID1, path, sizeof(path)), 0);
	touch(data, "spool/" ID1 ".pcap");
	assert_true(exists(data, "spool/" ID1 ".pcap"));

	/* Garbage and a record under another id's name are left alone, counted. */
	touch(data, "jobs/" ID2 ".json");
	touch(data, "jobs/leftover.json.tmp");
	touch(data, "jobs/unrelated.txt");
	jobstore_free(s);
	assert_int_equal(jobstore_open(data, NULL, &s, &err), 0);
	assert_false(exists(data, "jobs/leftover.json.tmp")); /* recovery removed it */
	assert_int_equal(jobstore_load(s, &v, &n, &bad, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 1);
	assert_string_equal(v[0].id, ID1);
	assert_int_equal(v[0].state, PART_DONE);
	assert_int_equal(v[0].packets, 9);
	free(v);

	assert_int_equal(jobstore_remove(s, ID1, &err), 0);
	assert_false(exists(data, "jobs/" ID1 ".json"));
	assert_false(exists(data, "spool/" ID1 ".pcap"));
	assert_int_equal(jobstore_remove(s, ID1, &err), 0); /* absent is fine */

	touch(data, "spool/" ID2 ".pcap");
	assert_int_equal(jobstore_clear_spool(s, &err), 0);
	assert_false(exists(data, "spool/" ID2 ".pcap"));
	jobstore_free(s);
	rm_rf(tmpl);
}

static void test_jobstore_fsync_fault(void **state)
{
	char tmpl[] = "/tmp/pcapd-test-agent-XXXXXX";
	FaultState fs = {.fail_fsync = 1};
	IoOps ops = io_posix;
	AgentJobReport r = {0}, *v = NULL;
	size_t n = 0, bad = 0;
	JobStore *s = NULL;
	ErrBuf err = {{0}};

	(void)state;
	ops.fsync = faulty_fsync;
	ops.state = &fs;
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(jobstore_open(tmpl, &ops, &s, &err), 0);
	memcpy(r.id, ID1, sizeof(r.id));
	r.state = PART_DONE;
	assert_int_equal(jobstore_save(s, &r, &err), -EIO);
	assert_non_null(strstr(err.msg, ID1 ".json."));
	assert_non_null(strstr(err.msg, ".tmp"));
	/* Nothing published, nothing left behind. */
	assert_false(exists(tmpl, "jobs/" ID1 ".json"));
	{
		char jobs[128];
		struct dirent *e;
		DIR *d;
		int files = 0;

		snprintf(jobs, sizeof(jobs), "%s/jobs", tmpl);
		d = opendir(jobs);
		assert_non_null(d);
		while ((e = readdir(d)))
			files += e->d_name[0] != '.';
		closedir(d);
		assert_int_equal(files, 0);
	}
	assert_int_equal(jobstore_load(s, &v, &n, &bad, &err), 0);
	assert_int_equal(n + bad, 0);
	free(v);
	jobstore_free(s);
	rm_rf(tmpl);
}

/* ---- configuration ---- */

static const char *check(AgentConfig c)
{
	static ErrBuf err;

	memset(&err, 0, sizeof(err));
	return agent_config_check(&c, &err) == 0 ? "ok" : err.msg;
}

/* ---- the controller client: a file upload on a connection that died ---- */

#define UPLOAD_SIZE 3000

typedef struct RawServer {
	int lfd;
	int bodies_ok; /* whole, correct bodies received */
	bool failed;   /* the server could not play its part */
} RawServer;

/* Reads one request (headers and Content-Length body) from fd; false on EOF
 * first. Checks the body against the file's bytes. */
static bool read_request(int fd, RawServer *rs, bool head_only)
{
	char buf[8192];
	size_t n = 0, want = 0;
	char *end = NULL;

	for (;;) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);

		if (k <= 0 || n + (size_t)k >= sizeof(buf) - 1)
			return false;
		n += (size_t)k;
		buf[n] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "Content-Length: ");

			want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
			if (head_only)
				return true;
		}
		if (end && n >= want)
			break;
	}
	for (size_t i = 0; i < UPLOAD_SIZE; i++)
		if ((unsigned char)end[4 + i] != (unsigned char)(i * 13 + 1))
			return true;
	rs->bodies_ok++;
	return true;
}

static void *raw_server(void *arg)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	RawServer *rs = arg;
	int c1, c2 = -1;

	/* The first request is answered and the connection kept; the second
	 * on it is read up to its headers and the connection closed, as a
	 * server's idle time-out does when it strikes as the client reuses
	 * it. The client must send the whole request again on a new one.
	 * (No cmocka assertions on this thread: the test checks rs.) */
	c1 = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC);
	rs->failed = c1 < 0 || !read_request(c1, rs, false) ||
		     send(c1, ok, sizeof(ok) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ok) - 1 ||
		     !read_request(c1, rs, true);
	if (c1 >= 0)
		close(c1);
	if (!rs->failed) {
		c2 = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC); /* fails once the test shuts lfd */
		rs->failed = c2 < 0 || !read_request(c2, rs, false) ||
			     send(c2, ok, sizeof(ok) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ok) - 1;
	}
	if (c2 >= 0)
		close(c2);
	return NULL;
}

static void test_upload_retried_on_a_dead_connection(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char path[] = "/tmp/pcapd-test-upload-XXXXXX", url[64];
	uint8_t data[UPLOAD_SIZE];
	RawServer rs = {0};
	CtlClient *c = NULL;
	CtlResponse resp = {0};
	ErrBuf err = {{0}};
	pthread_t t;
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	rs.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(rs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(rs.lfd, 4), 0);
	assert_int_equal(getsockname(rs.lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&t, NULL, raw_server, &rs), 0);

	CtlClientConfig cfg = {.base_url = url, .token = "t", .user_agent = "test"};
	long status[2] = {0, 0};
	char why[2][sizeof(err.msg)] = {"", ""};

	assert_int_equal(ctlclient_global_init(&err), 0);
	assert_int_equal(ctlclient_new(&cfg, &c, &err), 0);
	for (int i = 0; i < 2; i++) {
		if (ctlclient_post_file(c, "/agent/v1/sample", "application/vnd.tcpdump.pcap", fd, sizeof(data), 20000,
					&resp, &err) < 0) {
			snprintf(why[i], sizeof(why[i]), "%s", err.msg);
			break;
		}
		status[i] = resp.status;
		ctlclient_response_done(&resp);
	}
	shutdown(rs.lfd, SHUT_RDWR); /* a server still waiting for the retry stops */
	pthread_join(t, NULL);
	ctlclient_free(c);
	ctlclient_global_cleanup();
	close(rs.lfd);
	close(fd);
	if (why[0][0] || why[1][0])
		fail_msg("upload failed: '%s' '%s'", why[0], why[1]);
	assert_int_equal(status[0], 200);
	assert_int_equal(status[1], 200);
	assert_false(rs.failed);
	assert_int_equal(rs.bodies_ok, 2);
}

static void test_config_check(void **state)
{
	const char *ifs[] = {"eth0"};
	AgentConfig good = {.controller = "http://127.0.0.1:8080",
			    .name = "web01",
			    .colo = "ord02",
			    .ifaces = ifs,
			    .n_ifaces = 1,
			    .token = "abc",
			    .data_dir = "/tmp/x"};
	AgentConfig c;

	(void)state;
	assert_string_equal(check(good), "ok");
	c = good;
	c.controller = "ftp://x";
	assert_string_equal(check(c), "--controller: 'ftp://x' is not an http:// or https:// URL (up to 1024 bytes)");
	c.controller = "https://";
	assert_string_not_equal(check(c), "ok");
	c.controller = "HTTPS://ctl.example:8443/pcapd/";
	assert_string_equal(check(c), "ok");
	c.controller = "http://a b";
	assert_string_equal(check(c), "--controller: the URL contains a blank or control character");
	c = good;
	c.name = "web 01";
	assert_string_equal(check(c), "--name: 'web 01' is not 1..63 characters of [A-Za-z0-9._-]");
	c = good;
	c.colo = "";
	assert_string_equal(check(c), "--colo: '' is not 1..63 characters of [A-Za-z0-9._-]");
	c = good;
	c.all_ifaces = true;
	assert_string_equal(check(c), "-i: name the interfaces, or 'all'");
	c.n_ifaces = 0;
	assert_string_equal(check(c), "ok");
	c = good;
	c.token = "ab\r\nX-Evil: 1";
	assert_string_equal(check(c), "--token: contains a blank, control or non-ASCII character");
	c.token = NULL;
	assert_string_equal(check(c), "--token (or PCAPD_AGENT_TOKEN): missing");
	c = good;
	c.bucket_root = "relative";
	assert_string_equal(check(c), "--bucket-root: 'relative' is not an absolute path");
	c = good;
	c.cafile = "/etc/ssl/ca.pem";
	c.insecure = true;
	assert_string_equal(check(c), "--cacert and --insecure: choose one");
	c = good;
	c.block_size = 3000;
	assert_string_equal(check(c), "block size: 3000 is not a power of two");
	c = good;
	c.sample_rate = 1;
	c.sample_snaplen = 262144;
	c.history_bytes = 256 * 1024;
	c.history_age_s = 1;
	assert_string_equal(check(c), "ok");
	c.sample_snaplen = 262145;
	assert_string_equal(check(c), "--sample-snaplen: 262145 is outside 1..262144");
	c.sample_snaplen = 0; /* the default */
	c.history_bytes = 256 * 1024 - 1;
	assert_string_equal(check(c), "--history-size: 262143 bytes is below 262144 (256K)");
	c.history_bytes = 0;
	c.history_age_s = AGENT_MAX_HISTORY_AGE_S + 1;
	assert_string_equal(check(c), "--history-age: 31622401 s is over 31622400 (366 days)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_build),
		cmocka_unit_test(test_report_build_non_utf8_error),
		cmocka_unit_test(test_report_answer),
		cmocka_unit_test(test_poll_parse),
		cmocka_unit_test(test_poll_spec_fields),
		cmocka_unit_test(test_poll_filter_default),
		cmocka_unit_test(test_body_bound),
		cmocka_unit_test(test_job_json_roundtrip),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_jobtable),
		cmocka_unit_test(test_jobstore),
		cmocka_unit_test(test_jobstore_fsync_fault),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_upload_retried_on_a_dead_connection),
		cmocka_unit_test(test_report_history),
		cmocka_unit_test(test_poll_sample),
		cmocka_unit_test(test_poll_sample_fields),
		cmocka_unit_test(test_poll_sample_deadline_clamped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
