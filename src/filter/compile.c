/* SPDX-License-Identifier: MIT */
/*
 * pcapd's own classic-BPF generator for the filter model. libpcap's compiler
 * neither walks IPv6 extension headers for ports and protocols nor knows
 * address ranges; this one does both and handles inline VLAN tags.
 *
 * Program shape (all jumps forward, as classic BPF requires):
 *
 *   1. clear the scratch slots, then set "no protocol" (0x100) and "no port"
 *      (0x10000): values no clause can match, kept for non-IP packets,
 *      non-first fragments and protocols without ports;
 *   2. link-layer prologue: find IPv4 or IPv6 and leave X = offset of the IP
 *      header. Ethernet, SLL and SLL2 skip up to two inline 802.1Q / 802.1ad /
 *      0x9100 tags: the kernel usually moves the outer tag into metadata
 *      before the socket filter runs, but not always (e.g. frames it sends),
 *      and stored frames keep their tags, so both forms must match;
 *   3. extract the packet's tuple into scratch memory (M_*): family, addresses,
 *      transport protocol (IPv6: after up to IPV6_MAX_EXT extension headers,
 *      unrolled because classic BPF has no loops), ports when this is a first
 *      fragment of a protocol some clause wants ports of;
 *   4. the clauses, OR-ed, each a chain of tests on scratch memory that falls
 *      to the next clause on the first mismatch (and, for both_directions,
 *      first to the same tests with source and destination swapped);
 *   4b. when some clause is `inner` and no clause matched: the tunnel step.
 *      The outer pass also stored M_TUN, the offset of the transport header
 *      of a first (or only) fragment. UDP to 4789 (VXLAN: Ethernet 16 bytes
 *      past the UDP header), UDP to 6081 (GENEVE: 16 + 4 * option words, then
 *      Ethernet, IPv4 or IPv6 by its protocol type) and GRE version 0 (4 bytes
 *      + 4 for each of checksum, key, sequence; Ethernet, IPv4 or IPv6 by its
 *      protocol type) leave X = the inner Ethernet or IP header; an inner
 *      Ethernet frame may carry up to two tags. Steps 3 and 4 then run again
 *      on the inner packet (scratch slots reset), with the inner clauses only;
 *   5. accept = the libpcap program of bpf_expr if any (its accepting returns
 *      rewritten to return our snaplen), else `ret #snaplen`; reject = `ret #0`.
 *
 * Only what some clause needs is extracted: a load past the captured bytes
 * ends a classic program with "drop", so a filter on addresses only must not
 * read ports from a short packet. Like tcpdump, a clause needing ports does
 * not match a packet truncated before its ports.
 */
#include "filter/filter.h"

#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "filter/asm.h"
#include "pcap/record.h"

enum {
	M_FAM = 0,    /* 4, 6, or 0 for non-IP */
	M_SRC = 1,    /* 1..4: source address words (IPv4: word 1 only) */
	M_DST = 5,    /* 5..8: destination address words */
	M_PROTO = 9,  /* transport protocol or NO_PROTO */
	M_SPORT = 10, /* ports or NO_PORT */
	M_DPORT = 11,
	M_L4 = 12,  /* IPv6: offset of the header being walked; tunnel step: scratch */
	M_NH = 13,  /* IPv6: its next-header value; tunnel step: scratch */
	M_TUN = 14, /* outer transport header offset of a first fragment, 0 = none */
	M_SLOTS = 15,
};

#define NO_PROTO 0x100u
#define NO_PORT 0x10000u
#define IPV6_MAX_EXT 6 /* extension headers walked before giving up */
#define PORT_VXLAN 4789u
#define PORT_GENEVE 6081u
#define ETHERTYPE_TEB 0x6558u /* transparent Ethernet bridging: Ethernet inside */

typedef struct Gen {
	Asm a;
	const Filter *f;
	bool need_addr, need_proto, need_ports;
	bool port_proto[256]; /* protocols whose ports some clause tests */
	bool need_tun;        /* some clause is inner: the tunnel step follows the clauses */
	bool pass_inner;      /* generating the pass over the inner packet */
	uint32_t l_accept, l_reject, l_v4, l_v6, l_clauses, l_ports;
	uint32_t l_nomatch; /* where a pass goes when no clause matched */
} Gen;

#define STMT(g, code, k) asm_stmt(&(g)->a, (uint16_t)(code), (k))

