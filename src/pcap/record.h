/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the pcap module hands around: one packet record, independent of the file
 * format it came from or goes to.
 */

#include <stdbool.h>
#include <stdint.h>

/* LINKTYPE_* values used by name in pcapd (tcpdump.org/linktypes.html). */
enum {
	LINKTYPE_NULL = 0,
	LINKTYPE_ETHERNET = 1,
	LINKTYPE_RAW = 101,
	LINKTYPE_LINUX_SLL = 113,
	LINKTYPE_IPV4 = 228,
	LINKTYPE_IPV6 = 229,
	LINKTYPE_LINUX_SLL2 = 276,
};

/* Whether pcapd knows how to read linktype (one of the above). */
static inline bool pcap_linktype_known(uint32_t linktype)
{
	switch (linktype) {
	case LINKTYPE_NULL:
	case LINKTYPE_ETHERNET:
	case LINKTYPE_RAW:
	case LINKTYPE_LINUX_SLL:
	case LINKTYPE_IPV4:
	case LINKTYPE_IPV6:
	case LINKTYPE_LINUX_SLL2:
		return true;
	default:
		return false;
	}
}

/* Largest caplen pcapd accepts from any input or interface (libpcap's
 * MAXIMUM_SNAPLEN). Larger claims are malformed input. */
#define PCAP_MAX_SNAPLEN 262144u

typedef enum PcapFormat {
	PCAP_FORMAT_PCAP_US, /* classic pcap, microsecond timestamps (magic a1b2c3d4) */
	PCAP_FORMAT_PCAP_NS, /* classic pcap, nanosecond timestamps (magic a1b23c4d) */
	PCAP_FORMAT_PCAPNG,  /* pcapng: SHB, IDB, EPB */
} PcapFormat;

typedef struct PcapRecord {
	uint64_t ts_ns;      /* nanoseconds since the Unix epoch; pcapng if_tsresol and if_tsoffset applied */
	uint32_t caplen;     /* bytes at data, <= snaplen of the interface and <= PCAP_MAX_SNAPLEN */
	uint32_t origlen;    /* length on the wire as the file states it (may be < caplen in broken files) */
	uint32_t linktype;   /* LINKTYPE_* of the record's interface */
	uint32_t ifid;       /* pcapng: interface index within the input (across sections); pcap: 0 */
	const uint8_t *data; /* caplen bytes, borrowed: valid as the producer documents */
} PcapRecord;
