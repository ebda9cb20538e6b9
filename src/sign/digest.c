/* SPDX-License-Identifier: MIT */
/* GnuTLS's hashes and base64 behind digest.h. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

#include "sign/digest.h"

struct DigestSha256 {
	gnutls_hash_hd_t h;
};

int digest_sha256(const void *p, size_t n, uint8_t out[DIGEST_SHA256_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) < 0 ? -EIO : 0;
}

int digest_hmac_sha256(const void *key, size_t key_n, const void *p, size_t n, uint8_t out[DIGEST_SHA256_LEN])
{
	return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_n, p, n, out) < 0 ? -EIO : 0;
}

void digest_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int digest_sha256_hex(const void *p, size_t n, char out[DIGEST_SHA256_HEX_LEN + 1])
{
	uint8_t d[DIGEST_SHA256_LEN];
	int r = digest_sha256(p, n, d);

	if (r < 0)
		return r;
	digest_hex(d, sizeof(d), out);
	return 0;
}

int digest_sha256_begin(DigestSha256 **ret)
{
	DigestSha256 *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	if (gnutls_hash_init(&d->h, GNUTLS_DIG_SHA256) < 0) {
		free(d);
		return -EIO;
	}
	*ret = d;
	return 0;
}

int digest_sha256_update(DigestSha256 *d, const void *p, size_t n)
{
	return gnutls_hash(d->h, p, n) < 0 ? -EIO : 0;
}

int digest_sha256_end_hex(DigestSha256 *d, char out[DIGEST_SHA256_HEX_LEN + 1])
{
	uint8_t h[DIGEST_SHA256_LEN];

	gnutls_hash_deinit(d->h, h);
	free(d);
	digest_hex(h, sizeof(h), out);
	return 0;
}

void digest_sha256_free(DigestSha256 *d)
{
	if (!d)
		return;
	gnutls_hash_deinit(d->h, NULL);
	free(d);
}

char *digest_base64(const uint8_t *p, size_t n)
{
	gnutls_datum_t in = {.data = (unsigned char *)p, .size = (unsigned)n}, out = {0};
	char *s;

	if (n > UINT32_MAX / 2 || gnutls_base64_encode2(&in, &out) < 0)
		return NULL;
	s = malloc(out.size + 1);
	if (s) {
		memcpy(s, out.data, out.size);
		s[out.size] = '\0';
	}
	gnutls_free(out.data);
	return s;
}

int digest_unbase64(const char *s, size_t n, uint8_t **ret, size_t *ret_n)
{
	gnutls_datum_t in = {.data = (unsigned char *)s, .size = (unsigned)n}, out = {0};
	uint8_t *b;

	if (n == 0 || n > UINT32_MAX / 2)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
		      c == '/' || c == '='))
			return -EINVAL;
	}
	if (gnutls_base64_decode2(&in, &out) < 0)
		return -EINVAL;
	b = malloc(out.size ? out.size : 1);
	if (!b) {
		gnutls_free(out.data);
		return -ENOMEM;
	}
	memcpy(b, out.data, out.size);
	*ret_n = out.size;
	*ret = b;
	gnutls_free(out.data);
	return 0;
}
