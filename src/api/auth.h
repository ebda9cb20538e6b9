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

/* A credential's public id: hex of the first 16 bytes of the SHA-256 of its
 * secret (stable, and telling nothing about the secret). */
#define AUTH_ID_LEN 32
/* Authenticates req for account with any user scope (read or write; an agent
 * token is refused as by auth_check_op) and tells what the credential is:
 * ret_scope (SCOPE_READ or SCOPE_WRITE) and ret_id. ret_account as for
 * auth_check_op (may be NULL). Errors are answered as by auth_check_op. */
int auth_identify(Db *db, HttpRequest *req, const char *account, char *ret_account, TokenScope *ret_scope,
		  char ret_id[AUTH_ID_LEN + 1]);
