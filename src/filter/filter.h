/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one filter model (docs/ARCHITECTURE.md, "Filters"): clauses OR-ed together; a clause
 * ANDs optional source and destination address sets, source and destination port
 * sets and an IP protocol; "both directions" (Azure local/remote) also accepts
 * the clause with source and destination swapped. An optional pcap-filter
 * expression is ANDed with the whole. An empty filter accepts everything.
 *
 * Semantics, chosen to equal tcpdump's on the same traffic:
 *  - addresses match IPv4 and IPv6 headers of the right family (only: unlike
 *    tcpdump's `host`, which also tests ARP and RARP, an ARP frame never
 *    matches an address set; compare with `ip host` / `ip6 host`);
 *  - ports match TCP, UDP and SCTP (tcpdump's `port`), or only the given
 *    protocol; non-first IPv4/IPv6 fragments carry no ports and do not match a
 *    port set; IPv6 extension headers are walked to reach the transport header;
 *  - a protocol matches the transport protocol (after IPv6 extension headers);
 *  - VLAN-tagged frames (802.1Q, 802.1ad, up to two tags inline) are matched by
 *    their inner headers, whether the kernel stripped the tag or not;
 *  - an `inner` clause also matches a tunnelled packet whose inner packet
 *    matches it: VXLAN (UDP destination port 4789), GENEVE (UDP 6081, options
 *    skipped by their length; Ethernet, IPv4 or IPv6 inside) and GRE (IP
 *    protocol 47, version 0, with or without checksum, key and sequence
 *    number; Ethernet (0x6558), IPv4 or IPv6 inside), IPv4 or IPv6 outside and
 *    inside, up to two VLAN tags on an inner Ethernet frame. One level: a tunnel
 *    inside a tunnel is not opened. Non-first fragments of the outer packet are
 *    not opened. The pcap-filter expression always tests the outer frame.
 *
 * Parsers are pure (spans in, model out) and name the field and the bound in
 * every error, e.g. "destination_port: 70000 is outside 0..65535".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "filter/cbpf.h"

/* Bounds on what outsiders control. */
#define FILTER_MAX_CLAUSES 32u
#define FILTER_MAX_RANGES 256u /* per address or port set */
#define FILTER_MAX_EXPR 4096u  /* bytes of a pcap-filter expression */
#define FILTER_PROTO_ANY (-1)

typedef struct AddrRange {
	int family;     /* AF_INET or AF_INET6 */
	uint8_t lo[16]; /* first address, network byte order (IPv4: bytes 0..3) */
	uint8_t hi[16]; /* last address, inclusive; lo <= hi */
} AddrRange;

typedef struct AddrSet {
	AddrRange *v; /* owned */
	size_t n;     /* 0 = any address */
} AddrSet;

typedef struct PortRange {
	uint16_t lo, hi; /* inclusive, lo <= hi */
} PortRange;

typedef struct PortSet {
	PortRange *v; /* owned */
	size_t n;     /* 0 = any port */
} PortSet;

typedef struct FilterClause {
	AddrSet src, dst;
	PortSet sport, dport;
	int proto;            /* FILTER_PROTO_ANY or an IP protocol number 0..255 */
	bool both_directions; /* also match with src/dst and sport/dport swapped */
	bool inner;           /* also match the inner packet of VXLAN, GENEVE, GRE */
} FilterClause;

typedef struct Filter {
	FilterClause *clauses; /* owned; OR-ed */
	size_t n_clauses;      /* 0 = no clause restriction */
	char *bpf_expr;        /* owned pcap-filter expression ANDed in, or NULL */
} Filter;

void filter_clause_init(FilterClause *c); /* empty sets, proto any */
void filter_clause_done(FilterClause *c); /* frees the sets; NULL is fine */
/* Moves *c into f (c is left empty). -E2BIG past FILTER_MAX_CLAUSES. */
int filter_add_clause(Filter *f, FilterClause *c, ErrBuf *err);
/* Copies expr[0..n) in; -E2BIG past FILTER_MAX_EXPR, -EINVAL for a NUL byte. */
int filter_set_expr(Filter *f, const char *expr, size_t n, ErrBuf *err);
void filter_done(Filter *f); /* frees everything, leaves an empty filter; NULL is fine */

/* "192.0.2.1", "2001:db8::1", "192.0.2.0/24", "2001:db8::/32",
 * "1.1.1.1-255.255.255.255" (same family both ends), and ';'-separated lists of
 * those ("a;b;" — a trailing ';' is allowed). Appends to *set. */
int filter_parse_addrs(const char *field, const char *s, size_t n, AddrSet *set, ErrBuf *err);
/* "80", "80-120", "80;443;" (lists of singles and ranges). Appends to *set. */
int filter_parse_ports(const char *field, const char *s, size_t n, PortSet *set, ErrBuf *err);
/* A number 0..255 or a name (tcp, udp, icmp, icmp6/ipv6-icmp, sctp, gre, esp,
 * ah, igmp, ...); "any" and "all" (any case) give FILTER_PROTO_ANY. */
int filter_parse_proto(const char *field, const char *s, size_t n, int *ret, ErrBuf *err);
/* The i-th protocol name filter_parse_proto knows (its number in *ret_proto,
 * FILTER_PROTO_ANY for "any"), or NULL past the last: for clients that check
 * a field as the API does (the dashboard's generated bounds). */
const char *filter_proto_name(size_t i, int *ret_proto);
/* Checked conversions for JSON numbers (Cloudflare filter_v1). */
int filter_port_from_number(const char *field, double v, PortSet *set, ErrBuf *err);
int filter_proto_from_number(const char *field, double v, int *ret, ErrBuf *err);

/* Compiles f for frames of linktype (LINKTYPE_ETHERNET, LINKTYPE_RAW,
 * LINKTYPE_IPV4/IPV6, LINKTYPE_LINUX_SLL/SLL2, LINKTYPE_NULL): the program
 * returns snaplen for an accepted packet, 0 otherwise. The pcap-filter
 * expression, if any, is compiled by libpcap and chained after the clauses.
 * -EINVAL with err for a bad expression, -E2BIG when the program would exceed
 * BPF_MAXINSNS, -EPROTONOSUPPORT for another link type. */
int filter_compile(const Filter *f, uint32_t linktype, uint32_t snaplen, CbpfProgram *ret, ErrBuf *err);

/* Runs a compiled program on a frame as stored in a file or history segment
 * (VLAN tags inline): presents it as the kernel would (outer tag in metadata)
 * and returns the program's result (0 = no match). No allocation. */
uint32_t filter_match(const CbpfProgram *p, uint32_t linktype, const uint8_t *data, uint32_t caplen, uint32_t origlen);
