/* SPDX-License-Identifier: MIT */
/*
 * Block summaries: reading a packet's tuple the way the compiled filter
 * program does (filter/compile.c is the reference; every load the program
 * makes is mirrored here with the same offsets and the same bounds), adding it
 * to a summary, and testing a filter's clauses against a summary.
 *
 * The one rule: a summary may say "no packet here can match" only when that is
 * certain. Where this file cannot follow the program to the end (a truncated
 * header, a link type the compiler does not know), the tuple is not "sure" and
 * the whole block becomes HIST_BF_UNSURE. tests/unit/history checks the rule
 * against filter_match() on generated frames.
 */
#include "history/histsum.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pcap/record.h"

#define SUM_PROTO 0u
#define SUM_SRC 32u
#define SUM_DST 160u
#define SUM_SPORT 288u
#define SUM_DPORT 320u
#define SUM_SPORT_COARSE 352u
#define SUM_DPORT_COARSE 360u
#define IPV6_MAX_EXT 6         /* as filter/compile.c */
#define PROBE_MAX_PREFIXES 64u /* per address range; more and only families are checked */
#define PROBE_MAX_PAIRS 1024u  /* per dimension */
#define PROBE_PORT_LIST 16u    /* narrower port ranges are listed port by port */

_Static_assert(SUM_DPORT_COARSE + 8 == HISTFMT_SUMMARY, "summary layout");

/* ------------------------------------------------------- the program's view */

/* The frame as the program sees it: head then tail (filter_match() hides an
 * outer VLAN tag of a stored Ethernet frame by splitting it). */
typedef struct View {
	const uint8_t *head, *tail;
	uint32_t head_len, tail_len;
} View;

static bool vbyte(const View *v, uint32_t off, uint8_t *ret)
{
	if (off < v->head_len) {
		*ret = v->head[off];
		return true;
	}
	off -= v->head_len;
	if (off < v->tail_len) {
		*ret = v->tail[off];
		return true;
	}
	return false;
}

static bool vload(const View *v, uint32_t off, unsigned size, uint32_t *ret)
{
	uint32_t val = 0;

	if (off > UINT32_MAX - size)
		return false;
	for (unsigned i = 0; i < size; i++) {
		uint8_t b;

		if (!vbyte(v, off + i, &b))
			return false;
		val = val << 8 | b;
	}
	*ret = val;
	return true;
}

static bool vcopy(const View *v, uint32_t off, uint8_t *out, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!vbyte(v, off + i, &out[i]))
			return false;
	return true;
}

static bool is_tpid(uint32_t t)
{
	return t == 0x8100 || t == 0x88a8 || t == 0x9100;
}

/* gen_ether_like(): ethertype at e, IP header (or first tag) at p. Returns the
 * family (0, 4, 6) with *ret_x = offset of the IP header, or -1 when a load
 * fails (the program would drop the packet: it cannot match, which is sure). */
static int ether_like(const View *v, uint32_t e, uint32_t p, uint32_t *ret_x)
{
	uint32_t type, x = p;

	if (!vload(v, e, 2, &type))
		return -1;
	if (is_tpid(type)) {
		if (!vload(v, p + 2, 2, &type))
			return -1;
		x = p + 4;
		if (is_tpid(type)) {
			if (!vload(v, p + 6, 2, &type))
				return -1;
			x = p + 8;
		}
	}
	*ret_x = x;
	return type == 0x0800 ? 4 : type == 0x86dd ? 6 : 0;
}

/* gen_link(): the family and X for each link type filter_compile() knows;
 * -2 for one it does not (the tuple is then not sure). */
