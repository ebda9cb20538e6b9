/* SPDX-License-Identifier: MIT */
/*
 * libcurl behind the agent's two requests. The multi interface is used even
 * for one transfer at a time, for curl_multi_wakeup(): it is the one
 * thread-safe way to interrupt a transfer that waits in poll(), which is what
 * the long-poll does most of its life.
 */
#include <curl/curl.h>
#include <errno.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ctlclient.h"
#include "proto/agentproto.h"

#define CONNECT_TIMEOUT_MS 5000L
#define CTL_MAX_IDLE_S 10L /* see CURLOPT_MAXAGE_CONN below */
#define WAIT_SLICE_MS 1000

struct CtlClient {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers;
	char *base; /* base_url without a trailing '/' */
	atomic_bool cancelled;
	char curl_err[CURL_ERROR_SIZE];
	/* the answer being received */
	char *buf;
	size_t n, cap;
	bool too_big;
	/* the body being sent by ctlclient_post_file() */
	int up_fd;
	uint64_t up_off, up_size;
	int up_errno; /* a failed pread */
};

int ctlclient_global_init(ErrBuf *err)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		return errbuf_set(err, -EIO, "libcurl: %s", curl_easy_strerror(rc));
	return 0;
}

void ctlclient_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
	CtlClient *c = ctx;
	size_t n = size * nmemb;

	if (c->n + n > AGENTPROTO_MAX_BODY) {
		c->too_big = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (c->n + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *b;

		while (cap < c->n + n + 1)
			cap *= 2;
		b = realloc(c->buf, cap);
		if (!b)
			return 0;
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->n, p, n);
	c->n += n;
	c->buf[c->n] = '\0';
	return n;
}

/* Sets an option unless an earlier one failed: rc keeps the first failure. */
#define SETOPT(rc, c, opt, val) ((rc) = (rc) == CURLE_OK ? curl_easy_setopt((c), (opt), (val)) : (rc))

