/* SPDX-License-Identifier: MIT */
/*
 * Buckets: the dispatch of a Bucket's operations to its scheme (bucket_int.h).
 * URIs are parsed by bucket_uri.c; object names and part numbers are checked
 * here, once, for every scheme.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket/bucket_int.h"

#define COPY_BUFFER (256u << 10) /* bucket_reader_copy's buffer, where the scheme streams none */

int bucket_uri_check(const char *uri, size_t n, ErrBuf *err)
{
	BucketUri u;
	int r = bucket_uri_parse(uri, n, &u, err);

	if (r == 0)
		bucket_uri_done(&u);
	return r;
}

int bucket_uri_normalize(const char *uri, char *ret, size_t cap, ErrBuf *err)
{
	size_t n = uri ? strlen(uri) : 0;
	BucketScheme scheme;
	BucketUri u;
	int r;

	r = bucket_uri_parse(uri, n, &u, err);
	if (r < 0)
		return r;
	scheme = u.scheme;
	bucket_uri_done(&u);
	if (cap < n + 1)
		return errbuf_set(err, -ENAMETOOLONG, "destination_conf: no room for its normal form");
	if (scheme != BUCKET_SCHEME_FILE) {
		memcpy(ret, uri, n + 1);
		return 0;
	}
	/* A file:// URI carries no credentials: its identity is its normal
	 * form (never longer than the URI). */
	return bucket_uri_match_key(uri, n, ret, cap, err);
}

int bucket_open(const char *uri, const BucketConfig *cfg, Bucket **ret, ErrBuf *err)
{
	BucketUri u;
	int r;

	r = bucket_uri_parse(uri, uri ? strlen(uri) : 0, &u, err);
	if (r < 0)
		return r;
	switch (u.scheme) {
	case BUCKET_SCHEME_FILE:
		r = bucket_file_open(u.path, cfg, ret, err);
		break;
	case BUCKET_SCHEME_S3:
	case BUCKET_SCHEME_R2:
	case BUCKET_SCHEME_GS:
	case BUCKET_SCHEME_AZURE:
		r = u.scheme == BUCKET_SCHEME_AZURE ? bucket_azure_open(&u, cfg, ret, err)
						    : bucket_s3_open(&u, cfg, ret, err);
		break;
	}
	bucket_uri_done(&u);
	return r;
}

void bucket_free(Bucket *b)
{
	if (b)
		b->ops->free(b);
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Object names: 1..200 bytes of [A-Za-z0-9._-], not starting with '.' (so
 * never "." or "..", and never a temporary file's name). */
static int check_name(const char *name, ErrBuf *err)
{
	size_t n;

	if (!name || !*name)
		return errbuf_set(err, -EINVAL, "bucket: empty object name");
	n = strnlen(name, 201);
	if (n > 200)
		return errbuf_set(err, -EINVAL, "bucket: object name longer than 200 bytes");
	if (name[0] == '.')
		return errbuf_set(err, -EINVAL, "bucket: object name '%s' starts with '.'", name);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return errbuf_set(err, -EINVAL,
					  "bucket: object name '%s' has a byte outside [A-Za-z0-9._-] at offset %zu",
					  name, i);
	}
	return 0;
}

int bucket_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->put_bytes(b, name, data, n, err);
}

int bucket_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err)
{
	int r = check_name(name, err);

	if (r < 0)
		return r;
	if (!path || !*path)
		return errbuf_set(err, -EINVAL, "bucket: no source file for object %s", name);
	return b->ops->put_file(b, name, path, err);
}

int bucket_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->get_bytes(b, name, max, ret, ret_n, err);
}

int bucket_remove(Bucket *b, const char *name, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->remove(b, name, err);
}

BucketKind bucket_kind(const Bucket *b)
{
	return b->ops->kind;
}

/* ---- readers ---- */

int bucket_reader_open(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->reader_open(b, name, ret, err);
}

uint64_t bucket_reader_size(const BucketReader *r)
{
	return r->size;
}

ssize_t bucket_reader_pread(BucketReader *r, void *buf, size_t n, uint64_t off, ErrBuf *err)
{
	if (off >= r->size || n == 0)
		return 0;
	if (n > r->size - off)
		n = (size_t)(r->size - off);
	return r->ops->pread(r, buf, n, off, err);
}

