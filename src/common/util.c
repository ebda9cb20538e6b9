/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

int errbuf_set(ErrBuf *err, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (!err)
		return code;
	va_start(ap, fmt);
	r = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (r < 0)
		err->msg[0] = '\0';
	else if ((size_t)r >= sizeof(err->msg))
		memcpy(err->msg + sizeof(err->msg) - 4, "...", 4);
	return code;
}

int errbuf_errno(ErrBuf *err, const char *fmt, ...)
{
	int e = errno; /* first: nothing below may change it before it is read */
	va_list ap;
	int r;

	if (e <= 0)
		e = EIO;
	if (!err)
		return -e;
	va_start(ap, fmt);
	r = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	if ((size_t)r < sizeof(err->msg))
		snprintf(err->msg + r, sizeof(err->msg) - (size_t)r, ": %s", strerror(e));
	if (strlen(err->msg) == sizeof(err->msg) - 1)
		memcpy(err->msg + sizeof(err->msg) - 4, "...", 4);
	return -e;
}

static int parse_digits(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	bool overflow = false;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (overflow)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_u64(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	int r = parse_digits(s, n, &v);

	if (r < 0)
		return r;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int parse_size(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned shift = 0;
	uint64_t v;
	int r;

	if (n > 0) {
		switch (s[n - 1]) {
		case 'K':
		case 'k':
			shift = 10;
			break;
		case 'M':
		case 'm':
			shift = 20;
			break;
		case 'G':
		case 'g':
			shift = 30;
			break;
		default:
			break;
		}
		if (shift)
			n--;
	}
	r = parse_digits(s, n, &v);
	if (r < 0)
		return r;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	v <<= shift;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t now_monotonic_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t now_realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}
