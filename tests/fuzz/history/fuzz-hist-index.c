/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the history store's decoders of untrusted files, all pure:
 *  - the input as an index sidecar: histfmt_index_decode() and the header
 *    decoder must agree, and an accepted index must encode back to exactly
 *    the input (the format has one encoding: every field is checked);
 *  - the input as a segment data file: histseg_index_build() indexes the
 *    whole records (summaries from histsum included), and the index it builds
 *    must pass the decoder;
 *  - the input as a directory entry name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history/histfmt.h"
#include "history/histseg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void as_index(const uint8_t *data, size_t size)
{
	HistIndexInfo info, hinfo;
	HistBlock *blocks = NULL;
	ErrBuf err;
	uint8_t *again;

	if (histfmt_index_decode(data, size, &info, &blocks, &err) < 0)
		return;
	if (histfmt_header_decode(data, size, &hinfo, &err) < 0 || hinfo.packets != info.packets)
		abort();
	if (histfmt_index_size(info.n_blocks) != size)
		abort();
	again = malloc(size);
	if (!again)
		abort();
	histfmt_index_encode(&info, blocks, info.n_blocks, again);
	if (memcmp(again, data, size) != 0)
		abort();
	free(again);
	free(blocks);
}

static void as_data(const uint8_t *data, size_t size)
{
	HistIndexInfo info, back;
	HistBlock *blocks = NULL, *bb = NULL;
	uint64_t valid;
	ErrBuf err;
	uint8_t *idx;
	size_t n;

	if (histseg_index_build(data, size, 7, 1 + data[size > 30 ? 30 : 0] % 64, 4096, &info, &blocks, &valid, &err) <
	    0)
		return;
	if (valid > size || info.data_size != valid)
		abort();
	if (info.packets == 0) {
		free(blocks);
		return;
	}
	n = histfmt_index_size(info.n_blocks);
	idx = malloc(n);
	if (!idx)
		abort();
	histfmt_index_encode(&info, blocks, info.n_blocks, idx);
	if (histfmt_index_decode(idx, n, &back, &bb, &err) < 0 || back.packets != info.packets)
		abort();
	free(bb);
	free(idx);
	free(blocks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	HistName nm;

	as_index(data, size);
	if (size > 0)
		as_data(data, size);
	histfmt_name_parse((const char *)data, size < 200 ? size : 200, &nm);
	return 0;
}
