/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for src/filter. Input layout:
 *   byte 0: link type selector, byte 1: flags (bit 0 both_directions,
 *   bit 1 compile the expression field with libpcap, bit 2 inner (tunnels),
 *   bits 3-7 the snaplen in thousands),
 *   then '\n'-separated fields: src, dst, sport, dport, proto, bpf_expr,
 *   and the rest is a frame.
 * Everything the parsers accept must compile (or fail with -E2BIG), what
 * compiles must pass cbpf_check(), and must run on the frame. The whole input
 * is also tried as a raw classic program: checked, and run if it passes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter.h"
#include "pcap/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t linktypes[] = {
	LINKTYPE_ETHERNET,  LINKTYPE_RAW,        LINKTYPE_IPV4, LINKTYPE_IPV6,
	LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL,
};

static void fuzz_program(const uint8_t *data, size_t size)
{
	struct sock_filter insns[64];
	size_t n = size / sizeof(insns[0]);
	CbpfProgram p;
	CbpfPacket pkt = {.data = data, .caplen = (uint32_t)size, .wirelen = (uint32_t)size};

	if (n == 0)
		return;
	if (n > 64)
		n = 64;
	memcpy(insns, data, n * sizeof(insns[0]));
	p = (CbpfProgram){insns, (uint16_t)n};
	if (cbpf_check(&p, NULL) == 0)
		(void)cbpf_run(&p, &pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *fields[6] = {0};
	size_t lens[6] = {0};
	const uint8_t *p, *end = data + size;
	Filter f = {0};
	FilterClause c;
	CbpfProgram prog = {0};
	ErrBuf err;
	uint32_t linktype;
	uint8_t flags;
	int r;

	fuzz_program(data, size);
	if (size < 2)
		return 0;
	linktype = linktypes[data[0] % (sizeof(linktypes) / sizeof(linktypes[0]))];
	flags = data[1];
	p = data + 2;
	for (size_t i = 0; i < 6 && p < end; i++) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

		fields[i] = (const char *)p;
		lens[i] = nl ? (size_t)(nl - p) : (size_t)(end - p);
		p = nl ? nl + 1 : end;
	}
	filter_clause_init(&c);
	c.both_directions = flags & 1;
	c.inner = (flags & 4) != 0;
	if (lens[0])
		(void)filter_parse_addrs("src", fields[0], lens[0], &c.src, &err);
	if (lens[1])
		(void)filter_parse_addrs("dst", fields[1], lens[1], &c.dst, &err);
	if (lens[2])
		(void)filter_parse_ports("sport", fields[2], lens[2], &c.sport, &err);
	if (lens[3])
		(void)filter_parse_ports("dport", fields[3], lens[3], &c.dport, &err);
	if (lens[4])
		(void)filter_parse_proto("proto", fields[4], lens[4], &c.proto, &err);
	if (filter_add_clause(&f, &c, &err) < 0)
		abort();
	if ((flags & 2) && lens[5])
		(void)filter_set_expr(&f, fields[5], lens[5], &err);
	r = filter_compile(&f, linktype, 1 + (uint32_t)(flags >> 3) * 1000, &prog, &err);
	if (r == 0) {
		if (cbpf_check(&prog, NULL) < 0)
			abort();
		(void)filter_match(&prog, linktype, p, (uint32_t)(end - p), (uint32_t)(end - p));
	} else if (r != -E2BIG && !(f.bpf_expr && r == -EINVAL)) {
		abort(); /* what the parsers accepted must compile */
	}
	cbpf_program_free(&prog);
	filter_done(&f);
	return 0;
}
