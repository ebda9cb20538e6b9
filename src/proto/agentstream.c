/* SPDX-License-Identifier: MIT */
/*
 * The agent protocol's live streams (docs/AGENT-PROTOCOL.md, "Live
 * streams"), both sides: the query of a chunk's POST, which the agent writes
 * and the controller reads, and the controller's answer, which the agent
 * reads. Stream orders travel in poll answers (agentwork.c).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto-int.h"

#define STREAM_PATH "/agent/v1/stream"

static const char *const stream_errors[] = {
	[AGENT_STREAM_OK] = "",       [AGENT_STREAM_UNKNOWN] = "unknown", [AGENT_STREAM_GONE] = "gone",
	[AGENT_STREAM_BUSY] = "busy", [AGENT_STREAM_READ] = "read",
};

const char *agentproto_stream_error_to_string(AgentStreamError e)
{
	return (unsigned)e < ARRAY_SIZE(stream_errors) ? stream_errors[e] : "";
}

bool agentproto_tap_valid(const char *s, char out[AGENTPROTO_STREAM_TAP_LEN + 1])
{
	if (!s || strlen(s) != AGENTPROTO_STREAM_TAP_LEN)
		return false;
	for (size_t i = 0; i < AGENTPROTO_STREAM_TAP_LEN; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return false;
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[AGENTPROTO_STREAM_TAP_LEN] = '\0';
	return true;
}

int agentproto_stream_path(const AgentStreamChunk *c, char *ret, size_t cap)
{
	int n = snprintf(ret, cap, STREAM_PATH "?name=%s&id=%s&tap=%s&offset=%" PRIu64, c->name, c->id, c->tap,
			 c->offset);
	size_t len;

	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	len = (size_t)n;
	if (c->watermark_ns) {
		n = snprintf(ret + len, cap - len, "&watermark_ns=%" PRIu64, c->watermark_ns);
		if (n < 0 || (size_t)n >= cap - len)
			return -ENAMETOOLONG;
		len += (size_t)n;
	}
	if (c->error != AGENT_STREAM_OK)
		n = snprintf(ret + len, cap - len, "&end=1&error=%s", agentproto_stream_error_to_string(c->error));
	else if (c->end)
		n = snprintf(ret + len, cap - len, "&end=1");
	else
		n = 0;
	if (n < 0 || (size_t)n >= cap - len)
		return -ENAMETOOLONG;
	return 0;
}

static int get_u64(const char *(*get)(void *, const char *), void *ctx, const char *key, bool required, uint64_t max,
		   uint64_t *ret, ErrBuf *err)
{
	const char *v = get(ctx, key);

	if (!v) {
		if (required)
			return errbuf_set(err, -EINVAL, "%s: missing", key);
		*ret = 0;
		return 0;
	}
	if (parse_u64(v, strlen(v), 0, max, ret) < 0)
		return errbuf_set(err, -EINVAL, "%s: must be a whole number 0..%" PRIu64, key, max);
	return 0;
}

int agentproto_stream_parse(const char *(*get)(void *ctx, const char *key), void *ctx, AgentStreamChunk *ret,
			    ErrBuf *err)
{
	AgentStreamChunk c = {0};
	const char *v;
	uint64_t end = 0;
	int r;

	v = get(ctx, "name");
	if (!agentproto_name_valid(v))
		return errbuf_set(err, -EINVAL, "name: 1..%u characters of A-Z a-z 0-9 . _ -", AGENT_NAME_MAX);
	memcpy(c.name, v, strlen(v) + 1);
	if (!proto_take_id(get(ctx, "id"), c.id))
		return errbuf_set(err, -EINVAL, "id: must be 32 hex digits");
	if (!agentproto_tap_valid(get(ctx, "tap"), c.tap))
		return errbuf_set(err, -EINVAL, "tap: must be %u hex digits", AGENTPROTO_STREAM_TAP_LEN);
	r = get_u64(get, ctx, "offset", true, INT64_MAX, &c.offset, err);
	if (r == 0)
		r = get_u64(get, ctx, "watermark_ns", false, INT64_MAX, &c.watermark_ns, err);
	if (r == 0)
		r = get_u64(get, ctx, "end", false, 1, &end, err);
	if (r < 0)
		return r;
	c.end = end == 1;
	v = get(ctx, "error");
	if (v) {
		size_t i;

		for (i = AGENT_STREAM_UNKNOWN; i < ARRAY_SIZE(stream_errors); i++)
			if (strcmp(v, stream_errors[i]) == 0)
				break;
		if (i == ARRAY_SIZE(stream_errors))
			return errbuf_set(err, -EINVAL, "error: must be unknown, gone, busy or read");
		c.error = (AgentStreamError)i;
		c.end = true;
	}
	*ret = c;
	return 0;
}

int agentproto_stream_answer_build(const AgentStreamAnswer *a, char **ret, ErrBuf *err)
{
	json_t *o;
	int r;

	if (a->more)
		o = json_pack("{s:b, s:I}", "more", 1, "offset", (json_int_t)a->offset);
	else
		o = json_pack("{s:b, s:o}", "more", 0, "reason", proto_safe_string(a->reason));
	if (!o)
		return errbuf_set(err, -ENOMEM, "out of memory");
	r = proto_dump(o, ret, err);
	json_decref(o);
	return r;
}

int agentproto_stream_answer_parse(const char *p, size_t n, AgentStreamAnswer *ret, ErrBuf *err)
{
	AgentStreamAnswer a = {0};
	const json_t *more, *reason;
	json_t *root;
	int r;

	r = proto_load(p, n, "stream answer", &root, err);
	if (r < 0)
		return r;
	more = json_object_get(root, "more");
	if (!json_is_boolean(more)) {
		r = errbuf_set(err, -EBADMSG, "stream answer: more: not a boolean");
		goto out;
	}
	a.more = json_is_true(more);
	if (a.more) {
		if (!json_object_get(root, "offset")) {
			r = errbuf_set(err, -EBADMSG, "stream answer: offset: missing");
			goto out;
		}
		r = proto_get_u64(root, "offset", INT64_MAX, &a.offset, err);
		if (r < 0)
			goto out;
	}
	reason = json_object_get(root, "reason");
	if (json_is_string(reason))
		snprintf(a.reason, sizeof(a.reason), "%s", json_string_value(reason));
	*ret = a;
out:
	json_decref(root);
	return r;
}
