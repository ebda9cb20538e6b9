/* SPDX-License-Identifier: MIT */
/*
 * The HTTP side of pcapctl (client.h). One curl easy handle is reused for every
 * request so that polling (--wait) keeps one connection; curl_easy_reset()
 * between requests clears options but keeps the connection and DNS caches.
 *
 * How an answer is received: the write callback decides, at the first body
 * byte, whether the body is streamed (a 2xx answer to a download) or buffered
 * (JSON, or the error envelope of a failed download). A buffer never grows
 * past its bound: the transfer is aborted instead.
 */
#include "pcapctl/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

#define CONNECT_TIMEOUT_S 10L
#define JSON_TIMEOUT_S 60L
#define DOWNLOAD_STALL_S 60L /* a download that moves no byte for this long fails */

struct Client {
	CURL *curl;
	char *url;         /* as given, no trailing '/' */
	char *prefix;      /* url + "/client/v4/accounts/" + escaped account */
	char *auth_header; /* "Authorization: Bearer ..." */
	char *cacert;
	bool insecure;
	const volatile sig_atomic_t *cancel;
	char curl_err[CURL_ERROR_SIZE];
};

/* Where the body of an answer goes. */
typedef struct Recv {
	CURL *curl;
	int fd;               /* stream a 2xx body here; -1: buffer everything */
	bool decided;         /* the status has been looked at */
	bool streaming;       /* writing to fd */
	char *buf;            /* buffered body, NUL-terminated when non-NULL */
	size_t len, cap, max; /* max: bound on len */
	bool too_big;
	int write_errno; /* a failed write to fd */
	uint64_t bytes;  /* written to fd */
	ClientProgressFn progress;
	void *progress_ctx;
	char *trailer; /* the value of the live stream's Pcapd-Stream-End, or NULL: not asked */
	size_t trailer_cap;
} Recv;

#define STREAM_TRAILER "pcapd-stream-end:"

static int fail(ClientError *err, ClientErrorKind kind, int code, long status, const char *fmt, ...) PCAPD_PRINTF(5, 6);

static int fail(ClientError *err, ClientErrorKind kind, int code, long status, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (!err)
		return code;
	err->kind = kind;
	err->http_status = status;
	err->code = 0;
	va_start(ap, fmt);
	r = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (r < 0)
		err->message[0] = '\0';
	else if ((size_t)r >= sizeof(err->message))
		memcpy(err->message + sizeof(err->message) - 4, "...", 4);
	return code;
}

/* malloc'd concatenation of the NULL-terminated list of strings. */
static char *concat(const char *first, ...)
{
	va_list ap;
	size_t n = 0, o = 0;
	const char *s;
	char *out;

	va_start(ap, first);
	for (s = first; s; s = va_arg(ap, const char *))
		n += strlen(s);
	va_end(ap);
	out = malloc(n + 1);
	if (!out)
		return NULL;
	va_start(ap, first);
	for (s = first; s; s = va_arg(ap, const char *)) {
		size_t k = strlen(s);

		memcpy(out + o, s, k);
		o += k;
	}
	va_end(ap);
	out[o] = '\0';
	return out;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int client_new(const ClientConfig *cfg, Client **ret, ClientError *err)
{
	static const char v4[] = "/client/v4";
	Client *c = NULL;
	char *account = NULL;
	const char *host;
	size_t n;

	if (strncasecmp(cfg->url, "http://", 7) == 0)
		host = cfg->url + 7;
	else if (strncasecmp(cfg->url, "https://", 8) == 0)
		host = cfg->url + 8;
	else
		return fail(err, CLIENT_ERR_LOCAL, -EINVAL, 0, "'%s' is not an http:// or https:// URL", cfg->url);
	if (*host == '\0' || *host == '/' || has_ctl(cfg->url) || strchr(cfg->url, ' '))
		return fail(err, CLIENT_ERR_LOCAL, -EINVAL, 0, "'%s' is not a valid URL", cfg->url);
	if (cfg->token[0] == '\0' || has_ctl(cfg->token))
		return fail(err, CLIENT_ERR_LOCAL, -EINVAL, 0, "the token is empty or holds control characters");
	if (cfg->account[0] == '\0' || has_ctl(cfg->account))
		return fail(err, CLIENT_ERR_LOCAL, -EINVAL, 0, "the account is empty or holds control characters");

	/* curl_global_init is not thread-safe; pcapctl makes one Client, first. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "cannot initialise libcurl");
	c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		goto fail_nomem;
	c->url = strdup(cfg->url);
	if (!c->url)
		goto fail_nomem;
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	account = curl_easy_escape(c->curl, cfg->account, 0);
	if (!account)
		goto fail_nomem;
	/* A base URL in the SDK's style (".../client/v4") is accepted as is. */
	if (n >= sizeof(v4) - 1 && strcmp(c->url + n - (sizeof(v4) - 1), v4) == 0)
		c->prefix = concat(c->url, "/accounts/", account, NULL);
	else
		c->prefix = concat(c->url, v4, "/accounts/", account, NULL);
	c->auth_header = concat("Authorization: Bearer ", cfg->token, NULL);
	c->cacert = cfg->cacert ? strdup(cfg->cacert) : NULL;
	if (!c->prefix || !c->auth_header || (cfg->cacert && !c->cacert))
		goto fail_nomem;
	c->insecure = cfg->insecure;
	c->cancel = cfg->cancel;
	curl_free(account);
	*ret = c;
	return 0;

fail_nomem:
	curl_free(account);
	client_free(c);
	return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
}

void client_free(Client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->url);
	free(c->prefix);
	free(c->auth_header);
	free(c->cacert);
	free(c);
	curl_global_cleanup();
}

