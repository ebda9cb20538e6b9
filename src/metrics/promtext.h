/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Prometheus' text exposition format (version 0.0.4), written into one
 * growing buffer: a family's # HELP and # TYPE lines, then its samples
 *
 *     # HELP pcapd_agent_online Whether the agent reported within --agent-timeout.
 *     # TYPE pcapd_agent_online gauge
 *     pcapd_agent_online{agent="edge-1"} 1
 *
 * Escaping (the format's rules): in a label value '\\', '"' and a line feed
 * become \\, \" and \n; in HELP text '\\' and a line feed do. Metric and
 * label names are the caller's constants and are not checked here.
 *
 * Errors are sticky: the first failure (-ENOMEM, or -E2BIG past max bytes)
 * stops all further writing, and prom_finish() returns it. The buffer never
 * holds more than max bytes: a scrape's memory is bounded.
 */

#include <stddef.h>
#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct PromLabel {
	const char *name;
	const char *value;
} PromLabel;

typedef struct PromText {
	char *buf; /* NUL-terminated while err == 0 */
	size_t len, cap, max;
	int err;
} PromText;

/* An empty text of at most max bytes (0 = 16 MiB). */
void prom_init(PromText *t, size_t max);
/* Frees the buffer. */
void prom_done(PromText *t);
/* 0, or the first error; on 0, buf[0..len) is the text. */
int prom_finish(const PromText *t);

/* "# HELP name help\n# TYPE name type\n" (type: "counter", "gauge", "histogram"). */
void prom_family(PromText *t, const char *name, const char *type, const char *help);
/* One sample line: name{l0="v0",...} value. n_labels may be 0. */
void prom_u64(PromText *t, const char *name, const PromLabel *labels, size_t n_labels, uint64_t value);
void prom_double(PromText *t, const char *name, const PromLabel *labels, size_t n_labels, double value);
