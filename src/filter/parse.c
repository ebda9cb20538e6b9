/* SPDX-License-Identifier: MIT */
/*
 * Parsers for filter fields as the two API dialects send them: Azure strings
 * ("80-120", "80;443;", "1.1.1.1-255.255.255.255", "127.0.0.1;127.0.0.5;"),
 * CIDR blocks, and Cloudflare's JSON numbers. Pure: spans in, sets out. A set is
 * appended to only when the whole string parses, so a failed call leaves the
 * caller's set as it was.
 */
#include "filter/filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h> /* isnan(), a macro: no libm */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Longest item we copy out for inet_pton(); a valid IPv6 text form with an
 * embedded IPv4 tail is at most 45 bytes. */
#define ADDR_TEXT_MAX 63

/* Outside text quoted in an error message: bounded, non-printables shown as
 * '?', so a message never carries control bytes into logs or JSON. */
typedef struct Quoted {
	char s[72];
} Quoted;

static const char *quote(Quoted *q, const char *s, size_t n)
{
	size_t max = sizeof(q->s) - 4, j = 0;

	for (size_t i = 0; i < n && j < max; i++)
		q->s[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > max) {
		memcpy(q->s + j, "...", 3);
		j += 3;
	}
	q->s[j] = '\0';
	return q->s;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_blank((*s)[*n - 1]))
		(*n)--;
}

/* Calls item() for each ';'-separated item of s[0..n); blanks around items are
 * ignored and one trailing ';' is allowed ("a;b;"), empty items elsewhere are
 * errors. */
typedef int (*ItemFn)(const char *field, const char *s, size_t n, void *set, ErrBuf *err);

static int for_each_item(const char *field, const char *s, size_t n, ItemFn item, void *set, ErrBuf *err)
{
	size_t start = 0;
	Quoted q;

	if (n == 0)
		return errbuf_set(err, -EINVAL, "%s: is empty", field);
	while (start < n) {
		const char *semi = memchr(s + start, ';', n - start);
		size_t end = semi ? (size_t)(semi - s) : n;
		const char *it = s + start;
		size_t len = end - start;
		int r;

		trim(&it, &len);
		if (len == 0) {
			bool trailing = semi && end + 1 == n && start > 0;

			if (!trailing)
				return errbuf_set(err, -EINVAL, "%s: \"%s\" has an empty list item", field,
						  quote(&q, s, n));
		} else {
			r = item(field, it, len, set, err);
			if (r < 0)
				return r;
		}
		start = end + 1;
	}
	return 0;
}

static int parse_one_addr(const char *field, const char *s, size_t n, int *ret_family, uint8_t ret[16], ErrBuf *err)
{
	char buf[ADDR_TEXT_MAX + 1];
	uint8_t a[16] = {0};
	Quoted q;

	if (n == 0 || n > ADDR_TEXT_MAX)
		goto bad;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1) {
		*ret_family = AF_INET;
		memcpy(ret, a, 16);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, a) == 1) {
		*ret_family = AF_INET6;
		memcpy(ret, a, 16);
		return 0;
	}
bad:
	return errbuf_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 or IPv6 address", field, quote(&q, s, n));
}

static int set_reserve(void **v, size_t n, size_t size, const char *field, ErrBuf *err)
{
	void *nv;

	if (n >= FILTER_MAX_RANGES)
		return errbuf_set(err, -E2BIG, "%s: more than %u entries", field, FILTER_MAX_RANGES);
	nv = realloc(*v, (n + 1) * size);
	if (!nv)
		return errbuf_set(err, -ENOMEM, "%s: out of memory", field);
	*v = nv;
	return 0;
}

