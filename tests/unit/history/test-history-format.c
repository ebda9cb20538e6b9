/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of the history store: XXH64, the index sidecar (round trip,
 * every corruption refused), file names, segment records and index rebuilds,
 * and block summaries, whose one rule (never "cannot match" when the filter
 * program matches) is checked against filter_match() on generated frames of
 * every link type, with VLAN tags, IPv6 extension headers, fragments and
 * truncation, under generated filters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filter/filter.h"
#include "history/histfmt.h"
#include "history/histseg.h"
#include "history/histsum.h"
#include "pcap/record.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

/* ------------------------------------------------------------ XXH64 */

static void test_xxh64(void **state)
{
	static const char spam[] = "Nobody inspects the spammish repetition";

	(void)state;
	/* Reference values of the xxHash project and its Python binding. */
	assert_int_equal(histfmt_hash64("", 0, 0), 0xEF46DB3751D8E999ull);
	assert_int_equal(histfmt_hash64("a", 1, 0), 0xD24EC4F1A98C6E5Bull);
	assert_int_equal(histfmt_hash64("abc", 3, 0), 0x44BC2CF5AD770999ull);
	assert_int_equal(histfmt_hash64("xxhash", 6, 0), 0x32DD38952C4BC720ull);
	assert_int_equal(histfmt_hash64(spam, sizeof(spam) - 1, 0), 0xFBCEA83C8A378BF1ull);
}

/* ------------------------------------------------------------ index */

static void random_blocks(HistIndexInfo *info, HistBlock *b, size_t n)
{
	uint64_t at = HISTFMT_PCAP_HDR, ts = 1700000000000000000ull;

	*info = (HistIndexInfo){.seq = 42, .linktype = LINKTYPE_ETHERNET, .snaplen = 160, .first_ts = UINT64_MAX};
	for (size_t i = 0; i < n; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].offset = at;
		b[i].packets = 1 + rnd_below(256);
		b[i].length = b[i].packets * HISTFMT_REC_HDR + rnd_below(b[i].packets * 160 + 1);
		b[i].min_ts = ts + rnd_below(1000);
		b[i].max_ts = b[i].min_ts + rnd_below(1000000);
		b[i].flags = (uint32_t)rnd() & HIST_BF_ALL;
		for (size_t k = 0; k < HISTFMT_SUMMARY; k++)
			b[i].summary[k] = (uint8_t)rnd();
		ts += 500000;
		at += b[i].length;
		info->packets += b[i].packets;
		info->bytes += b[i].length - (uint64_t)b[i].packets * HISTFMT_REC_HDR;
		info->wire_bytes += b[i].length * 2;
		info->first_ts = b[i].min_ts < info->first_ts ? b[i].min_ts : info->first_ts;
		info->last_ts = b[i].max_ts > info->last_ts ? b[i].max_ts : info->last_ts;
	}
	if (n == 0)
		info->first_ts = 0;
	info->data_size = at;
	info->n_blocks = (uint32_t)n;
}

static uint8_t *encode(const HistIndexInfo *info, const HistBlock *b, size_t n, size_t *ret_len)
{
	size_t len = histfmt_index_size(n);
	uint8_t *p = malloc(len);

	assert_non_null(p);
	histfmt_index_encode(info, b, n, p);
	*ret_len = len;
	return p;
}

