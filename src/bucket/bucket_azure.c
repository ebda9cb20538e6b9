/* SPDX-License-Identifier: MIT */
/*
 * Azure Blob Storage containers (azblob://ACCOUNT/CONTAINER[/PREFIX] and
 * https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]): the Blob REST API
 * (x-ms-version AZURE_API_VERSION), block blobs only.
 *
 * Where: endpoint= (Azurite: http://127.0.0.1:10000/devstoreaccount1), else the
 * endpoint of the controller's --azure-storage entry for the account, else
 * https://ACCOUNT.blob.core.windows.net; a blob is ENDPOINT/CONTAINER/PREFIX+NAME.
 * Authorization: with the account key (key=, or --azure-storage) every
 * request is signed with Shared Key and presigned URLs carry a service SAS
 * made here; with only a SAS (sas=) every request carries it, and presigned
 * URLs carry it too (it is the user's own token, with its own lifetime).
 *
 * Requests: Put Blob, Get Blob (bounded; x-ms-range for readers), Get Blob
 * Properties (HEAD) for readers, Delete Blob, Put Block / Put Block List for
 * uploads in parts. An abort sends nothing: uncommitted blocks are dropped by
 * Azure after a week and never show as a blob.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bucket/bucket_store.h"
#include "sign/azsign.h"
#include "sign/digest.h"

#define AZURE_API_VERSION "2021-08-06"
#define URL_MAX 4096
#define SAS_CLOCK_SKEW_S 300 /* a SAS starts this much before now: clocks differ */

typedef struct AzBucket {
	Bucket base; /* first: a Bucket * is an AzBucket * */
	Httpc *http;
	char *origin;    /* "https://host[:port]" */
	char *base_path; /* "[/endpoint path]/CONTAINER" */
	char *container;
	char *prefix; /* "" or "dir/" */
	char *label;  /* "azure://account/container" */
	char *account;
	uint8_t *key; /* decoded account key, or NULL */
	size_t key_n;
	char *sas; /* SAS token, or NULL */
} AzBucket;

static const BucketOps az_ops;

static AzBucket *az_of(Bucket *b)
{
	return (AzBucket *)b;
}

static void az_free(Bucket *b)
{
	AzBucket *a = az_of(b);

	httpc_free(a->http);
	free(a->origin);
	free(a->base_path);
	free(a->container);
	free(a->prefix);
	free(a->label);
	free(a->account);
	if (a->key)
		explicit_bzero(a->key, a->key_n);
	free(a->key);
	if (a->sas)
		explicit_bzero(a->sas, strlen(a->sas));
	free(a->sas);
	free(a);
}

