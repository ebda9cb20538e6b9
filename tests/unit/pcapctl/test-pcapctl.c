/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the pure parts of pcapctl: the create request built from
 * flags (createreq), tables and text for people (table, render), and the
 * reading of the API's envelope (client_parse_envelope).
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

#include "pcapctl/client.h"
#include "pcapctl/createreq.h"
#include "pcapctl/render.h"
#include "pcapctl/table.h"

/* Builds the body from type + (flag, value) pairs; asserts success. */
static json_t *build(const char *type, ...)
{
	CreateReq r;
	ErrBuf err = {{0}};
	json_t *body = NULL;
	const char *flag;
	va_list ap;

	createreq_init(&r);
	assert_int_equal(createreq_set_type(&r, type, &err), 0);
	va_start(ap, type);
	while ((flag = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);
		int rc = createreq_set(&r, flag, value, &err);

		if (rc != 0)
			fail_msg("%s %s: %s", flag, value, err.msg);
	}
	va_end(ap);
	if (createreq_to_json(&r, &body, &err) != 0)
		fail_msg("to_json: %s", err.msg);
	createreq_done(&r);
	return body;
}

static void assert_json(json_t *got, const char *want_text)
{
	json_t *want = json_loads(want_text, 0, NULL);
	char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
	char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);

	assert_non_null(want);
	assert_string_equal(g, w);
	free(g);
	free(w);
	json_decref(want);
	json_decref(got);
}

static void test_sample_defaults(void **state)
{
	(void)state;
	assert_json(build("sample", NULL),
		    "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":10000}");
}

static void test_full_mapping(void **state)
{
	json_t *o;
	char *text;

	(void)state;
	o = build("full", "--colo", "ord02", "--bucket", "file:///srv/pcaps", "--time-limit", "30", "--byte-limit",
		  "1M", "--src", "192.0.2.0/24", "--dst", "2001:db8::1", "--sport", "80-90", "--dport", "443",
		  "--proto", "tcp", "--bpf", "tcp[13] & 2 != 0", NULL);
	/* key order is part of what is sent: the fixed fields first */
	text = json_dumps(o, JSON_COMPACT);
	assert_string_equal(
		text, "{\"type\":\"full\",\"system\":\"magic-transit\",\"time_limit\":30,"
		      "\"byte_limit\":1048576,\"colo_name\":\"ord02\",\"destination_conf\":\"file:///srv/pcaps\","
		      "\"filter_v1\":{\"source_address\":\"192.0.2.0/24\",\"destination_address\":\"2001:db8::1\","
		      "\"source_port\":\"80-90\",\"destination_port\":443,\"protocol\":\"tcp\","
		      "\"bpf\":\"tcp[13] & 2 != 0\"}}");
	free(text);
	json_decref(o);
}

static void test_filter_values(void **state)
{
	(void)state;
	/* a protocol number is a number; a list of ports stays a string */
	assert_json(build("sample", "--proto", "17", "--dport", "80;443", "--packet-limit", "5", NULL),
		    "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":5,"
		    "\"filter_v1\":{\"destination_port\":\"80;443\",\"protocol\":17}}");
	/* repeated address and port flags add to the set; --proto any drops it */
	assert_json(build("sample", "--src", "192.0.2.1", "--src", "198.51.100.0/24", "--sport", "53", "--sport",
			  "5353", "--proto", "udp", "--proto", "any", NULL),
		    "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":10000,"
		    "\"filter_v1\":{\"source_address\":\"192.0.2.1;198.51.100.0/24\",\"source_port\":\"53;5353\"}}");
	/* a repeated limit replaces; offset_time is passed as given */
	assert_json(build("sample", "--time-limit", "5", "--time-limit", "300", "--offset-time",
			  "2024-05-01T12:00:00.5+02:00", NULL),
		    "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":300,\"packet_limit\":10000,"
		    "\"offset_time\":\"2024-05-01T12:00:00.5+02:00\"}");
	/* port 0 and 65535 are numbers at the bounds */
	assert_json(build("sample", "--sport", "0", "--dport", "65535", NULL),
		    "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,\"packet_limit\":10000,"
		    "\"filter_v1\":{\"source_port\":0,\"destination_port\":65535}}");
}