static bool clause_is_empty(const FilterClause *c)
{
	return c->src.n == 0 && c->dst.n == 0 && c->sport.n == 0 && c->dport.n == 0 && c->proto == FILTER_PROTO_ANY;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Ethertype at e, IP header (or first tag's TCI) at p. A tag inserted after the
 * type field shifts both by 4: the inner type is at p + 2. */
static void gen_ether_like(Gen *g, uint32_t e, uint32_t p)
{
	static const uint32_t tpids[] = {0x8100, 0x88a8, 0x9100};
	uint32_t typed = asm_label(&g->a);

	STMT(g, BPF_LD | BPF_H | BPF_ABS, e);
	for (unsigned depth = 0; depth <= 2; depth++) {
		uint32_t tagged = asm_label(&g->a);

		if (depth < 2) {
			for (size_t i = 0; i < ARRAY_SIZE(tpids); i++)
				asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, tpids[i], tagged);
		}
		STMT(g, BPF_LDX | BPF_IMM, p + 4 * depth);
		asm_ja(&g->a, typed);
		if (depth == 2)
			break;
		asm_bind(&g->a, tagged);
		STMT(g, BPF_LD | BPF_H | BPF_ABS, p + 4 * depth + 2);
	}
	asm_bind(&g->a, typed);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x0800, g->l_v4);
	asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, g->l_v6, g->l_clauses);
}

static int gen_link(Gen *g, uint32_t linktype)
{
	switch (linktype) {
	case LINKTYPE_ETHERNET:
		gen_ether_like(g, 12, 14);
		return 0;
	case LINKTYPE_LINUX_SLL:
		gen_ether_like(g, 14, 16);
		return 0;
	case LINKTYPE_LINUX_SLL2:
		gen_ether_like(g, 0, 20);
		return 0;
	case LINKTYPE_RAW:
		STMT(g, BPF_LDX | BPF_IMM, 0);
		STMT(g, BPF_LD | BPF_B | BPF_ABS, 0);
		STMT(g, BPF_ALU | BPF_AND | BPF_K, 0xf0);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x40, g->l_v4);
		asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x60, g->l_v6, g->l_clauses);
		return 0;
	case LINKTYPE_IPV4:
		STMT(g, BPF_LDX | BPF_IMM, 0);
		asm_ja(&g->a, g->l_v4);
		return 0;
	case LINKTYPE_IPV6:
		STMT(g, BPF_LDX | BPF_IMM, 0);
		asm_ja(&g->a, g->l_v6);
		return 0;
	case LINKTYPE_NULL: {
		/* A 4-byte AF_ value in the byte order of the host that captured:
		 * AF_INET is 2 everywhere, AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs). */
		static const uint32_t v6[] = {10, 24, 28, 30, 0x0a000000, 0x18000000, 0x1c000000, 0x1e000000};

		STMT(g, BPF_LDX | BPF_IMM, 4);
		STMT(g, BPF_LD | BPF_W | BPF_ABS, 0);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 2, g->l_v4);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x02000000, g->l_v4);
		for (size_t i = 0; i < ARRAY_SIZE(v6); i++)
			asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, v6[i], g->l_v6);
		asm_ja(&g->a, g->l_clauses);
		return 0;
	}
	default:
		return -EPROTONOSUPPORT;
	}
}

/* With A = transport protocol: go to l_ports if some clause wants its ports,
 * to the clauses otherwise. */
static void gen_port_gate(Gen *g, uint32_t l_ports)
{
	for (unsigned p = 0; p < 256; p++)
		if (g->port_proto[p])
			asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, p, l_ports);
	asm_ja(&g->a, g->l_clauses);
}

static void gen_v4(Gen *g)
{
	asm_bind(&g->a, g->l_v4);
	STMT(g, BPF_LD | BPF_IMM, 4);
	STMT(g, BPF_ST, M_FAM);
	if (g->need_addr) {
		STMT(g, BPF_LD | BPF_W | BPF_IND, 12);
		STMT(g, BPF_ST, M_SRC);
		STMT(g, BPF_LD | BPF_W | BPF_IND, 16);
		STMT(g, BPF_ST, M_DST);
	}
	if (g->need_proto) {
		STMT(g, BPF_LD | BPF_B | BPF_IND, 9);
		STMT(g, BPF_ST, M_PROTO);
	}
	if (g->need_tun && !g->pass_inner) {
		uint32_t l_later = asm_label(&g->a);

		/* M_TUN for the tunnel step: first fragments only. */
		STMT(g, BPF_LD | BPF_H | BPF_IND, 6);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JSET | BPF_K, 0x1fff, l_later);
		STMT(g, BPF_LD | BPF_B | BPF_IND, 0);
		STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x0f);
		STMT(g, BPF_ALU | BPF_LSH | BPF_K, 2);
		STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
		STMT(g, BPF_ST, M_TUN);
		asm_bind(&g->a, l_later);
		STMT(g, BPF_LD | BPF_MEM, M_PROTO);
	}
	if (g->need_ports) {
		uint32_t l_first = asm_label(&g->a);

		gen_port_gate(g, l_first);
		asm_bind(&g->a, l_first);
		/* Only the fragment at offset 0 carries the transport header. */
		STMT(g, BPF_LD | BPF_H | BPF_IND, 6);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JSET | BPF_K, 0x1fff, g->l_clauses);
		STMT(g, BPF_LD | BPF_B | BPF_IND, 0);
		STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x0f);
		STMT(g, BPF_ALU | BPF_LSH | BPF_K, 2);
		STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
		STMT(g, BPF_MISC | BPF_TAX, 0);
		asm_ja(&g->a, g->l_ports);
	} else {
		asm_ja(&g->a, g->l_clauses);
	}
}

