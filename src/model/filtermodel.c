/* SPDX-License-Identifier: MIT */
/*
 * The filter model ⇄ its neutral JSON form (see filtermodel.h). Writing is
 * exact (every range as it is in the model); reading goes through the filter
 * module's own parsers, so the same bounds and messages hold everywhere.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "model/filtermodel.h"

/* ---- writing ---- */

static int append_str(json_t *arr, const char *s)
{
	return json_array_append_new(arr, json_string(s));
}

static json_t *addrs_json(const AddrSet *set)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < set->n; i++) {
		const AddrRange *r = &set->v[i];
		char lo[INET6_ADDRSTRLEN], hi[INET6_ADDRSTRLEN], text[2 * INET6_ADDRSTRLEN + 2];
		size_t len = r->family == AF_INET ? 4 : 16;

		if (!inet_ntop(r->family, r->lo, lo, sizeof(lo)) || !inet_ntop(r->family, r->hi, hi, sizeof(hi)))
			goto fail;
		if (memcmp(r->lo, r->hi, len) == 0)
			snprintf(text, sizeof(text), "%s", lo);
		else
			snprintf(text, sizeof(text), "%s-%s", lo, hi);
		if (append_str(arr, text) < 0)
			goto fail;
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

static json_t *ports_json(const PortSet *set)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < set->n; i++) {
		char text[16];

		if (set->v[i].lo == set->v[i].hi)
			snprintf(text, sizeof(text), "%u", set->v[i].lo);
		else
			snprintf(text, sizeof(text), "%u-%u", set->v[i].lo, set->v[i].hi);
		if (append_str(arr, text) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Sets key to v (taken) unless v is an empty array; false on failure. */
static bool set_nonempty(json_t *o, const char *key, json_t *v)
{
	if (!v)
		return false;
	if (json_array_size(v) == 0) {
		json_decref(v);
		return true;
	}
	return json_object_set_new(o, key, v) == 0;
}

static json_t *clause_json(const FilterClause *c)
{
	json_t *o = json_object();

	if (!o || !set_nonempty(o, "src", addrs_json(&c->src)) || !set_nonempty(o, "dst", addrs_json(&c->dst)) ||
	    !set_nonempty(o, "sport", ports_json(&c->sport)) || !set_nonempty(o, "dport", ports_json(&c->dport)) ||
	    (c->proto != FILTER_PROTO_ANY && json_object_set_new(o, "proto", json_integer(c->proto)) < 0) ||
	    (c->both_directions && json_object_set_new(o, "both", json_true()) < 0) ||
	    (c->inner && json_object_set_new(o, "inner", json_true()) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *filtermodel_to_json(const Filter *f)
{
	json_t *o = json_object(), *clauses = json_array();

	for (size_t i = 0; o && clauses && i < f->n_clauses; i++)
		if (json_array_append_new(clauses, clause_json(&f->clauses[i])) < 0)
			goto fail;
	if (!o || !set_nonempty(o, "clauses", clauses))
		goto fail_o;
	if (f->bpf_expr && json_object_set_new(o, "bpf", json_string(f->bpf_expr)) < 0)
		goto fail_o;
	return o;
fail:
	json_decref(clauses);
fail_o:
	json_decref(o);
	return NULL;
}

int filtermodel_to_text(const Filter *f, char **ret, ErrBuf *err)
{
	json_t *o = filtermodel_to_json(f);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(o);
	if (!text)
		return errbuf_set(err, -ENOMEM, "filter: out of memory");
	if (strlen(text) > FILTERMODEL_MAX) {
		free(text);
		return errbuf_set(err, -E2BIG, "filter: longer than %u bytes as a filter model", FILTERMODEL_MAX);
	}
	*ret = text;
	return 0;
}

/* ---- reading ---- */

typedef int (*SetParser)(const char *field, const char *s, size_t n, void *set, ErrBuf *err);

static int parse_addr_item(const char *field, const char *s, size_t n, void *set, ErrBuf *err)
{
	return filter_parse_addrs(field, s, n, set, err);
}

static int parse_port_item(const char *field, const char *s, size_t n, void *set, ErrBuf *err)
{
	return filter_parse_ports(field, s, n, set, err);
}

/* An array of strings, each one value or range, into set. */
static int parse_set(const char *field, const json_t *v, SetParser parse, void *set, ErrBuf *err)
{
	const json_t *it;
	size_t i;

	if (!json_is_array(v))
		return errbuf_set(err, -EINVAL, "%s: must be an array of strings", field);
	if (json_array_size(v) > FILTER_MAX_RANGES)
		return errbuf_set(err, -E2BIG, "%s: more than %u entries", field, FILTER_MAX_RANGES);
	json_array_foreach(v, i, it)
	{
		char item[160];
		int r;

		snprintf(item, sizeof(item), "%s[%zu]", field, i);
		if (!json_is_string(it) || json_string_length(it) == 0)
			return errbuf_set(err, -EINVAL, "%s: must be a non-empty string", item);
		r = parse(item, json_string_value(it), json_string_length(it), set, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_clause(const json_t *o, const char *where, FilterClause *c, ErrBuf *err)
{
	const char *key;
	json_t *v;
	int r = 0;

	if (!json_is_object(o))
		return errbuf_set(err, -EINVAL, "%s: must be an object", where);
	json_object_foreach((json_t *)o, key, v)
	{
		char field[160];

		snprintf(field, sizeof(field), "%s.%.40s", where, key);
		if (strcmp(key, "src") == 0)
			r = parse_set(field, v, parse_addr_item, &c->src, err);
		else if (strcmp(key, "dst") == 0)
			r = parse_set(field, v, parse_addr_item, &c->dst, err);
		else if (strcmp(key, "sport") == 0)
			r = parse_set(field, v, parse_port_item, &c->sport, err);
		else if (strcmp(key, "dport") == 0)
			r = parse_set(field, v, parse_port_item, &c->dport, err);
		else if (strcmp(key, "proto") == 0)
			r = json_is_integer(v)
				    ? filter_proto_from_number(field, (double)json_integer_value(v), &c->proto, err)
				    : errbuf_set(err, -EINVAL, "%s: must be a whole number 0..255", field);
		else if (strcmp(key, "both") == 0)
			r = json_is_boolean(v) ? (c->both_directions = json_is_true(v), 0)
					       : errbuf_set(err, -EINVAL, "%s: must be true or false", field);
		else if (strcmp(key, "inner") == 0)
			r = json_is_boolean(v) ? (c->inner = json_is_true(v), 0)
					       : errbuf_set(err, -EINVAL, "%s: must be true or false", field);
		else
			r = errbuf_set(err, -EINVAL, "%s: unknown field", field);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_clauses(const json_t *v, const char *prefix, Filter *f, ErrBuf *err)
{
	const json_t *it;
	size_t i;

	if (!json_is_array(v))
		return errbuf_set(err, -EINVAL, "%s.clauses: must be an array", prefix);
	if (json_array_size(v) > FILTER_MAX_CLAUSES)
		return errbuf_set(err, -E2BIG, "%s.clauses: more than %u", prefix, FILTER_MAX_CLAUSES);
	json_array_foreach(v, i, it)
	{
		char where[64];
		FilterClause c;
		int r;

		snprintf(where, sizeof(where), "%s.clauses[%zu]", prefix, i);
		filter_clause_init(&c);
		r = parse_clause(it, where, &c, err);
		if (r == 0)
			r = filter_add_clause(f, &c, err);
		filter_clause_done(&c);
		if (r < 0)
			return r;
	}
	return 0;
}

int filtermodel_from_json(const json_t *obj, const char *prefix, Filter *ret, ErrBuf *err)
{
	Filter f = {0};
	const char *key;
	json_t *v;
	int r = 0;

	if (!prefix)
		prefix = "filter";
	if (obj && !json_is_null(obj) && !json_is_object(obj))
		return errbuf_set(err, -EINVAL, "%s: must be an object", prefix);
	json_object_foreach((json_t *)obj, key, v)
	{
		if (strcmp(key, "clauses") == 0)
			r = parse_clauses(v, prefix, &f, err);
		else if (strcmp(key, "bpf") == 0)
			r = json_is_string(v) ? filter_set_expr(&f, json_string_value(v), json_string_length(v), err)
					      : errbuf_set(err, -EINVAL, "%s.bpf: must be a string", prefix);
		else
			r = errbuf_set(err, -EINVAL, "%s.%.40s: unknown field", prefix, key);
		if (r < 0) {
			filter_done(&f);
			return r;
		}
	}
	*ret = f;
	return 0;
}

int filtermodel_parse(const char *p, size_t n, Filter *ret, ErrBuf *err)
{
	json_error_t jerr;
	json_t *obj;
	int r;

	if (n > FILTERMODEL_MAX)
		return errbuf_set(err, -E2BIG, "filter: longer than %u bytes", FILTERMODEL_MAX);
	obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return errbuf_set(err, -EINVAL, "filter: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
				  jerr.text);
	r = filtermodel_from_json(obj, "filter", ret, err);
	json_decref(obj);
	return r;
}
