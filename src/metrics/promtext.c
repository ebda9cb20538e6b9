/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/promtext.h"

#define PROM_DEFAULT_MAX (16u << 20)

void prom_init(PromText *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max ? max : PROM_DEFAULT_MAX;
}

void prom_done(PromText *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

int prom_finish(const PromText *t)
{
	return t->err;
}

/* Room for n more bytes and the NUL. */
static int reserve(PromText *t, size_t n)
{
	size_t cap;
	char *b;

	if (t->err)
		return t->err;
	if (n > t->max - t->len) {
		t->err = -E2BIG;
		return t->err;
	}
	if (t->len + n + 1 <= t->cap)
		return 0;
	cap = t->cap ? t->cap : 4096;
	while (cap < t->len + n + 1)
		cap *= 2;
	b = realloc(t->buf, cap);
	if (!b) {
		t->err = -ENOMEM;
		return t->err;
	}
	t->buf = b;
	t->cap = cap;
	return 0;
}

static void put(PromText *t, const char *s, size_t n)
{
	if (reserve(t, n) < 0)
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void puts_(PromText *t, const char *s)
{
	put(t, s, strlen(s));
}

/* s with '\\' and line feeds escaped, and '"' too when quote. */
static void put_escaped(PromText *t, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : quote && *s == '"' ? "\\\"" : NULL;

		if (!esc)
			continue;
		put(t, run, (size_t)(s - run));
		puts_(t, esc);
		run = s + 1;
	}
	put(t, run, (size_t)(s - run));
}

void prom_family(PromText *t, const char *name, const char *type, const char *help)
{
	puts_(t, "# HELP ");
	puts_(t, name);
	puts_(t, " ");
	put_escaped(t, help, 0);
	puts_(t, "\n# TYPE ");
	puts_(t, name);
	puts_(t, " ");
	puts_(t, type);
	puts_(t, "\n");
}

static void series(PromText *t, const char *name, const PromLabel *labels, size_t n_labels)
{
	puts_(t, name);
	if (!n_labels)
		return;
	puts_(t, "{");
	for (size_t i = 0; i < n_labels; i++) {
		if (i)
			puts_(t, ",");
		puts_(t, labels[i].name);
		puts_(t, "=\"");
		put_escaped(t, labels[i].value ? labels[i].value : "", 1);
		puts_(t, "\"");
	}
	puts_(t, "}");
}

void prom_u64(PromText *t, const char *name, const PromLabel *labels, size_t n_labels, uint64_t value)
{
	char v[32];

	series(t, name, labels, n_labels);
	snprintf(v, sizeof(v), " %" PRIu64 "\n", value);
	puts_(t, v);
}

void prom_double(PromText *t, const char *name, const PromLabel *labels, size_t n_labels, double value)
{
	char v[40];

	series(t, name, labels, n_labels);
	if (isnan(value))
		snprintf(v, sizeof(v), " NaN\n");
	else if (isinf(value))
		snprintf(v, sizeof(v), " %sInf\n", value < 0 ? "-" : "+");
	else
		snprintf(v, sizeof(v), " %.10g\n", value);
	puts_(t, v);
}
