/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Buckets: where full captures are written (Cloudflare's destination_conf).
 * One interface over several schemes; today file://, later s3://, gs:// and
 * Azure blobs as further files behind the same functions.
 *
 * file:///abs/dir — a directory on the machine that writes (agent) or reads
 * (controller). It must lie inside the configured root (BucketConfig.root) after
 * resolving "..", so an API user cannot make pcapd write elsewhere; it is
 * created (inside the root) when missing. Objects are plain files named by the
 * object name; a put is atomic (temporary name, fsync, rename, fsync dir).
 *
 * Object names: 1..200 bytes of [A-Za-z0-9._-], not starting with '.'.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define BUCKET_URI_MAX 1024u

typedef struct Bucket Bucket;

typedef struct BucketConfig {
	const char *root; /* file:// buckets must lie below this directory; NULL = file:// refused */
} BucketConfig;

/* Pure check of a destination_conf: scheme known and supported, syntax valid.
 * Error names the field: "destination_conf: scheme 'gs' is not supported yet". */
int bucket_uri_check(const char *uri, size_t n, ErrBuf *err);

/* The one spelling of a destination_conf, so that two spellings of one
 * bucket register, validate and compare as one: bucket_uri_check() first,
 * then for file:// the scheme in lowercase and the path in lexical normal
 * form ("file:///r/./b1", "file:///r//b1/", "file:///r/x/../b1" are all
 * "file:///r/b1"; symlinks are not followed: bucket_open() checks where the
 * path leads). Other schemes are returned as given. Pure; writes ret[cap]
 * (BUCKET_URI_MAX + 1 always fits). */
int bucket_uri_normalize(const char *uri, char *ret, size_t cap, ErrBuf *err);

/* Opens a bucket (for file://: resolves and creates the directory). */
int bucket_open(const char *uri, const BucketConfig *cfg, Bucket **ret, ErrBuf *err);
void bucket_free(Bucket *b); /* NULL is fine */

/* Publishes an object with the bytes of data[0..n) atomically. */
int bucket_put_bytes(Bucket *b, const char *name, const void *data, size_t n, ErrBuf *err);
/* Publishes an object with the whole content of the file at path atomically
 * (copy_file_range for file://). */
int bucket_put_file(Bucket *b, const char *name, const char *path, ErrBuf *err);
/* Reads an object into a new buffer, at most max bytes (-EFBIG beyond). */
int bucket_get_bytes(Bucket *b, const char *name, size_t max, uint8_t **ret, size_t *ret_n, ErrBuf *err);
/* A local path for reading the object (file://: the file itself), written into
 * ret[cap]. -ENOENT if absent. For remote schemes a later version downloads to
 * a cache first. */
int bucket_local_path(Bucket *b, const char *name, char *ret, size_t cap, ErrBuf *err);
int bucket_remove(Bucket *b, const char *name, ErrBuf *err); /* -ENOENT if absent */
