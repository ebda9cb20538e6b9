/* SPDX-License-Identifier: MIT */
/*
 * The HTTP side of pcapctl (client.h), over src/httpc. One Httpc is reused for
 * every request so that polling (--wait) keeps one connection.
 *
 * How an answer is received: httpc asks stream_pcap() at the first body byte
 * whether the body is streamed (a 2xx answer to a download that is not JSON)
 * or buffered (JSON, or the error envelope of a failed download). A buffer
 * never grows past its bound: the transfer is aborted instead.
 */
#include "pcapctl/client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "httpc/httpc.h"

#define CONNECT_TIMEOUT_MS 10000u
#define JSON_TIMEOUT_MS 60000u
#define DOWNLOAD_STALL_MS 60000u /* a download that moves no byte for this long fails */

struct Client {
	Httpc *http;
	char *url;         /* as given, no trailing '/' */
	char *prefix;      /* url + "/client/v4/accounts/" + escaped account */
	char *auth_header; /* "Authorization: Bearer ..." */
};

/* Where the 2xx body of a download goes. */
typedef struct Sink {
	int fd;
	int write_errno; /* a failed write to fd */
	uint64_t bytes;  /* written to fd */
	ClientProgressFn progress;
	void *progress_ctx;
} Sink;

#define STREAM_TRAILER "pcapd-stream-end" /* the live stream's end (a trailer) */

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
	HttpcConfig hc = {
		.cafile = cfg->cacert,
		.insecure = cfg->insecure,
		.user_agent = "pcapctl/" PCAPD_VERSION,
		.connect_timeout_ms = CONNECT_TIMEOUT_MS,
		.cancel_flag = cfg->cancel,
	};
	Client *c = NULL;
	char *account = NULL;
	const char *host;
	ErrBuf e;
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

	/* httpc_global_init is not thread-safe; pcapctl makes one Client, first. */
	if (httpc_global_init(&e) < 0)
		return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "%s", e.msg);
	c = calloc(1, sizeof(*c));
	if (!c) {
		httpc_global_cleanup();
		return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
	}
	if (httpc_new(&hc, &c->http, &e) < 0)
		goto fail_nomem;
	c->url = strdup(cfg->url);
	if (!c->url)
		goto fail_nomem;
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	account = httpc_escape(cfg->account, strlen(cfg->account), false);
	if (!account)
		goto fail_nomem;
	/* A base URL in the SDK's style (".../client/v4") is accepted as is. */
	if (n >= sizeof(v4) - 1 && strcmp(c->url + n - (sizeof(v4) - 1), v4) == 0)
		c->prefix = concat(c->url, "/accounts/", account, NULL);
	else
		c->prefix = concat(c->url, v4, "/accounts/", account, NULL);
	c->auth_header = concat("Authorization: Bearer ", cfg->token, NULL);
	if (!c->prefix || !c->auth_header)
		goto fail_nomem;
	free(account);
	*ret = c;
	return 0;

fail_nomem:
	free(account);
	client_free(c);
	return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
}

