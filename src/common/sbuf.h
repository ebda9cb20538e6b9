/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A growing string: appending never fails on the spot; the first allocation
 * failure is remembered (nomem) and checked once, so that building a text
 * (a canonical request, a buffered HTTP answer) reads as its specification
 * does. The caller bounds what it appends.
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct SBuf {
	char *p; /* NUL-terminated once anything was added; NULL before */
	size_t n, cap;
	bool nomem; /* an append failed: p is incomplete */
} SBuf;

void sbuf_addn(SBuf *s, const char *p, size_t n);
void sbuf_add(SBuf *s, const char *p); /* NULL adds nothing */
/* Appends p[0..n) percent-encoded: every byte but A-Za-z0-9-._~ (and '/'
 * when keep_slash) as %XX, upper-case hex (RFC 3986, as SigV4 asks). */
void sbuf_encode(SBuf *s, const char *p, size_t n, bool keep_slash);
/* Hands the string over (never NULL unless nomem: "" when empty); the
 * SBuf is empty afterwards. NULL when nomem. */
char *sbuf_take(SBuf *s);
void sbuf_done(SBuf *s);
