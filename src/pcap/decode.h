/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Pure decoder for classic pcap (µs and ns magic, both byte orders) and pcapng
 * (SHB, IDB with if_name/if_description, EPB, SPB, obsolete PB, ISB; every other
 * block skipped; several sections,
 * each with its own byte order). It never touches a file or socket: the caller
 * hands it the stream in order, as spans, and it decodes one item at a time.
 * That makes it unit-testable and fuzzable in memory (tests/fuzz/).
 *
 * Invariants:
 *  - an item (file header, block, record) is consumed whole or not at all;
 *  - every length read from input is checked before use: a record's caplen
 *    against the interface snaplen, PCAP_MAX_SNAPLEN and the bytes present;
 *    a block's length against its minimum, its alignment and PCAPDEC_MAX_ITEM;
 *  - the decoder holds no pointer into the caller's spans between calls.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "pcap/record.h"

/* No item (pcapng block, pcap record) may be larger: bounds the buffer a reader
 * must keep. Larger claims are malformed input. */
#define PCAPDEC_MAX_ITEM (16u * 1024 * 1024)
/* Interfaces per input (pcapng IDBs over all sections). */
#define PCAPDEC_MAX_INTERFACES 4096u

typedef struct PcapDecoder PcapDecoder;

/* Interface statistics (pcapng ISB options; PcapIfStats.have says which). */
enum {
	PCAP_STAT_IFRECV = 1u,
	PCAP_STAT_IFDROP = 2u,
	PCAP_STAT_START = 4u,
	PCAP_STAT_END = 8u,
};

typedef struct PcapIfStats {
	unsigned have;     /* PCAP_STAT_* bits of the fields below that are known */
	uint64_t ifrecv;   /* packets received by the interface */
	uint64_t ifdrop;   /* packets dropped by the interface or the kernel for lack of room */
	uint64_t start_ns; /* capture start, ns since the epoch */
	uint64_t end_ns;   /* capture end */
} PcapIfStats;

/* What an input says about one of its interfaces (classic pcap: the file header). */
typedef struct PcapInterfaceInfo {
	uint32_t linktype;       /* LINKTYPE_* */
	uint32_t snaplen;        /* effective: 0 and over-large values become PCAP_MAX_SNAPLEN */
	uint64_t tsresol;        /* timestamp units per second in the input (1000000, 1000000000, ...) */
	bool tsresol_bin;        /* tsresol is a power of two (pcapng if_tsresol with the top bit) */
	const char *name;        /* pcapng if_name, or NULL; valid until the decoder is freed */
	const char *description; /* pcapng if_description, or NULL; same */
	PcapIfStats stats;       /* the last ISB seen for the interface (have = 0: none) */
} PcapInterfaceInfo;

enum {
	PCAPDEC_RECORD = 1, /* *ret_rec is a packet; its data points into the span */
	PCAPDEC_META = 2,   /* a file header or non-packet block was consumed */
};

int pcapdec_new(PcapDecoder **ret);
void pcapdec_free(PcapDecoder *d); /* NULL is fine */

/*
 * Decodes the next item from p[0..n), where p is the first byte not consumed yet.
 * Returns
 *   PCAPDEC_RECORD or PCAPDEC_META, with *ret_used = bytes consumed (> 0);
 *   -EAGAIN when p[0..n) holds only part of the next item: *ret_used is then
 *           the number of bytes needed to go on (> n), so the caller can read
 *           more (and knows, at end of input, how long the truncated tail is);
 *   -EBADMSG (malformed), -EPROTONOSUPPORT (not pcap/pcapng), -EFBIG (an item
 *           over PCAPDEC_MAX_ITEM): err names the problem and the byte offset.
 * After an error the decoder must not be used again.
 */
int pcapdec_next(PcapDecoder *d, const uint8_t *p, size_t n, PcapRecord *ret_rec, size_t *ret_used, ErrBuf *err);

/* Input format once the first item is decoded (pcapng for pcapng input). */
PcapFormat pcapdec_format(const PcapDecoder *d);
/* Interfaces seen so far (classic pcap: 1 once the file header is decoded). */
uint32_t pcapdec_interface_count(const PcapDecoder *d);
/* Interface ifid (as in PcapRecord.ifid); -ENOENT if not seen (yet). */
int pcapdec_interface(const PcapDecoder *d, uint32_t ifid, PcapInterfaceInfo *ret);

/* Checks p[0..n) as one whole pcap or pcapng stream from an untrusted
 * sender (an agent's sample answer): nothing after its last record, every
 * record of a link type pcapd reads (pcap_linktype_known) and no longer than
 * its wire length (origlen >= caplen). Counts its records and their captured
 * bytes. -EINVAL with err ("body: …") otherwise, -ENOMEM. */
int pcapdec_check_stream(const uint8_t *p, size_t n, uint64_t *ret_packets, uint64_t *ret_bytes, ErrBuf *err);
/* Stream offset of the next item: the sum of all *ret_used so far. */
uint64_t pcapdec_offset(const PcapDecoder *d);
