/* SPDX-License-Identifier: MIT */
/*
 * Credentials (see auth.h). A bearer token is looked up by the SHA-256 of its
 * text; a legacy X-Auth-Key by the SHA-256 of the key together with its email.
 * Lookups are by hash, so the secret never reaches the database, and a
 * constant-time comparison is not needed (an index probe on a hash of a
 * 256-bit random secret leaks nothing useful about it).
 *
 * Decision order, as the API contract fixes it: no or unknown credential → 401;
 * another account → 403; too small a scope (or an agent token on the public
 * API, or a user token on the agent protocol) → 403.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <gnutls/crypto.h>

#include "api/auth.h"

#define SECRET_PREFIX "pcapd_"
#define SECRET_BYTES 32u
#define CREDENTIAL_MAX 512u /* longer than any secret we issue: refused without a lookup */

static int fill_random(uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = getrandom(p + got, n - got, 0);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	return 0;
}

int auth_new_secret(char ret[64])
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[SECRET_BYTES + 1] = {0}; /* one spare zero byte so the last group reads in bounds */
	char out[64];
	size_t o = sizeof(SECRET_PREFIX) - 1;
	int r;

	r = fill_random(raw, SECRET_BYTES);
	if (r < 0)
		return r;
	memcpy(out, SECRET_PREFIX, o);
	/* 32 bytes = 256 bits = 42 full sextets and 4 bits: 43 characters, no padding. */
	for (size_t i = 0; i < SECRET_BYTES; i += 3) {
		uint32_t v =
			(uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | (i + 2 < SECRET_BYTES ? raw[i + 2] : 0);
		size_t chars = SECRET_BYTES - i >= 3 ? 4 : (SECRET_BYTES - i) + 1;

		for (size_t k = 0; k < chars; k++)
			out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
	}
	out[o] = '\0';
	memcpy(ret, out, o + 1);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(out, sizeof(out));
	return 0;
}

void auth_hash(const char *s, size_t n, uint8_t ret[32])
{
	/* SHA-256 cannot fail for in-memory input; gnutls only reports a bad
	 * algorithm, and ours is fixed. */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, s, n, ret) < 0)
		memset(ret, 0, 32);
}

/* Skips blanks on both ends of s[0..*n), returning the new start. */
static const char *trim(const char *s, size_t *n)
{
	while (*n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		(*n)--;
	}
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
		(*n)--;
	return s;
}

static const char *scope_need_words(TokenScope need)
{
	switch (need) {
	case SCOPE_AGENT:
		return "an agent token";
	case SCOPE_WRITE:
		return "write";
	default:
		return "read";
	}
}

/* The secret of req's credential, hashed: a bearer token (*ret_email NULL)
 * or a legacy key with its email. */
static int credential_hash(HttpRequest *req, uint8_t hash[32], const char **ret_email, ApiError *e)
{
	const char *authz = http_req_header(req, "Authorization");
	const char *email = http_req_header(req, "X-Auth-Email");
	const char *key = http_req_header(req, "X-Auth-Key");
	const char *secret = NULL;
	size_t n = 0;

	*ret_email = NULL;
	/* The SDK sends every credential it was given; a bearer token wins. */
	if (authz) {
		n = strlen(authz);
		secret = trim(authz, &n);
		if (n < 7 || strncasecmp(secret, "Bearer ", 7) != 0)
			return apierror_set(
				e, API_ERR_UNAUTHENTICATED, NULL,
				"Authentication error: the Authorization header must be \"Bearer <token>\"");
		secret += 7;
		n -= 7;
		secret = trim(secret, &n);
	} else if (email && key) {
		n = strlen(key);
		secret = trim(key, &n);
		*ret_email = email;
	} else {
		return apierror_set(e, API_ERR_UNAUTHENTICATED, NULL,
				    "Authentication error: no credentials (send Authorization: Bearer <token>, or "
				    "X-Auth-Email and X-Auth-Key)");
	}
	if (n == 0 || n > CREDENTIAL_MAX)
		return apierror_set(e, API_ERR_UNAUTHENTICATED, NULL, "Authentication error: invalid credentials");
	auth_hash(secret, n, hash);
	return 0;
}

/* A bearer secret that is no user credential: an agent's key or an
 * enrolment token is refused (403) where it does not belong; anything else
 * is unknown (401). */
static int not_a_user_credential(Service *svc, const uint8_t hash[32], const char *email, ApiError *e)
{
	EnrollToken t;
	AgentKey k;
	int r;

	if (!email) {
		r = service_agent_key_find(svc, hash, &k, e);
		if (r == 0)
			return apierror_set(e, API_ERR_FORBIDDEN, NULL,
					    "Forbidden: this is agent %s's key; it is only for the agent protocol",
					    k.name);
		if (r != -ENOENT)
			return r;
		r = service_enroll_token_find(svc, hash, &t, e);
		if (r == 0)
			return apierror_set(e, API_ERR_FORBIDDEN, NULL,
					    "Forbidden: this is an enrolment token; it is only for pcapd agent "
					    "--enroll-token (the agent protocol)");
		if (r != -ENOENT)
			return r;
	}
	return apierror_set(e, API_ERR_UNAUTHENTICATED, NULL, "Authentication error: invalid credentials");
}

