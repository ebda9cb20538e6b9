/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * SHA-256, HMAC-SHA-256, hex and base64 as the signers need them, from GnuTLS
 * (already linked for TLS): no home-made crypto. Pure: no I/O.
 */

#include <stddef.h>
#include <stdint.h>

#define DIGEST_SHA256_LEN 32
#define DIGEST_SHA256_HEX_LEN 64

/* out[32] = SHA-256(p[0..n)). 0 or -EIO. */
int digest_sha256(const void *p, size_t n, uint8_t out[DIGEST_SHA256_LEN]);
/* out[32] = HMAC-SHA-256(key, p[0..n)). 0 or -EIO. */
int digest_hmac_sha256(const void *key, size_t key_n, const void *p, size_t n, uint8_t out[DIGEST_SHA256_LEN]);
/* Lower-case hex of p[0..n) into out[2n+1] (NUL-terminated). */
void digest_hex(const uint8_t *p, size_t n, char *out);
/* SHA-256 of p[0..n) as 64 lower-case hex digits into out[65]. 0 or -EIO. */
int digest_sha256_hex(const void *p, size_t n, char out[DIGEST_SHA256_HEX_LEN + 1]);

/* Incremental SHA-256 (a file hashed in pieces). */
typedef struct DigestSha256 DigestSha256;
int digest_sha256_begin(DigestSha256 **ret);
int digest_sha256_update(DigestSha256 *d, const void *p, size_t n);
/* Writes the hex digest and frees d. */
int digest_sha256_end_hex(DigestSha256 *d, char out[DIGEST_SHA256_HEX_LEN + 1]);
void digest_sha256_free(DigestSha256 *d); /* NULL is fine; when abandoned before _end */

/* Standard base64 (with padding) of p[0..n): a new NUL-terminated string, or NULL. */
char *digest_base64(const uint8_t *p, size_t n);
/* Decodes standard base64 s[0..n) into a new buffer. 0, -EINVAL (not
 * base64) or -ENOMEM. */
int digest_unbase64(const char *s, size_t n, uint8_t **ret, size_t *ret_n);
