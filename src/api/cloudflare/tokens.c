/* SPDX-License-Identifier: MIT */
/*
 * GET /accounts/{account}/tokens/verify: Cloudflare's check of an
 * account-owned token ({"id", "status": "active"}), with two pcapd fields,
 * "scope" ("read" or "write") and "account", so that a client (the dashboard)
 * learns what its token may do without trying a write. The answer says only
 * what the token already grants; the handlers check the scope on every call
 * all the same. Checks in the dialect's order: route, method, credentials.
 */
#include <string.h>

#include "api/api-int.h"
#include "api/auth.h"
#include "api/cloudflare/envelope.h"
#include "api/cloudflare/tokens.h"

void cloudflare_tokens(Api *a, HttpRequest *req, const char *account, const char *sub)
{
	const char *method = http_req_method(req);
	char cred_account[JOB_ID_LEN + 1];
	char id[AUTH_ID_LEN + 1];
	TokenScope scope;
	ApiError e;
	json_t *o;

	if (strcmp(sub, "/verify") != 0) {
		apierror_set(&e, API_ERR_NO_ROUTE, NULL, "No route for the URI");
		envelope_error(req, &e);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		apierror_set(&e, API_ERR_METHOD, NULL, "Method not allowed: %s takes GET", method);
		e.allow = "GET";
		envelope_error(req, &e);
		return;
	}
	if (auth_identify(api_service(a), req, account, cred_account, &scope, id, &e) < 0) {
		envelope_error(req, &e);
		return;
	}
	o = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "status", "active", "scope", token_scope_to_string(scope),
		      "account", cred_account);
	if (!o) {
		apierror_set(&e, API_ERR_INTERNAL, NULL, "out of memory");
		envelope_error(req, &e);
		return;
	}
	envelope_ok(req, 200, o, NULL);
}
