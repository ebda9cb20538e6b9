/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers shared by agentproto.c and agentwork.c only (defined in agentproto.c). */

#include "proto/agentproto.h"

/* Copies a valid id, lowercased; false if s is not 32 hex digits. */
bool proto_take_id(const char *s, char out[JOB_ID_LEN + 1]);
/* Copies s into out[cap]; -ENAMETOOLONG if it does not fit. */
int proto_copy_str(char *out, size_t cap, const char *s);
/* A text for JSON: invalid UTF-8 (a message quoting outside bytes) gets its
 * non-ASCII bytes replaced, so that the text is never lost. */
json_t *proto_safe_string(const char *text);
/* v as compact text in *ret (malloc'd). */
int proto_dump(json_t *v, char **ret, ErrBuf *err);
/* p[0..n) as a JSON object of at most AGENTPROTO_MAX_BODY bytes: -EMSGSIZE,
 * -EBADMSG (not JSON, duplicate keys, not an object); what names it. */
int proto_load(const char *p, size_t n, const char *what, json_t **ret, ErrBuf *err);
/* A non-negative integral number at most max: integer, or real without a
 * fraction. Absent or null: *ret untouched, returns 0. -EINVAL, -ERANGE with
 * a message naming key. */
int proto_get_u64(const json_t *o, const char *key, uint64_t max, uint64_t *ret, ErrBuf *err);
/* An array of at most AGENTPROTO_MAX_IDS ids (malloc'd in *ret); entries that
 * are not ids are counted in *skipped (may be NULL). */
int proto_get_ids(const json_t *o, const char *key, char (**ret)[JOB_ID_LEN + 1], size_t *ret_n, size_t *skipped,
		  ErrBuf *err);
/* ids as a JSON array (new reference); NULL: out of memory. */
json_t *proto_ids_json(const char (*ids)[JOB_ID_LEN + 1], size_t n);
