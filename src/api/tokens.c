/* SPDX-License-Identifier: MIT */
/*
 * GET /accounts/{account}/tokens/verify: Cloudflare's check of an
 * account-owned token ({"id", "status": "active"}), with two pcapd fields,
 * "scope" ("read" or "write") and "account", so that a client (the dashboard)
 * learns what its token may do without trying a write. The answer says only
 * what the token already grants; the handlers check the scope on every call
 * all the same.
 */
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/envelope.h"

void tokens_handle(Api *a, HttpRequest *req, const char *account, const char *sub)
{
	const char *method = http_req_method(req);
	char cred_account[JOB_ID_LEN + 1];
	char id[AUTH_ID_LEN + 1];
	TokenScope scope;
	json_t *o;

	if (strcmp(sub, "/verify") != 0) {
		envelope_error(req, 404, API_E_NO_ROUTE, "No route for the URI");
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_add_header(req, "Allow", "GET");
		envelope_error(req, 405, API_E_METHOD, "Method not allowed: %s takes GET", method);
		return;
	}
	if (auth_identify(service_db(api_service(a)), req, account, cred_account, &scope, id) < 0)
		return;
	o = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "status", "active", "scope", token_scope_to_string(scope),
		      "account", cred_account);
	if (!o) {
		envelope_error(req, 500, API_E_INTERNAL, "internal error: out of memory");
		return;
	}
	envelope_ok(req, 200, o, NULL);
}
