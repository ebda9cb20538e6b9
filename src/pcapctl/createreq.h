/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The body of `pcapctl create`, built from its flags: pure (no I/O), so that
 * every mapping and every refusal is unit-tested.
 *
 * Each flag value is checked when it is recorded (createreq_set), with the
 * parsers of the filter model, so that a typo is reported with the flag's
 * name before any request; what depends on several flags (the capture type,
 * the pcap-filter expression compiled with the rest) is checked when the
 * body is built (createreq_to_json).
 *
 * Mapping (Cloudflare PCAPs API, README "The API", plus pcapd's filter
 * extensions, model/filterjson.h):
 *   full|sample        "type": "full" | "simple"; "system": "magic-transit"
 *   --time-limit S     "time_limit" 1..300 (default 10)
 *   --packet-limit N   "packet_limit" 1..10000 (sample: default 10000)
 *   --byte-limit N     "byte_limit" 1..1e9, K/M/G suffixes (full only)
 *   --colo C           "colo_name" (full only, required)
 *   --bucket URI       "destination_conf" (full only, required)
 *   --offset-time T    "offset_time", RFC 3339 (sample only)
 *   --src, --dst       filter_v1.source_address / destination_address (strings)
 *   --sport, --dport   filter_v1.source_port / destination_port: a number for
 *                      one port, else the string ("80-90", "80;443")
 *   --proto P          filter_v1.protocol: a number if numeric, else the name;
 *                      "any" leaves it out
 *   --bpf EXPR         filter_v1.bpf
 *   --inner            filter_v1.inner: true (the clause also matches the inner
 *                      packet of VXLAN, GENEVE and GRE tunnels)
 * A repeated address or port flag adds to its set, as in `pcapd capture`
 * (the values are joined with ';'); a repeated limit or --proto replaces.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

#define CREATEREQ_MAX_TIME_LIMIT 300u
#define CREATEREQ_MAX_PACKET_LIMIT 10000u
#define CREATEREQ_MAX_BYTE_LIMIT 1000000000u
#define CREATEREQ_DEFAULT_TIME_LIMIT 10u
#define CREATEREQ_DEFAULT_SAMPLE_PACKETS 10000u
#define CREATEREQ_MAX_TEXT 4096u /* bytes of any one string flag after joining */

typedef enum CreateType {
	CREATE_UNSET,
	CREATE_FULL,
	CREATE_SAMPLE,
} CreateType;

typedef struct CreateReq {
	CreateType type;
	char *src, *dst;                               /* owned; ';'-joined when repeated */
	char *sport, *dport;                           /* owned; same */
	char *proto;                                   /* owned; as given, NULL when absent or "any" */
	char *bpf;                                     /* owned */
	bool inner;                                    /* --inner */
	uint64_t time_limit, packet_limit, byte_limit; /* 0 = not given */
	char *colo, *bucket, *offset_time;             /* owned */
} CreateReq;

void createreq_init(CreateReq *r);
void createreq_done(CreateReq *r); /* frees everything; NULL is fine */

/* "full" or "sample" (-EINVAL otherwise, with err). */
int createreq_set_type(CreateReq *r, const char *word, ErrBuf *err);

/* Records one flag ("--src", "--time-limit", ... as in the table above) after
 * checking its value: -EINVAL or -ERANGE with err naming the flag and the
 * bound, -ENOENT for a flag this module does not know, -ENOMEM. */
int createreq_set(CreateReq *r, const char *flag, const char *value, ErrBuf *err);

/* Checks what spans flags (type set, full needs --colo and --bucket, flags of
 * the other type, the whole filter compiles) and builds the body: a new JSON
 * object in *ret. -EINVAL with err naming the flag, -ENOMEM. */
int createreq_to_json(const CreateReq *r, json_t **ret, ErrBuf *err);

/* true if s is an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM). */
bool createreq_rfc3339_valid(const char *s);