void client_free(Client *c)
{
	if (!c)
		return;
	httpc_free(c->http);
	free(c->url);
	free(c->prefix);
	free(c->auth_header);
	free(c);
	httpc_global_cleanup();
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

static int sink_write(void *ctx, const void *p, size_t n)
{
	Sink *s = ctx;
	int r = write_all(s->fd, p, n);

	if (r < 0) {
		s->write_errno = -r;
		return r;
	}
	s->bytes += n;
	if (s->progress)
		s->progress(s->progress_ctx, s->bytes);
	return 0;
}

/* A JSON answer to a download is an envelope, never pcap bytes. */
static bool stream_pcap(void *ctx, long status, const char *type)
{
	(void)ctx;
	return status >= 200 && status < 300 && !(type && strncasecmp(type, "application/json", 16) == 0);
}

/* One request to prefix + path; transport failures become a ClientError. */
static int perform(Client *c, HttpcRequest *q, const char *path, const char *accept, const Sink *sink,
		   const char *out_name, HttpcResponse *ret, ClientError *err)
{
	const char *hdrs[5] = {c->auth_header, NULL, NULL, NULL, NULL};
	char *url = concat(c->prefix, path, NULL);
	char *accept_hdr = concat("Accept: ", accept, NULL);
	ErrBuf e;
	int r;

	if (!url || !accept_hdr) {
		r = fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
		goto out;
	}
	hdrs[1] = accept_hdr;
	if (q->body)
		hdrs[2] = "Content-Type: application/json";
	q->url = url;
	q->headers = hdrs;
	r = httpc_request(c->http, q, ret, &e);
	if (r == 0)
		goto out;
	if (r == -ECANCELED)
		r = fail(err, CLIENT_ERR_CANCELLED, -EINTR, 0, "interrupted");
	else if (r == -EMSGSIZE)
		r = fail(err, CLIENT_ERR_PROTOCOL, -EPROTO, 0, "the answer is larger than %zu bytes", q->max_body);
	else if (sink && sink->write_errno)
		r = fail(err, CLIENT_ERR_LOCAL, -sink->write_errno, 0, "writing %s: %s", out_name ? out_name : "output",
			 strerror(sink->write_errno));
	else if (r == -ENOMEM)
		r = fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
	else if (r == -EKEYREJECTED)
		r = fail(err, CLIENT_ERR_TRANSPORT, -EIO, 0,
			 "cannot reach %s: %s (give its CA with --cacert FILE, or use --insecure)", c->url, e.msg);
	else
		r = fail(err, CLIENT_ERR_TRANSPORT, -EIO, 0, "cannot reach %s: %s", c->url, e.msg);
out:
	free(url);
	free(accept_hdr);
	return r;
}

int client_call(Client *c, const char *method, const char *path, json_t *body, json_t **ret_result, ClientError *err)
{
	HttpcRequest q = {.method = method, .max_body = CLIENT_MAX_JSON, .timeout_ms = JSON_TIMEOUT_MS};
	HttpcResponse resp;
	char *text = NULL;
	int r;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return fail(err, CLIENT_ERR_LOCAL, -ENOMEM, 0, "out of memory");
		q.body = text;
		q.body_n = strlen(text);
	}
	/* A JSON answer is small: a server that takes longer is stuck. PUT
	 * .../stop and DELETE carry no body, like the SDK's. */
	r = perform(c, &q, path, "application/json", NULL, NULL, &resp, err);
	if (r == 0) {
		r = client_parse_envelope(resp.body, resp.n, resp.status, ret_result, err);
		httpc_response_done(&resp);
	}
	free(text);
	return r;
}

/* GET of a capture file into sink's fd (accept: its type); an error answer
 * (or JSON where a file was due) becomes the envelope's words. trailer (may
 * be NULL) gets the value of the answer's STREAM_TRAILER field, "" when it
 * sent none. */
static int get_file(Client *c, const char *path, const char *accept, Sink *sink, const char *out_name, char *trailer,
		    size_t trailer_cap, uint64_t *ret_bytes, ClientError *err)
{
	HttpcRequest q = {
		.method = "GET",
		.write = sink_write,
		.write_ctx = sink,
		.stream_if = stream_pcap,
		.max_body = CLIENT_MAX_ERROR_BODY,
		.stall_ms = DOWNLOAD_STALL_MS,
	};
	HttpcResponse resp;
	const char *end;
	long status;
	int r;

	r = perform(c, &q, path, accept, sink, out_name, &resp, err);
	if (r < 0)
		return r;
	status = resp.status;
	if (status < 200 || status >= 300 || resp.n > 0) {
		json_t *ignored = NULL;

		/* An error answer: the envelope's words. A non-2xx is never
		 * success, and neither is a JSON envelope where a pcap was due. */
		r = client_parse_envelope(resp.body, resp.n, status, &ignored, err);
		json_decref(ignored);
		if (r == 0 && status >= 200 && status < 300)
			r = fail(err, CLIENT_ERR_PROTOCOL, -EPROTO, status, "the server sent JSON, not a pcap file");
		else if (r == 0)
			r = fail(err, CLIENT_ERR_API, -EREMOTEIO, status, "HTTP status %ld", status);
		httpc_response_done(&resp);
		return r;
	}
	/* libcurl hands trailers to the header callback: httpc keeps them. */
	end = httpc_header(&resp, STREAM_TRAILER);
	if (trailer && trailer_cap) {
		size_t len = end ? strlen(end) : 0;

		if (len >= trailer_cap)
			len = trailer_cap - 1;
		memcpy(trailer, end ? end : "", len);
		trailer[len] = '\0';
	}
	httpc_response_done(&resp);
	if (ret_bytes)
		*ret_bytes = sink->bytes;
	return 0;
}

int client_download(Client *c, const char *path, int fd, const char *out_name, ClientProgressFn progress,
		    void *progress_ctx, uint64_t *ret_bytes, ClientError *err)
{
	Sink sink = {.fd = fd, .progress = progress, .progress_ctx = progress_ctx};

	return get_file(c, path, "application/vnd.tcpdump.pcap", &sink, out_name, NULL, 0, ret_bytes, err);
}

int client_stream(Client *c, const char *path, int fd, const char *out_name, uint64_t *ret_bytes, char *ret_end,
		  size_t end_cap, ClientError *err)
{
	Sink sink = {.fd = fd};

	ret_end[0] = '\0';
	return get_file(c, path, "application/x-pcapng", &sink, out_name, ret_end, end_cap, ret_bytes, err);
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
