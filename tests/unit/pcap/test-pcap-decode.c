/* SPDX-License-Identifier: MIT */
/*
 * Decoder over hand-built byte strings: both byte orders, µs/ns magic,
 * pcapng sections, if_tsresol/if_tsoffset, SPB/PB, malformed lengths, and the
 * reader's truncated-tail report through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pcap/decode.h"
#include "pcap/reader.h"

typedef struct Buf {
	uint8_t b[4096];
	size_t n;
	bool be; /* write big-endian */
} Buf;

static void u8(Buf *b, uint8_t v)
{
	assert_true(b->n < sizeof(b->b));
	b->b[b->n++] = v;
}

static void u16(Buf *b, uint16_t v)
{
	for (int i = 0; i < 2; i++)
		u8(b, (uint8_t)(b->be ? v >> (8 * (1 - i)) : v >> (8 * i)));
}

static void u32(Buf *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		u8(b, (uint8_t)(b->be ? v >> (8 * (3 - i)) : v >> (8 * i)));
}

static void u64(Buf *b, uint64_t v)
{
	/* pcapng writes 64-bit option values in the section's byte order. */
	for (int i = 0; i < 8; i++)
		u8(b, (uint8_t)(b->be ? v >> (8 * (7 - i)) : v >> (8 * i)));
}

static void bytes(Buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void pcap_hdr(Buf *b, uint32_t magic, uint32_t snaplen, uint32_t linktype)
{
	u32(b, magic);
	u16(b, 2);
	u16(b, 4);
	u32(b, 0);
	u32(b, 0);
	u32(b, snaplen);
	u32(b, linktype);
}

static void pcap_rec(Buf *b, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t origlen, uint8_t fillv)
{
	u32(b, sec);
	u32(b, frac);
	u32(b, caplen);
	u32(b, origlen);
	for (uint32_t i = 0; i < caplen; i++)
		u8(b, fillv);
}

/* Decodes everything in b; returns the record count, stores records' fields. */
typedef struct Out {
	PcapRecord rec[16];
	unsigned n;
	int last;    /* last return code */
	size_t need; /* *ret_used of an -EAGAIN */
	ErrBuf err;
} Out;

static void decode_all(const Buf *b, Out *o)
{
	PcapDecoder *d;
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	assert_int_equal(pcapdec_new(&d), 0);
	for (;;) {
		PcapRecord r;
		size_t used = 0;
		int k = pcapdec_next(d, b->b + off, b->n - off, &r, &used, &o->err);

		o->last = k;
		if (k == -EAGAIN)
			o->need = used;
		if (k < 0)
			break;
		assert_true(used > 0);
		off += used;
		assert_int_equal(pcapdec_offset(d), off);
		if (k == PCAPDEC_RECORD) {
			assert_true(o->n < 16);
			o->rec[o->n++] = r;
		}
	}
	pcapdec_free(d);
}

static void test_classic_both_orders(void **state)
{
	(void)state;
	for (int be = 0; be < 2; be++) {
		for (int ns = 0; ns < 2; ns++) {
			Buf b = {.be = be};
			Out o;

			pcap_hdr(&b, ns ? 0xa1b23c4d : 0xa1b2c3d4, 65535, 1);
			pcap_rec(&b, 10, 20, 3, 60, 0xaa);
			pcap_rec(&b, 0xffffffffu, 999999, 0, 0, 0);
			decode_all(&b, &o);
			assert_int_equal(o.last, -EAGAIN);
			assert_int_equal(o.need, 16);
			assert_int_equal(o.n, 2);
			assert_int_equal(o.rec[0].ts_ns, 10 * NSEC_PER_SEC + 20 * (ns ? 1 : 1000));
			assert_int_equal(o.rec[0].caplen, 3);
			assert_int_equal(o.rec[0].origlen, 60);
			assert_int_equal(o.rec[0].linktype, 1);
			assert_int_equal(o.rec[0].data[2], 0xaa);
			/* Seconds are unsigned: 2106, not 1901. */
			assert_int_equal(o.rec[1].ts_ns, 0xffffffffull * NSEC_PER_SEC + 999999 * (ns ? 1 : 1000));
		}
	}
}

static void test_classic_lengths(void **state)
{
	Buf b = {0};
	Out o;

	(void)state;
	/* caplen > snaplen: cut to snaplen, whole caplen consumed (libpcap does the same). */
	pcap_hdr(&b, 0xa1b2c3d4, 4, 1);
	pcap_rec(&b, 1, 0, 10, 10, 0x11);
	pcap_rec(&b, 2, 0, 2, 10, 0x22);
	decode_all(&b, &o);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.rec[0].caplen, 4);
	assert_int_equal(o.rec[1].caplen, 2);
	assert_int_equal(o.rec[1].data[0], 0x22);

	/* caplen over the maximum snaplen is malformed, with the offset named. */
	b.n = 0;
	pcap_hdr(&b, 0xa1b2c3d4, 0, 1);
	pcap_rec(&b, 1, 0, 0, 10, 0);
	b.b[32] = (PCAP_MAX_SNAPLEN + 1) & 0xff; /* caplen, little-endian, no data behind it */
	b.b[33] = ((PCAP_MAX_SNAPLEN + 1) >> 8) & 0xff;
	b.b[34] = ((PCAP_MAX_SNAPLEN + 1) >> 16) & 0xff;
	decode_all(&b, &o);
	assert_int_equal(o.last, -EBADMSG);
	assert_non_null(strstr(o.err.msg, "offset 32"));

	/* A record cut short asks for exactly what it needs. */
	b.n = 0;
	pcap_hdr(&b, 0xa1b2c3d4, 0, 1);
	pcap_rec(&b, 1, 0, 100, 100, 0);
	b.n -= 1;
	decode_all(&b, &o);
	assert_int_equal(o.last, -EAGAIN);
	assert_int_equal(o.need, 116);

	/* Not pcap at all. */
	b.n = 0;
	bytes(&b, "Lice and fleas", 14);
	decode_all(&b, &o);
	assert_int_equal(o.last, -EPROTONOSUPPORT);

	/* Unknown version. */
	b.n = 0;
	u32(&b, 0xa1b2c3d4);
	u16(&b, 3);
	u16(&b, 0);
	for (int i = 0; i < 4; i++)
		u32(&b, 0);
	decode_all(&b, &o);
	assert_int_equal(o.last, -EBADMSG);
}

