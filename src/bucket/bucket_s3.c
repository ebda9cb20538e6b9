/* SPDX-License-Identifier: MIT */
/*
 * s3://, r2:// and gs:// buckets: the S3 REST API (AWS S3, Cloudflare R2,
 * Google Cloud Storage's XML API with HMAC keys, Ceph radosgw, MinIO), every
 * request signed with SigV4 (src/sign) including x-amz-content-sha256.
 *
 * Where a bucket lives:
 *   endpoint= (or AWS_ENDPOINT_URL_S3 for s3://)  ENDPOINT/BUCKET/KEY   (path style)
 *   s3:// on AWS                                  https://BUCKET.s3.REGION.amazonaws.com/KEY
 *                                                 (path style on s3.REGION.amazonaws.com when
 *                                                 the name is not DNS-safe: dots, '_', capitals)
 *   r2://                                         https://ACCOUNT_ID.r2.cloudflarestorage.com/BUCKET/KEY,
 *                                                 region "auto"
 *   gs://                                         https://storage.googleapis.com/BUCKET/KEY,
 *                                                 region "auto"
 * Keys: the URI's, else (s3) AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
 * AWS_SESSION_TOKEN or (gs) GOOGLE_HMAC_ACCESS_ID/GOOGLE_HMAC_SECRET, which the
 * CLI passes in BucketConfig. An object's key is the URI's prefix + its name.
 *
 * Requests: PUT object (payload hashed first; files above
 * STORE_SINGLE_PUT_MAX go as a multipart upload), GET (bounded), HEAD + GET
 * with Range for readers, HEAD + DELETE for remove (S3 answers 204 for a
 * missing key; the HEAD keeps remove's -ENOENT contract), multipart
 * create/upload part/complete/abort, and presigned URLs for each.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucket/bucket_store.h"
#include "sign/digest.h"
#include "sign/sigv4.h"

#define URL_MAX 2048
#define ETAG_MAX 130

typedef struct S3Bucket {
	Bucket base; /* first: a Bucket * is an S3Bucket * */
	Httpc *http;
	char *origin;    /* "https://host[:port]" */
	char *host;      /* the Host header, signed */
	char *base_path; /* "" (virtual host) or "/[endpoint path/]BUCKET" */
	char *prefix;    /* "" or "dir/" */
	char *label;     /* "s3://bucket" for messages */
	char *access_key_id, *secret_access_key, *session_token, *region;
} S3Bucket;

static const BucketOps s3_ops;

static S3Bucket *s3_of(Bucket *b)
{
	return (S3Bucket *)b;
}

static SigV4Key s3_key(const S3Bucket *s)
{
	return (SigV4Key){
		.access_key_id = s->access_key_id,
		.secret_access_key = s->secret_access_key,
		.session_token = s->session_token,
		.region = s->region,
		.service = "s3",
	};
}

/* ---- opening ---- */

static bool dns_safe(const char *b)
{
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

static char *join(const char *a, const char *b, const char *c)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", a, b ? b : "", c ? c : "") < 0)
		return NULL;
	return s;
}

static void s3_free(Bucket *b)
{
	S3Bucket *s = s3_of(b);

	httpc_free(s->http);
	free(s->origin);
	free(s->host);
	free(s->base_path);
	free(s->prefix);
	free(s->label);
	free(s->access_key_id);
	if (s->secret_access_key)
		explicit_bzero(s->secret_access_key, strlen(s->secret_access_key));
	free(s->secret_access_key);
	free(s->session_token);
	free(s->region);
	free(s);
}

