/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "common/timefmt.h"

void timefmt_rfc3339(int64_t ns, char out[TIMEFMT_MAX])
{
	time_t sec = (time_t)(ns / 1000000000);
	long usec = (long)((ns % 1000000000) / 1000);
	struct tm tm;

	if (ns < 0 || !gmtime_r(&sec, &tm)) {
		snprintf(out, TIMEFMT_MAX, "1970-01-01T00:00:00.000000Z");
		return;
	}
	snprintf(out, TIMEFMT_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

/* Reads exactly w digits at *i. */
static bool digits(const char *s, size_t n, size_t *i, unsigned w, int *ret)
{
	int v = 0;

	if (*i + w > n)
		return false;
	for (unsigned k = 0; k < w; k++) {
		char c = s[*i + k];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*i += w;
	*ret = v;
	return true;
}

static bool expect(const char *s, size_t n, size_t *i, const char *any)
{
	if (*i >= n)
		return false;
	for (; *any; any++)
		if (s[*i] == *any) {
			(*i)++;
			return true;
		}
	return false;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

int timefmt_parse_rfc3339(const char *s, size_t n, int64_t *ret_ns)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	int64_t frac = 0, t;
	size_t i = 0;
	int sign = 0;

	if (!digits(s, n, &i, 4, &y) || !expect(s, n, &i, "-") || !digits(s, n, &i, 2, &mo) || !expect(s, n, &i, "-") ||
	    !digits(s, n, &i, 2, &d) || !expect(s, n, &i, "Tt ") || !digits(s, n, &i, 2, &h) ||
	    !expect(s, n, &i, ":") || !digits(s, n, &i, 2, &mi) || !expect(s, n, &i, ":") || !digits(s, n, &i, 2, &sec))
		return -EINVAL;
	if (i < n && s[i] == '.') {
		unsigned nd = 0;

		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (nd < 9) {
				frac = frac * 10 + (s[i] - '0');
				nd++;
			}
			i++;
		}
		if (nd == 0)
			return -EINVAL;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '-' ? -1 : 1;
		i++;
		if (!digits(s, n, &i, 2, &oh) || !expect(s, n, &i, ":") || !digits(s, n, &i, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (i != n)
		return -EINVAL;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 60 || oh > 23 || om > 59)
		return -ERANGE;
	if (sec == 60)
		sec = 59; /* a leap second: time_t has no room for it */
	t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -ERANGE;
	*ret_ns = t * 1000000000 + frac;
	return 0;
}
