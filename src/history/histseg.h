/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/history: segment data files as bytes. Pure functions: the
 * pcap file header and records of a segment, cutting records into blocks
 * (what the writer does as packets arrive, and what recovery does to rebuild
 * an index from a data file), reading a block's records back.
 *
 * A segment data file is classic pcap in the byte order of the host that wrote
 * it, nanosecond magic (a1b23c4d), version 2.4, one link type. Data files are
 * untrusted on read: every record is checked against the block's bounds and
 * the segment's snaplen.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "history/histfmt.h"

/* The record layout of one stored packet. */
typedef struct HistRec {
	uint64_t ts_ns;
	uint32_t caplen, origlen;
	const uint8_t *data; /* caplen bytes, into the caller's span */
} HistRec;

void histseg_header_encode(uint32_t linktype, uint32_t snaplen, uint8_t out[HISTFMT_PCAP_HDR]);
/* -EBADMSG (with err) unless p starts with a segment header this host wrote:
 * nanosecond magic in host byte order, version 2.4, snaplen 1..PCAP_MAX_SNAPLEN. */
int histseg_header_decode(const uint8_t *p, size_t n, uint32_t *ret_linktype, uint32_t *ret_snaplen, ErrBuf *err);

/* Record header for a packet (host byte order). */
void histseg_record_header(uint64_t ts_ns, uint32_t caplen, uint32_t origlen, uint8_t out[HISTFMT_REC_HDR]);
/* The record at p[0..n): 1 with *ret and *ret_used, 0 when n == 0, -EBADMSG
 * when the record is cut short, its nanoseconds are >= 1e9 or its caplen is
 * over snaplen. */
int histseg_record(const uint8_t *p, size_t n, uint32_t snaplen, HistRec *ret, size_t *ret_used);

/* A block being filled: the index entry grows with each packet. */
void histseg_block_start(HistBlock *b, uint64_t offset);
void histseg_block_add(HistBlock *b, uint32_t linktype, uint64_t ts_ns, const uint8_t *data, uint32_t caplen);

/* Builds an index for the data file p[0..n) (blocks of block_packets /
 * block_bytes, as the writer cuts them). Stops at the first record that is cut
 * short or malformed: *ret_valid is the length of the whole records (what the
 * file should be cut to); info.data_size equals it. *ret_blocks is malloc()ed
 * (NULL without packets). -EBADMSG when the file header is not a segment's,
 * -ENOMEM. */
int histseg_index_build(const uint8_t *p, size_t n, uint64_t seq, uint32_t block_packets, uint32_t block_bytes,
			HistIndexInfo *ret_info, HistBlock **ret_blocks, uint64_t *ret_valid, ErrBuf *err);