/* --inner is filter_v1.inner, with or without other filter flags. */
static void test_filter_inner(void **state)
{
	for (int with_dst = 0; with_dst < 2; with_dst++) {
		CreateReq r;
		ErrBuf err = {{0}};
		json_t *body = NULL;

		(void)state;
		createreq_init(&r);
		assert_int_equal(createreq_set_type(&r, "sample", &err), 0);
		if (with_dst)
			assert_int_equal(createreq_set(&r, "--dst", "192.0.2.9", &err), 0);
		r.inner = true;
		assert_int_equal(createreq_to_json(&r, &body, &err), 0);
		createreq_done(&r);
		assert_json(body, with_dst ? "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,"
					     "\"packet_limit\":10000,\"filter_v1\":{\"destination_address\":"
					     "\"192.0.2.9\",\"inner\":true}}"
					   : "{\"type\":\"simple\",\"system\":\"magic-transit\",\"time_limit\":10,"
					     "\"packet_limit\":10000,\"filter_v1\":{\"inner\":true}}");
	}
}

static void expect_set_error(const char *flag, const char *value, const char *want)
{
	CreateReq r;
	ErrBuf err = {{0}};

	createreq_init(&r);
	assert_true(createreq_set(&r, flag, value, &err) < 0);
	if (!strstr(err.msg, want))
		fail_msg("%s %s: got \"%s\", want it to contain \"%s\"", flag, value, err.msg, want);
	createreq_done(&r);
}

static void test_flag_errors(void **state)
{
	(void)state;
	expect_set_error("--src", "192.0.2.300", "--src: \"192.0.2.300\" is not an IPv4 or IPv6 address");
	expect_set_error("--dst", "10.0.0.1-2001:db8::1", "--dst: range");
	expect_set_error("--dport", "70000", "--dport: 70000 is outside 0..65535");
	expect_set_error("--sport", "http", "--sport: ");
	expect_set_error("--proto", "tcpp", "--proto: \"tcpp\" is not a protocol");
	expect_set_error("--proto", "256", "--proto: 256 is outside 0..255");
	expect_set_error("--time-limit", "0", "--time-limit: 0 is outside 1..300");
	expect_set_error("--time-limit", "301", "--time-limit: 301 is outside 1..300");
	expect_set_error("--time-limit", "1m", "--time-limit: '1m' is not a number");
	expect_set_error("--packet-limit", "10001", "--packet-limit: 10001 is outside 1..10000");
	expect_set_error("--byte-limit", "1G", "--byte-limit: 1G is outside 1..1000000000");
	expect_set_error("--byte-limit", "-5", "--byte-limit: '-5' is not a number");
	expect_set_error("--bucket", "srv/pcaps", "--bucket: 'srv/pcaps' is not a bucket URI");
	expect_set_error("--colo", "", "--colo: is empty");
	expect_set_error("--colo", "ord\n02", "--colo: holds control characters");
	expect_set_error("--offset-time", "2024-02-30T00:00:00Z", "--offset-time: '2024-02-30T00:00:00Z'");
	expect_set_error("--nope", "x", "--nope: unknown flag");
}

static void expect_json_error(CreateType type, const char *flag, const char *value, const char *want)
{
	CreateReq r;
	ErrBuf err = {{0}};
	json_t *body = NULL;

	createreq_init(&r);
	r.type = type;
	if (type == CREATE_FULL) {
		if (strcmp(flag, "--colo") != 0)
			assert_int_equal(createreq_set(&r, "--colo", "ord02", &err), 0);
		if (strcmp(flag, "--bucket") != 0)
			assert_int_equal(createreq_set(&r, "--bucket", "file:///b", &err), 0);
	}
	if (value)
		assert_int_equal(createreq_set(&r, flag, value, &err), 0);
	assert_int_equal(createreq_to_json(&r, &body, &err), -EINVAL);
	assert_null(body);
	if (!strstr(err.msg, want))
		fail_msg("%s %s: got \"%s\", want \"%s\"", flag, value ? value : "", err.msg, want);
	createreq_done(&r);
}

static void test_cross_flag_errors(void **state)
{
	ErrBuf err = {{0}};
	CreateReq r;

	(void)state;
	expect_json_error(CREATE_UNSET, "", NULL, "say full or sample");
	expect_json_error(CREATE_FULL, "--colo", NULL, "create full: --colo is required");
	expect_json_error(CREATE_FULL, "--bucket", NULL, "create full: --bucket is required");
	expect_json_error(CREATE_FULL, "--offset-time", "2024-05-01T12:00:00Z", "--offset-time: only for sample");
	expect_json_error(CREATE_SAMPLE, "--bucket", "file:///b", "--bucket: only for full");
	expect_json_error(CREATE_SAMPLE, "--byte-limit", "10", "--byte-limit: only for full");
	expect_json_error(CREATE_SAMPLE, "--colo", "ord02", "--colo: only for full");
	expect_json_error(CREATE_SAMPLE, "--bpf", "tcp prot 80", "--bpf: ");
	createreq_init(&r);
	assert_int_equal(createreq_set_type(&r, "simple", &err), -EINVAL);
	assert_string_equal(err.msg, "create: 'simple' is not full or sample");
	createreq_done(&r);
	createreq_done(NULL);
}