/* The default copy: preads through a bounded buffer. */
static int copy_by_pread(BucketReader *r, uint64_t off, uint64_t n, BucketSinkFn sink, void *ctx, ErrBuf *err)
{
	size_t cap = n < COPY_BUFFER ? (size_t)n : COPY_BUFFER;
	uint8_t *buf = malloc(cap ? cap : 1);
	int rc = 0;

	if (!buf)
		return errbuf_set(err, -ENOMEM, "out of memory");
	while (n > 0 && rc == 0) {
		size_t want = n < cap ? (size_t)n : cap;
		ssize_t k = r->ops->pread(r, buf, want, off, err);

		if (k < 0) {
			rc = (int)k;
		} else if (k == 0) {
			rc = errbuf_set(err, -EPROTO, "bucket: the object ended %llu bytes early",
					(unsigned long long)n);
		} else {
			rc = sink(ctx, buf, (size_t)k);
			if (rc < 0)
				errbuf_set(err, rc, "bucket: passing on what was read: %s", strerror(-rc));
			off += (uint64_t)k;
			n -= (uint64_t)k;
		}
	}
	free(buf);
	return rc;
}

int bucket_reader_copy(BucketReader *r, uint64_t off, uint64_t n, BucketSinkFn sink, void *ctx, ErrBuf *err)
{
	if (off > r->size || n > r->size - off)
		return errbuf_set(err, -EINVAL, "bucket: bytes %llu..%llu are past the object's end (%llu bytes)",
				  (unsigned long long)off, (unsigned long long)(off + n), (unsigned long long)r->size);
	if (n == 0)
		return 0;
	return r->ops->copy ? r->ops->copy(r, off, n, sink, ctx, err) : copy_by_pread(r, off, n, sink, ctx, err);
}

void bucket_reader_close(BucketReader *r)
{
	if (r)
		r->ops->close(r);
}

/* ---- uploads in parts ---- */

int bucket_upload_begin(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err)
{
	int r = check_name(name, err);

	return r < 0 ? r : b->ops->upload_begin(b, name, ret, err);
}

const char *bucket_upload_id(const BucketUpload *u)
{
	return u->id;
}

int bucket_upload_part(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err)
{
	int r;

	if (u->ended)
		return errbuf_set(err, -EINVAL, "bucket: upload %s has ended", u->id);
	/* In order; the last part again is a retry. */
	if (part == 0 || part > BUCKET_PART_MAX || (part != u->parts && part != u->parts + 1))
		return errbuf_set(err, -EINVAL, "bucket: upload %s: part %u after part %u (parts go 1..%u in order)",
				  u->id, part, u->parts, BUCKET_PART_MAX);
	if (n == 0)
		return errbuf_set(err, -EINVAL, "bucket: upload %s: part %u is empty", u->id, part);
	r = u->ops->part(u, part, data, n, err);
	if (r == 0)
		u->parts = part;
	return r;
}

int bucket_upload_complete(BucketUpload *u, ErrBuf *err)
{
	int r;

	if (u->ended)
		return errbuf_set(err, -EINVAL, "bucket: upload %s has ended", u->id);
	if (u->parts == 0)
		return errbuf_set(err, -EINVAL, "bucket: upload %s has no part", u->id);
	r = u->ops->complete(u, u->parts, err);
	if (r == 0)
		u->ended = true;
	return r;
}

int bucket_upload_abort(BucketUpload *u, ErrBuf *err)
{
	int r;

	if (u->ended)
		return errbuf_set(err, -EINVAL, "bucket: upload %s has ended", u->id);
	r = u->ops->abort(u, err);
	if (r == 0)
		u->ended = true;
	return r;
}

void bucket_upload_free(BucketUpload *u)
{
	if (u)
		u->ops->free(u);
}

/* ---- presigned URLs ---- */

int bucket_presign(Bucket *b, const BucketUrlRequest *q, BucketSignedUrl *ret, ErrBuf *err)
{
	int r = check_name(q->name, err);

	if (r < 0)
		return r;
	if (!b->ops->presign)
		return errbuf_set(err, -EOPNOTSUPP, "bucket: a file:// bucket has no URLs");
	if (q->expires_s == 0)
		return errbuf_set(err, -EINVAL, "bucket: a presigned URL needs a validity");
	if (q->op == BUCKET_URL_UPLOAD_PART && (q->part == 0 || q->part > BUCKET_PART_MAX))
		return errbuf_set(err, -EINVAL, "bucket: part %u is outside 1..%u", q->part, BUCKET_PART_MAX);
	return b->ops->presign(b, q, ret, err);
}

void bucket_signed_url_done(BucketSignedUrl *u)
{
	if (!u)
		return;
	free(u->url);
	*u = (BucketSignedUrl){0};
}
