/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/history: block summaries, and what a filter needs of them.
 *
 * A block's summary (HISTFMT_SUMMARY = 368 bytes in the index, offsets below)
 * describes the packets a filter *could* match in it:
 *
 *     0  proto        32   exact set of transport protocols (bit p of byte p/8)
 *    32  src bloom   128   1024-bit Bloom filter of source address prefixes
 *   160  dst bloom   128   of destination address prefixes
 *   288  sport bloom  32   256-bit Bloom filter of source ports
 *   320  dport bloom  32   of destination ports
 *   352  sport coarse  8   u64 LE: bit (port >> 10) for every source port
 *   360  dport coarse  8   u64 LE: for every destination port
 *
 * Addresses go in at three prefix lengths (IPv4 /16 /24 /32, IPv6 /48 /64
 * /128), so that CIDR blocks and ranges of a filter can be tested; each key
 * sets two bits: h = XXH64(family, prefix length, address bytes with the bits
 * past the prefix cleared), bits h mod 1024 and (h >> 32) mod 1024. Ports:
 * h = XXH64('P', port big-endian), bits h mod 256 and (h >> 32) mod 256.
 *
 * The values are the ones the compiled filter program computes (see
 * filter/compile.c): the same link-layer prologue (up to two inline VLAN tags
 * after the one filter_match() hides), the same IPv6 extension-header walk
 * (six headers), ports of TCP/UDP/SCTP first fragments. A packet whose headers
 * cannot be read to the end (truncated, odd link type) marks its block
 * HIST_BF_UNSURE, which is never skipped: a summary only ever says "cannot
 * match" when that is certain. Packets the program sees as non-IP cannot match
 * a clause that tests anything, so they add nothing.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter/filter.h"
#include "history/histfmt.h"

#define HISTSUM_ADDR_BITS 1024u
#define HISTSUM_PORT_BITS 256u

/* A packet's tuple as the filter program sees it. */
typedef struct HistTuple {
	uint8_t fam;    /* 0: not IP to the program, 4 or 6 */
	bool sure;      /* false: some header could not be read; anything may match */
	bool has_ports; /* TCP, UDP or SCTP, first fragment, ports captured */
	uint8_t proto;  /* transport protocol (fam 4 or 6) */
	uint16_t sport, dport;
	uint8_t src[16], dst[16]; /* IPv4 in bytes 0..3 */
} HistTuple;

/* Reads the tuple of a stored frame. Pure. */
void histsum_tuple(uint32_t linktype, const uint8_t *data, uint32_t caplen, HistTuple *ret);

/* Adds a tuple to a block's summary and flags. */
void histsum_add(uint8_t summary[HISTFMT_SUMMARY], uint32_t *flags, const HistTuple *t);

/* --------------------------------------------------------- query side */

/* One dimension (addresses or ports, one direction) of a clause. */
typedef struct HistProbeSet {
	bool any;            /* unconstrained (or not expressible in the summary) */
	uint32_t fams;       /* addresses: HIST_BF_V4/V6 of the families in the set */
	bool fams_only;      /* addresses: ranges too wide for the Bloom filter: families only */
	uint16_t (*bits)[2]; /* Bloom bit pairs: a block may match if both bits of a pair are set */
	size_t n_bits;
	uint64_t coarse; /* ports: coarse bits of ranges too wide to list */
} HistProbeSet;

typedef struct HistProbeClause {
	int proto; /* FILTER_PROTO_ANY or 0..255 */
	HistProbeSet src, dst, sport, dport;
	bool both_directions;
} HistProbeClause;

/* What a filter's clauses need of a block, prepared once per query. */
typedef struct HistProbe {
	bool all; /* the clauses restrict nothing: every block may match */
	HistProbeClause *clauses;
	size_t n_clauses;
} HistProbe;

/* Builds the probe for f (NULL = everything). The pcap-filter expression is
 * ANDed with the clauses and cannot be summarised: it is ignored here (the
 * clauses alone still rule blocks out). -ENOMEM. */
int histsum_probe_new(const Filter *f, HistProbe *ret);
void histsum_probe_done(HistProbe *p); /* NULL is fine */

/* false only when no packet of a block with these flags and summary can match
 * the probe's filter. */
bool histsum_may_match(const HistProbe *p, uint32_t flags, const uint8_t summary[HISTFMT_SUMMARY]);
