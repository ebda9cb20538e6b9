/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the pure parts of src/api: Cloudflare request validation
 * (one table: every field's type, bound and enum, good and bad, with the exact
 * message), the objects rendered for the SDK, the ownership challenge and the
 * credential helpers. No HTTP and no database here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/cloudflare/cloudflare.h"
#include "common/timefmt.h"

#define NOW_NS (1714564800LL * 1000000000LL) /* 2024-05-01T12:00:00Z */

#define SIMPLE "\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":100"
#define FULL                                                                                                           \
	"\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":10,\"colo_name\":\"lab\","                      \
	"\"destination_conf\":\"file:///srv/pcaps\""

typedef struct CreateCase {
	const char *body; /* JSON object */
	const char *msg;  /* NULL: accepted; else the exact message (or its prefix, see prefix) */
	int prefix;       /* msg is only the start of the message (another module's words follow) */
} CreateCase;

static const CreateCase create_cases[] = {
	/* accepted */
	{"{" SIMPLE "}", NULL, 0},
	{"{" FULL "}", NULL, 0},
	{"{" SIMPLE ",\"filter_v1\":null,\"offset_time\":null}", NULL, 0},
	{"{" SIMPLE ",\"time_limit\":300,\"packet_limit\":10000}", NULL, 0},
	{"{" SIMPLE ",\"time_limit\":1,\"packet_limit\":1}", NULL, 0},
	{"{" SIMPLE ",\"time_limit\":10.0}", NULL, 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-05-01T11:00:00Z\"}", NULL, 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-04-30T12:00:00.5Z\"}", NULL, 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-05-01T12:00:04Z\"}", NULL, 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-05-01T13:00:00+01:00\"}", NULL, 0},
	{"{" SIMPLE ",\"filter_v1\":{}}", NULL, 0},
	{"{" SIMPLE ",\"filter_v1\":{\"source_address\":\"192.0.2.1\",\"protocol\":6,\"destination_port\":443}}", NULL,
	 0},
	{"{" SIMPLE ",\"filter_v1\":{\"bpf\":\"tcp and port 80\"}}", NULL, 0},
	{"{" FULL ",\"byte_limit\":1000000000,\"packet_limit\":10000}", NULL, 0},
	{"{" FULL ",\"byte_limit\":1,\"packet_limit\":null}", NULL, 0},
	{"{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":5,\"colo\":\"ORD\","
	 "\"destination_conf\":\"file:///b\"}",
	 NULL, 0},
	{"{" FULL ",\"colo\":\"lab\"}", NULL, 0},
	{"{" FULL ",\"colo_name\":\"a.b_c-D9\"}", NULL, 0},

	/* members the schema does not name are ignored (a body copied from a
	 * response, a newer SDK's field), known ones are still checked */
	{"{" SIMPLE ",\"time_limt\":10}", NULL, 0},
	{"{" SIMPLE ",\"packets_remaining\":0,\"status\":\"success\",\"id\":\"6d1f0aac13cd40e3900d29f5dd0e8a2b\","
	 "\"submitted\":\"2021-12-20T17:29:20.641845Z\",\"packets_captured\":3,\"agents\":[{}]}",
	 NULL, 0},
	{"{" FULL ",\"packets_remaining\":0,\"stop_requested\":\"x\",\"error_message\":null}", NULL, 0},
	{"{\"bogus\":1}", "type: required", 0},
	{"{\"time_limt\":10}", "type: required", 0},
	{"{" SIMPLE ",\"packets_remaining\":0,\"time_limit\":0}", "time_limit: 0 is outside 1..300", 0},
	{"{" FULL ",\"packets_remaining\":\"x\",\"colo\":5}",
	 "colo: must be a string (a colo or agent name such as \"ord02\")", 0},

	/* type */
	{"{}", "type: required", 0},
	{"{\"type\":null,\"system\":\"magic-transit\"}", "type: required", 0},
	{"{\"type\":\"sample\"}", "type: must be \"simple\" or \"full\"", 0},
	{"{\"type\":\"Simple\"}", "type: must be \"simple\" or \"full\"", 0},
	{"{\"type\":1}", "type: must be \"simple\" or \"full\"", 0},

	/* system */
	{"{\"type\":\"simple\"}", "system: required", 0},
	{"{\"type\":\"simple\",\"system\":\"magic-wan\"}", "system: must be \"magic-transit\"", 0},
	{"{\"type\":\"simple\",\"system\":[]}", "system: must be \"magic-transit\"", 0},

	/* fields of the other type */
	{"{" SIMPLE ",\"byte_limit\":10}", "byte_limit: only for full captures", 0},
	{"{" SIMPLE ",\"colo_name\":\"lab\"}", "colo_name: only for full captures", 0},
	{"{" SIMPLE ",\"colo\":\"lab\"}", "colo: only for full captures", 0},
	{"{" SIMPLE ",\"destination_conf\":\"file:///x\"}", "destination_conf: only for full captures", 0},
	{"{" FULL ",\"offset_time\":\"2024-05-01T11:00:00Z\"}", "offset_time: only for simple captures", 0},

	/* time_limit */
	{"{\"type\":\"simple\",\"system\":\"magic-transit\",\"packet_limit\":1}", "time_limit: required", 0},
	{"{" SIMPLE ",\"time_limit\":301}", "time_limit: 301 is outside 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":0}", "time_limit: 0 is outside 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":-5}", "time_limit: -5 is outside 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":301.0}", "time_limit: 301 is outside 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":1e20}", "time_limit: 1e+20 is outside 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":1.5}", "time_limit: 1.5 is not a whole number", 0},
	{"{" SIMPLE ",\"time_limit\":\"10\"}", "time_limit: must be a whole number in 1..300", 0},
	{"{" SIMPLE ",\"time_limit\":true}", "time_limit: must be a whole number in 1..300", 0},

	/* packet_limit */
	{"{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10}", "packet_limit: required", 0},
	{"{" SIMPLE ",\"packet_limit\":null}", "packet_limit: required", 0},
	{"{" SIMPLE ",\"packet_limit\":10001}", "packet_limit: 10001 is outside 1..10000", 0},
	{"{" SIMPLE ",\"packet_limit\":0}", "packet_limit: 0 is outside 1..10000", 0},
	{"{" SIMPLE ",\"packet_limit\":{}}", "packet_limit: must be a whole number in 1..10000", 0},
	{"{" FULL ",\"packet_limit\":10001}", "packet_limit: 10001 is outside 1..10000", 0},

	/* byte_limit */
	{"{" FULL ",\"byte_limit\":1000000001}", "byte_limit: 1000000001 is outside 1..1000000000", 0},
	{"{" FULL ",\"byte_limit\":0}", "byte_limit: 0 is outside 1..1000000000", 0},
	{"{" FULL ",\"byte_limit\":2.5}", "byte_limit: 2.5 is not a whole number", 0},
	{"{" FULL ",\"byte_limit\":\"1G\"}", "byte_limit: must be a whole number in 1..1000000000", 0},

	/* colo_name / colo */
	{"{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":10,\"destination_conf\":\"file:///b\"}",
	 "colo_name: required", 0},
	{"{" FULL ",\"colo_name\":null}", "colo_name: required", 0},
	{"{" FULL ",\"colo_name\":\"\"}", "colo_name: must be 1..63 characters long", 0},
	{"{" FULL ",\"colo_name\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
	 "colo_name: must be 1..63 characters long", 0},
	{"{" FULL ",\"colo_name\":\"ord 02\"}", "colo_name: only letters, digits, '.', '_' and '-' are allowed", 0},
	{"{" FULL ",\"colo_name\":\"ord/02\"}", "colo_name: only letters, digits, '.', '_' and '-' are allowed", 0},
	{"{" FULL ",\"colo_name\":7}", "colo_name: must be a string (a colo or agent name such as \"ord02\")", 0},
	{"{" FULL ",\"colo\":\"x y\"}", "colo: only letters, digits, '.', '_' and '-' are allowed", 0},
	{"{" FULL ",\"colo\":\"other\"}", "colo: must equal colo_name when both are given", 0},

	/* destination_conf */
	{"{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":10,\"colo\":\"lab\"}",
	 "destination_conf: required", 0},
	{"{" FULL ",\"destination_conf\":5}",
	 "destination_conf: must be a string (a bucket URI such as file:///srv/pcaps)", 0},
	{"{" FULL ",\"destination_conf\":\"gs://bucket-test\"}", NULL, 0},
	{"{" FULL ",\"destination_conf\":\"gs://bucket-test?regoin=x\"}",
	 "destination_conf: unknown query key 'regoin' for gs", 0},
	{"{" FULL ",\"destination_conf\":\"s3://b?endpoint=http%3A%2F%2Fh&x-secret=TOPSECRET\"}",
	 "destination_conf: unknown query key 'x-secret' for s3", 0},
	{"{" FULL ",\"destination_conf\":\"\"}", "destination_conf: ", 1},
	{"{" FULL ",\"destination_conf\":\"not a uri\"}", "destination_conf: ", 1},

	/* offset_time */
	{"{" SIMPLE ",\"offset_time\":\"yesterday\"}",
	 "offset_time: \"yesterday\" is not an RFC 3339 date-time such as \"2024-05-01T12:00:00Z\"", 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-05-01 12:00:00\"}",
	 "offset_time: \"2024-05-01 12:00:00\" is not an RFC 3339 date-time such as \"2024-05-01T12:00:00Z\"", 0},
	{"{" SIMPLE ",\"offset_time\":1714564800}",
	 "offset_time: must be a string holding an RFC 3339 date-time such as \"2024-05-01T12:00:00Z\"", 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-04-30T11:59:59Z\"}",
	 "offset_time: 2024-04-30T11:59:59Z is more than 24 hours ago", 0},
	{"{" SIMPLE ",\"offset_time\":\"2024-05-01T12:00:06Z\"}", "offset_time: 2024-05-01T12:00:06Z is in the future",
	 0},

	/* filter_v1 (its fields are filterjson's; the prefix is ours) */
	{"{" SIMPLE ",\"filter_v1\":[]}", "filter_v1: must be an object", 0},
	{"{" SIMPLE ",\"filter_v1\":{\"destination_port\":70000}}", "filter_v1.destination_port: ", 1},
	{"{" SIMPLE ",\"filter_v1\":{\"src\":\"192.0.2.1\"}}", "filter_v1.src: unknown field", 1},
	{"{" SIMPLE ",\"filter_v1\":{\"source_address\":\"300.1.1.1\"}}", "filter_v1.source_address: ", 1},
	{"{" SIMPLE ",\"filter_v1\":{\"bpf\":\"tcp and and\"}}", "filter_v1.bpf: ", 1},
	{"{" SIMPLE ",\"filter_v1\":{\"bpf\":\"portt 80\"}}", "filter_v1.bpf: ", 1},
};