const char *client_url(const Client *c)
{
	return c->url;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int buf_append(Recv *rv, const char *p, size_t n)
{
	if (n > rv->max - rv->len) {
		rv->too_big = true;
		return -E2BIG;
	}
	if (rv->len + n + 1 > rv->cap) {
		size_t cap = rv->cap ? rv->cap : 4096;
		char *nb;

		while (cap < rv->len + n + 1)
			cap *= 2;
		nb = realloc(rv->buf, cap);
		if (!nb)
			return -ENOMEM;
		rv->buf = nb;
		rv->cap = cap;
	}
	memcpy(rv->buf + rv->len, p, n);
	rv->len += n;
	rv->buf[rv->len] = '\0';
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	Recv *rv = ctx;
	size_t n = size * nmemb;
	int r;

	if (!rv->decided) {
		const char *type = NULL;
		long status = 0;

		/* A JSON answer to a download is an envelope, never pcap bytes. */
		curl_easy_getinfo(rv->curl, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(rv->curl, CURLINFO_CONTENT_TYPE, &type);
		rv->streaming = rv->fd >= 0 && status >= 200 && status < 300 &&
				!(type && strncasecmp(type, "application/json", 16) == 0);
		rv->decided = true;
	}
	if (!rv->streaming)
		return buf_append(rv, p, n) < 0 ? 0 : n; /* 0 aborts the transfer */
	r = write_all(rv->fd, p, n);
	if (r < 0) {
		rv->write_errno = -r;
		return 0;
	}
	rv->bytes += n;
	if (rv->progress)
		rv->progress(rv->progress_ctx, rv->bytes);
	return n;
}

/* Headers and trailers: keeps the live stream's end (client_stream). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx)
{
	Recv *rv = ctx;
	size_t n = size * nmemb, k = sizeof(STREAM_TRAILER) - 1;

	if (rv->trailer && n > k && strncasecmp(p, STREAM_TRAILER, k) == 0) {
		const char *v = p + k;
		size_t len = n - k;

		while (len > 0 && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
			len--;
		if (len >= rv->trailer_cap)
			len = rv->trailer_cap - 1;
		memcpy(rv->trailer, v, len);
		rv->trailer[len] = '\0';
	}
	return n;
}

static int on_xfer(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const Client *c = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return c->cancel && *c->cancel ? 1 : 0;
}

/* Sets what every request has in common; returns the header list (owned by the caller). */
static int setup(Client *c, const char *method, const char *path, const char *accept, const char *body, Recv *rv,
		 struct curl_slist **ret_headers)
{
	struct curl_slist *h = NULL, *t;
	char *url = concat(c->prefix, path, NULL);
	char *accept_hdr = concat("Accept: ", accept, NULL);
	int r = -ENOMEM;

	if (!url || !accept_hdr)
		goto out;
	t = curl_slist_append(h, c->auth_header);
	if (!t)
		goto out;
	h = t;
	t = curl_slist_append(h, accept_hdr);
	if (!t)
		goto out;
	h = t;
	t = curl_slist_append(h, "Expect:"); /* no 100-continue round trip for our small bodies */
	if (!t)
		goto out;
	h = t;
	if (body) {
		t = curl_slist_append(h, "Content-Type: application/json");
		if (!t)
			goto out;
		h = t;
	}

	curl_easy_reset(c->curl);
	c->curl_err[0] = '\0';
	/* A failed setopt here can only be out of memory or an old libcurl;
	 * the transfer then reports it. */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_URL, url); /* curl copies the string */
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "pcapctl/" PCAPD_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, rv);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, rv);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_xfer);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
	if (c->cacert)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert);
	if (c->insecure) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body); /* not copied: kept alive by the caller */
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		/* PUT …/stop and DELETE carry no body, like the SDK's. */
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	*ret_headers = h;
	h = NULL;
	r = 0;
