/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pure half of the Cloudflare dialect, kept apart from the handlers
 * (cloudflare.c) so that tests run it without HTTP or a database:
 * request validation (cloudflare_validate.c) turns a JSON body into a Job or
 * the fields of an ownership request; rendering (cloudflare_render.c) turns a
 * Job or a BucketRow into the objects the SDK reads.
 *
 * Validation messages name the field first ("time_limit: 301 is outside
 * 1..300") and every failure is -EINVAL with err filled, except an unusable
 * destination_conf, where bucket_uri_check()'s code is passed on. Members a
 * request's schema does not name are ignored (cloudflare_unknown_fields()
 * names them); known ones with bad values are refused.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/util.h"
#include "db/db.h"
#include "model/job.h"

#define CF_TIME_LIMIT_MAX 300u
#define CF_PACKET_LIMIT_MAX 10000u
#define CF_BYTE_LIMIT_MAX 1000000000u
#define CF_COLO_MAX 63u
#define CF_OFFSET_PAST_NS (24LL * 3600 * 1000000000)
#define CF_OFFSET_FUTURE_NS (5LL * 1000000000) /* clock skew between client and us */

/* Validates a create request (a JSON object) at time now_ns and fills *ret:
 * type, filter_json (canonical, "{}" when none) and filter_model (the same as
 * the neutral filter model), time_limit_s, packet_limit, byte_limit,
 * colo_name and one bucket output, destination_conf (full; snaplen 0: whole
 * packets), offset_time_ns (simple).
 * id, account, status and submitted are left zero for the service to fill.
 * The filter is compiled once, so that a bad pcap-filter expression is
 * refused now rather than on every agent. */
int cloudflare_parse_create(const json_t *body, int64_t now_ns, Job *ret, ErrBuf *err);

/* A list's page: Cloudflare's page and per_page query parameters, as its
 * other list endpoints take them. */
#define CF_PAGE_MAX 1000000u  /* pages of a list */
#define CF_PER_PAGE_MAX 1000u /* captures on one page */

typedef struct CfPage {
	uint32_t page;     /* 1.. (1: the newest) */
	uint32_t per_page; /* 1..CF_PER_PAGE_MAX */
} CfPage;

/* The query values page and per_page (NULL or "": absent) into *ret: page
 * 1..CF_PAGE_MAX (default 1), per_page 1..CF_PER_PAGE_MAX (default
 * default_per_page). -EINVAL with err naming the parameter first ("per_page:
 * 5000 is outside 1..1000"). */
int cloudflare_parse_page(const char *page, const char *per_page, uint32_t default_per_page, CfPage *ret, ErrBuf *err);

/* The request bodies this dialect takes. */
typedef enum CfRequest {
	CF_REQ_CREATE,    /* POST …/pcaps */
	CF_REQ_OWNERSHIP, /* POST …/pcaps/ownership */
	CF_REQ_VALIDATE,  /* POST …/pcaps/ownership/validate */
} CfRequest;

/* The members of body (an object) that a request of this kind does not name
 * and the parsers ignore, for a debug log: their names, ", "-separated, into
 * out[0..cap) (each cut to 64 bytes, other than printable ASCII as '?', as
 * many as fit); returns how many there are. */
size_t cloudflare_unknown_fields(const json_t *body, CfRequest kind, char *out, size_t cap);

/* {destination_conf} (required; the only field): *ret_conf points into body. */
int cloudflare_parse_ownership(const json_t *body, const char **ret_conf, ErrBuf *err);

/* {destination_conf, ownership_challenge} (both required strings). */
int cloudflare_parse_validate(const json_t *body, const char **ret_conf, const char **ret_challenge, ErrBuf *err);

/* The PCAP object of j; with_agents (get only): also "agents", the per-agent
 * shares parts[0..n_parts) (an empty list when there are none). NULL: out of
 * memory. */
json_t *cloudflare_render_pcap(const Job *j, bool with_agents, const JobPart *parts, size_t n_parts);

/* The Ownership object of b. NULL: out of memory. */
json_t *cloudflare_render_ownership(const BucketRow *b);
