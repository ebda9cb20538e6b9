/* SPDX-License-Identifier: MIT */
/* JSON values every dialect shares (see jsonval.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/jsonval.h"

int jsonval_whole(const char *field, const json_t *v, uint64_t lo, uint64_t hi, uint64_t *ret, ErrBuf *err)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0 || (uint64_t)i < lo || (uint64_t)i > hi)
			return errbuf_set(err, -EINVAL, "%s: %lld is outside %llu..%llu", field, (long long)i,
					  (unsigned long long)lo, (unsigned long long)hi);
		*ret = (uint64_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		if (!isfinite(d) || d != floor(d))
			return errbuf_set(err, -EINVAL, "%s: %.15g is not a whole number", field, d);
		if (d < (double)lo || d > (double)hi)
			return errbuf_set(err, -EINVAL, "%s: %.15g is outside %llu..%llu", field, d,
					  (unsigned long long)lo, (unsigned long long)hi);
		*ret = (uint64_t)d;
		return 0;
	}
	return errbuf_set(err, -EINVAL, "%s: must be a whole number in %llu..%llu", field, (unsigned long long)lo,
			  (unsigned long long)hi);
}

json_t *jsonval_string(const char *s)
{
	json_t *v = json_string(s);
	char *copy;

	if (v || !s)
		return v;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}
