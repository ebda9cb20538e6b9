/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * AWS Signature Version 4 (S3, R2, GCS's XML API, radosgw): header signing
 * and query presigning. Pure: the caller gives the request's parts and the
 * time; nothing is sent and no clock is read.
 *
 * Why not libcurl's CURLOPT_AWS_SIGV4: curl 7.88 neither adds
 * x-amz-content-sha256 (S3 and radosgw require it) nor sorts and encodes the
 * query, and it cannot presign.
 *
 * Canonical request (AWS's rules, as the test suite and the S3 examples pin):
 *   METHOD \n
 *   path: the raw path with every byte but A-Za-z0-9-._~/ percent-encoded
 *         (once: S3 does not double-encode, and raw paths here hold no '%') \n
 *   query: name=value pairs, each side encoded like the path but '/' too,
 *          sorted by encoded name, then encoded value, joined by '&' \n
 *   headers: lower-cased names, values trimmed with inner runs of spaces
 *            collapsed, sorted by name, repeated names joined by ',' in the
 *            order given; each "name:value\n" \n
 *   signed headers: the names joined by ';' \n
 *   payload hash (hex SHA-256 of the body, or "UNSIGNED-PAYLOAD")
 * The signer adds "host" (SigV4Request.host) and "x-amz-date" (the time) to
 * the signed headers, and "x-amz-security-token" when a session token is set
 * (header mode: signed, as AWS's post-sts-header-before; presign mode: as the
 * X-Amz-Security-Token query parameter). x-amz-content-sha256 is signed when
 * the caller gives it as a header (S3 needs it; the generic test suite does
 * not have it).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/util.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_MAX_PARAMS 32         /* query parameters or headers of one request */
#define SIGV4_PRESIGN_MAX_S 604800u /* 7 days: AWS's limit on X-Amz-Expires */

typedef struct SigV4Key {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL = none */
	const char *region;        /* "us-east-1", "auto" (R2) */
	const char *service;       /* "s3" */
} SigV4Key;

typedef struct SigV4Param {
	const char *name;  /* raw (not encoded) */
	const char *value; /* raw; "" for a key without a value ("?uploads") */
} SigV4Param;

typedef struct SigV4Request {
	const char *method;        /* "GET", "PUT", ... */
	const char *host;          /* the Host header as sent: "b.s3.us-east-1.amazonaws.com", "127.0.0.1:7480" */
	const char *path;          /* raw absolute path: "/bucket/key" */
	const SigV4Param *query;   /* raw query parameters, in any order */
	size_t n_query;            /* at most SIGV4_MAX_PARAMS */
	const SigV4Param *headers; /* further headers to sign (not host, x-amz-date), as sent */
	size_t n_headers;          /* at most SIGV4_MAX_PARAMS */
	const char *payload_hash;  /* hex SHA-256 of the body or SIGV4_UNSIGNED_PAYLOAD; NULL = empty body */
	time_t when;               /* signing time (UTC seconds) */
} SigV4Request;

typedef struct SigV4Signed {
	char amz_date[17];       /* "20130524T000000Z": send as x-amz-date (header mode) */
	char signature[65];      /* hex */
	char *authorization;     /* header mode: the Authorization header's value */
	char *query;             /* presign mode: the whole encoded query, X-Amz-Signature last */
	char *canonical_request; /* for tests and for comparing with a store's SignatureDoesNotMatch */
	char *string_to_sign;
} SigV4Signed;

/* Header signing. On success *ret holds the Authorization value and the date
 * to send; free with sigv4_signed_done. -EINVAL (with err naming the field)
 * for a missing key part, too many parameters or a CR/LF in a value. */
int sigv4_sign(const SigV4Key *key, const SigV4Request *req, SigV4Signed *ret, ErrBuf *err);

/* Query presigning, valid expires_s seconds (1..SIGV4_PRESIGN_MAX_S) from
 * req->when: X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders
 * (and -Security-Token) join req->query; req->payload_hash NULL means
 * UNSIGNED-PAYLOAD here (a presigned URL does not know its body). */
int sigv4_presign(const SigV4Key *key, const SigV4Request *req, uint32_t expires_s, SigV4Signed *ret, ErrBuf *err);

void sigv4_signed_done(SigV4Signed *s); /* NULL is fine */
