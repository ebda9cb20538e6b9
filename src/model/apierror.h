/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The dialect-neutral error of an API operation. The service layer
 * (controller/service.h), the router and authentication (src/api/) return it;
 * each dialect renders it in its own shape (the Cloudflare envelope with its
 * codes, ARM's {"error":{code,message,target}}). Dialects tell errors apart by
 * kind, never by message text.
 *
 *   kind        what went wrong, and so the HTTP status (api_error_status())
 *   field       the path of the field at fault in the model's words ("id",
 *               "target", "destination", "filter.source_port"), or in the
 *               dialect's own words for an error a dialect's validator made;
 *               "" when no one field is at fault. A dialect maps the model's
 *               names to its own (Cloudflare: "target" → "colo_name").
 *   msg         what to tell the user, without the field: a dialect that
 *               prefixes messages with the field (Cloudflare) writes
 *               "field: msg".
 *   retry_after_s  API_ERR_BUSY, API_ERR_UNAVAILABLE: when to try again
 *               (seconds, > 0; 0: no advice)
 *   allow       API_ERR_METHOD: the methods the path takes ("GET, POST")
 *
 * Lives in the model because the service layer, below the dialects, returns
 * it; src/api/api-int.h holds what dialects need to render it.
 */

#include <stdint.h>

#include "common/util.h"

#define APIERROR_FIELD_MAX 128u

typedef enum ApiErrorKind {
	API_ERR_NONE,
	API_ERR_INTERNAL,          /* 500: our fault (storage, memory) */
	API_ERR_BAD_BODY,          /* 400: the body is not a JSON object */
	API_ERR_INVALID,           /* 400: a field's value, type or presence */
	API_ERR_UNVERIFIED,        /* 400: a destination the account has not proven it owns */
	API_ERR_NO_TARGET,         /* 400: no online agent matches the capture's target */
	API_ERR_MISMATCH,          /* 400: a proof (ownership challenge) does not match */
	API_ERR_UNAUTHENTICATED,   /* 401: no, bad or unknown credentials */
	API_ERR_FORBIDDEN,         /* 403: another account, or too small a scope */
	API_ERR_NOT_FOUND,         /* 404: no such object (for this account) */
	API_ERR_NO_ROUTE,          /* 404: no such path */
	API_ERR_METHOD,            /* 405: the path takes other methods (allow) */
	API_ERR_CONFLICT,          /* 409: the object's state forbids it (not finished, already finished) */
	API_ERR_TOO_LARGE,         /* 413: the body is over its bound */
	API_ERR_UNSUPPORTED_MEDIA, /* 415: a Content-Type the operation does not take */
	API_ERR_BUSY,              /* 429: a rate or concurrency limit (retry_after_s) */
	API_ERR_UNAVAILABLE,       /* 503: shutting down, or request bodies hold the server's budget; try again */
	API_ERR_URI_TOO_LONG,      /* 414: the request target is over its bound */
	API_ERR_HEADERS_TOO_LARGE, /* 431: too many request headers, or too many bytes of them */
} ApiErrorKind;

typedef struct ApiError {
	ApiErrorKind kind;
	uint32_t retry_after_s;
	const char *allow; /* static text, or NULL */
	char field[APIERROR_FIELD_MAX];
	char msg[sizeof(((ErrBuf *)0)->msg)];
} ApiError;

/* Fills e (which may be NULL) and returns the kind's -errno
 * (apierror_errno()), so that `return apierror_set(...)` is one statement.
 * field may be NULL (no field). */
int apierror_set(ApiError *e, ApiErrorKind kind, const char *field, const char *fmt, ...) PCAPD_PRINTF(4, 5);

/* From a message of a lower layer that names its field first ("time_limit:
 * 301 is outside 1..300", the convention of every parser here): the leading
 * word before ": " becomes the field when it is a field path (letters,
 * digits, '_', '.', '[', ']'), the rest the message; else the whole text is the
 * message and the field is empty. Returns apierror_errno(kind). */
int apierror_from_msg(ApiError *e, ApiErrorKind kind, const char *msg);

/* The same, with the field given: a leading "<field>: " or "<alias>: " in msg
 * (alias may be NULL) is not repeated. For lower layers that word their
 * messages with a dialect's name for the field (bucket.h says
 * "destination_conf: "). */
int apierror_with_field(ApiError *e, ApiErrorKind kind, const char *field, const char *alias, const char *msg);

/* The -errno that stands for a kind (-EINVAL, -ENOENT, -EBUSY, ...). */
int apierror_errno(ApiErrorKind kind);
/* The kind's name ("invalid", "not_found", ...), for logs and tests. */
const char *apierror_kind_name(ApiErrorKind kind);