static void shb(Buf *b)
{
	u32(b, 0x0a0d0d0a);
	u32(b, 28);
	u32(b, 0x1a2b3c4d);
	u16(b, 1);
	u16(b, 0);
	u64(b, UINT64_MAX);
	u32(b, 28);
}

static void idb(Buf *b, uint16_t linktype, uint32_t snaplen, int tsresol, bool with_offset, int64_t offset)
{
	uint32_t len = 20 + (tsresol >= 0 ? 8 : 0) + (with_offset ? 12 : 0) + 4;

	u32(b, 1);
	u32(b, len);
	u16(b, linktype);
	u16(b, 0);
	u32(b, snaplen);
	if (tsresol >= 0) {
		u16(b, 9);
		u16(b, 1);
		u8(b, (uint8_t)tsresol);
		u8(b, 0);
		u8(b, 0);
		u8(b, 0);
	}
	if (with_offset) {
		u16(b, 14);
		u16(b, 8);
		u64(b, (uint64_t)offset);
	}
	u32(b, 0); /* opt_endofopt */
	u32(b, len);
}

static void epb(Buf *b, uint32_t ifid, uint64_t t, uint32_t caplen, uint32_t origlen)
{
	uint32_t pad = (4 - caplen % 4) % 4, len = 32 + caplen + pad;

	u32(b, 6);
	u32(b, len);
	u32(b, ifid);
	u32(b, (uint32_t)(t >> 32));
	u32(b, (uint32_t)t);
	u32(b, caplen);
	u32(b, origlen);
	for (uint32_t i = 0; i < caplen + pad; i++)
		u8(b, (uint8_t)i);
	u32(b, len);
}

static void test_pcapng_sections_and_resolutions(void **state)
{
	Buf b = {0};
	Out o;

	(void)state;
	shb(&b);
	idb(&b, 1, 0, -1, false, 0);      /* µs, snaplen 0 = maximum */
	idb(&b, 101, 100, 3, true, 1000); /* ms, +1000 s */
	epb(&b, 0, 1500000, 5, 5);        /* 1.5 s */
	epb(&b, 1, 2500, 3, 9);           /* 2.5 s + 1000 s */
	u32(&b, 0x0badcafe);              /* unknown block: skipped */
	u32(&b, 16);
	u32(&b, 0);
	u32(&b, 16);
	/* Second section, other byte order, interfaces numbered on. */
	b.be = true;
	shb(&b);
	idb(&b, 113, 64, 0x80 | 10, false, 0); /* 2^-10 s */
	epb(&b, 0, 1024 + 512, 64, 70);        /* 1.5 s */
	/* SPB: interface 0 of the section, no timestamp, caplen = min(origlen, snaplen, block). */
	u32(&b, 3);
	u32(&b, 24);
	u32(&b, 1000);
	u32(&b, 0x01020304);
	u32(&b, 0x05060708);
	u32(&b, 24);
	/* Obsolete Packet Block: 16-bit interface, 16-bit drops. */
	u32(&b, 2);
	u32(&b, 36);
	u16(&b, 0);
	u16(&b, 0);
	u32(&b, 0);
	u32(&b, 2048);
	u32(&b, 4);
	u32(&b, 4);
	u32(&b, 0xdeadbeef);
	u32(&b, 36);
	decode_all(&b, &o);
	assert_int_equal(o.last, -EAGAIN);
	assert_int_equal(o.n, 5);
	assert_int_equal(o.rec[0].ts_ns, 1500000000);
	assert_int_equal(o.rec[0].ifid, 0);
	assert_int_equal(o.rec[1].ts_ns, 1002500000000ull);
	assert_int_equal(o.rec[1].linktype, 101);
	assert_int_equal(o.rec[1].origlen, 9);
	assert_int_equal(o.rec[2].ts_ns, 1500000000);
	assert_int_equal(o.rec[2].ifid, 2);
	assert_int_equal(o.rec[2].linktype, 113);
	assert_int_equal(o.rec[2].caplen, 64);
	assert_int_equal(o.rec[3].ts_ns, 0);
	assert_int_equal(o.rec[3].caplen, 8);
	assert_int_equal(o.rec[3].origlen, 1000);
	assert_int_equal(o.rec[3].data[0], 0x01);
	assert_int_equal(o.rec[4].ts_ns, 2000000000);
	assert_int_equal(o.rec[4].caplen, 4);
}

