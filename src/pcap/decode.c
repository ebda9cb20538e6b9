/* SPDX-License-Identifier: MIT */
/*
 * Pure pcap/pcapng decoder. Formats (all integers in the file's byte order):
 *
 * classic pcap: file header (24 bytes)
 *   magic u32 (a1b2c3d4 µs, a1b23c4d ns), version u16 u16, thiszone i32,
 *   sigfigs u32, snaplen u32, linktype u32 (low 26 bits; upper bits are FCS info)
 * then records: ts_sec u32, ts_frac u32, caplen u32, origlen u32, caplen bytes.
 *
 * pcapng: blocks of type u32, total_length u32, body, total_length u32, with
 * total_length a multiple of 4 and >= 12. A Section Header Block (0a0d0d0a)
 * starts every section and its byte-order magic (1a2b3c4d) decides the byte
 * order of everything up to the next SHB. Interfaces are numbered per section
 * in the file; PcapRecord.ifid numbers them across sections.
 *
 * Semantics follow libpcap 1.10 (sf-pcap.c, sf-pcapng.c) so that what we read
 * equals what tcpdump reads (tests/unit/pcap/test-pcap-corpus.c checks it):
 *  - classic pcap: the effective snaplen is the header's, or PCAP_MAX_SNAPLEN
 *    when that is 0 or larger; a record with caplen > PCAP_MAX_SNAPLEN is
 *    malformed, one with caplen > snaplen is cut to snaplen (its whole caplen
 *    is still consumed). Versions other than 2.0-2.4 (and DG/UX's 543.0) are
 *    refused; files of version < 2.3 store origlen before caplen, and 2.3
 *    files do so when caplen > origlen.
 *  - pcapng: caplen > the interface's effective snaplen is malformed, as is a
 *    packet of an interface without IDB. SPB: interface 0, timestamp 0 (the
 *    block has none), caplen = min(origlen, snaplen, bytes in the block).
 *  - Timestamps are unsigned seconds: classic pcap's u32 seconds reach 2106.
 *  - libpcap byte-swaps some link-layer pseudo-headers (USB, NFLOG, SLL, pflog)
 *    of byte-swapped files; this decoder never rewrites packet bytes, the
 *    record is the file's bytes (zero copy).
 *  - pcapng binary if_tsresol: the fraction is scaled with 128-bit arithmetic
 *    (libpcap's 64-bit product overflows for resolutions finer than 2^-34 s).
 */
#include "decode.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pcap/format.h"

/* Where the stream is: nothing seen, inside a classic pcap, inside pcapng. */
typedef enum DecState { DEC_START, DEC_PCAP, DEC_PCAPNG, DEC_FAILED } DecState;

/* Classic pcap 2.x length-field order (see file comment). */
typedef enum LenOrder { LEN_NORMAL, LEN_SWAPPED, LEN_MAYBE_SWAPPED } LenOrder;

typedef struct Iface {
	uint32_t linktype;
	uint32_t snaplen;  /* effective */
	uint64_t tsresol;  /* units per second */
	bool tsresol_bin;  /* tsresol is a power of 2 */
	int64_t tsoffset;  /* seconds added to every timestamp */
	char *name;        /* if_name (owned, NUL-terminated), or NULL */
	char *description; /* if_description, or NULL */
	PcapIfStats stats; /* last ISB */
} Iface;

struct PcapDecoder {
	DecState state;
	PcapFormat format;
	bool swapped;          /* current section/file is the other byte order */
	uint64_t offset;       /* stream offset of the next item */
	LenOrder len_order;    /* classic pcap only */
	uint32_t section_base; /* pcapng: global ifid of the current section's interface 0 */
	bool in_section;       /* pcapng: an SHB was seen */
	Iface *ifaces;         /* across sections */
	uint32_t nifaces;
	uint32_t cap_ifaces;
};

int pcapdec_new(PcapDecoder **ret)
{
	PcapDecoder *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->state = DEC_START;
	*ret = d;
	return 0;
}

void pcapdec_free(PcapDecoder *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->nifaces; i++) {
		free(d->ifaces[i].name);
		free(d->ifaces[i].description);
	}
	free(d->ifaces);
	free(d);
}

