/* SPDX-License-Identifier: MIT */
/*
 * Validation of Cloudflare request bodies: a capture (the "simple" and "full"
 * variants of its create request) and a bucket's ownership (README, "The API").
 *
 * Rules every field follows:
 *  - an explicit JSON null is the same as an absent field (SDKs send nulls
 *    for options left unset);
 *  - a member the request's schema does not name is ignored, as the schema
 *    allows: a body copied from a response (packets_remaining, status, …) or
 *    sent by a newer SDK still works. cloudflare_unknown_fields() names them
 *    for the handler's debug log. Inside filter_v1 an unknown member is still
 *    refused (filterjson.h): a condition left out would capture traffic the
 *    user meant to exclude;
 *  - fields are checked in a fixed order (type, system, time_limit,
 *    packet_limit, byte_limit, colo_name/colo, destination_conf, offset_time,
 *    filter_v1) and the first failure is the answer;
 *  - numbers must be whole (10 and 10.0 are the same number in JSON; 10.5 is
 *    refused) and inside their bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/cloudflare/cloudflare.h"
#include "api/jsonval.h"
#include "bucket/bucket.h"
#include "common/timefmt.h"
#include "filter/filter.h"
#include "model/filterjson.h"
#include "model/filtermodel.h"
#include "pcap/record.h"

enum {
	F_TYPE,
	F_SYSTEM,
	F_TIME_LIMIT,
	F_PACKET_LIMIT,
	F_BYTE_LIMIT,
	F_COLO_NAME,
	F_COLO,
	F_DESTINATION_CONF,
	F_OFFSET_TIME,
	F_FILTER_V1,
	F_COUNT,
};

static const char *const create_fields[F_COUNT] = {
	[F_TYPE] = "type",
	[F_SYSTEM] = "system",
	[F_TIME_LIMIT] = "time_limit",
	[F_PACKET_LIMIT] = "packet_limit",
	[F_BYTE_LIMIT] = "byte_limit",
	[F_COLO_NAME] = "colo_name",
	[F_COLO] = "colo",
	[F_DESTINATION_CONF] = "destination_conf",
	[F_OFFSET_TIME] = "offset_time",
	[F_FILTER_V1] = "filter_v1",
};

static const char *const ownership_fields[] = {"destination_conf"};
static const char *const validate_fields[] = {"destination_conf", "ownership_challenge"};

#define BUCKET_EXAMPLE "a bucket URI such as file:///srv/pcaps"

/* The index of key in names[0..n), or n. */
static size_t field_index(const char *key, const char *const *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(key, names[i]) == 0)
			break;
	return i;
}

/* Collects the fields of body (which must be an object) into vals[] by their
 * index in names[] (null values left out; members not in names[] ignored). */
static int collect(const json_t *body, const char *const *names, size_t n, const json_t **vals, ErrBuf *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(body))
		return errbuf_set(err, -EINVAL, "body: must be a JSON object");
	memset(vals, 0, n * sizeof(*vals));
	json_object_foreach((json_t *)body, key, v)
	{
		size_t i = field_index(key, names, n);

		if (i < n && !json_is_null(v))
			vals[i] = v;
	}
	return 0;
}

size_t cloudflare_unknown_fields(const json_t *body, CfRequest kind, char *out, size_t cap)
{
	const char *const *names = kind == CF_REQ_CREATE      ? create_fields
				   : kind == CF_REQ_OWNERSHIP ? ownership_fields
							      : validate_fields;
	size_t n = kind == CF_REQ_CREATE      ? (size_t)F_COUNT
		   : kind == CF_REQ_OWNERSHIP ? ARRAY_SIZE(ownership_fields)
					      : ARRAY_SIZE(validate_fields);
	size_t count = 0, o = 0;
	const char *key;
	json_t *v;

	if (cap)
		out[0] = '\0';
	if (!json_is_object(body))
		return 0;
	json_object_foreach((json_t *)body, key, v)
	{
		if (field_index(key, names, n) < n)
			continue;
		count++;
		/* ", " and up to 64 bytes of the name, printable ASCII only (it
		 * goes into a log line); what does not fit is left out. */
		if (count > 1 && o + 3 < cap) {
			out[o++] = ',';
			out[o++] = ' ';
		}
		for (size_t i = 0; key[i] && i < 64 && o + 1 < cap; i++) {
			unsigned char c = (unsigned char)key[i];

			out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		if (cap)
			out[o] = '\0';
	}
	return count;
}

/* A required string; what says what it should hold. */
static int need_string(const char *field, const json_t *v, const char *what, ErrBuf *err)
{
	if (!v)
		return errbuf_set(err, -EINVAL, "%s: required", field);
	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL, "%s: must be a string (%s)", field, what);
	return 0;
}

