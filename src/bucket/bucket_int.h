/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/bucket (and its tests): the per-scheme operations behind the
 * Bucket handle. bucket.c checks URIs and object names, then calls these; a
 * scheme file (bucket_file.c today; S3, GCS, Azure later) implements them.
 */

#include "bucket/bucket.h"
#include "common/io.h"

typedef struct BucketOps {
	int (*put_bytes)(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err);
	int (*put_file)(Bucket *b, const char *name, const char *path, ErrBuf *err);
	int (*get_bytes)(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err);
	int (*local_path)(Bucket *b, const char *name, char *ret, size_t cap, ErrBuf *err);
	int (*remove)(Bucket *b, const char *name, ErrBuf *err);
	void (*free)(Bucket *b);
} BucketOps;

/* The head of every scheme's handle. */
struct Bucket {
	const BucketOps *ops;
};

/* file:// — path is the URI's path (after "file://"), already checked by
 * bucket_uri_check. */
int bucket_file_open(const char *path, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);

/* Tests: route a file bucket's writes through another IoOps table (fault
 * injection). b must come from a file:// URI. */
void bucket_file_set_io(Bucket *b, const IoOps *io);
