/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/bucket (and its tests): the per-scheme operations behind the
 * Bucket, BucketReader and BucketUpload handles. bucket.c parses URIs and
 * checks object names and part numbers, then calls these; a scheme file
 * implements them (bucket_file.c, bucket_s3.c, bucket_azure.c).
 */

#include "bucket/bucket.h"
#include "bucket/bucket_uri.h"
#include "common/io.h"

typedef struct BucketOps {
	BucketKind kind;
	int (*put_bytes)(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err);
	int (*put_file)(Bucket *b, const char *name, const char *path, ErrBuf *err);
	int (*get_bytes)(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err);
	int (*remove)(Bucket *b, const char *name, ErrBuf *err);
	int (*reader_open)(Bucket *b, const char *name, BucketReader **ret, ErrBuf *err);
	int (*upload_begin)(Bucket *b, const char *name, BucketUpload **ret, ErrBuf *err);
	int (*presign)(Bucket *b, const BucketUrlRequest *q, BucketSignedUrl *ret, ErrBuf *err); /* NULL: -EOPNOTSUPP */
	void (*free)(Bucket *b);
} BucketOps;

/* The head of every scheme's handle. */
struct Bucket {
	const BucketOps *ops;
};

typedef struct BucketReaderOps {
	ssize_t (*pread)(BucketReader *r, void *buf, size_t n, uint64_t off, ErrBuf *err); /* off < size, n > 0 */
	/* [off, off+n) within the object, n > 0; NULL: preads through a buffer */
	int (*copy)(BucketReader *r, uint64_t off, uint64_t n, BucketSinkFn sink, void *ctx, ErrBuf *err);
	void (*close)(BucketReader *r);
} BucketReaderOps;

struct BucketReader {
	const BucketReaderOps *ops;
	uint64_t size; /* set by the scheme's open */
};

typedef struct BucketUploadOps {
	int (*part)(BucketUpload *u, unsigned part, const void *data, size_t n, ErrBuf *err);
	int (*complete)(BucketUpload *u, unsigned parts, ErrBuf *err); /* parts 1..parts were sent */
	int (*abort)(BucketUpload *u, ErrBuf *err);
	void (*free)(BucketUpload *u);
} BucketUploadOps;

struct BucketUpload {
	const BucketUploadOps *ops;
	char *id;       /* owned; set by the scheme's begin */
	unsigned parts; /* highest part number sent (bucket.c keeps it) */
	bool ended;     /* completed or aborted */
};

/* file:// — path is the URI's path (after "file://"), already checked. */
int bucket_file_open(const char *path, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);
/* s3://, r2://, gs:// */
int bucket_s3_open(const BucketUri *u, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);
/* azblob:// and Azure blob URLs */
int bucket_azure_open(const BucketUri *u, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);

/* Tests: route a file bucket's writes through another IoOps table (fault
 * injection). b must come from a file:// URI. */
void bucket_file_set_io(Bucket *b, const IoOps *io);