/* auth_check, also telling the credential's scope and the SHA-256 of its
 * secret (either out-parameter may be NULL). */
static int authenticate(Service *svc, HttpRequest *req, const char *account, TokenScope need, const char *op,
			char *ret_account, TokenScope *ret_scope, uint8_t ret_hash[32], ApiError *e)
{
	char cred_account[JOB_ID_LEN + 1];
	const char *find_email = NULL;
	TokenScope scope;
	uint8_t hash[32];
	int r;

	r = credential_hash(req, hash, &find_email, e);
	if (r < 0)
		return r;
	r = service_credential_find(svc, hash, find_email, cred_account, &scope, e);
	if (r == -ENOENT)
		return not_a_user_credential(svc, hash, find_email, e);
	if (r < 0)
		return r;
	if (account && strcasecmp(account, cred_account) != 0)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: this credential belongs to another account");
	/* read ⊂ write; agent stands apart from both. */
	if ((need == SCOPE_AGENT) != (scope == SCOPE_AGENT) || (need == SCOPE_WRITE && scope != SCOPE_WRITE)) {
		if (scope == SCOPE_AGENT)
			return apierror_set(e, API_ERR_FORBIDDEN, NULL,
					    "Forbidden: this token has scope agent; it is only for the agent protocol");
		return apierror_set(e, API_ERR_FORBIDDEN, NULL, "Forbidden: this token has scope %s; %s needs %s",
				    token_scope_to_string(scope), op ? op : "this operation", scope_need_words(need));
	}
	/* A checked credential: its connection may idle as long as any. */
	http_req_trust(req);
	if (ret_account)
		memcpy(ret_account, cred_account, sizeof(cred_account));
	if (ret_scope)
		*ret_scope = scope;
	if (ret_hash)
		memcpy(ret_hash, hash, sizeof(hash));
	return 0;
}

int auth_agent(Service *svc, HttpRequest *req, AgentKey *ret, ApiError *e)
{
	char account[JOB_ID_LEN + 1];
	const char *email = NULL;
	TokenScope scope;
	EnrollToken t;
	uint8_t hash[32];
	int r;

	r = credential_hash(req, hash, &email, e);
	if (r < 0)
		return r;
	if (email)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: an agent authenticates with its own key (Authorization: Bearer)");
	r = service_agent_key_find(svc, hash, ret, e);
	if (r == 0) {
		http_req_trust(req);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	r = service_enroll_token_find(svc, hash, &t, e);
	if (r == 0)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: this is an enrolment token; exchange it for the agent's own key first "
				    "(pcapd agent --enroll-token)");
	if (r != -ENOENT)
		return r;
	r = service_credential_find(svc, hash, NULL, account, &scope, e);
	if (r == 0 && scope == SCOPE_AGENT)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: this agent token is bound to no agent; enrol the agent "
				    "(pcapd token create --scope enroll, then pcapd agent --enroll-token)");
	if (r == 0)
		return apierror_set(e, API_ERR_FORBIDDEN, NULL,
				    "Forbidden: this token has scope %s; the agent protocol needs an agent's key",
				    token_scope_to_string(scope));
	if (r != -ENOENT)
		return r;
	return apierror_set(e, API_ERR_UNAUTHENTICATED, NULL, "Authentication error: invalid credentials");
}

int auth_enroll(Service *svc, HttpRequest *req, EnrollToken *ret, ApiError *e)
{
	const char *email = NULL;
	uint8_t hash[32];
	int r;

	r = credential_hash(req, hash, &email, e);
	if (r < 0)
		return r;
	r = email ? -ENOENT : service_enroll_token_find(svc, hash, ret, e);
	if (r == -ENOENT) {
		AgentKey k;

		if (!email && service_agent_key_find(svc, hash, &k, e) == 0)
			return apierror_set(e, API_ERR_FORBIDDEN, NULL,
					    "Forbidden: this is agent %s's key; enrolment needs an enrolment token",
					    k.name);
		return apierror_set(e, API_ERR_UNAUTHENTICATED, NULL,
				    "Authentication error: not an enrolment token (pcapd token create --scope enroll)");
	}
	return r;
}

int auth_check(Service *svc, HttpRequest *req, const char *account, TokenScope need, const char *op, char *ret_account,
	       ApiError *e)
{
	return authenticate(svc, req, account, need, op, ret_account, NULL, NULL, e);
}

int auth_identify(Service *svc, HttpRequest *req, const char *account, char *ret_account, TokenScope *ret_scope,
		  char ret_id[AUTH_ID_LEN + 1], ApiError *e)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t hash[32];
	int r;

	r = authenticate(svc, req, account, SCOPE_READ, "token verify", ret_account, ret_scope, hash, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < AUTH_ID_LEN / 2; i++) {
		ret_id[2 * i] = hex[hash[i] >> 4];
		ret_id[2 * i + 1] = hex[hash[i] & 15];
	}
	ret_id[AUTH_ID_LEN] = '\0';
	return 0;
}