static void test_index_roundtrip(void **state)
{
	(void)state;
	for (size_t n = 0; n < 40; n += 13) {
		HistBlock in[40], *out = NULL;
		HistIndexInfo info, got;
		ErrBuf err = {{0}};
		size_t len;
		uint8_t *p;

		random_blocks(&info, in, n);
		p = encode(&info, in, n, &len);
		assert_int_equal(len, HISTFMT_HDR + n * HISTFMT_ENTRY + HISTFMT_TRAILER);
		if (histfmt_index_decode(p, len, &got, &out, &err) < 0)
			fail_msg("decode: %s", err.msg);
		assert_int_equal(got.seq, info.seq);
		assert_int_equal(got.data_size, info.data_size);
		assert_int_equal(got.linktype, info.linktype);
		assert_int_equal(got.snaplen, info.snaplen);
		assert_int_equal(got.packets, info.packets);
		assert_int_equal(got.bytes, info.bytes);
		assert_int_equal(got.wire_bytes, info.wire_bytes);
		assert_int_equal(got.first_ts, info.first_ts);
		assert_int_equal(got.last_ts, info.last_ts);
		assert_int_equal(got.n_blocks, info.n_blocks);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(out[i].offset, in[i].offset);
			assert_int_equal(out[i].length, in[i].length);
			assert_int_equal(out[i].packets, in[i].packets);
			assert_int_equal(out[i].min_ts, in[i].min_ts);
			assert_int_equal(out[i].max_ts, in[i].max_ts);
			assert_int_equal(out[i].flags, in[i].flags);
			assert_memory_equal(out[i].summary, in[i].summary, HISTFMT_SUMMARY);
		}
		assert_int_equal(histfmt_header_decode(p, len, &got, &err), 0);
		free(out);
		free(p);
	}
}

/* Every flipped bit and every truncation is refused, with a message. */
static void test_index_corruption(void **state)
{
	HistBlock in[3], *out = NULL;
	HistIndexInfo info, got;
	ErrBuf err;
	size_t len;
	uint8_t *p;

	(void)state;
	random_blocks(&info, in, 3);
	p = encode(&info, in, 3, &len);
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			p[i] ^= (uint8_t)(1u << bit);
			err.msg[0] = '\0';
			if (histfmt_index_decode(p, len, &got, &out, &err) == 0)
				fail_msg("byte %zu bit %u flipped: accepted", i, bit);
			assert_true(strncmp(err.msg, "index: ", 7) == 0);
			p[i] ^= (uint8_t)(1u << bit);
		}
	}
	for (size_t n = 0; n < len; n++)
		assert_true(histfmt_index_decode(p, n, &got, &out, &err) < 0);
	free(p);
}

/* Fields that pass the hashes but lie: each refused, naming the field. */
static void test_index_semantics(void **state)
{
	static const struct {
		const char *why, *field;
	} cases[] = {
		{"gap between blocks", "offset"},
		{"block past data_size", "data_size"},
		{"packets do not add up", "packets"},
		{"min after max", "min_ts"},
		{"unknown flags", "flags"},
		{"length too small", "length"},
		{"snaplen 0", "snaplen"},
		{"header times wrong", "first_ts"},
		{"version 2", "version"},
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		HistBlock in[3], *out = NULL;
		HistIndexInfo info, got;
		ErrBuf err = {{0}};
		size_t len;
		uint8_t *p;
		int r;

		random_blocks(&info, in, 3);
		switch (c) {
		case 0:
			in[1].offset += 1;
			break;
		case 1:
			info.data_size -= 1;
			break;
		case 2:
			info.packets += 1;
			info.bytes -= HISTFMT_REC_HDR;
			break;
		case 3:
			in[2].min_ts = in[2].max_ts + 1;
			break;
		case 4:
			in[0].flags = 0x100;
			break;
		case 5: {
			uint32_t delta = in[0].length - (in[0].packets * HISTFMT_REC_HDR - 1);

			in[0].length -= delta;
			for (size_t i = 1; i < 3; i++)
				in[i].offset -= delta;
			info.data_size -= delta;
			info.bytes -= delta;
			break;
		}
		case 6:
			info.snaplen = 0;
			break;
		case 7:
			info.first_ts -= 1;
			break;
		default:
			break;
		}
		p = encode(&info, in, 3, &len);
		if (c == 8) {
			p[8] = 2; /* and a header hash that matches it */
			uint64_t h = histfmt_hash64(p, 88, 0);

			for (int i = 0; i < 8; i++)
				p[88 + i] = (uint8_t)(h >> (8 * i));
		}
		r = histfmt_index_decode(p, len, &got, &out, &err);
		print_message("# %s: %d %s\n", cases[c].why, r, err.msg);
		assert_true(r < 0);
		if (!strstr(err.msg, cases[c].field))
			fail_msg("%s: message '%s' does not name %s", cases[c].why, err.msg, cases[c].field);
		free(p);
	}
}