static int link_prologue(uint32_t linktype, const View *v, uint32_t *ret_x)
{
	uint32_t w;

	switch (linktype) {
	case LINKTYPE_ETHERNET:
		return ether_like(v, 12, 14, ret_x);
	case LINKTYPE_LINUX_SLL:
		return ether_like(v, 14, 16, ret_x);
	case LINKTYPE_LINUX_SLL2:
		return ether_like(v, 0, 20, ret_x);
	case LINKTYPE_RAW:
		*ret_x = 0;
		if (!vload(v, 0, 1, &w))
			return -1;
		w &= 0xf0;
		return w == 0x40 ? 4 : w == 0x60 ? 6 : 0;
	case LINKTYPE_IPV4:
		*ret_x = 0;
		return 4;
	case LINKTYPE_IPV6:
		*ret_x = 0;
		return 6;
	case LINKTYPE_NULL:
		*ret_x = 4;
		if (!vload(v, 0, 4, &w))
			return -1;
		if (w == 2 || w == 0x02000000)
			return 4;
		if (w == 10 || w == 24 || w == 28 || w == 30 || w == 0x0a000000 || w == 0x18000000 || w == 0x1c000000 ||
		    w == 0x1e000000)
			return 6;
		return 0;
	default:
		return -2;
	}
}

static bool port_proto(uint8_t p)
{
	return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP;
}

/* Ports at off; false (not sure) when they are not all captured. */
static bool read_ports(const View *v, uint32_t off, HistTuple *t)
{
	uint32_t s, d;

	if (!vload(v, off, 2, &s) || !vload(v, off + 2, 2, &d))
		return false;
	t->sport = (uint16_t)s;
	t->dport = (uint16_t)d;
	t->has_ports = true;
	return true;
}

/* gen_v4(): addresses at X+12 and X+16, protocol at X+9, ports after IHL
 * words unless the fragment offset is not 0. */
static bool tuple_v4(const View *v, uint32_t x, HistTuple *t)
{
	uint32_t proto, frag, ihl;

	if (!vcopy(v, x + 12, t->src, 4) || !vcopy(v, x + 16, t->dst, 4) || !vload(v, x + 9, 1, &proto))
		return false;
	t->proto = (uint8_t)proto;
	if (!port_proto(t->proto))
		return true;
	if (!vload(v, x + 6, 2, &frag) || !vload(v, x, 1, &ihl))
		return false;
	if (frag & 0x1fff)
		return true; /* a later fragment: no transport header */
	return read_ports(v, x + ((ihl & 0x0f) << 2), t);
}

/* gen_v6(): addresses, then up to IPV6_MAX_EXT extension headers walked in
 * 32-bit arithmetic as the program does; the protocol is whatever next-header
 * value the walk ends on. */
static bool tuple_v6(const View *v, uint32_t x, HistTuple *t)
{
	uint32_t l4 = x + 40, a, nh, len, fo;

	if (!vcopy(v, x + 8, t->src, 16) || !vcopy(v, x + 24, t->dst, 16) || !vload(v, x + 6, 1, &a))
		return false;
	for (unsigned step = 0; step < IPV6_MAX_EXT; step++) {
		if (a == IPPROTO_HOPOPTS || a == IPPROTO_ROUTING || a == IPPROTO_DSTOPTS || a == IPPROTO_AH) {
			bool ah = a == IPPROTO_AH;

			if (!vload(v, l4, 1, &nh) || !vload(v, l4 + 1, 1, &len))
				return false;
			l4 += (len + (ah ? 2 : 1)) << (ah ? 2 : 3);
			a = nh;
		} else if (a == IPPROTO_FRAGMENT) {
			if (!vload(v, l4 + 2, 2, &fo) || !vload(v, l4, 1, &nh))
				return false;
			if (fo & 0xfff8) {
				t->proto = (uint8_t)nh; /* a later fragment: protocol, no ports */
				return true;
			}
			l4 += 8;
			a = nh;
		} else {
			break;
		}
	}
	t->proto = (uint8_t)a;
	if (!port_proto(t->proto))
		return true;
	return read_ports(v, l4, t);
}

void histsum_tuple(uint32_t linktype, const uint8_t *data, uint32_t caplen, HistTuple *ret)
{
	HistTuple t = {0};
	View v = {.head = data, .head_len = caplen};
	uint32_t x = 0;
	int fam;

	/* filter_match(): an outer 802.1Q/802.1ad tag of a stored Ethernet frame
	 * goes to metadata, out of the program's sight. */
	if (linktype == LINKTYPE_ETHERNET && caplen >= 18 &&
	    ((data[12] == 0x81 && data[13] == 0x00) || (data[12] == 0x88 && data[13] == 0xa8))) {
		v.head_len = 12;
		v.tail = data + 16;
		v.tail_len = caplen - 16;
	}
	fam = link_prologue(linktype, &v, &x);
	if (fam == -2) {
		*ret = t; /* unknown link type: not sure */
		return;
	}
	t.sure = true;
	if (fam <= 0) {
		*ret = t; /* not IP, or dropped by the program: matches no clause */
		return;
	}
	t.fam = (uint8_t)fam;
	t.sure = fam == 4 ? tuple_v4(&v, x, &t) : tuple_v6(&v, x, &t);
	*ret = t;
}