/* Duplicates allowed here (unlike in requests): a case overrides a field of
 * SIMPLE or FULL by naming it again; the last value wins. */
static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	if (!v)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

static void test_create_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(create_cases); i++) {
		const CreateCase *c = &create_cases[i];
		json_t *body = load(c->body);
		ErrBuf err = {{0}};
		Job j = {0};
		int r;

		r = cloudflare_parse_create(body, NOW_NS, &j, &err);
		if (!c->msg) {
			if (r != 0)
				fail_msg("case %zu %s: refused (%d): %s", i, c->body, r, err.msg);
			assert_non_null(j.filter_json);
		} else {
			if (r >= 0)
				fail_msg("case %zu %s: accepted, expected \"%s\"", i, c->body, c->msg);
			if (c->prefix ? strncmp(err.msg, c->msg, strlen(c->msg)) != 0 : strcmp(err.msg, c->msg) != 0)
				fail_msg("case %zu %s:\n  got      \"%s\"\n  expected \"%s\"%s", i, c->body, err.msg,
					 c->msg, c->prefix ? "…" : "");
			/* nothing half-filled on failure */
			assert_null(j.filter_json);
			assert_null(j.colo_name);
		}
		job_done(&j);
		json_decref(body);
	}
}

static void test_create_fields(void **state)
{
	ErrBuf err = {{0}};
	json_t *body;
	Job j = {0};

	(void)state;
	/* simple: defaults and what is copied */
	body = load("{" SIMPLE "}");
	assert_int_equal(cloudflare_parse_create(body, NOW_NS, &j, &err), 0);
	assert_int_equal(j.type, JOB_SIMPLE);
	assert_int_equal(j.time_limit_s, 10);
	assert_int_equal(j.packet_limit, 100);
	assert_int_equal(j.byte_limit, 0);
	assert_true(j.offset_time_ns == NOW_NS);
	assert_string_equal(j.filter_json, "{}");
	assert_null(j.colo_name);
	assert_int_equal(j.n_outputs, 0);
	assert_string_equal(j.filter_model, "{}");
	assert_string_equal(j.id, "");
	job_done(&j);
	json_decref(body);

	body = load("{" SIMPLE ",\"offset_time\":\"2024-05-01T11:30:00.25Z\","
		    "\"filter_v1\":{\"destination_port\":443,\"source_address\":\"192.0.2.0/24\",\"protocol\":null}}");
	assert_int_equal(cloudflare_parse_create(body, NOW_NS, &j, &err), 0);
	assert_true(j.offset_time_ns == NOW_NS - 1800LL * 1000000000LL + 250000000LL);
	/* canonical: the user's fields and order, nulls dropped */
	assert_string_equal(j.filter_json, "{\"destination_port\":443,\"source_address\":\"192.0.2.0/24\"}");
	/* the neutral form agents get: one clause, the CIDR as its range */
	assert_string_equal(j.filter_model,
			    "{\"clauses\":[{\"src\":[\"192.0.2.0-192.0.2.255\"],\"dport\":[\"443\"]}]}");
	job_done(&j);
	json_decref(body);

	/* full: colo given as "colo" lands in colo_name; limits copied */
	body = load("{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":300,\"colo\":\"ORD\","
		    "\"destination_conf\":\"file:///srv/pcaps/x\",\"byte_limit\":1000000000,\"packet_limit\":7}");
	assert_int_equal(cloudflare_parse_create(body, NOW_NS, &j, &err), 0);
	assert_int_equal(j.type, JOB_FULL);
	assert_int_equal(j.time_limit_s, 300);
	assert_int_equal(j.packet_limit, 7);
	assert_true(j.byte_limit == 1000000000u);
	assert_string_equal(j.colo_name, "ORD");
	assert_string_equal(j.echo_json, "{\"colo\":\"ORD\"}"); /* answered with "colo" too */
	assert_int_equal(j.n_outputs, 1);
	assert_int_equal(j.outputs[0].kind, JOB_OUTPUT_BUCKET);
	assert_string_equal(j.outputs[0].target, "file:///srv/pcaps/x");
	assert_int_equal(j.snaplen, 0);
	assert_true(j.offset_time_ns == 0);
	job_done(&j);
	json_decref(body);

	/* full without packet_limit: none; asked with colo_name: nothing to echo */
	body = load("{" FULL "}");
	assert_int_equal(cloudflare_parse_create(body, NOW_NS, &j, &err), 0);
	assert_int_equal(j.packet_limit, 0);
	assert_string_equal(j.colo_name, "lab");
	assert_null(j.echo_json);
	job_done(&j);
	json_decref(body);

	/* not an object */
	body = load("[1]");
	assert_int_equal(cloudflare_parse_create(body, NOW_NS, &j, &err), -EINVAL);
	assert_string_equal(err.msg, "body: must be a JSON object");
	json_decref(body);
}

