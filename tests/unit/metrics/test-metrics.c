/* SPDX-License-Identifier: MIT */
/* Unit tests for src/metrics: promtext.h and httpstats.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "metrics/httpstats.h"
#include "metrics/promtext.h"

static void test_family_and_samples(void **state)
{
	PromText t;
	PromLabel l[] = {{"agent", "edge-1"}, {"status", "running"}};

	(void)state;
	prom_init(&t, 0);
	prom_family(&t, "pcapd_x", "gauge", "What x is.");
	prom_u64(&t, "pcapd_x", NULL, 0, 0);
	prom_u64(&t, "pcapd_x", l, 2, UINT64_MAX);
	prom_double(&t, "pcapd_y", l, 1, 0.25);
	assert_int_equal(prom_finish(&t), 0);
	assert_string_equal(t.buf, "# HELP pcapd_x What x is.\n"
				   "# TYPE pcapd_x gauge\n"
				   "pcapd_x 0\n"
				   "pcapd_x{agent=\"edge-1\",status=\"running\"} 18446744073709551615\n"
				   "pcapd_y{agent=\"edge-1\"} 0.25\n");
	assert_int_equal(t.len, strlen(t.buf));
	prom_done(&t);
}

static void test_label_escaping(void **state)
{
	PromText t;
	/* backslash, quote and line feed are escaped; other bytes (UTF-8, '}',
	 * ',', '=') pass as they are */
	PromLabel l[] = {{"agent", "a\\b\"c\nd}e,f=g \xc3\xa9"}, {"empty", ""}, {"null", NULL}};

	(void)state;
	prom_init(&t, 0);
	prom_u64(&t, "m", l, 3, 1);
	assert_int_equal(prom_finish(&t), 0);
	assert_string_equal(t.buf, "m{agent=\"a\\\\b\\\"c\\nd}e,f=g \xc3\xa9\",empty=\"\",null=\"\"} 1\n");
	prom_done(&t);
}

static void test_help_escaping(void **state)
{
	PromText t;

	(void)state;
	prom_init(&t, 0);
	/* in HELP, only backslash and line feed; a quote stays */
	prom_family(&t, "m", "counter", "a \"b\" c\\d\ne");
	assert_int_equal(prom_finish(&t), 0);
	assert_string_equal(t.buf, "# HELP m a \"b\" c\\\\d\\ne\n# TYPE m counter\n");
	prom_done(&t);
}

static void test_special_values(void **state)
{
	PromText t;

	(void)state;
	prom_init(&t, 0);
	prom_double(&t, "a", NULL, 0, 1.0 / 0.0);
	prom_double(&t, "b", NULL, 0, -1.0 / 0.0);
	prom_double(&t, "c", NULL, 0, 0.0 / 0.0);
	prom_double(&t, "d", NULL, 0, 1234.5);
	assert_int_equal(prom_finish(&t), 0);
	assert_string_equal(t.buf, "a +Inf\nb -Inf\nc NaN\nd 1234.5\n");
	prom_done(&t);
}

static void test_bound(void **state)
{
	PromText t;

	(void)state;
	prom_init(&t, 64);
	for (int i = 0; i < 100; i++)
		prom_u64(&t, "pcapd_something_long", NULL, 0, (uint64_t)i);
	assert_int_equal(prom_finish(&t), -E2BIG);
	assert_true(t.len <= 64);
	assert_true(t.cap <= 4096); /* never grew past the first block */
	prom_done(&t);
}

/* The line of t that starts with prefix, or NULL. */
static const char *line_of(const PromText *t, const char *prefix)
{
	for (const char *p = t->buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return p;
	return NULL;
}

static void test_httpstats(void **state)
{
	static const char *const routes[] = {"/a/{id}", "other"};
	HttpStats *h = NULL;
	PromText t;

	(void)state;
	assert_int_equal(httpstats_new(routes, 0, &h), -EINVAL);
	assert_int_equal(httpstats_new(routes, ARRAY_SIZE(routes), &h), 0);
	httpstats_observe(h, 0, "GET", 200, 2000000);       /* 2 ms: le 0.005 */
	httpstats_observe(h, 0, "GET", 204, 1000000);       /* exactly 1 ms: le 0.001 */
	httpstats_observe(h, 0, "GET", 404, 100);           /* another class */
	httpstats_observe(h, 1, "BREW", 503, 90000000000u); /* 90 s, an odd method */
	httpstats_observe(h, 2, "GET", 200, 1);             /* no such route: ignored */
	httpstats_observe(h, 0, "GET", 600, 1);             /* no such status: ignored */
	prom_init(&t, 0);
	httpstats_render(h, &t);
	assert_int_equal(prom_finish(&t), 0);
	assert_non_null(line_of(&t, "pcapd_http_requests_total{route=\"/a/{id}\",method=\"GET\",code=\"2xx\"} 2\n"));
	assert_non_null(line_of(&t, "pcapd_http_requests_total{route=\"/a/{id}\",method=\"GET\",code=\"4xx\"} 1\n"));
	assert_non_null(line_of(&t, "pcapd_http_requests_total{route=\"other\",method=\"OTHER\",code=\"5xx\"} 1\n"));
	assert_null(line_of(&t, "pcapd_http_requests_total{route=\"/a/{id}\",method=\"POST\""));
	/* buckets are cumulative and end with +Inf = count */
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_bucket{route=\"/a/{id}\",method=\"GET\","
				    "code=\"2xx\",le=\"0.001\"} 1\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_bucket{route=\"/a/{id}\",method=\"GET\","
				    "code=\"2xx\",le=\"0.005\"} 2\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_bucket{route=\"/a/{id}\",method=\"GET\","
				    "code=\"2xx\",le=\"60\"} 2\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_sum{route=\"/a/{id}\",method=\"GET\","
				    "code=\"2xx\"} 0.003\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_count{route=\"/a/{id}\",method=\"GET\","
				    "code=\"2xx\"} 2\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_bucket{route=\"other\",method=\"OTHER\","
				    "code=\"5xx\",le=\"60\"} 0\n"));
	assert_non_null(line_of(&t, "pcapd_http_request_duration_seconds_bucket{route=\"other\",method=\"OTHER\","
				    "code=\"5xx\",le=\"+Inf\"} 1\n"));
	assert_non_null(line_of(&t, "# TYPE pcapd_http_request_duration_seconds histogram\n"));
	prom_done(&t);
	httpstats_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_help_escaping),
		cmocka_unit_test(test_special_values),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_httpstats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
