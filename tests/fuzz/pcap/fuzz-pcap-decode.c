/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the pure pcap/pcapng decoder. The input is offered in spans
 * of pseudo-random size (derived from the input, so runs are reproducible),
 * the way a pipe reader offers it, and grown when the decoder asks for more:
 * that drives the -EAGAIN paths as well as the block and record parsers. The
 * decoder's contract is checked on every call.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "pcap/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PcapDecoder *d;
	size_t off = 0, window;
	uint32_t seed = 2166136261u;

	for (size_t i = 0; i < size && i < 64; i++)
		seed = (seed ^ data[i]) * 16777619u;
	if (pcapdec_new(&d) < 0)
		return 0;
	window = 1 + seed % 97;
	for (;;) {
		PcapRecord rec;
		ErrBuf err;
		size_t n = size - off < window ? size - off : window, used = 0;
		int k = pcapdec_next(d, data + off, n, &rec, &used, &err);

		if (k == -EAGAIN) {
			if (used <= n)
				abort(); /* must ask for more than it was given */
			if (n == size - off)
				break; /* truncated tail */
			window = used + seed % 61;
			seed = seed * 1103515245u + 12345u;
			continue;
		}
		if (k < 0)
			break;
		if (used == 0 || used > n)
			abort();
		if (k == PCAPDEC_RECORD && (rec.caplen > PCAP_MAX_SNAPLEN || rec.data < data + off ||
					    rec.data + rec.caplen > data + off + used))
			abort();
		if (pcapdec_offset(d) != off + used)
			abort();
		off += used;
		seed = seed * 1103515245u + 12345u;
		window = 1 + seed % 4096;
	}
	pcapdec_free(d);
	return 0;
}
