/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Credentials: `Authorization: Bearer <token>`, or the legacy pair
 * `X-Auth-Email` + `X-Auth-Key`. Secrets are stored as SHA-256 (they are 256-bit
 * random, so a fast hash is enough); a secret never reaches the database or a
 * log in clear.
 *
 * Scopes: read ⊂ write; agent is separate (only the agent protocol).
 */

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "http/http.h"

/* New random secret: "pcapd_" followed by 43 base64url characters (256 bits). */
int auth_new_secret(char ret[64]);
/* SHA-256 of s[0..n). */
void auth_hash(const char *s, size_t n, uint8_t ret[32]);

/* Why a credential was refused: status 401, 403 (or 500 when the database
 * failed) and a message for the client. */
typedef struct AuthFailure {
	unsigned status;
	char message[256];
} AuthFailure;

/* Authenticates req and checks that it may act on account with scope need,
 * without answering: 0 (and the connection is trusted, http_req_trust), or
 * < 0 with ret_fail filled. Used before the body is read (api.c) and by
 * auth_check_op. */
int auth_verify(Db *db, HttpRequest *req, const char *account, TokenScope need, const char *op, char *ret_account,
		AuthFailure *ret_fail);
/* Authenticates req and checks that it may act on account with scope need.
 * On failure answers (401 missing/invalid credentials, 403 other account or
 * insufficient scope; code 10000, message saying which) and returns < 0.
 * account NULL: any account (agent protocol); ret_account (may be NULL) gets
 * the credential's account. */
int auth_check(Db *db, HttpRequest *req, const char *account, TokenScope need, char *ret_account);
/* Same, naming the operation in a 403 for too small a scope ("this token has
 * scope read; create needs write"); op NULL: "this operation". ret_account
 * holds JOB_ID_LEN + 1 bytes: the account as stored (lowercase hex). */
int auth_check_op(Db *db, HttpRequest *req, const char *account, TokenScope need, const char *op, char *ret_account);
