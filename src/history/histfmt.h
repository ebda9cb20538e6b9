/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/history: the on-disk formats of the history store, as pure
 * functions over byte spans (docs/STYLE.md, habit 5): file names, the index sidecar
 * (encode and decode) and the 64-bit hash both use. docs/FORMAT.md is the
 * prose version of this file; a change here is a change there.
 *
 * Index sidecar, little-endian, version 1:
 *
 *   header (96 bytes)
 *     0  magic "PCAPDHIX"        8
 *     8  version = 1             u32
 *    12  header_len = 96         u32
 *    16  entry_len = 408         u32
 *    20  n_blocks                u32
 *    24  seq                     u64   segment sequence number (also in the name)
 *    32  data_size               u64   bytes of the pcap file the index describes
 *    40  linktype                u32   of the pcap file
 *    44  snaplen                 u32   of the pcap file
 *    48  packets                 u64
 *    56  bytes                   u64   sum of captured lengths
 *    64  wire_bytes              u64   sum of original lengths
 *    72  first_ts                u64   smallest packet timestamp, ns since the epoch
 *    80  last_ts                 u64   largest
 *    88  header_hash             u64   XXH64(bytes 0..88, seed 0)
 *   n_blocks entries (408 bytes each)
 *     0  offset                  u64   file offset of the block's first record
 *     8  length                  u32   bytes of its records (headers included)
 *    12  packets                 u32
 *    16  min_ts, max_ts          u64, u64
 *    32  flags                   u32   HIST_BF_*
 *    36  reserved = 0            u32
 *    40  summary                 368   see histsum.h
 *   trailer (16 bytes)
 *     0  entries_hash            u64   XXH64(all entries, seed 0)
 *     8  magic "PCAPDHIE"        8
 *
 * The decoder trusts nothing: every field is checked (lengths, hashes, blocks
 * contiguous from byte 24 to data_size, counts and sums against the header)
 * and a failure names the field and the entry.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define HISTFMT_VERSION 1u
#define HISTFMT_HDR 96u
#define HISTFMT_ENTRY 408u
#define HISTFMT_TRAILER 16u
#define HISTFMT_SUMMARY 368u
#define HISTFMT_PCAP_HDR 24u /* classic pcap file header */
#define HISTFMT_REC_HDR 16u  /* classic pcap record header */
/* No index may be larger (2.6 M blocks, far beyond any segment size pcapd
 * writes): bounds what a reader allocates for an untrusted file. */
#define HISTFMT_MAX_INDEX (1024u * 1024 * 1024)

/* Block flags. */
#define HIST_BF_V4 0x1u     /* holds an IPv4 packet */
#define HIST_BF_V6 0x2u     /* holds an IPv6 packet */
#define HIST_BF_PORTS 0x4u  /* holds a packet with TCP/UDP/SCTP ports */
#define HIST_BF_UNSURE 0x8u /* a packet's headers could not be read for certain: never skip */
#define HIST_BF_ALL 0xfu

/* One block of consecutive records, as the index and the store hold it. */
typedef struct HistBlock {
	uint64_t offset;                  /* of the first record in the data file */
	uint32_t length;                  /* bytes of records */
	uint32_t packets;                 /* >= 1 */
	uint64_t min_ts, max_ts;          /* ns since the epoch */
	uint32_t flags;                   /* HIST_BF_* */
	uint8_t summary[HISTFMT_SUMMARY]; /* histsum.h layout */
} HistBlock;

/* What the header says about the segment. */
typedef struct HistIndexInfo {
	uint64_t seq;
	uint64_t data_size;
	uint32_t linktype, snaplen;
	uint64_t packets, bytes, wire_bytes;
	uint64_t first_ts, last_ts; /* 0, 0 when there are no packets */
	uint32_t n_blocks;
} HistIndexInfo;

/* XXH64 (xxHash, 64-bit) of p[0..n) with seed. */
uint64_t histfmt_hash64(const void *p, size_t n, uint64_t seed);

/* Bytes an index of n blocks takes. */
size_t histfmt_index_size(size_t n_blocks);
/* Writes the index into out[0..histfmt_index_size(n)): info (its n_blocks is
 * taken from n) and the blocks in file order. Pure; cannot fail. */
void histfmt_index_encode(const HistIndexInfo *info, const HistBlock *blocks, size_t n, uint8_t *out);
/* Decodes only the header (bytes 0..96) of an index, checking its own hash and
 * fields. Enough for statistics. -EBADMSG/-EPROTONOSUPPORT with err. */
int histfmt_header_decode(const uint8_t *p, size_t n, HistIndexInfo *ret, ErrBuf *err);
/* Decodes and checks a whole index. *ret_blocks is malloc()ed (NULL when there
 * are no blocks). -EBADMSG (malformed: err names the field), -EPROTONOSUPPORT
 * (another version), -ENOMEM. */
int histfmt_index_decode(const uint8_t *p, size_t n, HistIndexInfo *ret_info, HistBlock **ret_blocks, ErrBuf *err);

/* ------------------------------------------------------------ file names */

#define HISTFMT_NAME_MAX 80u

typedef enum HistFileKind {
	HIST_FILE_OTHER, /* not ours: never touched */
	HIST_FILE_DATA,  /* seg-<seq>-<first>-<last>.pcap */
	HIST_FILE_INDEX, /* seg-<seq>-<first>-<last>.idx */
	HIST_FILE_TEMP,  /* seg-*.tmp, open-*.tmp: never published */
} HistFileKind;

typedef struct HistName {
	HistFileKind kind;
	uint64_t seq;               /* DATA, INDEX, and TEMP names that carry one */
	uint64_t first_ts, last_ts; /* DATA and INDEX */
} HistName;

/* "seg-%012llu-%020llu-%020llu.pcap" / ".idx": seq, first and last timestamp
 * (ns). out has HISTFMT_NAME_MAX bytes. */
void histfmt_name(uint64_t seq, uint64_t first_ts, uint64_t last_ts, bool index, char *out);
/* "open-%012llu.pcap.tmp": the open segment's data file. */
void histfmt_open_name(uint64_t seq, char *out);
/* Classifies a directory entry name. Pure; never fails (unknown = OTHER). */
void histfmt_name_parse(const char *s, size_t n, HistName *ret);