/* One IPv6 extension header at M_L4 whose type is in A: next header to M_NH,
 * M_L4 past it, A = next header, then on to l_next. Length is in units of
 * 8 bytes not counting the first 8, except AH's: 4 bytes, not counting 8. */
static void gen_v6_ext(Gen *g, bool ah, uint32_t l_next)
{
	STMT(g, BPF_LDX | BPF_MEM, M_L4);
	STMT(g, BPF_LD | BPF_B | BPF_IND, 0);
	STMT(g, BPF_ST, M_NH);
	STMT(g, BPF_LD | BPF_B | BPF_IND, 1);
	STMT(g, BPF_ALU | BPF_ADD | BPF_K, ah ? 2 : 1);
	STMT(g, BPF_ALU | BPF_LSH | BPF_K, ah ? 2 : 3);
	STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
	STMT(g, BPF_ST, M_L4);
	STMT(g, BPF_LD | BPF_MEM, M_NH);
	asm_ja(&g->a, l_next);
}

static void gen_v6(Gen *g)
{
	asm_bind(&g->a, g->l_v6);
	STMT(g, BPF_LD | BPF_IMM, 6);
	STMT(g, BPF_ST, M_FAM);
	if (g->need_addr) {
		for (uint32_t w = 0; w < 4; w++) {
			STMT(g, BPF_LD | BPF_W | BPF_IND, 8 + 4 * w);
			STMT(g, BPF_ST, M_SRC + w);
			STMT(g, BPF_LD | BPF_W | BPF_IND, 24 + 4 * w);
			STMT(g, BPF_ST, M_DST + w);
		}
	}
	if (!g->need_proto) {
		asm_ja(&g->a, g->l_clauses);
		return;
	}
	uint32_t l_done = asm_label(&g->a);

	STMT(g, BPF_MISC | BPF_TXA, 0);
	STMT(g, BPF_ALU | BPF_ADD | BPF_K, 40);
	STMT(g, BPF_ST, M_L4);
	STMT(g, BPF_LD | BPF_B | BPF_IND, 6);
	for (unsigned step = 0; step < IPV6_MAX_EXT; step++) {
		uint32_t l_ext = asm_label(&g->a), l_ah = asm_label(&g->a), l_frag = asm_label(&g->a);
		uint32_t l_next = step + 1 < IPV6_MAX_EXT ? asm_label(&g->a) : l_done;
		uint32_t l_first = asm_label(&g->a);

		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_HOPOPTS, l_ext);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ROUTING, l_ext);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_DSTOPTS, l_ext);
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_AH, l_ah);
		asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_FRAGMENT, l_frag, l_done);
		asm_bind(&g->a, l_ext);
		gen_v6_ext(g, false, l_next);
		asm_bind(&g->a, l_ah);
		gen_v6_ext(g, true, l_next);
		/* Fragment header: 8 bytes. A non-first fragment names the
		 * transport protocol but holds no transport header. */
		asm_bind(&g->a, l_frag);
		STMT(g, BPF_LDX | BPF_MEM, M_L4);
		STMT(g, BPF_LD | BPF_H | BPF_IND, 2);
		asm_jmp_f(&g->a, BPF_JMP | BPF_JSET | BPF_K, 0xfff8, l_first);
		STMT(g, BPF_LD | BPF_B | BPF_IND, 0);
		STMT(g, BPF_ST, M_PROTO);
		asm_ja(&g->a, g->l_clauses);
		asm_bind(&g->a, l_first);
		STMT(g, BPF_LD | BPF_B | BPF_IND, 0);
		STMT(g, BPF_ST, M_NH);
		STMT(g, BPF_MISC | BPF_TXA, 0);
		STMT(g, BPF_ALU | BPF_ADD | BPF_K, 8);
		STMT(g, BPF_ST, M_L4);
		STMT(g, BPF_LD | BPF_MEM, M_NH);
		if (l_next != l_done)
			asm_bind(&g->a, l_next); /* the next step follows directly */
	}
	asm_bind(&g->a, l_done);
	STMT(g, BPF_ST, M_PROTO);
	if (g->need_tun && !g->pass_inner) {
		STMT(g, BPF_LD | BPF_MEM, M_L4);
		STMT(g, BPF_ST, M_TUN);
		STMT(g, BPF_LD | BPF_MEM, M_PROTO);
	}
	if (g->need_ports) {
		uint32_t l_has = asm_label(&g->a);

		gen_port_gate(g, l_has);
		asm_bind(&g->a, l_has);
		STMT(g, BPF_LDX | BPF_MEM, M_L4);
		asm_ja(&g->a, g->l_ports);
	} else {
		asm_ja(&g->a, g->l_clauses);
	}
}

