/* SPDX-License-Identifier: MIT */
/* Exponential backoff with "equal jitter": half the nominal delay is fixed,
 * half random, so a delay never collapses to almost nothing. */
#include "agent/backoff.h"

void backoff_init(Backoff *b, uint32_t min_ms, uint32_t max_ms)
{
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	b->next_ms = b->min_ms;
}

uint32_t backoff_next(Backoff *b, uint32_t rnd)
{
	uint32_t nominal = b->next_ms, half = nominal / 2;

	b->next_ms = nominal > b->max_ms / 2 ? b->max_ms : nominal * 2;
	return (nominal - half) + (uint32_t)(rnd % ((uint64_t)half + 1));
}

void backoff_reset(Backoff *b)
{
	b->next_ms = b->min_ms;
}