static int addr_item(const char *field, const char *s, size_t n, void *userdata, ErrBuf *err)
{
	AddrSet *set = userdata;
	const char *dash = memchr(s, '-', n), *slash = memchr(s, '/', n);
	AddrRange r = {0};
	Quoted q;
	int fam2, k;

	if (dash) {
		size_t n1 = (size_t)(dash - s);
		const char *s1 = s, *s2 = dash + 1;
		size_t n2 = n - n1 - 1;

		trim(&s1, &n1);
		trim(&s2, &n2);
		/* Either end wrong: the item is quoted whole ("not-an-ip" is one
		 * bad value, not a range from "not"). */
		if (parse_one_addr(field, s1, n1, &r.family, r.lo, err) < 0 ||
		    parse_one_addr(field, s2, n2, &fam2, r.hi, err) < 0)
			return errbuf_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 or IPv6 address or range", field,
					  quote(&q, s, n));
		if (fam2 != r.family)
			return errbuf_set(err, -EINVAL, "%s: range %s mixes IPv4 and IPv6", field, quote(&q, s, n));
		if (memcmp(r.lo, r.hi, 16) > 0)
			return errbuf_set(err, -EINVAL, "%s: range %s ends before it starts", field, quote(&q, s, n));
	} else if (slash) {
		size_t na = (size_t)(slash - s), np = n - na - 1;
		unsigned bits, maxbits;
		uint64_t prefix;

		if (parse_one_addr(field, s, na, &r.family, r.lo, err) < 0)
			return errbuf_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 or IPv6 address or CIDR", field,
					  quote(&q, s, n));
		maxbits = r.family == AF_INET ? 32 : 128;
		k = parse_u64(slash + 1, np, 0, maxbits, &prefix);
		if (k == -ERANGE)
			return errbuf_set(err, -EINVAL, "%s: prefix length in %s is outside 0..%u", field,
					  quote(&q, s, n), maxbits);
		if (k < 0)
			return errbuf_set(err, -EINVAL, "%s: \"%s\" has no prefix length after '/'", field,
					  quote(&q, s, n));
		/* Host bits are cleared, not refused: "10.0.0.1/24" means 10.0.0.0/24
		 * to both APIs' users. */
		bits = (unsigned)prefix;
		memcpy(r.hi, r.lo, 16);
		for (unsigned i = 0; i < maxbits / 8; i++) {
			uint8_t mask;

			if (bits >= 8 * (i + 1))
				mask = 0xff;
			else if (bits <= 8 * i)
				mask = 0;
			else
				mask = (uint8_t)(0xff << (8 - (bits - 8 * i)));
			r.lo[i] &= mask;
			r.hi[i] = (uint8_t)(r.lo[i] | (uint8_t)~mask);
		}
	} else {
		k = parse_one_addr(field, s, n, &r.family, r.lo, err);
		if (k < 0)
			return k;
		memcpy(r.hi, r.lo, 16);
	}
	k = set_reserve((void **)&set->v, set->n, sizeof(*set->v), field, err);
	if (k < 0)
		return k;
	set->v[set->n++] = r;
	return 0;
}

int filter_parse_addrs(const char *field, const char *s, size_t n, AddrSet *set, ErrBuf *err)
{
	size_t old = set->n;
	int r = for_each_item(field, s, n, addr_item, set, err);

	if (r < 0)
		set->n = old; /* entries appended before the error are dropped */
	return r;
}

static int parse_port(const char *field, const char *s, size_t n, uint16_t *ret, ErrBuf *err)
{
	uint64_t v;
	Quoted q;
	int r = parse_u64(s, n, 0, 65535, &v);

	if (r == -ERANGE)
		return errbuf_set(err, -EINVAL, "%s: %s is outside 0..65535", field, quote(&q, s, n));
	if (r < 0)
		return errbuf_set(err, -EINVAL, "%s: \"%s\" is not a port number", field, quote(&q, s, n));
	*ret = (uint16_t)v;
	return 0;
}

static int port_append(const char *field, PortSet *set, PortRange pr, ErrBuf *err)
{
	int r = set_reserve((void **)&set->v, set->n, sizeof(*set->v), field, err);

	if (r < 0)
		return r;
	set->v[set->n++] = pr;
	return 0;
}

