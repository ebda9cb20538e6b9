/* SPDX-License-Identifier: MIT */
/* Unit tests for src/controller/registry: delivery once per session, the
 * generation rule that makes wake-ups impossible to miss, parking, and what
 * other controllers stored merged in (registry_merge). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "controller/registry.h"

#define ACC_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ACC_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

#define SEC ((int64_t)NSEC_PER_SEC)
#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int parked, woken;

static void park(void *arg)
{
	(void)arg;
	parked++;
}

static void wake(void *arg)
{
	(void)arg;
	woken++;
}

static Delivery delivery(const char *id, DeliveryKind kind)
{
	Delivery d = {.kind = kind};

	snprintf(d.id, sizeof(d.id), "%s", id);
	return d;
}

static void test_online_and_match(void **state)
{
	Registry *r;
	char names[4][AGENT_NAME_MAX + 1];
	char text[128];

	(void)state;
	assert_int_equal(registry_new(&r), 0);
	assert_int_equal(registry_seen(r, "web01", "", "ord02", "eth0", "0.1", true, 10 * SEC), 0);
	assert_int_equal(registry_seen(r, "web02", ACC_A, "ORD02", "eth0", "0.1", true, 10 * SEC), 0);
	assert_int_equal(registry_seen(r, "db01", "", "ams01", "eth0", "0.1", true, 1 * SEC), 0);
	/* colo and name match case-insensitively; db01 is offline by now */
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_ANY, "Ord02", 12 * SEC, 5 * SEC, names, 4), 2);
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_ANY, "WEB01", 12 * SEC, 5 * SEC, names, 4), 1);
	assert_string_equal(names[0], "web01");
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_ANY, "ams01", 12 * SEC, 5 * SEC, names, 4), 0);
	/* by kind: an agent's name only, or a colo only */
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_AGENT, "ord02", 12 * SEC, 5 * SEC, names, 4), 0);
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_AGENT, "Web02", 12 * SEC, 5 * SEC, names, 4), 1);
	assert_string_equal(names[0], "web02");
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_COLO, "web01", 12 * SEC, 5 * SEC, names, 4), 0);
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_COLO, "ORD02", 12 * SEC, 5 * SEC, names, 4), 2);
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_COLO, NULL, 12 * SEC, 5 * SEC, names, 4), 2);
	/* a report counts for status queries once it is applied */
	assert_false(registry_reported_since(r, "web01", 0));
	registry_reported(r, "web01");
	assert_true(registry_reported_since(r, "web01", 1));
	assert_false(registry_reported_since(r, "web01", INT64_MAX));
	assert_false(registry_reported_since(r, "nobody", 0));
	assert_true(registry_online(r, "web01", 12 * SEC, 5 * SEC));
	assert_false(registry_online(r, "db01", 12 * SEC, 5 * SEC));
	assert_false(registry_online(r, "nobody", 12 * SEC, 5 * SEC));
	/* a poll counts as a sign of life */
	assert_int_equal(registry_touch(r, "db01", 11 * SEC), 0);
	assert_true(registry_online(r, "db01", 12 * SEC, 5 * SEC));
	assert_int_equal(registry_touch(r, "nobody", 11 * SEC), -ENOENT);
	registry_describe(r, NULL, 12 * SEC, 5 * SEC, text, sizeof(text));
	assert_string_equal(text, "web01 (colo ord02), web02 (colo ORD02), db01 (colo ams01)");
	/* web02 serves account A only; operator agents serve every account */
	assert_int_equal(registry_match(r, ACC_A, JOB_TARGET_ANY, "ord02", 12 * SEC, 5 * SEC, names, 4), 2);
	assert_int_equal(registry_match(r, ACC_B, JOB_TARGET_ANY, "ord02", 12 * SEC, 5 * SEC, names, 4), 1);
	assert_string_equal(names[0], "web01");
	registry_describe(r, ACC_B, 12 * SEC, 5 * SEC, text, sizeof(text));
	assert_string_equal(text, "web01 (colo ord02), db01 (colo ams01)");
	/* a revoked agent is forgotten */
	registry_forget(r, "web01");
	assert_false(registry_online(r, "web01", 12 * SEC, 5 * SEC));
	assert_int_equal(registry_match(r, ACC_B, JOB_TARGET_ANY, "ord02", 12 * SEC, 5 * SEC, names, 4), 0);
	registry_free(r);
}

