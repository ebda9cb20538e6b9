/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * destination_conf: the grammar, parsed in one place (pure: no file, no
 * socket, no environment), and its REDACTED form.
 *
 *   file:///ABS/DIR
 *   s3://BUCKET[/PREFIX][?region=R&endpoint=URL&access-key-id=K&secret-access-key=S]
 *   r2://BUCKET[/PREFIX]?account-id=A&access-key-id=K&secret-access-key=S[&endpoint=URL]
 *   gs://BUCKET[/PREFIX][?region=R&endpoint=URL&access-key-id=K&secret-access-key=S]
 *   azblob://ACCOUNT/CONTAINER[/PREFIX][?key=K|sas=TOKEN][&endpoint=URL]
 *   https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?key=K|sas=TOKEN]
 *
 * Scheme names and the Azure host compare without regard to case. Query
 * values are percent-decoded ('+' stays '+': base64 keys survive); a key
 * given twice, an empty value, an unknown key are errors naming the key
 * (never a value: values may be secrets). An endpoint is http:// or https://
 * host[:port][/path] without query, fragment or user info. A PREFIX is
 * segments of [A-Za-z0-9._~-] joined by single '/', none "." or "..".
 *
 * Bucket names: 1..255 of [A-Za-z0-9._-], not starting with '.'; Azure
 * accounts 3..24 of [a-z0-9]; containers 3..63 of [a-z0-9-].
 */

#include <stdbool.h>
#include <stddef.h>

#include "bucket/bucket.h"
#include "common/util.h"

typedef enum BucketScheme {
	BUCKET_SCHEME_FILE,
	BUCKET_SCHEME_S3,
	BUCKET_SCHEME_R2,
	BUCKET_SCHEME_GS,
	BUCKET_SCHEME_AZURE, /* azblob:// and the https blob URL */
} BucketScheme;

typedef struct BucketUri {
	BucketScheme scheme;
	char *path;              /* file: the absolute directory, as written */
	char *bucket;            /* s3, r2, gs: the bucket; azure: the container */
	char *prefix;            /* "" or "a/b/" (always ending in '/'): objects are prefix + name */
	char *region;            /* region= or NULL */
	char *endpoint;          /* endpoint= without a trailing '/', or NULL */
	char *access_key_id;     /* access-key-id= or NULL */
	char *secret_access_key; /* secret-access-key= or NULL */
	char *account_id;        /* r2: account-id= */
	char *account;           /* azure: the storage account */
	char *key;               /* azure: key= (base64) or NULL */
	char *sas;               /* azure: sas= (a SAS token, "sv=...&sig=...") or NULL */
} BucketUri;

/* Parses uri[0..n) (n <= BUCKET_URI_MAX, no NUL). On success *ret holds
 * owned strings (free with bucket_uri_done). -EINVAL with err naming what is
 * wrong ("destination_conf: unknown query key 'regoin' for s3"). */
int bucket_uri_parse(const char *uri, size_t n, BucketUri *ret, ErrBuf *err);
void bucket_uri_done(BucketUri *u); /* NULL is fine */

const char *bucket_scheme_name(BucketScheme s); /* "file", "s3", "r2", "gs", "azure" */

/* The bucket's identity: what a destination_conf names once its credentials
 * are taken out, so that the URI with its keys, without them, and its
 * REDACTED form all name one bucket (the query keys access-key-id,
 * secret-access-key, key and sas are dropped whatever their values; region
 * is dropped too: it only scopes signatures). Canonical: scheme in lower
 * case, the https blob-URL form as azblob://, a file path in lexical normal
 * form, the endpoint's scheme and host in lower case:
 *   file:///r/b1                    file:///r/./x/../b1/
 *   s3://b/dir/?endpoint=http://h:1 S3://b/dir?region=x&endpoint=HTTP://H:1/&access-key-id=K&secret-access-key=S
 *   r2://b/?account-id=A            r2://b?account-id=A&access-key-id=K&secret-access-key=REDACTED
 *   azblob://acct/caps/             https://ACCT.blob.core.windows.net/caps?sas=REDACTED
 * Errors as bucket_uri_parse (never quoting a value). Writes ret[cap]; cap
 * must be at least BUCKET_URI_MAX + 1 (-ENAMETOOLONG otherwise). Pure. */
int bucket_uri_match_key(const char *uri, size_t n, char *ret, size_t cap, ErrBuf *err);
/* Whether a and b are valid and name the same bucket (bucket_uri_match_key). */
bool bucket_uri_same(const char *a, const char *b);

/* Writes uri with every secret replaced by REDACTED into out[cap]: the values
 * of secret-access-key, key, sas, and of any query key naming a signature or
 * token (sig, x-amz-signature, x-amz-security-token, token, password,
 * secret), and user info before '@' in the authority. Works on any string,
 * valid or not (an error message may quote a bad one). Returns 0, or
 * -ENAMETOOLONG when out is too small (out then holds a prefix cut at a
 * safe place: never a partial secret). */
int bucket_uri_redact(const char *uri, char *out, size_t cap);
/* The same into a new string (NULL when out of memory). */
char *bucket_uri_redact_dup(const char *uri);

/* Parses "ACCOUNT=KEY[@BLOB_ENDPOINT]" (the CLI's --azure-storage): an Azure
 * account name, its base64 key and optionally its blob endpoint (http:// or
 * https://, as endpoint=). *ret points into *ret_copy, a new string the caller
 * frees. -EINVAL with err naming the part at fault (never quoting the key). */
int bucket_azure_account_parse(const char *arg, char **ret_copy, BucketAzureAccount *ret, ErrBuf *err);
