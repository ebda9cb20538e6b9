/* SPDX-License-Identifier: MIT */
/* Unit tests for src/controller/keycache: keys used only while revocations
 * are heard and fresh, a revocation winning over a lookup that raced it,
 * and the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "controller/keycache.h"

#define SEC ((int64_t)NSEC_PER_SEC)

static AgentKey key(const char *name)
{
	AgentKey k = {0};

	snprintf(k.name, sizeof(k.name), "%s", name);
	return k;
}

static void hash_of(unsigned i, uint8_t h[32])
{
	memset(h, 0, 32);
	memcpy(h, &i, sizeof(i));
	h[31] = 0x5a;
}

static void test_keycache(void **state)
{
	KeyCache *c = NULL;
	AgentKey a = key("web-1"), got;
	uint8_t h[32];
	uint64_t t;

	(void)state;
	assert_int_equal(keycache_new(&c), 0);
	hash_of(1, h);
	/* Not hearing revocations yet: nothing is kept. */
	keycache_put(c, keycache_begin(c), h, &a, 0);
	assert_false(keycache_get(c, h, 0, &got));
	keycache_hearing(c, true);
	keycache_put(c, keycache_begin(c), h, &a, 10);
	assert_true(keycache_get(c, h, 11, &got));
	assert_string_equal(got.name, "web-1");
	/* Stale after the TTL. */
	assert_false(keycache_get(c, h, 10 + KEYCACHE_TTL_NS, &got));
	/* A revocation heard between the lookup and the put wins. */
	t = keycache_begin(c);
	keycache_forget(c, "other");
	keycache_put(c, t, h, &a, 20);
	assert_false(keycache_get(c, h, 21, &got));
	/* A revocation drops the agent's keys; others stay. */
	keycache_put(c, keycache_begin(c), h, &a, 30);
	{
		uint8_t h2[32];
		AgentKey b = key("web-2");

		hash_of(2, h2);
		keycache_put(c, keycache_begin(c), h2, &b, 30);
		keycache_forget(c, "web-1");
		assert_false(keycache_get(c, h, 31, &got));
		assert_true(keycache_get(c, h2, 31, &got));
		/* A session lost: nothing is used until one listens again. */
		keycache_hearing(c, false);
		assert_false(keycache_get(c, h2, 32, &got));
		keycache_hearing(c, true);
		assert_false(keycache_get(c, h2, 33, &got));
	}
	/* Bounded: many more keys than slots, the newest found. */
	for (unsigned i = 0; i < 4 * KEYCACHE_MAX; i++) {
		char name[16];
		AgentKey k;

		snprintf(name, sizeof(name), "a%u", i % 100000u);
		k = key(name);
		hash_of(i * 2654435761u, h);
		keycache_put(c, keycache_begin(c), h, &k, 40 * SEC + i);
		assert_true(keycache_get(c, h, 40 * SEC + i, &got));
		assert_string_equal(got.name, name);
	}
	keycache_free(c);
	keycache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keycache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