static void test_rfc3339(void **state)
{
	static const char *const good[] = {
		"2024-05-01T12:00:00Z",      "2024-05-01t12:00:00z",        "2024-02-29T23:59:60.123456Z",
		"2000-02-29T00:00:00-08:00", "2024-12-31T00:00:00.1+14:00",
	};
	static const char *const bad[] = {
		"",
		"2024-05-01",
		"2024-05-01 12:00:00Z",
		"2024-05-01T12:00:00",
		"2024-5-01T12:00:00Z",
		"2024-05-01T24:00:00Z",
		"2023-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2024-04-31T00:00:00Z",
		"2024-05-01T12:00:00.Z",
		"2024-05-01T12:00:00Zjunk",
		"2024-05-01T12:00:00+0200",
		"2024-05-01T12:00:00+24:00",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!createreq_rfc3339_valid(good[i]))
			fail_msg("'%s' should be valid", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (createreq_rfc3339_valid(bad[i]))
			fail_msg("'%s' should be invalid", bad[i]);
}

/* Renders t into a malloc'd string. */
static char *table_text(const Table *t)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_non_null(f);
	assert_int_equal(table_write(t, f), 0);
	fclose(f);
	return buf;
}

static void test_table(void **state)
{
	static const TableColumn cols[] = {{"ID", false}, {"PACKETS", true}, {"BUCKET", false}};
	const char *row1[] = {"abc", "5", "file:///a"};
	const char *row2[] = {"a", "12345678", NULL};
	const char *row3[] = {"\x1b[31mred", "", "caf\xc3\xa9"};
	Table *t = NULL;
	char *text;

	(void)state;
	assert_int_equal(table_new(cols, 0, &t), -EINVAL);
	assert_int_equal(table_new(cols, 3, &t), 0);
	text = table_text(t);
	assert_string_equal(text, "ID  PACKETS  BUCKET\n");
	free(text);
	assert_int_equal(table_add_row(t, row1), 0);
	assert_int_equal(table_add_row(t, row2), 0);
	assert_int_equal(table_add_row(t, row3), 0);
	assert_int_equal(table_rows(t), 3);
	text = table_text(t);
	/* widths fit the widest cell; numbers right-aligned; the last column unpadded;
	 * an escape sequence is defused; é counts as one column */
	assert_string_equal(text, "ID         PACKETS  BUCKET\n"
				  "abc              5  file:///a\n"
				  "a         12345678  -\n"
				  "?[31mred         -  caf\xc3\xa9\n");
	free(text);
	table_free(t);
	table_free(NULL);
}

static void test_render(void **state)
{
	char *s;
	char buf[32];

	(void)state;
	s = render_short_time("2021-12-20T17:29:20.641845Z");
	assert_string_equal(s, "2021-12-20T17:29:20Z");
	free(s);
	s = render_short_time("2021-12-20T17:29:20Z");
	assert_string_equal(s, "2021-12-20T17:29:20Z");
	free(s);
	s = render_short_time("2021-12-20T17:29:20.5+01:00"); /* not UTC: left alone */
	assert_string_equal(s, "2021-12-20T17:29:20.5+01:00");
	free(s);
	s = render_clean_dup("a\tb\x7f"
			     "c\xc2\x9b"
			     "d\xc3\xa9");
	assert_string_equal(s, "a?b?c?d\xc3\xa9");
	free(s);
	assert_int_equal(render_width("caf\xc3\xa9"), 4);

	s = render_shell_quote("file:///srv/pcaps");
	assert_string_equal(s, "file:///srv/pcaps");
	free(s);
	s = render_shell_quote("s3://b?region=x");
	assert_string_equal(s, "'s3://b?region=x'");
	free(s);
	s = render_shell_quote("it's");
	assert_string_equal(s, "'it'\\''s'");
	free(s);
	s = render_shell_quote("");
	assert_string_equal(s, "''");
	free(s);

	render_bytes(512, buf, sizeof(buf));
	assert_string_equal(buf, "512 B");
	render_bytes(1536, buf, sizeof(buf));
	assert_string_equal(buf, "1.5 KiB");
	render_bytes(3ull << 30, buf, sizeof(buf));
	assert_string_equal(buf, "3.0 GiB");
}