/* ------------------------------------------------------- summaries */

static void set_bit(uint8_t *bits, uint32_t i)
{
	bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static bool get_bit(const uint8_t *bits, uint32_t i)
{
	return (bits[i >> 3] >> (i & 7)) & 1;
}

/* Bloom bits of an address prefix: family, length, masked bytes. */
static void addr_bits(uint8_t fam, unsigned plen, const uint8_t *addr, uint16_t ret[2])
{
	uint8_t key[18] = {0};
	unsigned nbytes = (plen + 7) / 8;
	uint64_t h;

	key[0] = fam;
	key[1] = (uint8_t)plen;
	memcpy(key + 2, addr, nbytes);
	if (plen % 8)
		key[2 + nbytes - 1] &= (uint8_t)(0xff00u >> (plen % 8));
	h = histfmt_hash64(key, 2 + (size_t)(fam == 4 ? 4 : 16), 0);
	ret[0] = (uint16_t)(h % HISTSUM_ADDR_BITS);
	ret[1] = (uint16_t)((h >> 32) % HISTSUM_ADDR_BITS);
}

static void port_bits(uint16_t port, uint16_t ret[2])
{
	uint8_t key[3] = {'P', (uint8_t)(port >> 8), (uint8_t)port};
	uint64_t h = histfmt_hash64(key, sizeof(key), 0);

	ret[0] = (uint16_t)(h % HISTSUM_PORT_BITS);
	ret[1] = (uint16_t)((h >> 32) % HISTSUM_PORT_BITS);
}

static const unsigned v4_levels[] = {16, 24, 32};
static const unsigned v6_levels[] = {48, 64, 128};

static void add_addr(uint8_t *bloom, uint8_t fam, const uint8_t *addr)
{
	const unsigned *lv = fam == 4 ? v4_levels : v6_levels;
	uint16_t b[2];

	for (unsigned i = 0; i < 3; i++) {
		addr_bits(fam, lv[i], addr, b);
		set_bit(bloom, b[0]);
		set_bit(bloom, b[1]);
	}
}

static void or_u64le(uint8_t *p, uint64_t bits)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] |= (uint8_t)(bits >> (8 * i));
}