/* With A = the tested word: a jump to ok when lo <= A <= hi, else to next. */
static void gen_word_range(Gen *g, uint32_t lo, uint32_t hi, uint32_t l_ok, uint32_t l_next)
{
	if (lo == hi) {
		asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, lo, l_ok, l_next);
		return;
	}
	if (lo > 0)
		asm_jmp_f(&g->a, BPF_JMP | BPF_JGE | BPF_K, lo, l_next);
	asm_jmp(&g->a, BPF_JMP | BPF_JGT | BPF_K, hi, l_next, l_ok);
}

/* Lexicographic lo <= address <= hi over the four words at slot. Words the
 * two ends share are compared for equality; below the first differing word
 * a lower end of zeros or an upper end of ones needs no test (CIDR blocks). */
static void gen_v6_range(Gen *g, const AddrRange *r, unsigned slot, uint32_t l_ok, uint32_t l_next)
{
	uint32_t lo[4], hi[4];
	unsigned k = 0;
	bool lo_zero = true, hi_ones = true;

	for (unsigned w = 0; w < 4; w++) {
		lo[w] = be32(r->lo + 4 * w);
		hi[w] = be32(r->hi + 4 * w);
	}
	while (k < 4 && lo[k] == hi[k]) {
		STMT(g, BPF_LD | BPF_MEM, slot + k);
		asm_jmp_f(&g->a, BPF_JMP | BPF_JEQ | BPF_K, lo[k], l_next);
		k++;
	}
	if (k == 4) {
		asm_ja(&g->a, l_ok);
		return;
	}
	for (unsigned w = k + 1; w < 4; w++) {
		lo_zero = lo_zero && lo[w] == 0;
		hi_ones = hi_ones && hi[w] == UINT32_MAX;
	}
	uint32_t l_chklo = lo_zero ? l_ok : asm_label(&g->a);
	uint32_t l_chkhi = hi_ones ? l_ok : asm_label(&g->a);
	uint32_t l_mid = asm_label(&g->a);

	STMT(g, BPF_LD | BPF_MEM, slot + k);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, lo[k], l_chklo);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, hi[k], l_chkhi);
	asm_jmp(&g->a, BPF_JMP | BPF_JGT | BPF_K, lo[k], l_mid, l_next);
	asm_bind(&g->a, l_mid);
	asm_jmp(&g->a, BPF_JMP | BPF_JGT | BPF_K, hi[k], l_next, l_ok);
	if (!lo_zero) {
		asm_bind(&g->a, l_chklo);
		for (unsigned w = k + 1; w < 4; w++) {
			STMT(g, BPF_LD | BPF_MEM, slot + w);
			if (w == 3) {
				asm_jmp(&g->a, BPF_JMP | BPF_JGE | BPF_K, lo[w], l_ok, l_next);
			} else {
				asm_jmp_t(&g->a, BPF_JMP | BPF_JGT | BPF_K, lo[w], l_ok);
				asm_jmp_f(&g->a, BPF_JMP | BPF_JEQ | BPF_K, lo[w], l_next);
			}
		}
	}
	if (!hi_ones) {
		asm_bind(&g->a, l_chkhi);
		for (unsigned w = k + 1; w < 4; w++) {
			STMT(g, BPF_LD | BPF_MEM, slot + w);
			if (w == 3) {
				asm_jmp(&g->a, BPF_JMP | BPF_JGT | BPF_K, hi[w], l_next, l_ok);
			} else {
				asm_jmp_t(&g->a, BPF_JMP | BPF_JGT | BPF_K, hi[w], l_next);
				asm_jmp_f(&g->a, BPF_JMP | BPF_JEQ | BPF_K, hi[w], l_ok);
			}
		}
	}
}