/* destination_conf: a required string that bucket_uri_check accepts. */
static int get_destination(const json_t *v, ErrBuf *err)
{
	int r = need_string("destination_conf", v, BUCKET_EXAMPLE, err);

	return r < 0 ? r : bucket_uri_check(json_string_value(v), json_string_length(v), err);
}

static int get_colo(const char *field, const json_t *v, ErrBuf *err)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL, "%s: must be a string (a colo or agent name such as \"ord02\")", field);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n < 1 || n > CF_COLO_MAX)
		return errbuf_set(err, -EINVAL, "%s: must be 1..%u characters long", field, CF_COLO_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return errbuf_set(err, -EINVAL, "%s: only letters, digits, '.', '_' and '-' are allowed",
					  field);
	}
	return 0;
}

static int get_offset_time(const json_t *v, int64_t now_ns, int64_t *ret, ErrBuf *err)
{
	int64_t t;
	int r;

	if (!json_is_string(v))
		return errbuf_set(err, -EINVAL,
				  "offset_time: must be a string holding an RFC 3339 date-time such as "
				  "\"2024-05-01T12:00:00Z\"");
	r = timefmt_parse_rfc3339(json_string_value(v), json_string_length(v), &t);
	if (r < 0)
		return errbuf_set(
			err, -EINVAL,
			"offset_time: \"%.64s\" is not an RFC 3339 date-time such as \"2024-05-01T12:00:00Z\"",
			json_string_value(v));
	if (t < now_ns - CF_OFFSET_PAST_NS)
		return errbuf_set(err, -EINVAL, "offset_time: %.64s is more than 24 hours ago", json_string_value(v));
	if (t > now_ns + CF_OFFSET_FUTURE_NS)
		return errbuf_set(err, -EINVAL, "offset_time: %.64s is in the future", json_string_value(v));
	*ret = t;
	return 0;
}

/* Parses filter_v1 (v NULL: none) into its canonical text (to echo back) and
 * the filter model's neutral text (for agents), and compiles it once, so that
 * a pcap-filter expression libpcap refuses fails the request. */
static int get_filter(const json_t *v, char **ret_canon, char **ret_model, ErrBuf *err)
{
	static const char expr_prefix[] = "bpf_expr: ";
	CbpfProgram prog = {0};
	Filter f = {0};
	ErrBuf cerr = {{0}};
	char *canon = NULL, *model = NULL;
	int r;

	r = filterjson_parse(v ? v : json_null(), "filter_v1", &f, &canon, err);
	if (r < 0)
		return r;
	r = filter_compile(&f, LINKTYPE_ETHERNET, PCAP_MAX_SNAPLEN, &prog, &cerr);
	cbpf_program_free(&prog);
	if (r < 0) {
		if (strncmp(cerr.msg, expr_prefix, sizeof(expr_prefix) - 1) == 0)
			r = errbuf_set(err, -EINVAL, "filter_v1.bpf: %s", cerr.msg + sizeof(expr_prefix) - 1);
		else
			r = errbuf_set(err, -EINVAL, "filter_v1: %s", cerr.msg);
	} else {
		r = filtermodel_to_text(&f, &model, &cerr);
		if (r < 0)
			r = errbuf_set(err, r == -ENOMEM ? r : -EINVAL, "filter_v1: %s", cerr.msg);
	}
	filter_done(&f);
	if (r < 0) {
		free(canon);
		return r;
	}
	*ret_canon = canon;
	*ret_model = model;
	return 0;
}

