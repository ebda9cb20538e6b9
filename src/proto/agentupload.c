/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol's uploads to object stores (docs/AGENT-PROTOCOL.md):
 * grants of signed URLs, as the start's outputs[].upload and as the answer
 * to POST /agent/v1/upload, and that request's body. Pure.
 *
 *   grant   {"store": "s3"|"azure", "expires_in": S, "part_size": B,
 *            "upload_id": "...", "create": R, "complete": R, "abort": R,
 *            "check": R, "delete": R, "first_part": N, "parts": [R, ...]}
 *   R       {"method": "PUT", "url": "https://...", "header": "Name: value"}
 *   request {"attempt": N, "upload_id": "...", "first_part": N, "parts": K,
 *            "create": bool, "complete": bool, "abort": bool, "check": bool,
 *            "delete": bool, "file": N}
 *
 * "file" (absent = 0) names a continuous capture's file N instead of the
 * share's one object; "delete" asks for that file's DELETE.
 *
 * Members a grant does not carry are absent. A URL is checked where it is
 * read: http:// or https://, at most AGENTPROTO_URL_MAX bytes, no blank or
 * control byte (it goes into a request line as it is).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto-int.h"

static const char *const store_names[] = {[AGENT_STORE_S3] = "s3", [AGENT_STORE_AZURE] = "azure"};

static void request_done(AgentSignedRequest *q)
{
	free(q->url);
	*q = (AgentSignedRequest){0};
}

void agentproto_grant_done(AgentUploadGrant *g)
{
	if (!g)
		return;
	request_done(&g->create);
	request_done(&g->complete);
	request_done(&g->abort);
	request_done(&g->check);
	request_done(&g->remove);
	for (size_t i = 0; i < g->n_parts; i++)
		request_done(&g->parts[i]);
	free(g->parts);
	*g = (AgentUploadGrant){0};
}

void agentproto_grant_move(AgentUploadGrant *dst, AgentUploadGrant *src)
{
	agentproto_grant_done(dst);
	*dst = *src;
	*src = (AgentUploadGrant){0};
}

/* ---- building ---- */