static void test_names(void **state)
{
	static const struct {
		const char *s;
		HistFileKind kind;
	} cases[] = {
		{"seg-000000000007-01700000000000000000-01700000060000000000.pcap", HIST_FILE_DATA},
		{"seg-000000000007-01700000000000000000-01700000060000000000.idx", HIST_FILE_INDEX},
		{"seg-000000000007-01700000000000000000-01700000060000000000.idx.tmp", HIST_FILE_TEMP},
		{"open-000000000008.pcap.tmp", HIST_FILE_TEMP},
		{"seg-00000000007-01700000000000000000-01700000060000000000.pcap", HIST_FILE_OTHER},
		{"seg-000000000007-01700000060000000000-01700000000000000000.pcap", HIST_FILE_OTHER},
		{"seg-000000000007-0170000000000000000x-01700000060000000000.pcap", HIST_FILE_OTHER},
		{"seg-000000000007-01700000000000000000-01700000060000000000.pcapx", HIST_FILE_OTHER},
		{"seg-000000000007-99999999999999999999-99999999999999999999.pcap", HIST_FILE_OTHER},
		{"notes.txt", HIST_FILE_OTHER},
		{".lock", HIST_FILE_OTHER},
		{"seg-", HIST_FILE_OTHER},
		{"", HIST_FILE_OTHER},
	};
	char name[HISTFMT_NAME_MAX];
	HistName hn;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		histfmt_name_parse(cases[i].s, strlen(cases[i].s), &hn);
		if (hn.kind != cases[i].kind)
			fail_msg("%s: kind %d, want %d", cases[i].s, hn.kind, cases[i].kind);
	}
	histfmt_name(123, 5, UINT64_MAX, false, name);
	histfmt_name_parse(name, strlen(name), &hn);
	assert_int_equal(hn.kind, HIST_FILE_DATA);
	assert_int_equal(hn.seq, 123);
	assert_int_equal(hn.first_ts, 5);
	assert_int_equal(hn.last_ts, UINT64_MAX);
	histfmt_name(999999999999ull, 0, 0, true, name);
	histfmt_name_parse(name, strlen(name), &hn);
	assert_int_equal(hn.kind, HIST_FILE_INDEX);
	assert_int_equal(hn.seq, 999999999999ull);
	histfmt_open_name(77, name);
	histfmt_name_parse(name, strlen(name), &hn);
	assert_int_equal(hn.kind, HIST_FILE_TEMP);
	assert_int_equal(hn.seq, 77);
}

/* ------------------------------------------------------------ segment data */

static size_t put_record(uint8_t *p, uint64_t ts, const uint8_t *data, uint32_t caplen, uint32_t origlen)
{
	histseg_record_header(ts, caplen, origlen, p);
	memcpy(p + HISTFMT_REC_HDR, data, caplen);
	return HISTFMT_REC_HDR + caplen;
}

