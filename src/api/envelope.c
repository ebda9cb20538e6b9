/* SPDX-License-Identifier: MIT */
/*
 * Cloudflare's response envelope (see envelope.h). Every JSON answer of the
 * public API goes through here, so the Content-Type the SDK depends on and the
 * `x-should-retry: false` that stops its silent retries are set in one place.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/envelope.h"

#define JSON_TYPE "application/json"

/* What we send when even the envelope cannot be built (out of memory). */
static const char internal_body[] =
	"{\"success\":false,\"errors\":[{\"code\":1000,\"message\":\"internal error: out of memory\"}],"
	"\"messages\":[],\"result\":null}";

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
	json_t *v = json_string(s);
	char *copy;

	if (v || !s)
		return v;
	/* Not UTF-8 (a message echoing a decoded path, say): jansson refuses
	 * it, and an envelope must still go out, so non-ASCII bytes become '?'. */
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
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

void envelope_error(HttpRequest *req, unsigned status, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *doc;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "error %d", code);
	/* A message longer than msg is cut: it stays a valid, if shorter, message. */
	http_add_header(req, "x-should-retry", status == 503 ? "true" : "false");
	doc = json_pack("{s:b, s:[{s:i, s:o}], s:[], s:n}", "success", 0, "errors", "code", code, "message",
			envelope_string(msg), "messages", "result");
	respond_json(req, status, doc);
	json_decref(doc);
}

void reply_json(HttpRequest *req, unsigned status, json_t *obj)
{
	respond_json(req, status, obj);
	json_decref(obj);
}

json_t *request_json_object(HttpRequest *req)
{
	json_error_t jerr;
	const uint8_t *body;
	size_t len = 0;
	json_t *obj;

	if (http_req_body_too_large(req)) {
		envelope_error(req, 413, API_E_TOO_LARGE, "body: larger than %u bytes", API_MAX_BODY);
		return NULL;
	}
	body = http_req_body(req, &len);
	if (!body || len == 0) {
		envelope_error(req, 400, API_E_JSON, "body: must be a JSON object (the request has no body)");
		return NULL;
	}
	/* Duplicate keys are refused: which of two values would count is a guess
	 * that a validator must not make. */
	obj = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		envelope_error(req, 400, API_E_JSON, "body: invalid JSON at line %d column %d: %s", jerr.line,
			       jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		envelope_error(req, 400, API_E_JSON, "body: must be a JSON object");
		return NULL;
	}
	return obj;
}