int bucket_s3_open(const BucketUri *u, const BucketConfig *cfg, Bucket **ret, ErrBuf *err)
{
	const char *scheme = bucket_scheme_name(u->scheme), *endpoint = u->endpoint;
	const char *akid = u->access_key_id, *secret = u->secret_access_key, *token = NULL;
	char *aws_host = NULL, *r2_url = NULL;
	StoreEndpoint ep = {0};
	S3Bucket *s;
	int r;

	if (!akid && u->scheme == BUCKET_SCHEME_S3) {
		akid = cfg->aws_access_key_id;
		secret = cfg->aws_secret_access_key;
		token = cfg->aws_session_token;
	} else if (!akid && u->scheme == BUCKET_SCHEME_GS) {
		akid = cfg->google_hmac_access_id;
		secret = cfg->google_hmac_secret;
	}
	if (!akid || !*akid || !secret || !*secret)
		return errbuf_set(
			err, -EINVAL,
			"destination_conf: %s://%s has no access-key-id/secret-access-key and the controller has "
			"none for %s (%s)",
			scheme, u->bucket, scheme,
			u->scheme == BUCKET_SCHEME_GS ? "GOOGLE_HMAC_ACCESS_ID, GOOGLE_HMAC_SECRET"
						      : "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY");
	if (!endpoint && u->scheme == BUCKET_SCHEME_S3)
		endpoint = cfg->aws_endpoint_url_s3;
	if (!endpoint && u->scheme == BUCKET_SCHEME_R2) {
		if (asprintf(&r2_url, "https://%s.r2.cloudflarestorage.com", u->account_id) < 0)
			return errbuf_set(err, -ENOMEM, "out of memory");
		endpoint = r2_url;
	}
	if (!endpoint && u->scheme == BUCKET_SCHEME_GS)
		endpoint = "https://storage.googleapis.com";

	s = calloc(1, sizeof(*s));
	if (!s) {
		free(r2_url);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	s->base.ops = &s3_ops;
	if (u->region)
		s->region = strdup(u->region);
	else
		s->region = strdup(u->scheme == BUCKET_SCHEME_S3 ? "us-east-1" : "auto");
	if (endpoint) {
		/* S3-compatible stores: path style. */
		r = store_endpoint_parse(endpoint, &ep, err);
		if (r < 0)
			goto fail;
		s->origin = join(ep.scheme, "://", ep.hostport);
		s->host = strdup(ep.hostport);
		s->base_path = join(ep.path, "/", u->bucket);
	} else if (dns_safe(u->bucket)) {
		if (asprintf(&aws_host, "%s.s3.%s.amazonaws.com", u->bucket, s->region ? s->region : "") < 0)
			aws_host = NULL;
		s->origin = aws_host ? join("https://", aws_host, NULL) : NULL;
		s->host = aws_host;
		aws_host = NULL;
		s->base_path = strdup("");
	} else {
		if (asprintf(&aws_host, "s3.%s.amazonaws.com", s->region ? s->region : "") < 0)
			aws_host = NULL;
		s->origin = aws_host ? join("https://", aws_host, NULL) : NULL;
		s->host = aws_host;
		aws_host = NULL;
		s->base_path = join("/", u->bucket, NULL);
	}
	s->prefix = strdup(u->prefix ? u->prefix : "");
	s->label = join(scheme, "://", u->bucket);
	s->access_key_id = strdup(akid);
	s->secret_access_key = strdup(secret);
	s->session_token = token ? strdup(token) : NULL;
	if (!s->region || !s->origin || !s->host || !s->base_path || !s->prefix || !s->label || !s->access_key_id ||
	    !s->secret_access_key || (token && !s->session_token)) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = store_http_new(cfg, &s->http, err);
	if (r < 0)
		goto fail;
	store_endpoint_done(&ep);
	free(r2_url);
	*ret = &s->base;
	return 0;
fail:
	store_endpoint_done(&ep);
	free(r2_url);
	s3_free(&s->base);
	return r;
}

/* ---- one signed request ---- */

typedef struct S3Call {
	const char *method;
	const char *name;        /* object name (prefix added), or NULL for the bucket */
	const SigV4Param *query; /* raw */
	size_t n_query;
	const char *range;        /* "bytes=a-b" or NULL */
	const char *payload_hash; /* hex; NULL = of io.body (or of the empty body) */
	StoreIo io;
} S3Call;

/* The URL of a signed request: origin, then the canonical request's second
 * and third lines (the encoded path and the encoded, sorted query: exactly
 * what was signed), then extra (a presigned query) when given. */
static int url_from_creq(const char *origin, const char *creq, const char *extra, char *url, size_t cap)
{
	const char *p = strchr(creq, '\n'), *pe, *q, *qe;
	int n;

	if (!p || !(pe = strchr(p + 1, '\n')) || !(qe = strchr(pe + 1, '\n')))
		return -EINVAL;
	p++;
	q = pe + 1;
	if (extra)
		n = snprintf(url, cap, "%s%.*s?%s", origin, (int)(pe - p), p, extra);
	else if (qe > q)
		n = snprintf(url, cap, "%s%.*s?%.*s", origin, (int)(pe - p), p, (int)(qe - q), q);
	else
		n = snprintf(url, cap, "%s%.*s", origin, (int)(pe - p), p);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The object's path as signed and sent: base_path "/" prefix name. */
static int object_path(const S3Bucket *s, const char *name, char *out, size_t cap, ErrBuf *err)
{
	int n = name ? snprintf(out, cap, "%s/%s%s", s->base_path, s->prefix, name)
		     : snprintf(out, cap, "%s/", s->base_path);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "bucket: path of object %s too long", name ? name : "");
	return 0;
}

static int s3_call(S3Bucket *s, const S3Call *c, HttpcResponse *ret, char *url, size_t url_cap, ErrBuf *err)
{
	char path[URL_MAX], hash[65], host_h[300], date_h[64], sha_h[100], range_h[80], token_h[2100], *auth_h = NULL;
	SigV4Param hdrs[3];
	size_t nh = 0;
	const char *lines[8];
	size_t nl = 0;
	SigV4Key key = s3_key(s);
	SigV4Signed sig = {0};
	SigV4Request q;
	int r;

	r = object_path(s, c->name, path, sizeof(path), err);
	if (r < 0)
		return r;
	if (c->payload_hash) {
		snprintf(hash, sizeof(hash), "%s", c->payload_hash);
	} else if (digest_sha256_hex(c->io.body ? c->io.body : "", c->io.body ? c->io.body_n : 0, hash) < 0) {
		return errbuf_set(err, -EIO, "bucket: SHA-256 failed");
	}
	hdrs[nh++] = (SigV4Param){"x-amz-content-sha256", hash};
	if (c->range)
		hdrs[nh++] = (SigV4Param){"range", c->range};
	q = (SigV4Request){
		.method = c->method,
		.host = s->host,
		.path = path,
		.query = c->query,
		.n_query = c->n_query,
		.headers = hdrs,
		.n_headers = nh,
		.payload_hash = hash,
		.when = time(NULL),
	};
	r = sigv4_sign(&key, &q, &sig, err);
	if (r < 0)
		return r;

	if (url_from_creq(s->origin, sig.canonical_request, NULL, url, url_cap) < 0) {
		sigv4_signed_done(&sig);
		return errbuf_set(err, -ENAMETOOLONG, "bucket: URL too long");
	}
	snprintf(host_h, sizeof(host_h), "Host: %s", s->host);
	snprintf(date_h, sizeof(date_h), "x-amz-date: %s", sig.amz_date);
	snprintf(sha_h, sizeof(sha_h), "x-amz-content-sha256: %s", hash);
	if (asprintf(&auth_h, "Authorization: %s", sig.authorization) < 0) {
		sigv4_signed_done(&sig);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	lines[nl++] = host_h;
	lines[nl++] = date_h;
	lines[nl++] = sha_h;
	lines[nl++] = auth_h;
	if (c->range) {
		snprintf(range_h, sizeof(range_h), "Range: %s", c->range);
		lines[nl++] = range_h;
	}
	if (s->session_token) {
		snprintf(token_h, sizeof(token_h), "x-amz-security-token: %s", s->session_token);
		lines[nl++] = token_h;
	}
	lines[nl] = NULL;
	r = store_request(s->http, c->method, url, lines, &c->io, ret, err);
	free(auth_h);
	sigv4_signed_done(&sig);
	return r;
}

/* A call whose answer must be 2xx (else the store's words). */
static int s3_call_ok(S3Bucket *s, const S3Call *c, HttpcResponse *ret, ErrBuf *err)
{
	char url[URL_MAX];
	HttpcResponse resp;
	int r = s3_call(s, c, &resp, url, sizeof(url), err);

	return store_expect_2xx(r, c->method, url, &resp, ret, NULL, err);
}

static int s3_get(Bucket *b, const char *name, const char *range, HttpcWriteFn write, void *write_ctx, size_t max_body,
		  HttpcResponse *ret, ErrBuf *err)
{
	S3Call c = {.method = "GET",
		    .name = name,
		    .range = range,
		    .io = {.write = write, .write_ctx = write_ctx, .max_body = max_body}};

	return s3_call_ok(s3_of(b), &c, ret, err);
}

static int s3_head(Bucket *b, const char *name, HttpcResponse *ret, ErrBuf *err)
{
	S3Call c = {.method = "HEAD", .name = name};

	return s3_call_ok(s3_of(b), &c, ret, err);
}

static const char *s3_label(const Bucket *b)
{
	return ((const S3Bucket *)b)->label;
}

static const StoreFns s3_fns = {.get = s3_get, .head = s3_head, .label = s3_label};

/* ---- objects ---- */

static int s3_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err)
{
	S3Call c = {.method = "PUT", .name = name, .io = {.body = data ? data : "", .body_n = n}};

	return s3_call_ok(s3_of(b), &c, NULL, err);
}

static int s3_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err)
{
	StoreFile f;
	char hash[65];
	int r = store_file_open(path, &f, err);

	if (r < 0)
		return r;
	if (f.size > STORE_SINGLE_PUT_MAX) {
		r = store_put_file_parts(b, name, &f, err);
	} else {
		r = store_file_sha256(&f, 0, f.size, hash, err);
		if (r == 0) {
			S3Call c = {.method = "PUT",
				    .name = name,
				    .payload_hash = hash,
				    .io = {.file = &f, .read_size = f.size}};

			r = s3_call_ok(s3_of(b), &c, NULL, err);
		}
	}
	store_file_close(&f);
	return r;
}

