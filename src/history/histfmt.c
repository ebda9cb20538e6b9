/* SPDX-License-Identifier: MIT */
/*
 * Index sidecar encoding and decoding, file names, XXH64. Pure: no file, no
 * clock, no global state. The layout is in histfmt.h and docs/FORMAT.md.
 */
#include "history/histfmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcap/record.h"

static const uint8_t idx_magic[8] = {'P', 'C', 'A', 'P', 'D', 'H', 'I', 'X'};
static const uint8_t end_magic[8] = {'P', 'C', 'A', 'P', 'D', 'H', 'I', 'E'};

/* ------------------------------------------------------------ XXH64 */

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t xxh_round(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl64(acc, 31);
	return acc * P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
	acc ^= xxh_round(0, v);
	return acc * P1 + P4;
}

uint64_t histfmt_hash64(const void *data, size_t n, uint64_t seed)
{
	const uint8_t *p = data, *end = p + n;
	uint64_t h;

	if (n >= 32) {
		uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;

		do {
			v1 = xxh_round(v1, rd64(p));
			v2 = xxh_round(v2, rd64(p + 8));
			v3 = xxh_round(v3, rd64(p + 16));
			v4 = xxh_round(v4, rd64(p + 24));
			p += 32;
		} while ((size_t)(end - p) >= 32);
		h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
		h = xxh_merge(h, v1);
		h = xxh_merge(h, v2);
		h = xxh_merge(h, v3);
		h = xxh_merge(h, v4);
	} else {
		h = seed + P5;
	}
	h += (uint64_t)n;
	while ((size_t)(end - p) >= 8) {
		h ^= xxh_round(0, rd64(p));
		h = rotl64(h, 27) * P1 + P4;
		p += 8;
	}
	if ((size_t)(end - p) >= 4) {
		h ^= (uint64_t)rd32(p) * P1;
		h = rotl64(h, 23) * P2 + P3;
		p += 4;
	}
	while (p < end) {
		h ^= (uint64_t)*p * P5;
		h = rotl64(h, 11) * P1;
		p++;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

/* ------------------------------------------------------------ index */

size_t histfmt_index_size(size_t n_blocks)
{
	return HISTFMT_HDR + n_blocks * HISTFMT_ENTRY + HISTFMT_TRAILER;
}

static void encode_header(const HistIndexInfo *info, uint32_t n, uint8_t *o)
{
	memset(o, 0, HISTFMT_HDR);
	memcpy(o, idx_magic, 8);
	wr32(o + 8, HISTFMT_VERSION);
	wr32(o + 12, HISTFMT_HDR);
	wr32(o + 16, HISTFMT_ENTRY);
	wr32(o + 20, n);
	wr64(o + 24, info->seq);
	wr64(o + 32, info->data_size);
	wr32(o + 40, info->linktype);
	wr32(o + 44, info->snaplen);
	wr64(o + 48, info->packets);
	wr64(o + 56, info->bytes);
	wr64(o + 64, info->wire_bytes);
	wr64(o + 72, info->first_ts);
	wr64(o + 80, info->last_ts);
	wr64(o + 88, histfmt_hash64(o, 88, 0));
}

void histfmt_index_encode(const HistIndexInfo *info, const HistBlock *blocks, size_t n, uint8_t *out)
{
	uint8_t *e = out + HISTFMT_HDR;

	encode_header(info, (uint32_t)n, out);
	for (size_t i = 0; i < n; i++, e += HISTFMT_ENTRY) {
		const HistBlock *b = &blocks[i];

		wr64(e, b->offset);
		wr32(e + 8, b->length);
		wr32(e + 12, b->packets);
		wr64(e + 16, b->min_ts);
		wr64(e + 24, b->max_ts);
		wr32(e + 32, b->flags);
		wr32(e + 36, 0);
		memcpy(e + 40, b->summary, HISTFMT_SUMMARY);
	}
	wr64(e, histfmt_hash64(out + HISTFMT_HDR, n * HISTFMT_ENTRY, 0));
	memcpy(e + 8, end_magic, 8);
}

int histfmt_header_decode(const uint8_t *p, size_t n, HistIndexInfo *ret, ErrBuf *err)
{
	HistIndexInfo info;
	uint32_t v;

	if (n < HISTFMT_HDR)
		return errbuf_set(err, -EBADMSG, "index: %zu bytes, shorter than its %u-byte header", n, HISTFMT_HDR);
	if (memcmp(p, idx_magic, 8) != 0)
		return errbuf_set(err, -EBADMSG, "index: bad magic");
	v = rd32(p + 8);
	if (v != HISTFMT_VERSION)
		return errbuf_set(err, -EPROTONOSUPPORT, "index: version %u, only %u is known", v, HISTFMT_VERSION);
	if (rd32(p + 12) != HISTFMT_HDR)
		return errbuf_set(err, -EBADMSG, "index: header_len %u, not %u", rd32(p + 12), HISTFMT_HDR);
	if (rd32(p + 16) != HISTFMT_ENTRY)
		return errbuf_set(err, -EBADMSG, "index: entry_len %u, not %u", rd32(p + 16), HISTFMT_ENTRY);
	if (rd64(p + 88) != histfmt_hash64(p, 88, 0))
		return errbuf_set(err, -EBADMSG, "index: header_hash does not match the header");
	info.n_blocks = rd32(p + 20);
	info.seq = rd64(p + 24);
	info.data_size = rd64(p + 32);
	info.linktype = rd32(p + 40);
	info.snaplen = rd32(p + 44);
	info.packets = rd64(p + 48);
	info.bytes = rd64(p + 56);
	info.wire_bytes = rd64(p + 64);
	info.first_ts = rd64(p + 72);
	info.last_ts = rd64(p + 80);
	if (info.snaplen == 0 || info.snaplen > PCAP_MAX_SNAPLEN)
		return errbuf_set(err, -EBADMSG, "index: snaplen %u is outside 1..%u", info.snaplen, PCAP_MAX_SNAPLEN);
	if (info.data_size < HISTFMT_PCAP_HDR)
		return errbuf_set(err, -EBADMSG, "index: data_size %llu is below the pcap header's %u",
				  (unsigned long long)info.data_size, HISTFMT_PCAP_HDR);
	/* Every packet takes a record header, and the rest is captured bytes. */
	if (info.packets > (info.data_size - HISTFMT_PCAP_HDR) / HISTFMT_REC_HDR ||
	    info.bytes != info.data_size - HISTFMT_PCAP_HDR - info.packets * HISTFMT_REC_HDR)
		return errbuf_set(err, -EBADMSG, "index: packets %llu and bytes %llu do not add up to data_size %llu",
				  (unsigned long long)info.packets, (unsigned long long)info.bytes,
				  (unsigned long long)info.data_size);
	if ((info.n_blocks == 0) != (info.packets == 0) || info.n_blocks > info.packets)
		return errbuf_set(err, -EBADMSG, "index: n_blocks %u does not fit packets %llu", info.n_blocks,
				  (unsigned long long)info.packets);
	if (info.first_ts > info.last_ts || (info.packets == 0 && info.last_ts != 0))
		return errbuf_set(err, -EBADMSG, "index: first_ts %llu and last_ts %llu are not a time range",
				  (unsigned long long)info.first_ts, (unsigned long long)info.last_ts);
	*ret = info;
	return 0;
}

int histfmt_index_decode(const uint8_t *p, size_t n, HistIndexInfo *ret_info, HistBlock **ret_blocks, ErrBuf *err)
{
	HistIndexInfo info;
	HistBlock *blocks = NULL;
	const uint8_t *e;
	uint64_t at = HISTFMT_PCAP_HDR, packets = 0, first = UINT64_MAX, last = 0, need;
	int r;

	r = histfmt_header_decode(p, n, &info, err);
	if (r < 0)
		return r;
	need = (uint64_t)HISTFMT_HDR + (uint64_t)info.n_blocks * HISTFMT_ENTRY + HISTFMT_TRAILER;
	if ((uint64_t)n != need)
		return errbuf_set(err, -EBADMSG, "index: %zu bytes, but n_blocks %u needs %llu", n, info.n_blocks,
				  (unsigned long long)need);
	e = p + HISTFMT_HDR + (size_t)info.n_blocks * HISTFMT_ENTRY;
	if (memcmp(e + 8, end_magic, 8) != 0)
		return errbuf_set(err, -EBADMSG, "index: bad trailer magic");
	if (rd64(e) != histfmt_hash64(p + HISTFMT_HDR, (size_t)info.n_blocks * HISTFMT_ENTRY, 0))
		return errbuf_set(err, -EBADMSG, "index: entries_hash does not match the entries");
	if (info.n_blocks > 0) {
		blocks = malloc((size_t)info.n_blocks * sizeof(*blocks));
		if (!blocks)
			return errbuf_set(err, -ENOMEM, "index: out of memory for %u blocks", info.n_blocks);
	}
	e = p + HISTFMT_HDR;
	for (uint32_t i = 0; i < info.n_blocks; i++, e += HISTFMT_ENTRY) {
		HistBlock *b = &blocks[i];

		b->offset = rd64(e);
		b->length = rd32(e + 8);
		b->packets = rd32(e + 12);
		b->min_ts = rd64(e + 16);
		b->max_ts = rd64(e + 24);
		b->flags = rd32(e + 32);
		memcpy(b->summary, e + 40, HISTFMT_SUMMARY);
		if (b->offset != at) {
			r = errbuf_set(err, -EBADMSG, "index: block %u: offset %llu, expected %llu", i,
				       (unsigned long long)b->offset, (unsigned long long)at);
			goto fail;
		}
		if (b->packets == 0 || (uint64_t)b->packets * HISTFMT_REC_HDR > b->length ||
		    (uint64_t)b->length > (uint64_t)b->packets * (HISTFMT_REC_HDR + info.snaplen)) {
			r = errbuf_set(err, -EBADMSG, "index: block %u: length %u does not fit %u packets", i,
				       b->length, b->packets);
			goto fail;
		}
		if (b->min_ts > b->max_ts) {
			r = errbuf_set(err, -EBADMSG, "index: block %u: min_ts after max_ts", i);
			goto fail;
		}
		if ((b->flags & ~HIST_BF_ALL) != 0 || rd32(e + 36) != 0) {
			r = errbuf_set(err, -EBADMSG, "index: block %u: unknown flags 0x%x or reserved bits", i,
				       b->flags);
			goto fail;
		}
		at += b->length;
		packets += b->packets;
		if (at > info.data_size) {
			r = errbuf_set(err, -EBADMSG, "index: block %u ends past data_size %llu", i,
				       (unsigned long long)info.data_size);
			goto fail;
		}
		first = b->min_ts < first ? b->min_ts : first;
		last = b->max_ts > last ? b->max_ts : last;
	}
	if (at != info.data_size) {
		r = errbuf_set(err, -EBADMSG, "index: blocks end at %llu, data_size is %llu", (unsigned long long)at,
			       (unsigned long long)info.data_size);
		goto fail;
	}
	if (packets != info.packets) {
		r = errbuf_set(err, -EBADMSG, "index: blocks hold %llu packets, the header says %llu",
			       (unsigned long long)packets, (unsigned long long)info.packets);
		goto fail;
	}
	if (info.n_blocks > 0 && (first != info.first_ts || last != info.last_ts)) {
		r = errbuf_set(err, -EBADMSG, "index: first_ts/last_ts differ from the blocks' times");
		goto fail;
	}
	*ret_info = info;
	*ret_blocks = blocks;
	return 0;
fail:
	free(blocks);
	return r;
}

/* ------------------------------------------------------------ names */

void histfmt_name(uint64_t seq, uint64_t first_ts, uint64_t last_ts, bool index, char *out)
{
	/* Cannot truncate: 4 + 12 + 1 + 20 + 1 + 20 + 5 + 1 < HISTFMT_NAME_MAX. */
	snprintf(out, HISTFMT_NAME_MAX, "seg-%012llu-%020llu-%020llu.%s", (unsigned long long)seq,
		 (unsigned long long)first_ts, (unsigned long long)last_ts, index ? "idx" : "pcap");
}

void histfmt_open_name(uint64_t seq, char *out)
{
	snprintf(out, HISTFMT_NAME_MAX, "open-%012llu.pcap.tmp", (unsigned long long)seq);
}

/* Exactly w decimal digits at s[*i]. */
static bool fixed_digits(const char *s, size_t n, size_t *i, unsigned w, uint64_t *ret)
{
	if (*i + w > n || parse_u64(s + *i, w, 0, UINT64_MAX, ret) < 0)
		return false;
	*i += w;
	return true;
}

static bool has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

void histfmt_name_parse(const char *s, size_t n, HistName *ret)
{
	HistName nm = {.kind = HIST_FILE_OTHER};
	size_t i = 0;

	if (n >= 5 && memcmp(s, "open-", 5) == 0 && has_suffix(s, n, ".tmp")) {
		i = 5;
		nm.kind = HIST_FILE_TEMP;
		if (!fixed_digits(s, n, &i, 12, &nm.seq))
			nm.seq = 0;
		*ret = nm;
		return;
	}
	if (n < 4 || memcmp(s, "seg-", 4) != 0) {
		*ret = nm;
		return;
	}
	i = 4;
	if (!fixed_digits(s, n, &i, 12, &nm.seq) || i >= n || s[i++] != '-' ||
	    !fixed_digits(s, n, &i, 20, &nm.first_ts) || i >= n || s[i++] != '-' ||
	    !fixed_digits(s, n, &i, 20, &nm.last_ts)) {
		nm.seq = nm.first_ts = nm.last_ts = 0;
		nm.kind = has_suffix(s, n, ".tmp") ? HIST_FILE_TEMP : HIST_FILE_OTHER;
		*ret = nm;
		return;
	}
	if (n - i == 5 && memcmp(s + i, ".pcap", 5) == 0 && nm.first_ts <= nm.last_ts)
		nm.kind = HIST_FILE_DATA;
	else if (n - i == 4 && memcmp(s + i, ".idx", 4) == 0 && nm.first_ts <= nm.last_ts)
		nm.kind = HIST_FILE_INDEX;
	else if (has_suffix(s, n, ".tmp"))
		nm.kind = HIST_FILE_TEMP;
	else
		nm.kind = HIST_FILE_OTHER;
	*ret = nm;
}