typedef struct OwnCase {
	const char *body;
	const char *msg; /* NULL: accepted */
	int prefix;
} OwnCase;

static void test_ownership_requests(void **state)
{
	static const OwnCase create[] = {
		{"{\"destination_conf\":\"file:///srv/pcaps\"}", NULL, 0},
		{"{}", "destination_conf: required", 0},
		{"{\"destination_conf\":null}", "destination_conf: required", 0},
		{"{\"destination_conf\":1}",
		 "destination_conf: must be a string (a bucket URI such as file:///srv/pcaps)", 0},
		{"{\"destination_conf\":\"file:///srv/pcaps\",\"ownership_challenge\":\"x\",\"id\":1}", NULL, 0},
		{"{\"destination_conf\":5,\"id\":1}",
		 "destination_conf: must be a string (a bucket URI such as file:///srv/pcaps)", 0},
		{"{\"destination_conf\":\"s3://pcaps-bucket?region=us-east-1&regoin=x\"}",
		 "destination_conf: unknown query key 'regoin' for s3", 0},
	};
	static const OwnCase validate[] = {
		{"{\"destination_conf\":\"file:///a\",\"ownership_challenge\":\"abc\"}", NULL, 0},
		{"{\"ownership_challenge\":\"abc\"}", "destination_conf: required", 0},
		{"{\"destination_conf\":\"file:///a\"}", "ownership_challenge: required", 0},
		{"{\"destination_conf\":\"file:///a\",\"ownership_challenge\":null}", "ownership_challenge: required",
		 0},
		{"{\"destination_conf\":\"file:///a\",\"ownership_challenge\":5}",
		 "ownership_challenge: must be a string (the token in the challenge file)", 0},
		{"{\"destination_conf\":[],\"ownership_challenge\":\"x\"}",
		 "destination_conf: must be a string (a bucket URI such as file:///srv/pcaps)", 0},
		{"{\"destination_conf\":\"file:///a\",\"ownership_challenge\":\"abc\",\"id\":\"y\",\"status\":1}", NULL,
		 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(create); i++) {
		json_t *body = load(create[i].body);
		const char *conf = NULL;
		ErrBuf err = {{0}};
		int r = cloudflare_parse_ownership(body, &conf, &err);

		if (!create[i].msg) {
			if (r != 0)
				fail_msg("create %s: refused: %s", create[i].body, err.msg);
			assert_string_equal(conf, "file:///srv/pcaps");
		} else if (r >= 0 || (create[i].prefix ? strncmp(err.msg, create[i].msg, strlen(create[i].msg))
						       : strcmp(err.msg, create[i].msg))) {
			fail_msg("create %s: got (%d) \"%s\", expected \"%s\"", create[i].body, r, err.msg,
				 create[i].msg);
		}
		json_decref(body);
	}
	for (size_t i = 0; i < ARRAY_SIZE(validate); i++) {
		json_t *body = load(validate[i].body);
		const char *conf = NULL, *ch = NULL;
		ErrBuf err = {{0}};
		int r = cloudflare_parse_validate(body, &conf, &ch, &err);

		if (!validate[i].msg) {
			if (r != 0)
				fail_msg("validate %s: refused: %s", validate[i].body, err.msg);
			assert_string_equal(conf, "file:///a");
			assert_string_equal(ch, "abc");
		} else if (r >= 0 || strcmp(err.msg, validate[i].msg) != 0) {
			fail_msg("validate %s: got (%d) \"%s\", expected \"%s\"", validate[i].body, r, err.msg,
				 validate[i].msg);
		}
		json_decref(body);
	}
}

static void test_unknown_fields(void **state)
{
	char out[64];
	json_t *body;

	(void)state;
	body = load("{" SIMPLE ",\"packets_remaining\":0,\"status\":\"x\",\"filter_v1\":{}}");
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_CREATE, out, sizeof(out)), 2);
	assert_string_equal(out, "packets_remaining, status");
	json_decref(body);
	body = load("{" FULL "}");
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_CREATE, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	json_decref(body);
	/* each request kind its own schema */
	body = load("{\"destination_conf\":\"file:///a\",\"ownership_challenge\":\"x\"}");
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_VALIDATE, out, sizeof(out)), 0);
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_OWNERSHIP, out, sizeof(out)), 1);
	assert_string_equal(out, "ownership_challenge");
	json_decref(body);
	/* names for a log line: printable, cut, and bounded by the buffer */
	body = load("{\"a\\nb\\u00e9\":1,\""
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\":2,\"c\":3}");
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_OWNERSHIP, out, sizeof(out)), 3);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_int_equal(strncmp(out, "a?b??, xxxx", 11), 0);
	json_decref(body);
	/* not an object: nothing */
	body = load("[1]");
	assert_int_equal(cloudflare_unknown_fields(body, CF_REQ_CREATE, out, sizeof(out)), 0);
	json_decref(body);
}