static int s3_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	return store_get_bytes(b, &s3_fns, name, max, ret, ret_n, err);
}

static int s3_remove(Bucket *b, const char *name, ErrBuf *err)
{
	S3Call c = {.method = "DELETE", .name = name};
	uint64_t size;
	int r = store_size(b, &s3_fns, name, &size, err);

	return r < 0 ? r : s3_call_ok(s3_of(b), &c, NULL, err);
}

static int s3_reader_open(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err)
{
	return store_reader_open(b, &s3_fns, name, ret, err);
}

/* ---- multipart uploads ---- */

typedef struct S3Upload {
	BucketUpload base; /* first */
	S3Bucket *s;
	char *name;
	char (*etags)[ETAG_MAX]; /* etags[i]: part i + 1 */
	size_t cap;
} S3Upload;

static int s3_upload_part(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err)
{
	S3Upload *up = (S3Upload *)u;
	char num[16];
	SigV4Param q[] = {{"partNumber", num}, {"uploadId", u->id}};
	S3Call c = {.method = "PUT", .name = up->name, .query = q, .n_query = 2, .io = {.body = data, .body_n = n}};
	HttpcResponse resp;
	const char *etag;
	int r;

	if (part > up->cap) {
		size_t cap = up->cap ? up->cap * 2 : 16;
		char(*e)[ETAG_MAX];

		if (cap > BUCKET_PART_MAX)
			cap = BUCKET_PART_MAX;
		e = realloc(up->etags, cap * sizeof(*e));
		if (!e)
			return errbuf_set(err, -ENOMEM, "out of memory");
		up->etags = e;
		up->cap = cap;
	}
	snprintf(num, sizeof(num), "%u", part);
	r = s3_call_ok(up->s, &c, &resp, err);
	if (r < 0)
		return r;
	etag = httpc_header(&resp, "etag");
	if (!etag || strlen(etag) >= ETAG_MAX || strpbrk(etag, "<>&")) {
		httpc_response_done(&resp);
		return errbuf_set(err, -EPROTO, "bucket: %s: part %u of %s answered without a usable ETag",
				  up->s->label, part, up->name);
	}
	memcpy(up->etags[part - 1], etag, strlen(etag) + 1);
	httpc_response_done(&resp);
	return 0;
}