int bucket_azure_open(const BucketUri *u, const BucketConfig *cfg, Bucket **ret, ErrBuf *err)
{
	const BucketAzureAccount *acct = NULL;
	const char *key = u->key, *endpoint = u->endpoint;
	char *def = NULL;
	StoreEndpoint ep = {0};
	AzBucket *a;
	int r;

	for (size_t i = 0; i < cfg->n_azure; i++)
		if (strcmp(cfg->azure[i].account, u->account) == 0)
			acct = &cfg->azure[i];
	if (!key && !u->sas && acct)
		key = acct->key;
	if (!key && !u->sas)
		return errbuf_set(err, -EINVAL,
				  "destination_conf: Azure account %s has no key= or sas= and the controller has no "
				  "--azure-storage %s=KEY",
				  u->account, u->account);
	if (!endpoint && acct)
		endpoint = acct->endpoint;
	if (!endpoint) {
		if (asprintf(&def, "https://%s.blob.core.windows.net", u->account) < 0)
			return errbuf_set(err, -ENOMEM, "out of memory");
		endpoint = def;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		free(def);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	a->base.ops = &az_ops;
	r = store_endpoint_parse(endpoint, &ep, err);
	free(def);
	if (r < 0)
		goto fail;
	if (key) {
		r = digest_unbase64(key, strlen(key), &a->key, &a->key_n);
		if (r < 0) {
			r = errbuf_set(err, -EINVAL, "destination_conf: the key of Azure account %s is not base64",
				       u->account);
			goto fail;
		}
	} else {
		a->sas = strdup(u->sas);
	}
	if (asprintf(&a->origin, "%s://%s", ep.scheme, ep.hostport) < 0)
		a->origin = NULL;
	if (asprintf(&a->base_path, "%s/%s", ep.path, u->bucket) < 0)
		a->base_path = NULL;
	if (asprintf(&a->label, "azure://%s/%s", u->account, u->bucket) < 0)
		a->label = NULL;
	a->container = strdup(u->bucket);
	a->prefix = strdup(u->prefix ? u->prefix : "");
	a->account = strdup(u->account);
	if (!a->origin || !a->base_path || !a->label || !a->container || !a->prefix || !a->account ||
	    (!key && !a->sas)) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = store_http_new(cfg, &a->http, err);
	if (r < 0)
		goto fail;
	store_endpoint_done(&ep);
	*ret = &a->base;
	return 0;
fail:
	store_endpoint_done(&ep);
	az_free(&a->base);
	return r;
}

/* ---- one request ---- */

typedef struct AzCall {
	const char *method;
	const char *name;     /* blob name (prefix added) */
	const AzParam *query; /* raw; values URL-safe except blockid (encoded here) */
	size_t n_query;
	const char *blob_type; /* x-ms-blob-type, or NULL */
	const char *range;     /* x-ms-range "bytes=a-b", or NULL */
	StoreIo io;
} AzCall;

static int az_path(const AzBucket *a, const char *name, char *out, size_t cap, ErrBuf *err)
{
	int n = snprintf(out, cap, "%s/%s%s", a->base_path, a->prefix, name);

	if (n < 0 || (size_t)n >= cap)
		return errbuf_set(err, -ENAMETOOLONG, "bucket: path of blob %s too long", name);
	return 0;
}

/* url = origin + path + "?" + query (values encoded) [+ "&" + sas]. */
static int az_url(const AzBucket *a, const char *path, const AzParam *q, size_t nq, const char *sas, char *url,
		  size_t cap, ErrBuf *err)
{
	size_t o;
	int n = snprintf(url, cap, "%s%s", a->origin, path);

	if (n < 0 || (size_t)n >= cap)
		goto long_url;
	o = (size_t)n;
	for (size_t i = 0; i < nq; i++) {
		char *v = httpc_escape(q[i].value, strlen(q[i].value), false);

		if (!v)
			return errbuf_set(err, -ENOMEM, "out of memory");
		n = snprintf(url + o, cap - o, "%c%s=%s", i ? '&' : '?', q[i].name, v);
		free(v);
		if (n < 0 || (size_t)n >= cap - o)
			goto long_url;
		o += (size_t)n;
	}
	if (sas) {
		n = snprintf(url + o, cap - o, "%c%s", nq ? '&' : '?', sas);
		if (n < 0 || (size_t)n >= cap - o)
			goto long_url;
	}
	return 0;
long_url:
	return errbuf_set(err, -ENAMETOOLONG, "bucket: URL too long");
}

static int az_call(AzBucket *a, const AzCall *c, HttpcResponse *ret, char *url, size_t cap, ErrBuf *err)
{
	char path[URL_MAX], date[30], date_h[64], type_h[64], range_h[80], *auth = NULL, *auth_h = NULL;
	AzParam hdrs[4];
	size_t nh = 0, nl = 0;
	const char *lines[8];
	int r;

	r = az_path(a, c->name, path, sizeof(path), err);
	if (r == 0)
		r = az_url(a, path, c->query, c->n_query, a->sas, url, cap, err);
	if (r < 0)
		return r;
	if (azsign_http_date(time(NULL), date) < 0)
		return errbuf_set(err, -EINVAL, "bucket: the clock cannot be formatted");
	hdrs[nh++] = (AzParam){"x-ms-date", date};
	hdrs[nh++] = (AzParam){"x-ms-version", AZURE_API_VERSION};
	if (c->blob_type)
		hdrs[nh++] = (AzParam){"x-ms-blob-type", c->blob_type};
	if (c->range)
		hdrs[nh++] = (AzParam){"x-ms-range", c->range};
	if (a->key) {
		AzKey key = {.account = a->account, .key = a->key, .key_n = a->key_n};
		AzRequest q = {
			.method = c->method,
			.path = path,
			.query = c->query,
			.n_query = c->n_query,
			.headers = hdrs,
			.n_headers = nh,
			.content_length = c->io.file ? c->io.read_size : c->io.body_n,
		};

		r = azsign_shared_key(&key, &q, &auth, NULL, err);
		if (r < 0)
			return r;
		if (asprintf(&auth_h, "Authorization: %s", auth) < 0)
			auth_h = NULL;
		free(auth);
		if (!auth_h)
			return errbuf_set(err, -ENOMEM, "out of memory");
		lines[nl++] = auth_h;
	}
	snprintf(date_h, sizeof(date_h), "x-ms-date: %s", date);
	lines[nl++] = date_h;
	lines[nl++] = "x-ms-version: " AZURE_API_VERSION;
	if (c->blob_type) {
		snprintf(type_h, sizeof(type_h), "x-ms-blob-type: %s", c->blob_type);
		lines[nl++] = type_h;
	}
	if (c->range) {
		snprintf(range_h, sizeof(range_h), "x-ms-range: %s", c->range);
		lines[nl++] = range_h;
	}
	lines[nl] = NULL;
	r = store_request(a->http, c->method, url, lines, &c->io, ret, err);
	free(auth_h);
	return r;
}

static int az_call_ok(AzBucket *a, const AzCall *c, HttpcResponse *ret, ErrBuf *err)
{
	char url[URL_MAX];
	HttpcResponse resp;
	int r = az_call(a, c, &resp, url, sizeof(url), err);

	return store_expect_2xx(r, c->method, url, &resp, ret, "x-ms-error-code", err);
}

static int az_get(Bucket *b, const char *name, const char *range, HttpcWriteFn write, void *write_ctx, size_t max_body,
		  HttpcResponse *ret, ErrBuf *err)
{
	AzCall c = {.method = "GET",
		    .name = name,
		    .range = range,
		    .io = {.write = write, .write_ctx = write_ctx, .max_body = max_body}};

	return az_call_ok(az_of(b), &c, ret, err);
}

static int az_head(Bucket *b, const char *name, HttpcResponse *ret, ErrBuf *err)
{
	AzCall c = {.method = "HEAD", .name = name};

	return az_call_ok(az_of(b), &c, ret, err);
}

static const char *az_label(const Bucket *b)
{
	return ((const AzBucket *)b)->label;
}

static const StoreFns az_fns = {.get = az_get, .head = az_head, .label = az_label};

/* ---- objects ---- */

static int az_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err)
{
	AzCall c = {
		.method = "PUT", .name = name, .blob_type = "BlockBlob", .io = {.body = data ? data : "", .body_n = n}};

	return az_call_ok(az_of(b), &c, NULL, err);
}

