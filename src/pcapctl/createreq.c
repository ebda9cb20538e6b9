/* SPDX-License-Identifier: MIT */
/* The body of `pcapctl create` from its flags (createreq.h). */
#include "pcapctl/createreq.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter.h"
#include "pcap/record.h"

void createreq_init(CreateReq *r)
{
	memset(r, 0, sizeof(*r));
}

void createreq_done(CreateReq *r)
{
	if (!r)
		return;
	free(r->src);
	free(r->dst);
	free(r->sport);
	free(r->dport);
	free(r->proto);
	free(r->bpf);
	free(r->colo);
	free(r->bucket);
	free(r->offset_time);
	memset(r, 0, sizeof(*r));
}

int createreq_set_type(CreateReq *r, const char *word, ErrBuf *err)
{
	if (strcmp(word, "full") == 0)
		r->type = CREATE_FULL;
	else if (strcmp(word, "sample") == 0)
		r->type = CREATE_SAMPLE;
	else
		return errbuf_set(err, -EINVAL, "create: '%s' is not full or sample", word);
	return 0;
}

/* Leading and trailing blanks do not count (the filter parsers trim too). */
static void trim(const char **s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static bool all_digits(const char *s)
{
	size_t n = strlen(s);

	trim(&s, &n);
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* *slot = value (replace) or *slot ";" value (join). */
static int store(const char *flag, char **slot, const char *value, bool join, ErrBuf *err)
{
	size_t old = join && *slot ? strlen(*slot) : 0;
	size_t n = strlen(value);
	char *s;

	if (old + 1 + n > CREATEREQ_MAX_TEXT)
		return errbuf_set(err, -E2BIG, "%s: longer than %u bytes", flag, CREATEREQ_MAX_TEXT);
	s = malloc(old + 1 + n + 1);
	if (!s)
		return errbuf_set(err, -ENOMEM, "%s: out of memory", flag);
	if (old) {
		memcpy(s, *slot, old);
		s[old] = ';';
		memcpy(s + old + 1, value, n + 1);
	} else {
		memcpy(s, value, n + 1);
	}
	free(*slot);
	*slot = s;
	return 0;
}

static int set_number(const char *flag, const char *value, uint64_t max, bool size, uint64_t *slot, ErrBuf *err)
{
	size_t n = strlen(value);
	int r = size ? parse_size(value, n, 1, max, slot) : parse_u64(value, n, 1, max, slot);

	if (r == -ERANGE)
		return errbuf_set(err, -ERANGE, "%s: %s is outside 1..%llu", flag, value, (unsigned long long)max);
	if (r < 0)
		return errbuf_set(err, -EINVAL, "%s: '%s' is not a %s", flag, value,
				  size ? "number (K, M, G suffixes allowed)" : "number");
	return 0;
}

static int set_text(const char *flag, const char *value, char **slot, ErrBuf *err)
{
	if (value[0] == '\0')
		return errbuf_set(err, -EINVAL, "%s: is empty", flag);
	if (has_ctl(value))
		return errbuf_set(err, -EINVAL, "%s: holds control characters", flag);
	return store(flag, slot, value, false, err);
}

int createreq_set(CreateReq *r, const char *flag, const char *value, ErrBuf *err)
{
	size_t n = strlen(value);
	int rc;

	if (strcmp(flag, "--src") == 0 || strcmp(flag, "--dst") == 0) {
		AddrSet set = {0};

		rc = filter_parse_addrs(flag, value, n, &set, err);
		free(set.v);
		if (rc < 0)
			return rc;
		return store(flag, flag[2] == 's' ? &r->src : &r->dst, value, true, err);
	}
	if (strcmp(flag, "--sport") == 0 || strcmp(flag, "--dport") == 0) {
		PortSet set = {0};

		rc = filter_parse_ports(flag, value, n, &set, err);
		free(set.v);
		if (rc < 0)
			return rc;
		return store(flag, flag[2] == 's' ? &r->sport : &r->dport, value, true, err);
	}
	if (strcmp(flag, "--proto") == 0) {
		int proto;

		rc = filter_parse_proto(flag, value, n, &proto, err);
		if (rc < 0)
			return rc;
		if (proto == FILTER_PROTO_ANY) {
			free(r->proto);
			r->proto = NULL;
			return 0;
		}
		return store(flag, &r->proto, value, false, err);
	}
	if (strcmp(flag, "--bpf") == 0) {
		if (n > FILTER_MAX_EXPR)
			return errbuf_set(err, -E2BIG, "--bpf: longer than %u bytes", FILTER_MAX_EXPR);
		return set_text(flag, value, &r->bpf, err);
	}
	if (strcmp(flag, "--time-limit") == 0)
		return set_number(flag, value, CREATEREQ_MAX_TIME_LIMIT, false, &r->time_limit, err);
	if (strcmp(flag, "--packet-limit") == 0)
		return set_number(flag, value, CREATEREQ_MAX_PACKET_LIMIT, false, &r->packet_limit, err);
	if (strcmp(flag, "--byte-limit") == 0)
		return set_number(flag, value, CREATEREQ_MAX_BYTE_LIMIT, true, &r->byte_limit, err);
	if (strcmp(flag, "--colo") == 0)
		return set_text(flag, value, &r->colo, err);
	if (strcmp(flag, "--bucket") == 0) {
		if (!strstr(value, "://"))
			return errbuf_set(err, -EINVAL,
					  "--bucket: '%s' is not a bucket URI (such as file:///srv/pcaps)", value);
		return set_text(flag, value, &r->bucket, err);
	}
	if (strcmp(flag, "--offset-time") == 0) {
		if (!createreq_rfc3339_valid(value))
			return errbuf_set(err, -EINVAL,
					  "--offset-time: '%s' is not an RFC 3339 time such as 2024-05-01T12:00:00Z",
					  value);
		return set_text(flag, value, &r->offset_time, err);
	}
	return errbuf_set(err, -ENOENT, "%s: unknown flag", flag);
}

/* Compiles the whole filter once, as the controller will, so that a bad
 * pcap-filter expression (or a filter too large) is refused here. */
static int check_filter(const CreateReq *r, ErrBuf *err)
{
	static const char prefix[] = "bpf_expr: ";
	const char *flags[4] = {"--src", "--dst", "--sport", "--dport"};
	const char *values[4] = {r->src, r->dst, r->sport, r->dport};
	Filter f = {0};
	FilterClause c;
	CbpfProgram prog = {0};
	ErrBuf e = {{0}};
	bool clause = false;
	int rc = 0;

	filter_clause_init(&c);
	for (size_t i = 0; i < 4; i++) {
		if (!values[i])
			continue;
		clause = true;
		if (i < 2)
			rc = filter_parse_addrs(flags[i], values[i], strlen(values[i]), i == 0 ? &c.src : &c.dst, err);
		else
			rc = filter_parse_ports(flags[i], values[i], strlen(values[i]), i == 2 ? &c.sport : &c.dport,
						err);
		if (rc < 0)
			goto out;
	}
	if (r->proto) {
		clause = true;
		rc = filter_parse_proto("--proto", r->proto, strlen(r->proto), &c.proto, err);
		if (rc < 0)
			goto out;
	}
	c.inner = r->inner;
	if (clause) {
		rc = filter_add_clause(&f, &c, err);
		if (rc < 0)
			goto out;
	}
	if (r->bpf) {
		rc = filter_set_expr(&f, r->bpf, strlen(r->bpf), err);
		if (rc < 0)
			goto out;
	}
	if (!clause && !r->bpf)
		goto out;
	rc = filter_compile(&f, LINKTYPE_ETHERNET, 262144, &prog, &e);
	if (rc < 0) {
		if (strncmp(e.msg, prefix, sizeof(prefix) - 1) == 0)
			errbuf_set(err, rc, "--bpf: %s", e.msg + sizeof(prefix) - 1);
		else
			errbuf_set(err, rc, "%s", e.msg);
	}
out:
	cbpf_program_free(&prog);
	filter_clause_done(&c);
	filter_done(&f);
	return rc;
}

/* Sets key to a number when s is one port or protocol number, else to the string as given. */
static int set_num_or_string(json_t *o, const char *key, const char *s)
{
	if (all_digits(s)) {
		uint64_t v = 0;
		size_t n = strlen(s);

		trim(&s, &n);
		if (parse_u64(s, n, 0, 65535, &v) == 0)
			return json_object_set_new(o, key, json_integer((json_int_t)v));
	}
	return json_object_set_new(o, key, json_string(s));
}

static int build_filter(const CreateReq *r, json_t **ret)
{
	json_t *f = json_object();
	int bad = 0;

	if (!f)
		return -ENOMEM;
	if (r->src)
		bad |= json_object_set_new(f, "source_address", json_string(r->src));
	if (r->dst)
		bad |= json_object_set_new(f, "destination_address", json_string(r->dst));
	if (r->sport)
		bad |= set_num_or_string(f, "source_port", r->sport);
	if (r->dport)
		bad |= set_num_or_string(f, "destination_port", r->dport);
	if (r->proto)
		bad |= set_num_or_string(f, "protocol", r->proto);
	if (r->bpf)
		bad |= json_object_set_new(f, "bpf", json_string(r->bpf));
	if (r->inner)
		bad |= json_object_set_new(f, "inner", json_true());
	if (bad) {
		json_decref(f);
		return -ENOMEM;
	}
	*ret = f;
	return 0;
}

int createreq_to_json(const CreateReq *r, json_t **ret, ErrBuf *err)
{
	bool full = r->type == CREATE_FULL;
	uint64_t packets = r->packet_limit;
	json_t *o = NULL, *filter = NULL;
	int bad = 0, rc;

	if (r->type == CREATE_UNSET)
		return errbuf_set(err, -EINVAL, "create: say full or sample");
	if (full && !r->colo)
		return errbuf_set(err, -EINVAL,
				  "create full: --colo is required (the colo or agent name to capture on)");
	if (full && !r->bucket)
		return errbuf_set(err, -EINVAL, "create full: --bucket is required (a validated bucket URI)");
	if (full && r->offset_time)
		return errbuf_set(err, -EINVAL, "--offset-time: only for sample captures");
	if (!full && r->bucket)
		return errbuf_set(err, -EINVAL, "--bucket: only for full captures");
	if (!full && r->byte_limit)
		return errbuf_set(err, -EINVAL, "--byte-limit: only for full captures");
	if (!full && r->colo)
		return errbuf_set(err, -EINVAL, "--colo: only for full captures");
	rc = check_filter(r, err);
	if (rc < 0)
		return rc;

	if (!full && packets == 0)
		packets = CREATEREQ_DEFAULT_SAMPLE_PACKETS;
	o = json_object();
	if (!o)
		goto nomem;
	bad |= json_object_set_new(o, "type", json_string(full ? "full" : "simple"));
	bad |= json_object_set_new(o, "system", json_string("magic-transit"));
	bad |= json_object_set_new(
		o, "time_limit",
		json_integer((json_int_t)(r->time_limit ? r->time_limit : CREATEREQ_DEFAULT_TIME_LIMIT)));
	if (packets)
		bad |= json_object_set_new(o, "packet_limit", json_integer((json_int_t)packets));
	if (r->byte_limit)
		bad |= json_object_set_new(o, "byte_limit", json_integer((json_int_t)r->byte_limit));
	if (r->colo)
		bad |= json_object_set_new(o, "colo_name", json_string(r->colo));
	if (r->bucket)
		bad |= json_object_set_new(o, "destination_conf", json_string(r->bucket));
	if (r->offset_time)
		bad |= json_object_set_new(o, "offset_time", json_string(r->offset_time));
	if (r->src || r->dst || r->sport || r->dport || r->proto || r->bpf || r->inner) {
		if (build_filter(r, &filter) < 0)
			goto nomem;
		bad |= json_object_set_new(o, "filter_v1", filter);
	}
	if (bad)
		goto nomem;
	*ret = o;
	return 0;
nomem:
	json_decref(o);
	return errbuf_set(err, -ENOMEM, "create: out of memory");
}

/* Reads exactly n digits at *p into *ret and advances. */
static bool digits(const char **p, size_t n, unsigned *ret)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = (*p)[i];

		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (unsigned)(ch - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

static bool expect(const char **p, char ch)
{
	if (**p != ch)
		return false;
	(*p)++;
	return true;
}

bool createreq_rfc3339_valid(const char *s)
{
	static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, sec, oh, om;
	const char *p = s;

	if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') || !digits(&p, 2, &d))
		return false;
	if (*p != 'T' && *p != 't')
		return false;
	p++;
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') || !digits(&p, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return false;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	if (*p != '+' && *p != '-')
		return false;
	p++;
	if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om))
		return false;
	return *p == '\0' && oh <= 23 && om <= 59;
}