static void gen_addrs(Gen *g, const AddrSet *s, unsigned slot, uint32_t l_fail)
{
	bool has4 = false, has6 = false;
	uint32_t l_ok, l_v4, l_v6;

	if (s->n == 0)
		return;
	for (size_t i = 0; i < s->n; i++) {
		has4 = has4 || s->v[i].family == AF_INET;
		has6 = has6 || s->v[i].family == AF_INET6;
	}
	l_ok = asm_label(&g->a);
	l_v4 = asm_label(&g->a);
	l_v6 = asm_label(&g->a);
	STMT(g, BPF_LD | BPF_MEM, M_FAM);
	if (has4)
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 4, l_v4);
	if (has6)
		asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 6, l_v6);
	asm_ja(&g->a, l_fail); /* the other family, or not IP */
	if (has4) {
		asm_bind(&g->a, l_v4);
		STMT(g, BPF_LD | BPF_MEM, slot);
		for (size_t i = 0; i < s->n; i++) {
			uint32_t l_next;

			if (s->v[i].family != AF_INET)
				continue;
			l_next = asm_label(&g->a);
			gen_word_range(g, be32(s->v[i].lo), be32(s->v[i].hi), l_ok, l_next);
			asm_bind(&g->a, l_next);
		}
		asm_ja(&g->a, l_fail);
	}
	if (has6) {
		asm_bind(&g->a, l_v6);
		for (size_t i = 0; i < s->n; i++) {
			uint32_t l_next;

			if (s->v[i].family != AF_INET6)
				continue;
			l_next = asm_label(&g->a);
			gen_v6_range(g, &s->v[i], slot, l_ok, l_next);
			asm_bind(&g->a, l_next);
		}
		asm_ja(&g->a, l_fail);
	}
	asm_bind(&g->a, l_ok);
}

static void gen_ports(Gen *g, const PortSet *s, unsigned slot, uint32_t l_fail)
{
	uint32_t l_ok;

	if (s->n == 0)
		return;
	l_ok = asm_label(&g->a);
	STMT(g, BPF_LD | BPF_MEM, slot);
	for (size_t i = 0; i < s->n; i++) {
		uint32_t l_next = asm_label(&g->a);

		gen_word_range(g, s->v[i].lo, s->v[i].hi, l_ok, l_next);
		asm_bind(&g->a, l_next);
	}
	asm_ja(&g->a, l_fail);
	asm_bind(&g->a, l_ok);
}

static void gen_clause(Gen *g, const FilterClause *c, bool swapped, uint32_t l_fail)
{
	if (c->proto != FILTER_PROTO_ANY) {
		STMT(g, BPF_LD | BPF_MEM, M_PROTO);
		asm_jmp_f(&g->a, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)c->proto, l_fail);
	}
	gen_addrs(g, &c->src, swapped ? M_DST : M_SRC, l_fail);
	gen_addrs(g, &c->dst, swapped ? M_SRC : M_DST, l_fail);
	gen_ports(g, &c->sport, swapped ? M_DPORT : M_SPORT, l_fail);
	gen_ports(g, &c->dport, swapped ? M_SPORT : M_DPORT, l_fail);
	asm_ja(&g->a, g->l_accept);
}

/* "Nothing known": not IP, no protocol, no ports (the sentinels match no
 * clause). Also where the inner pass starts. */
static void gen_reset_tuple(Gen *g)
{
	STMT(g, BPF_LD | BPF_IMM, 0);
	STMT(g, BPF_ST, M_FAM);
	STMT(g, BPF_LD | BPF_IMM, NO_PROTO);
	STMT(g, BPF_ST, M_PROTO);
	STMT(g, BPF_LD | BPF_IMM, NO_PORT);
	STMT(g, BPF_ST, M_SPORT);
	STMT(g, BPF_ST, M_DPORT);
}

/* Every slot is stored before anything reads it (the kernel refuses programs
 * that might read a slot first). */
static void gen_init(Gen *g)
{
	STMT(g, BPF_LD | BPF_IMM, 0);
	for (uint32_t m = 0; m < M_SLOTS; m++)
		STMT(g, BPF_ST, m);
	gen_reset_tuple(g);
}

/* Steps 3 and 4 for the packet whose IP header the prologue (or the tunnel
 * step) found; the inner pass tests the inner clauses only. */
static void gen_pass(Gen *g)
{
	const Filter *f = g->f;

	gen_v4(g);
	gen_v6(g);
	if (g->need_ports) {
		asm_bind(&g->a, g->l_ports);
		STMT(g, BPF_LD | BPF_H | BPF_IND, 0);
		STMT(g, BPF_ST, M_SPORT);
		STMT(g, BPF_LD | BPF_H | BPF_IND, 2);
		STMT(g, BPF_ST, M_DPORT);
	}
	asm_bind(&g->a, g->l_clauses);
	for (size_t i = 0; i < f->n_clauses; i++) {
		const FilterClause *c = &f->clauses[i];
		uint32_t l_fail = asm_label(&g->a);

		if (g->pass_inner && !c->inner)
			continue;
		gen_clause(g, c, false, l_fail);
		asm_bind(&g->a, l_fail);
		if (c->both_directions) {
			l_fail = asm_label(&g->a);
			gen_clause(g, c, true, l_fail);
			asm_bind(&g->a, l_fail);
		}
	}
	asm_ja(&g->a, g->l_nomatch);
}

/* An Ethernet frame at X (inner): up to two tags, then X = its IP header and
 * on to the inner pass's v4 or v6 step; anything else does not match. */