static uint16_t rd16(const PcapDecoder *d, const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return d->swapped ? __builtin_bswap16(v) : v;
}

static uint32_t rd32(const PcapDecoder *d, const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return d->swapped ? __builtin_bswap32(v) : v;
}

static uint32_t rd32_native(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t effective_snaplen(uint32_t snaplen)
{
	return snaplen == 0 || snaplen > PCAP_MAX_SNAPLEN ? PCAP_MAX_SNAPLEN : snaplen;
}

/* Fails the decoder for good: the contract forbids use after an error. */
static int fail(PcapDecoder *d, ErrBuf *err, int code, const char *what, uint64_t off)
{
	d->state = DEC_FAILED;
	return errbuf_set(err, code, "%s at byte offset %llu", what, (unsigned long long)off);
}

static int need(size_t want, size_t *ret_used)
{
	*ret_used = want;
	return -EAGAIN;
}

static int add_iface(PcapDecoder *d, const Iface *ifc)
{
	if (d->nifaces >= PCAPDEC_MAX_INTERFACES)
		return -E2BIG;
	if (d->nifaces == d->cap_ifaces) {
		uint32_t cap = d->cap_ifaces ? d->cap_ifaces * 2 : 4;
		Iface *n = realloc(d->ifaces, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->ifaces = n;
		d->cap_ifaces = cap;
	}
	d->ifaces[d->nifaces++] = *ifc;
	return 0;
}

static int pcap_file_header(PcapDecoder *d, const uint8_t *p, size_t n, size_t *ret_used, ErrBuf *err)
{
	uint32_t magic = rd32_native(p);
	uint16_t major, minor;
	Iface ifc = {0};
	int r;

	if (n < PCAP_FILE_HDR)
		return need(PCAP_FILE_HDR, ret_used);
	if (magic == __builtin_bswap32(PCAP_MAGIC_US) || magic == __builtin_bswap32(PCAP_MAGIC_NS)) {
		d->swapped = true;
		magic = __builtin_bswap32(magic);
	}
	major = rd16(d, p + 4);
	minor = rd16(d, p + 6);
	if (!((major == 2 && minor <= 4) || (major == 543 && minor == 0)))
		return fail(d, err, -EBADMSG, "unsupported pcap version", d->offset + 4);
	if (major == 543 || minor < 3)
		d->len_order = LEN_SWAPPED;
	else if (minor == 3)
		d->len_order = LEN_MAYBE_SWAPPED;
	else
		d->len_order = LEN_NORMAL;
	d->format = magic == PCAP_MAGIC_NS ? PCAP_FORMAT_PCAP_NS : PCAP_FORMAT_PCAP_US;
	ifc.snaplen = effective_snaplen(rd32(d, p + 16));
	ifc.linktype = rd32(d, p + 20) & 0x03ffffffu;
	ifc.tsresol = magic == PCAP_MAGIC_NS ? NSEC_PER_SEC : 1000000u;
	r = add_iface(d, &ifc);
	if (r < 0)
		return fail(d, err, r, "out of memory", d->offset);
	d->state = DEC_PCAP;
	*ret_used = PCAP_FILE_HDR;
	return PCAPDEC_META;
}

static int pcap_record(PcapDecoder *d, const uint8_t *p, size_t n, PcapRecord *ret_rec, size_t *ret_used, ErrBuf *err)
{
	uint32_t sec, frac, caplen, origlen;
	const Iface *ifc = &d->ifaces[0];

	if (n < PCAP_REC_HDR)
		return need(PCAP_REC_HDR, ret_used);
	sec = rd32(d, p);
	frac = rd32(d, p + 4);
	caplen = rd32(d, p + 8);
	origlen = rd32(d, p + 12);
	if (d->len_order == LEN_SWAPPED || (d->len_order == LEN_MAYBE_SWAPPED && caplen > origlen)) {
		uint32_t t = caplen;

		caplen = origlen;
		origlen = t;
	}
	if (caplen > PCAP_MAX_SNAPLEN)
		return fail(d, err, -EBADMSG, "record caplen exceeds the maximum snaplen", d->offset + 8);
	if (n < PCAP_REC_HDR + (size_t)caplen)
		return need(PCAP_REC_HDR + (size_t)caplen, ret_used);
	ret_rec->ts_ns =
		(uint64_t)sec * NSEC_PER_SEC + (uint64_t)frac * (d->format == PCAP_FORMAT_PCAP_NS ? 1 : NSEC_PER_USEC);
	ret_rec->caplen = caplen < ifc->snaplen ? caplen : ifc->snaplen;
	ret_rec->origlen = origlen;
	ret_rec->linktype = ifc->linktype;
	ret_rec->ifid = 0;
	ret_rec->data = p + PCAP_REC_HDR;
	*ret_used = PCAP_REC_HDR + (size_t)caplen;
	return PCAPDEC_RECORD;
}

/* Options of an IDB: body[0..n) after the fixed part. */
static int idb_options(PcapDecoder *d, const uint8_t *o, size_t n, Iface *ifc, uint64_t off, ErrBuf *err)
{
	bool seen_resol = false, seen_offset = false;

	while (n >= 4) {
		uint16_t code = rd16(d, o), len = rd16(d, o + 2);
		size_t padded = ((size_t)len + 3) & ~(size_t)3;

		if (code == NG_OPT_ENDOFOPT)
			break;
		if (padded > n - 4)
			return fail(d, err, -EBADMSG, "IDB option runs past its block", off);
		if (code == NG_OPT_IF_TSRESOL) {
			uint8_t v = o[4];

			if (len != 1 || seen_resol)
				return fail(d, err, -EBADMSG, "bad or repeated if_tsresol option", off);
			seen_resol = true;
			if (v & 0x80) {
				if ((v & 0x7f) > 63)
					return fail(d, err, -EBADMSG, "if_tsresol finer than 2^-63 s", off);
				ifc->tsresol = UINT64_C(1) << (v & 0x7f);
				ifc->tsresol_bin = true;
			} else {
				if (v > 19)
					return fail(d, err, -EBADMSG, "if_tsresol finer than 10^-19 s", off);
				ifc->tsresol = 1;
				for (unsigned i = 0; i < v; i++)
					ifc->tsresol *= 10;
				ifc->tsresol_bin = false;
			}
		} else if (code == NG_OPT_IF_NAME || code == NG_OPT_IF_DESCRIPTION) {
			char **slot = code == NG_OPT_IF_NAME ? &ifc->name : &ifc->description;

			/* A repeated option: the first one counts (as in Wireshark). */
			if (!*slot) {
				size_t k = strnlen((const char *)o + 4, len);

				*slot = malloc(k + 1);
				if (!*slot)
					return fail(d, err, -ENOMEM, "out of memory", off);
				memcpy(*slot, o + 4, k);
				(*slot)[k] = '\0';
			}
		} else if (code == NG_OPT_IF_TSOFFSET) {
			uint64_t v;

			if (len != 8 || seen_offset)
				return fail(d, err, -EBADMSG, "bad or repeated if_tsoffset option", off);
			seen_offset = true;
			memcpy(&v, o + 4, sizeof(v));
			if (d->swapped)
				v = __builtin_bswap64(v);
			ifc->tsoffset = (int64_t)v;
		}
		o += 4 + padded;
		n -= 4 + padded;
		off += 4 + padded;
	}
	return 0;
}

static uint64_t ng_ts(const Iface *ifc, uint64_t t)
{
	uint64_t sec = t / ifc->tsresol + (uint64_t)ifc->tsoffset;
	uint64_t frac = t % ifc->tsresol;

	/* frac < tsresol <= 10^19 (the largest resolution idb_options() accepts;
	 * 2^63 < 10^19): frac * NSEC_PER_SEC < 10^28 < 2^128, no overflow. */
	frac = (uint64_t)((unsigned __int128)frac * NSEC_PER_SEC / ifc->tsresol);
	return sec * NSEC_PER_SEC + frac;
}

static int ng_packet(PcapDecoder *d, const uint8_t *blk, uint32_t type, uint32_t len, PcapRecord *ret_rec, ErrBuf *err)
{
	uint32_t ifid, caplen, origlen, avail;
	uint64_t t = 0;
	const uint8_t *data;
	const Iface *ifc;

	if (type == NG_SPB) {
		if (len < NG_MIN_SPB)
			return fail(d, err, -EBADMSG, "SPB shorter than its fixed part", d->offset);
		ifid = 0;
		origlen = rd32(d, blk + 8);
		data = blk + 12;
		avail = len - NG_MIN_SPB;
		caplen = origlen;
	} else {
		if (len < (type == NG_EPB ? NG_MIN_EPB : NG_MIN_PB))
			return fail(d, err, -EBADMSG, "packet block shorter than its fixed part", d->offset);
		if (type == NG_EPB)
			ifid = rd32(d, blk + 8);
		else
			ifid = rd16(d, blk + 8);
		t = (uint64_t)rd32(d, blk + 12) << 32 | rd32(d, blk + 16);
		caplen = rd32(d, blk + 20);
		origlen = rd32(d, blk + 24);
		data = blk + 28;
		avail = len - NG_MIN_EPB;
	}
	if (!d->in_section || ifid >= d->nifaces - d->section_base)
		return fail(d, err, -EBADMSG, "packet of an interface without IDB", d->offset);
	ifid += d->section_base;
	ifc = &d->ifaces[ifid];
	if (type == NG_SPB) {
		if (caplen > ifc->snaplen)
			caplen = ifc->snaplen;
		if (caplen > avail)
			caplen = avail;
	} else {
		if (caplen > ifc->snaplen)
			return fail(d, err, -EBADMSG, "packet caplen exceeds the interface snaplen", d->offset + 20);
		if (caplen > avail)
			return fail(d, err, -EBADMSG, "packet caplen exceeds its block", d->offset + 20);
	}
	ret_rec->ts_ns = type == NG_SPB ? 0 : ng_ts(ifc, t);
	ret_rec->caplen = caplen;
	ret_rec->origlen = origlen;
	ret_rec->linktype = ifc->linktype;
	ret_rec->ifid = ifid;
	ret_rec->data = data;
	return PCAPDEC_RECORD;
}

/* An Interface Statistics Block: its counters and times kept for the
 * interface (the last ISB of an interface wins: counters are cumulative). */
static int ng_isb(PcapDecoder *d, const uint8_t *blk, uint32_t len, ErrBuf *err)
{
	const uint8_t *o = blk + 20;
	size_t n = len - NG_MIN_ISB;
	uint64_t off = d->offset + 20;
	PcapIfStats st = {0};
	/* options 2..5, in code order */
	uint64_t *const slots[] = {&st.start_ns, &st.end_ns, &st.ifrecv, &st.ifdrop};
	static const unsigned bits[] = {PCAP_STAT_START, PCAP_STAT_END, PCAP_STAT_IFRECV, PCAP_STAT_IFDROP};
	uint32_t ifid;
	Iface *ifc;

	if (len < NG_MIN_ISB)
		return fail(d, err, -EBADMSG, "ISB shorter than its fixed part", d->offset);
	ifid = rd32(d, blk + 8);
	if (ifid >= d->nifaces - d->section_base)
		return fail(d, err, -EBADMSG, "statistics of an interface without IDB", d->offset + 8);
	ifc = &d->ifaces[d->section_base + ifid];
	while (n >= 4) {
		uint16_t code = rd16(d, o), olen = rd16(d, o + 2);
		size_t padded = ((size_t)olen + 3) & ~(size_t)3;
		uint64_t v = 0;

		if (code == NG_OPT_ENDOFOPT)
			break;
		if (padded > n - 4)
			return fail(d, err, -EBADMSG, "ISB option runs past its block", off);
		if (code >= NG_OPT_ISB_STARTTIME && code <= NG_OPT_ISB_IFDROP) {
			if (olen != 8)
				return fail(d, err, -EBADMSG, "ISB option of a length other than 8", off);
			if (code <= NG_OPT_ISB_ENDTIME) {
				v = (uint64_t)rd32(d, o + 4) << 32 | rd32(d, o + 8);
				v = ng_ts(ifc, v);
			} else {
				memcpy(&v, o + 4, sizeof(v));
				if (d->swapped)
					v = __builtin_bswap64(v);
			}
		}
		if (code >= NG_OPT_ISB_STARTTIME && code <= NG_OPT_ISB_IFDROP) {
			*slots[code - NG_OPT_ISB_STARTTIME] = v;
			st.have |= bits[code - NG_OPT_ISB_STARTTIME];
		}
		o += 4 + padded;
		n -= 4 + padded;
		off += 4 + padded;
	}
	ifc->stats = st;
	return PCAPDEC_META;
}

static int ng_block(PcapDecoder *d, const uint8_t *p, size_t n, PcapRecord *ret_rec, size_t *ret_used, ErrBuf *err)
{
	uint32_t type, len;
	int r;

	if (n < 8)
		return need(8, ret_used);
	type = rd32_native(p);
	if (type == NG_SHB) {
		uint32_t bom;

		if (n < 12)
			return need(12, ret_used);
		bom = rd32_native(p + 8);
		if (bom == NG_BOM)
			d->swapped = false;
		else if (bom == __builtin_bswap32(NG_BOM))
			d->swapped = true;
		else
			return fail(d, err, -EBADMSG, "SHB with a bad byte-order magic", d->offset + 8);
	} else if (!d->in_section) {
		return fail(d, err, -EBADMSG, "pcapng block before the first SHB", d->offset);
	}
	type = rd32(d, p);
	len = rd32(d, p + 4);
	if (len < NG_MIN_BLOCK || len % 4 != 0)
		return fail(d, err, -EBADMSG, "pcapng block length below 12 or not a multiple of 4", d->offset + 4);
	if (len > PCAPDEC_MAX_ITEM)
		return fail(d, err, -EFBIG, "pcapng block larger than 16 MiB", d->offset + 4);
	if (n < len)
		return need(len, ret_used);
	if (rd32(d, p + len - 4) != len)
		return fail(d, err, -EBADMSG, "pcapng block trailing length differs from its leading length",
			    d->offset + len - 4);
	*ret_used = len;

	switch (type) {
	case NG_SHB:
		if (len < NG_MIN_SHB)
			return fail(d, err, -EBADMSG, "SHB shorter than its fixed part", d->offset);
		if (rd16(d, p + 12) != NG_VERSION_MAJOR)
			return fail(d, err, -EBADMSG, "unsupported pcapng major version", d->offset + 12);
		d->in_section = true;
		d->section_base = d->nifaces;
		return PCAPDEC_META;
	case NG_IDB: {
		Iface ifc = {.tsresol = 1000000u};

		if (len < NG_MIN_IDB)
			return fail(d, err, -EBADMSG, "IDB shorter than its fixed part", d->offset);
		ifc.linktype = rd16(d, p + 8);
		ifc.snaplen = effective_snaplen(rd32(d, p + 12));
		r = idb_options(d, p + 16, len - NG_MIN_IDB, &ifc, d->offset + 16, err);
		if (r == 0)
			r = add_iface(d, &ifc);
		if (r < 0) {
			free(ifc.name);
			free(ifc.description);
		}
		if (r == -E2BIG)
			return fail(d, err, -EBADMSG, "more than 4096 interfaces", d->offset);
		if (r < 0 && d->state != DEC_FAILED)
			return fail(d, err, r, "out of memory", d->offset);
		return r < 0 ? r : PCAPDEC_META;
	}
	case NG_ISB:
		return ng_isb(d, p, len, err);
	case NG_EPB:
	case NG_PB:
	case NG_SPB:
		return ng_packet(d, p, type, len, ret_rec, err);
	default:
		return PCAPDEC_META;
	}
}

int pcapdec_next(PcapDecoder *d, const uint8_t *p, size_t n, PcapRecord *ret_rec, size_t *ret_used, ErrBuf *err)
{
	PcapRecord rec;
	size_t used = 0;
	int r;

	switch (d->state) {
	case DEC_START: {
		uint32_t m;

		if (n < 4)
			return need(4, ret_used);
		m = rd32_native(p);
		if (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS || m == __builtin_bswap32(PCAP_MAGIC_US) ||
		    m == __builtin_bswap32(PCAP_MAGIC_NS)) {
			r = pcap_file_header(d, p, n, &used, err);
		} else if (m == NG_SHB) {
			d->format = PCAP_FORMAT_PCAPNG;
			r = ng_block(d, p, n, &rec, &used, err);
			if (r >= 0)
				d->state = DEC_PCAPNG;
		} else {
			d->state = DEC_FAILED;
			return errbuf_set(err, -EPROTONOSUPPORT,
					  "not a pcap or pcapng file (magic %08x at byte offset 0)", m);
		}
		break;
	}
	case DEC_PCAP:
		r = pcap_record(d, p, n, &rec, &used, err);
		break;
	case DEC_PCAPNG:
		r = ng_block(d, p, n, &rec, &used, err);
		break;
	default:
		return errbuf_set(err, -EINVAL, "decoder used after an error");
	}
	if (r == -EAGAIN) {
		*ret_used = used;
		return r;
	}
	if (r < 0)
		return r;
	d->offset += used;
	if (r == PCAPDEC_RECORD)
		*ret_rec = rec;
	*ret_used = used;
	return r;
}

PcapFormat pcapdec_format(const PcapDecoder *d)
{
	return d->format;
}

uint64_t pcapdec_offset(const PcapDecoder *d)
{
	return d->offset;
}

uint32_t pcapdec_interface_count(const PcapDecoder *d)
{
	return d->nifaces;
}

int pcapdec_interface(const PcapDecoder *d, uint32_t ifid, PcapInterfaceInfo *ret)
{
	if (ifid >= d->nifaces)
		return -ENOENT;
	ret->linktype = d->ifaces[ifid].linktype;
	ret->snaplen = d->ifaces[ifid].snaplen;
	ret->tsresol = d->ifaces[ifid].tsresol;
	ret->tsresol_bin = d->ifaces[ifid].tsresol_bin;
	ret->name = d->ifaces[ifid].name;
	ret->description = d->ifaces[ifid].description;
	ret->stats = d->ifaces[ifid].stats;
	return 0;
}

/* ---- a whole stream ---- */

int pcapdec_check_stream(const uint8_t *p, size_t n, uint64_t *ret_packets, uint64_t *ret_bytes, ErrBuf *err)
{
	PcapDecoder *d = NULL;
	uint64_t packets = 0, bytes = 0;
	size_t off = 0;
	int r;

	r = pcapdec_new(&d);
	if (r < 0)
		return errbuf_set(err, r, "out of memory");
	while (off < n) {
		PcapRecord rec;
		size_t used;

		r = pcapdec_next(d, p + off, n - off, &rec, &used, err);
		if (r == -EAGAIN) {
			r = errbuf_set(err, -EINVAL, "body: truncated pcap (%zu bytes missing at offset %zu)",
				       used - (n - off), off);
			goto out;
		}
		if (r < 0) {
			r = -EINVAL;
			goto out;
		}
		if (r == PCAPDEC_RECORD) {
			if (!pcap_linktype_known(rec.linktype)) {
				r = errbuf_set(err, -EINVAL, "body: record %llu: unknown link type %u",
					       (unsigned long long)packets + 1, rec.linktype);
				goto out;
			}
			if (rec.origlen < rec.caplen) {
				r = errbuf_set(err, -EINVAL, "body: record %llu: %u bytes captured of a %u-byte packet",
					       (unsigned long long)packets + 1, rec.caplen, rec.origlen);
				goto out;
			}
			packets++;
			bytes += rec.caplen;
		}
		off += used;
	}
	if (off == 0) {
		r = errbuf_set(err, -EINVAL, "body: empty; expected a pcap file");
		goto out;
	}
	*ret_packets = packets;
	*ret_bytes = bytes;
	r = 0;
out:
	pcapdec_free(d);
	return r;
}
