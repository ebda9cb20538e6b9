/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A capture filter as JSON: Cloudflare's filter_v1 object, with pcapd's
 * extensions, to and from the one filter model (filter/filter.h).
 *
 *   source_address, destination_address  string: an address, or (extension) a
 *                                        CIDR, a range "a-b", or a ';' list
 *   source_port, destination_port        number 0..65535, or (extension) a
 *                                        string "80", "1024-2048", "80;443"
 *   protocol                             number 0..255, or (extension) a name
 *                                        such as "tcp"
 *   bpf                                  (extension) a pcap-filter expression
 *
 * Every field is optional; {} or null captures everything. A field that is
 * null or "" is absent (no condition, and not in the canonical form). An unknown field, a
 * wrong type or a bad value is -EINVAL with a message naming the field with
 * the caller's prefix, e.g. "filter_v1.destination_port: 70000 is outside
 * 0..65535". The canonical form (what is stored, echoed back and sent to
 * agents) keeps the user's values and key order of the accepted fields.
 */

#include <jansson.h>

#include "common/util.h"
#include "filter/filter.h"

#define FILTERJSON_MAX 8192u /* bytes of the canonical text */

/* Parses obj (an object or JSON null) into *ret (initialised by the callee,
 * freed with filter_done) and, if ret_canonical is not NULL, a malloc'd
 * canonical JSON text. */
int filterjson_parse(const json_t *obj, const char *prefix, Filter *ret, char **ret_canonical, ErrBuf *err);

/* Same from text (what is stored and what agents receive). */
int filterjson_parse_text(const char *text, Filter *ret, ErrBuf *err);
