/* SPDX-License-Identifier: MIT */
/*
 * Cloudflare's response envelope (see envelope.h). Every JSON answer of the
 * public API goes through here, so the Content-Type the SDK depends on and the
 * `x-should-retry: false` that stops its silent retries are set in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "api/cloudflare/envelope.h"
#include "api/jsonval.h"

#define JSON_TYPE "application/json"

/* What we send when even the envelope cannot be built (out of memory). */
static const char internal_body[] =
	"{\"success\":false,\"errors\":[{\"code\":1000,\"message\":\"internal error: out of memory\","
	"\"documentation_url\":\"" ENVELOPE_DOCS_URL "\"}],\"messages\":[],\"result\":null}";

static void respond_json(HttpRequest *req, unsigned status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (!text) {
		http_respond(req, 500, JSON_TYPE, internal_body, sizeof(internal_body) - 1);
		return;
	}
	http_respond(req, status, JSON_TYPE, text, strlen(text));
	free(text);
}

json_t *envelope_string(const char *s)
{
	return jsonval_string(s);
}

static json_t *ok_doc(json_t *result, json_t *result_info)
{
	json_t *doc = json_pack("{s:b, s:[], s:[], s:o}", "success", 1, "errors", "messages", "result",
				result ? result : json_null());

	if (doc && result_info && json_object_set_new(doc, "result_info", result_info) < 0) {
		json_decref(doc);
		doc = NULL;
	} else if (!doc) {
		json_decref(result_info);
	}
	return doc;
}

void envelope_ok(HttpRequest *req, unsigned status, json_t *result, json_t *result_info)
{
	json_t *doc = ok_doc(result, result_info);

	respond_json(req, status, doc);
	json_decref(doc);
}

char *envelope_ok_text(json_t *result, json_t *result_info, size_t *ret_len)
{
	json_t *doc = ok_doc(result, result_info);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (text)
		*ret_len = strlen(text);
	return text;
}

/* Cloudflare's code for each kind (envelope.h). */
static int error_code(ApiErrorKind kind)
{
	static const int codes[] = {
		[API_ERR_NONE] = API_E_INTERNAL,
		[API_ERR_INTERNAL] = API_E_INTERNAL,
		[API_ERR_BAD_BODY] = API_E_JSON,
		[API_ERR_INVALID] = API_E_FIELD,
		[API_ERR_UNVERIFIED] = API_E_BUCKET,
		[API_ERR_NO_TARGET] = API_E_NO_AGENT,
		[API_ERR_MISMATCH] = API_E_CHALLENGE,
		[API_ERR_UNAUTHENTICATED] = API_E_AUTH,
		[API_ERR_FORBIDDEN] = API_E_AUTH,
		[API_ERR_NOT_FOUND] = API_E_NOT_FOUND,
		[API_ERR_NO_ROUTE] = API_E_NO_ROUTE,
		[API_ERR_METHOD] = API_E_METHOD,
		[API_ERR_CONFLICT] = API_E_STATE,
		[API_ERR_TOO_LARGE] = API_E_TOO_LARGE,
		[API_ERR_UNSUPPORTED_MEDIA] = API_E_JSON,
		[API_ERR_BUSY] = API_E_LIMIT,
		[API_ERR_UNAVAILABLE] = API_E_BUSY,
		[API_ERR_URI_TOO_LONG] = API_E_REQUEST,
		[API_ERR_HEADERS_TOO_LARGE] = API_E_REQUEST,
	};

	return (unsigned)kind < ARRAY_SIZE(codes) ? codes[kind] : API_E_INTERNAL;
}

void envelope_error(HttpRequest *req, const ApiError *e)
{
	envelope_error_at(req, e, NULL);
}

void envelope_error_at(HttpRequest *req, const ApiError *e, const char *pointer)
{
	char msg[sizeof(e->field) + sizeof(e->msg) + 32];
	const char *text = e->msg[0] ? e->msg : "unexpected failure";
	json_t *doc, *item;

	/* A message longer than msg is cut: it stays a valid, if shorter, message. */
	snprintf(msg, sizeof(msg), "%s%s%s%s", e->kind == API_ERR_INTERNAL ? "internal error: " : "", e->field,
		 e->field[0] ? ": " : "", text);
	/* 503 says "try again": the SDK may, after retry-after. */
	http_add_header(req, "x-should-retry", e->kind == API_ERR_UNAVAILABLE ? "true" : "false");
	if ((e->kind == API_ERR_BUSY || e->kind == API_ERR_UNAVAILABLE) && e->retry_after_s) {
		char v[16];

		snprintf(v, sizeof(v), "%u", e->retry_after_s);
		http_add_header(req, "retry-after", v);
	}
	if (e->kind == API_ERR_METHOD && e->allow)
		http_add_header(req, "Allow", e->allow);
	item = json_pack("{s:i, s:o, s:s}", "code", error_code(e->kind), "message", envelope_string(msg),
			 "documentation_url", ENVELOPE_DOCS_URL);
	if (item && pointer &&
	    json_object_set_new(item, "source", json_pack("{s:o}", "pointer", envelope_string(pointer))) < 0) {
		json_decref(item);
		item = NULL;
	}
	doc = item ? json_pack("{s:b, s:[o], s:[], s:n}", "success", 0, "errors", item, "messages", "result") : NULL;
	respond_json(req, api_error_status(e->kind), doc);
	json_decref(doc);
}