static int az_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err)
{
	StoreFile f;
	int r = store_file_open(path, &f, err);

	if (r < 0)
		return r;
	if (f.size > STORE_SINGLE_PUT_MAX) {
		r = store_put_file_parts(b, name, &f, err);
	} else {
		AzCall c = {.method = "PUT",
			    .name = name,
			    .blob_type = "BlockBlob",
			    .io = {.file = &f, .read_size = f.size}};

		r = az_call_ok(az_of(b), &c, NULL, err);
	}
	store_file_close(&f);
	return r;
}

static int az_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	return store_get_bytes(b, &az_fns, name, max, ret, ret_n, err);
}

static int az_remove(Bucket *b, const char *name, ErrBuf *err)
{
	AzCall c = {.method = "DELETE", .name = name};
	int r = az_call_ok(az_of(b), &c, NULL, err);

	if (r == -ENOENT)
		return errbuf_set(err, -ENOENT, "bucket: no object %s in %s", name, az_of(b)->label);
	return r;
}

static int az_reader_open(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err)
{
	return store_reader_open(b, &az_fns, name, ret, err);
}

/* ---- block uploads ---- */

typedef struct AzUpload {
	BucketUpload base; /* first */
	AzBucket *a;
	char *name;
} AzUpload;

static int az_upload_part(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err)
{
	AzUpload *up = (AzUpload *)u;
	char bid[96];
	AzParam q[2] = {{"comp", "block"}, {"blockid", bid}};
	AzCall c = {.method = "PUT", .name = up->name, .query = q, .n_query = 2, .io = {.body = data, .body_n = n}};

	if (store_azure_block_id(u->id, part, bid, sizeof(bid)) < 0)
		return errbuf_set(err, -EINVAL, "bucket: block id of part %u", part);
	return az_call_ok(up->a, &c, NULL, err);
}

static int az_upload_complete(BucketUpload *u, unsigned parts, ErrBuf *err)
{
	AzUpload *up = (AzUpload *)u;
	AzParam q[1] = {{"comp", "blocklist"}};
	char *body;
	int r = bucket_complete_body(BUCKET_KIND_AZURE, u->id, NULL, parts, &body, err);

	if (r < 0)
		return r;
	{
		AzCall c = {.method = "PUT",
			    .name = up->name,
			    .query = q,
			    .n_query = 1,
			    .io = {.body = body, .body_n = strlen(body)}};

		r = az_call_ok(up->a, &c, NULL, err);
	}
	free(body);
	return r;
}

static int az_upload_abort(BucketUpload *u, ErrBuf *err)
{
	(void)u;
	(void)err;
	return 0; /* uncommitted blocks never become a blob; Azure drops them */
}

static void az_upload_free(BucketUpload *u)
{
	AzUpload *up = (AzUpload *)u;

	free(up->name);
	free(u->id);
	free(up);
}

