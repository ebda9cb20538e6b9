/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Exponential backoff with jitter for reconnecting to the controller: the
 * nominal delay starts at min_ms and doubles after every failure up to
 * max_ms; each delay handed out is drawn from [nominal/2, nominal] so that
 * agents restarted together do not reconnect in lockstep. Pure: the caller
 * supplies the random numbers.
 */

#include <stdint.h>

typedef struct Backoff {
	uint32_t min_ms;  /* first nominal delay */
	uint32_t max_ms;  /* cap on the nominal delay */
	uint32_t next_ms; /* nominal delay of the next failure */
} Backoff;

void backoff_init(Backoff *b, uint32_t min_ms, uint32_t max_ms);
/* The delay to wait after one more failure, given a random 32-bit number. */
uint32_t backoff_next(Backoff *b, uint32_t rnd);
/* After a success: the next failure starts again from min_ms. */
void backoff_reset(Backoff *b);