static void test_segment_build(void **state)
{
	uint8_t file[64 * 1024], frame[160];
	HistIndexInfo info;
	HistBlock *b = NULL;
	ErrBuf err = {{0}};
	uint64_t valid;
	size_t n = HISTFMT_PCAP_HDR, ends[100];

	(void)state;
	memset(frame, 0xab, sizeof(frame));
	histseg_header_encode(LINKTYPE_ETHERNET, 160, file);
	for (unsigned i = 0; i < 100; i++) {
		n += put_record(file + n, 1000 + (i * 7919) % 100, frame, 20 + i, 200);
		ends[i] = n;
	}
	assert_int_equal(histseg_index_build(file, n, 9, 16, 65536, &info, &b, &valid, &err), 0);
	assert_int_equal(valid, n);
	assert_int_equal(info.packets, 100);
	assert_int_equal(info.n_blocks, 7); /* 16 per block */
	assert_int_equal(info.first_ts, 1000);
	assert_int_equal(info.last_ts, 1099);
	assert_int_equal(info.wire_bytes, 100 * 200);
	assert_int_equal(info.data_size, n);
	for (unsigned i = 0; i < info.n_blocks; i++)
		assert_int_equal(b[i].packets, i < 6 ? 16 : 4);
	free(b);
	/* By bytes: 2000-byte blocks. */
	assert_int_equal(histseg_index_build(file, n, 9, 256, 2000, &info, &b, &valid, &err), 0);
	for (unsigned i = 0; i < info.n_blocks; i++)
		assert_true(b[i].length <= 2000);
	free(b);
	/* A record cut short ends the file before it. */
	for (size_t cut = 1; cut < 40; cut += 7) {
		assert_int_equal(histseg_index_build(file, ends[99] - cut, 9, 16, 65536, &info, &b, &valid, &err), 0);
		assert_int_equal(valid, ends[98]);
		assert_int_equal(info.packets, 99);
		free(b);
	}
	/* caplen over snaplen: malformed from there on. */
	histseg_record_header(5, 161, 161, file + ends[49]);
	assert_int_equal(histseg_index_build(file, n, 9, 16, 65536, &info, &b, &valid, &err), 0);
	assert_int_equal(info.packets, 50);
	free(b);
	/* Not a segment header. */
	file[0] ^= 1;
	assert_int_equal(histseg_index_build(file, n, 9, 16, 65536, &info, &b, &valid, &err), -EBADMSG);
	print_message("# %s\n", err.msg);
}

/* ------------------------------------------------------------ frames */

typedef struct Gen {
	uint8_t b[400];
	uint32_t n;
} Gen;

static void g8(Gen *g, uint8_t v)
{
	if (g->n < sizeof(g->b))
		g->b[g->n++] = v;
}

static void g16(Gen *g, uint16_t v)
{
	g8(g, (uint8_t)(v >> 8));
	g8(g, (uint8_t)v);
}

static void gbytes(Gen *g, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g8(g, p[i]);
}

/* Small pools, so that filters built from the same pools match often. */
static const char *const v4_pool[] = {"192.0.2.1", "192.0.2.77", "198.51.100.5", "10.1.2.3", "10.200.0.1"};
static const char *const v6_pool[] = {"2001:db8::1", "2001:db8:0:1::5", "2001:db8:ffff::9", "fe80::1"};
static const uint16_t port_pool[] = {53, 80, 443, 1000, 1024, 5000, 65535, 8};
static const uint8_t proto_pool[] = {6, 17, 132, 1, 58, 0, 43, 44, 60, 51, 47, 255};

static void pool_addr(int fam, uint8_t *out)
{
	if (fam == 4)
		inet_pton(AF_INET, v4_pool[rnd_below(5)], out);
	else
		inet_pton(AF_INET6, v6_pool[rnd_below(4)], out);
}

/* The IP part: IPv4 or IPv6 with whatever the generator likes. */
static void gen_ip(Gen *g, int fam)
{
	uint8_t a[16], b[16];
	uint8_t proto = proto_pool[rnd_below(sizeof(proto_pool))];

	pool_addr(fam, a);
	pool_addr(fam, b);
	if (fam == 4) {
		unsigned ihl = rnd_below(8) == 0 ? rnd_below(16) : 5 + rnd_below(2);
		uint16_t frag = rnd_below(4) == 0 ? (uint16_t)rnd() : 0;

		g8(g, (uint8_t)(0x40 | ihl));
		g8(g, 0);
		g16(g, 100);
		g16(g, 1);
		g16(g, frag);
		g8(g, 64);
		g8(g, proto);
		g16(g, 0);
		gbytes(g, a, 4);
		gbytes(g, b, 4);
		for (unsigned i = 20; i < ihl * 4; i++)
			g8(g, 1);
	} else {
		unsigned exts = rnd_below(3) == 0 ? rnd_below(9) : 0;
		uint8_t first = exts ? proto_pool[5 + rnd_below(5)] : proto;

		gbytes(g, (const uint8_t *)"\x60\0\0\0\0\x40", 6);
		g8(g, first);
		g8(g, 64);
		gbytes(g, a, 16);
		gbytes(g, b, 16);
		for (unsigned i = 0; i < exts; i++) {
			uint8_t nh = i + 1 < exts ? proto_pool[5 + rnd_below(5)] : proto;
			uint8_t len = (uint8_t)rnd_below(3);

			g8(g, nh);
			g8(g, len);
			g16(g, rnd_below(3) == 0 ? (uint16_t)rnd() : 1);
			for (unsigned k = 4; k < 8u + len * 8u; k++)
				g8(g, 0);
		}
	}
	g16(g, port_pool[rnd_below(sizeof(port_pool) / 2)]);
	g16(g, port_pool[rnd_below(sizeof(port_pool) / 2)]);
	for (unsigned i = 0; i < 16; i++)
		g8(g, (uint8_t)rnd());
}

