/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * JSON values every dialect reads and writes the same way: whole numbers in
 * a request (10 and 10.0 are the same number in JSON; 10.5 is refused) and
 * strings in an answer that are valid JSON whatever bytes they quote. Pure.
 */

#include <stdint.h>

#include <jansson.h>

#include "common/util.h"

/* A whole JSON number in lo..hi into *ret. -EINVAL naming field ("field:
 * 301 is outside 1..300", "…: 1.5 is not a whole number", "…: must be a
 * whole number in lo..hi" for another type). */
int jsonval_whole(const char *field, const json_t *v, uint64_t lo, uint64_t hi, uint64_t *ret, ErrBuf *err);

/* s as a JSON string; text that is not UTF-8 (a message quoting a decoded
 * path, say) has its non-ASCII bytes replaced by '?'. NULL: out of memory
 * (or s NULL). */
json_t *jsonval_string(const char *s);