static int s3_upload_complete(BucketUpload *u, unsigned parts, ErrBuf *err)
{
	S3Upload *up = (S3Upload *)u;
	SigV4Param q[] = {{"uploadId", u->id}};
	const char **etags = calloc(parts, sizeof(*etags));
	char *body = NULL;
	HttpcResponse resp;
	int r;

	if (!etags)
		return errbuf_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < parts; i++)
		etags[i] = up->etags[i];
	r = bucket_complete_body(BUCKET_KIND_S3, NULL, etags, parts, &body, err);
	free(etags);
	if (r < 0)
		return r;
	{
		S3Call c = {.method = "POST",
			    .name = up->name,
			    .query = q,
			    .n_query = 1,
			    .io = {.body = body, .body_n = strlen(body)}};

		r = s3_call_ok(up->s, &c, &resp, err);
	}
	free(body);
	if (r < 0)
		return r;
	/* S3 may answer 200 and still fail: the error is in the body. */
	if (strstr(resp.body, "<Error>")) {
		char code[128] = "", msg[256] = "";

		store_xml_value(resp.body, "Code", code, sizeof(code));
		store_xml_value(resp.body, "Message", msg, sizeof(msg));
		r = errbuf_set(err, -EAGAIN, "bucket: %s: completing %s: %s: %s", up->s->label, up->name, code, msg);
	}
	httpc_response_done(&resp);
	return r;
}

static int s3_upload_abort(BucketUpload *u, ErrBuf *err)
{
	S3Upload *up = (S3Upload *)u;
	SigV4Param q[] = {{"uploadId", u->id}};
	S3Call c = {.method = "DELETE", .name = up->name, .query = q, .n_query = 1};

	return s3_call_ok(up->s, &c, NULL, err);
}

