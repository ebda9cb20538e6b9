/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the live merge's decision (src/pcap/livemerge.h): with
 * every input present the order is the timestamp order with ties to the lower
 * input; an input with nothing queued holds the candidate back until it sends
 * a record, a watermark past it or its end, or for the window at most, after
 * which it is passed over until it sends something.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pcap/livemerge.h"

#define S 1000000000LL
#define WINDOW (3 * S)

static LiveMergeStep step(LiveInput *in, size_t n, int64_t now, size_t *ret_i, int64_t *ret_until)
{
	*ret_i = 99;
	*ret_until = -1;
	return livemerge_step(in, n, now, WINDOW, ret_i, ret_until);
}

static void test_all_present(void **state)
{
	LiveInput in[3] = {
		{.has_head = true, .head_ts = 5}, {.has_head = true, .head_ts = 3}, {.has_head = true, .head_ts = 3}};
	size_t i;
	int64_t until;

	(void)state;
	assert_int_equal(step(in, 3, 100, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 1); /* the smallest; a tie goes to the lower input */
	in[1].has_head = false;
	in[1].ended = true;
	assert_int_equal(step(in, 3, 100, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 2);
	in[2].ended = true;
	in[2].has_head = false;
	assert_int_equal(step(in, 3, 100, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 0);
	in[0].has_head = false;
	assert_int_equal(step(in, 3, 100, &i, &until), LIVEMERGE_WAIT); /* input 0 has not ended */
	assert_int_equal(until, INT64_MAX);
	in[0].ended = true;
	assert_int_equal(step(in, 3, 100, &i, &until), LIVEMERGE_DONE);
	assert_int_equal(step(in, 0, 100, &i, &until), LIVEMERGE_DONE);
}

static void test_waits_for_an_empty_input(void **state)
{
	LiveInput in[2] = {{.has_head = true, .head_ts = 1000}, {0}};
	size_t i;
	int64_t until;

	(void)state;
	assert_int_equal(step(in, 2, 10 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(until, 10 * S + WINDOW);
	assert_int_equal(in[1].blocking_since, 10 * S);
	/* Later, still nothing: the same deadline. */
	assert_int_equal(step(in, 2, 11 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(until, 10 * S + WINDOW);
	/* A watermark short of the candidate changes nothing. */
	in[1].watermark_ns = 999;
	assert_int_equal(step(in, 2, 11 * S, &i, &until), LIVEMERGE_WAIT);
	/* One at the candidate's time lets it go, and clears the block. */
	in[1].watermark_ns = 1000;
	assert_int_equal(step(in, 2, 11 * S, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 0);
	assert_int_equal(in[1].blocking_since, 0);
	/* A record from the waiting input that is older goes first. */
	in[1].watermark_ns = 0;
	in[1].has_head = true;
	in[1].head_ts = 900;
	assert_int_equal(step(in, 2, 11 * S, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 1);
}

static void test_window_passes_over(void **state)
{
	LiveInput in[2] = {{.has_head = true, .head_ts = 1000}, {0}};
	size_t i;
	int64_t until;

	(void)state;
	assert_int_equal(step(in, 2, 10 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(step(in, 2, 10 * S + WINDOW - 1, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(step(in, 2, 10 * S + WINDOW, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 0);
	/* Passed over for the next records too: no new wait per record. */
	in[0].head_ts = 2000;
	assert_int_equal(step(in, 2, 10 * S + WINDOW + 1, &i, &until), LIVEMERGE_EMIT);
	/* A watermark that does not reach the candidate keeps it passed over
	 * (an input whose clock lags holds nothing back for long). */
	in[1].watermark_ns = 1500;
	assert_int_equal(step(in, 2, 20 * S, &i, &until), LIVEMERGE_EMIT);
	/* Once it sends a record it takes part again: its old record goes out
	 * (late, out of order), then it is waited for anew. */
	in[1].has_head = true;
	in[1].head_ts = 1200;
	assert_int_equal(step(in, 2, 21 * S, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 1);
	in[1].has_head = false;
	assert_int_equal(step(in, 2, 21 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(until, 21 * S + WINDOW);
}

/* A silent input passed over once stays passed over while the others'
 * queues run dry between bursts: the window delays the stream once. */
static void test_passed_over_between_bursts(void **state)
{
	LiveInput in[2] = {{.has_head = true, .head_ts = 1000}, {0}};
	size_t i;
	int64_t until;

	(void)state;
	assert_int_equal(step(in, 2, 10 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(step(in, 2, 10 * S + WINDOW, &i, &until), LIVEMERGE_EMIT);
	in[0].has_head = false;
	assert_int_equal(step(in, 2, 11 * S + WINDOW, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(until, INT64_MAX);
	in[0].has_head = true;
	in[0].head_ts = 5000;
	assert_int_equal(step(in, 2, 30 * S, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 0);
}

static void test_several_waiting(void **state)
{
	LiveInput in[3] = {{0}, {.has_head = true, .head_ts = 50}, {0}};
	size_t i;
	int64_t until;

	(void)state;
	assert_int_equal(step(in, 3, 1 * S, &i, &until), LIVEMERGE_WAIT);
	in[2].has_head = true;
	in[2].head_ts = 70;
	/* Input 0 still blocks, with the deadline from when it began. */
	assert_int_equal(step(in, 3, 2 * S, &i, &until), LIVEMERGE_WAIT);
	assert_int_equal(until, 1 * S + WINDOW);
	in[0].ended = true;
	assert_int_equal(step(in, 3, 2 * S, &i, &until), LIVEMERGE_EMIT);
	assert_int_equal(i, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_present),        cmocka_unit_test(test_waits_for_an_empty_input),
		cmocka_unit_test(test_window_passes_over), cmocka_unit_test(test_passed_over_between_bursts),
		cmocka_unit_test(test_several_waiting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
