/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"

void sbuf_addn(SBuf *s, const char *p, size_t n)
{
	if (s->nomem)
		return;
	if (s->n + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *b;

		while (cap < s->n + n + 1)
			cap *= 2;
		b = realloc(s->p, cap);
		if (!b) {
			s->nomem = true;
			return;
		}
		s->p = b;
		s->cap = cap;
	}
	memcpy(s->p + s->n, p, n);
	s->n += n;
	s->p[s->n] = '\0';
}

void sbuf_add(SBuf *s, const char *p)
{
	if (p)
		sbuf_addn(s, p, strlen(p));
}

void sbuf_encode(SBuf *s, const char *p, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash))
			sbuf_addn(s, p + i, 1);
		else
			sbuf_addn(s, e, 3);
	}
}

char *sbuf_take(SBuf *s)
{
	char *p;

	if (!s->nomem && !s->p)
		sbuf_addn(s, "", 0);
	if (s->nomem) {
		sbuf_done(s);
		return NULL;
	}
	p = s->p;
	*s = (SBuf){0};
	return p;
}

void sbuf_done(SBuf *s)
{
	free(s->p);
	*s = (SBuf){0};
}
