/* SPDX-License-Identifier: MIT */
/*
 * The filter model's life cycle: clauses are built by the parsers, moved into a
 * Filter, and freed with it. Nothing here interprets a clause; compile.c does.
 */
#include "filter/filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void filter_clause_init(FilterClause *c)
{
	memset(c, 0, sizeof(*c));
	c->proto = FILTER_PROTO_ANY;
}

void filter_clause_done(FilterClause *c)
{
	if (!c)
		return;
	free(c->src.v);
	free(c->dst.v);
	free(c->sport.v);
	free(c->dport.v);
	filter_clause_init(c);
}

int filter_add_clause(Filter *f, FilterClause *c, ErrBuf *err)
{
	FilterClause *v;

	if (f->n_clauses >= FILTER_MAX_CLAUSES)
		return errbuf_set(err, -E2BIG, "filters: more than %u clauses", FILTER_MAX_CLAUSES);
	v = realloc(f->clauses, (f->n_clauses + 1) * sizeof(*v));
	if (!v)
		return errbuf_set(err, -ENOMEM, "filters: out of memory");
	f->clauses = v;
	f->clauses[f->n_clauses++] = *c;
	/* The clause's sets now belong to f: leave c empty, not freed. */
	filter_clause_init(c);
	return 0;
}

int filter_set_expr(Filter *f, const char *expr, size_t n, ErrBuf *err)
{
	char *copy;

	if (n > FILTER_MAX_EXPR)
		return errbuf_set(err, -E2BIG, "bpf_expr: %zu bytes, at most %u", n, FILTER_MAX_EXPR);
	if (n > 0 && memchr(expr, '\0', n))
		return errbuf_set(err, -EINVAL, "bpf_expr: contains a NUL byte");
	copy = malloc(n + 1);
	if (!copy)
		return errbuf_set(err, -ENOMEM, "bpf_expr: out of memory");
	if (n > 0)
		memcpy(copy, expr, n);
	copy[n] = '\0';
	free(f->bpf_expr);
	f->bpf_expr = copy;
	return 0;
}

void filter_done(Filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_clauses; i++)
		filter_clause_done(&f->clauses[i]);
	free(f->clauses);
	free(f->bpf_expr);
	memset(f, 0, sizeof(*f));
}