static const uint32_t linktypes[] = {LINKTYPE_ETHERNET,  LINKTYPE_ETHERNET,   LINKTYPE_RAW,
				     LINKTYPE_IPV4,      LINKTYPE_IPV6,       LINKTYPE_NULL,
				     LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, 147 /* user 0: unknown */};

static uint32_t gen_frame(Gen *g)
{
	static const uint16_t tpids[] = {0x8100, 0x88a8, 0x9100, 0x0800};
	uint32_t lt = linktypes[rnd_below(sizeof(linktypes) / sizeof(linktypes[0]))];
	int fam = rnd_below(10) == 0 ? 0 : rnd_below(2) ? 4 : 6;
	uint16_t type = fam == 4 ? 0x0800 : fam == 6 ? 0x86dd : 0x0806;
	unsigned tags = rnd_below(3) == 0 ? rnd_below(4) : 0;

	g->n = 0;
	switch (lt) {
	case LINKTYPE_ETHERNET:
	case LINKTYPE_LINUX_SLL:
	case LINKTYPE_LINUX_SLL2:
		if (lt == LINKTYPE_ETHERNET)
			gbytes(g, (const uint8_t *)"\2\0\0\0\0\2\2\0\0\0\0\1", 12);
		else if (lt == LINKTYPE_LINUX_SLL)
			gbytes(g, (const uint8_t *)"\0\0\0\1\0\6\2\0\0\0\0\1\0\0", 14);
		for (unsigned i = 0; i < tags; i++) {
			g16(g, tpids[rnd_below(4)]);
			g16(g, 100);
		}
		g16(g, type);
		if (lt == LINKTYPE_LINUX_SLL2)
			gbytes(g, (const uint8_t *)"\0\0\0\0\0\0\0\1\0\1\0\6\2\0\0\0\0\1", 18 - 4 * tags);
		break;
	case LINKTYPE_NULL:
		g8(g, fam == 6 ? 10 : 2);
		g8(g, 0);
		g8(g, 0);
		g8(g, 0);
		break;
	default:
		break;
	}
	if (lt == LINKTYPE_IPV4)
		fam = 4;
	if (lt == LINKTYPE_IPV6)
		fam = 6;
	if (fam)
		gen_ip(g, fam);
	else
		for (unsigned i = 0; i < 40; i++)
			g8(g, (uint8_t)rnd());
	if (rnd_below(4) == 0)
		g->n = rnd_below(g->n + 1); /* truncated capture */
	if (rnd_below(20) == 0 && g->n > 0)
		g->b[rnd_below(g->n)] = (uint8_t)rnd(); /* and some noise */
	return lt;
}

static void add_random_addrs(AddrSet *set)
{
	static const char *const forms[] = {
		"192.0.2.1",         "192.0.2.0/24",          "192.0.0.0/16",  "10.0.0.0/8",
		"10.1.2.0-10.1.2.9", "198.51.100.5",          "0.0.0.0/0",     "2001:db8::1",
		"2001:db8::/64",     "2001:db8::/32",         "2001:db8::/48", "2001:db8:ffff::/48",
		"fe80::1-fe80::ff",  "10.200.0.1;192.0.2.77", "192.0.2.64/26", "192.0.2.1-192.0.3.200",
	};
	const char *s = forms[rnd_below(sizeof(forms) / sizeof(forms[0]))];
	ErrBuf err;

	assert_int_equal(filter_parse_addrs("x", s, strlen(s), set, &err), 0);
}