static void s3_upload_free(BucketUpload *u)
{
	S3Upload *up = (S3Upload *)u;

	free(up->etags);
	free(up->name);
	free(u->id);
	free(up);
}

static const BucketUploadOps s3_upload_ops = {
	.part = s3_upload_part,
	.complete = s3_upload_complete,
	.abort = s3_upload_abort,
	.free = s3_upload_free,
};

static int s3_upload_begin(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err)
{
	SigV4Param q[] = {{"uploads", ""}};
	S3Call c = {.method = "POST", .name = name, .query = q, .n_query = 1};
	S3Upload *up;
	HttpcResponse resp;
	char id[1024];
	int r = s3_call_ok(s3_of(b), &c, &resp, err);

	if (r < 0)
		return r;
	if (!store_xml_value(resp.body, "UploadId", id, sizeof(id)) || !*id) {
		httpc_response_done(&resp);
		return errbuf_set(err, -EPROTO, "bucket: %s: starting an upload of %s: no UploadId in the answer",
				  s3_of(b)->label, name);
	}
	httpc_response_done(&resp);
	up = calloc(1, sizeof(*up));
	if (!up || !(up->name = strdup(name)) || !(up->base.id = strdup(id))) {
		if (up)
			free(up->name);
		free(up);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	up->base.ops = &s3_upload_ops;
	up->s = s3_of(b);
	*ret = &up->base;
	return 0;
}

/* ---- presigned URLs ---- */

static int s3_presign(Bucket *b, const BucketUrlRequest *rq, BucketSignedUrl *ret, ErrBuf *err)
{
	S3Bucket *s = s3_of(b);
	char path[URL_MAX], num[16];
	SigV4Param q[2];
	size_t nq = 0;
	SigV4Key key = s3_key(s);
	SigV4Signed sig;
	const char *method;
	char *url = NULL;
	int r;

	switch (rq->op) {
	case BUCKET_URL_GET:
		method = "GET";
		break;
	case BUCKET_URL_PUT:
		method = "PUT";
		break;
	case BUCKET_URL_DELETE:
		method = "DELETE";
		break;
	case BUCKET_URL_UPLOAD_CREATE:
		method = "POST";
		q[nq++] = (SigV4Param){"uploads", ""};
		break;
	case BUCKET_URL_UPLOAD_PART:
		method = "PUT";
		snprintf(num, sizeof(num), "%u", rq->part);
		q[nq++] = (SigV4Param){"partNumber", num};
		q[nq++] = (SigV4Param){"uploadId", rq->upload_id};
		break;
	case BUCKET_URL_UPLOAD_COMPLETE:
		method = "POST";
		q[nq++] = (SigV4Param){"uploadId", rq->upload_id};
		break;
	case BUCKET_URL_UPLOAD_ABORT:
		method = "DELETE";
		q[nq++] = (SigV4Param){"uploadId", rq->upload_id};
		break;
	default:
		return errbuf_set(err, -EINVAL, "bucket: unknown URL operation %d", (int)rq->op);
	}
	for (size_t i = 0; i < nq; i++)
		if (!q[i].value)
			return errbuf_set(err, -EINVAL, "bucket: this URL needs an upload id");
	r = object_path(s, rq->name, path, sizeof(path), err);
	if (r < 0)
		return r;
	{
		SigV4Request sq = {
			.method = method, .host = s->host, .path = path, .query = q, .n_query = nq, .when = rq->now};

		r = sigv4_presign(&key, &sq, rq->expires_s, &sig, err);
	}
	if (r < 0)
		return r;
	url = malloc(URL_MAX + 1024);
	if (url && url_from_creq(s->origin, sig.canonical_request, sig.query, url, URL_MAX + 1024) < 0) {
		free(url);
		sigv4_signed_done(&sig);
		return errbuf_set(err, -ENAMETOOLONG, "bucket: URL too long");
	}
	sigv4_signed_done(&sig);
	if (!url)
		return errbuf_set(err, -ENOMEM, "out of memory");
	*ret = (BucketSignedUrl){.method = method, .url = url};
	return 0;
}

static const BucketOps s3_ops = {
	.kind = BUCKET_KIND_S3,
	.put_bytes = s3_put_bytes,
	.put_file = s3_put_file,
	.get_bytes = s3_get_bytes,
	.remove = s3_remove,
	.reader_open = s3_reader_open,
	.upload_begin = s3_upload_begin,
	.presign = s3_presign,
	.free = s3_free,
};