static json_t *request_json(const AgentSignedRequest *q)
{
	json_t *o = json_pack("{s:s, s:s}", "method", q->method, "url", q->url);

	if (o && q->header[0] && json_object_set_new(o, "header", json_string(q->header)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Sets key to q's object when q was granted; false on out of memory. */
static bool put_request(json_t *o, const char *key, const AgentSignedRequest *q)
{
	if (!q->method[0] || !q->url)
		return true;
	return json_object_set_new(o, key, request_json(q)) == 0;
}

json_t *proto_grant_json(const AgentUploadGrant *g)
{
	json_t *o, *parts = json_array();

	o = json_pack("{s:s, s:I, s:I, s:s, s:I}", "store", store_names[g->store], "expires_in",
		      (json_int_t)g->expires_in_s, "part_size", (json_int_t)g->part_size, "upload_id", g->upload_id,
		      "first_part", (json_int_t)g->first_part);
	for (size_t i = 0; parts && i < g->n_parts; i++)
		if (json_array_append_new(parts, request_json(&g->parts[i])) < 0) {
			json_decref(parts);
			parts = NULL;
		}
	if (!o || !parts || !put_request(o, "create", &g->create) || !put_request(o, "complete", &g->complete) ||
	    !put_request(o, "abort", &g->abort) || !put_request(o, "check", &g->check) ||
	    !put_request(o, "delete", &g->remove) || json_object_set_new(o, "parts", parts) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Writes o (NULL: out of memory) as text into *ret and drops it. */
static int dump_owned(json_t *o, char **ret, ErrBuf *err)
{
	int r;

	if (!o)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = proto_dump(o, ret, err);
	json_decref(o);
	return r;
}

int agentproto_grant_build(const AgentUploadGrant *g, char **ret, ErrBuf *err)
{
	return dump_owned(proto_grant_json(g), ret, err);
}

int agentproto_upload_request_build(const AgentUploadRequest *q, char **ret, ErrBuf *err)
{
	json_t *o =
		json_pack("{s:I, s:s, s:I, s:I, s:b, s:b, s:b, s:b}", "attempt", (json_int_t)q->attempt, "upload_id",
			  q->upload_id, "first_part", (json_int_t)q->first_part, "parts", (json_int_t)q->n_parts,
			  "create", q->create, "complete", q->complete, "abort", q->abort, "check", q->check);

	/* Members a plain upload does not need stay out: an older controller
	 * ignores nothing it would have to know. */
	if (o && q->file && json_object_set_new(o, "file", json_integer((json_int_t)q->file)) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (o && q->remove && json_object_set_new(o, "delete", json_true()) < 0) {
		json_decref(o);
		o = NULL;
	}
	return dump_owned(o, ret, err);
}

/* ---- reading ---- */

static bool url_ok(const char *u, size_t n)
{
	if (n == 0 || n > AGENTPROTO_URL_MAX || strlen(u) != n)
		return false;
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= ' ' || (unsigned char)u[i] >= 0x7f)
			return false;
	return true;
}

static bool method_ok(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0 || strcmp(m, "DELETE") == 0;
}

/* A signed request at key of o (absent: not granted). where names it. */
static int parse_request(const json_t *v, const char *where, AgentSignedRequest *ret, ErrBuf *err)
{
	const json_t *m, *u, *h;

	if (!v || json_is_null(v))
		return 0;
	m = json_object_get(v, "method");
	u = json_object_get(v, "url");
	h = json_object_get(v, "header");
	if (!json_is_object(v) || !json_is_string(m) || !method_ok(json_string_value(m)))
		return errbuf_set(err, -EINVAL, "%s.method: not GET, PUT, POST or DELETE", where);
	if (!json_is_string(u) || !url_ok(json_string_value(u), json_string_length(u)))
		return errbuf_set(err, -EINVAL, "%s.url: not an http(s) URL of at most %u bytes without blanks", where,
				  AGENTPROTO_URL_MAX);
	if (h && !json_is_null(h)) {
		const char *t = json_is_string(h) ? json_string_value(h) : NULL;
		size_t n = t ? json_string_length(h) : 0;

		if (!t || n >= sizeof(ret->header) || strlen(t) != n || !strchr(t, ':'))
			return errbuf_set(err, -EINVAL, "%s.header: not one \"Name: value\" line of at most %zu bytes",
					  where, sizeof(ret->header) - 1);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)t[i] < ' ' || (unsigned char)t[i] >= 0x7f)
				return errbuf_set(err, -EINVAL, "%s.header: a control or non-ASCII byte", where);
		memcpy(ret->header, t, n + 1);
	}
	ret->url = strdup(json_string_value(u));
	if (!ret->url)
		return errbuf_set(err, -ENOMEM, "out of memory");
	memcpy(ret->method, json_string_value(m), strlen(json_string_value(m)) + 1);
	return 0;
}

int proto_grant_from_json(const json_t *o, const char *where, AgentUploadGrant *ret, ErrBuf *err)
{
	AgentUploadGrant g = {0};
	const char *store = json_string_value(json_object_get(o, "store"));
	const json_t *id = json_object_get(o, "upload_id"), *parts = json_object_get(o, "parts"), *v;
	uint64_t expires = 0, part_size = 0, first = 0;
	char at[96];
	size_t i;
	int r;

	if (!json_is_object(o))
		return errbuf_set(err, -EINVAL, "%s: not an object", where);
	if (store && strcmp(store, "s3") == 0)
		g.store = AGENT_STORE_S3;
	else if (store && strcmp(store, "azure") == 0)
		g.store = AGENT_STORE_AZURE;
	else
		return errbuf_set(err, -EINVAL, "%s.store: not s3 or azure", where);
	r = proto_get_u64(o, "expires_in", 7 * 24 * 3600, &expires, err);
	if (r == 0)
		r = proto_get_u64(o, "part_size", 5ull << 30, &part_size, err);
	if (r == 0)
		r = proto_get_u64(o, "first_part", 10000, &first, err);
	if (r < 0)
		return r;
	if (expires == 0 || part_size < (5u << 20))
		return errbuf_set(err, -EINVAL, "%s: expires_in and part_size (>= 5 MiB) are needed", where);
	g.expires_in_s = (uint32_t)expires;
	g.part_size = part_size;
	g.first_part = (uint32_t)first;
	if (id && !json_is_null(id)) {
		if (!json_is_string(id) || json_string_length(id) > AGENTPROTO_UPLOAD_ID_MAX ||
		    strlen(json_string_value(id)) != json_string_length(id))
			return errbuf_set(err, -EINVAL, "%s.upload_id: not a string of at most %u bytes", where,
					  AGENTPROTO_UPLOAD_ID_MAX);
		memcpy(g.upload_id, json_string_value(id), json_string_length(id) + 1);
	}
	snprintf(at, sizeof(at), "%s.create", where);
	r = parse_request(json_object_get(o, "create"), at, &g.create, err);
	snprintf(at, sizeof(at), "%s.complete", where);
	if (r == 0)
		r = parse_request(json_object_get(o, "complete"), at, &g.complete, err);
	snprintf(at, sizeof(at), "%s.abort", where);
	if (r == 0)
		r = parse_request(json_object_get(o, "abort"), at, &g.abort, err);
	snprintf(at, sizeof(at), "%s.check", where);
	if (r == 0)
		r = parse_request(json_object_get(o, "check"), at, &g.check, err);
	snprintf(at, sizeof(at), "%s.delete", where);
	if (r == 0)
		r = parse_request(json_object_get(o, "delete"), at, &g.remove, err);
	if (r == 0 && parts && !json_is_null(parts)) {
		if (!json_is_array(parts) || json_array_size(parts) > AGENTPROTO_MAX_GRANT_PARTS) {
			r = errbuf_set(err, -EINVAL, "%s.parts: not an array of at most %u", where,
				       AGENTPROTO_MAX_GRANT_PARTS);
		} else if (json_array_size(parts) > 0 && g.first_part == 0) {
			r = errbuf_set(err, -EINVAL, "%s.first_part: parts are numbered from 1", where);
		} else if (json_array_size(parts) > 0) {
			g.parts = calloc(json_array_size(parts), sizeof(*g.parts));
			if (!g.parts)
				r = errbuf_set(err, -ENOMEM, "out of memory");
			json_array_foreach(parts, i, v)
			{
				if (r < 0)
					break;
				snprintf(at, sizeof(at), "%s.parts[%zu]", where, i);
				r = parse_request(v, at, &g.parts[i], err);
				if (r == 0)
					g.n_parts++;
			}
		}
	}
	if (r < 0) {
		agentproto_grant_done(&g);
		return r;
	}
	*ret = g;
	return 0;
}

int agentproto_grant_parse(const char *p, size_t n, AgentUploadGrant *ret, ErrBuf *err)
{
	json_t *root;
	int r;

	r = proto_load(p, n, "upload grant", &root, err);
	if (r < 0)
		return r;
	r = proto_grant_from_json(root, "grant", ret, err);
	json_decref(root);
	return r;
}

static int get_bool(const json_t *o, const char *key, bool *ret, ErrBuf *err)
{
	const json_t *v = json_object_get(o, key);

	*ret = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return errbuf_set(err, -EINVAL, "%s: not true or false", key);
	*ret = json_is_true(v);
	return 0;
}

int agentproto_upload_request_parse(const json_t *body, AgentUploadRequest *ret, ErrBuf *err)
{
	AgentUploadRequest q = {0};
	const json_t *id = json_object_get(body, "upload_id");
	uint64_t attempt = 0, first = 0, n = 0, file = 0;
	int r;

	if (!json_is_object(body))
		return errbuf_set(err, -EINVAL, "body: not an object");
	r = proto_get_u64(body, "attempt", AGENTPROTO_MAX_ATTEMPT, &attempt, err);
	if (r == 0)
		r = proto_get_u64(body, "file", INT64_MAX, &file, err);
	if (r == 0)
		r = get_bool(body, "delete", &q.remove, err);
	if (r == 0)
		r = proto_get_u64(body, "first_part", 10000, &first, err);
	if (r == 0)
		r = proto_get_u64(body, "parts", AGENTPROTO_MAX_GRANT_PARTS, &n, err);
	if (r == 0)
		r = get_bool(body, "create", &q.create, err);
	if (r == 0)
		r = get_bool(body, "complete", &q.complete, err);
	if (r == 0)
		r = get_bool(body, "abort", &q.abort, err);
	if (r == 0)
		r = get_bool(body, "check", &q.check, err);
	if (r < 0)
		return r;
	if (n > 0 && (first == 0 || first + n - 1 > 10000))
		return errbuf_set(err, -EINVAL, "first_part: parts are numbered 1..10000");
	if (q.remove && file == 0)
		return errbuf_set(err, -EINVAL, "delete: only of a continuous capture's file (give file)");
	if (id && !json_is_null(id)) {
		if (!json_is_string(id) || json_string_length(id) > AGENTPROTO_UPLOAD_ID_MAX ||
		    strlen(json_string_value(id)) != json_string_length(id))
			return errbuf_set(err, -EINVAL, "upload_id: not a string of at most %u bytes",
					  AGENTPROTO_UPLOAD_ID_MAX);
		for (size_t i = 0; i < json_string_length(id); i++)
			if ((unsigned char)json_string_value(id)[i] <= ' ' ||
			    (unsigned char)json_string_value(id)[i] >= 0x7f)
				return errbuf_set(err, -EINVAL, "upload_id: a blank, control or non-ASCII byte");
		memcpy(q.upload_id, json_string_value(id), json_string_length(id) + 1);
	}
	q.attempt = (uint32_t)attempt;
	q.first_part = (uint32_t)first;
	q.n_parts = (uint32_t)n;
	q.file = file;
	*ret = q;
	return 0;
}
