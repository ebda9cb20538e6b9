/* SPDX-License-Identifier: MIT */
/*
 * The agent's requests to the controller, over src/httpc: the base URL, the
 * bearer token and the protocol's bound on answers are added here; the
 * transport (kept connection, cancel, TLS, time-outs) is httpc's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/ctlclient.h"
#include "proto/agentproto.h"
#include "httpc/httpc.h"

#define CONNECT_TIMEOUT_MS 5000u
#define URL_MAX 2048

struct CtlClient {
	Httpc *http;
	char *base;      /* base_url without a trailing '/' (no route) */
	CtlRoute *route; /* or the controllers to choose from */
	char *auth;      /* "Authorization: Bearer <token>" */
};

const char *ctlroute_current(CtlRoute *r)
{
	return r->urls[atomic_load(&r->current) % r->n];
}

/* The request that went to urls[at] failed: the next controller, unless
 * another client moved the route already. */
static void route_next(CtlRoute *r, unsigned at)
{
	atomic_compare_exchange_strong(&r->current, &at, at + 1);
}

int ctlclient_global_init(ErrBuf *err)
{
	return httpc_global_init(err);
}

void ctlclient_global_cleanup(void)
{
	httpc_global_cleanup();
}

int ctlclient_new(const CtlClientConfig *cfg, CtlClient **ret, ErrBuf *err)
{
	HttpcConfig hc = {
		.cafile = cfg->cafile,
		.insecure = cfg->insecure,
		.user_agent = cfg->user_agent ? cfg->user_agent : "pcapd-agent",
		.connect_timeout_ms = CONNECT_TIMEOUT_MS,
	};
	CtlClient *c;
	size_t n;
	int r;

	if (strlen(cfg->token) > 488)
		return errbuf_set(err, -ENAMETOOLONG, "token: longer than 488 bytes");
	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, -ENOMEM, "out of memory");
	c->route = cfg->route && cfg->route->n ? cfg->route : NULL;
	n = c->route ? 0 : strlen(cfg->base_url);
	while (n > 0 && cfg->base_url[n - 1] == '/')
		n--;
	c->base = strndup(c->route ? "" : cfg->base_url, n);
	if (c->base && asprintf(&c->auth, "Authorization: Bearer %s", cfg->token) < 0)
		c->auth = NULL;
	if (!c->base || !c->auth) {
		ctlclient_free(c);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	r = httpc_new(&hc, &c->http, err);
	if (r < 0) {
		ctlclient_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void ctlclient_free(CtlClient *c)
{
	if (!c)
		return;
	httpc_free(c->http);
	free(c->base);
	free(c->auth);
	free(c);
}

void ctlclient_cancel(CtlClient *c)
{
	httpc_cancel(c->http);
}

/* One request to base + path with the shared headers (and content_type when
 * there is a body); the answer is bounded by AGENTPROTO_MAX_BODY. */
static int call(CtlClient *c, HttpcRequest *q, const char *path, const char *content_type, CtlResponse *ret,
		ErrBuf *err)
{
	char url[URL_MAX], ct[128];
	const char *hdrs[4] = {c->auth, "Accept: application/json", NULL, NULL};
	unsigned at = c->route ? atomic_load(&c->route->current) : 0;
	const char *base = c->route ? c->route->urls[at % c->route->n] : c->base;
	size_t blen = strlen(base);
	HttpcResponse resp;
	int n, r;

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	n = snprintf(url, sizeof(url), "%.*s%s", (int)blen, base, path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return errbuf_set(err, -ENAMETOOLONG, "controller URL too long");
	if (content_type) {
		n = snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		if (n < 0 || (size_t)n >= sizeof(ct))
			return errbuf_set(err, -EINVAL, "content type too long");
		hdrs[2] = ct;
	}
	q->url = url;
	q->headers = hdrs;
	q->max_body = AGENTPROTO_MAX_BODY;
	r = httpc_request(c->http, q, &resp, err);
	if (c->route && c->route->n > 1 &&
	    ((r < 0 && r != -ECANCELED && r != -EMSGSIZE && r != -ENOMEM) || (r == 0 && resp.status >= 500)))
		route_next(c->route, at);
	if (r < 0)
		return r;
	*ret = (CtlResponse){.status = resp.status, .body = resp.body, .n = resp.n};
	resp.body = NULL; /* handed over */
	httpc_response_done(&resp);
	return 0;
}

int ctlclient_get(CtlClient *c, const char *path, uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	HttpcRequest q = {.method = "GET", .timeout_ms = timeout_ms};

	return call(c, &q, path, NULL, ret, err);
}

int ctlclient_post_json(CtlClient *c, const char *path, const char *body, uint32_t timeout_ms, CtlResponse *ret,
			ErrBuf *err)
{
	return ctlclient_post(c, path, "application/json", body, strlen(body), timeout_ms, ret, err);
}

int ctlclient_post(CtlClient *c, const char *path, const char *content_type, const void *body, size_t n,
		   uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	HttpcRequest q = {.method = "POST", .body = body, .body_n = n, .timeout_ms = timeout_ms};

	return call(c, &q, path, content_type, ret, err);
}

typedef struct FdSource {
	int fd;
	int err; /* errno of a failed pread, 0 if none */
} FdSource;

static ssize_t fd_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	FdSource *s = ctx;
	ssize_t k;

	do
		k = pread(s->fd, buf, n, (off_t)off);
	while (k < 0 && errno == EINTR);
	if (k <= 0) {
		s->err = k < 0 ? errno : EIO; /* a file that shrank broke the promised size */
		return -EIO;
	}
	return k;
}

int ctlclient_post_file(CtlClient *c, const char *path, const char *content_type, int fd, uint64_t size,
			uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	FdSource src = {.fd = fd};
	HttpcRequest q = {
		.method = "POST",
		.read = fd_read,
		.read_ctx = &src,
		.read_size = size,
		.timeout_ms = timeout_ms,
	};
	char what[64];
	int r = call(c, &q, path, content_type, ret, err);

	if (r < 0 && src.err) {
		httpc_describe("POST", path, what, sizeof(what));
		return errbuf_set(err, -EIO, "%s: reading the body: %s", what, strerror(src.err));
	}
	return r;
}

void ctlclient_response_done(CtlResponse *r)
{
	if (!r)
		return;
	free(r->body);
	*r = (CtlResponse){0};
}
