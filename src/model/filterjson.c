/* SPDX-License-Identifier: MIT */
/*
 * filter_v1 (+ pcapd extensions) ⇄ the filter model. One clause; the pcap-filter
 * expression in "bpf" is ANDed with it (filter.h); "inner": true makes the
 * clause match tunnelled packets by their inner headers too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/filterjson.h"

/* filter_set_expr, its message naming the field as the client wrote it
 * ("filter_v1.bpf: 5000 bytes, at most 4096", not the filter's own name). */
static int set_expr(Filter *f, const char *field, const json_t *v, ErrBuf *err)
{
	static const char own[] = "bpf_expr: ";
	ErrBuf e = {{0}};
	const char *m;
	int r = filter_set_expr(f, json_string_value(v), json_string_length(v), &e);

	if (r == 0)
		return 0;
	m = strncmp(e.msg, own, sizeof(own) - 1) == 0 ? e.msg + sizeof(own) - 1 : e.msg;
	return errbuf_set(err, r == -ENOMEM ? r : -EINVAL, "%s: %s", field, m);
}

static int field_name(char *out, size_t cap, const char *prefix, const char *key)
{
	int n = snprintf(out, cap, "%s%s%s", prefix ? prefix : "", prefix && *prefix ? "." : "", key);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

static int parse_port(const char *field, const json_t *v, PortSet *set, ErrBuf *err)
{
	if (json_is_number(v))
		return filter_port_from_number(field, json_number_value(v), set, err);
	if (json_is_string(v))
		return filter_parse_ports(field, json_string_value(v), json_string_length(v), set, err);
	return errbuf_set(err, -EINVAL, "%s: must be a number (or a string such as \"80-90\" or \"80;443\")", field);
}

static int parse_proto(const char *field, const json_t *v, int *ret, ErrBuf *err)
{
	if (json_is_number(v))
		return filter_proto_from_number(field, json_number_value(v), ret, err);
	if (json_is_string(v))
		return filter_parse_proto(field, json_string_value(v), json_string_length(v), ret, err);
	return errbuf_set(err, -EINVAL, "%s: must be an IP protocol number (or a name such as \"tcp\")", field);
}

static int parse_addr(const char *field, const json_t *v, AddrSet *set, ErrBuf *err)
{
	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL, "%s: must be a string holding an IP address", field);
	return filter_parse_addrs(field, json_string_value(v), json_string_length(v), set, err);
}

int filterjson_parse(const json_t *obj, const char *prefix, Filter *ret, char **ret_canonical, ErrBuf *err)
{
	Filter f = {0};
	FilterClause c;
	json_t *canon = NULL;
	const char *key;
	json_t *v;
	char field[96];
	bool have_clause = false;
	int r = 0;

	filter_clause_init(&c);
	if (obj && !json_is_null(obj) && !json_is_object(obj)) {
		r = errbuf_set(err, -EINVAL, "%s: must be an object", prefix && *prefix ? prefix : "filter");
		goto fail;
	}
	canon = json_object();
	if (!canon) {
		r = -ENOMEM;
		goto fail;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		if (field_name(field, sizeof(field), prefix, key) < 0) {
			r = errbuf_set(err, -EINVAL, "%s: unknown field (name too long)", prefix ? prefix : "filter");
			goto fail;
		}
		/* SDKs send explicit nulls for absent fields, and forms send ""
		 * for fields left blank: both mean no condition. */
		if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
			continue;
		if (strcmp(key, "source_address") == 0) {
			r = parse_addr(field, v, &c.src, err);
			have_clause = true;
		} else if (strcmp(key, "destination_address") == 0) {
			r = parse_addr(field, v, &c.dst, err);
			have_clause = true;
		} else if (strcmp(key, "source_port") == 0) {
			r = parse_port(field, v, &c.sport, err);
			have_clause = true;
		} else if (strcmp(key, "destination_port") == 0) {
			r = parse_port(field, v, &c.dport, err);
			have_clause = true;
		} else if (strcmp(key, "protocol") == 0) {
			r = parse_proto(field, v, &c.proto, err);
			have_clause = true;
		} else if (strcmp(key, "inner") == 0) {
			if (!json_is_boolean(v))
				r = errbuf_set(err, -EINVAL, "%s: must be true or false", field);
			else
				c.inner = json_is_true(v);
		} else if (strcmp(key, "bpf") == 0) {
			if (!json_is_string(v))
				r = errbuf_set(err, -EINVAL, "%s: must be a string (a pcap-filter expression)", field);
			else
				r = set_expr(&f, field, v, err);
		} else {
			r = errbuf_set(err, -EINVAL,
				       "%s: unknown field (expected source_address, destination_address, "
				       "source_port, destination_port, protocol, inner or bpf)",
				       field);
		}
		if (r < 0)
			goto fail;
		if (json_object_set((json_t *)canon, key, v) < 0) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (have_clause) {
		r = filter_add_clause(&f, &c, err);
		if (r < 0)
			goto fail;
	}
	if (ret_canonical) {
		char *text = json_dumps(canon, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (!text) {
			r = -ENOMEM;
			goto fail;
		}
		if (strlen(text) > FILTERJSON_MAX) {
			free(text);
			r = errbuf_set(err, -E2BIG, "%s: longer than %u bytes", prefix && *prefix ? prefix : "filter",
				       FILTERJSON_MAX);
			goto fail;
		}
		*ret_canonical = text;
	}
	json_decref(canon);
	filter_clause_done(&c);
	*ret = f;
	return 0;
fail:
	if (r == -ENOMEM)
		errbuf_set(err, r, "out of memory");
	json_decref(canon);
	filter_clause_done(&c);
	filter_done(&f);
	return r;
}

int filterjson_parse_text(const char *text, Filter *ret, ErrBuf *err)
{
	json_error_t jerr;
	json_t *obj;
	int r;

	obj = json_loads(text ? text : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return errbuf_set(err, -EINVAL, "filter: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
				  jerr.text);
	r = filterjson_parse(obj, "filter", ret, NULL, err);
	json_decref(obj);
	return r;
}