int ctlclient_new(const CtlClientConfig *cfg, CtlClient **ret, ErrBuf *err)
{
	char auth[512];
	CURLcode rc = CURLE_OK;
	CtlClient *c;
	size_t n;
	int r = -ENOMEM;

	if (snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->token) >= (int)sizeof(auth))
		return errbuf_set(err, -ENAMETOOLONG, "token: longer than %zu bytes", sizeof(auth) - 23);
	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, -ENOMEM, "out of memory");
	n = strlen(cfg->base_url);
	while (n > 0 && cfg->base_url[n - 1] == '/')
		n--;
	c->base = strndup(cfg->base_url, n);
	c->multi = curl_multi_init();
	c->easy = curl_easy_init();
	if (!c->base || !c->multi || !c->easy)
		goto fail;
	/* No "Expect: 100-continue": a round trip for nothing on every report. */
	c->headers = curl_slist_append(NULL, auth);
	if (!c->headers || !curl_slist_append(c->headers, "Expect:") ||
	    !curl_slist_append(c->headers, "Accept: application/json"))
		goto fail;
	SETOPT(rc, c->easy, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS time-outs */
	SETOPT(rc, c->easy, CURLOPT_HTTPHEADER, c->headers);
	SETOPT(rc, c->easy, CURLOPT_ERRORBUFFER, c->curl_err);
	SETOPT(rc, c->easy, CURLOPT_WRITEFUNCTION, on_data);
	SETOPT(rc, c->easy, CURLOPT_WRITEDATA, c);
	SETOPT(rc, c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(rc, c->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	SETOPT(rc, c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	/* The controller closes connections idle for 30 s (its default). A POST
	 * sent into a connection it has just closed fails ("Broken pipe"): reuse
	 * none that has been idle for longer than a third of that. */
	SETOPT(rc, c->easy, CURLOPT_MAXAGE_CONN, CTL_MAX_IDLE_S);
	SETOPT(rc, c->easy, CURLOPT_USERAGENT, cfg->user_agent ? cfg->user_agent : "pcapd-agent");
	if (cfg->cafile)
		SETOPT(rc, c->easy, CURLOPT_CAINFO, cfg->cafile);
	if (cfg->insecure) {
		SETOPT(rc, c->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		SETOPT(rc, c->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (rc != CURLE_OK) {
		r = errbuf_set(err, -EINVAL, "libcurl: %s", curl_easy_strerror(rc));
		goto fail_quiet;
	}
	*ret = c;
	return 0;
fail:
	errbuf_set(err, r, "out of memory");
fail_quiet:
	ctlclient_free(c);
	return r;
}

void ctlclient_free(CtlClient *c)
{
	if (!c)
		return;
	if (c->easy)
		curl_easy_cleanup(c->easy);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	free(c->base);
	free(c->buf);
	free(c);
}

void ctlclient_cancel(CtlClient *c)
{
	atomic_store(&c->cancelled, true);
	curl_multi_wakeup(c->multi);
}

static int map_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return -EKEYREJECTED; /* the controller's certificate is not trusted */
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* Runs the prepared transfer to its end or a cancel. */
static int perform(CtlClient *c, const char *what, CtlResponse *ret, ErrBuf *err)
{
	CURLcode result = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left, r = 0;

	c->n = 0;
	c->too_big = false;
	c->curl_err[0] = '\0';
	if (atomic_load(&c->cancelled))
		return errbuf_set(err, -ECANCELED, "%s: cancelled", what);
	mc = curl_multi_add_handle(c->multi, c->easy);
	if (mc != CURLM_OK)
		return errbuf_set(err, -EIO, "%s: libcurl: %s", what, curl_multi_strerror(mc));
	for (;;) {
		mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			r = errbuf_set(err, -EIO, "%s: libcurl: %s", what, curl_multi_strerror(mc));
			break;
		}
		if (!running)
			break;
		if (atomic_load(&c->cancelled)) {
			r = errbuf_set(err, -ECANCELED, "%s: cancelled", what);
			break;
		}
		mc = curl_multi_poll(c->multi, NULL, 0, WAIT_SLICE_MS, NULL);
		if (mc != CURLM_OK) {
			r = errbuf_set(err, -EIO, "%s: libcurl: %s", what, curl_multi_strerror(mc));
			break;
		}
		if (atomic_load(&c->cancelled)) {
			r = errbuf_set(err, -ECANCELED, "%s: cancelled", what);
			break;
		}
	}
	if (r == 0) {
		while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
				result = msg->data.result;
	}
	curl_multi_remove_handle(c->multi, c->easy);
	if (r < 0)
		return r;
	if (c->too_big)
		return errbuf_set(err, -EMSGSIZE, "%s: answer over %u bytes", what, AGENTPROTO_MAX_BODY);
	if (result != CURLE_OK)
		return errbuf_set(err, map_error(result), "%s: %s", what,
				  c->curl_err[0] ? c->curl_err : curl_easy_strerror(result));
	ret->body = malloc(c->n + 1);
	if (!ret->body)
		return errbuf_set(err, -ENOMEM, "out of memory");
	if (c->n)
		memcpy(ret->body, c->buf, c->n);
	ret->body[c->n] = '\0';
	ret->n = c->n;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &ret->status);
	return 0;
}

static int set_url(CtlClient *c, const char *path, ErrBuf *err)
{
	char url[2048];
	int n = snprintf(url, sizeof(url), "%s%s", c->base, path);

	if (n < 0 || (size_t)n >= sizeof(url))
		return errbuf_set(err, -ENAMETOOLONG, "controller URL too long");
	/* curl copies the string. */
	if (curl_easy_setopt(c->easy, CURLOPT_URL, url) != CURLE_OK)
		return errbuf_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* "GET /agent/v1/poll" for messages: the path without its query. */
static void describe(char *out, size_t cap, const char *method, const char *path)
{
	size_t n = strcspn(path, "?");
	int k = snprintf(out, cap, "%s %.*s", method, (int)(n > 200 ? 200 : n), path);

	if (k < 0 || (size_t)k >= cap)
		out[0] = '\0';
}

int ctlclient_get(CtlClient *c, const char *path, uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	CtlResponse resp = {0};
	char what[256];
	CURLcode rc = CURLE_OK;
	int r;

	describe(what, sizeof(what), "GET", path);
	r = set_url(c, path, err);
	if (r < 0)
		return r;
	SETOPT(rc, c->easy, CURLOPT_HTTPGET, 1L);
	SETOPT(rc, c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	if (rc != CURLE_OK)
		return errbuf_set(err, -EINVAL, "libcurl: %s", curl_easy_strerror(rc));
	r = perform(c, what, &resp, err);
	if (r < 0)
		return r;
	*ret = resp;
	return 0;
}

/* Builds a one-request header list: the shared headers plus one more. */
static int headers_with(CtlClient *c, const char *extra, struct curl_slist **ret, ErrBuf *err)
{
	struct curl_slist *h = curl_slist_append(NULL, extra);

	if (!h)
		return errbuf_set(err, -ENOMEM, "out of memory");
	for (struct curl_slist *i = c->headers; i; i = i->next) {
		if (!curl_slist_append(h, i->data)) {
			curl_slist_free_all(h);
			return errbuf_set(err, -ENOMEM, "out of memory");
		}
	}
	*ret = h;
	return 0;
}

/* Lets curl start the body again when it resends a request on a new
 * connection (the reused one turned out dead). */
static int on_seek(void *ctx, curl_off_t offset, int origin)
{
	CtlClient *c = ctx;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > c->up_size)
		return CURL_SEEKFUNC_CANTSEEK;
	c->up_off = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *ctx)
{
	CtlClient *c = ctx;
	size_t want = size * nmemb;
	ssize_t n;

	if (c->up_off >= c->up_size)
		return 0;
	if (want > c->up_size - c->up_off)
		want = (size_t)(c->up_size - c->up_off);
	do
		n = pread(c->up_fd, p, want, (off_t)c->up_off);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		/* A file that shrank is an error too: the size was promised. */
		c->up_errno = n < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	c->up_off += (uint64_t)n;
	return (size_t)n;
}

int ctlclient_post_file(CtlClient *c, const char *path, const char *content_type, int fd, uint64_t size,
			uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	struct curl_slist *h = NULL;
	CtlResponse resp = {0};
	char what[256], ct[128];
	CURLcode rc = CURLE_OK;
	int r;

	describe(what, sizeof(what), "POST", path);
	if (snprintf(ct, sizeof(ct), "Content-Type: %s", content_type) >= (int)sizeof(ct))
		return errbuf_set(err, -EINVAL, "content type too long");
	r = set_url(c, path, err);
	if (r < 0)
		return r;
	r = headers_with(c, ct, &h, err);
	if (r < 0)
		return r;
	c->up_fd = fd;
	c->up_off = 0;
	c->up_size = size;
	c->up_errno = 0;
	SETOPT(rc, c->easy, CURLOPT_HTTPHEADER, h);
	SETOPT(rc, c->easy, CURLOPT_POST, 1L);
	SETOPT(rc, c->easy, CURLOPT_POSTFIELDS, NULL); /* else curl sends those, not the read callback's */
	SETOPT(rc, c->easy, CURLOPT_READFUNCTION, on_read);
	SETOPT(rc, c->easy, CURLOPT_READDATA, c);
	SETOPT(rc, c->easy, CURLOPT_SEEKFUNCTION, on_seek);
	SETOPT(rc, c->easy, CURLOPT_SEEKDATA, c);
	SETOPT(rc, c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	SETOPT(rc, c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	if (rc == CURLE_OK)
		r = perform(c, what, &resp, err);
	else
		r = errbuf_set(err, -EINVAL, "libcurl: %s", curl_easy_strerror(rc));
	if (r < 0 && c->up_errno)
		r = errbuf_set(err, -EIO, "%s: reading the body: %s", what, strerror(c->up_errno));
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_READFUNCTION, NULL);
	curl_easy_setopt(c->easy, CURLOPT_READDATA, NULL);
	curl_easy_setopt(c->easy, CURLOPT_SEEKFUNCTION, NULL);
	curl_easy_setopt(c->easy, CURLOPT_SEEKDATA, NULL);
	curl_slist_free_all(h);
	if (r < 0)
		return r;
	*ret = resp;
	return 0;
}

int ctlclient_post_json(CtlClient *c, const char *path, const char *body, uint32_t timeout_ms, CtlResponse *ret,
			ErrBuf *err)
{
	return ctlclient_post(c, path, "application/json", body, strlen(body), timeout_ms, ret, err);
}

int ctlclient_post(CtlClient *c, const char *path, const char *content_type, const void *body, size_t n,
		   uint32_t timeout_ms, CtlResponse *ret, ErrBuf *err)
{
	char ct[128];
	struct curl_slist *h;
	CtlResponse resp = {0};
	char what[256];
	CURLcode rc = CURLE_OK;
	int r;

	describe(what, sizeof(what), "POST", path);
	r = set_url(c, path, err);
	if (r < 0)
		return r;
	/* The shared headers plus the content type, for this request only. */
	if (snprintf(ct, sizeof(ct), "Content-Type: %s", content_type) >= (int)sizeof(ct))
		return errbuf_set(err, -EINVAL, "content type too long");
	r = headers_with(c, ct, &h, err);
	if (r < 0)
		return r;
	SETOPT(rc, c->easy, CURLOPT_HTTPHEADER, h);
	SETOPT(rc, c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
	SETOPT(rc, c->easy, CURLOPT_POSTFIELDS, body);
	SETOPT(rc, c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	if (rc == CURLE_OK)
		r = perform(c, what, &resp, err);
	else
		r = errbuf_set(err, -EINVAL, "libcurl: %s", curl_easy_strerror(rc));
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_slist_free_all(h);
	if (r < 0)
		return r;
	*ret = resp;
	return 0;
}

void ctlclient_response_done(CtlResponse *r)
{
	if (!r)
		return;
	free(r->body);
	*r = (CtlResponse){0};
}