static void gen_inner_ether(Gen *g)
{
	static const uint32_t tpids[] = {0x8100, 0x88a8, 0x9100};
	uint32_t l_typed = asm_label(&g->a);

	for (uint32_t depth = 0; depth <= 2; depth++) {
		uint32_t l_tagged = asm_label(&g->a);

		STMT(g, BPF_LD | BPF_H | BPF_IND, 12 + 4 * depth);
		if (depth < 2)
			for (size_t i = 0; i < ARRAY_SIZE(tpids); i++)
				asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, tpids[i], l_tagged);
		STMT(g, BPF_ST, M_NH);
		STMT(g, BPF_MISC | BPF_TXA, 0);
		STMT(g, BPF_ALU | BPF_ADD | BPF_K, 14 + 4 * depth);
		STMT(g, BPF_MISC | BPF_TAX, 0);
		STMT(g, BPF_LD | BPF_MEM, M_NH);
		asm_ja(&g->a, l_typed);
		if (depth == 2)
			break;
		asm_bind(&g->a, l_tagged);
	}
	asm_bind(&g->a, l_typed);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x0800, g->l_v4);
	asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, g->l_v6, g->l_reject);
}

/* With A = the protocol type of a GENEVE or GRE payload at X: on to it. */
static void gen_inner_type(Gen *g, uint32_t l_ether)
{
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_TEB, l_ether);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x0800, g->l_v4);
	asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, g->l_v6, g->l_reject);
}

/* Step 4b, bound at l_tunnel: find the inner packet, then the inner pass. */
static void gen_tunnel(Gen *g, uint32_t l_tunnel)
{
	uint32_t l_udp = asm_label(&g->a), l_gre = asm_label(&g->a), l_vxlan = asm_label(&g->a);
	uint32_t l_geneve = asm_label(&g->a), l_ether = asm_label(&g->a);

	asm_bind(&g->a, l_tunnel);
	STMT(g, BPF_LD | BPF_MEM, M_TUN);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, 0, g->l_reject);
	STMT(g, BPF_MISC | BPF_TAX, 0);
	STMT(g, BPF_LD | BPF_MEM, M_PROTO);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, l_udp);
	asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_GRE, l_gre, g->l_reject);

	asm_bind(&g->a, l_udp);
	STMT(g, BPF_LD | BPF_H | BPF_IND, 2);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JEQ | BPF_K, PORT_VXLAN, l_vxlan);
	asm_jmp(&g->a, BPF_JMP | BPF_JEQ | BPF_K, PORT_GENEVE, l_geneve, g->l_reject);

	/* VXLAN: UDP 8, VXLAN 8, then Ethernet. */
	asm_bind(&g->a, l_vxlan);
	STMT(g, BPF_MISC | BPF_TXA, 0);
	STMT(g, BPF_ALU | BPF_ADD | BPF_K, 16);
	STMT(g, BPF_MISC | BPF_TAX, 0);
	asm_ja(&g->a, l_ether);

	/* GENEVE: version 0; UDP 8 + 8 + 4 * option length, protocol type at 10. */
	asm_bind(&g->a, l_geneve);
	STMT(g, BPF_LD | BPF_B | BPF_IND, 8);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JSET | BPF_K, 0xc0, g->l_reject);
	STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x3f);
	STMT(g, BPF_ALU | BPF_LSH | BPF_K, 2);
	STMT(g, BPF_ALU | BPF_ADD | BPF_K, 16);
	STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
	STMT(g, BPF_ST, M_L4);
	STMT(g, BPF_LD | BPF_H | BPF_IND, 10);
	STMT(g, BPF_LDX | BPF_MEM, M_L4);
	gen_inner_type(g, l_ether);

	/* GRE version 0 without routing (RFC 2784/2890): 4 bytes, 4 more for
	 * each of checksum (0x8000), key (0x2000), sequence number (0x1000). */
	asm_bind(&g->a, l_gre);
	STMT(g, BPF_LD | BPF_H | BPF_IND, 0);
	asm_jmp_t(&g->a, BPF_JMP | BPF_JSET | BPF_K, 0x4007, g->l_reject);
	STMT(g, BPF_ST, M_NH);
	STMT(g, BPF_LD | BPF_H | BPF_IND, 2);
	STMT(g, BPF_ST, M_L4);
	STMT(g, BPF_LD | BPF_MEM, M_NH);
	STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x8000);
	STMT(g, BPF_ALU | BPF_RSH | BPF_K, 13);
	STMT(g, BPF_ALU | BPF_ADD | BPF_K, 4);
	STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
	STMT(g, BPF_MISC | BPF_TAX, 0);
	STMT(g, BPF_LD | BPF_MEM, M_NH);
	STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x2000);
	STMT(g, BPF_ALU | BPF_RSH | BPF_K, 11);
	STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
	STMT(g, BPF_MISC | BPF_TAX, 0);
	STMT(g, BPF_LD | BPF_MEM, M_NH);
	STMT(g, BPF_ALU | BPF_AND | BPF_K, 0x1000);
	STMT(g, BPF_ALU | BPF_RSH | BPF_K, 10);
	STMT(g, BPF_ALU | BPF_ADD | BPF_X, 0);
	STMT(g, BPF_MISC | BPF_TAX, 0);
	STMT(g, BPF_LD | BPF_MEM, M_L4);
	gen_inner_type(g, l_ether);

	asm_bind(&g->a, l_ether);
	gen_inner_ether(g);
}

