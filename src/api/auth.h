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

#include "controller/service.h"
#include "http/http.h"
#include "model/apierror.h"

/* New random secret: "pcapd_" followed by 43 base64url characters (256 bits). */
int auth_new_secret(char ret[64]);
/* SHA-256 of s[0..n). */
void auth_hash(const char *s, size_t n, uint8_t ret[32]);

/* Authenticates req and checks that it may act on account with scope need.
 * Answers nothing: on failure fills e and returns < 0 (the caller's dialect
 * renders e): API_ERR_UNAUTHENTICATED for missing, malformed or unknown
 * credentials; API_ERR_FORBIDDEN for another account or too small a scope
 * (an agent token on the public API, a user token on the agent protocol),
 * naming the operation op ("this token has scope read; create needs write";
 * op NULL: "this operation"); API_ERR_INTERNAL when the lookup fails.
 * account NULL: any account (agent protocol). ret_account (may be NULL) holds
 * JOB_ID_LEN + 1 bytes: the credential's account as stored (lowercase hex). */
int auth_check(Service *svc, HttpRequest *req, const char *account, TokenScope need, const char *op, char *ret_account,
	       ApiError *e);
/* (On success the request's connection is trusted: http_req_trust.) */

/* The agent protocol: req must carry an agent's own key (ret gets its name,
 * account and colo). API_ERR_UNAUTHENTICATED for an unknown secret;
 * API_ERR_FORBIDDEN for a user token, an enrolment token or an agent token
 * bound to no name. On success the connection is trusted. */
int auth_agent(Service *svc, HttpRequest *req, AgentKey *ret, ApiError *e);
/* POST /agent/v1/enroll: req must carry an enrolment token (ret). */
int auth_enroll(Service *svc, HttpRequest *req, EnrollToken *ret, ApiError *e);

/* A credential's public id: hex of the first 16 bytes of the SHA-256 of its
 * secret (stable, and telling nothing about the secret). */
#define AUTH_ID_LEN 32
/* Authenticates req for account with any user scope (read or write; an agent
 * token is refused as by auth_check) and tells what the credential is:
 * ret_scope (SCOPE_READ or SCOPE_WRITE) and ret_id. ret_account as for
 * auth_check (may be NULL). Failures as auth_check's. */
int auth_identify(Service *svc, HttpRequest *req, const char *account, char *ret_account, TokenScope *ret_scope,
		  char ret_id[AUTH_ID_LEN + 1], ApiError *e);