static void test_challenge(void **state)
{
	BucketRow b = {
		.filename = "ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt",
		.challenge = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	};
	static const struct {
		const char *given;
		bool ok;
	} cases[] = {
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f0", true},
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f0\n", true}, /* copied with the file's newline */
		{"  0f1e2d3c4b5a69788796a5b4c3d2e1f0\r\n", true},
		/* the name proves nothing: create answers it to anyone (issue 8) */
		{"ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt", false},
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f", false},
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f00", false},
		{"0F1E2D3C4B5A69788796A5B4C3D2E1F0", false},
		{"ownership-challenge-9883874ecac311ec8475433579a6bf5f", false},
		{"", false},
		{"   ", false},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (service_challenge_matches(&b, cases[i].given, strlen(cases[i].given)) != cases[i].ok)
			fail_msg("challenge \"%s\": expected %s", cases[i].given, cases[i].ok ? "match" : "mismatch");
	/* the token as stored may carry the newline written into the file */
	b.challenge = "abc\n";
	assert_true(service_challenge_matches(&b, "abc", 3));
	/* a row without a challenge matches nothing, not even its filename */
	b.challenge = NULL;
	assert_false(service_challenge_matches(&b, "abc", 3));
	assert_false(service_challenge_matches(&b, b.filename, strlen(b.filename)));
	assert_false(service_challenge_matches(&b, NULL, 0));
}

static char *render(json_t *o)
{
	char *s;

	assert_non_null(o);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	assert_non_null(s);
	return s;
}

static void expect_render(json_t *o, const char *expected)
{
	char *s = render(o);

	if (strcmp(s, expected) != 0)
		fail_msg("\n  got      %s\n  expected %s", s, expected);
	free(s);
}

static void test_render_simple(void **state)
{
	Job j = {
		.id = "66802ca5668e47a2b82c2e6746e45037",
		.account = "0123456789abcdef0123456789abcdef",
		.type = JOB_SIMPLE,
		.status = JOB_PENDING,
		.time_limit_s = 10,
		.packet_limit = 100,
		.offset_time_ns = NOW_NS - 60LL * 1000000000LL,
		.submitted_ns = NOW_NS + 641845123LL,
	};

	(void)state;
	/* no filter stored: {} */
	expect_render(cloudflare_render_pcap(&j, false, NULL, 0),
		      "{\"id\":\"66802ca5668e47a2b82c2e6746e45037\",\"type\":\"simple\",\"system\":\"magic-transit\","
		      "\"status\":\"pending\",\"submitted\":\"2024-05-01T12:00:00.641845Z\",\"time_limit\":10,"
		      "\"filter_v1\":{},\"offset_time\":\"2024-05-01T11:59:00.000000Z\",\"packet_limit\":100,"
		      "\"packets_captured\":0,\"packets_remaining\":100,\"bytes_captured\":0,\"kernel_drops\":0,\"stop_"
		      "reason\":\"none\"}");

	j.filter_json = "{\"protocol\":6,\"bpf\":\"port 80\"}";
	j.status = JOB_SUCCESS;
	j.packets = 100;
	j.bytes = 16000;
	j.stop_reason = JOB_STOP_PACKETS;
	expect_render(
		cloudflare_render_pcap(&j, false, NULL, 0),
		"{\"id\":\"66802ca5668e47a2b82c2e6746e45037\",\"type\":\"simple\",\"system\":\"magic-transit\","
		"\"status\":\"success\",\"submitted\":\"2024-05-01T12:00:00.641845Z\",\"time_limit\":10,"
		"\"filter_v1\":{\"protocol\":6,\"bpf\":\"port 80\"},\"offset_time\":\"2024-05-01T11:59:00.000000Z\","
		"\"packet_limit\":100,\"packets_captured\":100,\"packets_remaining\":0,\"bytes_captured\":16000,"
		"\"kernel_drops\":0,\"stop_"
		"reason\":\"packets\"}");

	j.status = JOB_FAILED;
	j.error_message = "no packet matched the filter";
	j.stop_reason = JOB_STOP_TIME;
	j.packets = 0;
	j.bytes = 0;
	expect_render(
		cloudflare_render_pcap(&j, false, NULL, 0),
		"{\"id\":\"66802ca5668e47a2b82c2e6746e45037\",\"type\":\"simple\",\"system\":\"magic-transit\","
		"\"status\":\"failed\",\"submitted\":\"2024-05-01T12:00:00.641845Z\",\"time_limit\":10,"
		"\"filter_v1\":{\"protocol\":6,\"bpf\":\"port 80\"},\"offset_time\":\"2024-05-01T11:59:00.000000Z\","
		"\"packet_limit\":100,\"packets_captured\":0,\"packets_remaining\":100,\"error_message\":\"no packet "
		"matched the filter\","
		"\"bytes_captured\":0,"
		"\"kernel_drops\":0,\"stop_reason\":\"time\"}");
}

static void test_render_full(void **state)
{
	Job j = {
		.id = "66802ca5668e47a2b82c2e6746e45037",
		.type = JOB_FULL,
		.status = JOB_RUNNING,
		.time_limit_s = 300,
		.byte_limit = 5000000,
		.colo_name = "lab",
		.outputs = {{JOB_OUTPUT_BUCKET, "file:///srv/pcaps"}},
		.n_outputs = 1,
		.filter_json = "{}",
		.submitted_ns = NOW_NS,
		.packets = 12,
		.bytes = 3400,
		.drops = 2,
	};
	JobPart parts[2] = {
		{.job_id = "66802ca5668e47a2b82c2e6746e45037",
		 .agent = "web01",
		 .state = PART_DONE,
		 .packets = 10,
		 .bytes = 3000,
		 .drops = 2,
		 .object = "pcap_66802ca5668e47a2b82c2e6746e45037_web01.pcap"},
		{.job_id = "66802ca5668e47a2b82c2e6746e45037",
		 .agent = "web02",
		 .state = PART_FAILED,
		 .packets = 2,
		 .bytes = 400,
		 .error = "capture: eth9: no such device"},
	};

	(void)state;
	/* running, no packet_limit, no stop yet */
	expect_render(cloudflare_render_pcap(&j, false, NULL, 0),
		      "{\"id\":\"66802ca5668e47a2b82c2e6746e45037\",\"type\":\"full\",\"system\":\"magic-transit\","
		      "\"status\":\"running\",\"submitted\":\"2024-05-01T12:00:00.000000Z\",\"time_limit\":300,"
		      "\"filter_v1\":{},\"byte_limit\":5000000,\"colo_name\":\"lab\","
		      "\"destination_conf\":\"file:///srv/pcaps\",\"packets_captured\":12,\"packets_remaining\":null,"
		      "\"bytes_captured\":3400,"
		      "\"kernel_drops\":2,\"stop_reason\":\"none\"}");

	/* stopped by the user, with the per-agent shares (get) */
	j.status = JOB_CONVERSION_RUNNING;
	j.stop_requested_ns = NOW_NS + 5LL * 1000000000LL;
	j.stop_reason = JOB_STOP_USER;
	j.packet_limit = 50;
	j.byte_limit = 0;
	expect_render(
		cloudflare_render_pcap(&j, true, parts, 2),
		"{\"id\":\"66802ca5668e47a2b82c2e6746e45037\",\"type\":\"full\",\"system\":\"magic-transit\","
		"\"status\":\"conversion_running\",\"submitted\":\"2024-05-01T12:00:00.000000Z\",\"time_limit\":300,"
		"\"filter_v1\":{},\"packet_limit\":50,\"colo_name\":\"lab\","
		"\"destination_conf\":\"file:///srv/pcaps\",\"packets_captured\":12,\"packets_remaining\":38,"
		"\"stop_requested\":\"2024-05-01T12:00:05.000000Z\",\"bytes_captured\":3400,\"kernel_drops\":2,"
		"\"stop_reason\":\"user\",\"agents\":["
		"{\"name\":\"web01\",\"status\":\"done\",\"packets\":10,\"bytes\":3000,\"kernel_drops\":2,"
		"\"object\":\"pcap_66802ca5668e47a2b82c2e6746e45037_web01.pcap\",\"error\":null},"
		"{\"name\":\"web02\",\"status\":\"failed\",\"packets\":2,\"bytes\":400,\"kernel_drops\":0,"
		"\"object\":null,\"error\":\"capture: eth9: no such device\"}]}");

	/* get of a job with no parts yet: an empty list, not a missing field */
	{
		char *s = render(cloudflare_render_pcap(&j, true, NULL, 0));

		assert_non_null(strstr(s, "\"agents\":[]"));
		free(s);
	}

	/* asked with "colo": answered with it beside colo_name; an echo never
	 * overrides a field */
	j.echo_json = "{\"colo\":\"LAB\",\"status\":\"x\"}";
	{
		char *s = render(cloudflare_render_pcap(&j, false, NULL, 0));

		assert_non_null(strstr(s, "\"colo_name\":\"lab\""));
		assert_non_null(strstr(s, "\"colo\":\"LAB\""));
		assert_non_null(strstr(s, "\"status\":\"conversion_running\""));
		assert_null(strstr(s, "\"status\":\"x\""));
		free(s);
	}
	j.echo_json = "not json";
	{
		char *s = render(cloudflare_render_pcap(&j, false, NULL, 0));

		assert_null(strstr(s, "\"colo\""));
		free(s);
	}
}

static void test_render_every_status(void **state)
{
	static const char *const words[] = {"pending", "running", "conversion_pending", "conversion_running",
					    "success", "failed"};
	Job j = {.id = "66802ca5668e47a2b82c2e6746e45037", .type = JOB_FULL, .time_limit_s = 1};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		json_t *o;

		j.status = (JobStatus)i;
		o = cloudflare_render_pcap(&j, false, NULL, 0);
		assert_non_null(o);
		assert_string_equal(json_string_value(json_object_get(o, "status")), words[i]);
		/* fields the SDK's Ownership/PCAP types call strings are strings even when unset */
		assert_true(json_is_string(json_object_get(o, "colo_name")));
		assert_true(json_is_string(json_object_get(o, "destination_conf")));
		assert_null(json_object_get(o, "offset_time"));
		assert_null(json_object_get(o, "error_message"));
		json_decref(o);
	}
}

