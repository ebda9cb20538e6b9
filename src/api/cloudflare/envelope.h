/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Cloudflare's response envelope, used for every JSON answer of the public API
 * and for agent-protocol errors:
 *   {"success":true,"errors":[],"messages":[],"result":…[,"result_info":…]}
 *   {"success":false,"errors":[{"code":N,"message":"…","documentation_url":"…"[,"source":{"pointer":"/a/b"}]}],
 *    "messages":[],"result":null}
 * as Cloudflare's error items carry them: documentation_url points at the
 * README's error table (ENVELOPE_DOCS_URL), source.pointer (RFC 6901) at the
 * request body's member at fault, for errors about one. Always Content-Type:
 * application/json (the SDK parses only that). Every error also carries
 * `x-should-retry: false`, so the SDK never retries silently (but a 503,
 * which asks for a retry: `x-should-retry: true`), and 429 and 503 add
 * `retry-after` when the error gives one.
 *
 * Error codes (≥ 1000, documented in the README):
 *   1000 internal (500)          1001 body is not valid JSON (400), not JSON at all (415)
 *   1002 field validation (400)  1003 unknown capture/bucket id (404)
 *   1004 rate/concurrency limit (429)   1005 body too large (413)
 *   1006 bucket not registered/validated (400)
 *   1007 no online agent for colo_name (400)
 *   1008 state conflict: not finished, already finished, not stoppable (409)
 *   1009 ownership challenge mismatch (400)
 *   1010 request target or headers over a bound (414, 431; http.h)
 *   1011 unavailable, try again: shutting down, or request bodies hold the
 *        controller's budget (503)
 *   7001 method not allowed (405, with Allow)   7003 no route (404)
 *   10000 authentication (401) / forbidden (403)
 */

#include <jansson.h>

#include "common/util.h"
#include "http/http.h"
#include "model/apierror.h"

/* Where the README's error table is read: meson's docs_url option, by
 * default the README's own stable anchor. */
#ifndef PCAPD_DOCS_URL
#define PCAPD_DOCS_URL "README.md#api-errors"
#endif
#define ENVELOPE_DOCS_URL PCAPD_DOCS_URL

enum {
	API_E_INTERNAL = 1000,
	API_E_JSON = 1001,
	API_E_FIELD = 1002,
	API_E_NOT_FOUND = 1003,
	API_E_LIMIT = 1004,
	API_E_TOO_LARGE = 1005,
	API_E_BUCKET = 1006,
	API_E_NO_AGENT = 1007,
	API_E_STATE = 1008,
	API_E_CHALLENGE = 1009,
	API_E_REQUEST = 1010,
	API_E_BUSY = 1011,
	API_E_METHOD = 7001,
	API_E_NO_ROUTE = 7003,
	API_E_AUTH = 10000,
};

/* Success envelope around result (stolen; NULL → null) and result_info
 * (stolen; NULL → omitted). */
void envelope_ok(HttpRequest *req, unsigned status, json_t *result, json_t *result_info);
/* The success envelope as text (malloc'd; NULL when out of memory), for
 * answers kept in a cache. result and result_info are stolen. */
char *envelope_ok_text(json_t *result, json_t *result_info, size_t *ret_len);
/* The failure envelope of a neutral error: the kind's status
 * (api_error_status()) and code (the table above), the message
 * "field: msg" (just msg without a field; "internal error: …" for
 * API_ERR_INTERNAL), retry-after for API_ERR_BUSY and API_ERR_UNAVAILABLE,
 * Allow for API_ERR_METHOD.
 * Fields are written as they are: the dialect names them first. */
void envelope_error(HttpRequest *req, const ApiError *e);
/* The same with source.pointer: pointer is the JSON pointer of the body's
 * member at fault ("/filter_v1/source_port"), NULL for none. */
void envelope_error_at(HttpRequest *req, const ApiError *e, const char *pointer);
/* json_string() that also takes bytes that are not UTF-8 (they become '?'),
 * for messages and values that echo what a client sent. NULL: out of memory. */
json_t *envelope_string(const char *s);