static void test_delivered_once_per_session(void **state)
{
	Registry *r;
	Delivery d[2] = {delivery(ID_A, DELIVER_START), delivery(ID_B, DELIVER_START)};
	uint64_t gen;

	(void)state;
	assert_int_equal(registry_new(&r), 0);
	assert_int_equal(registry_generation(r, "a1", &gen), -ENOENT);
	assert_int_equal(registry_take(r, "a1", 0, d, 2), -ENOENT);
	registry_seen(r, "a1", "", "c", "", "", true, SEC);
	assert_int_equal(registry_generation(r, "a1", &gen), 0);
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 2);
	assert_true(d[0].take && d[1].take);
	/* the same candidates again: nothing new */
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 0);
	assert_false(d[0].take || d[1].take);
	/* a stop for A is a different delivery */
	d[1] = delivery(ID_A, DELIVER_STOP);
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 1);
	assert_false(d[0].take);
	assert_true(d[1].take);
	/* B dropped out of the candidates and came back: delivered again */
	d[1] = delivery(ID_B, DELIVER_START);
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 1);
	assert_true(d[1].take);
	/* a heartbeat keeps the session; a hello starts a new one */
	registry_seen(r, "a1", "", "c", "", "", false, 2 * SEC);
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 0);
	registry_seen(r, "a1", "", "c", "", "", true, 3 * SEC);
	registry_generation(r, "a1", &gen);
	assert_int_equal(registry_take(r, "a1", gen, d, 2), 2);
	registry_free(r);
}

static void test_generation_prevents_lost_wakeups(void **state)
{
	Registry *r;
	Delivery none[1];
	uint64_t gen;

	(void)state;
	parked = woken = 0;
	assert_int_equal(registry_new(&r), 0);
	registry_seen(r, "a1", "", "c", "", "", true, SEC);
	registry_generation(r, "a1", &gen);
	/* work is created between the poll's read of the database and its park */
	registry_wake(r, "a1");
	assert_int_equal(registry_take(r, "a1", gen, none, 0), -EAGAIN);
	assert_int_equal(registry_park(r, "a1", gen, 100 * SEC, park, wake, NULL), -EAGAIN);
	assert_int_equal(parked, 0);
	/* with the fresh generation it parks, and a wake reaches it once */
	registry_generation(r, "a1", &gen);
	assert_int_equal(registry_park(r, "a1", gen, 100 * SEC, park, wake, NULL), 0);
	assert_int_equal(parked, 1);
	registry_wake(r, "a1");
	registry_wake(r, "a1");
	assert_int_equal(woken, 1);
	registry_free(r);
}

static void test_park_expire_displace_shutdown(void **state)
{
	Registry *r;
	uint64_t gen;

	(void)state;
	parked = woken = 0;
	assert_int_equal(registry_new(&r), 0);
	registry_seen(r, "a1", "", "c", "", "", true, SEC);
	registry_generation(r, "a1", &gen);
	assert_int_equal(registry_park(r, "a1", gen, 5 * SEC, park, wake, NULL), 0);
	registry_expire(r, 4 * SEC);
	assert_int_equal(woken, 0);
	registry_expire(r, 5 * SEC);
	assert_int_equal(woken, 1);
	/* a second poll of the same agent wakes the first */
	assert_int_equal(registry_park(r, "a1", gen, 9 * SEC, park, wake, NULL), 0);
	assert_int_equal(registry_park(r, "a1", gen, 9 * SEC, park, wake, NULL), 0);
	assert_int_equal(woken, 2);
	/* shutdown forgets the parked poll without waking it, and refuses more */
	registry_shutdown(r);
	registry_expire(r, 100 * SEC);
	assert_int_equal(woken, 2);
	assert_int_equal(registry_park(r, "a1", gen, 200 * SEC, park, wake, NULL), -ESHUTDOWN);
	registry_free(r);
}

