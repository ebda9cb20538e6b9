/* SPDX-License-Identifier: MIT */
/*
 * libcurl behind httpc.h. The multi interface is used even for one transfer at
 * a time, for curl_multi_wakeup(): httpc_cancel() must be able to interrupt a
 * transfer that waits in poll() (the agent's long-poll spends its life there).
 *
 * One easy handle per Httpc, reset before every request (curl_easy_reset keeps
 * the connection cache, DNS cache and TLS sessions). Per request, the answer
 * is received into Xfer: the header callback keeps the final answer's headers
 * (a new status line, as after "100 Continue", starts them over); the write
 * callback decides at the first body byte whether the body is streamed or
 * buffered, and never lets a buffer pass its bound.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/sbuf.h"
#include "httpc/httpc.h"

#define CONNECT_TIMEOUT_MS_DEFAULT 10000L
#define WAIT_SLICE_MS 1000
#define UPLOAD_BUFFER (512L << 10) /* bigger than curl's 64 KiB default: fewer read callbacks for parts */
#define DETAIL_MAX 160

struct Httpc {
	CURLM *multi;
	CURL *easy;
	char *cafile;
	char *user_agent;
	bool insecure;
	long connect_timeout_ms;
	const volatile sig_atomic_t *cancel_flag;
	atomic_bool cancelled;
	char curl_err[CURL_ERROR_SIZE];
};

/* One transfer's state, shared with the callbacks. */
typedef struct Xfer {
	Httpc *c;
	const HttpcRequest *req;
	/* request body */
	uint64_t up_off, up_size;
	int read_err; /* -errno from the read callback */
	/* answer */
	bool decided, streaming;
	SBuf buf;   /* a buffered answer */
	size_t max; /* its bound */
	bool too_big;
	uint64_t streamed;
	int write_err; /* -errno from the write callback */
	char *hdrs;
	size_t hdrs_n;
	bool hdrs_too_big;
	bool nomem;
} Xfer;

int httpc_global_init(ErrBuf *err)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		return errbuf_set(err, -EIO, "libcurl: %s", curl_easy_strerror(rc));
	return 0;
}

void httpc_global_cleanup(void)
{
	curl_global_cleanup();
}

int httpc_new(const HttpcConfig *cfg, Httpc **ret, ErrBuf *err)
{
	Httpc *c = calloc(1, sizeof(*c));

	if (!c)
		return errbuf_set(err, -ENOMEM, "out of memory");
	c->multi = curl_multi_init();
	c->easy = curl_easy_init();
	c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "pcapd/" PCAPD_VERSION);
	c->cafile = cfg->cafile ? strdup(cfg->cafile) : NULL;
	if (!c->multi || !c->easy || !c->user_agent || (cfg->cafile && !c->cafile)) {
		httpc_free(c);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	c->insecure = cfg->insecure;
	c->connect_timeout_ms = cfg->connect_timeout_ms ? (long)cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS_DEFAULT;
	c->cancel_flag = cfg->cancel_flag;
	*ret = c;
	return 0;
}

void httpc_free(Httpc *c)
{
	if (!c)
		return;
	if (c->easy)
		curl_easy_cleanup(c->easy);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c->cafile);
	free(c->user_agent);
	free(c);
}

void httpc_cancel(Httpc *c)
{
	atomic_store(&c->cancelled, true);
	curl_multi_wakeup(c->multi);
}

static bool is_cancelled(const Httpc *c)
{
	return atomic_load(&c->cancelled) || (c->cancel_flag && *c->cancel_flag);
}

