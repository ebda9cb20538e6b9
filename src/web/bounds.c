/* SPDX-License-Identifier: MIT */
/*
 * Writes the dashboard's js/bounds.js from the API's own constants, so that
 * the checks a user sees while typing use the very bounds the controller
 * enforces (the controller stays the authority: every request is checked
 * again there). Run at build time; its output is embedded by embed.py and
 * read by the dashboard's unit tests.
 */
#include <stdio.h>

#include "api/cloudflare/cloudflare.h"
#include "bucket/bucket.h"
#include "filter/filter.h"
#include "model/filterjson.h"

int main(void)
{
	int proto;
	const char *name;

	printf("// Generated at build time by src/web/bounds.c from the API's constants\n"
	       "// (src/api/cloudflare/cloudflare.h, src/filter/filter.h, src/model/filterjson.h,\n"
	       "// src/bucket/bucket.h): do not edit.\n"
	       "export const BOUNDS = Object.freeze({\n");
	printf("  time_limit: Object.freeze({ min: 1, max: %u }),\n", CF_TIME_LIMIT_MAX);
	printf("  packet_limit: Object.freeze({ min: 1, max: %u }),\n", CF_PACKET_LIMIT_MAX);
	printf("  byte_limit: Object.freeze({ min: 1, max: %u }),\n", CF_BYTE_LIMIT_MAX);
	printf("  colo_max: %u,\n", CF_COLO_MAX);
	printf("  offset_past_s: %lld,\n", (long long)(CF_OFFSET_PAST_NS / 1000000000));
	printf("  offset_future_s: %lld,\n", (long long)(CF_OFFSET_FUTURE_NS / 1000000000));
	printf("  port_max: 65535,\n  protocol_max: 255,\n");
	printf("  list_max: %u,\n", FILTER_MAX_RANGES);
	printf("  bpf_max: %u,\n", FILTER_MAX_EXPR);
	printf("  filter_json_max: %u,\n", FILTERJSON_MAX);
	printf("  bucket_uri_max: %u,\n", BUCKET_URI_MAX);
	printf("  protocol_names: Object.freeze({");
	for (size_t i = 0; (name = filter_proto_name(i, &proto)) != NULL; i++)
		printf("%s\"%s\": %d", i ? ", " : " ", name, proto);
	printf(" }),\n});\n");
	return ferror(stdout) || fflush(stdout) != 0 ? 1 : 0;
}
