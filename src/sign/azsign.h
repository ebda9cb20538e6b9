/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Azure Storage authorization: Shared Key request signing and service SAS
 * tokens for blobs and containers, with the account key. Pure: the caller
 * gives the request's parts and the time.
 *
 * Shared Key (x-ms-version 2009-09-19 and later), Microsoft's rules:
 *   StringToSign = VERB \n Content-Encoding \n Content-Language \n
 *                  Content-Length (empty when 0) \n Content-MD5 \n
 *                  Content-Type \n Date \n If-Modified-Since \n If-Match \n
 *                  If-None-Match \n If-Unmodified-Since \n Range \n
 *                  CanonicalizedHeaders CanonicalizedResource
 *   CanonicalizedHeaders: every x-ms-* header, name lower-cased, value
 *     trimmed with inner runs of blanks made one space, sorted by name,
 *     each "name:value\n".
 *   CanonicalizedResource: "/" account path (the request's path as sent,
 *     encoded), then per query parameter, names lower-cased and sorted,
 *     "\nname:value" (values decoded; repeated names' values sorted and
 *     joined by ',').
 *   Authorization: "SharedKey account:" base64(HMAC-SHA256(key, StringToSign))
 *
 * Service SAS (signed version AZSIGN_SAS_VERSION, 2020-12-06 and later):
 *   StringToSign = sp \n st \n se \n /blob/account/container[/blob] \n si \n
 *                  sip \n spr \n sv \n sr \n snapshot \n ses \n rscc \n rscd \n
 *                  rsce \n rscl \n rsct
 *   (unused fields empty); sig = base64(HMAC-SHA256(key, StringToSign)).
 */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/util.h"

#define AZSIGN_SAS_VERSION "2022-11-02" /* the signed version (sv) of our SAS tokens */
#define AZSIGN_MAX_PARAMS 32

typedef struct AzKey {
	const char *account; /* storage account name */
	const uint8_t *key;  /* the account key, base64-decoded */
	size_t key_n;
} AzKey;

typedef struct AzParam {
	const char *name;  /* raw */
	const char *value; /* raw (decoded) */
} AzParam;

typedef struct AzRequest {
	const char *method;   /* "PUT", ... */
	const char *path;     /* the path as sent, encoded: "/container/blob" or, path-style
				 (Azurite), "/account/container/blob" */
	const AzParam *query; /* raw query parameters ("comp"="block", "blockid"=...) */
	size_t n_query;
	const AzParam *headers; /* every header that is sent and signed (standard ones and x-ms-*) */
	size_t n_headers;
	uint64_t content_length; /* the body's length */
} AzRequest;

/* The Authorization value for req into a new string (*ret). -EINVAL with err
 * naming the field for a bad request; ret_sts (may be NULL) gets the string
 * to sign (for tests and messages). */
int azsign_shared_key(const AzKey *key, const AzRequest *req, char **ret, char **ret_sts, ErrBuf *err);

typedef struct AzSas {
	const char *permissions; /* in Azure's order, e.g. "rcw", "r", "cw" */
	time_t start;            /* 0 = none */
	time_t expiry;
	const char *container;
	const char *blob;     /* NULL = a container SAS (sr=c) */
	const char *protocol; /* "https" or "https,http" */
} AzSas;

/* A service SAS token (query string without '?', values encoded:
 * "sv=...&spr=...&st=...&se=...&sr=b&sp=...&sig=...") into a new string. */
int azsign_sas(const AzKey *key, const AzSas *sas, char **ret, char **ret_sts, ErrBuf *err);

/* Formats t as Azure wants in x-ms-date: "Mon, 27 May 2024 10:00:00 GMT"
 * into out[30]. */
int azsign_http_date(time_t t, char out[30]);
