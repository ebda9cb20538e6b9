/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for what clients and agents send the controller in a body
 * (issue 8). Byte 0 picks the reader, the rest is its input:
 *   0 a capture create body (the Cloudflare dialect's validation, with the
 *     filter_v1 it compiles), 1 an ownership create body, 2 an ownership
 *     validate body, 3 an agent's sample answer (a whole pcap or pcapng).
 * Every reader must refuse (with a message naming the field) or accept
 * without crashing; an accepted create holds a filter that reads back; an
 * accepted sample answer counts no more bytes than it holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/cloudflare/cloudflare.h"
#include "model/filtermodel.h"
#include "pcap/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void create(const json_t *body)
{
	ErrBuf err = {{0}};
	Job j = {0};

	if (cloudflare_parse_create(body, 1700000000000000000LL, &j, &err) < 0) {
		if (!err.msg[0])
			abort(); /* a refusal says why */
		return;
	}
	if (j.filter_model) {
		Filter f = {0};

		if (filtermodel_parse(j.filter_model, strlen(j.filter_model), &f, &err) < 0)
			abort();
		filter_done(&f);
	}
	job_done(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	const char *conf = NULL, *challenge = NULL;
	uint64_t packets = 0, bytes = 0;
	ErrBuf err = {{0}};
	json_t *body;

	if (size == 0)
		return 0;
	if (data[0] % 4 == 3) {
		if (pcapdec_check_stream((const uint8_t *)p, n, &packets, &bytes, &err) == 0 && bytes > n)
			abort();
		return 0;
	}
	body = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
	if (!body)
		return 0;
	switch (data[0] % 4) {
	case 0:
		create(body);
		break;
	case 1:
		(void)cloudflare_parse_ownership(body, &conf, &err);
		break;
	default:
		(void)cloudflare_parse_validate(body, &conf, &challenge, &err);
		break;
	}
	json_decref(body);
	return 0;
}