out:
	curl_slist_free_all(h);
	free(url);
	free(accept_hdr);
	return r;
}

/* Turns a finished transfer into 0 or an error; *ret_status gets the HTTP status. */
static int finish(Client *c, CURLcode rc, const Recv *rv, const char *out_name, long *ret_status, ClientError *err)
{
	long status = 0;
	const char *why;

	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK) {
		*ret_status = status;
		return 0;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK && c->cancel && *c->cancel)
		return fail(err, CLIENT_ERR_CANCELLED, -EINTR, status, "interrupted");
	if (rc == CURLE_WRITE_ERROR && rv->too_big)
		return fail(err, CLIENT_ERR_PROTOCOL, -EPROTO, status, "the answer is larger than %zu bytes", rv->max);
	if (rc == CURLE_WRITE_ERROR && rv->write_errno)
		return fail(err, CLIENT_ERR_LOCAL, -rv->write_errno, status, "writing %s: %s",
			    out_name ? out_name : "output", strerror(rv->write_errno));
	if (rc == CURLE_WRITE_ERROR)
		return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, status, "out of memory");
	why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
		return fail(err, CLIENT_ERR_TRANSPORT, -EIO, 0,
			    "cannot reach %s: %s (give its CA with --cacert FILE, or use --insecure)", c->url, why);
	if (status == 0)
		return fail(err, CLIENT_ERR_TRANSPORT, -EIO, 0, "cannot reach %s: %s", c->url, why);
	return fail(err, CLIENT_ERR_TRANSPORT, -EIO, status, "transfer from %s failed: %s", c->url, why);
}

int client_call(Client *c, const char *method, const char *path, json_t *body, json_t **ret_result, ClientError *err)
{
	Recv rv = {.curl = c->curl, .fd = -1, .max = CLIENT_MAX_JSON};
	struct curl_slist *headers = NULL;
	char *text = NULL;
	long status = 0;
	CURLcode rc;
	int r;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
	}
	r = setup(c, method, path, "application/json", text, &rv, &headers);
	if (r < 0) {
		fail(err, CLIENT_ERR_LOCAL, r, 0, "out of memory");
		goto out;
	}
	/* A JSON answer is small: a server that takes longer is stuck. */
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, JSON_TIMEOUT_S);
	rc = curl_easy_perform(c->curl);
	r = finish(c, rc, &rv, NULL, &status, err);
	if (r < 0)
		goto out;
	r = client_parse_envelope(rv.buf, rv.len, status, ret_result, err);
out:
	curl_slist_free_all(headers);
	free(text);
	free(rv.buf);
	return r;
}

/* GET of a file into rv->fd (client_download, client_stream). */
static int get_file(Client *c, const char *path, const char *accept, Recv *rv, const char *out_name,
		    uint64_t *ret_bytes, ClientError *err)
{
	struct curl_slist *headers = NULL;
	long status = 0;
	CURLcode rc;
	int r;

	r = setup(c, "GET", path, accept, NULL, rv, &headers);
	if (r < 0) {
		fail(err, CLIENT_ERR_LOCAL, r, 0, "out of memory");
		goto out;
	}
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, DOWNLOAD_STALL_S);
	rc = curl_easy_perform(c->curl);
	r = finish(c, rc, rv, out_name, &status, err);
	if (r < 0)
		goto out;
	if (status < 200 || status >= 300 || rv->len > 0) {
		json_t *ignored = NULL;

		/* An error answer: the envelope's words. A non-2xx is never
		 * success, and neither is a JSON envelope where a pcap was due. */
		r = client_parse_envelope(rv->buf, rv->len, status, &ignored, err);
		json_decref(ignored);
		if (r == 0 && status >= 200 && status < 300)
			r = fail(err, CLIENT_ERR_PROTOCOL, -EPROTO, status, "the server sent JSON, not a pcap file");
		else if (r == 0)
			r = fail(err, CLIENT_ERR_API, -EREMOTEIO, status, "HTTP status %ld", status);
		goto out;
	}
	if (ret_bytes)
		*ret_bytes = rv->bytes;
	r = 0;