char *httpc_escape(const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '~' || (ch == '/' && keep_slash)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

void httpc_describe(const char *method, const char *url, char *out, size_t cap)
{
	const char *p = strstr(url, "://");
	size_t n;
	int k;

	p = p ? p + 3 : url;
	n = strcspn(p, "?#");
	k = snprintf(out, cap, "%s %.*s", method ? method : "GET", (int)(n > 200 ? 200 : n), p);
	if (k < 0)
		out[0] = '\0';
	else if ((size_t)k >= cap && cap > 4)
		memcpy(out + cap - 4, "...", 4);
}

/* The first line of s, at most DETAIL_MAX bytes, for messages. */
static int line_len(const char *s)
{
	size_t n = strcspn(s, "\r\n");

	return (int)(n > DETAIL_MAX ? DETAIL_MAX : n);
}

int httpc_status_error(ErrBuf *err, int code_ret, const char *method, const char *url, long status, const char *code,
		       const char *detail)
{
	char what[256];

	httpc_describe(method, url, what, sizeof(what));
	if (code && *code && detail && *detail)
		return errbuf_set(err, code_ret, "%s: HTTP %ld %.*s: %.*s", what, status, line_len(code), code,
				  line_len(detail), detail);
	if (code && *code)
		return errbuf_set(err, code_ret, "%s: HTTP %ld %.*s", what, status, line_len(code), code);
	if (detail && *detail)
		return errbuf_set(err, code_ret, "%s: HTTP %ld: %.*s", what, status, line_len(detail), detail);
	return errbuf_set(err, code_ret, "%s: HTTP %ld", what, status);
}

/* ---- callbacks ---- */

static size_t on_header(char *p, size_t size, size_t nitems, void *ctx)
{
	Xfer *x = ctx;
	size_t n = size * nitems, name_n, v, vend, need;

	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		x->hdrs_n = 0; /* a new answer (after 100 Continue): start over */
		return n;
	}
	name_n = 0;
	while (name_n < n && p[name_n] != ':')
		name_n++;
	if (name_n == 0 || name_n == n)
		return n; /* the blank line, or not a header */
	v = name_n + 1;
	while (v < n && (p[v] == ' ' || p[v] == '\t'))
		v++;
	vend = n;
	while (vend > v && (p[vend - 1] == '\r' || p[vend - 1] == '\n' || p[vend - 1] == ' ' || p[vend - 1] == '\t'))
		vend--;
	need = name_n + 1 + (vend - v) + 1;
	if (x->hdrs_n + need > HTTPC_MAX_HEADER_BYTES) {
		x->hdrs_too_big = true;
		return 0; /* aborts the transfer */
	}
	if (!x->hdrs) {
		x->hdrs = malloc(HTTPC_MAX_HEADER_BYTES);
		if (!x->hdrs) {
			x->nomem = true;
			return 0;
		}
	}
	for (size_t i = 0; i < name_n; i++) {
		char ch = p[i];

		x->hdrs[x->hdrs_n + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	x->hdrs[x->hdrs_n + name_n] = '\0';
	memcpy(x->hdrs + x->hdrs_n + name_n + 1, p + v, vend - v);
	x->hdrs[x->hdrs_n + need - 1] = '\0';
	x->hdrs_n += need;
	return n;
}

/* Buffers n more bytes of the answer, within its bound. */
static int buf_append(Xfer *x, const char *p, size_t n)
{
	if (n > x->max - x->buf.n) {
		x->too_big = true;
		return -EMSGSIZE;
	}
	sbuf_addn(&x->buf, p, n);
	if (x->buf.nomem) {
		x->nomem = true;
		return -ENOMEM;
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	Xfer *x = ctx;
	size_t n = size * nmemb;
	int r;

	if (!x->decided) {
		const char *type = NULL;
		long status = 0;

		curl_easy_getinfo(x->c->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(x->c->easy, CURLINFO_CONTENT_TYPE, &type);
		if (!x->req->write)
			x->streaming = false;
		else if (x->req->stream_if)
			x->streaming = x->req->stream_if(x->req->write_ctx, status, type);
		else
			x->streaming = status >= 200 && status < 300;
		x->decided = true;
	}
	if (!x->streaming)
		return buf_append(x, p, n) < 0 ? 0 : n; /* 0 aborts the transfer */
	r = x->req->write(x->req->write_ctx, p, n);
	if (r < 0) {
		x->write_err = r;
		return 0;
	}
	x->streamed += n;
	return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *ctx)
{
	Xfer *x = ctx;
	const HttpcRequest *q = x->req;
	size_t want = size * nmemb;
	ssize_t n;

	if (x->up_off >= x->up_size)
		return 0;
	if (want > x->up_size - x->up_off)
		want = (size_t)(x->up_size - x->up_off);
	if (q->read) {
		n = q->read(q->read_ctx, x->up_off, p, want);
		if (n <= 0 || (size_t)n > want) {
			x->read_err = n < 0 ? (int)n : -EIO; /* a body that shrank breaks the promised size */
			return CURL_READFUNC_ABORT;
		}
	} else {
		memcpy(p, (const char *)q->body + x->up_off, want);
		n = (ssize_t)want;
	}
	x->up_off += (uint64_t)n;
	return (size_t)n;
}

/* curl rewinds the body to resend it (a reused connection the server closed). */
static int on_seek(void *ctx, curl_off_t offset, int origin)
{
	Xfer *x = ctx;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->up_size)
		return CURL_SEEKFUNC_FAIL;
	x->up_off = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static int on_xfer(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const Xfer *x = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return is_cancelled(x->c) ? 1 : 0;
}

/* ---- one request ---- */

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
		return -EKEYREJECTED;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Sets an option unless an earlier one failed: rc keeps the first failure. */
#define SETOPT(rc, e, opt, val) ((rc) = (rc) == CURLE_OK ? curl_easy_setopt((e), (opt), (val)) : (rc))

static bool method_is(const char *m, const char *want)
{
	return strcmp(m, want) == 0;
}

static int prepare(Httpc *c, const HttpcRequest *q, Xfer *x, struct curl_slist **ret_h, ErrBuf *err)
{
	const char *m = q->method ? q->method : "GET";
	bool upload = q->read || q->body || method_is(m, "PUT") || method_is(m, "POST");
	struct curl_slist *h = NULL, *t;
	CURLcode rc = CURLE_OK;

	if (q->read && q->body)
		return errbuf_set(err, -EINVAL, "httpc: a request has one body, not two");
	if (!q->url || (strncasecmp(q->url, "http://", 7) != 0 && strncasecmp(q->url, "https://", 8) != 0))
		return errbuf_set(err, -EINVAL, "httpc: '%.64s' is not an http:// or https:// URL",
				  q->url ? q->url : "");
	for (const char *const *l = q->headers; l && *l; l++) {
		t = curl_slist_append(h, *l);
		if (!t)
			goto nomem;
		h = t;
	}
	if (upload && !q->expect_continue) {
		t = curl_slist_append(h, "Expect:");
		if (!t)
			goto nomem;
		h = t;
	}

	curl_easy_reset(c->easy);
	c->curl_err[0] = '\0';
	SETOPT(rc, c->easy, CURLOPT_URL, q->url); /* curl copies the string */
	SETOPT(rc, c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(rc, c->easy, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS time-outs */
	SETOPT(rc, c->easy, CURLOPT_ERRORBUFFER, c->curl_err);
	SETOPT(rc, c->easy, CURLOPT_USERAGENT, c->user_agent);
	SETOPT(rc, c->easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	SETOPT(rc, c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Servers close idle connections (the controller at 30 s, stores at
	 * their own pace); a request sent into a connection the server has just
	 * closed fails ("Broken pipe"). Reuse none idle for longer than
	 * HTTPC_MAX_IDLE_S. */
	SETOPT(rc, c->easy, CURLOPT_MAXAGE_CONN, (long)HTTPC_MAX_IDLE_S);
	SETOPT(rc, c->easy, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(rc, c->easy, CURLOPT_HEADERDATA, x);
	SETOPT(rc, c->easy, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(rc, c->easy, CURLOPT_WRITEDATA, x);
	SETOPT(rc, c->easy, CURLOPT_NOPROGRESS, 0L);
	SETOPT(rc, c->easy, CURLOPT_XFERINFOFUNCTION, on_xfer);
	SETOPT(rc, c->easy, CURLOPT_XFERINFODATA, x);
	if (h)
		SETOPT(rc, c->easy, CURLOPT_HTTPHEADER, h);
	if (c->cafile)
		SETOPT(rc, c->easy, CURLOPT_CAINFO, c->cafile);
	if (c->insecure) {
		SETOPT(rc, c->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		SETOPT(rc, c->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (q->timeout_ms)
		SETOPT(rc, c->easy, CURLOPT_TIMEOUT_MS, (long)q->timeout_ms);
	if (q->stall_ms) {
		SETOPT(rc, c->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
		SETOPT(rc, c->easy, CURLOPT_LOW_SPEED_TIME, (long)((q->stall_ms + 999) / 1000));
	}
	if (upload) {
		/* PUT and POST always send a Content-Length, 0 without a body
		 * (S3's CreateMultipartUpload is a POST without one). */
		x->up_size = q->read ? q->read_size : q->body ? q->body_n : 0;
		SETOPT(rc, c->easy, CURLOPT_UPLOAD, 1L);
		SETOPT(rc, c->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->up_size);
		SETOPT(rc, c->easy, CURLOPT_READFUNCTION, on_read);
		SETOPT(rc, c->easy, CURLOPT_READDATA, x);
		SETOPT(rc, c->easy, CURLOPT_SEEKFUNCTION, on_seek);
		SETOPT(rc, c->easy, CURLOPT_SEEKDATA, x);
		SETOPT(rc, c->easy, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
		if (!method_is(m, "PUT"))
			SETOPT(rc, c->easy, CURLOPT_CUSTOMREQUEST, m);
	} else if (method_is(m, "HEAD")) {
		SETOPT(rc, c->easy, CURLOPT_NOBODY, 1L);
	} else if (method_is(m, "GET")) {
		SETOPT(rc, c->easy, CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(rc, c->easy, CURLOPT_CUSTOMREQUEST, m);
	}
	if (rc != CURLE_OK) {
		curl_slist_free_all(h);
		return errbuf_set(err, rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL, "libcurl: %s",
				  curl_easy_strerror(rc));
	}
	*ret_h = h;
	return 0;
nomem:
	curl_slist_free_all(h);
	return errbuf_set(err, -ENOMEM, "out of memory");
}

/* Runs the prepared transfer to its end or a cancel; *ret_result is curl's
 * verdict when the loop ran to the end. */
static int run(Httpc *c, const char *what, CURLcode *ret_result, ErrBuf *err)
{
	CURLcode result = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left, r = 0;
	int slice = c->cancel_flag ? (int)HTTPC_FLAG_POLL_MS : WAIT_SLICE_MS;

	if (is_cancelled(c))
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
		if (is_cancelled(c)) {
			r = errbuf_set(err, -ECANCELED, "%s: cancelled", what);
			break;
		}
		mc = curl_multi_poll(c->multi, NULL, 0, slice, NULL);
		if (mc != CURLM_OK) {
			r = errbuf_set(err, -EIO, "%s: libcurl: %s", what, curl_multi_strerror(mc));
			break;
		}
		if (is_cancelled(c)) {
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
	*ret_result = result;
	return r;
}

int httpc_request(Httpc *c, const HttpcRequest *q, HttpcResponse *ret, ErrBuf *err)
{
	Xfer x = {.c = c, .req = q, .max = q->max_body ? q->max_body : HTTPC_MAX_BODY_DEFAULT};
	struct curl_slist *h = NULL;
	CURLcode result = CURLE_OK;
	char what[256], *body;
	size_t n_body;
	int r;

	httpc_describe(q->method, q->url ? q->url : "", what, sizeof(what));
	r = prepare(c, q, &x, &h, err);
	if (r < 0)
		return r;
	r = run(c, what, &result, err);
	curl_slist_free_all(h);
	if (r < 0)
		goto fail;
	if (result == CURLE_ABORTED_BY_CALLBACK && is_cancelled(c)) {
		r = errbuf_set(err, -ECANCELED, "%s: cancelled", what);
	} else if (x.read_err) {
		r = errbuf_set(err, x.read_err, "%s: reading the body to send: %s", what, strerror(-x.read_err));
	} else if (x.write_err) {
		r = errbuf_set(err, x.write_err, "%s: writing the answer: %s", what, strerror(-x.write_err));
	} else if (x.too_big) {
		r = errbuf_set(err, -EMSGSIZE, "%s: answer over %zu bytes", what, x.max);
	} else if (x.hdrs_too_big) {
		r = errbuf_set(err, -EMSGSIZE, "%s: answer headers over %u bytes", what, HTTPC_MAX_HEADER_BYTES);
	} else if (x.nomem) {
		r = errbuf_set(err, -ENOMEM, "%s: out of memory", what);
	} else if (result != CURLE_OK) {
		r = errbuf_set(err, map_error(result), "%s: %s", what,
			       c->curl_err[0] ? c->curl_err : curl_easy_strerror(result));
	}
	if (r < 0)
		goto fail;
	n_body = x.buf.n;
	body = sbuf_take(&x.buf); /* "" when nothing came */
	if (!body) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	*ret = (HttpcResponse){.body = body, .n = n_body, .streamed = x.streamed, .hdrs = x.hdrs, .hdrs_n = x.hdrs_n};
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &ret->status);
	return 0;
fail:
	sbuf_done(&x.buf);
	free(x.hdrs);
	return r;
}

void httpc_response_done(HttpcResponse *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->hdrs);
	*r = (HttpcResponse){0};
}

const char *httpc_header(const HttpcResponse *r, const char *name)
{
	size_t i = 0;

	while (r->hdrs && i < r->hdrs_n) {
		const char *n = r->hdrs + i, *v = n + strlen(n) + 1;

		if (strcasecmp(n, name) == 0)
			return v;
		i = (size_t)(v - r->hdrs) + strlen(v) + 1;
	}
	return NULL;
}