static void gen_body(Gen *g)
{
	uint32_t l_tunnel, l_v4, l_v6, l_v4_reset, l_v6_reset;

	if (!g->need_tun) {
		g->l_nomatch = g->l_reject;
		gen_pass(g);
		return;
	}
	l_tunnel = asm_label(&g->a);
	g->l_nomatch = l_tunnel;
	gen_pass(g);
	/* The inner pass has labels of its own. The tunnel step lands on a
	 * reset of the tuple first (X, the inner header's offset, survives it). */
	l_v4 = asm_label(&g->a);
	l_v6 = asm_label(&g->a);
	l_v4_reset = asm_label(&g->a);
	l_v6_reset = asm_label(&g->a);
	g->pass_inner = true;
	g->l_v4 = l_v4_reset;
	g->l_v6 = l_v6_reset;
	gen_tunnel(g, l_tunnel);
	asm_bind(&g->a, l_v4_reset);
	gen_reset_tuple(g);
	asm_ja(&g->a, l_v4);
	asm_bind(&g->a, l_v6_reset);
	gen_reset_tuple(g);
	asm_ja(&g->a, l_v6);
	g->l_v4 = l_v4;
	g->l_v6 = l_v6;
	g->l_clauses = asm_label(&g->a);
	g->l_ports = asm_label(&g->a);
	g->l_nomatch = g->l_reject;
	gen_pass(g);
}

static int linktype_to_dlt(uint32_t linktype)
{
	/* LINKTYPE_RAW is the one file value that differs from its DLT_. */
	return linktype == LINKTYPE_RAW ? DLT_RAW : (int)linktype;
}

/*
 * Chains the libpcap program for expr: its instructions are imported with a
 * label per instruction so that our assembler re-resolves its jumps, and each
 * accepting return is rewritten to return our snaplen (`ret a` at most that).
 *
 * libpcap compiles for a dead handle here, so its `vlan` keyword tests tags
 * inline in the frame. On a live socket the kernel has usually moved the outer
 * tag into metadata, where live tcpdump (which asks libpcap to use the VLAN
 * ancillary loads) finds it: `vlan` in bpf_expr can therefore differ from live
 * tcpdump on tagged traffic. pcapd's own clauses handle both forms.
 */