static uint64_t rd_u64le(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void add_port(uint8_t *s, unsigned bloom_off, unsigned coarse_off, uint16_t port)
{
	uint16_t b[2];

	port_bits(port, b);
	set_bit(s + bloom_off, b[0]);
	set_bit(s + bloom_off, b[1]);
	or_u64le(s + coarse_off, 1ull << (port >> 10));
}

void histsum_add(uint8_t summary[HISTFMT_SUMMARY], uint32_t *flags, const HistTuple *t)
{
	if (!t->sure) {
		*flags |= HIST_BF_UNSURE;
		return;
	}
	if (t->fam == 0)
		return;
	*flags |= t->fam == 4 ? HIST_BF_V4 : HIST_BF_V6;
	set_bit(summary + SUM_PROTO, t->proto);
	add_addr(summary + SUM_SRC, t->fam, t->src);
	add_addr(summary + SUM_DST, t->fam, t->dst);
	if (t->has_ports) {
		*flags |= HIST_BF_PORTS;
		add_port(summary, SUM_SPORT, SUM_SPORT_COARSE, t->sport);
		add_port(summary, SUM_DPORT, SUM_DPORT_COARSE, t->dport);
	}
}

/* ------------------------------------------------------- probes */

typedef unsigned __int128 u128;

/* The low n bits set (n <= 128). */
static u128 low_mask(unsigned n)
{
	return n >= 128 ? ~(u128)0 : ((u128)1 << n) - 1;
}

static u128 addr_to_u128(const uint8_t *a, unsigned width)
{
	u128 v = 0;

	for (unsigned i = 0; i < width / 8; i++)
		v = v << 8 | a[i];
	return v;
}

static void u128_to_addr(u128 v, unsigned width, uint8_t *out)
{
	for (unsigned i = width / 8; i-- > 0;) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

static int push_pair(HistProbeSet *s, const uint16_t b[2])
{
	uint16_t(*nb)[2];

	for (size_t i = 0; i < s->n_bits; i++)
		if (s->bits[i][0] == b[0] && s->bits[i][1] == b[1])
			return 0;
	if (s->n_bits == PROBE_MAX_PAIRS)
		return -E2BIG;
	nb = realloc(s->bits, (s->n_bits + 1) * sizeof(*s->bits));
	if (!nb)
		return -ENOMEM;
	s->bits = nb;
	s->bits[s->n_bits][0] = b[0];
	s->bits[s->n_bits][1] = b[1];
	s->n_bits++;
	return 0;
}

/* The CIDR blocks of [lo, hi], each tested at the longest summary level not
 * longer than its prefix. -E2BIG: not expressible (too many or too wide). */
static int probe_range(HistProbeSet *s, const AddrRange *r)
{
	uint8_t fam = r->family == AF_INET ? 4 : 6;
	unsigned width = fam == 4 ? 32 : 128;
	const unsigned *lv = fam == 4 ? v4_levels : v6_levels;
	u128 lo = addr_to_u128(r->lo, width), hi = addr_to_u128(r->hi, width);
	unsigned count = 0;

	for (;;) {
		unsigned host = 0, plen, level = 0;
		uint8_t addr[16] = {0};
		uint16_t b[2];
		int e;

		/* Largest aligned block at lo that stays within hi. */
		while (host < width && ((lo >> host) & 1) == 0 && (lo | low_mask(host + 1)) <= hi)
			host++;
		plen = width - host;
		for (unsigned i = 0; i < 3; i++)
			if (lv[i] <= plen)
				level = lv[i];
		if (level == 0 || ++count > PROBE_MAX_PREFIXES)
			return -E2BIG;
		u128_to_addr(lo, width, addr);
		addr_bits(fam, level, addr, b);
		e = push_pair(s, b);
		if (e < 0)
			return e;
		if ((lo | low_mask(host)) >= hi)
			return 0;
		lo = (lo | low_mask(host)) + 1;
	}
}

static int probe_addrs(HistProbeSet *s, const AddrSet *set)
{
	int r;

	if (set->n == 0) {
		s->any = true;
		return 0;
	}
	for (size_t i = 0; i < set->n; i++)
		s->fams |= set->v[i].family == AF_INET ? HIST_BF_V4 : HIST_BF_V6;
	for (size_t i = 0; i < set->n; i++) {
		r = probe_range(s, &set->v[i]);
		if (r == -E2BIG) {
			s->fams_only = true;
			free(s->bits);
			s->bits = NULL;
			s->n_bits = 0;
			return 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int probe_ports(HistProbeSet *s, const PortSet *set, bool summarisable)
{
	int r;

	if (set->n == 0 || !summarisable) {
		s->any = true;
		return 0;
	}
	for (size_t i = 0; i < set->n; i++) {
		const PortRange *pr = &set->v[i];

		if ((uint32_t)pr->hi - pr->lo < PROBE_PORT_LIST) {
			for (uint32_t p = pr->lo; p <= pr->hi; p++) {
				uint16_t b[2];

				port_bits((uint16_t)p, b);
				r = push_pair(s, b);
				if (r == -E2BIG) {
					s->any = true;
					return 0;
				}
				if (r < 0)
					return r;
			}
		} else {
			for (uint32_t c = pr->lo >> 10; c <= (uint32_t)pr->hi >> 10; c++)
				s->coarse |= 1ull << c;
		}
	}
	return 0;
}

static void probe_set_done(HistProbeSet *s)
{
	free(s->bits);
	s->bits = NULL;
}

void histsum_probe_done(HistProbe *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_clauses; i++) {
		probe_set_done(&p->clauses[i].src);
		probe_set_done(&p->clauses[i].dst);
		probe_set_done(&p->clauses[i].sport);
		probe_set_done(&p->clauses[i].dport);
	}
	free(p->clauses);
	*p = (HistProbe){0};
}

int histsum_probe_new(const Filter *f, HistProbe *ret)
{
	HistProbe p = {0};
	bool ports_ok = true;
	int r;

	if (!f || f->n_clauses == 0) {
		*ret = (HistProbe){.all = true};
		return 0;
	}
	for (size_t i = 0; i < f->n_clauses; i++) {
		const FilterClause *c = &f->clauses[i];

		/* Summaries describe outer headers: an inner clause may match
		 * a tunnelled packet whatever they say. */
		if ((c->src.n == 0 && c->dst.n == 0 && c->sport.n == 0 && c->dport.n == 0 &&
		     c->proto == FILTER_PROTO_ANY) ||
		    c->inner) {
			*ret = (HistProbe){.all = true};
			return 0;
		}
		/* The program reads "ports" of every protocol some clause names
		 * with ports (filter-wide, see gen_port_gate()); the summary keeps
		 * only TCP, UDP and SCTP ports. */
		if ((c->sport.n || c->dport.n) && c->proto != FILTER_PROTO_ANY && !port_proto((uint8_t)c->proto))
			ports_ok = false;
	}
	p.clauses = calloc(f->n_clauses, sizeof(*p.clauses));
	if (!p.clauses)
		return -ENOMEM;
	p.n_clauses = f->n_clauses;
	for (size_t i = 0; i < f->n_clauses; i++) {
		const FilterClause *c = &f->clauses[i];
		HistProbeClause *pc = &p.clauses[i];

		pc->proto = c->proto;
		pc->both_directions = c->both_directions;
		r = probe_addrs(&pc->src, &c->src);
		if (r == 0)
			r = probe_addrs(&pc->dst, &c->dst);
		if (r == 0)
			r = probe_ports(&pc->sport, &c->sport, ports_ok);
		if (r == 0)
			r = probe_ports(&pc->dport, &c->dport, ports_ok);
		if (r < 0) {
			histsum_probe_done(&p);
			return r;
		}
	}
	*ret = p;
	return 0;
}

static bool set_may_match(const HistProbeSet *s, bool ports, uint32_t flags, const uint8_t *bloom,
			  const uint8_t *coarse)
{
	if (s->any)
		return true;
	if (ports) {
		if (!(flags & HIST_BF_PORTS))
			return false;
		if (s->coarse & rd_u64le(coarse))
			return true;
	} else {
		if (!(flags & s->fams))
			return false;
		if (s->fams_only)
			return true;
	}
	for (size_t i = 0; i < s->n_bits; i++)
		if (get_bit(bloom, s->bits[i][0]) && get_bit(bloom, s->bits[i][1]))
			return true;
	return false;
}

static bool clause_may_match(const HistProbeClause *c, bool swapped, uint32_t flags, const uint8_t *sum)
{
	unsigned src = swapped ? SUM_DST : SUM_SRC, dst = swapped ? SUM_SRC : SUM_DST;
	unsigned sp = swapped ? SUM_DPORT : SUM_SPORT, dp = swapped ? SUM_SPORT : SUM_DPORT;
	unsigned spc = swapped ? SUM_DPORT_COARSE : SUM_SPORT_COARSE;
	unsigned dpc = swapped ? SUM_SPORT_COARSE : SUM_DPORT_COARSE;

	if (c->proto != FILTER_PROTO_ANY && !get_bit(sum + SUM_PROTO, (uint32_t)c->proto & 0xff))
		return false;
	return set_may_match(&c->src, false, flags, sum + src, NULL) &&
	       set_may_match(&c->dst, false, flags, sum + dst, NULL) &&
	       set_may_match(&c->sport, true, flags, sum + sp, sum + spc) &&
	       set_may_match(&c->dport, true, flags, sum + dp, sum + dpc);
}

bool histsum_may_match(const HistProbe *p, uint32_t flags, const uint8_t summary[HISTFMT_SUMMARY])
{
	if (p->all || (flags & HIST_BF_UNSURE))
		return true;
	for (size_t i = 0; i < p->n_clauses; i++) {
		const HistProbeClause *c = &p->clauses[i];

		if (clause_may_match(c, false, flags, summary))
			return true;
		if (c->both_directions && clause_may_match(c, true, flags, summary))
			return true;
	}
	return false;
}
