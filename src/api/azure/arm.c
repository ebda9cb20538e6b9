/* SPDX-License-Identifier: MIT */
/*
 * ARM's answers: JSON with Content-Type application/json, errors as
 * {"error":{"code","message","target"}}.
 *
 * Every deliberate error is a 4xx without Retry-After: the SDK's pipeline
 * retries 408, 5xx and any 429/503 that carries Retry-After, silently and
 * for seconds, which a request that is wrong would only repeat. A limit
 * (429) therefore goes without Retry-After too: the SDK then reports it at
 * once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/azure/azure-int.h"
#include "api/jsonval.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define HOST_MAX 255

static const char internal_body[] =
	"{\"error\":{\"code\":\"InternalServerError\",\"message\":\"internal error: out of memory\"}}";

void arm_json(HttpRequest *req, unsigned status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(doc);
	if (!text) {
		http_respond(req, 500, JSON_TYPE, internal_body, sizeof(internal_body) - 1);
		return;
	}
	http_respond(req, status, JSON_TYPE, text, strlen(text));
	free(text);
}

static const char *kind_code(ApiErrorKind kind)
{
	static const char *const codes[] = {
		[API_ERR_NONE] = "InternalServerError",
		[API_ERR_INTERNAL] = "InternalServerError",
		[API_ERR_BAD_BODY] = "InvalidRequestContent",
		[API_ERR_INVALID] = "InvalidRequestFormat",
		[API_ERR_UNVERIFIED] = "InvalidRequestFormat",
		[API_ERR_NO_TARGET] = "AzureNetworkWatcherExtensionNotInstalled",
		[API_ERR_MISMATCH] = "InvalidRequestFormat",
		[API_ERR_UNAUTHENTICATED] = "AuthenticationFailed",
		[API_ERR_FORBIDDEN] = "AuthorizationFailed",
		[API_ERR_NOT_FOUND] = "PacketCaptureNotFound",
		[API_ERR_NO_ROUTE] = "InvalidResourceType",
		[API_ERR_METHOD] = "MethodNotAllowed",
		[API_ERR_CONFLICT] = "Conflict",
		[API_ERR_TOO_LARGE] = "RequestContentTooLarge",
		[API_ERR_UNSUPPORTED_MEDIA] = "UnsupportedMediaType",
		[API_ERR_BUSY] = "TooManyRequests",
		[API_ERR_UNAVAILABLE] = "ServiceUnavailable",
	};

	return (unsigned)kind < ARRAY_SIZE(codes) ? codes[kind] : "InternalServerError";
}

void arm_error(HttpRequest *req, const ApiError *e, const char *code, const char *target)
{
	char text[sizeof(e->msg) + 32];
	json_t *inner;

	if (!target)
		target = e->field;
	snprintf(text, sizeof(text), "%s%s", e->kind == API_ERR_INTERNAL ? "internal error: " : "",
		 e->msg[0] ? e->msg : "unexpected failure");
	inner = json_pack("{s:s, s:o}", "code", code ? code : kind_code(e->kind), "message", jsonval_string(text));
	if (inner && target[0] && json_object_set_new(inner, "target", jsonval_string(target)) < 0) {
		json_decref(inner);
		inner = NULL;
	}
	if (e->kind == API_ERR_METHOD && e->allow)
		http_add_header(req, "Allow", e->allow);
	if (e->kind == API_ERR_UNAUTHENTICATED)
		http_add_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
	arm_json(req, api_error_status(e->kind), inner ? json_pack("{s:o}", "error", inner) : NULL);
}

void arm_invalid(HttpRequest *req, int r, const ErrBuf *err)
{
	ApiError e;

	apierror_from_msg(&e, r == -ENOMEM ? API_ERR_INTERNAL : API_ERR_INVALID, err->msg);
	arm_error(req, &e, NULL, NULL);
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
	       c == ':' || c == '[' || c == ']';
}

void arm_base_url(HttpRequest *req, char *out, size_t cap)
{
	const char *host = http_req_header(req, "Host");
	size_t n = host ? strlen(host) : 0;
	int w;

	out[0] = '\0';
	if (n == 0 || n > HOST_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (!host_char(host[i]))
			return;
	w = snprintf(out, cap, "%s://%s", http_req_is_tls(req) ? "https" : "http", host);
	if (w < 0 || (size_t)w >= cap)
		out[0] = '\0';
}