static void test_render_ownership(void **state)
{
	BucketRow b = {
		.id = "9883874ecac311ec8475433579a6bf5f",
		.account = "0123456789abcdef0123456789abcdef",
		.destination_conf = "file:///srv/pcaps",
		.filename = "ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt",
		.challenge = "secret-token-never-rendered",
		.status = BUCKET_PENDING,
		.submitted_ns = NOW_NS + 641845000LL,
	};

	(void)state;
	expect_render(
		cloudflare_render_ownership(&b),
		"{\"id\":\"9883874ecac311ec8475433579a6bf5f\",\"destination_conf\":\"file:///srv/pcaps\","
		"\"filename\":\"ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt\",\"status\":\"pending\","
		"\"submitted\":\"2024-05-01T12:00:00.641845Z\",\"validated\":\"\"}");
	b.status = BUCKET_SUCCESS;
	b.validated_ns = NOW_NS + 90LL * 1000000000LL;
	expect_render(
		cloudflare_render_ownership(&b),
		"{\"id\":\"9883874ecac311ec8475433579a6bf5f\",\"destination_conf\":\"file:///srv/pcaps\","
		"\"filename\":\"ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt\",\"status\":\"success\","
		"\"submitted\":\"2024-05-01T12:00:00.641845Z\",\"validated\":\"2024-05-01T12:01:30.000000Z\"}");
}

