/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "metrics/httpstats.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OTHER"};
static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const double bounds[HTTPSTATS_BUCKETS] = {HTTPSTATS_BOUNDS};

#define N_METHODS ARRAY_SIZE(methods)
#define N_CLASSES ARRAY_SIZE(classes)

typedef struct Cell {
	atomic_uint_fast64_t bucket[HTTPSTATS_BUCKETS + 1]; /* not cumulative; the last is +Inf */
	atomic_uint_fast64_t sum_ns;
} Cell;

struct HttpStats {
	const char *const *routes;
	size_t n_routes;
	Cell *cells; /* [route][method][class] */
};

int httpstats_new(const char *const *routes, size_t n, HttpStats **ret)
{
	HttpStats *h;

	if (!routes || n == 0)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cells = calloc(n * N_METHODS * N_CLASSES, sizeof(*h->cells));
	if (!h->cells) {
		free(h);
		return -ENOMEM;
	}
	h->routes = routes;
	h->n_routes = n;
	*ret = h;
	return 0;
}

void httpstats_free(HttpStats *h)
{
	if (!h)
		return;
	free(h->cells);
	free(h);
}

static size_t method_index(const char *m)
{
	for (size_t i = 0; m && i + 1 < N_METHODS; i++)
		if (strcmp(m, methods[i]) == 0)
			return i;
	return N_METHODS - 1;
}

void httpstats_observe(HttpStats *h, size_t route, const char *method, unsigned status, uint64_t elapsed_ns)
{
	double s = (double)elapsed_ns / 1e9;
	size_t b = 0;
	Cell *c;

	if (!h || route >= h->n_routes || status < 100 || status > 599)
		return;
	c = &h->cells[(route * N_METHODS + method_index(method)) * N_CLASSES + (status / 100 - 1)];
	while (b < HTTPSTATS_BUCKETS && s > bounds[b])
		b++;
	atomic_fetch_add_explicit(&c->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->sum_ns, elapsed_ns, memory_order_relaxed);
}

void httpstats_render(HttpStats *h, PromText *t)
{
	static const char count_name[] = "pcapd_http_requests_total";
	static const char hist_name[] = "pcapd_http_request_duration_seconds";
	size_t n = h->n_routes * N_METHODS * N_CLASSES;
	uint64_t(*snap)[HTTPSTATS_BUCKETS + 2] = calloc(n, sizeof(*snap));

	if (!snap) {
		t->err = t->err ? t->err : -ENOMEM;
		return;
	}
	/* One read of every counter, so that both families agree. */
	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; b <= HTTPSTATS_BUCKETS; b++)
			snap[i][b] = atomic_load_explicit(&h->cells[i].bucket[b], memory_order_relaxed);
		snap[i][HTTPSTATS_BUCKETS + 1] = atomic_load_explicit(&h->cells[i].sum_ns, memory_order_relaxed);
	}
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			prom_family(t, count_name, "counter",
				    "HTTP requests answered, by route template, method and status class.");
		else
			prom_family(t, hist_name, "histogram",
				    "Time from a request's first line to its answer being queued, by route "
				    "template, method and status class.");
		for (size_t i = 0; i < n; i++) {
			size_t route = i / (N_METHODS * N_CLASSES), m = i / N_CLASSES % N_METHODS, k = i % N_CLASSES;
			PromLabel l[4] = {{"route", h->routes[route]}, {"method", methods[m]}, {"code", classes[k]}};
			uint64_t total = 0;
			char le[32], name[64];

			for (size_t b = 0; b <= HTTPSTATS_BUCKETS; b++)
				total += snap[i][b];
			if (!total)
				continue;
			if (pass == 0) {
				prom_u64(t, count_name, l, 3, total);
				continue;
			}
			snprintf(name, sizeof(name), "%s_bucket", hist_name);
			l[3].name = "le";
			l[3].value = le;
			total = 0;
			for (size_t b = 0; b <= HTTPSTATS_BUCKETS; b++) {
				total += snap[i][b];
				if (b < HTTPSTATS_BUCKETS)
					snprintf(le, sizeof(le), "%g", bounds[b]);
				else
					snprintf(le, sizeof(le), "+Inf");
				prom_u64(t, name, l, 4, total);
			}
			snprintf(name, sizeof(name), "%s_sum", hist_name);
			prom_double(t, name, l, 3, (double)snap[i][HTTPSTATS_BUCKETS + 1] / 1e9);
			snprintf(name, sizeof(name), "%s_count", hist_name);
			prom_u64(t, name, l, 3, total);
		}
	}
	free(snap);
}