static void test_render_object(void **state)
{
	json_t *o = json_loads("{\"id\":\"x\",\"packets_captured\":12,\"filter_v1\":{\"protocol\":6},"
			       "\"validated\":\"\",\"stop\":null,\"ok\":true}",
			       0, NULL);
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	(void)state;
	assert_non_null(o);
	assert_non_null(f);
	assert_int_equal(render_object(f, o), 0);
	fclose(f);
	assert_string_equal(buf, "id:               x\n"
				 "packets_captured: 12\n"
				 "filter_v1:        {\"protocol\":6}\n"
				 "validated:        -\n"
				 "stop:             -\n"
				 "ok:               true\n");
	free(buf);
	json_decref(o);
}

static void test_envelope(void **state)
{
	static const char ok[] = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":{\"id\":\"a\"}}";
	static const char failed[] = "{\"success\":false,\"errors\":[{\"code\":1002,\"message\":\"time_limit: 0 is "
				     "outside 1..300\"}],\"messages\":[],\"result\":null}";
	json_t *res = NULL;
	ClientError err = {0};

	(void)state;
	assert_int_equal(client_parse_envelope(ok, strlen(ok), 200, &res, &err), 0);
	assert_string_equal(json_string_value(json_object_get(res, "id")), "a");
	json_decref(res);

	/* no result member: JSON null; 204 or an empty 2xx body: NULL */
	res = NULL;
	assert_int_equal(client_parse_envelope("{\"success\":true}", 16, 200, &res, &err), 0);
	assert_true(json_is_null(res));
	json_decref(res);
	res = json_true();
	assert_int_equal(client_parse_envelope("", 0, 204, &res, &err), 0);
	assert_null(res);

	assert_int_equal(client_parse_envelope(failed, strlen(failed), 400, &res, &err), -EREMOTEIO);
	assert_int_equal(err.kind, CLIENT_ERR_API);
	assert_int_equal(err.http_status, 400);
	assert_int_equal(err.code, 1002);
	assert_string_equal(err.message, "time_limit: 0 is outside 1..300");

	/* success:false on a 200 is a failure all the same */
	memset(&err, 0, sizeof(err));
	assert_int_equal(client_parse_envelope(failed, strlen(failed), 200, &res, &err), -EREMOTEIO);
	assert_int_equal(err.code, 1002);

	/* a proxy's HTML error page: its first line, no code */
	memset(&err, 0, sizeof(err));
	assert_int_equal(client_parse_envelope("Bad Gateway\r\n<html>", 19, 502, &res, &err), -EREMOTEIO);
	assert_int_equal(err.kind, CLIENT_ERR_API);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.message, "HTTP error: Bad Gateway");
	assert_int_equal(client_parse_envelope("", 0, 500, &res, &err), -EREMOTEIO);
	assert_string_equal(err.message, "HTTP status 500 with no message");

	/* an error envelope without errors[] */
	assert_int_equal(client_parse_envelope("{\"success\":false}", 17, 409, &res, &err), -EREMOTEIO);
	assert_string_equal(err.message, "HTTP status 409 with no message");

	/* 2xx that is not an envelope */
	assert_int_equal(client_parse_envelope("hello", 5, 200, &res, &err), -EPROTO);
	assert_int_equal(err.kind, CLIENT_ERR_PROTOCOL);
	assert_int_equal(client_parse_envelope("[1]", 3, 200, &res, &err), -EPROTO);
	assert_int_equal(client_parse_envelope("{\"success\":\"yes\"}", 17, 200, &res, &err), -EPROTO);
	assert_null(res); /* never written on failure */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_defaults), cmocka_unit_test(test_full_mapping),
		cmocka_unit_test(test_filter_values),   cmocka_unit_test(test_filter_inner),
		cmocka_unit_test(test_flag_errors),     cmocka_unit_test(test_cross_flag_errors),
		cmocka_unit_test(test_rfc3339),         cmocka_unit_test(test_table),
		cmocka_unit_test(test_render),          cmocka_unit_test(test_render_object),
		cmocka_unit_test(test_envelope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