static void test_auth_hash(void **state)
{
	/* FIPS 180-2 test vector */
	static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
					0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
					0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	uint8_t h[32];

	(void)state;
	auth_hash("abc", 3, h);
	assert_memory_equal(h, abc, 32);
	/* the length counts, not a terminator */
	auth_hash("abcd", 3, h);
	assert_memory_equal(h, abc, 32);
}

static void test_auth_new_secret(void **state)
{
	char a[64], b[64];

	(void)state;
	memset(a, 'x', sizeof(a));
	assert_int_equal(auth_new_secret(a), 0);
	assert_int_equal(auth_new_secret(b), 0);
	assert_int_equal(strlen(a), 6 + 43);
	assert_memory_equal(a, "pcapd_", 6);
	for (size_t i = 6; i < strlen(a); i++) {
		char c = a[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			fail_msg("secret %s: byte %zu ('%c') is not base64url", a, i, c);
	}
	/* 256 random bits: the last character carries 4 of them and 2 zero bits */
	assert_non_null(strchr("AEIMQUYcgkosw048", a[48]));
	assert_string_not_equal(a, b);
}

/* The route template a path is counted under in the HTTP metrics. */
static const char *route(const char *path)
{
	size_t n;
	const char *const *names = api_route_names(&n);
	size_t i = api_route_of(path);

	assert_true(i < n);
	return names[i];
}

static void test_route_templates(void **state)
{
	size_t n;

	(void)state;
	assert_string_equal(api_route_names(&n)[n - 1], "other");
	assert_string_equal(route("/accounts/0123abcd/pcaps"), "/accounts/{account}/pcaps");
	assert_string_equal(route("/client/v4/accounts/x/pcaps"), "/accounts/{account}/pcaps");
	assert_string_equal(route("/client/v4/accounts/x/pcaps/ownership"), "/accounts/{account}/pcaps/ownership");
	assert_string_equal(route("/accounts/x/pcaps/ownership/validate"),
			    "/accounts/{account}/pcaps/ownership/validate");
	assert_string_equal(route("/accounts/x/pcaps/ownership/abc"), "/accounts/{account}/pcaps/ownership/{id}");
	assert_string_equal(route("/accounts/x/pcaps/agents"), "/accounts/{account}/pcaps/agents");
	assert_string_equal(route("/accounts/x/pcaps/f00d"), "/accounts/{account}/pcaps/{id}");
	assert_string_equal(route("/accounts/x/pcaps/f00d/download"), "/accounts/{account}/pcaps/{id}/download");
	assert_string_equal(route("/accounts/x/pcaps/f00d/stop"), "/accounts/{account}/pcaps/{id}/stop");
	assert_string_equal(route("/accounts/x/tokens/verify"), "/accounts/{account}/tokens/verify");
	/* the Azure dialect's paths, matched without regard to case as it does */
	assert_string_equal(route("/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/networkWatchers/nw/"
				  "packetCaptures"),
			    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/"
			    "packetCaptures");
	assert_string_equal(route("/SUBSCRIPTIONS/S/resourcegroups/rg/providers/microsoft.network/networkwatchers/nw/"
				  "packetcaptures/pc1/querystatus"),
			    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers/{nw}/"
			    "packetCaptures/{name}/queryStatus");
	assert_string_equal(
		route("/subscriptions/S/providers/Microsoft.Network/locations/l/operationResults/o"),
		"/subscriptions/{sub}/providers/Microsoft.Network/locations/{location}/operationResults/{id}");
	assert_string_equal(route("/ACCOUNTS/x/pcaps"), "other");
	assert_string_equal(route("/agent/v1/poll"), "/agent/v1/poll");
	assert_string_equal(route("/agent/v1/report"), "/agent/v1/report");
	assert_string_equal(route("/agent/v1/sample"), "/agent/v1/sample");
	assert_string_equal(route("/healthz"), "/healthz");
	assert_string_equal(route("/metrics"), "/metrics");
	assert_string_equal(route("/"), "/{dashboard}");
	assert_string_equal(route("/app.css"), "/{dashboard}");
	/* no raw path becomes a label: anything else is "other" */
	assert_string_equal(route("/accounts//pcaps"), "other");
	assert_string_equal(route("/accounts/x/pcaps/"), "other");
	assert_string_equal(route("/accounts/x/pcaps/a/b/c"), "other");
	assert_string_equal(route("/client/v4/app.css"), "other");
	assert_string_equal(route("/client/v4"), "other");
	assert_string_equal(route("/no/such/thing"), "other");
	assert_string_equal(route(""), "other");
	assert_string_equal(route(NULL), "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_table),       cmocka_unit_test(test_create_fields),
		cmocka_unit_test(test_ownership_requests), cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_challenge),          cmocka_unit_test(test_render_simple),
		cmocka_unit_test(test_render_full),        cmocka_unit_test(test_render_every_status),
		cmocka_unit_test(test_render_ownership),   cmocka_unit_test(test_auth_hash),
		cmocka_unit_test(test_auth_new_secret),    cmocka_unit_test(test_route_templates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