static int only_for(const json_t *const *vals, const int *fields, size_t n, const char *which, ErrBuf *err)
{
	for (size_t i = 0; i < n; i++)
		if (vals[fields[i]])
			return errbuf_set(err, -EINVAL, "%s: only for %s captures", create_fields[fields[i]], which);
	return 0;
}

int cloudflare_parse_create(const json_t *body, int64_t now_ns, Job *ret, ErrBuf *err)
{
	static const int full_only[] = {F_BYTE_LIMIT, F_COLO_NAME, F_COLO, F_DESTINATION_CONF};
	static const int simple_only[] = {F_OFFSET_TIME};
	const json_t *vals[F_COUNT];
	Job j = {0};
	const char *s;
	uint64_t u;
	int r;

	r = collect(body, create_fields, F_COUNT, vals, err);
	if (r < 0)
		return r;

	if (!vals[F_TYPE])
		return errbuf_set(err, -EINVAL, "type: required");
	s = json_string_value(vals[F_TYPE]);
	if (s && strcmp(s, "simple") == 0)
		j.type = JOB_SIMPLE;
	else if (s && strcmp(s, "full") == 0)
		j.type = JOB_FULL;
	else
		return errbuf_set(err, -EINVAL, "type: must be \"simple\" or \"full\"");

	if (!vals[F_SYSTEM])
		return errbuf_set(err, -EINVAL, "system: required");
	s = json_string_value(vals[F_SYSTEM]);
	if (!s || strcmp(s, "magic-transit") != 0)
		return errbuf_set(err, -EINVAL, "system: must be \"magic-transit\"");

	if (j.type == JOB_SIMPLE)
		r = only_for(vals, full_only, ARRAY_SIZE(full_only), "full", err);
	else
		r = only_for(vals, simple_only, ARRAY_SIZE(simple_only), "simple", err);
	if (r < 0)
		return r;

	if (!vals[F_TIME_LIMIT])
		return errbuf_set(err, -EINVAL, "time_limit: required");
	r = jsonval_whole("time_limit", vals[F_TIME_LIMIT], 1, CF_TIME_LIMIT_MAX, &u, err);
	if (r < 0)
		return r;
	j.time_limit_s = (uint32_t)u;

	if (vals[F_PACKET_LIMIT]) {
		r = jsonval_whole("packet_limit", vals[F_PACKET_LIMIT], 1, CF_PACKET_LIMIT_MAX, &u, err);
		if (r < 0)
			return r;
		j.packet_limit = (uint32_t)u;
	} else if (j.type == JOB_SIMPLE) {
		return errbuf_set(err, -EINVAL, "packet_limit: required");
	}

	if (vals[F_BYTE_LIMIT]) {
		r = jsonval_whole("byte_limit", vals[F_BYTE_LIMIT], 1, CF_BYTE_LIMIT_MAX, &u, err);
		if (r < 0)
			return r;
		j.byte_limit = u;
	}

	if (j.type == JOB_FULL) {
		const json_t *colo = vals[F_COLO_NAME] ? vals[F_COLO_NAME] : vals[F_COLO];

		if (vals[F_COLO_NAME] && (r = get_colo("colo_name", vals[F_COLO_NAME], err)) < 0)
			return r;
		if (vals[F_COLO] && (r = get_colo("colo", vals[F_COLO], err)) < 0)
			return r;
		/* The docs' examples say "colo", the schema "colo_name": either
		 * will do, but two different answers are a mistake to report. */
		if (vals[F_COLO_NAME] && vals[F_COLO] &&
		    strcmp(json_string_value(vals[F_COLO_NAME]), json_string_value(vals[F_COLO])) != 0)
			return errbuf_set(err, -EINVAL, "colo: must equal colo_name when both are given");
		if (!colo)
			return errbuf_set(err, -EINVAL, "colo_name: required");

		r = get_destination(vals[F_DESTINATION_CONF], err);
		if (r < 0)
			return r;
		/* Whole packets into the bucket: snaplen 0, one bucket output. */
		j.colo_name = strdup(json_string_value(colo));
		if (!j.colo_name ||
		    job_add_output(&j, JOB_OUTPUT_BUCKET, json_string_value(vals[F_DESTINATION_CONF])) < 0) {
			r = errbuf_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		/* Asked with the docs' "colo": answered with it too (render.c). */
		if (vals[F_COLO]) {
			json_t *echo = json_pack("{s:O}", "colo", vals[F_COLO]);

			j.echo_json = echo ? json_dumps(echo, JSON_COMPACT) : NULL;
			json_decref(echo);
			if (!j.echo_json) {
				r = errbuf_set(err, -ENOMEM, "out of memory");
				goto fail;
			}
		}
	} else {
		j.offset_time_ns = now_ns;
		if (vals[F_OFFSET_TIME]) {
			r = get_offset_time(vals[F_OFFSET_TIME], now_ns, &j.offset_time_ns, err);
			if (r < 0)
				goto fail;
		}
	}

	r = get_filter(vals[F_FILTER_V1], &j.filter_json, &j.filter_model, err);
	if (r < 0)
		goto fail;
	*ret = j;
	return 0;
fail:
	job_done(&j);
	return r;
}

int cloudflare_parse_ownership(const json_t *body, const char **ret_conf, ErrBuf *err)
{
	const json_t *vals[ARRAY_SIZE(ownership_fields)];
	int r;

	r = collect(body, ownership_fields, ARRAY_SIZE(ownership_fields), vals, err);
	if (r < 0)
		return r;
	r = get_destination(vals[0], err);
	if (r < 0)
		return r;
	*ret_conf = json_string_value(vals[0]);
	return 0;
}

int cloudflare_parse_validate(const json_t *body, const char **ret_conf, const char **ret_challenge, ErrBuf *err)
{
	const json_t *vals[ARRAY_SIZE(validate_fields)];
	int r;

	r = collect(body, validate_fields, ARRAY_SIZE(validate_fields), vals, err);
	if (r < 0)
		return r;
	r = need_string("destination_conf", vals[0], BUCKET_EXAMPLE, err);
	if (r == 0)
		r = need_string("ownership_challenge", vals[1], "the token in the challenge file", err);
	if (r < 0)
		return r;
	*ret_conf = json_string_value(vals[0]);
	*ret_challenge = json_string_value(vals[1]);
	return 0;
}

/* One query value: a whole decimal number in lo..hi; NULL or "" keeps *ret. */
static int get_query_number(const char *name, const char *v, uint32_t lo, uint32_t hi, uint32_t *ret, ErrBuf *err)
{
	size_t n = v ? strlen(v) : 0;
	uint64_t u;
	int r;

	if (n == 0)
		return 0;
	r = parse_u64(v, n, lo, hi, &u);
	if (r == -ERANGE)
		return errbuf_set(err, -EINVAL, "%s: %.32s is outside %u..%u", name, v, lo, hi);
	if (r < 0)
		return errbuf_set(err, -EINVAL, "%s: \"%.32s\" is not a whole number in %u..%u", name, v, lo, hi);
	*ret = (uint32_t)u;
	return 0;
}

int cloudflare_parse_page(const char *page, const char *per_page, uint32_t default_per_page, CfPage *ret, ErrBuf *err)
{
	CfPage p = {.page = 1, .per_page = default_per_page};
	int r;

	if (p.per_page < 1 || p.per_page > CF_PER_PAGE_MAX)
		p.per_page = CF_PER_PAGE_MAX;
	r = get_query_number("page", page, 1, CF_PAGE_MAX, &p.page, err);
	if (r == 0)
		r = get_query_number("per_page", per_page, 1, CF_PER_PAGE_MAX, &p.per_page, err);
	if (r < 0)
		return r;
	*ret = p;
	return 0;
}