static void test_stats(void **state)
{
	Registry *r;
	AgentStats *v = NULL;
	size_t n = 0;
	json_t *h;

	(void)state;
	assert_int_equal(registry_new(&r), 0);
	assert_int_equal(registry_stats(r, NULL, 0, SEC, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(registry_seen(r, "rec", "", "c", "eth0", "0.1", true, 10 * SEC), 0);
	assert_int_equal(registry_seen(r, "off", ACC_A, "c", "eth0", "0.1", true, 1 * SEC), 0);
	assert_int_equal(registry_seen(r, "quiet", "", "c", "eth0", "0.1", true, 10 * SEC), 0);
	h = json_pack("{s:b, s:I, s:I}", "recording", 1, "drops", (json_int_t)42, "sample_rate", (json_int_t)1);
	registry_set_history(r, "rec", h);
	json_decref(h);
	h = json_pack("{s:b, s:s, s:i}", "recording", 0, "error", "no space", "sample_rate", 0);
	registry_set_history(r, "off", h);
	json_decref(h);
	registry_count(r, "rec", 5, 1);
	registry_count(r, "rec", 2, 0);
	registry_count(r, "nobody", 9, 9); /* ignored */

	assert_int_equal(registry_stats(r, NULL, 12 * SEC, 5 * SEC, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "rec");
	assert_true(v[0].online);
	assert_int_equal(v[0].kernel_drops, 7);
	assert_int_equal(v[0].parts_failed, 1);
	assert_true(v[0].history_known && v[0].history_recording);
	assert_int_equal(v[0].history_drops, 42);
	assert_string_equal(v[1].name, "off");
	assert_false(v[1].online); /* last seen 11 s before */
	assert_true(v[1].history_known);
	assert_false(v[1].history_recording);
	assert_int_equal(v[1].history_drops, 0);
	assert_false(v[2].history_known); /* never sent its recorder's state */
	assert_int_equal(v[2].kernel_drops + v[2].parts_failed, 0);
	free(v);
	/* an account sees the operator's agents and its own, never another's */
	assert_int_equal(registry_stats(r, ACC_B, 12 * SEC, 5 * SEC, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "rec");
	assert_string_equal(v[1].name, "quiet");
	free(v);
	assert_int_equal(registry_stats(r, ACC_A, 12 * SEC, 5 * SEC, &v, &n), 0);
	assert_int_equal(n, 3);
	free(v);
	registry_free(r);
}

/* Rows as another controller stored them: a newer one refreshes (or adds)
 * an agent, with its account, colo and history, and its age carries over to
 * monotonic time; older rows, rows from before the agent was seen here and
 * rows that do not say whom the agent serves change nothing. */
static void test_merge(void **state)
{
	Registry *r;
	char names[4][AGENT_NAME_MAX + 1];
	int64_t now_real = (int64_t)now_realtime_ns(), now_mono = 50 * SEC;
	AgentRow rows[4] = {
		{.name = "far1", .colo = "lhr", .last_seen_ns = now_real - 2 * SEC},
		{.name = "web01", .colo = "old", .last_seen_ns = now_real - 30 * SEC},
		{.name = "legacy", .colo = "lhr", .last_seen_ns = now_real - SEC},
		{.name = "ancient", .colo = "lhr", .last_seen_ns = now_real - 900 * SEC},
	};
	AgentStats *st = NULL;
	size_t n = 0;
	json_t *list;

	(void)state;
	rows[0].account = (char *)ACC_A;
	rows[0].history = (char *)"{\"recording\": true, \"drops\": 3}";
	rows[1].account = (char *)"";
	rows[3].account = (char *)"";
	assert_int_equal(registry_new(&r), 0);
	/* web01 reported here just now: the older row leaves it alone. */
	assert_int_equal(registry_seen(r, "web01", "", "ord02", "eth0", "0.1", true, now_mono), 0);
	registry_merge(r, rows, 4, now_real - 100 * SEC, now_mono, now_real);
	assert_int_equal(registry_match(r, ACC_A, JOB_TARGET_COLO, "LHR", now_mono, 5 * SEC, names, 4), 1);
	assert_string_equal(names[0], "far1");
	assert_false(registry_online(r, "far1", now_mono + 4 * SEC, 5 * SEC)); /* 2 s old already */
	assert_int_equal(registry_match(r, ACC_B, JOB_TARGET_COLO, "lhr", now_mono, 5 * SEC, names, 4), 0);
	assert_int_equal(registry_match(r, NULL, JOB_TARGET_COLO, "ord02", now_mono, 5 * SEC, names, 4), 1);
	assert_false(registry_online(r, "legacy", now_mono, 5 * SEC));
	assert_false(registry_online(r, "ancient", now_mono, 1000 * SEC));
	assert_int_equal(registry_stats(r, NULL, now_mono, 5 * SEC, &st, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(st[1].name, "far1");
	assert_true(st[1].history_recording);
	assert_int_equal(st[1].history_drops, 3);
	free(st);
	/* A newer row of an agent of this controller moves it on. */
	rows[1].last_seen_ns = now_real + SEC;
	registry_merge(r, rows, 2, now_real - 100 * SEC, now_mono + 2 * SEC, now_real + 2 * SEC);
	list = registry_json(r, NULL, now_mono + 2 * SEC, 5 * SEC);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "colo")), "old");
	json_decref(list);
	registry_free(r);
}

/* 3,000 agents (the name index grows, wraps and is probed past collisions),
 * every third forgotten (entries move back, the last agent moves into the
 * gap), then found or not by name, and the forgotten ones added again. */
static void test_many_names(void **state)
{
	Registry *r;
	char name[32];

	(void)state;
	assert_int_equal(registry_new(&r), 0);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "agent%04d", i);
		assert_int_equal(registry_seen(r, name, "", "c", "eth0", "0.1", true, SEC), 0);
	}
	for (int i = 0; i < 3000; i += 3) {
		snprintf(name, sizeof(name), "agent%04d", i);
		registry_forget(r, name);
	}
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "agent%04d", i);
		assert_int_equal(registry_touch(r, name, 2 * SEC), i % 3 ? 0 : -ENOENT);
	}
	assert_int_equal(registry_touch(r, "agent3000", 2 * SEC), -ENOENT);
	for (int i = 0; i < 3000; i += 3) {
		snprintf(name, sizeof(name), "agent%04d", i);
		assert_int_equal(registry_seen(r, name, "", "c", "eth0", "0.1", true, SEC), 0);
	}
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "agent%04d", i);
		assert_int_equal(registry_touch(r, name, 3 * SEC), 0);
	}
	registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_online_and_match),
		cmocka_unit_test(test_delivered_once_per_session),
		cmocka_unit_test(test_generation_prevents_lost_wakeups),
		cmocka_unit_test(test_park_expire_displace_shutdown),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_many_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
