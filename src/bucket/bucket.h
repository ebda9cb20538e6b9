/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Buckets: where full captures are written (Cloudflare's destination_conf).
 * One interface over several schemes, each a file behind an ops table
 * (bucket_int.h): file:// (bucket_file.c), S3 and its kin s3://, r2://, gs://
 * (bucket_s3.c), Azure Blob azblob:// and https://ACCOUNT.blob.core.windows.net
 * (bucket_azure.c). The destination_conf grammar is bucket_uri.h's.
 *
 * file:///abs/dir — a directory on the machine that writes (agent) or reads
 * (controller). Reads open an object once, without following a symlink
 * (O_NOFOLLOW), and read that descriptor: nothing is checked and then
 * reopened. It must lie inside the configured root (BucketConfig.root) after
 * resolving "..", so an API user cannot make pcapd write elsewhere; it is
 * created (inside the root) when missing. Objects are plain files named by the
 * object name; a put is atomic (temporary name, fsync, rename, fsync dir).
 *
 * Object names: 1..200 bytes of [A-Za-z0-9._-], not starting with '.'.
 */

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "common/util.h"

#define BUCKET_URI_MAX 1024u

typedef struct Bucket Bucket;

/* An Azure storage account the controller holds the key of
 * (--azure-storage ACCOUNT=KEY[@BLOB_ENDPOINT]). */
typedef struct BucketAzureAccount {
	const char *account;
	const char *key;      /* base64, as the portal shows it */
	const char *endpoint; /* blob endpoint URL, or NULL for https://ACCOUNT.blob.core.windows.net */
} BucketAzureAccount;

typedef struct BucketConfig {
	const char *root; /* file:// buckets must lie below this directory; NULL = file:// refused */
	/* Fallbacks for what a destination_conf leaves out, read from the
	 * environment by the CLI (no module reads it): s3:// */
	const char *aws_access_key_id;     /* AWS_ACCESS_KEY_ID */
	const char *aws_secret_access_key; /* AWS_SECRET_ACCESS_KEY */
	const char *aws_session_token;     /* AWS_SESSION_TOKEN */
	const char *aws_endpoint_url_s3;   /* AWS_ENDPOINT_URL_S3 */
	/* gs:// */
	const char *google_hmac_access_id; /* GOOGLE_HMAC_ACCESS_ID */
	const char *google_hmac_secret;    /* GOOGLE_HMAC_SECRET */
	/* azblob:// and Azure blob URLs */
	const BucketAzureAccount *azure; /* --azure-storage, repeatable */
	size_t n_azure;
	/* TLS to the stores */
	const char *cafile; /* CA bundle; NULL = the system's */
	bool insecure;      /* tests only */
} BucketConfig;

/* Pure check of a destination_conf as the API takes it: syntax valid for its
 * scheme (bucket_uri.h). Error names the field ("destination_conf: unknown
 * query key 'regoin' for s3"). */
int bucket_uri_check(const char *uri, size_t n, ErrBuf *err);

/* The one spelling of a destination_conf, so that two spellings of one
 * bucket register, validate and compare as one: bucket_uri_check() first,
 * then for file:// the scheme in lowercase and the path in lexical normal
 * form ("file:///r/./b1", "file:///r//b1/", "file:///r/x/../b1" are all
 * "file:///r/b1"; symlinks are not followed: bucket_open() checks where the
 * path leads). Other schemes are returned as given. Pure; writes ret[cap]
 * (BUCKET_URI_MAX + 1 always fits). */
int bucket_uri_normalize(const char *uri, char *ret, size_t cap, ErrBuf *err);

/* Opens a bucket (for file://: resolves and creates the directory; for a
 * store: resolves endpoint and credentials, no request is sent). */
int bucket_open(const char *uri, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);
void bucket_free(Bucket *b); /* NULL is fine */

/* Publishes an object with the bytes of data[0..n) atomically. */
int bucket_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err);
/* Publishes an object with the whole content of the file at path atomically
 * (copy_file_range for file://). */
int bucket_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err);
/* Reads an object into a new buffer, at most max bytes (-EFBIG beyond). */
int bucket_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err);
int bucket_remove(Bucket *b, const char *name, ErrBuf *err); /* -ENOENT if absent */

/* ---- reading: open an object, read ranges ---- */

typedef struct BucketReader BucketReader;

/* Opens an object for ranged reads; its size is known from here on. -ENOENT
 * if absent. For a store this is one HEAD request. */
int bucket_reader_open(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err);
uint64_t bucket_reader_size(const BucketReader *r);
/* Reads up to n bytes at off into buf: the number read (short only at the
 * end; 0 at or past the end) or -errno. A store answers each call with one
 * ranged GET, so callers read in large pieces. */
