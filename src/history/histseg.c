/* SPDX-License-Identifier: MIT */
/*
 * Segment data files as bytes: header, records, blocks. Pure (histseg.h).
 */
#include "history/histseg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "history/histsum.h"
#include "pcap/format.h"
#include "pcap/record.h"

typedef struct PcapFileHeader {
	uint32_t magic;
	uint16_t major, minor;
	int32_t thiszone;
	uint32_t sigfigs, snaplen, linktype;
} PcapFileHeader;

typedef struct PcapRecHeader {
	uint32_t sec, nsec, caplen, origlen;
} PcapRecHeader;

_Static_assert(sizeof(PcapFileHeader) == HISTFMT_PCAP_HDR, "pcap file header");
_Static_assert(sizeof(PcapRecHeader) == HISTFMT_REC_HDR, "pcap record header");

void histseg_header_encode(uint32_t linktype, uint32_t snaplen, uint8_t out[HISTFMT_PCAP_HDR])
{
	PcapFileHeader h = {
		.magic = PCAP_MAGIC_NS,
		.major = PCAP_VERSION_MAJOR,
		.minor = PCAP_VERSION_MINOR,
		.snaplen = snaplen,
		.linktype = linktype,
	};

	memcpy(out, &h, sizeof(h));
}

int histseg_header_decode(const uint8_t *p, size_t n, uint32_t *ret_linktype, uint32_t *ret_snaplen, ErrBuf *err)
{
	PcapFileHeader h;

	if (n < sizeof(h))
		return errbuf_set(err, -EBADMSG, "pcap header: %zu bytes, not %zu", n, sizeof(h));
	memcpy(&h, p, sizeof(h));
	if (h.magic != PCAP_MAGIC_NS)
		return errbuf_set(err, -EBADMSG, "pcap header: magic 0x%08x is not a segment's (0x%08x)", h.magic,
				  PCAP_MAGIC_NS);
	if (h.major != PCAP_VERSION_MAJOR || h.minor != PCAP_VERSION_MINOR)
		return errbuf_set(err, -EBADMSG, "pcap header: version %u.%u", h.major, h.minor);
	if (h.snaplen == 0 || h.snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EBADMSG, "pcap header: snaplen %u is outside 1..%u", h.snaplen,
				  PCAP_MAX_SNAPLEN);
	*ret_linktype = h.linktype;
	*ret_snaplen = h.snaplen;
	return 0;
}

void histseg_record_header(uint64_t ts_ns, uint32_t caplen, uint32_t origlen, uint8_t out[HISTFMT_REC_HDR])
{
	PcapRecHeader h = {
		.sec = (uint32_t)(ts_ns / NSEC_PER_SEC),
		.nsec = (uint32_t)(ts_ns % NSEC_PER_SEC),
		.caplen = caplen,
		.origlen = origlen,
	};

	memcpy(out, &h, sizeof(h));
}

int histseg_record(const uint8_t *p, size_t n, uint32_t snaplen, HistRec *ret, size_t *ret_used)
{
	PcapRecHeader h;

	if (n == 0)
		return 0;
	if (n < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	if (h.nsec >= NSEC_PER_SEC || h.caplen > snaplen || h.caplen > n - sizeof(h))
		return -EBADMSG;
	ret->ts_ns = (uint64_t)h.sec * NSEC_PER_SEC + h.nsec;
	ret->caplen = h.caplen;
	ret->origlen = h.origlen;
	ret->data = p + sizeof(h);
	*ret_used = sizeof(h) + h.caplen;
	return 1;
}

void histseg_block_start(HistBlock *b, uint64_t offset)
{
	memset(b, 0, sizeof(*b));
	b->offset = offset;
	b->min_ts = UINT64_MAX;
}

void histseg_block_add(HistBlock *b, uint32_t linktype, uint64_t ts_ns, const uint8_t *data, uint32_t caplen)
{
	HistTuple t;

	histsum_tuple(linktype, data, caplen, &t);
	histsum_add(b->summary, &b->flags, &t);
	b->packets++;
	b->length += HISTFMT_REC_HDR + caplen;
	b->min_ts = ts_ns < b->min_ts ? ts_ns : b->min_ts;
	b->max_ts = ts_ns > b->max_ts ? ts_ns : b->max_ts;
}

static int push_block(HistBlock **v, size_t *n, size_t *cap, const HistBlock *b)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		HistBlock *nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = *b;
	return 0;
}

int histseg_index_build(const uint8_t *p, size_t n, uint64_t seq, uint32_t block_packets, uint32_t block_bytes,
			HistIndexInfo *ret_info, HistBlock **ret_blocks, uint64_t *ret_valid, ErrBuf *err)
{
	HistIndexInfo info = {.seq = seq, .first_ts = UINT64_MAX};
	HistBlock *blocks = NULL, cur;
	size_t nb = 0, cap = 0, off = HISTFMT_PCAP_HDR;
	int r;

	r = histseg_header_decode(p, n, &info.linktype, &info.snaplen, err);
	if (r < 0)
		return r;
	histseg_block_start(&cur, off);
	for (;;) {
		HistRec rec;
		size_t used;

		r = histseg_record(p + off, n - off, info.snaplen, &rec, &used);
		if (r <= 0)
			break; /* end, or a record cut short or malformed: the file ends before it */
		if (cur.packets > 0 && (cur.packets >= block_packets || cur.length + used > block_bytes)) {
			if (push_block(&blocks, &nb, &cap, &cur) < 0)
				goto nomem;
			histseg_block_start(&cur, off);
		}
		histseg_block_add(&cur, info.linktype, rec.ts_ns, rec.data, rec.caplen);
		info.packets++;
		info.bytes += rec.caplen;
		info.wire_bytes += rec.origlen;
		info.first_ts = rec.ts_ns < info.first_ts ? rec.ts_ns : info.first_ts;
		info.last_ts = rec.ts_ns > info.last_ts ? rec.ts_ns : info.last_ts;
		off += used;
	}
	if (cur.packets > 0 && push_block(&blocks, &nb, &cap, &cur) < 0)
		goto nomem;
	if (info.packets == 0)
		info.first_ts = info.last_ts = 0;
	info.n_blocks = (uint32_t)nb;
	info.data_size = off;
	*ret_info = info;
	*ret_blocks = blocks;
	*ret_valid = off;
	return 0;
nomem:
	free(blocks);
	return errbuf_set(err, -ENOMEM, "out of memory indexing segment %llu", (unsigned long long)seq);
}