static void expect_bad(Buf *b, int code, const char *what)
{
	Out o;

	decode_all(b, &o);
	assert_int_equal(o.last, code);
	assert_non_null(strstr(o.err.msg, what));
}

static void test_pcapng_malformed(void **state)
{
	Buf b = {0};

	(void)state;
	/* Packet before its IDB. */
	shb(&b);
	epb(&b, 0, 0, 4, 4);
	expect_bad(&b, -EBADMSG, "without IDB");

	/* caplen > snaplen. */
	b.n = 0;
	shb(&b);
	idb(&b, 1, 8, -1, false, 0);
	epb(&b, 0, 0, 12, 12);
	expect_bad(&b, -EBADMSG, "snaplen");

	/* Lengths: not a multiple of 4, too small, trailer differs, too large. */
	b.n = 0;
	shb(&b);
	u32(&b, 7);
	u32(&b, 14);
	expect_bad(&b, -EBADMSG, "offset 32");
	b.n = 0;
	shb(&b);
	u32(&b, 7);
	u32(&b, 8);
	expect_bad(&b, -EBADMSG, "multiple of 4");
	b.n = 0;
	shb(&b);
	u32(&b, 7);
	u32(&b, 12);
	u32(&b, 16);
	expect_bad(&b, -EBADMSG, "trailing length");
	b.n = 0;
	shb(&b);
	u32(&b, 7);
	u32(&b, PCAPDEC_MAX_ITEM + 4);
	expect_bad(&b, -EFBIG, "16 MiB");

	/* Bad byte-order magic; repeated if_tsresol; caplen beyond its block. */
	b.n = 0;
	u32(&b, 0x0a0d0d0a);
	u32(&b, 28);
	u32(&b, 0x12345678);
	expect_bad(&b, -EBADMSG, "byte-order");
	b.n = 0;
	shb(&b);
	u32(&b, 1);
	u32(&b, 36);
	u16(&b, 1);
	u16(&b, 0);
	u32(&b, 0);
	for (int i = 0; i < 2; i++) {
		u16(&b, 9);
		u16(&b, 1);
		u32(&b, 6);
	}
	u32(&b, 36);
	expect_bad(&b, -EBADMSG, "if_tsresol");
	b.n = 0;
	shb(&b);
	idb(&b, 1, 0, -1, false, 0);
	epb(&b, 0, 0, 4, 4);
	b.b[b.n - 4 - 4 - 8 + 0] = 200; /* caplen field of the EPB: 200 > 4 bytes in block */
	expect_bad(&b, -EBADMSG, "exceeds its block");
}

/* The reader over a pipe: a record cut short at the end is a truncated tail, not an error. */
static void test_reader_pipe_truncated_tail(void **state)
{
	Buf b = {0};
	PcapReader *r;
	PcapRecord rec;
	ErrBuf err;
	int fds[2];

	(void)state;
	pcap_hdr(&b, 0xa1b2c3d4, 0, 1);
	pcap_rec(&b, 1, 0, 100, 100, 0x33);
	pcap_rec(&b, 2, 0, 100, 100, 0x44);
	b.n -= 30;
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_int_equal(write(fds[1], b.b, b.n), (ssize_t)b.n);
	close(fds[1]);
	assert_int_equal(pcaprd_open_fd(fds[0], "pipe", &r, &err), 0);
	assert_false(pcaprd_stable(r));
	assert_int_equal(pcaprd_next(r, &rec, &err), 1);
	assert_int_equal(rec.data[99], 0x33);
	assert_int_equal(pcaprd_next(r, &rec, &err), 0);
	assert_int_equal(pcaprd_truncated_tail(r), 116 - 30);
	pcaprd_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classic_both_orders),
		cmocka_unit_test(test_classic_lengths),
		cmocka_unit_test(test_pcapng_sections_and_resolutions),
		cmocka_unit_test(test_pcapng_malformed),
		cmocka_unit_test(test_reader_pipe_truncated_tail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