static int gen_expr(Gen *g, const char *expr, uint32_t linktype, uint32_t snaplen, ErrBuf *err)
{
	struct bpf_program bp = {0};
	uint32_t *labels = NULL;
	pcap_t *pd;
	int r;

	pd = pcap_open_dead(linktype_to_dlt(linktype), (int)(snaplen < PCAP_MAX_SNAPLEN ? snaplen : PCAP_MAX_SNAPLEN));
	if (!pd)
		return errbuf_set(err, -ENOMEM, "bpf_expr: out of memory");
	if (pcap_compile(pd, &bp, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		r = errbuf_set(err, -EINVAL, "bpf_expr: %s", pcap_geterr(pd));
		goto cleanup;
	}
	if (bp.bf_len == 0 || bp.bf_len > BPF_MAXINSNS) {
		r = errbuf_set(err, -E2BIG, "bpf_expr: too complex (%u instructions)", bp.bf_len);
		goto cleanup;
	}
	labels = malloc(bp.bf_len * sizeof(*labels));
	if (!labels) {
		r = errbuf_set(err, -ENOMEM, "bpf_expr: out of memory");
		goto cleanup;
	}
	for (uint32_t i = 0; i < bp.bf_len; i++)
		labels[i] = asm_label(&g->a);
	/* libpcap's code expects the machine as a program starts it. */
	STMT(g, BPF_LD | BPF_IMM, 0);
	STMT(g, BPF_LDX | BPF_IMM, 0);
	for (uint32_t i = 0; i < bp.bf_len; i++) {
		const struct bpf_insn *in = &bp.bf_insns[i];

		asm_bind(&g->a, labels[i]);
		if (BPF_CLASS(in->code) == BPF_JMP) {
			uint64_t t = (uint64_t)i + 1 + (BPF_OP(in->code) == BPF_JA ? in->k : in->jt);
			uint64_t f = (uint64_t)i + 1 + in->jf;

			if (t >= bp.bf_len || (BPF_OP(in->code) != BPF_JA && f >= bp.bf_len)) {
				r = errbuf_set(err, -EINVAL, "bpf_expr: libpcap produced a jump past the end");
				goto cleanup;
			}
			if (BPF_OP(in->code) == BPF_JA)
				asm_ja(&g->a, labels[t]);
			else
				asm_jmp(&g->a, in->code, in->k, labels[t], labels[f]);
		} else if (BPF_CLASS(in->code) == BPF_RET && BPF_RVAL(in->code) == BPF_A) {
			uint32_t l_big = asm_label(&g->a), l_a = asm_label(&g->a);

			asm_jmp(&g->a, BPF_JMP | BPF_JGT | BPF_K, snaplen, l_big, l_a);
			asm_bind(&g->a, l_a);
			STMT(g, BPF_RET | BPF_A, 0);
			asm_bind(&g->a, l_big);
			STMT(g, BPF_RET | BPF_K, snaplen);
		} else if (BPF_CLASS(in->code) == BPF_RET) {
			/* libpcap accepts with its handle's snaplen, which it caps at
			 * 262144: give ours, as the clauses do. */
			STMT(g, BPF_RET | BPF_K, in->k ? snaplen : 0);
		} else {
			STMT(g, in->code, in->k);
		}
	}
	r = 0;
cleanup:
	free(labels);
	pcap_freecode(&bp);
	pcap_close(pd);
	return r;
}

int filter_compile(const Filter *f, uint32_t linktype, uint32_t snaplen, CbpfProgram *ret, ErrBuf *err)
{
	static const Filter empty = {0};
	CbpfProgram prog = {0};
	ErrBuf cerr;
	Gen g = {0};
	bool restricted;
	int r;

	if (!f)
		f = &empty;
	if (snaplen == 0)
		return errbuf_set(err, -EINVAL, "snaplen: 0 would drop every packet");
	switch (linktype) {
	case LINKTYPE_ETHERNET:
	case LINKTYPE_RAW:
	case LINKTYPE_IPV4:
	case LINKTYPE_IPV6:
	case LINKTYPE_LINUX_SLL:
	case LINKTYPE_LINUX_SLL2:
	case LINKTYPE_NULL:
		break;
	default:
		return errbuf_set(err, -EPROTONOSUPPORT, "link type %u is not supported by the filter compiler",
				  linktype);
	}
	g.f = f;
	restricted = f->n_clauses > 0;
	for (size_t i = 0; i < f->n_clauses; i++) {
		const FilterClause *c = &f->clauses[i];

		if (clause_is_empty(c))
			restricted = false; /* one clause accepting everything */
		g.need_addr = g.need_addr || c->src.n > 0 || c->dst.n > 0;
		g.need_proto = g.need_proto || c->proto != FILTER_PROTO_ANY;
		g.need_tun = g.need_tun || c->inner;
		if (c->sport.n > 0 || c->dport.n > 0) {
			g.need_ports = g.need_proto = true;
			if (c->proto == FILTER_PROTO_ANY) {
				g.port_proto[IPPROTO_TCP] = g.port_proto[IPPROTO_UDP] = true;
				g.port_proto[IPPROTO_SCTP] = true;
			} else {
				g.port_proto[c->proto & 0xff] = true;
			}
		}
	}
	g.l_accept = asm_label(&g.a);
	g.l_reject = asm_label(&g.a);
	g.l_v4 = asm_label(&g.a);
	g.l_v6 = asm_label(&g.a);
	g.l_clauses = asm_label(&g.a);
	g.l_ports = asm_label(&g.a);
	if (g.need_tun)
		g.need_proto = true; /* the tunnel step needs the outer protocol */
	if (restricted) {
		gen_init(&g);
		r = gen_link(&g, linktype);
		if (r < 0)
			goto cleanup;
		gen_body(&g);
		asm_bind(&g.a, g.l_reject);
		STMT(&g, BPF_RET | BPF_K, 0);
	}
	asm_bind(&g.a, g.l_accept);
	if (f->bpf_expr && f->bpf_expr[0]) {
		r = gen_expr(&g, f->bpf_expr, linktype, snaplen, err);
		if (r < 0)
			goto cleanup;
	} else {
		STMT(&g, BPF_RET | BPF_K, snaplen);
	}
	r = asm_finish(&g.a, &prog);
	if (r == -E2BIG) {
		errbuf_set(err, r, "filter is too complex: it needs more than %u classic BPF instructions",
			   BPF_MAXINSNS);
		goto cleanup;
	}
	if (r < 0) {
		errbuf_set(err, r, "filter: cannot assemble the program (%s)", strerror(-r));
		goto cleanup;
	}
	/* The kernel will refuse what its checker refuses: find out here. */
	r = cbpf_check(&prog, &cerr);
	if (r < 0) {
		errbuf_set(err, r, "filter: generated program fails the check: %s", cerr.msg);
		goto cleanup;
	}
	*ret = prog;
	prog = (CbpfProgram){0};
cleanup:
	cbpf_program_free(&prog);
	asm_done(&g.a);
	return r;
}