ssize_t bucket_reader_pread(BucketReader *r, void *buf, size_t n, uint64_t off, ErrBuf *err);
/* Where bucket_reader_copy() hands the bytes: 0, or -errno to stop. */
typedef int (*BucketSinkFn)(void *ctx, const void *p, size_t n);
/* Streams bytes [off, off+n) of the object to sink, in order, without
 * holding them: a store answers with one ranged GET whose body goes straight
 * to sink; file:// reads through a small buffer. -EINVAL past the end; a
 * sink's -errno stops the copy and is returned. */
int bucket_reader_copy(BucketReader *r, uint64_t off, uint64_t n, BucketSinkFn sink, void *ctx, ErrBuf *err);
void bucket_reader_close(BucketReader *r); /* NULL is fine */

/* ---- uploads in parts (S3 multipart, Azure block list) ----
 * Parts are numbered 1..BUCKET_PART_MAX in order; every part but the last
 * has at least BUCKET_PART_MIN bytes (S3's rule). The object appears only at
 * complete; abort leaves nothing. file:// writes a temporary file and
 * publishes it at complete. */

#define BUCKET_PART_MAX 10000u
#define BUCKET_PART_MIN (5u << 20)

typedef struct BucketUpload BucketUpload;

int bucket_upload_begin(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err);
/* The store's id of the upload (S3 UploadId; Azure and file:// a local one),
 * kept to resume or abort later. */
const char *bucket_upload_id(const BucketUpload *u);
int bucket_upload_part(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err);
int bucket_upload_complete(BucketUpload *u, ErrBuf *err);
int bucket_upload_abort(BucketUpload *u, ErrBuf *err);
void bucket_upload_free(BucketUpload *u); /* NULL is fine; neither completes nor aborts */

/* ---- presigned URLs: a request a party without keys can make ----
 * The controller signs, agents send (plain HTTP, no credentials). */

typedef enum BucketUrlOp {
	BUCKET_URL_GET,             /* GET the object (a Range header may be added) */
	BUCKET_URL_PUT,             /* PUT the whole object */
	BUCKET_URL_DELETE,          /* DELETE the object */
	BUCKET_URL_UPLOAD_CREATE,   /* S3: POST ?uploads (answer: XML with UploadId); Azure: none needed */
	BUCKET_URL_UPLOAD_PART,     /* S3: PUT ?partNumber&uploadId; Azure: PUT ?comp=block&blockid */
	BUCKET_URL_UPLOAD_COMPLETE, /* S3: POST ?uploadId (bucket_complete_body); Azure: PUT ?comp=blocklist */
	BUCKET_URL_UPLOAD_ABORT,    /* S3: DELETE ?uploadId; Azure: nothing to do (-EOPNOTSUPP) */
} BucketUrlOp;

typedef struct BucketUrlRequest {
	BucketUrlOp op;
	const char *name;      /* object name */
	const char *upload_id; /* parts, complete, abort: S3's UploadId; Azure: any id of 1..16
				  [A-Za-z0-9] (bucket_upload_id of a begun upload, or the caller's) */
	unsigned part;         /* UPLOAD_PART: 1..BUCKET_PART_MAX */
	uint32_t expires_s;    /* validity from now */
	time_t now;            /* signing time */
} BucketUrlRequest;

typedef struct BucketSignedUrl {
	const char *method; /* static string */
	char *url;          /* owned */
	const char *header; /* one header the request must carry ("x-ms-blob-type: BlockBlob"), or NULL */
} BucketSignedUrl;

/* -EOPNOTSUPP for file:// (no URLs) and for operations a store has no use for. */
int bucket_presign(Bucket *b, const BucketUrlRequest *q, BucketSignedUrl *ret, ErrBuf *err);
void bucket_signed_url_done(BucketSignedUrl *u); /* NULL is fine */

/* The body of the completing request of an upload made through presigned
 * URLs (parts 1..n): S3's CompleteMultipartUpload XML with the ETags the part
 * uploads answered (upload_id unused), or Azure's block list of the block ids
 * that BUCKET_URL_UPLOAD_PART URLs for upload_id carry (etags unused, may be
 * NULL). kind is the scheme's family: bucket_kind(). */
typedef enum BucketKind { BUCKET_KIND_FILE, BUCKET_KIND_S3, BUCKET_KIND_AZURE } BucketKind;
BucketKind bucket_kind(const Bucket *b);
int bucket_complete_body(BucketKind kind, const char *upload_id, const char *const *etags, size_t n, char **ret,
			 ErrBuf *err);

/* For a party sending signed requests (agents): a store's answer that is not
 * a success, worded "METHOD host/path: HTTP 503 SlowDown: message" (never
 * the query, which holds the signature) and classed: -EAGAIN for 429 and
 * 5xx (worth a retry), -EACCES for 401/403, -ENOENT for 404, -EINVAL,
 * -EEXIST or -EPROTO for the rest. */
struct HttpcResponse;
int bucket_answer_error(ErrBuf *err, const char *method, const char *url, const struct HttpcResponse *resp);
/* The first <tag>value</tag> of a store's XML answer (S3's UploadId). */
bool bucket_xml_value(const char *xml, const char *tag, char *out, size_t cap);