static void add_random_ports(PortSet *set)
{
	static const char *const forms[] = {"53",      "80",    "443", "1000-1030", "1-1023",
					    "5000;53", "65535", "8",   "0-65535"};
	const char *s = forms[rnd_below(sizeof(forms) / sizeof(forms[0]))];
	ErrBuf err;

	assert_int_equal(filter_parse_ports("x", s, strlen(s), set, &err), 0);
}

static void random_filter(Filter *f)
{
	unsigned n = 1 + rnd_below(3);
	ErrBuf err;

	for (unsigned i = 0; i < n; i++) {
		FilterClause c;

		filter_clause_init(&c);
		if (rnd_below(2))
			add_random_addrs(&c.src);
		if (rnd_below(2))
			add_random_addrs(&c.dst);
		if (rnd_below(3) == 0)
			add_random_ports(&c.sport);
		if (rnd_below(2))
			add_random_ports(&c.dport);
		if (rnd_below(2))
			c.proto = proto_pool[rnd_below(sizeof(proto_pool))];
		c.both_directions = rnd_below(3) == 0;
		assert_int_equal(filter_add_clause(f, &c, &err), 0);
	}
}

/* The rule, on ~100000 frame and filter pairs. */
static void test_summary_sound(void **state)
{
	unsigned matched = 0, skipped = 0;

	(void)state;
	for (unsigned round = 0; round < 400; round++) {
		Filter f = {0};
		HistProbe probe;
		CbpfProgram progs[sizeof(linktypes) / sizeof(linktypes[0])] = {{0}};
		ErrBuf err = {{0}};

		random_filter(&f);
		assert_int_equal(histsum_probe_new(&f, &probe), 0);
		for (size_t k = 0; k < sizeof(linktypes) / sizeof(linktypes[0]); k++)
			if (filter_compile(&f, linktypes[k], 65535, &progs[k], &err) < 0)
				progs[k].len = 0;
		for (unsigned i = 0; i < 250; i++) {
			Gen g;
			uint32_t lt = gen_frame(&g), flags = 0;
			uint8_t sum[HISTFMT_SUMMARY] = {0};
			HistTuple t;
			size_t k = 0;

			while (linktypes[k] != lt)
				k++;
			histsum_tuple(lt, g.b, g.n, &t);
			histsum_add(sum, &flags, &t);
			if (progs[k].len == 0)
				continue; /* a link type the compiler refuses: queries skip it */
			if (filter_match(&progs[k], lt, g.b, g.n, g.n) != 0) {
				matched++;
				if (!histsum_may_match(&probe, flags, sum)) {
					print_message("# link type %u, %u bytes, round %u frame %u:\n#", lt, g.n, round,
						      i);
					for (uint32_t x = 0; x < g.n; x++)
						print_message(" %02x", g.b[x]);
					print_message("\n");
					fail_msg("a summary rules out a packet the filter matches");
				}
			} else if (!histsum_may_match(&probe, flags, sum)) {
				skipped++;
			}
		}
		for (size_t k = 0; k < sizeof(linktypes) / sizeof(linktypes[0]); k++)
			cbpf_program_free(&progs[k]);
		histsum_probe_done(&probe);
		filter_done(&f);
	}
	print_message("# %u matches, all kept; %u non-matches ruled out by the summary\n", matched, skipped);
	assert_true(matched > 1000);
	assert_true(skipped > 10000);
}

