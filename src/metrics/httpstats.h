/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * HTTP request counts and latency histograms, by route, method and status
 * class, in a fixed table: routes are the caller's templates (an index into
 * the table given at creation, never a raw path), methods the seven below
 * (anything else counts as "OTHER"), status classes 1xx..5xx. Memory is
 * routes × 7 × 5 cells of HTTPSTATS_BUCKETS + 2 counters, allocated once; a
 * request costs a few relaxed atomic additions and no lock.
 *
 * Rendered (promtext.h) as
 *   pcapd_http_requests_total{route,method,code}              counter
 *   pcapd_http_request_duration_seconds{route,method,code}    histogram
 * with code "2xx" etc.; only cells that saw a request appear.
 */

#include <stddef.h>
#include <stdint.h>

#include "metrics/promtext.h"

/* Upper bounds of the histogram's buckets, in seconds (+Inf follows). Long
 * polls of agents hold up to 60 s. */
#define HTTPSTATS_BOUNDS 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0
#define HTTPSTATS_BUCKETS 13u

typedef struct HttpStats HttpStats;

/* routes[0..n) are label values (kept, not copied: static strings). -EINVAL
 * for n == 0, -ENOMEM. */
int httpstats_new(const char *const *routes, size_t n, HttpStats **ret);
void httpstats_free(HttpStats *h); /* NULL is fine */
/* One answered request: route an index below n (larger: ignored), method as
 * sent, status 100..599 (else ignored), elapsed from its request line to its
 * answer. Any thread. */
void httpstats_observe(HttpStats *h, size_t route, const char *method, unsigned status, uint64_t elapsed_ns);
/* Appends both families. */
void httpstats_render(HttpStats *h, PromText *t);