out:
	curl_slist_free_all(headers);
	return r;
}

int client_download(Client *c, const char *path, int fd, const char *out_name, ClientProgressFn progress,
		    void *progress_ctx, uint64_t *ret_bytes, ClientError *err)
{
	Recv rv = {.curl = c->curl,
		   .fd = fd,
		   .max = CLIENT_MAX_ERROR_BODY,
		   .progress = progress,
		   .progress_ctx = progress_ctx};
	int r = get_file(c, path, "application/vnd.tcpdump.pcap", &rv, out_name, ret_bytes, err);

	free(rv.buf);
	return r;
}

int client_stream(Client *c, const char *path, int fd, const char *out_name, uint64_t *ret_bytes, char *ret_end,
		  size_t end_cap, ClientError *err)
{
	Recv rv = {.curl = c->curl, .fd = fd, .max = CLIENT_MAX_ERROR_BODY, .trailer = ret_end, .trailer_cap = end_cap};
	int r;

	ret_end[0] = '\0';
	r = get_file(c, path, "application/x-pcapng", &rv, out_name, ret_bytes, err);
	free(rv.buf);
	return r;
}

/* The first line of a non-JSON body, at most 200 bytes, or a generic message. */
static int fail_body(ClientError *err, int code, ClientErrorKind kind, const char *p, size_t n, long status,
		     const char *generic)
{
	size_t k = 0;

	while (k < n && k < 200 && p[k] != '\n' && p[k] != '\r')
		k++;
	while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
		k--;
	if (k == 0)
		return fail(err, kind, code, status, "%s", generic);
	return fail(err, kind, code, status, "%s: %.*s", generic, (int)k, p);
}

int client_parse_envelope(const char *p, size_t n, long status, json_t **ret_result, ClientError *err)
{
	bool ok_status = status >= 200 && status < 300;
	json_t *root, *errors, *first, *success, *result;
	json_error_t jerr;
	int r;

	if (ok_status && (status == 204 || n == 0)) {
		*ret_result = NULL;
		return 0;
	}
	if (n == 0)
		return fail(err, CLIENT_ERR_API, -EREMOTEIO, status, "HTTP status %ld with no message", status);
	root = json_loadb(p, n, 0, &jerr);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		if (ok_status)
			return fail_body(err, -EPROTO, CLIENT_ERR_PROTOCOL, p, n, status,
					 "the answer is not a JSON envelope");
		return fail_body(err, -EREMOTEIO, CLIENT_ERR_API, p, n, status, "HTTP error");
	}
	success = json_object_get(root, "success");
	errors = json_object_get(root, "errors");
	first = json_is_array(errors) ? json_array_get(errors, 0) : NULL;
	if (!ok_status || json_is_false(success)) {
		json_t *msg = first ? json_object_get(first, "message") : NULL;
		json_t *code = first ? json_object_get(first, "code") : NULL;

		if (json_is_string(msg) && json_string_length(msg) > 0)
			r = fail(err, CLIENT_ERR_API, -EREMOTEIO, status, "%s", json_string_value(msg));
		else if (!ok_status)
			r = fail(err, CLIENT_ERR_API, -EREMOTEIO, status, "HTTP status %ld with no message", status);
		else
			r = fail(err, CLIENT_ERR_API, -EREMOTEIO, status,
				 "the server reported a failure without a message");
		if (err && json_is_integer(code))
			err->code = (long)json_integer_value(code);
		json_decref(root);
		return r;
	}
	if (success && !json_is_true(success)) {
		json_decref(root);
		return fail(err, CLIENT_ERR_PROTOCOL, -EPROTO, status, "the answer's \"success\" is not a boolean");
	}
	result = json_object_get(root, "result");
	*ret_result = result ? json_incref(result) : json_null();
	json_decref(root);
	return 0;
}