/* A block of packets between two hosts: what each filter may skip. */
static void test_summary_skips(void **state)
{
	static const struct {
		const char *src, *dst, *sport, *dport, *proto;
		bool both, may;
	} cases[] = {
		{NULL, "198.51.100.7", NULL, NULL, NULL, false, true},
		{NULL, "198.51.100.8", NULL, NULL, NULL, false, false},
		{NULL, "198.51.100.0/24", NULL, NULL, NULL, false, true},
		{NULL, "198.51.0.0/16", NULL, NULL, NULL, false, true},
		{NULL, "198.52.0.0/16", NULL, NULL, NULL, false, false},
		{NULL, "198.51.100.1-198.51.100.6", NULL, NULL, NULL, false, true}, /* tested at /24 */
		{NULL, "10.0.0.0/8", NULL, NULL, NULL, false, true},                /* too wide: families */
		{NULL, "2001:db8::/32", NULL, NULL, NULL, false, false},            /* no IPv6 here */
		{"198.51.100.7", NULL, NULL, NULL, NULL, false, false},
		{"198.51.100.7", NULL, NULL, NULL, NULL, true, true},
		{NULL, NULL, NULL, "53", NULL, false, true},
		{NULL, NULL, NULL, "54", NULL, false, false},
		{NULL, NULL, "53", NULL, NULL, false, false},
		{NULL, NULL, "53", NULL, NULL, true, true},
		{NULL, NULL, NULL, "1-1023", NULL, false, true},
		{NULL, NULL, NULL, "2000-3000", NULL, false, false},
		{NULL, NULL, NULL, NULL, "udp", false, true},
		{NULL, NULL, NULL, NULL, "tcp", false, false},
		{"192.0.2.1", "198.51.100.7", "40000", "53", "udp", false, true},
		{"192.0.2.1", "198.51.100.7", "40000", "54", "udp", false, false},
	};
	uint8_t sum[HISTFMT_SUMMARY] = {0};
	uint32_t flags = 0;

	(void)state;
	/* 192.0.2.1:40000 -> 198.51.100.7:53, UDP, Ethernet */
	{
		Gen g = {{0}};
		HistTuple t;

		gbytes(&g, (const uint8_t *)"\2\0\0\0\0\2\2\0\0\0\0\1\x08\x00", 14);
		gbytes(&g, (const uint8_t *)"\x45\0\0\x30\0\1\0\0\x40\x11\0\0\xc0\0\2\1\xc6\x33\x64\7", 20);
		g16(&g, 40000);
		g16(&g, 53);
		g16(&g, 8);
		g16(&g, 0);
		histsum_tuple(LINKTYPE_ETHERNET, g.b, g.n, &t);
		assert_true(t.sure);
		assert_int_equal(t.fam, 4);
		assert_int_equal(t.proto, 17);
		assert_true(t.has_ports);
		histsum_add(sum, &flags, &t);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Filter f = {0};
		FilterClause c;
		HistProbe p;
		ErrBuf err;

		filter_clause_init(&c);
		if (cases[i].src)
			assert_int_equal(filter_parse_addrs("s", cases[i].src, strlen(cases[i].src), &c.src, &err), 0);
		if (cases[i].dst)
			assert_int_equal(filter_parse_addrs("d", cases[i].dst, strlen(cases[i].dst), &c.dst, &err), 0);
		if (cases[i].sport)
			assert_int_equal(
				filter_parse_ports("s", cases[i].sport, strlen(cases[i].sport), &c.sport, &err), 0);
		if (cases[i].dport)
			assert_int_equal(
				filter_parse_ports("d", cases[i].dport, strlen(cases[i].dport), &c.dport, &err), 0);
		if (cases[i].proto)
			assert_int_equal(
				filter_parse_proto("p", cases[i].proto, strlen(cases[i].proto), &c.proto, &err), 0);
		c.both_directions = cases[i].both;
		assert_int_equal(filter_add_clause(&f, &c, &err), 0);
		assert_int_equal(histsum_probe_new(&f, &p), 0);
		if (histsum_may_match(&p, flags, sum) != cases[i].may)
			fail_msg("case %zu: may_match %d, want %d", i, !cases[i].may, cases[i].may);
		/* An unsure block is never skipped. */
		assert_true(histsum_may_match(&p, flags | HIST_BF_UNSURE, sum));
		histsum_probe_done(&p);
		filter_done(&f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xxh64),
		cmocka_unit_test(test_index_roundtrip),
		cmocka_unit_test(test_index_corruption),
		cmocka_unit_test(test_index_semantics),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_segment_build),
		cmocka_unit_test(test_summary_sound),
		cmocka_unit_test(test_summary_skips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
