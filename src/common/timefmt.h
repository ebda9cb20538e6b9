/* SPDX-License-Identifier: MIT */
#pragma once

/* RFC 3339 timestamps, as the APIs carry them. Pure functions. */

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_MAX 64 /* "2021-12-20T17:29:20.641845Z" with room for any struct tm */

/* UTC with microseconds, e.g. "2021-12-20T17:29:20.641845Z". */
void timefmt_rfc3339(int64_t ns, char out[TIMEFMT_MAX]);

/* "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" ('t'/'z' and a space for 'T'
 * accepted), fraction up to 9 digits. -EINVAL if malformed, -ERANGE for a
 * field out of range or a year outside 1970..9999. */
int timefmt_parse_rfc3339(const char *s, size_t n, int64_t *ret_ns);