static int port_item(const char *field, const char *s, size_t n, void *userdata, ErrBuf *err)
{
	const char *dash = memchr(s, '-', n);
	PortRange pr;
	Quoted q;
	int r;

	if (dash) {
		const char *s1 = s, *s2 = dash + 1;
		size_t n1 = (size_t)(dash - s), n2 = n - n1 - 1;

		trim(&s1, &n1);
		trim(&s2, &n2);
		r = parse_port(field, s1, n1, &pr.lo, err);
		if (r < 0)
			return r;
		r = parse_port(field, s2, n2, &pr.hi, err);
		if (r < 0)
			return r;
		if (pr.lo > pr.hi)
			return errbuf_set(err, -EINVAL, "%s: range %s ends before it starts", field, quote(&q, s, n));
	} else {
		r = parse_port(field, s, n, &pr.lo, err);
		if (r < 0)
			return r;
		pr.hi = pr.lo;
	}
	return port_append(field, userdata, pr, err);
}

int filter_parse_ports(const char *field, const char *s, size_t n, PortSet *set, ErrBuf *err)
{
	size_t old = set->n;
	int r = for_each_item(field, s, n, port_item, set, err);

	if (r < 0)
		set->n = old;
	return r;
}

static const struct {
	const char *name;
	int proto;
} proto_names[] = {
	{"any", FILTER_PROTO_ANY},
	{"all", FILTER_PROTO_ANY},
	{"icmp", IPPROTO_ICMP},
	{"igmp", IPPROTO_IGMP},
	{"ipip", IPPROTO_IPIP},
	{"tcp", IPPROTO_TCP},
	{"egp", IPPROTO_EGP},
	{"udp", IPPROTO_UDP},
	{"ipv6", IPPROTO_IPV6},
	{"rsvp", IPPROTO_RSVP},
	{"gre", IPPROTO_GRE},
	{"esp", IPPROTO_ESP},
	{"ah", IPPROTO_AH},
	{"icmp6", IPPROTO_ICMPV6},
	{"icmpv6", IPPROTO_ICMPV6},
	{"ipv6-icmp", IPPROTO_ICMPV6},
	{"ospf", 89},
	{"pim", IPPROTO_PIM},
	{"vrrp", 112},
	{"l2tp", 115},
	{"sctp", IPPROTO_SCTP},
	{"udplite", IPPROTO_UDPLITE},
};

int filter_parse_proto(const char *field, const char *s, size_t n, int *ret, ErrBuf *err)
{
	uint64_t v;
	Quoted q;
	int r;

	trim(&s, &n);
	r = parse_u64(s, n, 0, 255, &v);
	if (r == 0) {
		*ret = (int)v;
		return 0;
	}
	if (r == -ERANGE)
		return errbuf_set(err, -EINVAL, "%s: %s is outside 0..255", field, quote(&q, s, n));
	for (size_t i = 0; i < ARRAY_SIZE(proto_names); i++) {
		if (strlen(proto_names[i].name) == n && strncasecmp(proto_names[i].name, s, n) == 0) {
			*ret = proto_names[i].proto;
			return 0;
		}
	}
	return errbuf_set(err, -EINVAL, "%s: \"%s\" is not a protocol number 0..255 or a known name", field,
			  quote(&q, s, n));
}

const char *filter_proto_name(size_t i, int *ret_proto)
{
	if (i >= ARRAY_SIZE(proto_names))
		return NULL;
	*ret_proto = proto_names[i].proto;
	return proto_names[i].name;
}

/* JSON numbers are doubles: accept only integral values inside the bound. */
static int number_check(const char *field, double v, double max, ErrBuf *err)
{
	if (isnan(v) || v < 0 || v > max)
		return errbuf_set(err, -EINVAL, "%s: %g is outside 0..%.0f", field, v, max);
	if (v != (double)(uint32_t)v)
		return errbuf_set(err, -EINVAL, "%s: %g is not an integer", field, v);
	return 0;
}

int filter_port_from_number(const char *field, double v, PortSet *set, ErrBuf *err)
{
	int r = number_check(field, v, 65535, err);

	if (r < 0)
		return r;
	return port_append(field, set, (PortRange){(uint16_t)v, (uint16_t)v}, err);
}

int filter_proto_from_number(const char *field, double v, int *ret, ErrBuf *err)
{
	int r = number_check(field, v, 255, err);

	if (r < 0)
		return r;
	*ret = (int)v;
	return 0;
}
