/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one filter model (filter/filter.h) in a dialect-neutral JSON form: what
 * the controller stores for every capture and sends to agents, whichever
 * dialect's words the user wrote it in (Cloudflare filter_v1, Azure
 * filters[], pcapd's flags).
 *
 *   {"clauses": [{"src": ["192.0.2.1", "198.51.100.0-198.51.100.255"],
 *                 "dst": ["2001:db8::1"],
 *                 "sport": ["1024-65535"], "dport": ["80", "443"],
 *                 "proto": 6, "both": true}],
 *    "bpf": "tcp[13] & 2 != 0"}
 *
 * Clauses are OR-ed; within one, every member present is ANDed. Sets are
 * arrays of single values or inclusive "lo-hi" ranges (addresses of one
 * family per range); "proto" is an IP protocol number 0..255 (absent: any);
 * "both" (absent: false) also matches with source and destination swapped
 * (Azure's local/remote); "inner" (absent: false) also matches the packet
 * inside a VXLAN, GENEVE or GRE tunnel; "bpf" is a pcap-filter expression ANDed with the
 * whole. {} matches everything. Empty members are left out when writing, so
 * one model has one text.
 *
 * Parsing is strict (an unknown member, a wrong type or a value out of range
 * is -EINVAL naming the member, e.g. "filter.clauses[0].dport[1]: 70000 is
 * outside 0..65535") and bounded (FILTERMODEL_MAX bytes of text, the filter
 * model's own bounds on clauses and ranges).
 */

#include <stddef.h>

#include <jansson.h>

#include "common/util.h"
#include "filter/filter.h"

#define FILTERMODEL_MAX (64u * 1024u) /* bytes of the text */

/* f as a JSON object (new reference); NULL: out of memory. */
json_t *filtermodel_to_json(const Filter *f);
/* f as compact text (malloc'd). -E2BIG past FILTERMODEL_MAX, -ENOMEM. */
int filtermodel_to_text(const Filter *f, char **ret, ErrBuf *err);

/* Parses obj (an object; NULL or JSON null: everything) into *ret (freed with
 * filter_done). Messages start with prefix ("filter"). */
int filtermodel_from_json(const json_t *obj, const char *prefix, Filter *ret, ErrBuf *err);
/* Same from text p[0..n). */
int filtermodel_parse(const char *p, size_t n, Filter *ret, ErrBuf *err);