static const BucketUploadOps az_upload_ops = {
	.part = az_upload_part,
	.complete = az_upload_complete,
	.abort = az_upload_abort,
	.free = az_upload_free,
};

static int az_upload_begin(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err)
{
	uint8_t rnd[8];
	char id[17];
	AzUpload *up;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errbuf_errno(err, "bucket: getrandom");
	digest_hex(rnd, sizeof(rnd), id);
	up = calloc(1, sizeof(*up));
	if (!up || !(up->name = strdup(name)) || !(up->base.id = strdup(id))) {
		if (up)
			free(up->name);
		free(up);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	up->base.ops = &az_upload_ops;
	up->a = az_of(b);
	*ret = &up->base;
	return 0;
}

/* ---- presigned URLs: a service SAS for the blob ---- */

static int az_presign(Bucket *b, const BucketUrlRequest *rq, BucketSignedUrl *ret, ErrBuf *err)
{
	AzBucket *a = az_of(b);
	char path[URL_MAX], bid[96], blob[URL_MAX], *sas = NULL, *url;
	AzParam q[2];
	size_t nq = 0;
	const char *method, *perm, *header = NULL;
	int r, n;

	switch (rq->op) {
	case BUCKET_URL_GET:
		method = "GET";
		perm = "r";
		break;
	case BUCKET_URL_PUT:
		method = "PUT";
		perm = "cw";
		header = "x-ms-blob-type: BlockBlob";
		break;
	case BUCKET_URL_DELETE:
		method = "DELETE";
		perm = "d";
		break;
	case BUCKET_URL_UPLOAD_PART:
		method = "PUT";
		perm = "w";
		if (!rq->upload_id || !*rq->upload_id || strlen(rq->upload_id) > 16 ||
		    strspn(rq->upload_id, "0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZghijklmnopqrstuvwxyz") !=
			    strlen(rq->upload_id))
			return errbuf_set(err, -EINVAL,
					  "bucket: an Azure part URL needs an upload id of 1..16 [A-Za-z0-9]");
		if (store_azure_block_id(rq->upload_id, rq->part, bid, sizeof(bid)) < 0)
			return errbuf_set(err, -EINVAL, "bucket: block id of part %u", rq->part);
		q[nq++] = (AzParam){"comp", "block"};
		q[nq++] = (AzParam){"blockid", bid};
		break;
	case BUCKET_URL_UPLOAD_COMPLETE:
		method = "PUT";
		perm = "cw";
		q[nq++] = (AzParam){"comp", "blocklist"};
		break;
	case BUCKET_URL_UPLOAD_CREATE:
	case BUCKET_URL_UPLOAD_ABORT:
		return errbuf_set(
			err, -EOPNOTSUPP,
			"bucket: Azure uploads need no create or abort request (blocks are committed by the list)");
	default:
		return errbuf_set(err, -EINVAL, "bucket: unknown URL operation %d", (int)rq->op);
	}
	r = az_path(a, rq->name, path, sizeof(path), err);
	if (r < 0)
		return r;
	if (a->key) {
		AzKey key = {.account = a->account, .key = a->key, .key_n = a->key_n};
		AzSas s = {.permissions = perm,
			   .start = rq->now - SAS_CLOCK_SKEW_S,
			   .expiry = rq->now + (time_t)rq->expires_s,
			   .container = a->container,
			   .protocol = "https,http"};

		n = snprintf(blob, sizeof(blob), "%s%s", a->prefix, rq->name);
		if (n < 0 || (size_t)n >= sizeof(blob))
			return errbuf_set(err, -ENAMETOOLONG, "bucket: blob name too long");
		s.blob = blob;
		r = azsign_sas(&key, &s, &sas, NULL, err);
		if (r < 0)
			return r;
	}
	url = malloc(URL_MAX);
	if (!url) {
		free(sas);
		return errbuf_set(err, -ENOMEM, "out of memory");
	}
	r = az_url(a, path, q, nq, sas ? sas : a->sas, url, URL_MAX, err);
	free(sas);
	if (r < 0) {
		free(url);
		return r;
	}
	*ret = (BucketSignedUrl){.method = method, .url = url, .header = header};
	return 0;
}

static const BucketOps az_ops = {
	.kind = BUCKET_KIND_AZURE,
	.put_bytes = az_put_bytes,
	.put_file = az_put_file,
	.get_bytes = az_get_bytes,
	.remove = az_remove,
	.reader_open = az_reader_open,
	.upload_begin = az_upload_begin,
	.presign = az_presign,
	.free = az_free,
};
